#pragma once
// A circuit breaker for the external hook: after `failure_threshold`
// consecutive failures it opens and ember stops calling the hook (each
// message follows on_error at once instead of waiting for a timeout per
// batch); after `cool_down` one probe request is let through (half-open):
// its success closes the circuit, its failure opens it for another
// cool-down. The pattern of Nygard's "Release It!", as Envoy's outlier
// detection and resilience4j apply it, with one probe at a time.
//
// A pure state machine: `now` is an argument (steady time), so tests drive
// it with a manual clock. Not thread-safe: the hook client uses it from its
// one executor.
//
// Results of requests admitted while closed that arrive after the circuit
// opened (stragglers) change nothing: only the probe decides a half-open
// circuit. failure_threshold 0 disables the breaker (always closed).

#include "core/units.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>

namespace ember::personalize {

struct BreakerConfig {
    std::uint32_t failure_threshold = 5;
    core::Duration cool_down = std::chrono::seconds(30);
};

enum class BreakerState : std::uint8_t { Closed, Open, HalfOpen };
// "closed", "open", "half-open".
[[nodiscard]] std::string_view breaker_state_name(BreakerState state);

// How a request was let through, to be handed back with its result.
enum class Admission : std::uint8_t { Denied, Normal, Probe };

class CircuitBreaker {
public:
    using TimePoint = std::chrono::steady_clock::time_point;

    explicit CircuitBreaker(BreakerConfig config = {}) : config_(config) {}

    // May a request go now? Moves an open circuit whose cool-down is over
    // to half-open and admits that one request as the probe.
    [[nodiscard]] Admission admit(TimePoint now);
    // The outcome of a request admitted as `how`.
    void record(Admission how, bool success, TimePoint now);

    [[nodiscard]] BreakerState state() const { return state_; }
    [[nodiscard]] std::uint32_t consecutive_failures() const { return failures_; }
    // When an open circuit will let a probe through.
    [[nodiscard]] TimePoint retry_at() const { return opened_at_ + config_.cool_down; }

private:
    void open(TimePoint now);

    BreakerConfig config_;
    BreakerState state_ = BreakerState::Closed;
    std::uint32_t failures_ = 0;
    TimePoint opened_at_{};
};

} // namespace ember::personalize
