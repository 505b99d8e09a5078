#pragma once
// The retry policy: how long a deferred recipient waits before its next
// attempt, and when a message has been queued too long to try again.
// Pure functions of their arguments (the caller passes the random input and
// the clock readings), so schedules are tested without sleeping.
//
// Schedule: attempt n (1 = the first attempt, which has just failed) waits
// first * factor^(n-1), capped at max, then scaled by a random factor in
// [1 - jitter, 1 + jitter) so that recipients deferred together (one busy
// receiver, one outage) do not all come back in the same second; the result
// never exceeds max and is never below kMinRetryDelay. Postfix's
// minimal_backoff_time/maximal_backoff_time double the same way.

#include "core/units.hpp"

#include <chrono>
#include <cstdint>

namespace ember::queue {

struct RetryPolicy {
    core::Duration first = std::chrono::minutes(5);       // wait after the first failed attempt
    double factor = 2.0;                                  // growth per attempt; below 1 counts as 1
    core::Duration max = std::chrono::hours(4);           // longest wait between attempts
    double jitter = 0.2;                                  // +/- fraction, clamped to [0, 0.9]
    core::Duration max_retry_time = std::chrono::days(5); // then deferred recipients fail
    core::Duration delay_warning = std::chrono::hours(4); // NOTIFY=DELAY DSN after; 0 = never
};

// A floor for a misconfigured (zero) first delay: never a busy retry loop.
inline constexpr core::Duration kMinRetryDelay = std::chrono::seconds(1);

// The wait after `attempts` attempts (0 counts as 1). `random` is uniform
// over all 64-bit values; 1 << 63 gives the unjittered delay.
[[nodiscard]] core::Duration next_delay(const RetryPolicy& policy, std::uint32_t attempts,
                                        std::uint64_t random);

// When a recipient's max_retry_time runs out: its message's arrival plus
// max_retry_time plus held_ms, the time the warm-up throttler held it back
// (core/outcome.hpp: a Throttled outcome is not an attempt and spends none
// of max_retry_time). Saturates rather than overflows.
[[nodiscard]] std::int64_t expiry_ms(const RetryPolicy& policy, std::int64_t received_at_ms,
                                     std::int64_t held_ms = 0);

// True once now_ms reached expiry_ms(). Like Postfix's
// maximal_queue_lifetime, max_retry_time 0 means a temporary failure is
// never retried.
[[nodiscard]] bool expired(const RetryPolicy& policy, std::int64_t received_at_ms,
                           std::int64_t now_ms, std::int64_t held_ms = 0);

} // namespace ember::queue
