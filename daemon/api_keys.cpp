#include "daemon/api_keys.hpp"

#include "core/ascii.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace ember::daemon {
namespace {

using Digest = std::array<std::uint8_t, 32>;

Digest sha256(std::string_view data) {
    Digest out{};
    unsigned int size = 0;
    // One-shot EVP_Digest: no context to manage; cannot fail for SHA-256
    // short of memory exhaustion, in which case the all-zero digest matches
    // no configured key.
    if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1)
        out.fill(0);
    return out;
}

std::optional<Digest> parse_hex(std::string_view hex) {
    if (hex.size() != 64)
        return std::nullopt;
    Digest out{};
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        c = core::ascii_lower(c);
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < 32; ++i) {
        const int hi = nibble(hex[2 * i]);
        const int lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return out;
}

std::string base64url(const std::uint8_t* data, std::size_t size) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < size; ++i) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kAlphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        out += kAlphabet[(acc << (6 - bits)) & 0x3f];
    return out;
}

} // namespace

bool ApiKey::allows(std::string_view domain) const {
    for (const auto& d : domains) {
        if (d == "*" || core::ascii_iequals(d, domain))
            return true;
    }
    return false;
}

ApiKeys::ApiKeys(const std::vector<ApiKeyConfig>& config) {
    for (const auto& c : config) {
        const auto hash = parse_hex(c.hash);
        if (!hash)
            continue;
        ApiKey key;
        key.name = c.name;
        key.hash = *hash;
        for (const auto& d : c.domains)
            key.domains.push_back(core::ascii_lower(d));
        keys_.push_back(std::move(key));
    }
}

const ApiKey* ApiKeys::find_token(std::string_view token) const {
    if (token.empty())
        return nullptr;
    const auto digest = sha256(token);
    const ApiKey* found = nullptr;
    // Every key is compared: the time does not depend on which one matched.
    for (const auto& key : keys_) {
        if (CRYPTO_memcmp(digest.data(), key.hash.data(), digest.size()) == 0)
            found = &key;
    }
    return found;
}

const ApiKey* ApiKeys::authenticate(std::string_view authorization) const {
    // RFC 6750 2.1: credentials = "Bearer" 1*SP b64token.
    constexpr std::string_view kScheme = "bearer";
    if (authorization.size() <= kScheme.size() ||
        !core::ascii_iequals(authorization.substr(0, kScheme.size()), kScheme) ||
        authorization[kScheme.size()] != ' ')
        return nullptr;
    auto token = authorization.substr(kScheme.size());
    while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
    if (token.find_first_of(" \t") != std::string_view::npos)
        return nullptr;
    return find_token(token);
}

std::string token_hash_hex(std::string_view token) {
    const auto digest = sha256(token);
    std::string out;
    for (const auto b : digest)
        out += fmt::format("{:02x}", b);
    return out;
}

std::optional<std::string> new_token() {
    std::array<std::uint8_t, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
        return std::nullopt;
    return std::string(kTokenPrefix) + base64url(bytes.data(), bytes.size());
}

std::string api_key_toml(std::string_view name, std::string_view token,
                         const std::vector<std::string>& domains) {
    std::string list;
    for (const auto& d : domains)
        list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", d);
    return fmt::format("[[api_key]]\nname = \"{}\"\nhash = \"{}\"\ndomains = [{}]\n", name,
                       token_hash_hex(token), list);
}

} // namespace ember::daemon
