#pragma once
// A small MIME reader for bounce and complaint messages: header blocks
// (RFC 5322 2.2 unfolding), Content-Type parameters (RFC 2045 5.1),
// multipart splitting (RFC 2046 5.1), the two transfer decodings
// (quoted-printable, base64: RFC 2045 6.7, 6.8) and RFC 2047 encoded words.
// It reads what real MTAs send rather than what RFCs allow: any of CRLF,
// LF, CR line ends (normalize_newlines first), missing boundaries, parts
// without headers, junk base64.
//
// It does not convert charsets: text stays in the bytes it came in (rules
// see invalid UTF-8 as '?'). Nesting is bounded (kMaxDepth, kMaxParts) so
// hostile input costs linear time and bounded memory. Pure; thread-safe.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::feedback::mime {

inline constexpr std::size_t kMaxDepth = 8;
inline constexpr std::size_t kMaxParts = 256;

struct Field {
    std::string name;  // as written
    std::string value; // unfolded, trimmed
};

struct Headers {
    std::vector<Field> fields;
    // The first field of that name (case-insensitive), "" when absent.
    [[nodiscard]] std::string get(std::string_view name) const;
    [[nodiscard]] bool has(std::string_view name) const;
    [[nodiscard]] std::vector<std::string> get_all(std::string_view name) const;
};

// Every CRLF and lone CR becomes LF.
[[nodiscard]] std::string normalize_newlines(std::string_view text);

// Fields of a header block; lines that are neither a field nor a
// continuation are skipped. LF line ends.
[[nodiscard]] Headers parse_headers(std::string_view block);

struct Entity {
    Headers headers;
    std::string_view body; // into the parsed text
};

// Splits at the first empty line. A leading mbox "From " line is skipped.
// When the first line is not a header field the whole text is the body.
[[nodiscard]] Entity parse_entity(std::string_view text);

struct ContentType {
    std::string type = "text"; // lower case
    std::string subtype = "plain";
    std::vector<std::pair<std::string, std::string>> params; // names lower case
    [[nodiscard]] std::string mime_type() const { return type + "/" + subtype; }
    [[nodiscard]] std::string param(std::string_view name) const;
};

// RFC 2045 defaults (text/plain) for an empty or broken value.
[[nodiscard]] ContentType parse_content_type(std::string_view value);

// The body parts between "--boundary" lines, preamble and epilogue
// dropped. An unterminated last part runs to the end.
[[nodiscard]] std::vector<std::string_view> split_multipart(std::string_view body,
                                                            std::string_view boundary);

// quoted-printable and base64 decoded; any other encoding returned as is.
[[nodiscard]] std::string decode_transfer(std::string_view body, std::string_view encoding);
[[nodiscard]] std::string decode_base64(std::string_view text);
[[nodiscard]] std::string decode_quoted_printable(std::string_view text);

// "=?utf-8?B?...?=" words decoded to their bytes (charset not converted).
[[nodiscard]] std::string decode_words(std::string_view value);

struct Part {
    std::string mime_type; // "text/plain", "message/delivery-status", ...
    Headers headers;       // the part's own header fields
    std::string body;      // transfer-decoded
    std::size_t depth = 0; // 0: the message itself is a single part
    std::size_t index = 0; // order of appearance
    bool preamble = false; // text before a multipart's first boundary
};

// The leaves of the MIME tree, depth first. message/rfc822 and
// text/rfc822-headers are leaves too: they hold the returned message, whose
// own parts are not ours to read. A multipart's non-empty preamble is a
// text/plain leaf marked `preamble` (a few MTAs write their report there;
// most write "This is a multi-part message in MIME format").
[[nodiscard]] std::vector<Part> leaves(const Entity& message);

} // namespace ember::feedback::mime
