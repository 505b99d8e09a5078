#include "auth/failure_limiter.hpp"

#include "core/assert.hpp"

#include <algorithm>

namespace ember::auth {

FailureLimiter::FailureLimiter(std::uint32_t max_failures, core::Duration window,
                               std::size_t max_tracked_ips)
    : max_failures_(max_failures), window_(window), max_tracked_ips_(max_tracked_ips) {
    EMBER_ASSERT(max_failures_ >= 1);
    EMBER_ASSERT(max_tracked_ips_ >= 1);
}

std::size_t FailureLimiter::capacity() const {
    return std::max<std::size_t>(1, std::min(max_tracked_ips_, kTimestampBudget / max_failures_));
}

bool FailureLimiter::blocked(const core::IpAddress& ip, TimePoint now) const {
    const auto it = entries_.find(ip);
    if (it == entries_.end())
        return false;
    const auto& failures = it->second.failures;
    const auto inside = std::count_if(failures.begin(), failures.end(),
                                      [&](TimePoint t) { return now - t < window_; });
    return static_cast<std::uint64_t>(inside) >= max_failures_;
}

void FailureLimiter::record_failure(const core::IpAddress& ip, TimePoint now) {
    prune_stale(now);
    auto it = entries_.find(ip);
    if (it == entries_.end()) {
        by_recency_.push_back(ip);
        it = entries_.emplace(ip, Entry{{}, std::prev(by_recency_.end())}).first;
    } else {
        by_recency_.splice(by_recency_.end(), by_recency_, it->second.recency);
    }
    auto& failures = it->second.failures;
    failures.push_back(now);
    // Only the newest max_failures can ever decide blocked().
    while (failures.size() > max_failures_)
        failures.pop_front();
    evict_to_capacity();
}

void FailureLimiter::reconfigure(std::uint32_t max_failures, core::Duration window) {
    EMBER_ASSERT(max_failures >= 1);
    max_failures_ = max_failures;
    window_ = window;
    for (auto& [ip, entry] : entries_) {
        while (entry.failures.size() > max_failures_)
            entry.failures.pop_front();
    }
    evict_to_capacity();
}

// IPs whose newest failure has left the window can no longer be blocked.
void FailureLimiter::prune_stale(TimePoint now) {
    while (!by_recency_.empty()) {
        const auto it = entries_.find(by_recency_.front());
        EMBER_ASSERT(it != entries_.end());
        if (now - it->second.failures.back() < window_)
            return;
        erase(it);
    }
}

void FailureLimiter::evict_to_capacity() {
    const auto cap = capacity();
    while (entries_.size() > cap)
        erase(entries_.find(by_recency_.front()));
}

void FailureLimiter::erase(std::map<core::IpAddress, Entry>::iterator it) {
    by_recency_.erase(it->second.recency);
    entries_.erase(it);
}

} // namespace ember::auth
