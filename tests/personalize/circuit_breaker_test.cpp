#include "personalize/circuit_breaker.hpp"

#include <doctest/doctest.h>

#include <chrono>

using namespace ember::personalize;
using std::chrono::seconds;

namespace {

// The injected clock: a steady time point the test moves by hand.
struct ManualClock {
    CircuitBreaker::TimePoint now{};
    void advance(std::chrono::milliseconds d) { now += d; }
};

BreakerConfig config(std::uint32_t threshold, seconds cool_down) {
    BreakerConfig c;
    c.failure_threshold = threshold;
    c.cool_down = cool_down;
    return c;
}

void fail(CircuitBreaker& b, ManualClock& clock, int times) {
    for (int i = 0; i < times; ++i) {
        const auto how = b.admit(clock.now);
        REQUIRE(how == Admission::Normal);
        b.record(how, false, clock.now);
    }
}

} // namespace

TEST_CASE("the circuit opens after the threshold of consecutive failures") {
    ManualClock clock;
    CircuitBreaker b(config(3, seconds(30)));
    fail(b, clock, 2);
    CHECK(b.state() == BreakerState::Closed);
    fail(b, clock, 1);
    CHECK(b.state() == BreakerState::Open);
    CHECK(b.admit(clock.now) == Admission::Denied);
}

TEST_CASE("a success in between resets the count of consecutive failures") {
    ManualClock clock;
    CircuitBreaker b(config(3, seconds(30)));
    fail(b, clock, 2);
    b.record(b.admit(clock.now), true, clock.now);
    CHECK(b.consecutive_failures() == 0);
    fail(b, clock, 2);
    CHECK(b.state() == BreakerState::Closed);
}

TEST_CASE("after the cool-down one probe goes; its success closes the circuit") {
    ManualClock clock;
    CircuitBreaker b(config(2, seconds(30)));
    fail(b, clock, 2);
    clock.advance(seconds(29));
    CHECK(b.admit(clock.now) == Admission::Denied);
    clock.advance(seconds(1));
    const auto probe = b.admit(clock.now);
    CHECK(probe == Admission::Probe);
    CHECK(b.state() == BreakerState::HalfOpen);
    CHECK(b.admit(clock.now) == Admission::Denied); // one probe at a time
    b.record(probe, true, clock.now);
    CHECK(b.state() == BreakerState::Closed);
    CHECK(b.admit(clock.now) == Admission::Normal);
}

TEST_CASE("a failed probe opens the circuit for another cool-down") {
    ManualClock clock;
    CircuitBreaker b(config(1, seconds(10)));
    fail(b, clock, 1);
    clock.advance(seconds(10));
    const auto probe = b.admit(clock.now);
    REQUIRE(probe == Admission::Probe);
    clock.advance(seconds(2));
    b.record(probe, false, clock.now);
    CHECK(b.state() == BreakerState::Open);
    clock.advance(seconds(9));
    CHECK(b.admit(clock.now) == Admission::Denied);
    clock.advance(seconds(1));
    CHECK(b.admit(clock.now) == Admission::Probe);
}

TEST_CASE("results of requests admitted before the circuit opened change nothing") {
    ManualClock clock;
    CircuitBreaker b(config(2, seconds(10)));
    const auto straggler = b.admit(clock.now);
    fail(b, clock, 2);
    REQUIRE(b.state() == BreakerState::Open);
    b.record(straggler, true, clock.now);
    CHECK(b.state() == BreakerState::Open);
    clock.advance(seconds(10));
    const auto probe = b.admit(clock.now);
    b.record(straggler, true, clock.now);
    CHECK(b.state() == BreakerState::HalfOpen);
    b.record(probe, true, clock.now);
    CHECK(b.state() == BreakerState::Closed);
}

TEST_CASE("a threshold of zero never opens the circuit") {
    ManualClock clock;
    CircuitBreaker b(config(0, seconds(10)));
    fail(b, clock, 100);
    CHECK(b.state() == BreakerState::Closed);
    CHECK(breaker_state_name(b.state()) == "closed");
}
