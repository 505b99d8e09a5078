#include "personalize/transfer.hpp"

#include "personalize/text.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace ember::personalize {
namespace {

constexpr std::string_view kHex = "0123456789ABCDEF";
constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::size_t kMaxLine = 76; // RFC 2045 6.7 rule 5, 6.8

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') // lower case is invalid but common (6.7 rule 1 note)
        return c - 'a' + 10;
    return -1;
}

constexpr std::array<std::int8_t, 256> base64_table() {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t)
        v = -1;
    for (std::size_t i = 0; i < kBase64.size(); ++i)
        t[static_cast<unsigned char>(kBase64[i])] = static_cast<std::int8_t>(i);
    return t;
}
constexpr auto kBase64Values = base64_table();

void decode_qp_line(std::string_view line, std::string& out) {
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '=' && i + 2 < line.size()) {
            const int hi = hex_value(line[i + 1]);
            const int lo = hex_value(line[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += line[i];
    }
}

// Literal in quoted-printable: printable ASCII but '=' (6.7 rule 2), and
// blanks (rule 3; escaped at the end of a line by the caller).
constexpr bool qp_literal(unsigned char c) {
    return (c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t';
}

} // namespace

TransferEncoding parse_transfer_encoding(std::string_view value) {
    const auto v = text::trim(value);
    if (v.empty() || text::iequals(v, "7bit"))
        return TransferEncoding::SevenBit;
    if (text::iequals(v, "8bit"))
        return TransferEncoding::EightBit;
    if (text::iequals(v, "binary"))
        return TransferEncoding::Binary;
    if (text::iequals(v, "quoted-printable"))
        return TransferEncoding::QuotedPrintable;
    if (text::iequals(v, "base64"))
        return TransferEncoding::Base64;
    return TransferEncoding::Other;
}

std::string decode_quoted_printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        const auto nl = text.find('\n');
        const bool terminated = nl != std::string_view::npos;
        auto line = text.substr(0, terminated ? nl : text.size());
        text.remove_prefix(terminated ? nl + 1 : text.size());
        // Trailing blanks were added in transport (6.7 rule 3).
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
            line.remove_suffix(1);
        if (!line.empty() && line.back() == '=') { // soft line break (rule 5)
            decode_qp_line(line.substr(0, line.size() - 1), out);
            continue;
        }
        decode_qp_line(line, out);
        if (terminated)
            out += "\r\n";
    }
    return out;
}

