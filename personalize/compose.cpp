#include "personalize/compose.hpp"

#include "personalize/rfc2047.hpp"
#include "personalize/transfer.hpp"

#include <fmt/format.h>

namespace ember::personalize {
namespace {

// RFC 5322 2.1.1 recommends 78; above it a 7bit body is sent quoted-printable.
constexpr std::size_t kMaxSevenBitLine = 78;

bool seven_bit_clean(std::string_view text) {
    std::size_t line = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            line = 0;
            ++i;
            continue;
        }
        if (c >= 0x80 || c == 0 || c == '\r' || c == '\n' || ++line > kMaxSevenBitLine)
            return false;
    }
    return true;
}

// One leaf part: its MIME header fields and body (canonical CRLF text).
struct Part {
    std::string headers; // complete fields, each ending in CRLF
    std::string body;
};

Part text_part(std::string_view subtype, std::string_view text) {
    auto canonical = to_crlf(text);
    Part p;
    p.headers = fmt::format("Content-Type: text/{}; charset=utf-8\r\n", subtype);
    if (seven_bit_clean(canonical)) {
        p.headers += "Content-Transfer-Encoding: 7bit\r\n";
        p.body = std::move(canonical);
    } else {
        p.headers += "Content-Transfer-Encoding: quoted-printable\r\n";
        encode_quoted_printable(canonical, p.body);
    }
    return p;
}

// An ASCII stand-in for a file name: what clients without RFC 2231 show.
std::string ascii_fallback(std::string_view name) {
    std::string out;
    for (const char c : name)
        out += (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') ? c : '_';
    return out;
}

// RFC 2231 4: charset''percent-encoded value.
std::string extended_value(std::string_view name) {
    std::string out = "utf-8''";
    for (const char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        out += plain ? std::string(1, ch) : fmt::format("%{:02X}", c);
    }
    return out;
}

Part attachment_part(const ComposeAttachment& a) {
    Part p;
    std::string type_params;
    std::string disposition_params;
    if (!a.filename.empty()) {
        const auto fallback = ascii_fallback(a.filename);
        // name= on Content-Type is obsolete (RFC 2046 4.5.1) but many
        // clients still read it; filename on Content-Disposition is the rule.
        type_params = fmt::format(";\r\n name=\"{}\"", fallback);
        disposition_params = fmt::format(";\r\n filename=\"{}\"", fallback);
        if (fallback != a.filename)
            disposition_params += ";\r\n filename*=" + extended_value(a.filename);
    }
    p.headers = fmt::format("Content-Type: {}{}\r\n", a.content_type, type_params);
    p.headers += fmt::format("Content-Disposition: attachment{}\r\n", disposition_params);
    p.headers += "Content-Transfer-Encoding: base64\r\n";
    encode_base64(a.data, p.body);
    return p;
}

// A multipart part made of `parts` (RFC 2046 5.1.1).
Part multipart(std::string_view subtype, const std::vector<Part>& parts, std::string boundary) {
    Part p;
    p.headers =
        fmt::format("Content-Type: multipart/{};\r\n boundary=\"{}\"\r\n", subtype, boundary);
    for (const auto& part : parts) {
        // The CRLF before each delimiter belongs to the delimiter (5.1.1).
        p.body += "--" + boundary + "\r\n" + part.headers + "\r\n" + part.body + "\r\n";
    }
    p.body += "--" + boundary + "--\r\n";
    return p;
}

} // namespace

std::string format_mailbox(std::string_view name, std::string_view address) {
    if (name.empty())
        return std::string(address);
    return encode_phrase(name) + " <" + std::string(address) + ">";
}

std::string compose(const ComposeInput& in) {
    std::vector<Part> alternatives;
    if (in.text)
        alternatives.push_back(text_part("plain", *in.text));
    if (in.html)
        alternatives.push_back(text_part("html", *in.html));
    if (alternatives.empty())
        alternatives.push_back(text_part("plain", ""));
    Part content = alternatives.size() == 1
                       ? std::move(alternatives.front())
                       : multipart("alternative", alternatives, "=_alt_" + in.boundary_seed);
    if (!in.attachments.empty()) {
        std::vector<Part> parts{std::move(content)};
        for (const auto& a : in.attachments)
            parts.push_back(attachment_part(a));
        content = multipart("mixed", parts, "=_mix_" + in.boundary_seed);
    }
    std::string out;
    append_folded_field("From", format_mailbox(in.from_name, in.from_address), out);
    if (!in.subject.empty())
        append_folded_field("Subject", encode_words(in.subject), out);
    for (const auto& [name, value] : in.headers)
        append_folded_field(name, encode_words(value), out);
    out += "MIME-Version: 1.0\r\n";
    out += content.headers;
    out += "\r\n";
    out += content.body;
    return out;
}

} // namespace ember::personalize
