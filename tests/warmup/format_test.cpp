#include "warmup/format.hpp"

#include "tests/warmup/support.hpp"

#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

using namespace ember;
using namespace ember::warmup;
using namespace std::chrono_literals;
using warmup::test::at;
using warmup::test::config_from;

namespace {

const char* const kConfig = R"(
[schedule.ramp]
caps = [100, 200]
spread = "hourly"

[[sender]]
domain = "news.example.com"
schedule = "ramp"
start = 2026-03-01

[[provider]]
name = "gmail"
domains = ["gmail.com"]
max_rate = "600/min"
share = "40%"

[[provider]]
name = "other"

[[rule]]
provider = "gmail"
code = "421"
action = "backoff"
)";

Engine busy(TimePoint t) {
    Engine e(config_from(kConfig));
    const auto k = e.key("news.example.com", "gmail.com");
    for (int i = 0; i < 3; ++i)
        REQUIRE(e.admit(k, t).allowed);
    e.record(k, test::reply(core::OutcomeKind::Deferred, 421, "4.7.28", "slow down"), false, t);
    return e;
}

} // namespace

TEST_CASE("status prints one line per key, its state, then the domain's guardrails") {
    const auto t = at("2026-03-01T10:00:00Z");
    auto e = busy(t);
    const auto text = format_status(e.status("news.example.com", t + 1min));
    CHECK(text ==
          "DOMAIN                       PROVIDER    DAY          SENT/CAP         RATE  STATE\n"
          "news.example.com             gmail         1              3/40          5/s  backoff "
          "x0.5 until 2026-03-01T11:00:00.000Z\n"
          "news.example.com             other         1             0/100            -  ok\n"
          "  guardrails over 1d: bounces 0% deferrals 100% complaints 0% (1 attempts, too few to "
          "judge)\n");
}

TEST_CASE("status JSON carries every field with RFC 3339 times and nulls for unlimited") {
    const auto t = at("2026-03-01T10:00:00Z");
    auto e = busy(t);
    const auto rows = to_json(e.status("news.example.com", t + 1min));
    REQUIRE(rows.size() == 2);
    const auto& gmail = rows[0].as_object();
    CHECK(gmail.at("sending_domain").as_string() == "news.example.com");
    CHECK(gmail.at("provider").as_string() == "gmail");
    CHECK(gmail.at("schedule").as_string() == "ramp");
    CHECK(gmail.at("ramp_day").as_uint64() == 1);
    CHECK(gmail.at("sent_today").as_uint64() == 3);
    CHECK(gmail.at("cap").as_uint64() == 40);
    CHECK(gmail.at("allowed_by_now").as_uint64() == 19); // ceil(40 * 11 / 24)
    CHECK(gmail.at("rate_per_second").as_double() == doctest::Approx(5.0));
    CHECK(gmail.at("configured_rate").as_string() == "600/min");
    CHECK(gmail.at("backoff_until").as_string() == "2026-03-01T11:00:00.000Z");
    CHECK(gmail.at("suspended_until").is_null());
    CHECK(gmail.at("guardrails").at("deferred").as_uint64() == 1);
    CHECK(gmail.at("guardrails").at("judged").as_bool() == false);
    const auto& other = rows[1].as_object();
    CHECK(other.at("rate_per_second").is_null());
    CHECK(other.at("state").as_string() == "ok");
}

TEST_CASE("events print for logs and serialize as JSON") {
    auto e = busy(at("2026-03-01T10:00:00Z"));
    const auto events = e.take_events();
    REQUIRE(events.size() == 1);
    CHECK(format_event(events[0]) ==
          "backoff_started news.example.com/gmail: rate x0.5 until 2026-03-01T11:00:00.000Z: 421 "
          "4.7.28 slow down (rule at line 20)");
    const auto json = to_json(events[0]);
    CHECK(json.at("type").as_string() == "backoff_started");
    CHECK(json.at("time").as_string() == "2026-03-01T10:00:00.000Z");
    CHECK(json.at("provider").as_string() == "gmail");
}

TEST_CASE("explain JSON holds the key, the reasons, the rules and the decision") {
    const auto t = at("2026-03-01T10:00:00Z");
    auto e = busy(t);
    const auto k = e.key("news.example.com", "gmail.com");
    int more = 0;
    while (e.admit(k, t).allowed)
        ++more;
    CHECK(more == 3); // 5/s after the 421: three more fit in its burst
    const auto json = to_json(e.explain("news.example.com", "a@gmail.com", t));
    CHECK(json.at("key").at("provider").as_string() == "gmail");
    CHECK(json.at("rules").as_array().size() == 1);
    CHECK(json.at("admission").at("allowed").as_bool() == false);
    CHECK(json.at("admission").at("reason").as_string() == "backoff");
    CHECK(json.at("admission").at("until").as_string() == "2026-03-01T10:00:00.100Z");
    CHECK(json.at("status").at("sent_today").as_uint64() == 6);
    CHECK(boost::json::serialize(to_json(Admission{})) == R"({"allowed":true})");
}