std::string decode_base64(std::string_view text) {
    std::string out;
    out.reserve(text.size() / 4 * 3 + 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        if (c == '=')
            break;
        const int v = kBase64Values[static_cast<unsigned char>(c)];
        if (v < 0)
            continue; // line breaks and junk (6.8: ignored)
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return out;
}

std::string decode_transfer(std::string_view body, TransferEncoding encoding) {
    switch (encoding) {
    case TransferEncoding::QuotedPrintable:
        return decode_quoted_printable(body);
    case TransferEncoding::Base64:
        return decode_base64(body);
    default:
        return std::string(body);
    }
}

namespace {

constexpr std::array<bool, 256> qp_literal_table() {
    std::array<bool, 256> t{};
    for (std::size_t c = 0; c < t.size(); ++c)
        t[c] = qp_literal(static_cast<unsigned char>(c));
    return t;
}
constexpr auto kQpLiteral = qp_literal_table();

// One line (no CRLF inside): runs of literal octets are copied in bulk, a
// soft break "=" keeps each encoded line within 76 columns (the last
// literal of the line may take the 76th, RFC 2045 6.7 rule 5), and a blank
// ending the line is escaped (rule 3).
char* encode_qp_line(const unsigned char* p, const unsigned char* e, char* w) {
    std::size_t col = 0;
    const auto soft_break = [&] {
        *w++ = '=';
        *w++ = '\r';
        *w++ = '\n';
        col = 0;
    };
    while (p < e) {
        const unsigned char* q = p;
        while (q < e && kQpLiteral[*q])
            ++q;
        if (q == e && q > p && (q[-1] == ' ' || q[-1] == '\t'))
            --q;
        while (p < q) {
            const auto rest = static_cast<std::size_t>(q - p);
            const auto n =
                q == e && col + rest <= kMaxLine ? rest : std::min(rest, kMaxLine - 1 - col);
            if (n == 0) {
                soft_break();
                continue;
            }
            std::memcpy(w, p, n);
            w += n;
            p += n;
            col += n;
        }
        if (p == e)
            break;
        const unsigned char c = *p++;
        if (col + 3 > (p == e ? kMaxLine : kMaxLine - 1))
            soft_break();
        *w++ = '=';
        *w++ = kHex[c >> 4];
        *w++ = kHex[c & 0x0F];
        col += 3;
    }
    return w;
}

// The next CRLF at or after `p`, or `end`.
const unsigned char* find_crlf(const unsigned char* p, const unsigned char* end) {
    while (p < end) {
        const auto* cr = static_cast<const unsigned char*>(
            std::memchr(p, '\r', static_cast<std::size_t>(end - p)));
        if (cr == nullptr)
            return end;
        if (cr + 1 < end && cr[1] == '\n')
            return cr;
        p = cr + 1; // a bare CR is an octet to escape
    }
    return end;
}

} // namespace

// Writes through a pointer into space reserved for the worst case (every
// octet escaped, a soft break every 25 octets): appending byte by byte was
// most of a merge's cost.
void encode_quoted_printable(std::string_view text, std::string& out) {
    const auto old = out.size();
    out.resize(old + text.size() * 3 + (text.size() / 25 + 1) * 3);
    char* const begin = out.data() + old;
    char* w = begin;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* const end = p + text.size();
    while (p < end) {
        const auto* eol = find_crlf(p, end);
        w = encode_qp_line(p, eol, w);
        if (eol == end)
            break;
        *w++ = '\r';
        *w++ = '\n';
        p = eol + 2;
    }
    out.resize(old + static_cast<std::size_t>(w - begin));
}

void encode_base64(std::string_view data, std::string& out) {
    constexpr std::size_t kLineOctets = kMaxLine / 4 * 3; // 57
    const auto old = out.size();
    const auto lines = (data.size() + kLineOctets - 1) / kLineOctets;
    out.resize(old + (data.size() + 2) / 3 * 4 + (lines > 0 ? (lines - 1) * 2 : 0));
    char* w = out.data() + old;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t left = data.size();
    while (left > 0) {
        const std::size_t take = std::min(left, kLineOctets);
        std::size_t i = 0;
        for (; i + 3 <= take; i += 3) {
            const std::uint32_t n = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) |
                                    std::uint32_t{p[i + 2]};
            *w++ = kBase64[(n >> 18) & 63];
            *w++ = kBase64[(n >> 12) & 63];
            *w++ = kBase64[(n >> 6) & 63];
            *w++ = kBase64[n & 63];
        }
        if (i < take) { // the last 1 or 2 octets of the data
            std::uint32_t n = std::uint32_t{p[i]} << 16;
            if (take - i == 2)
                n |= std::uint32_t{p[i + 1]} << 8;
            *w++ = kBase64[(n >> 18) & 63];
            *w++ = kBase64[(n >> 12) & 63];
            *w++ = take - i == 2 ? kBase64[(n >> 6) & 63] : '=';
            *w++ = '=';
        }
        p += take;
        left -= take;
        if (left > 0) {
            *w++ = '\r';
            *w++ = '\n';
        }
    }
}

bool is_crlf_text(std::string_view text) {
    const char* const begin = text.data();
    const char* const end = begin + text.size();
    for (const char* p = begin;
         (p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)))) !=
         nullptr;
         ++p)
        if (p == begin || p[-1] != '\r')
            return false;
    for (const char* p = begin;
         (p = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(end - p)))) !=
         nullptr;
         ++p)
        if (p + 1 == end || p[1] != '\n')
            return false;
    return true;
}

std::string to_crlf(std::string_view text) {
    if (is_crlf_text(text))
        return std::string(text);
    std::string out;
    out.reserve(text.size() + text.size() / 16 + 16);
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\r') {
            out += "\r\n";
            if (i + 1 < text.size() && text[i + 1] == '\n')
                ++i;
        } else if (c == '\n') {
            out += "\r\n";
        } else {
            out += c;
        }
    }
    return out;
}

} // namespace ember::personalize
