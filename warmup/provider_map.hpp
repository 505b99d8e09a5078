#pragma once
// Which provider a destination belongs to. The recipient domain decides
// first (exact names through a hash map, then wildcard patterns in file
// order), then the MX host's patterns, then the catch-all. The MX host is
// often unknown when the scheduler first asks (DNS happens inside delivery),
// so the Engine remembers the MX a domain was delivered to (learn_mx) and
// later jobs for that domain use it. Pure; not thread-safe (the Engine's
// caller serializes access).

#include "warmup/config.hpp"
#include "warmup/state.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ember::warmup {

// Shell-style: '*' matches any run of characters (dots included), '?' one.
// Both sides are expected lowercase.
[[nodiscard]] bool glob_match(std::string_view pattern, std::string_view text);

enum class MatchedBy : std::uint8_t { Domain, Mx, CatchAll };

struct ProviderMatch {
    std::size_t index = 0; // into Config::providers
    MatchedBy by = MatchedBy::CatchAll;
    std::string pattern; // the pattern that matched; "" for the catch-all
};

class ProviderMap {
public:
    ProviderMap() = default;
    explicit ProviderMap(const Config& config);

    // `domain` and `mx_host` lowercase; `mx_host` may be "" (unknown).
    [[nodiscard]] ProviderMatch match(std::string_view domain, std::string_view mx_host) const;
    // True when the recipient domain alone decides (an MX cannot change it).
    [[nodiscard]] bool decided_by_domain(std::string_view domain) const;

private:
    [[nodiscard]] const ProviderMatch* by_domain(std::string_view domain,
                                                 ProviderMatch& scratch) const;

    StringMap<std::size_t> exact_;
    std::vector<std::pair<std::string, std::size_t>> domain_patterns_;
    std::vector<std::pair<std::string, std::size_t>> mx_patterns_;
    std::size_t catch_all_ = 0;
};

} // namespace ember::warmup
