#include "warmup/engine.hpp"

#include "tests/warmup/support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>

using namespace ember;
using namespace ember::warmup;
using namespace std::chrono_literals;
using warmup::test::at;
using warmup::test::config_from;

namespace {

const char* const kConfig = R"(
[schedule.ramp]
caps = [1000, 2000, 3000]

[[sender]]
domain = "news.example.com"
schedule = "ramp"
start = 2026-03-01

[[provider]]
name = "gmail"
domains = ["gmail.com"]
mx = ["*.google.com"]

[[provider]]
name = "microsoft"
domains = ["outlook.com"]

[[provider]]
name = "other"

[[rule]]
provider = "gmail"
code = "421"
action = "backoff"
factor = 0.5
duration = "1h"

[[rule]]
provider = "microsoft"
code = "550"
action = "suspend"
duration = "4h"
)";

std::uint64_t admit_all(Engine& e, const Key& k, TimePoint now) {
    std::uint64_t n = 0;
    while (e.admit(k, now).allowed)
        ++n;
    return n;
}

// A domain with a held ramp, a backoff, a suspension and a pause, mid-day.
Engine busy_engine() {
    Engine e(config_from(kConfig));
    const auto gmail = e.key("news.example.com", "gmail.com");
    const auto day1 = at("2026-03-01T12:00:00Z");
    for (int i = 0; i < 970; ++i)
        e.record(gmail, test::delivered(), false, day1);
    for (int i = 0; i < 30; ++i)
        e.record(gmail, test::bounced(), true, day1);
    const auto t = at("2026-03-02T10:00:00Z");
    for (int i = 0; i < 600; ++i)
        REQUIRE(e.admit(gmail, t).allowed);
    e.record(gmail, test::reply(core::OutcomeKind::Deferred, 421, "4.7.28", "slow down"), false, t);
    e.record(e.key("news.example.com", "outlook.com"),
             test::reply(core::OutcomeKind::Failed, 550, "5.7.1", "blocked"), false, t);
    REQUIRE(e.pause("news.example.com", "other", t).ok);
    e.learn_mx("corp.example", "aspmx.l.google.com");
    (void)e.take_events();
    return e;
}

std::string describe(const KeyStatus& s) {
    std::ostringstream out;
    out << s.key.to_string() << " day=" << s.ramp_day << " sent=" << s.sent_today
        << " cap=" << (s.cap ? std::to_string(*s.cap) : "-")
        << " rate=" << (s.rate ? std::to_string(*s.rate) : "-") << " factor=" << s.rate_factor
        << " backoff=" << (s.backoff_until ? format_time(*s.backoff_until) : "-")
        << " suspended=" << (s.suspended_until ? format_time(*s.suspended_until) : "-")
        << " paused=" << s.paused << " attempts=" << s.guardrails.counts.attempts()
        << " bounces=" << s.guardrails.counts.hard_bounces;
    return out.str();
}

std::vector<std::string> describe_all(const Engine& e, TimePoint t) {
    std::vector<std::string> out;
    for (const auto& s : e.status("", t))
        out.push_back(describe(s));
    return out;
}

std::vector<std::string> sorted_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    return lines;
}

} // namespace

TEST_CASE("a restart mid-day keeps counters, the ramp day, backoffs, suspensions and pauses") {
    auto before = busy_engine();
    const auto text = before.serialize_state();
    Engine after(config_from(kConfig));
    REQUIRE(after.restore_state(text));

    const auto t = at("2026-03-02T10:30:00Z");
    const auto want = describe_all(before, t);
    CHECK(describe_all(after, t) == want);
    const auto gmail = after.key("news.example.com", "gmail.com");
    const auto st = after.status("news.example.com", t);
    const auto g =
        std::find_if(st.begin(), st.end(), [&](const KeyStatus& s) { return s.key == gmail; });
    REQUIRE(g != st.end());
    CHECK(g->ramp_day == 1); // held by yesterday's 3% bounces
    CHECK(g->sent_today == 600);
    CHECK(g->rate_factor == doctest::Approx(0.5));
    CHECK_FALSE(after.peek(after.key("news.example.com", "outlook.com"), t).allowed);
    CHECK(after.peek(after.key("news.example.com", "example.org"), t).reason == WaitReason::Paused);
    CHECK(after.key("news.example.com", "corp.example").provider == "gmail"); // learned MX
    // The rest of today's cap, once the backoff has recovered.
    CHECK(admit_all(after, gmail, at("2026-03-02T23:00:00Z")) == 400);
}

