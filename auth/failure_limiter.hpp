#pragma once
// Per-client-IP limit on failed SMTP AUTH attempts ([smtp] auth_max_failures
// within auth_failure_window): a client with that many failures inside the
// sliding window is refused further AUTH until its oldest failure ages out.
// This is what keeps a password-guessing bot from trying thousands of
// passwords per hour from one address (Postfix does it with anvil, Dovecot
// with auth_failure_delay).
//
// Pure policy: the time is a parameter, no clock, no I/O. Not thread-safe:
// it lives on the I/O thread that runs the SMTP sessions.
//
// Memory is bounded whatever a client sends: each IP keeps at most
// max_failures timestamps, IPs whose failures all left the window are
// dropped as new failures arrive, and the number of tracked IPs is capped
// (the IP whose last failure is oldest is evicted first). The cap is
// min(max_tracked_ips, kTimestampBudget / max_failures), so even at
// max_failures = 1000 the table holds at most kTimestampBudget timestamps.

#include "core/net.hpp"
#include "core/units.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>

namespace ember::auth {

class FailureLimiter {
public:
    using TimePoint = std::chrono::steady_clock::time_point;

    static constexpr std::size_t kDefaultMaxTrackedIps = 65536;
    static constexpr std::size_t kTimestampBudget = std::size_t{1} << 20; // 8 MiB of time points

    // max_failures >= 1; a window of 0 never blocks.
    FailureLimiter(std::uint32_t max_failures, core::Duration window,
                   std::size_t max_tracked_ips = kDefaultMaxTrackedIps);

    // True when `ip` has at least max_failures failures in (now - window, now].
    [[nodiscard]] bool blocked(const core::IpAddress& ip, TimePoint now) const;
    void record_failure(const core::IpAddress& ip, TimePoint now);
    // New limits from a config reload; history is kept (trimmed to the new max).
    void reconfigure(std::uint32_t max_failures, core::Duration window);

    // IPs currently tracked (for tests and metrics).
    [[nodiscard]] std::size_t tracked() const { return entries_.size(); }
    // The effective cap on tracked IPs.
    [[nodiscard]] std::size_t capacity() const;

private:
    struct Entry {
        std::deque<TimePoint> failures;               // oldest first, at most max_failures_
        std::list<core::IpAddress>::iterator recency; // position in by_recency_
    };

    void prune_stale(TimePoint now);
    void evict_to_capacity();
    void erase(std::map<core::IpAddress, Entry>::iterator it);

    std::uint32_t max_failures_;
    core::Duration window_;
    std::size_t max_tracked_ips_;
    std::map<core::IpAddress, Entry> entries_;
    // Front: the IP whose latest failure is oldest. Time only moves forward,
    // so moving an IP to the back on each failure keeps this order.
    std::list<core::IpAddress> by_recency_;
};

} // namespace ember::auth
