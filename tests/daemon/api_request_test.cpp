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
