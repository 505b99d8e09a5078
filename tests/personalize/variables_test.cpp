#include "personalize/variables.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

std::string text_of(const boost::json::value* v, bool* present = nullptr) {
    std::string out;
    append_text(v, out, present);
    return out;
}

} // namespace

TEST_CASE("the first layer that has a name wins") {
    const auto hook = boost::json::parse(R"({"a":"hook"})").as_object();
    const auto message = boost::json::parse(R"({"a":"message","b":"message"})").as_object();
    const auto contact =
        boost::json::parse(R"({"a":"contact","b":"contact","c":"contact"})").as_object();
    Variables vars;
    vars.add(hook).add(message).add(contact);
    CHECK(vars.find("a")->as_string() == "hook");
    CHECK(vars.find("b")->as_string() == "message");
    CHECK(vars.find("c")->as_string() == "contact");
    CHECK(vars.find("d") == nullptr);
    CHECK(Variables{}.find("a") == nullptr);
}

TEST_CASE("dotted names try the exact key, then the nested path") {
    const auto obj =
        boost::json::parse(R"({"user.name":"flat","user":{"name":"nested","id":{"x":1}},"s":"v"})")
            .as_object();
    CHECK(find_in(obj, "user.name")->as_string() == "flat");
    CHECK(find_in(obj, "user.id.x")->as_int64() == 1);
    CHECK(find_in(obj, "user.missing") == nullptr);
    CHECK(find_in(obj, "s.x") == nullptr);
    // A layer where the path fails does not hide a lower layer.
    const auto low = boost::json::parse(R"({"s":{"x":"low"}})").as_object();
    Variables vars;
    vars.add(obj).add(low);
    CHECK(vars.find("s.x")->as_string() == "low");
}

TEST_CASE("tags compare without regard to ASCII case") {
    const std::vector<std::string> tags = {"Runner", "vip"};
    Variables vars;
    vars.tags(tags);
    CHECK(vars.has_tag("runner"));
    CHECK(vars.has_tag("VIP"));
    CHECK_FALSE(vars.has_tag("swimmer"));
}

TEST_CASE("truthiness and text follow the documented table") {
    struct Case {
        const char* json;
        bool truthy;
        const char* text;
        bool present;
    };
    const std::vector<Case> cases = {
        {"null", false, "", false},
        {"true", true, "true", true},
        {"false", false, "false", true},
        {"0", false, "0", true},
        {"-7", true, "-7", true},
        {"18446744073709551615", true, "18446744073709551615", true},
        {"0.0", false, "0", true},
        {"1.5", true, "1.5", true},
        {"1e21", true, "1e+21", true},
        {"\"\"", false, "", false},
        {"\"x\"", true, "x", true},
        {"[]", false, "", false},
        {"[0]", true, "", false},
        {"{}", true, "", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.json);
        const auto v = boost::json::parse(c.json);
        bool present = false;
        CHECK(truthy(&v) == c.truthy);
        CHECK(text_of(&v, &present) == c.text);
        CHECK(present == c.present);
    }
    CHECK_FALSE(truthy(nullptr));
    CHECK(text_of(nullptr).empty());
}

TEST_CASE("has_markup finds a double brace anywhere and nothing else") {
    CHECK(has_markup("{{"));
    CHECK(has_markup("abc {{x}}"));
    CHECK(has_markup("{ {{"));
    CHECK(has_markup("{a{{"));
    CHECK_FALSE(has_markup(""));
    CHECK_FALSE(has_markup("{"));
    CHECK_FALSE(has_markup("{ { } }}"));
    CHECK_FALSE(has_markup("a{b{c{"));
}
