#include "queue/retry.hpp"

#include <doctest/doctest.h>

#include <fmt/core.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace ember;
using namespace ember::queue;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kNoJitter = std::uint64_t{1} << 63; // the middle of the range
constexpr std::uint64_t kLowest = 0;
constexpr std::uint64_t kHighest = std::numeric_limits<std::uint64_t>::max();

std::string schedule_of(const RetryPolicy& p, std::uint32_t attempts, std::uint64_t random) {
    std::string out;
    for (std::uint32_t n = 1; n <= attempts; ++n)
        out += fmt::format("{}:{} ", n, core::format_duration(next_delay(p, n, random)));
    return out;
}

} // namespace

TEST_CASE("the default schedule doubles from 5m and stays at 4h") {
    const RetryPolicy p;
    const auto got = schedule_of(p, 10, kNoJitter);
    const std::string want = "1:5m 2:10m 3:20m 4:40m 5:80m 6:160m 7:4h 8:4h 9:4h 10:4h ";
    CAPTURE(got);
    CAPTURE(want);
    CHECK(got == want);
}

TEST_CASE("a custom policy's schedule follows first, factor and max") {
    struct Case {
        core::Duration first;
        double factor;
        core::Duration max;
        const char* want;
    };
    const Case cases[] = {
        {1min, 3.0, 1h, "1:1m 2:3m 3:9m 4:27m 5:1h 6:1h "},
        {30s, 1.0, 1h, "1:30s 2:30s 3:30s 4:30s 5:30s 6:30s "},
        {30s, 0.5, 1h, "1:30s 2:30s 3:30s 4:30s 5:30s 6:30s "}, // below 1 counts as 1
        {2h, 2.0, 1h, "1:1h 2:1h 3:1h 4:1h 5:1h 6:1h "},        // first over max: max
        {0ms, 2.0, 1h, "1:1s 2:1s 3:1s 4:1s 5:1s 6:1s "},       // never a busy loop
        {10min, 1.5, 2h, "1:10m 2:15m 3:1350s 4:2025s 5:3037500ms 6:4556250ms "},
    };
    for (const auto& c : cases) {
        RetryPolicy p;
        p.first = c.first;
        p.factor = c.factor;
        p.max = c.max;
        const auto got = schedule_of(p, 6, kNoJitter);
        const std::string want = c.want;
        CAPTURE(core::format_duration(c.first));
        CAPTURE(c.factor);
        CAPTURE(got);
        CAPTURE(want);
        CHECK(got == want);
    }
}

TEST_CASE("zero attempts count as one") {
    const RetryPolicy p;
    CHECK(next_delay(p, 0, kNoJitter) == next_delay(p, 1, kNoJitter));
}

TEST_CASE("jitter spreads a delay over plus or minus its fraction and never past max") {
    RetryPolicy p; // jitter 0.2
    struct Case {
        std::uint32_t attempts;
        std::uint64_t random;
        core::Duration want;
    };
    const Case cases[] = {
        {1, kLowest, 4min},                // 5m * 0.8
        {1, kHighest, 6min},               // 5m * 1.2, rounded to the ms
        {2, kLowest, 8min},                // 10m * 0.8
        {20, kLowest, 192min},             // 4h * 0.8
        {20, kHighest, 4h},                // 4h * 1.2 is capped at max
        {1, std::uint64_t{3} << 62, 330s}, // 5m * 1.1
    };
    for (const auto& c : cases) {
        CAPTURE(c.attempts);
        CAPTURE(c.random);
        const auto got = next_delay(p, c.attempts, c.random);
        CAPTURE(core::format_duration(got));
        CHECK(got == c.want);
    }
}

TEST_CASE("random inputs keep every delay inside its jitter band and the bands use their width") {
    RetryPolicy p;
    std::mt19937_64 rng(99);
    for (std::uint32_t attempts = 1; attempts <= 12; ++attempts) {
        const auto base = next_delay(p, attempts, kNoJitter);
        auto low = base;
        auto high = base;
        for (int i = 0; i < 500; ++i) {
            const auto d = next_delay(p, attempts, rng());
            low = std::min(low, d);
            high = std::max(high, d);
        }
        CAPTURE(attempts);
        CAPTURE(core::format_duration(low));
        CAPTURE(core::format_duration(high));
        CHECK(low >= base * 8 / 10);
        CHECK(high <= std::min<core::Duration>(base * 12 / 10, p.max));
        CHECK(low < base); // the band is used, not a constant
    }
}

TEST_CASE("jitter 0 gives the exact schedule whatever the random input") {
    RetryPolicy p;
    p.jitter = 0;
    for (const auto random : {kLowest, kNoJitter, kHighest}) {
        CAPTURE(random);
        CHECK(schedule_of(p, 8, random) == schedule_of(p, 8, kNoJitter));
    }
}

TEST_CASE("a huge attempt count neither overflows nor passes max") {
    const RetryPolicy p;
    CHECK(next_delay(p, std::numeric_limits<std::uint32_t>::max(), kNoJitter) == 4h);
    RetryPolicy fast;
    fast.factor = 1e300;
    CHECK(next_delay(fast, 5, kNoJitter) == 4h);
}

TEST_CASE("a message expires once it has been queued for max_retry_time") {
    const RetryPolicy p; // 5d
    const std::int64_t received = 1'700'000'000'000;
    const std::int64_t five_days = 5LL * 24 * 3600 * 1000;
    struct Case {
        std::int64_t now;
        bool want;
    };
    const Case cases[] = {{received, false},
                          {received + five_days - 1, false},
                          {received + five_days, true},
                          {received + five_days + 1, true},
                          {received - 1000, false}}; // a clock behind the record
    for (const auto& c : cases) {
        CAPTURE(c.now - received);
        CHECK(expired(p, received, c.now) == c.want);
    }
}

TEST_CASE("max_retry_time 0 expires a message at its first deferral, like Postfix") {
    RetryPolicy p;
    p.max_retry_time = 0ms;
    CHECK(expired(p, 1000, 1000));
}
