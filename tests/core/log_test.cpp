#include "core/log.hpp"

#include <doctest/doctest.h>

using namespace ember::core;

TEST_CASE("log values are quoted only when needed and control characters are escaped") {
    CHECK(log::q("plain") == "plain");
    CHECK(log::q("") == "\"\"");
    CHECK(log::q("two words") == "\"two words\"");
    CHECK(log::q("a=b") == "\"a=b\"");
    CHECK(log::q("say \"hi\"") == "\"say \\\"hi\\\"\"");
    CHECK(log::q("line\r\nforged=1") == "\"line\\x0d\\x0aforged=1\"");
}

TEST_CASE("log levels parse by name and filter lower levels") {
    log::Level level{};
    CHECK(log::parse_level("warn", level));
    CHECK(level == log::Level::Warning);
    CHECK_FALSE(log::parse_level("loud", level));
    log::set_level(log::Level::Warning);
    CHECK_FALSE(log::enabled(log::Level::Info));
    CHECK(log::enabled(log::Level::Error));
    log::set_level(log::Level::Info);
}
