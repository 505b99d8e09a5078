#include "warmup/simulate.hpp"

#include "tests/warmup/support.hpp"

#include <boost/json/array.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>

using namespace ember;
using namespace ember::warmup;
using warmup::test::config_from;

namespace {

const char* const kThirtyDays = R"(
[schedule.thirty]
caps = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150,
        160, 170, 180, 190, 200, 210, 220, 230, 240, 250, 260, 270, 280, 290, 300]
spread = "hourly"

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

[[provider]]
name = "other"

[[rule]]
provider = "gmail"
code = "421"
enhanced = "4\\.7\\.28"
action = "backoff"
factor = 0.5
duration = "1h"
)";

std::string line(const char* time, const char* type, const char* rcpt, const char* reply = "") {
    return fmt::format(R"({{"time":"{}","type":"{}","sending_domain":"news.example.com",)"
                       R"("recipient":"u@{}","reply":"{}"}})",
                       time, type, rcpt, reply) +
           "\n";
}

} // namespace

TEST_CASE("a 30-day simulation of a constant stream sends each day's cap and holds the rest") {
    const auto config = config_from(kThirtyDays);
    SimulationInput input;
    input.daily_volume = {{"gmail", 1000}, {"yahoo", 1000}};
    const auto report = simulate(config, input);
    REQUIRE(report.error.empty());
    REQUIRE(report.rows.size() == 60);
    std::map<std::string, std::uint64_t> backlog;
    for (const auto& r : report.rows) {
        CAPTURE(r.day);
        CAPTURE(r.provider);
        const auto cap = r.day * 10ULL * (r.provider == "gmail" ? 4 : 6) / 10;
        CHECK(r.ramp_day == r.day);
        CHECK(r.cap == cap);
        CHECK(r.offered == 1000);
        CHECK(r.sent == cap);
        backlog[r.provider] += r.offered - r.sent;
        CHECK(r.held == backlog[r.provider]);
        CHECK(format_day(r.date) ==
              format_day(*parse_day("2026-03-01") + std::chrono::days(r.day - 1)));
    }
}

TEST_CASE("a simulated stream under the cap is sent in full, nothing held") {
    const auto config = config_from(kThirtyDays);
    SimulationInput input;
    input.days = 3;
    input.first_day = parse_day("2026-03-20"); // day 20: gmail's cap is 80
    input.daily_volume = {{"gmail", 50}};
    const auto report = simulate(config, input);
    REQUIRE(report.rows.size() == 3);
    for (const auto& r : report.rows) {
        CHECK(r.sent == 50);
        CHECK(r.held == 0);
    }
}

TEST_CASE("replaying an event log shows the backoffs and the ramp held by bounces") {
    std::string log;
    for (int i = 0; i < 200; ++i)
        log += line(fmt::format("2026-03-01T08:{:02}:{:02}Z", i / 60, i % 60).c_str(), "delivered",
                    "gmail.com", "250 2.0.0 OK");
    log += line("2026-03-01T10:00:00Z", "deferred", "gmail.com",
                "421 4.7.28 Gmail has detected an unusual rate of unsolicited mail");
    for (int i = 0; i < 20; ++i)
        log += line(fmt::format("2026-03-01T11:00:{:02}Z", i).c_str(), "bounced", "yahoo.com",
                    "550 5.1.1 no such user");
    log += line("2026-03-02T09:00:00Z", "delivered", "yahoo.com");
    const auto parsed = parse_event_log(log);
    REQUIRE(parsed.skipped.empty());
    REQUIRE(parsed.events.size() == 222);

    SimulationInput input;
    input.events = parsed.events;
    auto config_text = std::string(kThirtyDays);
    config_text.replace(config_text.find("caps = [10, 20"), 14, "caps = [1000, 2000");
    const auto report = simulate(config_from(config_text), input);
    REQUIRE(report.error.empty());
    std::map<std::pair<std::uint32_t, std::string>, DayRow> rows;
    for (const auto& r : report.rows)
        rows[{r.day, r.provider}] = r;
    const auto& gmail1 = rows.at({1, "gmail"});
    CHECK(gmail1.offered == 201);
    CHECK(gmail1.sent == 201);
    CHECK(gmail1.deferred == 1);
    CHECK(gmail1.backoffs == 1);
    CHECK(rows.at({1, "yahoo"}).bounced == 20);
    // 20 hard bounces in 221 attempts: day 2 keeps day 1's cap.
    CHECK(rows.at({2, "yahoo"}).ramp_day == 1);
    CHECK(rows.at({2, "yahoo"}).cap == 600);
    const auto held = std::count_if(report.events.begin(), report.events.end(),
                                    [](const Event& e) { return e.type == EventType::RampHeld; });
    CHECK(held == 1);
    const auto text = format_report(report);
    CHECK(text.find("ramp_held news.example.com: held at day 1: hard-bounce rate") !=
          std::string::npos);
}

