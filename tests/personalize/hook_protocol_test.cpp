#include "personalize/hook_protocol.hpp"

#include "personalize/contacts.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <string>

using namespace ember::personalize;
namespace json = boost::json;

namespace {

HookRequest sample_request() {
    HookRequest r;
    r.message_id = "0K3F2A1B0C9D8";
    r.campaign = "spring";
    r.tags = {"news"};
    r.from = "news@example.com";
    r.subject = "Hi {{ first_name }}";
    r.variables = {"first_name"};
    for (const char* a : {"Jane@Example.org", "bob@example.org", "carol@example.org"}) {
        HookRecipient rcpt;
        rcpt.address = a;
        rcpt.attributes = {{"first_name", "X"}};
        rcpt.tags = {"runner"};
        rcpt.engagement = {{"tier", "hot"}};
        r.recipients.push_back(std::move(rcpt));
    }
    return r;
}

HookAnswer answer(const std::string& json_text) {
    return parse_hook_answer(json::parse(json_text).as_object());
}

} // namespace

TEST_CASE("a request carries the message fields and one batch of recipients") {
    const auto r = sample_request();
    const auto body = json::parse(encode_hook_request(r, 1, 5)).as_object();
    CHECK(body.at("version").as_int64() == 1);
    CHECK(body.at("message_id").as_string() == "0K3F2A1B0C9D8");
    CHECK(body.at("campaign").as_string() == "spring");
    CHECK(body.at("tags").as_array().size() == 1);
    CHECK(body.at("from").as_string() == "news@example.com");
    CHECK(body.at("subject").as_string() == "Hi {{ first_name }}");
    CHECK(body.at("variables").as_array().at(0).as_string() == "first_name");
    const auto& rcpts = body.at("recipients").as_array();
    REQUIRE(rcpts.size() == 2);
    CHECK(rcpts[0].at("address").as_string() == "bob@example.org");
    CHECK(rcpts[0].at("attributes").at("first_name").as_string() == "X");
    CHECK(rcpts[0].at("tags").as_array().at(0).as_string() == "runner");
    CHECK(rcpts[0].at("engagement").at("tier").as_string() == "hot");
}

TEST_CASE("an answer sets vars, headers, variant, send_at and skip") {
    const auto a = answer(R"({"vars":{"offer":"20%"},"headers":{"X-Offer":"b"},"variant":"b",
                             "send_at":"2026-03-02T09:00:00+01:00","skip":{"reason":"bored"}})");
    CHECK(a.vars.at("offer").as_string() == "20%");
    REQUIRE(a.headers.size() == 1);
    CHECK(a.headers[0] == std::pair<std::string, std::string>{"X-Offer", "b"});
    CHECK(a.variant == "b");
    CHECK(a.send_at_ms == 1772438400000);
    CHECK(a.skip_reason == "bored");
    CHECK(a.warnings.empty());
}

TEST_CASE("send_at may be unix seconds, and skip a boolean or a string") {
    CHECK(answer(R"({"send_at":1772442000})").send_at_ms == 1772442000000);
    CHECK(answer(R"({"send_at":1772442000.5})").send_at_ms == 1772442000500);
    CHECK(answer(R"({"skip":true})").skip_reason == "hook");
    CHECK_FALSE(answer(R"({"skip":false})").skip_reason.has_value());
    CHECK(answer(R"({"skip":"unsubscribed in CRM"})").skip_reason == "unsubscribed in CRM");
    CHECK(answer(R"({"skip":{}})").skip_reason == "hook");
}

