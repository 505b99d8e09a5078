#include "daemon/api_request.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <string>

namespace ed = ember::daemon;
namespace json = boost::json;

namespace {

const ed::RequestLimits kLimits{3, 4096};

// A minimal valid request with `patch` merged over it (null removes a key).
std::string request(const std::string& patch = "{}") {
    auto base = json::parse(R"({"from": "Shop <news@example.com>", "subject": "Hi",
                                "text": "Hello", "recipients": [{"address": "a@x.test"}]})")
                    .as_object();
    const auto changes = json::parse(patch);
    for (const auto& kv : changes.as_object()) {
        if (kv.value().is_null())
            base.erase(kv.key());
        else
            base[kv.key()] = kv.value();
    }
    return json::serialize(base);
}

ed::ApiError error_of(const std::string& body) {
    auto result = ed::parse_message_request(body, kLimits);
    REQUIRE(std::holds_alternative<ed::ApiError>(result));
    return std::get<ed::ApiError>(result);
}

} // namespace

TEST_CASE("a minimal request parses into its parts") {
    auto result = ed::parse_message_request(request(), kLimits);
    REQUIRE(std::holds_alternative<ed::MessageRequest>(result));
    const auto& r = std::get<ed::MessageRequest>(result);
    CHECK(r.from_name == "Shop");
    CHECK(r.from_address == "news@example.com");
    CHECK(r.from_domain == "example.com");
    CHECK(r.subject == "Hi");
    CHECK(r.text == "Hello");
    CHECK_FALSE(r.html.has_value());
    REQUIRE(r.recipients.size() == 1);
    CHECK(r.recipients[0].address == "a@x.test");
}

TEST_CASE("every field is read: vars, campaign, tags, send_within, attachments, headers") {
    auto result = ed::parse_message_request(
        request(R"({"from": {"address": "n@Example.COM", "name": "Ünï"}, "html": "<p>x</p>",
                    "vars": {"a": 1}, "campaign": "spring", "tags": ["t1", "b:2"],
                    "send_within": "360m", "headers": {"Reply-To": "r@example.com"},
                    "attachments": [{"filename": "a.txt", "content_type": "Text/Plain",
                                     "content": "aGVsbG8="}],
                    "recipients": ["b@x.test", {"address": "c@x.test", "name": "C",
                                                "vars": {"a": 2}}]})"),
        kLimits);
    REQUIRE(std::holds_alternative<ed::MessageRequest>(result));
    const auto& r = std::get<ed::MessageRequest>(result);
    CHECK(r.from_name == "Ünï");
    CHECK(r.from_domain == "example.com");
    CHECK(r.html == "<p>x</p>");
    CHECK(r.vars.at("a") == 1);
    CHECK(r.campaign == "spring");
    CHECK(r.tags == std::vector<std::string>{"t1", "b:2"});
    CHECK(r.send_within == "6h");
    REQUIRE(r.headers.size() == 1);
    CHECK(r.headers[0].first == "Reply-To");
    REQUIRE(r.attachments.size() == 1);
    CHECK(r.attachments[0].data == "hello");
    CHECK(r.attachments[0].content_type == "text/plain");
    REQUIRE(r.recipients.size() == 2);
    CHECK(r.recipients[1].name == "C");
    CHECK(r.recipients[1].vars.at("a") == 2);
}

