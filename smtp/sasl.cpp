#include "smtp/sasl.hpp"

#include "smtp/address.hpp"

#include <array>
#include <cstdint>

namespace ember::smtp {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// RFC 4616 2: "up to and including 255 octets" per part.
constexpr std::size_t kMaxPlainPart = 255;

constexpr std::array<std::int8_t, 256> make_decode_table() {
    std::array<std::int8_t, 256> table{};
    for (auto& v : table)
        v = -1;
    for (std::size_t i = 0; i < kAlphabet.size(); ++i)
        table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    return table;
}

constexpr auto kDecode = make_decode_table();

} // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0)
        return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=')
        ++pad;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t bits = 0;
    for (std::size_t i = 0; i < text.size() - pad; ++i) {
        const auto v = kDecode[static_cast<unsigned char>(text[i])];
        if (v < 0)
            return std::nullopt; // includes an '=' before the end
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        if (i % 4 == 3) {
            out += static_cast<char>(bits >> 16);
            out += static_cast<char>((bits >> 8) & 0xFF);
            out += static_cast<char>(bits & 0xFF);
            bits = 0;
        }
    }
    if (pad == 1) { // 18 bits: two octets, the low 2 bits must be zero
        if ((bits & 0x3) != 0)
            return std::nullopt;
        out += static_cast<char>(bits >> 10);
        out += static_cast<char>((bits >> 2) & 0xFF);
    } else if (pad == 2) { // 12 bits: one octet, the low 4 bits must be zero
        if ((bits & 0xF) != 0)
            return std::nullopt;
        out += static_cast<char>(bits >> 4);
    }
    return out;
}

std::string base64_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const auto b = (std::uint32_t{static_cast<unsigned char>(data[i])} << 16) |
                       (std::uint32_t{static_cast<unsigned char>(data[i + 1])} << 8) |
                       std::uint32_t{static_cast<unsigned char>(data[i + 2])};
        for (int shift = 18; shift >= 0; shift -= 6)
            out += kAlphabet[(b >> shift) & 0x3F];
    }
    const auto rest = data.size() - i;
    if (rest > 0) {
        std::uint32_t b = std::uint32_t{static_cast<unsigned char>(data[i])} << 16;
        if (rest == 2)
            b |= std::uint32_t{static_cast<unsigned char>(data[i + 1])} << 8;
        out += kAlphabet[(b >> 18) & 0x3F];
        out += kAlphabet[(b >> 12) & 0x3F];
        out += rest == 2 ? kAlphabet[(b >> 6) & 0x3F] : '=';
        out += '=';
    }
    return out;
}

std::optional<PlainCredentials> decode_plain(std::string_view base64) {
    const auto message = base64_decode(base64);
    if (!message)
        return std::nullopt;
    const std::string_view m(*message);
    const auto nul1 = m.find('\0');
    const auto nul2 = nul1 == std::string_view::npos ? nul1 : m.find('\0', nul1 + 1);
    if (nul2 == std::string_view::npos || m.find('\0', nul2 + 1) != std::string_view::npos)
        return std::nullopt;
    PlainCredentials c{std::string(m.substr(0, nul1)),
                       std::string(m.substr(nul1 + 1, nul2 - nul1 - 1)),
                       std::string(m.substr(nul2 + 1))};
    if (c.authcid.empty() || c.password.empty() || c.authzid.size() > kMaxPlainPart ||
        c.authcid.size() > kMaxPlainPart || c.password.size() > kMaxPlainPart ||
        !is_valid_utf8(c.authzid) || !is_valid_utf8(c.authcid))
        return std::nullopt;
    return c;
}

std::string encode_plain(const PlainCredentials& credentials) {
    std::string message = credentials.authzid;
    message += '\0';
    message += credentials.authcid;
    message += '\0';
    message += credentials.password;
    return base64_encode(message);
}

} // namespace ember::smtp