TEST_CASE("a damaged state is refused and the state stays as it was") {
    auto engine = busy_engine();
    const auto t = at("2026-03-02T10:30:00Z");
    const auto want = describe_all(engine, t);
    const auto text = engine.serialize_state();
    auto truncated = text.substr(0, text.rfind("key "));
    truncated += "key news.example.com gmail - 1 2";
    std::string bad_number = text;
    bad_number.replace(bad_number.find("domain news.example.com ") + 24, 1, "x");
    const std::string damaged[] = {
        "",
        "garbage",
        "ember-warmup-state 2\n",
        truncated,
        bad_number,
        text + "bucket unknown.example 1 1 1 1 1 1\n",
        text + "frobnicate 1 2 3\n",
    };
    for (const auto& d : damaged) {
        CAPTURE(d.substr(0, 40));
        CHECK_FALSE(engine.restore_state(d));
        CHECK(describe_all(engine, t) == want);
    }
}

TEST_CASE("serialize then restore then serialize gives the same records") {
    auto engine = busy_engine();
    const auto text = engine.serialize_state();
    CHECK(text.rfind("ember-warmup-state 1\n", 0) == 0);
    Engine copy(config_from(kConfig));
    REQUIRE(copy.restore_state(text));
    CHECK(sorted_lines(copy.serialize_state()) == sorted_lines(text));
}

TEST_CASE("strings with spaces and odd octets survive the state text") {
    Engine engine(config_from(kConfig));
    const auto ms = engine.key("news.example.com", "outlook.com");
    const auto t = at("2026-03-01T10:00:00Z");
    engine.record(ms,
                  test::reply(core::OutcomeKind::Failed, 550, "5.7.1",
                              "50% off, - \"blocked\"\tnow \xc3\xa9"),
                  false, t);
    Engine copy(config_from(kConfig));
    REQUIRE(copy.restore_state(engine.serialize_state()));
    const auto a = copy.peek(ms, t);
    CHECK(a.detail == engine.peek(ms, t).detail);
    CHECK(a.detail.find("50% off, - \"blocked\"\tnow \xc3\xa9") != std::string::npos);
}

TEST_CASE("reload applies new caps without resetting today's counters") {
    const auto with_caps = [](const char* caps) {
        return config_from(std::string(R"(
[schedule.ramp]
caps = )") + caps + R"(

[[sender]]
domain = "news.example.com"
schedule = "ramp"
start = 2026-03-01
)");
    };
    Engine engine(with_caps("[100, 100]"));
    const auto k = engine.key("news.example.com", "example.org");
    const auto t = at("2026-03-01T10:00:00Z");
    for (int i = 0; i < 60; ++i)
        REQUIRE(engine.admit(k, t).allowed);

    engine.reconfigure(with_caps("[50, 100]"));
    auto a = engine.admit(k, t + 1h);
    CHECK_FALSE(a.allowed);
    CHECK(a.reason == WaitReason::Cap);
    CHECK(engine.remaining(k, t + 1h) == 0);

    engine.reconfigure(with_caps("[200, 400]"));
    CHECK(engine.remaining(k, t + 2h) == 140);
    CHECK(admit_all(engine, k, t + 2h) == 140);
    CHECK(engine.status("news.example.com", t + 2h).front().sent_today == 200);
}

TEST_CASE("reload keeps ramps, backoffs and pauses, and drops a removed provider's state") {
    auto engine = busy_engine();
    const auto t = at("2026-03-02T10:30:00Z");
    std::string smaller = kConfig;
    const auto cut = smaller.find("[[provider]]\nname = \"microsoft\"");
    smaller.erase(cut, smaller.find("[[provider]]\nname = \"other\"") - cut);
    smaller.erase(smaller.rfind("[[rule]]"));
    engine.reconfigure(config_from(smaller));
    const auto rows = engine.status("news.example.com", t);
    std::vector<std::string> providers;
    for (const auto& r : rows)
        providers.push_back(r.key.provider);
    CHECK(providers == std::vector<std::string>{"gmail", "other"});
    CHECK(rows[0].ramp_day == 1);
    CHECK(rows[0].sent_today == 600);
    CHECK(rows[0].rate_factor == doctest::Approx(0.5));
    CHECK(rows[1].paused);
    // outlook.com now belongs to the catch-all, which is paused.
    CHECK(engine.key("news.example.com", "outlook.com").provider == "other");
}

TEST_CASE("a bad file on reload leaves the engine with the config it had") {
    Engine engine(config_from(kConfig));
    core::Diagnostics diag;
    const auto candidate = parse_config("[schedule.ramp]\ncaps = []\n", "warmup.toml", diag);
    CHECK_FALSE(candidate.has_value());
    CHECK(diag.to_string() ==
          "warmup.toml:2: caps must be a non-empty array of daily caps (e.g. caps = [50, 100, "
          "200])\n");
    if (candidate)
        engine.reconfigure(*candidate); // what the daemon does only on success
    CHECK(engine.config().schedule("ramp")->caps.size() == 3);
}