TEST_CASE("each malformed field is a 400 naming that field") {
    struct Case {
        std::string patch;
        std::string field;
    };
    const Case cases[] = {
        {R"({"from": null})", "from"},
        {R"({"from": "not an address"})", "from"},
        {R"({"from": "a@b, c@d"})", "from"},
        {R"({"from": {"name": "x"}})", "from.address"},
        {R"({"from": {"address": "a@b", "nick": "x"}})", "from.nick"},
        {R"({"subject": "two\r\nlines"})", "subject"},
        {R"({"subject": 5})", "subject"},
        {R"({"text": null})", "text"},
        {R"({"text": "nul\u0000"})", "text"},
        {R"({"recipients": []})", "recipients"},
        {R"({"recipients": "a@x.test"})", "recipients"},
        {R"({"recipients": ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]})", "recipients"},
        {R"({"recipients": [{"address": "ok@x.test"}, {"name": "n"}]})", "recipients[1].address"},
        {R"({"recipients": ["ok@x.test", "ok@x.test", {"address": "bad@"}]})",
         "recipients[1].address"},
        {R"({"recipients": ["ok@x.test", "o2@x.test", {"address": "bad@"}]})",
         "recipients[2].address"},
        {R"({"recipients": [{"address": "a@x.test", "vars": [1]}]})", "recipients[0].vars"},
        {R"({"recipients": [5]})", "recipients[0]"},
        {R"({"headers": {"Subject": "x"}})", "headers.Subject"},
        {R"({"headers": {"X-Ember-Vars": "{}"}})", "headers.X-Ember-Vars"},
        {R"({"headers": {"Content-Type": "text/plain"}})", "headers.Content-Type"},
        {R"({"headers": {"Bad Name": "x"}})", "headers.Bad Name"},
        {R"({"headers": {"X-A": "line\nbreak"}})", "headers.X-A"},
        {R"({"headers": ["X-A"]})", "headers"},
        {R"({"attachments": [{"content": "not base64!"}]})", "attachments[0].content"},
        {R"({"attachments": [{"content": "aGVsbG8"}]})", "attachments[0].content"},
        {R"({"attachments": [{"filename": "a"}]})", "attachments[0].content"},
        {R"({"attachments": [{"content": "", "content_type": "nonsense"}]})",
         "attachments[0].content_type"},
        {R"({"attachments": [{"content": "", "content_type": "multipart/mixed"}]})",
         "attachments[0].content_type"},
        {R"({"vars": "x"})", "vars"},
        {R"({"campaign": ""})", "campaign"},
        {R"({"tags": ["has space"]})", "tags[0]"},
        {R"({"tags": "t"})", "tags"},
        {R"({"send_within": "soon"})", "send_within"},
        {R"({"send_within": "90d"})", "send_within"},
        {R"({"bcc": "x@y"})", "bcc"},
        {R"({"raw": "From: a@example.com\r\n\r\nbody"})", "subject"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.patch);
        const auto e = error_of(request(c.patch));
        CHECK(e.status == 400);
        CHECK(e.field == c.field);
        CHECK_FALSE(e.message.empty());
    }
}

TEST_CASE("a body that is not a JSON object is a 400 without a field") {
    for (const std::string body : {"", "{", "[]", "\"x\"", "{\"from\": }"}) {
        CAPTURE(body);
        const auto e = error_of(body);
        CHECK(e.status == 400);
        CHECK(e.field.empty());
    }
}

TEST_CASE("a request over the size limit is a 413") {
    const auto e = error_of(request(R"({"text": ")" + std::string(5000, 'a') + R"("})"));
    CHECK(e.status == 413);
}

TEST_CASE("raw takes From from the message and refuses a broken header") {
    const std::string raw = "From: Shop <n@example.com>\r\nSubject: x\r\n\r\nbody\r\n";
    json::object o{{"raw", raw}, {"recipients", json::array{"a@x.test"}}};
    auto result = ed::parse_message_request(json::serialize(o), kLimits);
    REQUIRE(std::holds_alternative<ed::MessageRequest>(result));
    CHECK(std::get<ed::MessageRequest>(result).from_domain == "example.com");

    o["raw"] = "Subject: no from\r\n\r\nbody\r\n";
    const auto e = error_of(json::serialize(o));
    CHECK(e.field == "raw");
}

TEST_CASE("error_json names the field and the message") {
    CHECK(ed::error_json({400, "recipients[3].address", "bad"}) ==
          R"({"error":{"field":"recipients[3].address","message":"bad"}})");
    CHECK(ed::error_json({413, "", "big"}) == R"({"error":{"message":"big"}})");
}

