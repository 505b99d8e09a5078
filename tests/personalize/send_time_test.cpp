#include "personalize/send_time.hpp"

#include "personalize/time_text.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

using namespace ember::personalize;
using std::chrono::hours;
using std::chrono::minutes;

namespace {

std::int64_t at(const std::string& rfc3339) {
    const auto t = parse_rfc3339(rfc3339);
    REQUIRE(t.has_value());
    return *t;
}

// A histogram with `count` events in the hour of the week `time` falls in.
HourHistogram peak(const std::string& time, std::uint32_t count = 10) {
    HourHistogram h{};
    h[hour_of_week(at(time))] = count;
    return h;
}

std::string when(const SendTime& t) {
    return format_rfc3339(t.at_ms) + " from " + std::string(send_time_source_name(t.source));
}

const HourHistogram kNone{};

} // namespace

TEST_CASE("recipients with different histograms get different slots inside the window") {
    // The injected clock: Monday 2026-03-02 06:20 UTC, a 24-hour window.
    const auto now = at("2026-03-02T06:20:00Z");
    const auto morning = peak("2026-03-02T09:00:00Z");
    const auto evening = peak("2026-03-02T20:00:00Z");
    const auto tuesday_dawn = peak("2026-03-03T05:00:00Z");
    CHECK(when(choose_send_time(now, hours(24), morning, kNone)) ==
          "2026-03-02T09:00:00Z from contact");
    CHECK(when(choose_send_time(now, hours(24), evening, kNone)) ==
          "2026-03-02T20:00:00Z from contact");
    CHECK(when(choose_send_time(now, hours(24), tuesday_dawn, kNone)) ==
          "2026-03-03T05:00:00Z from contact");
}

TEST_CASE("the highest count wins and ties go to the earliest hour") {
    const auto now = at("2026-03-02T06:20:00Z");
    auto h = peak("2026-03-02T09:00:00Z", 4);
    h[hour_of_week(at("2026-03-02T15:00:00Z"))] = 6;
    CHECK(when(choose_send_time(now, hours(24), h, kNone)) == "2026-03-02T15:00:00Z from contact");
    h[hour_of_week(at("2026-03-02T12:00:00Z"))] = 6;
    CHECK(when(choose_send_time(now, hours(24), h, kNone)) == "2026-03-02T12:00:00Z from contact");
}

TEST_CASE("the current hour counts from now, and an hour starting at the window's end is in it") {
    const auto now = at("2026-03-02T09:40:00Z");
    const auto nine = peak("2026-03-02T09:00:00Z");
    CHECK(when(choose_send_time(now, hours(24), nine, kNone)) ==
          "2026-03-02T09:40:00Z from contact");
    // Window ends exactly at 12:00: the 12:00 hour is a candidate, 13:00 is not.
    const auto end_now = at("2026-03-02T10:00:00Z");
    CHECK(when(choose_send_time(end_now, hours(2), peak("2026-03-02T12:00:00Z"), kNone)) ==
          "2026-03-02T12:00:00Z from contact");
    CHECK(when(choose_send_time(end_now, hours(2), peak("2026-03-02T13:00:00Z"), kNone)) ==
          "2026-03-02T10:00:00Z from now");
    // A window shorter than an hour sees only the current hour and maybe the next.
    CHECK(when(choose_send_time(at("2026-03-02T11:50:00Z"), minutes(10),
                                peak("2026-03-02T12:00:00Z"), kNone)) ==
          "2026-03-02T12:00:00Z from contact");
    CHECK(when(choose_send_time(at("2026-03-02T11:49:00Z"), minutes(10),
                                peak("2026-03-02T12:00:00Z"), kNone)) ==
          "2026-03-02T11:49:00Z from now");
}

TEST_CASE("a zero or negative window sends now") {
    const auto now = at("2026-03-02T06:20:00Z");
    const auto morning = peak("2026-03-02T09:00:00Z");
    CHECK(choose_send_time(now, hours(0), morning, morning) == SendTime{now, SendTimeSource::Now});
    CHECK(choose_send_time(now, hours(-3), morning, morning) == SendTime{now, SendTimeSource::Now});
}

TEST_CASE("too little contact history falls back to the sending domain, then to now") {
    const auto now = at("2026-03-02T06:20:00Z");
    const auto thin = peak("2026-03-02T09:00:00Z", 2); // below min_contact_events (5)
    const auto domain = peak("2026-03-02T17:00:00Z", 80);
    CHECK(when(choose_send_time(now, hours(24), thin, domain)) ==
          "2026-03-02T17:00:00Z from domain");
    const auto thin_domain = peak("2026-03-02T17:00:00Z", 10); // below min_domain_events (50)
    CHECK(when(choose_send_time(now, hours(24), thin, thin_domain)) ==
          "2026-03-02T06:20:00Z from now");
    SendTimeConfig lenient;
    lenient.min_contact_events = 1;
    CHECK(when(choose_send_time(now, hours(24), thin, domain, lenient)) ==
          "2026-03-02T09:00:00Z from contact");
}

TEST_CASE("history that has nothing inside the window falls back as well") {
    const auto now = at("2026-03-02T06:20:00Z");
    const auto saturday = peak("2026-03-07T10:00:00Z", 50);
    const auto domain = peak("2026-03-02T17:00:00Z", 80);
    CHECK(when(choose_send_time(now, hours(24), saturday, domain)) ==
          "2026-03-02T17:00:00Z from domain");
    CHECK(when(choose_send_time(now, hours(24), saturday, kNone)) ==
          "2026-03-02T06:20:00Z from now");
    // A wider window reaches Saturday.
    CHECK(when(choose_send_time(now, hours(24 * 6), saturday, domain)) ==
          "2026-03-07T10:00:00Z from contact");
}

TEST_CASE("a window longer than a week picks the earliest occurrence of the best hour") {
    const auto now = at("2026-03-02T06:20:00Z");
    CHECK(when(choose_send_time(now, hours(24 * 30), peak("2026-03-02T05:00:00Z"), kNone)) ==
          "2026-03-09T05:00:00Z from contact");
    // ... and a window over max_window is cut to it.
    SendTimeConfig short_max;
    short_max.max_window = hours(3);
    CHECK(when(choose_send_time(now, hours(24 * 30), peak("2026-03-02T05:00:00Z"), kNone,
                                short_max)) == "2026-03-02T06:20:00Z from now");
    CHECK(when(choose_send_time(now, hours(24 * 30), peak("2026-03-02T09:00:00Z"), kNone,
                                short_max)) == "2026-03-02T09:00:00Z from contact");
    const auto best = best_hour_in_window(now, hours(24 * 30), peak("2026-03-02T07:00:00Z", 9));
    CHECK(best.count == 9);
    CHECK(format_rfc3339(best.at_ms) == "2026-03-02T07:00:00Z");
}
