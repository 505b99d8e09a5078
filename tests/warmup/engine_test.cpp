#include "warmup/engine.hpp"

#include "tests/warmup/support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <map>

using namespace ember;
using namespace ember::warmup;
using namespace std::chrono_literals;
using std::chrono::days;
using std::chrono::hours;
using std::chrono::minutes;
using warmup::test::at;
using warmup::test::config_from;

namespace {

// Admits until the first wait (or `limit`); returns how many went.
std::uint64_t admit_all(Engine& e, const Key& k, TimePoint now, std::uint64_t limit = 1'000'000) {
    std::uint64_t n = 0;
    while (n < limit && e.admit(k, now).allowed)
        ++n;
    return n;
}

std::size_t count_events(const std::vector<Event>& events, EventType type) {
    return static_cast<std::size_t>(std::count_if(
        events.begin(), events.end(), [type](const Event& e) { return e.type == type; }));
}

KeyStatus status_of(const Engine& e, const Key& k, TimePoint now) {
    for (auto& s : e.status(k.sending_domain, now)) {
        if (s.key == k)
            return s;
    }
    FAIL("no status for " << k.to_string());
    return {};
}

const char* const kRamp = R"(
[schedule.ramp]
caps = [1000, 2000, 3000, 4000]

[[sender]]
domain = "news.example.com"
schedule = "ramp"
start = 2026-03-01

[[provider]]
name = "gmail"
domains = ["gmail.com"]

[[provider]]
name = "other"
)";

const char* const kBackoff = R"(
[defaults]
recovery_step = "10%"
recovery_interval = "10m"

[[provider]]
name = "gmail"
domains = ["gmail.com"]
max_rate = "60/min"

[[provider]]
name = "microsoft"
domains = ["outlook.com"]

[[provider]]
name = "other"

[[rule]]
provider = "gmail"
code = "421"
enhanced = "4\\.7\\.28"
action = "backoff"
factor = 0.5
duration = "1h"

[[rule]]
provider = "gmail"
enhanced = "4\\.2\\.1"
action = "retry-later"

[[rule]]
provider = "microsoft"
code = "550"
text = "(?i)block list"
action = "suspend"
duration = "4h"

[[rule]]
code = "421"
action = "backoff"
factor = 0.5
duration = "30m"
)";

} // namespace

TEST_CASE("a 30-day schedule fed a constant stream sends exactly each day's cap per provider") {
    Engine engine(config_from(R"(
[schedule.thirty]
caps = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150,
        160, 170, 180, 190, 200, 210, 220, 230, 240, 250, 260, 270, 280, 290, 300]

[[sender]]
domain = "news.example.com"
schedule = "thirty"
start = 2026-03-01

[[provider]]
name = "gmail"
domains = ["gmail.com"]
share = "40%"

[[provider]]
name = "yahoo"
domains = ["yahoo.com"]
share = "60%"
)"));
    const auto gmail = engine.key("news.example.com", "gmail.com");
    const auto yahoo = engine.key("news.example.com", "yahoo.com");
    // Two recipients a minute per provider join each one's queue, which
    // drains as far as admit() lets it: 2880 a day, far over every cap.
    std::map<std::string, std::uint64_t> backlog;
    const auto start = at("2026-03-01T00:00:00Z");
    for (int day = 1; day <= 30; ++day) {
        std::map<std::string, std::uint64_t> sent;
        for (int minute = 0; minute < 1440; ++minute) {
            const auto now = start + days(day - 1) + minutes(minute);
            for (const auto* k : {&gmail, &yahoo}) {
                backlog[k->provider] += 2;
                while (backlog[k->provider] > 0) {
                    const auto a = engine.admit(*k, now);
                    if (!a.allowed) {
                        CHECK(a.reason == WaitReason::Cap);
                        CHECK(a.until == start + days(day)); // the next UTC midnight
                        break;
                    }
                    --backlog[k->provider];
                    ++sent[k->provider];
                }
            }
        }
        CAPTURE(day);
        CHECK(sent["gmail"] == static_cast<std::uint64_t>(day * 10 * 4 / 10));
        CHECK(sent["yahoo"] == static_cast<std::uint64_t>(day * 10 * 6 / 10));
    }
    const auto events = engine.take_events();
    CHECK(count_events(events, EventType::CapReached) == 60);
    CHECK(count_events(events, EventType::RampAdvanced) == 29);
    CHECK(count_events(events, EventType::RampHeld) == 0);
}

