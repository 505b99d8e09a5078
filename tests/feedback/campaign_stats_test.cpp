#include "feedback/campaign_stats.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace ember::feedback;

namespace {

constexpr std::int64_t kDay = 20'000; // 2024-10-04
constexpr std::int64_t kNoon = kDay * kMsPerUtcDay + 12 * 3'600'000;

Event event(EventType type, std::string campaign = "spring", std::string variant = "",
            std::int64_t time_ms = kNoon) {
    Event e;
    e.type = type;
    e.time_ms = time_ms;
    e.campaign = std::move(campaign);
    e.variant = std::move(variant);
    return e;
}

Event engagement(EventType type, bool unique, std::optional<bool> machine) {
    auto e = event(type);
    if (unique)
        e.extra["unique"] = true;
    if (machine)
        e.extra["machine"] = *machine;
    return e;
}

Event bounce(Reason reason, bool hard) {
    auto e = event(EventType::Bounced);
    e.reason = reason;
    e.hard = hard;
    return e;
}

bool near(std::optional<double> got, double want) {
    return got && std::fabs(*got - want) < 1e-9;
}

} // namespace

TEST_CASE("each event type moves the counter the report documents") {
    struct Case {
        Event in;
        std::uint64_t CampaignCounts::*field;
    };
    const std::vector<Case> cases{
        {event(EventType::Delivered), &CampaignCounts::delivered},
        {bounce(Reason::UserUnknown, true), &CampaignCounts::hard_bounces},
        {bounce(Reason::MailboxFull, false), &CampaignCounts::soft_bounces},
        {event(EventType::Deferred), &CampaignCounts::deferred},
        {event(EventType::Expired), &CampaignCounts::expired},
        {event(EventType::Complained), &CampaignCounts::complaints},
        {event(EventType::Unsubscribed), &CampaignCounts::unsubscribes},
        {event(EventType::Suppressed), &CampaignCounts::suppressed},
        {engagement(EventType::Opened, false, std::nullopt), &CampaignCounts::opens},
        {engagement(EventType::Opened, true, true), &CampaignCounts::machine_opens},
        {engagement(EventType::Clicked, false, false), &CampaignCounts::clicks},
        {engagement(EventType::Clicked, false, true), &CampaignCounts::machine_clicks},
    };
    for (const auto& c : cases) {
        CAPTURE(encode_event(c.in));
        CampaignCounts counts;
        CHECK(counts.add(c.in));
        CHECK(counts.*c.field == 1);
    }
}

TEST_CASE("a unique human open counts as an open and a unique open; a machine one as neither") {
    struct Case {
        bool unique;
        std::optional<bool> machine;
        std::uint64_t opens, unique_opens, machine_opens;
    };
    const std::vector<Case> cases{
        {true, std::nullopt, 1, 1, 0},                          // the first human open
        {true, false, 1, 1, 0},        {false, false, 1, 0, 0}, // a repeat open
        {true, true, 0, 0, 1},                                  // unique but a proxy: machine
        {false, true, 0, 0, 1},
    };
    for (const auto& c : cases) {
        CAPTURE(c.unique);
        CAPTURE(c.machine.value_or(false));
        for (const auto type : {EventType::Opened, EventType::Clicked}) {
            CampaignCounts counts;
            REQUIRE(counts.add(engagement(type, c.unique, c.machine)));
            const bool open = type == EventType::Opened;
            CHECK((open ? counts.opens : counts.clicks) == c.opens);
            CHECK((open ? counts.unique_opens : counts.unique_clicks) == c.unique_opens);
            CHECK((open ? counts.machine_opens : counts.machine_clicks) == c.machine_opens);
        }
    }
}

TEST_CASE("bounces are counted by reason and as hard or soft; an expiry is a soft bounce") {
    CampaignCounts c;
    CHECK(c.add(bounce(Reason::UserUnknown, true)));
    CHECK(c.add(bounce(Reason::UserUnknown, true)));
    CHECK(c.add(bounce(Reason::MailboxFull, false)));
    CHECK(c.add(event(EventType::Expired)));
    CHECK(c.bounced == 4);
    CHECK(c.hard_bounces == 2);
    CHECK(c.soft_bounces == 2);
    CHECK(c.expired == 1);
    CHECK(c.by_reason == std::map<std::string, std::uint64_t>{
                             {"userunknown", 2}, {"mailboxfull", 1}, {"expired", 1}});
}

