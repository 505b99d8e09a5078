#include "core/units.hpp"

#include <doctest/doctest.h>

using namespace ember::core;

TEST_CASE("durations parse with one unit and print in the largest exact unit") {
    struct Case {
        const char* text;
        long long ms;
        const char* printed;
    };
    const Case cases[] = {{"250ms", 250, "250ms"},   {"30s", 30'000, "30s"},
                          {"5m", 300'000, "5m"},     {"4h", 14'400'000, "4h"},
                          {"5d", 432'000'000, "5d"}, {"1w", 604'800'000, "1w"},
                          {"90s", 90'000, "90s"},    {"0", 0, "0s"},
                          {"60m", 3'600'000, "1h"}};
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto d = parse_duration(c.text);
        REQUIRE(d.has_value());
        CHECK(d->count() == c.ms);
        CHECK(format_duration(*d) == c.printed);
    }
}

TEST_CASE("durations without a unit, with two units or garbage are rejected") {
    for (const char* bad :
         {"", "5", "s", "5x", "5 m", "-5s", "1.5h", "5mm", "99999999999999999999s"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_duration(bad).has_value());
    }
}

TEST_CASE("byte sizes use binary multiples and accept B and iB suffixes") {
    CHECK(parse_byte_size("512")->bytes == 512);
    CHECK(parse_byte_size("64k")->bytes == 65536);
    CHECK(parse_byte_size("64K")->bytes == 65536);
    CHECK(parse_byte_size("10M")->bytes == 10485760);
    CHECK(parse_byte_size("10MB")->bytes == 10485760);
    CHECK(parse_byte_size("10MiB")->bytes == 10485760);
    CHECK(parse_byte_size("2G")->bytes == (2ull << 30));
    CHECK(format_byte_size(ByteSize{10485760}) == "10M");
    CHECK(format_byte_size(ByteSize{1000}) == "1000");
    for (const char* bad : {"", "M", "10X", "10 M", "-1", "99999999999T"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_byte_size(bad).has_value());
    }
}
