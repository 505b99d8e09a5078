#include "personalize/circuit_breaker.hpp"

namespace ember::personalize {

std::string_view breaker_state_name(BreakerState state) {
    switch (state) {
    case BreakerState::Closed:
        return "closed";
    case BreakerState::Open:
        return "open";
    case BreakerState::HalfOpen:
        return "half-open";
    }
    return "closed";
}

Admission CircuitBreaker::admit(TimePoint now) {
    switch (state_) {
    case BreakerState::Closed:
        return Admission::Normal;
    case BreakerState::Open:
        if (now < retry_at())
            return Admission::Denied;
        state_ = BreakerState::HalfOpen;
        return Admission::Probe;
    case BreakerState::HalfOpen:
        return Admission::Denied; // the probe is out: one at a time
    }
    return Admission::Denied;
}

void CircuitBreaker::record(Admission how, bool success, TimePoint now) {
    if (how == Admission::Probe) {
        if (success) {
            state_ = BreakerState::Closed;
            failures_ = 0;
        } else {
            open(now);
        }
        return;
    }
    if (how != Admission::Normal || state_ != BreakerState::Closed)
        return; // denied, or a straggler from before the circuit opened
    if (success) {
        failures_ = 0;
        return;
    }
    ++failures_;
    if (config_.failure_threshold != 0 && failures_ >= config_.failure_threshold)
        open(now);
}

void CircuitBreaker::open(TimePoint now) {
    state_ = BreakerState::Open;
    opened_at_ = now;
}

} // namespace ember::personalize
