#include "queue/retry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ember::queue {
namespace {

constexpr double kMaxJitter = 0.9;

// The top 53 bits as a double in [0, 1): every value exactly representable.
double unit_interval(std::uint64_t random) {
    return static_cast<double>(random >> 11) * 0x1.0p-53;
}

} // namespace

core::Duration next_delay(const RetryPolicy& policy, std::uint32_t attempts, std::uint64_t random) {
    const auto max = static_cast<double>(std::max(policy.max, kMinRetryDelay).count());
    const double factor = policy.factor >= 1.0 ? policy.factor : 1.0; // also catches NaN
    // Multiply step by step and stop at the cap: no pow() overflow however
    // many attempts a recipient has had.
    auto delay = static_cast<double>(policy.first.count());
    for (std::uint32_t n = 1; n < attempts && delay < max; ++n)
        delay *= factor;
    delay = std::min(delay, max);
    const double jitter = std::clamp(policy.jitter >= 0.0 ? policy.jitter : 0.0, 0.0, kMaxJitter);
    delay *= 1.0 + jitter * (2.0 * unit_interval(random) - 1.0);
    const auto ms = static_cast<core::Duration::rep>(std::llround(std::min(delay, max)));
    return std::max(core::Duration(ms), kMinRetryDelay);
}

std::int64_t expiry_ms(const RetryPolicy& policy, std::int64_t received_at_ms,
                       std::int64_t held_ms) {
    std::int64_t out = received_at_ms;
    for (const std::int64_t add :
         {policy.max_retry_time.count(), std::max<std::int64_t>(held_ms, 0)}) {
        if (__builtin_add_overflow(out, add, &out))
            return std::numeric_limits<std::int64_t>::max();
    }
    return out;
}

bool expired(const RetryPolicy& policy, std::int64_t received_at_ms, std::int64_t now_ms,
             std::int64_t held_ms) {
    return now_ms >= expiry_ms(policy, received_at_ms, held_ms);
}

} // namespace ember::queue
