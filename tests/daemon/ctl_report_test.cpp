#include "daemon/ctl_report.hpp"

#include "daemon/campaign_report.hpp"
#include "daemon/ctl_cli.hpp"

#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

using namespace ember;
namespace json = boost::json;
namespace ctl = ember::daemon::ctl;
using feedback::EventType;

namespace {

constexpr std::int64_t kNow = 1'780'000'000'000; // 2026-05-28T20:26:40Z

feedback::Event event(EventType type, std::string campaign, std::string variant = "") {
    feedback::Event e;
    e.type = type;
    e.time_ms = kNow;
    e.campaign = std::move(campaign);
    e.variant = std::move(variant);
    return e;
}

void add(feedback::CampaignTable& t, EventType type, const std::string& campaign,
         const std::string& variant, int n, bool unique = false, bool machine = false) {
    for (int i = 0; i < n; ++i) {
        auto e = event(type, campaign, variant);
        if (unique)
            e.extra["unique"] = true;
        if (machine)
            e.extra["machine"] = true;
        if (type == EventType::Bounced) {
            e.reason = feedback::Reason::UserUnknown;
            e.hard = true;
        }
        t.add(e);
    }
}

} // namespace

TEST_CASE("--since takes an RFC 3339 date-time, a date, or a duration back from now") {
    struct Case {
        std::string text;
        std::int64_t want;
    };
    const std::vector<Case> cases{
        {"7d", kNow - 7 * 86'400'000},
        {"12h", kNow - 12 * 3'600'000},
        {"2026-05-01T10:00:00Z", 1'777'629'600'000},
        {"2026-05-01T12:00:00+02:00", 1'777'629'600'000},
        {"2026-05-01", 1'777'593'600'000},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto got = ctl::parse_since(c.text, kNow);
        REQUIRE(std::holds_alternative<std::int64_t>(got));
        CHECK(std::get<std::int64_t>(got) == c.want);
    }
    for (const auto* bad : {"yesterday", "7", "2026-05-32", "-3d", ""}) {
        CAPTURE(bad);
        CHECK(std::holds_alternative<std::string>(ctl::parse_since(bad, kNow)));
    }
}

TEST_CASE("report is an emberctl verb whose --since becomes unix ms in the request") {
    const auto parsed = ctl::parse_command_line(
        {"emberctl", "report", "--campaign", "spring", "--since", "1d", "--json"});
    REQUIRE(parsed.invocation);
    CHECK(parsed.invocation->options.json);
    CHECK(parsed.invocation->verb->words == "report");
    std::string error;
    const auto request = ctl::report_request(parsed.invocation->args, kNow, error);
    CHECK(error.empty());
    CHECK(request.at("campaign") == "spring");
    CHECK(request.at("since") == kNow - 86'400'000);

    (void)ctl::report_request(json::object{{"since", "soon"}}, kNow, error);
    CHECK(error.find("soon") != std::string::npos);
}

TEST_CASE("the report prints each campaign's block and its variants with lift") {
    feedback::CampaignTable t;
    add(t, EventType::Delivered, "plain", "", 4);
    add(t, EventType::Delivered, "spring", "a", 100);
    add(t, EventType::Delivered, "spring", "b", 100);
    add(t, EventType::Bounced, "spring", "b", 2);
    add(t, EventType::Opened, "spring", "a", 20, true);
    add(t, EventType::Opened, "spring", "b", 30, true);
    add(t, EventType::Opened, "spring", "b", 5);
    add(t, EventType::Opened, "spring", "b", 7, true, true);
    add(t, EventType::Clicked, "spring", "a", 10, true);
    add(t, EventType::Clicked, "spring", "b", 5, true);
    add(t, EventType::Complained, "spring", "a", 1);
    const auto doc = daemon::report_json(feedback::build_reports(t, "", 0), std::nullopt);
    const auto printed = ctl::format_report(doc);
    CAPTURE(printed.out);
    CHECK(printed.exit_code == 0);
    CHECK(printed.out ==
          "campaign plain\n"
          "  days:         2026-05-28 to 2026-05-28 (UTC)\n"
          "  delivered:    4\n"
          "  bounced:      0 (0.00 %)\n"
          "  deferred:     0\n"
          "  complaints:   0 (0.00 %)\n"
          "  unsubscribes: 0 (0.00 %)\n"
          "  suppressed:   0\n"
          "  opens:        0 unique (0.00 %), 0 in all; 0 by machines\n"
          "  clicks:       0 unique (0.00 %), 0 in all; 0 by machines\n"
          "\n"
          "campaign spring\n"
          "  days:         2026-05-28 to 2026-05-28 (UTC)\n"
          "  delivered:    200\n"
          "  bounced:      2 (0.99 %): userunknown 2; 2 hard, 0 soft\n"
          "  deferred:     0\n"
          "  complaints:   1 (0.50 %)\n"
          "  unsubscribes: 0 (0.00 %)\n"
          "  suppressed:   0\n"
          "  opens:        50 unique (25.00 %), 55 in all; 7 by machines\n"
          "  clicks:       15 unique (7.50 %), 15 in all; 0 by machines\n"
          "\n"
          "  VARIANT      DELIVERED  BOUNCED  COMPLAINTS  UNSUBSCRIBES  OPENS  OPEN RATE  "
          "OPEN LIFT  CLICKS  CLICK RATE  CLICK LIFT\n"
          "  a (control)        100        0           1             0     20    20.00 %  "
          "        -      10     10.00 %           -\n"
          "  b                  100        2           0             0     30    30.00 %  "
          " +50.00 %       5      5.00 %    -50.00 %\n"
          "  bounced in b: userunknown 2\n");
}

TEST_CASE("an empty report says so, and an unexpected answer is a protocol error") {
    CHECK(ctl::format_report(daemon::report_json({}, 20'600)).out ==
          "no campaign events since 2026-05-27\n");
    CHECK(ctl::format_report(daemon::report_json({}, std::nullopt)).out == "no campaign events\n");
    CHECK(ctl::format_report(json::value("x")).exit_code == ctl::kExitProtocol);
}

TEST_CASE("rates and lifts print as percentages, unknown ones as a dash") {
    const json::value half(0.5), down(-0.125), null(nullptr);
    CHECK(ctl::percent_text(&half) == "50.00 %");
    CHECK(ctl::percent_text(&half, true) == "+50.00 %");
    CHECK(ctl::percent_text(&down, true) == "-12.50 %");
    CHECK(ctl::percent_text(&null) == "-");
    CHECK(ctl::percent_text(nullptr) == "-");
}
