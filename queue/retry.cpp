#include "queue/retry.hpp"

#include <algorithm>
#include <cmath>

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

bool expired(const RetryPolicy& policy, std::int64_t received_at_ms, std::int64_t now_ms) {
    return now_ms - received_at_ms >= policy.max_retry_time.count();
}

} // namespace ember::queue
