#include "feedback/reason.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace ember::feedback;

TEST_CASE("every reason has a distinct Sisimai name that parses back to it") {
    std::set<std::string> names;
    for (const auto reason : all_reasons()) {
        const auto name = std::string(reason_name(reason));
        CAPTURE(name);
        CHECK(names.insert(name).second);
        REQUIRE(parse_reason(name).has_value());
        CHECK(*parse_reason(name) == reason);
    }
    CHECK(names.size() == 35);
}

TEST_CASE("reason names parse case-insensitively and Sisimai 4 names are accepted") {
    CHECK(parse_reason("UserUnknown") == Reason::UserUnknown);
    CHECK(parse_reason("mesgtoobig") == Reason::EmailTooLarge);
    CHECK(parse_reason("speeding") == Reason::RateLimited);
    CHECK_FALSE(parse_reason("nosuchreason").has_value());
    CHECK_FALSE(parse_reason("").has_value());
}

TEST_CASE("only a permanent userunknown, hostunknown, hasmoved or notaccept is hard") {
    for (const auto reason : all_reasons()) {
        CAPTURE(reason_name(reason));
        const bool address_is_wrong = reason == Reason::UserUnknown ||
                                      reason == Reason::HostUnknown || reason == Reason::HasMoved ||
                                      reason == Reason::NotAccept;
        CHECK(default_hard(reason, false) == address_is_wrong);
        CHECK_FALSE(default_hard(reason, true)); // a 4xx answer is never hard
    }
}

TEST_CASE("delivered, feedback and vacation are not delivery failures") {
    CHECK_FALSE(is_failure(Reason::Delivered));
    CHECK_FALSE(is_failure(Reason::Feedback));
    CHECK_FALSE(is_failure(Reason::Vacation));
    CHECK(is_failure(Reason::MailboxFull));
    CHECK(is_failure(Reason::Undefined));
}