TEST_CASE("X-Ember-Vars is ASCII JSON folded between tokens that unfolds to the same object") {
    json::object vars{{"name", "Zoë 😀"}, {"list", json::array{1, 2, 3}}};
    for (int i = 0; i < 20; ++i)
        vars["key_" + std::to_string(i)] = "value, with a comma " + std::to_string(i);
    const auto value = ed::vars_field_value(vars);
    for (const char c : value)
        CHECK(static_cast<unsigned char>(c) < 0x80);
    std::size_t longest = 0;
    std::size_t line = 0;
    std::string unfolded;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value.compare(i, 2, "\r\n") == 0) {
            longest = std::max(longest, line);
            line = 0;
            ++i;
            continue;
        }
        unfolded += value[i];
        ++line;
    }
    CHECK(longest < 998);
    CHECK(value.find("\r\n ") != std::string::npos);
    CHECK(json::parse(unfolded).as_object() == vars);
    CHECK(ed::vars_field_value({}).empty());
}

TEST_CASE("a recipient's vars override the message's key by key") {
    const json::object message{{"a", 1}, {"b", 2}};
    const json::object own{{"b", 3}, {"c", 4}};
    CHECK(ed::layered_vars(message, own) == json::object{{"a", 1}, {"b", 3}, {"c", 4}});
}

// ---- A/B tests: variants and ab ----

namespace {

const std::string kAb = R"("ab": {"split": [10, 10], "duration": "4h", "metric": "clicks"})";
const std::string kTwo = R"("variants": [{"name": "a"}, {"name": "b", "subject": "B"}])";

} // namespace

TEST_CASE("variants and ab parse into the request") {
    auto result =
        ed::parse_message_request(request(R"({"html": "<p>h</p>", "variants": [{"name": "control"},
                    {"name": "b_2", "subject": "Sb", "from_name": "Fb", "text": "Tb",
                     "html": "<p>b</p>"}],
                    "ab": {"split": [12.5, 10], "duration": "90m", "metric": "opens"}})"),
                                  kLimits);
    REQUIRE(std::holds_alternative<ed::MessageRequest>(result));
    const auto& r = std::get<ed::MessageRequest>(result);
    REQUIRE(r.variants.size() == 2);
    CHECK(r.variants[0].name == "control");
    CHECK_FALSE(r.variants[0].subject.has_value());
    CHECK(r.variants[1].subject == "Sb");
    CHECK(r.variants[1].from_name == "Fb");
    CHECK(r.variants[1].text == "Tb");
    CHECK(r.variants[1].html == "<p>b</p>");
    REQUIRE(r.ab.has_value());
    CHECK(r.ab->split == std::vector<double>{12.5, 10});
    CHECK(r.ab->duration == std::chrono::minutes(90));
    CHECK(r.ab->metric == "opens");
}

TEST_CASE("a split of 100 percent (no rest) and a duration of one second are allowed") {
    const auto body = request(
        R"({)" + kTwo + R"(, "ab": {"split": [50, 50], "duration": "1s", "metric": "clicks"}})");
    CHECK(std::holds_alternative<ed::MessageRequest>(ed::parse_message_request(body, kLimits)));
}