TEST_CASE("received and throttled events count nowhere") {
    CampaignCounts c;
    CHECK_FALSE(c.add(event(EventType::Received)));
    CHECK_FALSE(c.add(event(EventType::Throttled)));
    CHECK(c.empty());
}

TEST_CASE("rates divide by delivered, the bounce rate by delivered plus bounced") {
    CampaignCounts c;
    c.delivered = 200;
    c.bounced = 50;
    c.unique_opens = 80;
    c.unique_clicks = 10;
    c.complaints = 1;
    c.unsubscribes = 4;
    CHECK(near(c.open_rate(), 0.4));
    CHECK(near(c.click_rate(), 0.05));
    CHECK(near(c.bounce_rate(), 0.2));
    CHECK(near(c.complaint_rate(), 0.005));
    CHECK(near(c.unsubscribe_rate(), 0.02));

    CampaignCounts none;
    CHECK_FALSE(none.open_rate());
    CHECK_FALSE(none.bounce_rate());
    none.bounced = 3; // nothing delivered: every final outcome bounced
    CHECK(near(none.bounce_rate(), 1.0));
    CHECK_FALSE(none.complaint_rate());
}

TEST_CASE("lift is the relative difference against the control, unknown when it cannot be") {
    struct Case {
        std::optional<double> variant, control;
        std::optional<double> want;
    };
    const std::vector<Case> cases{
        {0.12, 0.10, 0.2},
        {0.05, 0.10, -0.5},
        {0.10, 0.10, 0.0},
        {0.10, 0.0, std::nullopt},
        {std::nullopt, 0.1, std::nullopt},
        {0.1, std::nullopt, std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.variant.value_or(-1));
        CAPTURE(c.control.value_or(-1));
        const auto got = lift(c.variant, c.control);
        CHECK(got.has_value() == c.want.has_value());
        if (got && c.want)
            CHECK(near(got, *c.want));
    }
}

TEST_CASE("the control is \"control\", else \"a\", else the first name that is not rest") {
    struct Case {
        std::vector<std::string> names;
        std::string want;
    };
    const std::vector<Case> cases{
        {{"a", "b", "control"}, "control"},
        {{"a", "b", "rest"}, "a"},
        {{"blue", "green", "rest"}, "blue"},
        {{"rest", "subject-2"}, "subject-2"},
        {{"rest"}, ""},
        {{}, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.names.size());
        CHECK(choose_control(c.names) == c.want);
    }
}

TEST_CASE("counts survive encode and decode; unknown names are ignored, garbage is refused") {
    CampaignCounts c;
    c.delivered = 12;
    c.add(bounce(Reason::UserUnknown, true));
    c.add(engagement(EventType::Opened, true, false));
    c.add(engagement(EventType::Clicked, false, true));
    const auto text = encode(c);
    CAPTURE(text);
    CHECK(decode_counts(text) == c);
    CHECK(decode_counts("") == CampaignCounts{});

    auto later = decode_counts(text + " bot_clicks=7");
    REQUIRE(later);
    CHECK(*later == c);
    CHECK_FALSE(decode_counts("delivered=x"));
    CHECK_FALSE(decode_counts("delivered"));
    CHECK_FALSE(decode_counts("=3"));
}

TEST_CASE("merge adds every counter and every reason") {
    CampaignCounts a, b;
    a.add(bounce(Reason::UserUnknown, true));
    a.add(event(EventType::Delivered));
    b.add(bounce(Reason::UserUnknown, true));
    b.add(bounce(Reason::Blocked, false));
    a.merge(b);
    CHECK(a.delivered == 1);
    CHECK(a.bounced == 3);
    CHECK(a.by_reason.at("userunknown") == 2);
    CHECK(a.by_reason.at("blocked") == 1);
}

