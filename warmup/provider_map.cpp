#include "warmup/provider_map.hpp"

namespace ember::warmup {

bool glob_match(std::string_view pattern, std::string_view text) {
    // Iterative matcher with one backtrack point: linear in practice for the
    // short patterns of warmup.toml, and never recursive.
    std::size_t p = 0, t = 0;
    std::size_t star = std::string_view::npos, resume = 0;
    while (t < text.size()) {
        if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
            ++p;
            ++t;
        } else if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*')
        ++p;
    return p == pattern.size();
}

ProviderMap::ProviderMap(const Config& config) {
    for (std::size_t i = 0; i < config.providers.size(); ++i) {
        const auto& p = config.providers[i];
        if (p.catch_all())
            catch_all_ = i;
        for (const auto& d : p.domains) {
            if (d.find_first_of("*?") == std::string::npos)
                exact_.emplace(d, i);
            else
                domain_patterns_.emplace_back(d, i);
        }
        for (const auto& m : p.mx)
            mx_patterns_.emplace_back(m, i);
    }
}

const ProviderMatch* ProviderMap::by_domain(std::string_view domain, ProviderMatch& scratch) const {
    if (const auto it = exact_.find(domain); it != exact_.end()) {
        scratch = {it->second, MatchedBy::Domain, it->first};
        return &scratch;
    }
    for (const auto& [pattern, index] : domain_patterns_) {
        if (glob_match(pattern, domain)) {
            scratch = {index, MatchedBy::Domain, pattern};
            return &scratch;
        }
    }
    return nullptr;
}

bool ProviderMap::decided_by_domain(std::string_view domain) const {
    ProviderMatch scratch;
    return by_domain(domain, scratch) != nullptr;
}

ProviderMatch ProviderMap::match(std::string_view domain, std::string_view mx_host) const {
    ProviderMatch scratch;
    if (const auto* m = by_domain(domain, scratch))
        return *m;
    if (!mx_host.empty()) {
        for (const auto& [pattern, index] : mx_patterns_) {
            if (glob_match(pattern, mx_host))
                return {index, MatchedBy::Mx, pattern};
        }
    }
    return {catch_all_, MatchedBy::CatchAll, ""};
}

} // namespace ember::warmup
