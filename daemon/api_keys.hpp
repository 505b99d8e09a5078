#pragma once
// Bearer keys for the injection API (ember-api(7)): a request carries
// "Authorization: Bearer TOKEN"; the key is the [[api_key]] whose hash is
// SHA-256(TOKEN). Each key names the sending domains (From: domains) it may
// use; "*" is any. Tokens are never stored or logged, only their hashes.
//
// The comparison is constant-time: the presented token is hashed and
// compared with every configured hash (CRYPTO_memcmp, no early exit), so
// neither the position of a match nor a common prefix shows in the timing.
//
// An ApiKeys is immutable once built; reload builds a new one and swaps a
// shared_ptr. Thread-safe.

#include "daemon/api_config.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

// Tokens `emberctl api-key new` prints: "ek_" and 43 base64url characters
// (256 random bits).
inline constexpr std::string_view kTokenPrefix = "ek_";

struct ApiKey {
    std::string name;
    std::array<std::uint8_t, 32> hash{};
    std::vector<std::string> domains; // lowercased; "*" = any

    // The From: domain (lowercased) is one this key may send as.
    [[nodiscard]] bool allows(std::string_view domain) const;
};

class ApiKeys {
public:
    ApiKeys() = default;
    // Keys whose hash is not 64 hex digits are skipped (the config refuses them).
    explicit ApiKeys(const std::vector<ApiKeyConfig>& config);

    [[nodiscard]] bool empty() const { return keys_.empty(); }
    [[nodiscard]] const std::vector<ApiKey>& keys() const { return keys_; }

    // The key an Authorization field value ("Bearer TOKEN", scheme
    // case-insensitive, RFC 6750 2.1) names; nullptr when the value is not
    // a bearer credential or no key matches.
    [[nodiscard]] const ApiKey* authenticate(std::string_view authorization) const;
    [[nodiscard]] const ApiKey* find_token(std::string_view token) const;

private:
    std::vector<ApiKey> keys_;
};

// SHA-256 of the token as 64 lowercase hex digits (what [[api_key]] hash holds).
[[nodiscard]] std::string token_hash_hex(std::string_view token);
// A fresh token from the system CSPRNG; nullopt when it fails.
[[nodiscard]] std::optional<std::string> new_token();
// The [[api_key]] block for ember.toml (the token itself is not in it).
[[nodiscard]] std::string api_key_toml(std::string_view name, std::string_view token,
                                       const std::vector<std::string>& domains);

} // namespace ember::daemon