TEST_CASE("utc days floor to midnight UTC and print as dates") {
    CHECK(utc_day(0) == 0);
    CHECK(utc_day(kMsPerUtcDay - 1) == 0);
    CHECK(utc_day(kMsPerUtcDay) == 1);
    CHECK(utc_day(-1) == -1);
    CHECK(format_day(0) == "1970-01-01");
    CHECK(format_day(utc_day(1'780'000'000'000)) == "2026-05-28");
}

TEST_CASE("the table keys events by campaign, variant and UTC day and ignores events without "
          "a campaign") {
    CampaignTable t;
    CHECK_FALSE(t.add(event(EventType::Delivered, "")));
    CHECK(t.add(event(EventType::Delivered, "spring", "a")));
    CHECK(t.add(event(EventType::Delivered, "spring", "a", kNoon + kMsPerUtcDay)));
    CHECK(t.add(event(EventType::Delivered, "spring", "b")));
    CHECK_FALSE(t.add(event(EventType::Received, "autumn"))); // counts nowhere, makes no key
    CHECK(t.entries().size() == 3);
    CHECK(t.entries().at({"spring", "a", kDay}).delivered == 1);
    CHECK(t.entries().at({"spring", "a", kDay + 1}).delivered == 1);
}

TEST_CASE("a full table drops events for new keys and counts them; old days are pruned") {
    CampaignTable t;
    t.set_max_keys(2);
    CHECK(t.add(event(EventType::Delivered, "c1")));
    CHECK(t.add(event(EventType::Delivered, "c2")));
    CHECK_FALSE(t.add(event(EventType::Delivered, "c3")));
    CHECK(t.add(event(EventType::Delivered, "c1"))); // an existing key still counts
    CHECK(t.dropped() == 1);
    CampaignCounts one;
    one.delivered = 1;
    t.set({"old", "", kDay - 500}, one);
    const auto gone = t.prune(kDay - 400);
    REQUIRE(gone.size() == 1);
    CHECK(gone.front().campaign == "old");
    CHECK(t.entries().size() == 2);
}

TEST_CASE("a report sums a campaign's days from the first day asked, per variant with lift") {
    CampaignTable t;
    const auto add = [&t](std::string variant, int delivered, int unique_opens, int unique_clicks,
                          std::int64_t time = kNoon) {
        for (int i = 0; i < delivered; ++i)
            t.add(event(EventType::Delivered, "spring", variant, time));
        for (int i = 0; i < unique_opens; ++i) {
            auto e = engagement(EventType::Opened, true, false);
            e.variant = variant;
            e.time_ms = time;
            t.add(e);
        }
        for (int i = 0; i < unique_clicks; ++i) {
            auto e = engagement(EventType::Clicked, true, false);
            e.variant = variant;
            e.time_ms = time;
            t.add(e);
        }
    };
    add("a", 100, 20, 10);
    add("b", 100, 30, 5);
    add("rest", 800, 240, 40);
    add("a", 50, 0, 0, kNoon - 3 * kMsPerUtcDay); // before the range asked
    t.add(event(EventType::Delivered, "autumn"));

    const auto reports = build_reports(t, "spring", kDay);
    REQUIRE(reports.size() == 1);
    const auto& r = reports.front();
    CHECK(r.campaign == "spring");
    CHECK(r.first_day == kDay);
    CHECK(r.last_day == kDay);
    CHECK(r.totals.delivered == 1000);
    CHECK(r.control == "a");
    REQUIRE(r.variants.size() == 3);
    CHECK(r.variants[0].name == "a");
    CHECK_FALSE(r.variants[0].open_lift);
    CHECK(r.variants[1].name == "b");
    CHECK(near(r.variants[1].open_lift, 0.5));   // 30 % against 20 %
    CHECK(near(r.variants[1].click_lift, -0.5)); // 5 % against 10 %
    CHECK(r.variants[2].name == "rest");
    CHECK(near(r.variants[2].open_lift, 0.5)); // 30 % against 20 %

    const auto all = build_reports(t, "", 0);
    REQUIRE(all.size() == 2);
    CHECK(all[0].campaign == "autumn");
    CHECK(all[0].variants.empty());
    CHECK(all[0].control.empty());
    CHECK(all[1].totals.delivered == 1050);
    CHECK(all[1].first_day == kDay - 3);
}
