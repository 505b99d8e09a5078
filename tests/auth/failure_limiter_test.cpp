#include "auth/failure_limiter.hpp"

#include <doctest/doctest.h>

using ember::auth::FailureLimiter;
using ember::core::IpAddress;
using namespace std::chrono_literals;

namespace {

IpAddress ip(const char* text) {
    const auto a = IpAddress::parse(text);
    REQUIRE(a);
    return *a;
}

// A manual clock: tests move time explicitly, nothing sleeps.
struct ManualClock {
    FailureLimiter::TimePoint now{std::chrono::hours(1000)};
    void advance(std::chrono::milliseconds d) { now += d; }
};

} // namespace

TEST_CASE("an IP is blocked after max_failures failures inside the window, not before") {
    FailureLimiter limiter(3, 10min);
    ManualClock clock;
    const auto client = ip("192.0.2.7");
    for (int i = 0; i < 2; ++i) {
        limiter.record_failure(client, clock.now);
        clock.advance(1s);
    }
    CHECK_FALSE(limiter.blocked(client, clock.now));
    limiter.record_failure(client, clock.now);
    CHECK(limiter.blocked(client, clock.now));
    CHECK_FALSE(limiter.blocked(ip("192.0.2.8"), clock.now));
}

TEST_CASE("a blocked IP is let in again once its oldest failure slides out of the window") {
    FailureLimiter limiter(3, 10min);
    ManualClock clock;
    const auto client = ip("2001:db8::1");
    const auto first = clock.now;
    limiter.record_failure(client, clock.now);
    clock.advance(5min);
    limiter.record_failure(client, clock.now);
    limiter.record_failure(client, clock.now);
    CHECK(limiter.blocked(client, clock.now));

    // The first failure is exactly window old: it no longer counts.
    CHECK(limiter.blocked(client, first + 10min - 1ms));
    CHECK_FALSE(limiter.blocked(client, first + 10min));

    // One more failure inside the window blocks again.
    limiter.record_failure(client, first + 10min);
    CHECK(limiter.blocked(client, first + 10min));
    CHECK_FALSE(limiter.blocked(client, first + 15min));
}

TEST_CASE("IPv4-mapped IPv6 clients count as their IPv4 address") {
    FailureLimiter limiter(2, 1min);
    ManualClock clock;
    limiter.record_failure(ip("::ffff:198.51.100.1"), clock.now);
    limiter.record_failure(ip("198.51.100.1"), clock.now);
    CHECK(limiter.blocked(ip("198.51.100.1"), clock.now));
}

TEST_CASE("IPs whose failures left the window are forgotten when new failures arrive") {
    FailureLimiter limiter(5, 1min);
    ManualClock clock;
    limiter.record_failure(ip("192.0.2.1"), clock.now);
    limiter.record_failure(ip("192.0.2.2"), clock.now);
    CHECK(limiter.tracked() == 2);
    clock.advance(2min);
    limiter.record_failure(ip("192.0.2.3"), clock.now);
    CHECK(limiter.tracked() == 1);
}

TEST_CASE("the number of tracked IPs is capped, evicting the one whose last failure is oldest") {
    FailureLimiter limiter(2, 1h, 3);
    ManualClock clock;
    const auto a = ip("192.0.2.1");
    const auto b = ip("192.0.2.2");
    const auto c = ip("192.0.2.3");
    const auto d = ip("192.0.2.4");
    limiter.record_failure(a, clock.now);
    clock.advance(1s);
    limiter.record_failure(b, clock.now);
    clock.advance(1s);
    limiter.record_failure(c, clock.now);
    clock.advance(1s);
    limiter.record_failure(a, clock.now); // a is now the freshest; b the stalest
    CHECK(limiter.blocked(a, clock.now));
    clock.advance(1s);
    limiter.record_failure(d, clock.now);
    CHECK(limiter.tracked() == 3);
    // b was evicted: one more failure does not reach the limit of 2.
    limiter.record_failure(b, clock.now);
    CHECK_FALSE(limiter.blocked(b, clock.now));
    CHECK(limiter.tracked() == 3);
}

TEST_CASE("many distinct IPs never grow the table past its cap") {
    FailureLimiter limiter(5, 1h, 1000);
    ManualClock clock;
    for (unsigned i = 0; i < 5000; ++i) {
        const auto addr =
            IpAddress::v4({10, static_cast<std::uint8_t>(i >> 16),
                           static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)});
        limiter.record_failure(addr, clock.now);
        clock.advance(1ms);
    }
    CHECK(limiter.tracked() == 1000);
}

TEST_CASE("a high failure limit lowers the IP cap so the timestamps stay within budget") {
    FailureLimiter limiter(1000, 1h);
    CHECK(limiter.capacity() == FailureLimiter::kTimestampBudget / 1000);
    FailureLimiter small(5, 1h);
    CHECK(small.capacity() == FailureLimiter::kDefaultMaxTrackedIps);
}

TEST_CASE("reconfigure applies the new limit and window to the history already recorded") {
    FailureLimiter limiter(5, 10min);
    ManualClock clock;
    const auto client = ip("203.0.113.9");
    for (int i = 0; i < 3; ++i)
        limiter.record_failure(client, clock.now);
    CHECK_FALSE(limiter.blocked(client, clock.now));
    limiter.reconfigure(3, 10min);
    CHECK(limiter.blocked(client, clock.now));
    limiter.reconfigure(3, 1min);
    CHECK_FALSE(limiter.blocked(client, clock.now + 1min));
    limiter.reconfigure(2, 10min);
    CHECK(limiter.blocked(client, clock.now + 1min));
}
