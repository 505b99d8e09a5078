#include "warmup/values.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::warmup;

TEST_CASE("rates read as N/s, N/min or N/h and print back the same") {
    struct Case {
        std::string text;
        bool ok;
        double per_second;
        std::string printed;
    };
    const Case cases[] = {
        {"10/s", true, 10.0, "10/s"},
        {"600/min", true, 10.0, "600/min"},
        {"3600/h", true, 1.0, "3600/h"},
        {"5/sec", true, 5.0, "5/s"},
        {"30/m", true, 0.5, "30/min"},
        {"7/hour", true, 7.0 / 3600, "7/h"},
        {"0/s", false, 0, ""},
        {"10/day", false, 0, ""},
        {"/s", false, 0, ""},
        {"ten/s", false, 0, ""},
        {"10", false, 0, ""},
        {"-5/s", false, 0, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parse_rate(c.text);
        REQUIRE(r.has_value() == c.ok);
        if (!c.ok)
            continue;
        CHECK(r->per_second() == doctest::Approx(c.per_second));
        CHECK(r->to_string() == c.printed);
    }
    CHECK(Rate{}.unlimited());
    CHECK(Rate{}.to_string() == "unlimited");
}

TEST_CASE("percentages read as fractions and print with four significant digits") {
    CHECK(parse_percent("25%") == doctest::Approx(0.25));
    CHECK(parse_percent("0.1%") == doctest::Approx(0.001));
    CHECK(parse_percent("100%") == doctest::Approx(1.0));
    CHECK_FALSE(parse_percent("25").has_value());
    CHECK_FALSE(parse_percent("-1%").has_value());
    CHECK_FALSE(parse_percent("%").has_value());
    CHECK_FALSE(parse_percent("abc%").has_value());
    CHECK(format_percent(0.001) == "0.1%");
    CHECK(format_percent(0.25) == "25%");
    CHECK(format_percent(1.0 / 3.0) == "33.33%");
}

TEST_CASE("days are UTC calendar days and impossible dates are refused") {
    const auto d = parse_day("2026-03-01");
    REQUIRE(d.has_value());
    CHECK(format_day(*d) == "2026-03-01");
    CHECK(format_day(*d + std::chrono::days(31)) == "2026-04-01");
    CHECK_FALSE(parse_day("2026-02-30").has_value());
    CHECK_FALSE(parse_day("2026-3-01").has_value());
    CHECK_FALSE(parse_day("2026-03-01x").has_value());
    CHECK(parse_day("2024-02-29").has_value());
}

TEST_CASE("RFC 3339 times read with Z or an offset and print in UTC") {
    const auto t = parse_time("2026-03-01T10:20:30Z");
    REQUIRE(t.has_value());
    CHECK(format_time(*t) == "2026-03-01T10:20:30.000Z");
    CHECK(parse_time("2026-03-01T12:20:30+02:00") == t);
    CHECK(parse_time("2026-03-01T05:50:30-04:30") == t);
    CHECK(format_time(*parse_time("2026-03-01T10:20:30.5Z")) == "2026-03-01T10:20:30.500Z");
    CHECK(format_time(*parse_time("2026-03-01T23:59:59.123456Z")) == "2026-03-01T23:59:59.123Z");
    CHECK_FALSE(parse_time("2026-03-01T10:20:30").has_value());
    CHECK_FALSE(parse_time("2026-03-01T25:00:00Z").has_value());
    CHECK_FALSE(parse_time("2026-03-01").has_value());
    CHECK(day_of(*t) == *parse_day("2026-03-01"));
    CHECK(format_time(start_of(day_of(*t))) == "2026-03-01T00:00:00.000Z");
}

TEST_CASE("rates for people pick the unit that keeps the number above one") {
    CHECK(format_rate_per_second(10) == "10/s");
    CHECK(format_rate_per_second(0.5) == "30/min");
    CHECK(format_rate_per_second(1.0 / 3600) == "1/h");
}