TEST_CASE("simulate refuses an unknown provider and an empty input, and says why") {
    const auto config = config_from(kThirtyDays);
    SimulationInput input;
    CHECK(simulate(config, input).error.find("nothing to simulate") == 0);
    input.daily_volume = {{"gmial", 10}};
    CHECK(simulate(config, input).error ==
          "unknown provider \"gmial\" (the config has: gmail, yahoo, other)");
    input.daily_volume = {{"gmail", 10}, {"gmail", 20}};
    CHECK(simulate(config, input).error == "provider \"gmail\" is given twice");
    input.daily_volume = {{"gmail", 10}};
    input.sending_domain = "unlisted.example.com";
    CHECK(simulate(config, input).error.find("give the first day") != std::string::npos);
}

TEST_CASE("event log lines that cannot be read are skipped and listed") {
    const auto log = parse_event_log(
        "# a comment\n"
        "\n"
        "not json\n"
        R"({"time":"yesterday","type":"delivered","domain":"a.example","rcpt":"x@b.example"})"
        "\n"
        R"({"time":1772359200,"type":"delivery","domain":"A.Example","rcpt":"<x@B.example>"})"
        "\n"
        R"({"ts":1772359200000,"event":"complaint","sender":"bounce@a.example"})"
        "\n"
        R"({"time":"2026-03-01T10:00:00Z","type":"clicked","domain":"a.example"})"
        "\n"
        R"({"time":"2026-03-01T10:00:00Z","type":"deferred","domain":"a.example"})"
        "\n");
    CHECK(log.skipped ==
          std::vector<std::string>{"line 3: not a JSON object", "line 4: no readable time",
                                   "line 7: no known type", "line 8: no recipient domain"});
    REQUIRE(log.events.size() == 2);
    CHECK(log.events[0].sending_domain == "a.example");
    CHECK(log.events[0].recipient_domain == "b.example");
    CHECK(format_time(log.events[0].time) == "2026-03-01T10:00:00.000Z");
    CHECK(log.events[1].type == LoggedType::Complained);
    CHECK(log.events[1].time == log.events[0].time);
}

TEST_CASE("a logged reply splits into code, enhanced code and text") {
    const auto log = parse_event_log(
        R"({"time":"2026-03-01T10:00:00Z","type":"failed","domain":"a.example","recipient_domain":"b.example","reply":"550 5.7.1 blocked using zen","mx":"MX.B.Example"})"
        "\n"
        R"({"time":"2026-03-01T10:00:01Z","type":"bounced","domain":"a.example","recipient_domain":"b.example","code":"421","text":"later","hard":false})"
        "\n");
    REQUIRE(log.events.size() == 2);
    CHECK(log.events[0].code == 550);
    CHECK(log.events[0].enhanced == "5.7.1");
    CHECK(log.events[0].text == "blocked using zen");
    CHECK(log.events[0].mx_host == "mx.b.example");
    CHECK_FALSE(log.events[0].hard);
    CHECK(log.events[1].code == 421);
    CHECK(log.events[1].text == "later");
    CHECK_FALSE(log.events[1].hard);
}

TEST_CASE("the report is a table per day and provider, and JSON with the same rows") {
    const auto config = config_from(kThirtyDays);
    SimulationInput input;
    input.days = 2;
    input.daily_volume = {{"gmail", 100}};
    const auto report = simulate(config, input);
    const auto text = format_report(report);
    CHECK(text.rfind("DAY DATE", 0) == 0);
    CHECK(text.find("  1 2026-03-01 news.example.com         gmail         1         4       100"
                    "         4        96") != std::string::npos);
    CHECK(text.find("note: 188 recipients are still queued after the last day") !=
          std::string::npos);
    const auto json = to_json(report);
    CHECK(json.at("rows").as_array().size() == 2);
    CHECK(json.at("rows").as_array()[1].at("held").as_uint64() == 188);
    CHECK(parse_daily_volume("gmail=5000") == std::pair<std::string, std::uint64_t>{"gmail", 5000});
    CHECK_FALSE(parse_daily_volume("gmail").has_value());
    CHECK_FALSE(parse_daily_volume("gmail=").has_value());
    CHECK_FALSE(parse_daily_volume("=5").has_value());
}