TEST_CASE("unusable fields are ignored with a warning and the rest still applies") {
    struct Case {
        std::string json_text;
        std::string warning;
    };
    const Case cases[] = {
        {R"({"vars":[1],"variant":"b"})", "vars is not an object"},
        {R"({"headers":{"From":"evil@example.net"},"variant":"b"})",
         "header From may not be set by the hook"},
        {R"({"headers":{"content-type":"text/html"},"variant":"b"})",
         "header content-type may not be set by the hook"},
        {R"({"headers":{"X-Ember-Vars":"{}"},"variant":"b"})",
         "header X-Ember-Vars may not be set by the hook"},
        {R"({"headers":{"Bad Name":"x"},"variant":"b"})",
         "header name \"Bad Name\" is not a field name"},
        {R"({"headers":{"X-N":5},"variant":"b"})", "header X-N is not a string"},
        {R"({"send_at":"next tuesday","variant":"b"})",
         "send_at is not an RFC 3339 date-time or unix seconds"},
        {R"({"send_at":-5,"variant":"b"})", "send_at is not an RFC 3339 date-time or unix seconds"},
        {R"({"skip":5,"variant":"b"})", "skip is not an object, a string or a boolean"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.json_text);
        const auto a = answer(c.json_text);
        REQUIRE(a.warnings.size() == 1);
        CHECK(a.warnings[0] == c.warning);
        CHECK(a.variant == "b");
    }
    const auto bad_variant = answer(R"({"variant":"a b"})");
    CHECK(bad_variant.variant.empty());
    CHECK(bad_variant.warnings.size() == 1);
}

TEST_CASE("header values lose control characters so they cannot add a field") {
    const auto a = answer(R"({"headers":{"X-Note":"a\r\nBcc: x@example.net"}})");
    REQUIRE(a.headers.size() == 1);
    CHECK(a.headers[0].second == "a  Bcc: x@example.net");
    CHECK(hook_may_set_header("Subject"));
    CHECK(hook_may_set_header("Reply-To"));
    CHECK_FALSE(hook_may_set_header("DKIM-Signature"));
    CHECK_FALSE(hook_may_set_header("ARC-Seal"));
    CHECK_FALSE(hook_may_set_header("list-unsubscribe"));
}

TEST_CASE("answers are matched to recipients by address, in any order and case") {
    const auto r = sample_request();
    const auto parsed = parse_hook_response(
        R"({"recipients":[{"address":"carol@example.org","variant":"c"},
                          {"address":"JANE@example.org","vars":{"x":1}},
                          {"address":"nobody@example.org","variant":"z"}]})",
        r, 0, 3);
    REQUIRE(parsed.index() == 0);
    const auto& answers = std::get<0>(parsed);
    REQUIRE(answers.size() == 3);
    CHECK(answers[0].vars.at("x").as_int64() == 1);
    CHECK(answers[1].vars.empty()); // no answer: sent as is
    CHECK(answers[1].variant.empty());
    CHECK(answers[2].variant == "c");
    // Only the batch's recipients are answered.
    const auto second =
        parse_hook_response(R"({"recipients":[{"address":"carol@example.org"}]})", r, 2, 1);
    REQUIRE(second.index() == 0);
    CHECK(std::get<0>(second).size() == 1);
}

TEST_CASE("a body that is not the contract's JSON fails the batch") {
    const auto r = sample_request();
    for (const char* body : {"", "not json", "[]", R"({"answers":[]})", R"({"recipients":{}})"}) {
        CAPTURE(body);
        CHECK(parse_hook_response(body, r, 0, 3).index() == 1);
    }
}

TEST_CASE("a hook recipient carries the contact's attributes, tags and engagement summary") {
    Contact c;
    c.address = "jane@example.org";
    c.attributes = {{"first_name", "Jane"}};
    c.tags = {"runner"};
    c.engagement = record_engagement({}, EngagementKind::Click, 1772442000000);
    const auto r = make_hook_recipient("Jane@Example.org", &c, 1772442000000 + 1000);
    CHECK(r.address == "Jane@Example.org");
    CHECK(r.attributes.at("first_name").as_string() == "Jane");
    CHECK(r.tags == std::vector<std::string>{"runner"});
    CHECK(r.engagement.at("tier").as_string() == "hot");
    const auto unknown = make_hook_recipient("x@y.example", nullptr, 1772442000000);
    CHECK(unknown.attributes.empty());
    CHECK(unknown.engagement.at("tier").as_string() == "never");
    CHECK(unknown.engagement.at("score").as_int64() == 150);
}