TEST_CASE("with hourly spread each hour sends its share and the day still sends its whole cap") {
    Engine engine(config_from(R"(
[schedule.spread]
caps = [1000]
after = "steady"
spread = "hourly"

[[sender]]
domain = "news.example.com"
schedule = "spread"
start = 2026-03-01
)"));
    const auto k = engine.key("news.example.com", "example.org");
    const auto start = at("2026-03-01T00:00:00Z");
    std::uint64_t total = 0;
    for (int hour = 0; hour < 24; ++hour) {
        std::uint64_t in_hour = 0;
        for (int minute = 0; minute < 60; ++minute)
            in_hour += admit_all(engine, k, start + hours(hour) + minutes(minute), 100);
        total += in_hour;
        CAPTURE(hour);
        // By the end of hour h, ceil(1000 * (h + 1) / 24) and not one more.
        CHECK(total == (1000ULL * static_cast<std::uint64_t>(hour + 1) + 23) / 24);
        CHECK(in_hour < 50); // never the whole cap in one go
    }
    CHECK(total == 1000);
    const auto a = engine.admit(k, start + 23h + 59min);
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Cap);
}

TEST_CASE("capacity an idle morning leaves unused carries over to the afternoon") {
    Engine engine(config_from(R"(
[schedule.spread]
caps = [240]
spread = "hourly"

[[sender]]
domain = "news.example.com"
schedule = "spread"
start = 2026-03-01
)"));
    const auto k = engine.key("news.example.com", "example.org");
    const auto noon = at("2026-03-01T12:00:00Z");
    CHECK(engine.remaining(k, noon) == 130); // ceil(240 * 13 / 24)
    CHECK(admit_all(engine, k, noon) == 130);
    const auto a = engine.admit(k, noon + 30min);
    CHECK(a.reason == WaitReason::Cap);
    CHECK(a.until == at("2026-03-01T13:00:00Z")); // the next hour, not tomorrow
    CHECK(admit_all(engine, k, at("2026-03-01T13:00:00Z")) == 10);
}

TEST_CASE("a provider's max_rate lets one second's burst go and then paces") {
    Engine engine(config_from(R"(
[[provider]]
name = "slow"
domains = ["slow.example"]
max_rate = "60/min"

[[provider]]
name = "fast"
domains = ["fast.example"]
max_rate = "10/s"
)"));
    const auto t0 = at("2026-03-01T10:00:00Z");
    const auto slow = engine.key("news.example.com", "slow.example");
    CHECK(admit_all(engine, slow, t0) == 1);
    auto a = engine.admit(slow, t0);
    CHECK(a.reason == WaitReason::Rate);
    CHECK(a.until == t0 + 1s);
    CHECK(engine.admit(slow, t0 + 1s).allowed);

    const auto fast = engine.key("news.example.com", "fast.example");
    CHECK(engine.remaining(fast, t0) == 10);
    CHECK(admit_all(engine, fast, t0) == 10);
    a = engine.admit(fast, t0);
    CHECK(a.reason == WaitReason::Rate);
    CHECK(a.until == t0 + 100ms);
    CHECK(engine.remaining(fast, t0 + 250ms) == 2);
}

TEST_CASE("a 421 rate-limit reply halves the rate and it recovers step by step") {
    Engine engine(config_from(kBackoff));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    const auto sends_in_a_minute = [&](TimePoint from) {
        std::uint64_t n = 0;
        for (auto t = from; t < from + 1min; t += 100ms)
            n += admit_all(engine, k, t);
        return n;
    };
    CHECK(sends_in_a_minute(t0 - 5min) == 60);

    engine.record(k,
                  test::reply(core::OutcomeKind::Deferred, 421, "4.7.28",
                              "Gmail has detected an unusual rate of unsolicited mail"),
                  false, t0);
    auto events = engine.take_events();
    REQUIRE(count_events(events, EventType::BackoffStarted) == 1);
    CHECK(events.back().key == k);

    CHECK(sends_in_a_minute(t0) == 30);
    const auto a = engine.admit(k, t0 + 59s); // the last send went at 58s, every 2s
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Backoff);
    CHECK(a.until == t0 + 60s);

    struct Step {
        std::chrono::minutes after;
        double rate;
    };
    // Held at half for the rule's hour, then +10% of 1/s every 10 minutes.
    const Step steps[] = {{30min, 0.5}, {60min, 0.5},  {69min, 0.5},  {70min, 0.6},
                          {80min, 0.7}, {100min, 0.9}, {110min, 1.0}, {200min, 1.0}};
    for (const auto& s : steps) {
        CAPTURE(s.after.count());
        const auto st = status_of(engine, k, t0 + s.after);
        REQUIRE(st.rate.has_value());
        CHECK(*st.rate == doctest::Approx(s.rate));
    }
    CHECK(status_of(engine, k, t0 + 30min).backoff_until == t0 + 1h);
    (void)engine.admit(k, t0 + 110min);
    events = engine.take_events();
    CHECK(count_events(events, EventType::BackoffEnded) == 1);
    CHECK(sends_in_a_minute(t0 + 120min) == 60);
}

TEST_CASE("pushback within one recovery interval extends the hold without halving again") {
    Engine engine(config_from(kBackoff));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    const auto r421 = test::reply(core::OutcomeKind::Deferred, 421, "4.7.28", "rate limited");
    engine.record(k, r421, false, t0);
    engine.record(k, r421, false, t0 + 5min);
    auto st = status_of(engine, k, t0 + 6min);
    CHECK(st.rate_factor == doctest::Approx(0.5));
    CHECK(st.backoff_until == t0 + 65min);
    engine.record(k, r421, false, t0 + 15min);
    st = status_of(engine, k, t0 + 16min);
    CHECK(st.rate_factor == doctest::Approx(0.25));
    CHECK(count_events(engine.take_events(), EventType::BackoffStarted) == 1);
}

TEST_CASE("a backoff on a provider without max_rate starts from the measured rate") {
    Engine engine(config_from(kBackoff));
    const auto k = engine.key("news.example.com", "example.org"); // "other": no max_rate
    const auto t0 = at("2026-03-01T10:00:00Z");
    CHECK(admit_all(engine, k, t0, 120) == 120);
    CHECK_FALSE(status_of(engine, k, t0).rate.has_value());
    engine.record(k, test::reply(core::OutcomeKind::Deferred, 421, "4.7.0", "slow down"), false,
                  t0 + 30s);
    const auto st = status_of(engine, k, t0 + 31s);
    REQUIRE(st.rate.has_value());
    CHECK(*st.rate == doctest::Approx(1.0));                     // 120 a minute measured, halved
    CHECK_FALSE(status_of(engine, k, t0 + 3h).rate.has_value()); // recovered: unlimited again
}

TEST_CASE("a suspend rule stops that sender and provider only, for its duration") {
    Engine engine(config_from(kBackoff));
    const auto ms = engine.key("news.example.com", "outlook.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    engine.record(ms,
                  test::reply(core::OutcomeKind::Failed, 550, "5.7.1",
                              "Unfortunately, messages from [192.0.2.1] weren't sent. Please "
                              "contact your Internet service provider since part of their network "
                              "is on our block list (S3150)."),
                  false, t0);
    const auto a = engine.peek(ms, t0 + 1h);
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Suspended);
    CHECK(a.until == t0 + 4h);
    CHECK(a.detail.find("S3150") != std::string::npos);
    CHECK(engine.peek(engine.key("news.example.com", "gmail.com"), t0 + 1h).allowed);
    CHECK(engine.peek(engine.key("other.example.com", "outlook.com"), t0 + 1h).allowed);
    CHECK(engine.peek(ms, t0 + 4h).allowed);
    const auto events = engine.take_events();
    REQUIRE(count_events(events, EventType::Suspended) == 1);
    CHECK(events.back().key == ms);
}