TEST_CASE("each malformed A/B field is a 400 naming that field") {
    struct Case {
        std::string patch;
        std::string field;
    };
    const std::string ab_two = kAb;
    const Case cases[] = {
        {R"({"variants": [{"name": "a"}]})", "variants"},
        {R"({"variants": {"name": "a"}})", "variants"},
        {R"({"variants": [{"name": "a"},{"name": "b"},{"name": "c"},{"name": "d"},{"name": "e"},
             {"name": "f"},{"name": "g"},{"name": "h"},{"name": "i"},{"name": "j"},
             {"name": "k"}]})",
         "variants"},
        {R"({"variants": [{"name": "a"}, "b"], )" + ab_two + "}", "variants[1]"},
        {R"({"variants": [{"name": "a"}, {"subject": "x"}], )" + ab_two + "}", "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": "B"}], )" + ab_two + "}", "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": ""}], )" + ab_two + "}", "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": "x23456789012345678901234567890123"}], )" +
             ab_two + "}",
         "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": 7}], )" + ab_two + "}", "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": "a"}], )" + ab_two + "}", "variants[1].name"},
        {R"({"variants": [{"name": "a"}, {"name": "b", "body": "x"}], )" + ab_two + "}",
         "variants[1].body"},
        {R"({"variants": [{"name": "a"}, {"name": "b", "subject": "x\ny"}], )" + ab_two + "}",
         "variants[1].subject"},
        {R"({"variants": [{"name": "a"}, {"name": "b", "from_name": 1}], )" + ab_two + "}",
         "variants[1].from_name"},
        {R"({"variants": [{"name": "a"}, {"name": "b", "html": "<p>"}], )" + ab_two + "}",
         "variants[1].html"},
        {R"({"text": null, "html": "<p>", "variants": [{"name": "a"},
             {"name": "b", "text": "t"}], )" +
             ab_two + "}",
         "variants[1].text"},
        {R"({"variants": [{"name": "a"}, {"name": "b", "text": "nul\u0000"}], )" + ab_two + "}",
         "variants[1].text"},
        {"{" + kTwo + "}", "ab"},
        {"{" + kAb + "}", "ab"},
        {"{" + kTwo + R"(, "ab": [10, 10]})", "ab"},
        {"{" + kTwo + R"(, "ab": {"duration": "1h", "metric": "clicks"}})", "ab.split"},
        {"{" + kTwo + R"(, "ab": {"split": [10], "duration": "1h", "metric": "clicks"}})",
         "ab.split"},
        {"{" + kTwo + R"(, "ab": {"split": [60, 50], "duration": "1h", "metric": "clicks"}})",
         "ab.split"},
        {"{" + kTwo + R"(, "ab": {"split": [0, 10], "duration": "1h", "metric": "clicks"}})",
         "ab.split[0]"},
        {"{" + kTwo + R"(, "ab": {"split": [10, "10"], "duration": "1h", "metric": "clicks"}})",
         "ab.split[1]"},
        {"{" + kTwo + R"(, "ab": {"split": [10, -1], "duration": "1h", "metric": "clicks"}})",
         "ab.split[1]"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "metric": "clicks"}})", "ab.duration"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": "31d", "metric": "clicks"}})",
         "ab.duration"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": "0s", "metric": "clicks"}})",
         "ab.duration"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": 60, "metric": "clicks"}})",
         "ab.duration"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": "1h"}})", "ab.metric"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": "1h", "metric": "bounces"}})",
         "ab.metric"},
        {"{" + kTwo + R"(, "ab": {"split": [10, 10], "duration": "1h", "metric": "clicks",
             "winner": "a"}})",
         "ab.winner"},
        {R"({"subject": null, "text": null, "from": null,
             "raw": "From: a@example.com\r\nSubject: x\r\n\r\nbody", )" +
             kTwo + ", " + kAb + "}",
         "variants"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.patch);
        const auto e = error_of(request(c.patch));
        CHECK(e.status == 400);
        CHECK(e.field == c.field);
        CHECK_FALSE(e.message.empty());
    }
}

TEST_CASE("tracking becomes the X-Ember-Track value; a malformed one names its field") {
    const std::pair<std::string, std::string> cases[] = {
        {R"({"tracking": {"opens": true, "clicks": true}})", "opens, clicks"},
        {R"({"tracking": {"opens": true}})", "opens"},
        {R"({"tracking": {"clicks": true, "opens": false}})", "clicks"},
        {R"({"tracking": {}})", "none"},
        {R"({})", ""},
    };
    for (const auto& [patch, want] : cases) {
        CAPTURE(patch);
        auto result = ed::parse_message_request(request(patch), kLimits);
        REQUIRE(std::holds_alternative<ed::MessageRequest>(result));
        CHECK(std::get<ed::MessageRequest>(result).track == want);
    }
    CHECK(error_of(request(R"({"tracking": true})")).field == "tracking");
    CHECK(error_of(request(R"({"tracking": {"opens": "yes"}})")).field == "tracking.opens");
    CHECK(error_of(request(R"({"tracking": {"pixels": true}})")).field == "tracking.pixels");
}
