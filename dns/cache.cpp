#include "dns/cache.hpp"

#include <algorithm>
#include <functional>

namespace ember::dns {

std::size_t Cache::KeyHash::operator()(const Key& k) const {
    return std::hash<std::string>{}(k.name) * 31 + static_cast<std::size_t>(k.type);
}

std::chrono::seconds Cache::lifetime(const AnyAnswer& answer) const {
    using std::chrono::duration_cast;
    using std::chrono::seconds;
    const seconds ttl(answer.ttl);
    switch (answer.status) {
    case Status::Ok:
        return std::min(ttl, duration_cast<seconds>(limits_.max_ttl));
    case Status::NxDomain:
    case Status::NoData:
        return std::min(ttl, duration_cast<seconds>(limits_.negative_ttl));
    case Status::ServFail:
    case Status::Timeout:
    case Status::Malformed:
        break;
    }
    return seconds(0);
}

std::optional<AnyAnswer> Cache::find(RecordType type, std::string_view name, TimePoint now) {
    const auto it = index_.find(Key{type, normalize_name(name)});
    if (it == index_.end())
        return std::nullopt;
    const auto entry = it->second;
    if (entry->expires <= now) {
        index_.erase(it);
        entries_.erase(entry);
        return std::nullopt;
    }
    entries_.splice(entries_.begin(), entries_, entry);
    AnyAnswer out = entry->answer;
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(entry->expires - now);
    out.ttl = static_cast<std::uint32_t>(left.count());
    return out;
}

void Cache::store(RecordType type, std::string_view name, const AnyAnswer& answer, TimePoint now) {
    const auto keep = lifetime(answer);
    if (limits_.entries == 0 || keep.count() <= 0)
        return;
    Key key{type, normalize_name(name)};
    if (const auto it = index_.find(key); it != index_.end()) {
        entries_.erase(it->second);
        index_.erase(it);
    }
    entries_.push_front(Entry{key, answer, now + keep});
    index_.emplace(std::move(key), entries_.begin());
    while (entries_.size() > limits_.entries) {
        index_.erase(entries_.back().key);
        entries_.pop_back();
    }
}

} // namespace ember::dns
