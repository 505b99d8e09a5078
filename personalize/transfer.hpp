#pragma once
// Content-Transfer-Encodings (RFC 2045 6): decoding what senders write and
// encoding what ember sends. Encoders take text in canonical form (CRLF line
// breaks, RFC 2045 6.7 rule 4 and 6.8) and write CRLF lines of at most 76
// characters. Decoders are lenient (RFC 2045 6.7 note 5, 6.8): invalid
// escapes are kept literally, characters outside the base64 alphabet are
// skipped. Pure functions, thread-safe.

#include <string>
#include <string_view>

namespace ember::personalize {

enum class TransferEncoding { SevenBit, EightBit, Binary, QuotedPrintable, Base64, Other };

// From a Content-Transfer-Encoding value (case-insensitive, trimmed);
// absent ("") means 7bit (RFC 2045 6.1).
[[nodiscard]] TransferEncoding parse_transfer_encoding(std::string_view value);

[[nodiscard]] std::string decode_quoted_printable(std::string_view text);
[[nodiscard]] std::string decode_base64(std::string_view text);
// The body as its encoding says; 7bit, 8bit, binary and Other unchanged.
[[nodiscard]] std::string decode_transfer(std::string_view body, TransferEncoding encoding);

// Appends the encoding of `text` to `out`. quoted-printable: soft breaks
// keep lines at 76, trailing blanks of a line are escaped, '=' and
// non-printables are =XX; hard line breaks stay CRLF. The output ends with
// CRLF exactly when the text does.
void encode_quoted_printable(std::string_view text, std::string& out);
// 76-character lines separated by CRLF; no CRLF after the last line.
void encode_base64(std::string_view data, std::string& out);

// True when every CR and LF is part of a CRLF (canonical text).
[[nodiscard]] bool is_crlf_text(std::string_view text);
// Every bare LF and bare CR becomes CRLF (canonical text, RFC 2045 6.7).
[[nodiscard]] std::string to_crlf(std::string_view text);

} // namespace ember::personalize
