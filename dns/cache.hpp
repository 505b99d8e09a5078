#pragma once
// The resolver's answer cache: keyed by (record type, normalized name),
// bounded to `entries` with least-recently-used eviction. What it keeps:
//   - Ok answers for their TTL, capped at max_ttl;
//   - NXDOMAIN and NoData for their SOA-derived TTL (RFC 2308 5), capped at
//     negative_ttl;
//   - never temporary failures (SERVFAIL, timeout, malformed), and never a
//     TTL of 0 (RFC 1035 3.2.1: "not cached"; RFC 2308 5: no SOA, no cache).
// Pure: the caller passes `now` (a steady clock), so tests use a manual one.
// Not thread-safe; the resolver uses it from its one executor.

#include "core/units.hpp"
#include "dns/record.hpp"

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ember::dns {

struct CacheLimits {
    std::size_t entries = 100000; // 0 keeps nothing
    core::Duration max_ttl = std::chrono::hours(1);
    core::Duration negative_ttl = std::chrono::minutes(5);
};

class Cache {
public:
    using TimePoint = std::chrono::steady_clock::time_point;

    explicit Cache(CacheLimits limits) : limits_(limits) {}

    // The live answer with its TTL counted down to `now` (whole seconds);
    // nullopt when absent or expired. A hit makes the entry most recent.
    [[nodiscard]] std::optional<AnyAnswer> find(RecordType type, std::string_view name,
                                                TimePoint now);
    // Keeps the answer when the rules above allow it, replacing any older one.
    void store(RecordType type, std::string_view name, const AnyAnswer& answer, TimePoint now);

    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    struct Key {
        RecordType type;
        std::string name;
        friend bool operator==(const Key&, const Key&) = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const;
    };
    struct Entry {
        Key key;
        AnyAnswer answer;
        TimePoint expires;
    };

    // How long an answer may be kept; zero means not at all.
    [[nodiscard]] std::chrono::seconds lifetime(const AnyAnswer& answer) const;

    CacheLimits limits_;
    std::list<Entry> entries_; // most recently used first
    std::unordered_map<Key, std::list<Entry>::iterator, KeyHash> index_;
};

} // namespace ember::dns
