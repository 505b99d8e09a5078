#pragma once
// The injection API's configuration: [[api_key]] entries (ember.toml(5),
// ember-api(7)). A key is stored as the SHA-256 of its token, so the config
// file never holds a secret that works against the API; `emberctl api-key
// new` prints a fresh token and the block to paste. Plain data.

#include <string>
#include <vector>

namespace ember::daemon {

struct ApiKeyConfig {
    std::string name;                 // for logs and Received:; unique
    std::string hash;                 // sha256 of the token, 64 lowercase hex digits
    std::vector<std::string> domains; // sending domains it may use, lowercased; "*" = any
};

} // namespace ember::daemon
