#include "personalize/engagement.hpp"

#include "personalize/time_text.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::personalize;

namespace {

std::int64_t at(const std::string& rfc3339) {
    const auto t = parse_rfc3339(rfc3339);
    REQUIRE(t.has_value());
    return *t;
}

Engagement with(std::initializer_list<std::pair<EngagementKind, std::string>> events) {
    Engagement e;
    for (const auto& [kind, time] : events)
        e = record_engagement(std::move(e), kind, at(time));
    return e;
}

constexpr auto kDelivered = EngagementKind::Delivered;
constexpr auto kOpen = EngagementKind::Open;
constexpr auto kClick = EngagementKind::Click;

} // namespace

TEST_CASE("RFC 3339 times are written in UTC and read with offsets and fractions") {
    CHECK(format_rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(format_rfc3339(at("2026-03-02T09:30:00Z") + 250) == "2026-03-02T09:30:00.250Z");
    struct Case {
        std::string text;
        std::optional<std::int64_t> want;
    };
    const Case cases[] = {
        {"2026-03-02T09:00:00Z", 1772442000000},
        {"2026-03-02T10:00:00+01:00", 1772442000000},
        {"2026-03-02T04:30:00-04:30", 1772442000000},
        {"2026-03-02t09:00:00.5z", 1772442000500},
        {"2026-03-02 09:00:00.123456Z", 1772442000123},
        {"2024-02-29T00:00:00Z", 1709164800000},
        {"2026-02-29T00:00:00Z", std::nullopt},
        {"2026-03-02T24:00:00Z", std::nullopt},
        {"2026-03-02T09:00:60Z", std::nullopt},
        {"2026-03-02T09:00:00", std::nullopt},
        {"2026-03-02T09:00:00.Z", std::nullopt},
        {"1969-12-31T23:59:59Z", std::nullopt},
        {"2026-03-02", std::nullopt},
        {"tomorrow", std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        CHECK(parse_rfc3339(c.text) == c.want);
    }
}

TEST_CASE("hours of the week count from Monday 00:00 UTC") {
    CHECK(hour_of_week(0) == 3 * 24); // 1970-01-01 was a Thursday
    CHECK(hour_of_week(at("2026-03-02T00:00:00Z")) == 0);
    CHECK(hour_of_week(at("2026-03-02T09:59:59Z")) == 9);
    CHECK(hour_of_week(at("2026-03-08T23:00:00Z")) == 167);
    CHECK(hour_of_week(at("2026-03-09T00:00:00Z")) == 0);
}

TEST_CASE("events set the last times, day buckets and the histogram of opens and clicks") {
    const auto e = with({{kDelivered, "2026-03-02T08:00:00Z"},
                         {kOpen, "2026-03-02T09:15:00Z"},
                         {kClick, "2026-03-02T09:20:00Z"},
                         {kDelivered, "2026-03-03T08:00:00Z"}});
    CHECK(e.last_delivery_ms == at("2026-03-03T08:00:00Z"));
    CHECK(e.last_open_ms == at("2026-03-02T09:15:00Z"));
    CHECK(e.last_click_ms == at("2026-03-02T09:20:00Z"));
    REQUIRE(e.days.size() == 2);
    CHECK(e.days[0] ==
          DayBucket{static_cast<std::int32_t>(at("2026-03-02T00:00:00Z") / kMsPerDay), 1, 1, 1});
    CHECK(e.days[1].delivered == 1);
    CHECK(e.hours[9] == 2);
    CHECK(histogram_total(e.hours) == 2);
}

TEST_CASE("a late event lands in its own day and does not move the last times back") {
    auto e = with({{kOpen, "2026-03-10T09:00:00Z"}});
    e = record_engagement(std::move(e), kOpen, at("2026-03-01T07:00:00Z"));
    CHECK(e.last_open_ms == at("2026-03-10T09:00:00Z"));
    REQUIRE(e.days.size() == 2);
    CHECK(e.days.front().day < e.days.back().day);
    // Older than the kept days: only the histogram learns from it.
    e = record_engagement(std::move(e), kOpen, at("2025-01-01T07:00:00Z"));
    CHECK(e.days.size() == 2);
    CHECK(histogram_total(e.hours) == 3);
    // A time of zero or less is not an event.
    CHECK(record_engagement(e, kOpen, 0) == e);
}

TEST_CASE("day buckets stay within 90 days of the newest event") {
    Engagement e;
    const auto start = at("2026-01-01T12:00:00Z");
    for (int day = 0; day < 200; ++day)
        e = record_engagement(std::move(e), kDelivered, start + day * kMsPerDay);
    CHECK(e.days.size() == static_cast<std::size_t>(kDayBucketsKept));
    CHECK(e.days.back().day - e.days.front().day == kDayBucketsKept - 1);
    const auto now = start + 199 * kMsPerDay;
    CHECK(counts_within(e, now, 30).delivered == 30);
    CHECK(counts_within(e, now, 90).delivered == 90);
}

TEST_CASE("a histogram bucket at the cap halves every bucket first") {
    HourHistogram h{};
    h[5] = kHistogramCap;
    h[6] = 7;
    histogram_add(h, 5);
    CHECK(h[5] == kHistogramCap / 2 + 1);
    CHECK(h[6] == 3);
    histogram_add(h, kHoursPerWeek); // out of range: ignored
    CHECK(histogram_total(h) == kHistogramCap / 2 + 1 + 3);
}

TEST_CASE("tiers follow the documented thresholds") {
    const auto now = at("2026-06-01T12:00:00Z");
    struct Case {
        const char* name;
        Engagement e;
        EngagementTier want;
    };
    const Case cases[] = {
        {"nothing at all", {}, EngagementTier::Never},
        {"delivered, never opened", with({{kDelivered, "2026-05-30T10:00:00Z"}}),
         EngagementTier::Never},
        {"a click last week", with({{kClick, "2026-05-25T10:00:00Z"}}), EngagementTier::Hot},
        {"two opens this month",
         with({{kOpen, "2026-05-10T10:00:00Z"}, {kOpen, "2026-05-25T10:00:00Z"}}),
         EngagementTier::Hot},
        {"one open this month", with({{kOpen, "2026-05-25T10:00:00Z"}}), EngagementTier::Warm},
        {"two opens, one of them 40 days ago",
         with({{kOpen, "2026-04-22T10:00:00Z"}, {kOpen, "2026-05-25T10:00:00Z"}}),
         EngagementTier::Warm},
        {"a click 60 days ago", with({{kClick, "2026-04-02T10:00:00Z"}}), EngagementTier::Warm},
        {"an open 100 days ago", with({{kOpen, "2026-02-21T10:00:00Z"}}), EngagementTier::Cold},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        CHECK(engagement_tier_name(engagement_tier(c.e, now)) == engagement_tier_name(c.want));
    }
}

TEST_CASE("priority puts hot before warm before new before cold before never-engaged") {
    const auto now = at("2026-06-01T12:00:00Z");
    const auto hot = with({{kClick, "2026-05-25T10:00:00Z"}});
    const auto warm = with({{kOpen, "2026-05-25T10:00:00Z"}});
    const Engagement fresh{};
    const auto cold = with({{kOpen, "2026-02-21T10:00:00Z"}, {kDelivered, "2026-05-01T10:00:00Z"}});
    const auto never =
        with({{kDelivered, "2026-05-01T10:00:00Z"}, {kDelivered, "2026-05-20T10:00:00Z"}});
    CHECK(priority_score(hot, now) == 302);
    CHECK(priority_score(warm, now) == 201);
    CHECK(priority_score(fresh, now) == 150);
    CHECK(priority_score(cold, now) == 99);
    CHECK(priority_score(never, now) == 48);
    // More recent engagement ranks higher within a tier.
    const auto hotter = with({{kClick, "2026-05-25T10:00:00Z"}, {kClick, "2026-05-26T10:00:00Z"}});
    CHECK(priority_score(hotter, now) > priority_score(hot, now));
}

TEST_CASE("the engagement summary gives the hook tier, score, times, counts and best hour") {
    const auto now = at("2026-06-01T12:00:00Z");
    const auto e = with({{kDelivered, "2026-05-25T07:00:00Z"},
                         {kOpen, "2026-05-25T09:10:00Z"},
                         {kClick, "2026-05-25T09:12:00Z"}});
    const auto s = engagement_summary(e, now);
    CHECK(s.at("tier").as_string() == "hot");
    CHECK(s.at("score").as_int64() == 303);
    CHECK(s.at("last_delivery").as_string() == "2026-05-25T07:00:00Z");
    CHECK(s.at("last_click").as_string() == "2026-05-25T09:12:00Z");
    CHECK(s.at("opens_30d").to_number<int>() == 1);
    CHECK(s.at("clicks_90d").to_number<int>() == 1);
    CHECK(s.at("delivered_90d").to_number<int>() == 1);
    CHECK(s.at("history").to_number<int>() == 2);
    CHECK(s.at("best_hour_of_week").to_number<int>() == hour_of_week(at("2026-05-25T09:00:00Z")));
    const auto empty = engagement_summary({}, now);
    CHECK(empty.at("tier").as_string() == "never");
    CHECK(empty.at("last_open").is_null());
    CHECK(empty.at("best_hour_of_week").is_null());
}

TEST_CASE("event kinds parse from the API and event log names") {
    CHECK(parse_engagement_kind("Opened") == EngagementKind::Open);
    CHECK(parse_engagement_kind("click") == EngagementKind::Click);
    CHECK(parse_engagement_kind("delivered") == EngagementKind::Delivered);
    CHECK_FALSE(parse_engagement_kind("bounced").has_value());
}