TEST_CASE("a retry-later reply gives the send back and is not counted as a deferral") {
    Engine engine(config_from(kRamp + std::string(R"(
[[rule]]
enhanced = "4\\.2\\.1"
action = "retry-later"
)")));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    REQUIRE(engine.admit(k, t0).allowed);
    REQUIRE(engine.admit(k, t0).allowed);
    CHECK(status_of(engine, k, t0).sent_today == 2);
    engine.record(k,
                  test::reply(core::OutcomeKind::Deferred, 450, "4.2.1",
                              "The user you are trying to contact is receiving mail at a rate "
                              "that prevents additional messages from being delivered"),
                  false, t0);
    engine.record(k, test::deferred(), false, t0);
    const auto st = status_of(engine, k, t0);
    CHECK(st.sent_today == 1);
    CHECK(st.guardrails.counts.deferred == 1);
    CHECK(engine.metrics().refunded == 1);
}

TEST_CASE("a local failure never reached the provider: refunded, no rule, no counts") {
    Engine engine(config_from(kBackoff));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    REQUIRE(engine.admit(k, t0).allowed);
    auto o = test::reply(core::OutcomeKind::Deferred, 421, "4.7.28", "connect timed out");
    o.local = true;
    engine.record(k, o, false, t0);
    const auto st = status_of(engine, k, t0);
    CHECK(st.sent_today == 0);
    CHECK(st.rate_factor == 1.0);
    CHECK(st.guardrails.counts.attempts() == 0);
}

const char* const kRefund = R"(
[schedule.tiny]
caps = [3, 3]

[[sender]]
domain = "news.example.com"
schedule = "tiny"
start = 2026-03-01

[[provider]]
name = "gmail"
domains = ["gmail.com"]
max_rate = "60/min"
)";

TEST_CASE("a recipient suppressed or postponed after the gate gives back its cap slot and its rate "
          "token") {
    struct Case {
        const char* what;
        core::OutcomeKind kind;
        bool local;
    };
    const Case cases[] = {
        {"suppressed at dispatch (local)", core::OutcomeKind::Suppressed, true},
        {"suppressed, not marked local", core::OutcomeKind::Suppressed, false},
        {"postponed by a later stage", core::OutcomeKind::Throttled, true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Engine engine(config_from(kRefund));
        const auto k = engine.key("news.example.com", "gmail.com");
        const auto t0 = at("2026-03-01T10:00:00Z");
        REQUIRE(engine.admit(k, t0).allowed);
        // 60/min has a burst of one: the token is spent.
        REQUIRE(engine.peek(k, t0).reason == WaitReason::Rate);
        auto o = test::reply(c.kind, 550, "5.7.1", "not sent");
        o.local = c.local;
        engine.record(k, o, false, t0);
        const auto st = status_of(engine, k, t0);
        CHECK(st.sent_today == 0);
        CHECK(st.guardrails.counts.attempts() == 0);
        CHECK(engine.metrics().refunded == 1);
        // Both given back: three more may go today, the first one at once.
        CHECK(engine.admit(k, t0).allowed);
        CHECK(admit_all(engine, k, t0 + 1s) == 1);
        CHECK(admit_all(engine, k, t0 + 2s) == 1);
        CHECK(engine.admit(k, t0 + 3s).reason == WaitReason::Cap);
    }
}

TEST_CASE("a cap-only refund gives back the day's slot but not the rate token") {
    Engine engine(config_from(kRefund));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T10:00:00Z");
    REQUIRE(engine.admit(k, t0).allowed);
    engine.refund(k, t0, RefundScope::Cap);
    CHECK(status_of(engine, k, t0).sent_today == 0);
    const auto a = engine.admit(k, t0);
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Rate);
    CHECK(a.until == t0 + 1s);
}

TEST_CASE("a refund never gives back more than was admitted that day") {
    Engine engine(config_from(kRefund));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T23:59:59Z");
    engine.refund(k, t0, RefundScope::CapAndRate); // nothing admitted yet
    CHECK(engine.metrics().refunded == 0);
    REQUIRE(engine.admit(k, t0).allowed);
    const auto next_day = at("2026-03-02T00:00:01Z");
    engine.refund(k, next_day, RefundScope::CapAndRate); // yesterday's send stays counted
    CHECK(engine.metrics().refunded == 0);
    CHECK(status_of(engine, k, next_day).sent_today == 0);
    REQUIRE(engine.admit(k, next_day).allowed);
    engine.refund(k, next_day, RefundScope::CapAndRate);
    engine.refund(k, next_day, RefundScope::CapAndRate); // a duplicate
    CHECK(engine.metrics().refunded == 1);
    CHECK(status_of(engine, k, next_day).sent_today == 0);
    // The burst stays one token, however many refunds came.
    CHECK(engine.remaining(k, next_day) == 1);
}

TEST_CASE("bounce, deferral and complaint rates at or over their thresholds hold the ramp") {
    struct Case {
        std::string what;
        std::uint64_t delivered, deferred, hard_bounces, complaints;
        std::uint32_t want_day;
    };
    const Case cases[] = {
        {"clean", 1000, 0, 0, 0, 2},           {"hard bounces 3%", 970, 0, 30, 0, 1},
        {"hard bounces 1%", 990, 0, 10, 0, 2}, {"deferrals 20%", 800, 200, 0, 0, 1},
        {"deferrals 15%", 850, 150, 0, 0, 2},  {"complaints 0.2%", 1000, 0, 0, 2, 1},
        {"complaints 0.1%", 1000, 0, 0, 1, 1}, {"too few to judge", 45, 0, 5, 0, 2},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Engine engine(config_from(kRamp));
        const auto k = engine.key("news.example.com", "gmail.com");
        const auto day1 = at("2026-03-01T12:00:00Z");
        for (std::uint64_t i = 0; i < c.delivered; ++i)
            engine.record(k, test::delivered(), false, day1);
        for (std::uint64_t i = 0; i < c.deferred; ++i)
            engine.record(k, test::deferred(), false, day1);
        for (std::uint64_t i = 0; i < c.hard_bounces; ++i)
            engine.record(k, test::bounced(), true, day1);
        for (std::uint64_t i = 0; i < c.complaints; ++i)
            engine.record_complaint("news.example.com", day1);
        (void)engine.take_events();
        const auto day2 = at("2026-03-02T08:00:00Z");
        const auto st = status_of(engine, k, day2);
        CHECK(st.ramp_day == c.want_day);
        CHECK(st.cap == std::uint64_t{1000} * c.want_day);
        (void)engine.admit(k, day2);
        const auto events = engine.take_events();
        CHECK(count_events(events, EventType::RampHeld) == (c.want_day == 1 ? 1U : 0U));
        CHECK(count_events(events, EventType::RampAdvanced) == (c.want_day == 2 ? 1U : 0U));
    }
}

TEST_CASE("a held ramp advances again after a clean day") {
    Engine engine(config_from(kRamp));
    const auto k = engine.key("news.example.com", "gmail.com");
    for (int i = 0; i < 970; ++i)
        engine.record(k, test::delivered(), false, at("2026-03-01T12:00:00Z"));
    for (int i = 0; i < 30; ++i)
        engine.record(k, test::bounced(), true, at("2026-03-01T12:00:00Z"));
    CHECK(status_of(engine, k, at("2026-03-02T01:00:00Z")).ramp_day == 1);
    for (int i = 0; i < 1000; ++i)
        engine.record(k, test::delivered(), false, at("2026-03-02T12:00:00Z"));
    CHECK(status_of(engine, k, at("2026-03-03T01:00:00Z")).ramp_day == 2);
    // Idle days advance: there is nothing to judge.
    CHECK(status_of(engine, k, at("2026-03-05T01:00:00Z")).ramp_day == 4);
}

TEST_CASE("complaints at 0.3% suspend the sending domain until an admin resumes it") {
    Engine engine(config_from(kRamp));
    const auto gmail = engine.key("news.example.com", "gmail.com");
    const auto other = engine.key("news.example.com", "example.org");
    const auto t0 = at("2026-03-01T12:00:00Z");
    for (int i = 0; i < 1000; ++i)
        engine.record(gmail, test::delivered(), false, t0);
    engine.record_complaint("news.example.com", t0 + 1h);
    engine.record_complaint("news.example.com", t0 + 1h);
    CHECK(engine.peek(gmail, t0 + 1h).allowed);
    engine.record_complaint("News.Example.com", t0 + 2h);
    auto events = engine.take_events();
    REQUIRE(count_events(events, EventType::Suspended) == 1);
    CHECK(events.back().key.sending_domain == "news.example.com");
    CHECK(events.back().key.provider.empty());
    CHECK(events.back().details.find("0.3%") != std::string::npos);
    for (const auto& k : {gmail, other}) {
        const auto a = engine.peek(k, t0 + 3h);
        CHECK_FALSE(a.allowed);
        CHECK(a.reason == WaitReason::Suspended);
        CHECK(a.until == t0 + 3h + 5min); // asked again, never failed
    }
    // It does not lift by itself, even days later.
    CHECK_FALSE(engine.peek(gmail, t0 + days(3)).allowed);
    CHECK(status_of(engine, gmail, t0 + 3h).domain_suspended);
    const auto r = engine.resume("news.example.com", "", t0 + 4h);
    CHECK(r.ok);
    CHECK(engine.peek(gmail, t0 + 4h).allowed);
    CHECK(count_events(engine.take_events(), EventType::Resumed) == 1);
}

TEST_CASE("pause and resume a whole domain or one provider") {
    Engine engine(config_from(kRamp));
    const auto gmail = engine.key("news.example.com", "gmail.com");
    const auto other = engine.key("news.example.com", "example.org");
    const auto t0 = at("2026-03-01T12:00:00Z");
    CHECK(engine.pause("news.example.com", "gmail", t0).ok);
    CHECK(engine.peek(gmail, t0).reason == WaitReason::Paused);
    CHECK_FALSE(engine.peek(gmail, t0).allowed);
    CHECK(engine.peek(other, t0).allowed);
    CHECK(status_of(engine, gmail, t0).paused);
    CHECK_FALSE(engine.pause("news.example.com", "gmial", t0).ok);

    CHECK(engine.pause("news.example.com", "", t0).ok);
    CHECK_FALSE(engine.peek(other, t0).allowed);
    CHECK(engine.resume("news.example.com", "gmail", t0).message.find("still paused") !=
          std::string::npos);
    CHECK_FALSE(engine.peek(gmail, t0).allowed); // the domain pause still holds
    CHECK(engine.resume("news.example.com", "", t0).ok);
    CHECK(engine.peek(gmail, t0).allowed);
    CHECK(engine.peek(other, t0).allowed);
    const auto events = engine.take_events();
    CHECK(count_events(events, EventType::Paused) == 2);
    CHECK(count_events(events, EventType::Resumed) == 2);
}

TEST_CASE("set-day moves the ramp, and the ramp keeps advancing from there") {
    Engine engine(config_from(kRamp));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T12:00:00Z");
    CHECK(engine.set_day("news.example.com", 3, t0).ok);
    CHECK(status_of(engine, k, t0).ramp_day == 3);
    CHECK(status_of(engine, k, t0).cap == 3000);
    CHECK(status_of(engine, k, at("2026-03-02T12:00:00Z")).ramp_day == 4);
    CHECK_FALSE(status_of(engine, k, at("2026-03-03T12:00:00Z")).cap.has_value()); // past day 4
    CHECK_FALSE(engine.set_day("news.example.com", 0, t0).ok);
    CHECK_FALSE(engine.set_day("unlisted.example.com", 2, t0).ok);
    CHECK(count_events(engine.take_events(), EventType::DaySet) == 1);
}

TEST_CASE("when capacity is scarce the highest priorities go first, ties in submission order") {
    Engine engine(config_from(R"(
[schedule.tiny]
caps = [5, 100]

[[sender]]
domain = "news.example.com"
schedule = "tiny"
start = 2026-03-01
)"));
    const auto k = engine.key("news.example.com", "example.org");
    const auto t0 = at("2026-03-01T12:00:00Z");
    CHECK(engine.remaining(k, t0) == 5);
    std::vector<Candidate> batch = {{1, 1}, {2, 5}, {3, 3}, {4, 5}, {5, 0}, {6, 9}, {7, 2}, {8, 3}};
    const auto result = engine.admit_batch(k, batch, t0);
    CHECK(result.admitted == 5);
    std::vector<std::uint64_t> ids;
    for (const auto& c : batch)
        ids.push_back(c.id);
    CHECK(ids == std::vector<std::uint64_t>{6, 2, 4, 3, 8, 7, 1, 5});
    CHECK_FALSE(result.rest.allowed);
    CHECK(result.rest.reason == WaitReason::Cap);
    CHECK(engine.remaining(k, t0) == 0);

    // With room for everyone, submission order stands.
    std::vector<Candidate> next = {{1, 1}, {2, 5}, {3, 3}};
    const auto t1 = at("2026-03-02T00:00:00Z");
    const auto all = engine.admit_batch(k, next, t1);
    CHECK(all.admitted == 3);
    CHECK(all.rest.allowed);
    CHECK(next[0].id == 1);
    CHECK(next[1].id == 2);
    CHECK(engine.remaining(k, t1) == 97);
}

TEST_CASE("a NaN priority counts as the lowest and never breaks the ordering") {
    Engine engine(config_from(R"(
[schedule.tiny]
caps = [2]

[[sender]]
domain = "news.example.com"
schedule = "tiny"
start = 2026-03-01
)"));
    const auto k = engine.key("news.example.com", "example.org");
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<Candidate> batch = {{1, nan}, {2, 1}, {3, nan}, {4, 2}};
    const auto result = engine.admit_batch(k, batch, at("2026-03-01T12:00:00Z"));
    CHECK(result.admitted == 2);
    std::vector<std::uint64_t> ids;
    for (const auto& c : batch)
        ids.push_back(c.id);
    CHECK(ids == std::vector<std::uint64_t>{4, 2, 1, 3});
}

TEST_CASE("admit keeps no per-recipient state: a million admits leave one key") {
    Engine engine(config_from(kRamp));
    const auto capped = engine.key("news.example.com", "gmail.com");
    const auto free = engine.key("free.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T12:00:00Z");
    (void)engine.admit(capped, t0);
    (void)engine.admit(free, t0);
    const auto lines = [&] {
        const auto text = engine.serialize_state();
        return std::count(text.begin(), text.end(), '\n');
    };
    const auto before = lines();
    for (int i = 0; i < 500'000; ++i) {
        (void)engine.admit(capped, t0);
        (void)engine.admit(free, t0);
    }
    CHECK(engine.key_count() == 2);
    CHECK(engine.domain_count() == 2);
    CHECK(lines() == before);
    CHECK(engine.metrics().admitted == 1000 + 500'001);
    CHECK(engine.metrics().throttled[static_cast<std::size_t>(WaitReason::Cap)] == 500'001 - 1000);
}

TEST_CASE("a recipient over its cap waits for the next day's window and is never refused") {
    Engine engine(config_from(kRamp));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T22:00:00Z");
    CHECK(admit_all(engine, k, t0) == 1000);
    const auto a = engine.admit(k, t0 + 1h);
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Cap);
    CHECK(a.until == at("2026-03-02T00:00:00Z"));
    CHECK(a.detail == "today's cap of 1000 is spent (ramp day 1)");
    CHECK(engine.admit(k, a.until).allowed);
}

TEST_CASE(
    "unlisted domains are unthrottled, or ramp on the default schedule from their first day") {
    Engine open(config_from(kRamp));
    const auto k = open.key("unlisted.example.com", "gmail.com");
    const auto t0 = at("2026-03-01T12:00:00Z");
    CHECK(admit_all(open, k, t0, 50'000) == 50'000);
    CHECK_FALSE(status_of(open, k, t0).cap.has_value());
    CHECK(status_of(open, k, t0).schedule.empty());

    Engine ramped(config_from(std::string(kRamp) + "\n[defaults]\nschedule = \"ramp\"\n"));
    const auto r = ramped.key("unlisted.example.com", "gmail.com");
    const auto first = at("2026-03-10T12:00:00Z");
    CHECK(admit_all(ramped, r, first) == 1000);
    CHECK(status_of(ramped, r, first).ramp_day == 1);
    CHECK(status_of(ramped, r, first + days(1)).ramp_day == 2);
}

TEST_CASE("before its start day a sender gets day 1's cap") {
    Engine engine(config_from(kRamp));
    const auto k = engine.key("news.example.com", "gmail.com");
    const auto early = at("2026-02-20T12:00:00Z");
    CHECK(status_of(engine, k, early).ramp_day == 1);
    CHECK(admit_all(engine, k, early) == 1000);
    CHECK(status_of(engine, k, at("2026-03-01T12:00:00Z")).ramp_day == 1);
    CHECK(status_of(engine, k, at("2026-03-02T12:00:00Z")).ramp_day == 2);
}

TEST_CASE("explain names the provider, the sender, the rules and why a message waits") {
    Engine engine(config_from(std::string(kBackoff) + R"(
[schedule.s]
caps = [2]

[[sender]]
domain = "news.example.com"
schedule = "s"
start = 2026-03-01
)"));
    const auto t0 = at("2026-03-01T12:00:00Z");
    const auto k = engine.key("news.example.com", "gmail.com");
    CHECK(admit_all(engine, k, t0) == 1); // 60/min: one now
    auto e = engine.explain("news.example.com", "Someone@GMAIL.com", t0);
    CHECK(e.key == k);
    CHECK(e.recipient_domain == "gmail.com");
    CHECK(e.provider_reason.find(
              "gmail.com matches \"gmail.com\" in the domains of provider gmail") !=
          std::string::npos);
    CHECK(e.sender_reason.find("schedule s from 2026-03-01") != std::string::npos);
    REQUIRE(e.rules.size() == 3); // two gmail rules, then the global one
    CHECK(e.rules[0].find("-> backoff x0.5 for 1h") != std::string::npos);
    CHECK(e.rules[2].find("any provider") != std::string::npos);
    CHECK_FALSE(e.admission.allowed);
    CHECK(e.admission.reason == WaitReason::Rate);
    const auto text = format_explanation(e);
    CHECK(text.find("decision:  waits (rate) until 2026-03-01T12:00:01.000Z") != std::string::npos);
    CHECK(text.find("today:     1 sent, cap 2") != std::string::npos);

    CHECK(engine.admit(k, t0 + 1s).allowed);
    e = engine.explain("news.example.com", "gmail.com", t0 + 2s);
    CHECK(e.admission.reason == WaitReason::Cap);
    CHECK(format_explanation(e).find("today's cap of 2 is spent") != std::string::npos);

    e = engine.explain("news.example.com", "corp.example", t0, "corp.mail.protection.outlook.com");
    CHECK(e.key.provider == "other"); // kBackoff's microsoft has no mx patterns
    CHECK(e.provider_reason.find("matches no mx pattern") != std::string::npos);
    e = engine.explain("unlisted.example.com", "outlook.com", t0);
    CHECK(e.sender_reason.find("no daily cap") != std::string::npos);
    CHECK(e.admission.allowed);
}

TEST_CASE("limits expose the provider's connection limits for the SMTP client") {
    Engine engine(config_from(R"(
[[provider]]
name = "yahoo"
domains = ["yahoo.com"]
max_connections = 5
max_messages_per_connection = 20
)"));
    const auto l = engine.limits(engine.key("news.example.com", "yahoo.com"));
    CHECK(l.max_connections == 5);
    CHECK(l.max_messages_per_connection == 20);
    const auto other = engine.limits(engine.key("news.example.com", "example.org"));
    CHECK(other.max_connections == 0);
}
