#include "daemon/ab_service.hpp"

#include "daemon/ab_verbs.hpp"
#include "daemon/api_ab.hpp"
#include "daemon/ctl_ab.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/personalize_service.hpp"
#include "personalize/rfc2047.hpp"
#include "smtp/message_header.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace ember;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::int64_t kNow = 1'780'000'000'000; // 2026-05-28
constexpr std::uint64_t kMessageId = static_cast<std::uint64_t>(kNow - 1000) << 16;
constexpr auto kHour = std::chrono::hours(1);

struct RecordingDeliverer final : core::Deliverer {
    std::vector<core::DeliveryJob> jobs;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        std::vector<core::Outcome> out(job.recipients.size());
        for (auto& o : out) {
            o.kind = core::OutcomeKind::Delivered;
            o.code = 250;
        }
        jobs.push_back(std::move(job));
        co_return out;
    }
};

daemon::MessageRequest parsed(const std::string& body) {
    auto result = daemon::parse_message_request(body, {});
    if (auto* e = std::get_if<daemon::ApiError>(&result))
        FAIL("request refused: ", e->field, ": ", e->message);
    return std::get<daemon::MessageRequest>(result);
}

// The queued bytes the API writes for one recipient of `r` (without the
// ids and To:, which the merge does not care about).
std::string queued(const daemon::MessageRequest& r, const std::string& ab_field) {
    personalize::ComposeInput in;
    in.from_name = r.from_name;
    in.from_address = r.from_address;
    in.subject = r.subject;
    in.text = r.text;
    in.html = r.html;
    in.boundary_seed = "seed";
    daemon::apply_variants(r, in);
    std::string out = "Received: from api\r\n\tby test; date\r\nTo: x@dest.test\r\n";
    if (!ab_field.empty())
        out += "X-Ember-AB: " + ab_field + "\r\n";
    return out + personalize::compose(in);
}

std::string field(const std::string& content, std::string_view name) {
    const auto header = smtp::parse_header_block(content);
    const auto* f = smtp::find_field(header, name);
    if (f == nullptr)
        return "(none)";
    auto value = personalize::decode_words(smtp::unfold(f->value));
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
}

std::string body_of(const std::string& content) {
    const auto at = content.find("\r\n\r\n");
    return at == std::string::npos ? std::string() : content.substr(at + 4);
}

feedback::Event event(feedback::EventType type, std::string test, std::string variant,
                      bool unique = true, bool machine = false) {
    feedback::Event e;
    e.type = type;
    e.ab_test = std::move(test);
    e.variant = std::move(variant);
    if (type == feedback::EventType::Opened || type == feedback::EventType::Clicked) {
        e.extra["unique"] = unique;
        e.extra["machine"] = machine;
    }
    return e;
}

struct Fixture {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store;
    asio::io_context io;
    std::int64_t now = kNow;
    daemon::Config config;
    std::unique_ptr<daemon::AbService> ab;
    std::unique_ptr<daemon::PersonalizeService> personalize;
    RecordingDeliverer inner;
    std::unique_ptr<daemon::Dispatcher> dispatcher;
    int releases = 0;

    Fixture() {
        store = queue::test::open_store(queue::test::config_for(dir));
        std::string error;
        ab = daemon::AbService::create(io.get_executor(), *store, error, [this] { return now; });
        REQUIRE_MESSAGE(ab, error);
        ab->set_release([this] { ++releases; });
        personalize = daemon::PersonalizeService::create(io.get_executor(), config, *store, error,
                                                         nullptr, nullptr, [this] { return now; });
        REQUIRE_MESSAGE(personalize, error);
        dispatcher = std::make_unique<daemon::Dispatcher>(inner, [this] { return now; });
        personalize->add_stage_before_merge(std::make_shared<daemon::AbStage>(*ab));
        personalize->add_stages(*dispatcher);
    }

    template <typename T> T run(asio::awaitable<T> task) {
        T out{};
        bool done = false;
        asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
            REQUIRE_FALSE(e);
            out = std::move(v);
            done = true;
        });
        io.restart();
        io.run();
        REQUIRE(done);
        return out;
    }

    void create(const std::string& id, std::vector<std::string> names) {
        daemon::AbTest t;
        t.id = id;
        t.campaign = "spring";
        for (const auto& n : names)
            t.cells.push_back(daemon::AbCell{n, 25, 5, {}});
        t.rest = 10;
        REQUIRE(run(ab->create_test(std::move(t), kHour)));
    }

    // Dispatches one message for `address`: the outcome and the delivered bytes.
    std::pair<core::Outcome, std::string> send(const std::string& content,
                                               const std::string& address) {
        core::DeliveryJob job;
        job.message_id = kMessageId;
        job.queue_id = "Q1";
        job.domain = "dest.test";
        job.envelope.mail_from = "news@example.com";
        job.content = std::make_shared<const std::string>(content);
        core::JobRecipient r;
        r.spec.address = address;
        job.recipients.push_back(r);
        const auto before = inner.jobs.size();
        auto outcomes = run(dispatcher->deliver(std::move(job)));
        REQUIRE(outcomes.size() == 1);
        const auto delivered =
            inner.jobs.size() > before ? *inner.jobs.back().content : std::string("(held)");
        return {outcomes[0], delivered};
    }
};

const std::string kRequest = R"({"from": "Shop <news@example.com>", "subject": "Subject A",
    "text": "Hello,\nthe offer.\n", "recipients": ["x@dest.test"],
    "variants": [{"name": "a"}, {"name": "b", "subject": "Subject B"}],
    "ab": {"split": [25, 25], "duration": "1h", "metric": "clicks"}})";

} // namespace

// ---- composition: the merge renders the sections -------------------------

TEST_CASE("the merge renders a variant's subject, From display name and bodies, and the control "
          "without any variant") {
    Fixture f;
    const auto r = parsed(R"({"from": "Shop <news@example.com>", "subject": "Grüße A",
        "text": "Line 1\n{{#tag:vip}}\nVIP line\n{{/tag:vip}}\nLast line\n",
        "html": "<p>A</p>", "recipients": ["x@dest.test"],
        "variants": [{"name": "ctl"},
                     {"name": "b", "subject": "Grüße B", "from_name": "Team B",
                      "text": "Other text\nsecond line\n", "html": "<p>B</p>"},
                     {"name": "c", "from_name": "Team: C"}],
        "ab": {"split": [10, 10, 10], "duration": "1h", "metric": "opens"}})");
    f.create("t1", {"ctl", "b", "c"});
    struct Case {
        std::string cell;
        std::string subject, from, text, html;
    };
    const Case cases[] = {
        {"ctl", "Grüße A", "Shop <news@example.com>", "Line 1\r\nLast line\r\n", "<p>A</p>\r\n"},
        {"b", "Grüße B", "Team B <news@example.com>", "Other text\r\nsecond line\r\n",
         "<p>B</p>\r\n"},
        {"c", "Grüße A", "\"Team: C\" <news@example.com>", "Line 1\r\nLast line\r\n",
         "<p>A</p>\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.cell);
        const auto [outcome, out] = f.send(queued(r, "t1; cell=" + c.cell), "x@dest.test");
        CAPTURE(out);
        CHECK(outcome.kind == core::OutcomeKind::Delivered);
        CHECK(field(out, "Subject") == c.subject);
        CHECK(field(out, "From") == c.from);
        CHECK(out.find("Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Transfer-Encoding: 7bit\r\n\r\n" +
                       c.text) != std::string::npos);
        // "<p>A</p>" had no line break: every variant of the body gets one.
        CHECK(out.find(c.html + "\r\n--=_alt_seed") != std::string::npos);
        CHECK(out.find("{{") == std::string::npos);
        CHECK(out.find("X-Ember-AB") == std::string::npos); // stripped before signing
    }
}

TEST_CASE("a control body keeps its exact bytes when it ends in a line break") {
    Fixture f;
    const auto r = parsed(R"({"from": "news@example.com", "subject": "S",
        "text": "One\n\n  indented\nend\n", "recipients": ["x@dest.test"],
        "variants": [{"name": "a"}, {"name": "b", "text": "B body\n"}],
        "ab": {"split": [10, 10], "duration": "1h", "metric": "opens"}})");
    f.create("t2", {"a", "b"});
    auto plain = r;
    plain.variants.clear();
    const auto [o1, control] = f.send(queued(r, "t2; cell=a"), "x@dest.test");
    const auto [o2, untested] = f.send(queued(plain, ""), "x@dest.test");
    CHECK(body_of(control) == body_of(untested));
    CHECK(field(control, "Subject") == "S");
}

// ---- the service and the stage with an injected clock ---------------------

TEST_CASE("cells get their variant, the rest wait; more unique human clicks make b win and the "
          "rest get only b") {
    Fixture f;
    const auto r = parsed(kRequest);
    f.create("t3", {"a", "b"});
    const auto* test = f.ab->find("t3");
    REQUIRE(test != nullptr);
    CHECK(test->decide_at_ms == kNow + 3'600'000);

    CHECK(field(f.send(queued(r, "t3; cell=a"), "a1@dest.test").second, "Subject") == "Subject A");
    CHECK(field(f.send(queued(r, "t3; cell=b"), "b1@dest.test").second, "Subject") == "Subject B");
    const auto [held, nothing] = f.send(queued(r, "t3; cell=rest"), "r1@dest.test");
    CHECK(held.kind == core::OutcomeKind::Throttled);
    CHECK(held.not_before_ms == test->decide_at_ms + daemon::kHoldMarginMs);
    CHECK(held.text.find("held for A/B test t3") != std::string::npos);
    CHECK(nothing == "(held)");

    using feedback::EventType;
    for (int i = 0; i < 5; ++i) {
        f.ab->on_event(event(EventType::Delivered, "t3", "a"));
        f.ab->on_event(event(EventType::Delivered, "t3", "b"));
        f.ab->on_event(event(EventType::Clicked, "t3", "a", true, true)); // a scanner
        f.ab->on_event(event(EventType::Opened, "t3", "a"));
    }
    f.ab->on_event(event(EventType::Clicked, "t3", "a", false)); // not unique
    for (int i = 0; i < 3; ++i)
        f.ab->on_event(event(EventType::Clicked, "t3", "b"));
    f.ab->on_event(event(EventType::Delivered, "t3", "rest"));   // the rest never count
    f.ab->on_event(event(EventType::Clicked, "other", "b"));     // another test
    f.ab->on_event(event(EventType::Delivered, "t3", "nosuch")); // no such cell
    CHECK(test->cells[0].counts.delivered == 5);
    CHECK(test->cells[0].counts.clicks == 0);
    CHECK(test->cells[0].counts.opens == 5);
    CHECK(test->cells[1].counts.clicks == 3);

    f.now = kNow + 3'599'000;
    CHECK(f.ab->decide_due() == 0);
    CHECK(f.releases == 0);
    f.now = kNow + 3'600'000;
    CHECK(f.ab->decide_due() == 1);
    CHECK(f.releases == 1);
    CHECK(test->decided);
    CHECK(test->winner == "b");
    CHECK(test->decision.runner_up == std::optional<std::size_t>(0));
    CHECK(test->decision.winner_rate == doctest::Approx(0.6));
    CHECK(f.ab->decide_due() == 0); // once

    for (const std::string who : {"r1@dest.test", "r2@dest.test", "r3@dest.test"}) {
        CAPTURE(who);
        const auto [outcome, out] = f.send(queued(r, "t3; cell=rest"), who);
        CHECK(outcome.kind == core::OutcomeKind::Delivered);
        CHECK(field(out, "Subject") == "Subject B");
        CHECK(out.find("Subject A") == std::string::npos);
    }
}

TEST_CASE("with no clicks at all the control wins") {
    Fixture f;
    f.create("t4", {"a", "b"});
    f.now = kNow + 3'600'000;
    CHECK(f.ab->decide_due() == 1);
    CHECK(f.ab->find("t4")->winner == "a");
    CHECK_FALSE(f.ab->find("t4")->decision.significant);
}

TEST_CASE("a rest recipient whose test is unknown is sent the control, not held") {
    Fixture f;
    const auto r = parsed(kRequest);
    const auto [outcome, out] = f.send(queued(r, "nosuchtest; cell=rest"), "r@dest.test");
    CHECK(outcome.kind == core::OutcomeKind::Delivered);
    CHECK(field(out, "Subject") == "Subject A");
    const auto [o2, cell_b] = f.send(queued(r, "nosuchtest; cell=b"), "b@dest.test");
    CHECK(field(cell_b, "Subject") == "Subject B");
}

TEST_CASE("a rest recipient that comes back after decide_at but before the decision is held "
          "briefly") {
    Fixture f;
    const auto r = parsed(kRequest);
    f.create("t5", {"a", "b"});
    f.now = kNow + 10 * 3'600'000;
    const auto [outcome, out] = f.send(queued(r, "t5; cell=rest"), "r@dest.test");
    CHECK(outcome.kind == core::OutcomeKind::Throttled);
    CHECK(outcome.not_before_ms == f.now + 1000);
}

TEST_CASE("records, counts and decisions survive a restart") {
    Fixture f;
    f.create("t6", {"a", "b"});
    f.ab->on_event(event(feedback::EventType::Delivered, "t6", "b"));
    f.ab->on_event(event(feedback::EventType::Clicked, "t6", "b"));
    f.now = kNow + 3'600'000;
    CHECK(f.ab->decide_due() == 1);
    f.ab->on_event(event(feedback::EventType::Delivered, "t6", "a")); // after the decision
    f.ab->stop();
    // Store writes commit in order: once this one is durable, the saves are too.
    f.create("later", {"a", "b"});
    std::string error;
    auto again =
        daemon::AbService::create(f.io.get_executor(), *f.store, error, [&f] { return f.now; });
    REQUIRE_MESSAGE(again, error);
    const auto* t = again->find("t6");
    REQUIRE(t != nullptr);
    CHECK(t->decided);
    CHECK(t->winner == "b");
    CHECK(t->decision.winner == 1);
    CHECK(t->cells[1].counts.clicks == 1);
    CHECK(t->cells[0].counts.delivered == 1);
    CHECK(t->created_ms == kNow);
}

TEST_CASE("a decided test is dropped kAbRetentionMs after its decision; an open one stays") {
    Fixture f;
    f.create("old", {"a", "b"});
    f.now = kNow + 3'600'000;
    CHECK(f.ab->decide_due() == 1);
    f.now += daemon::kAbRetentionMs + 1;
    f.create("open", {"a", "b"}); // undecided, and its commit follows the decision's
    std::string error;
    auto later =
        daemon::AbService::create(f.io.get_executor(), *f.store, error, [&f] { return f.now; });
    REQUIRE_MESSAGE(later, error);
    CHECK(later->find("old") == nullptr);
    CHECK(later->find("open") != nullptr);
    f.create("flush", {"a", "b"}); // the erase committed before this one
    auto third =
        daemon::AbService::create(f.io.get_executor(), *f.store, error, [&f] { return f.now; });
    REQUIRE_MESSAGE(third, error);
    CHECK(third->find("old") == nullptr);
}

TEST_CASE("X-Ember-AB parses as ID; cell=NAME and refuses anything else") {
    const auto ok = daemon::parse_ab_field(" 0123abcd; cell=rest \r\n");
    REQUIRE(ok);
    CHECK(ok->test_id == "0123abcd");
    CHECK(ok->cell == "rest");
    CHECK(daemon::format_ab_field("x", "b") == "x; cell=b");
    for (const std::string bad : {"", "x", "x; b", "; cell=a", "x; cell=", "x;cellb"}) {
        CAPTURE(bad);
        CHECK_FALSE(daemon::parse_ab_field(bad));
    }
}

TEST_CASE("ab.status and ab.list answer the test; emberctl prints cells and the decision") {
    Fixture f;
    f.create("t7", {"a", "b"});
    f.ab->on_event(event(feedback::EventType::Delivered, "t7", "b"));
    f.ab->on_event(event(feedback::EventType::Clicked, "t7", "b"));
    CHECK_FALSE(daemon::ab_status(*f.ab, json::object{{"id", "nope"}}).ok());
    CHECK_FALSE(daemon::ab_status(*f.ab, json::object{}).ok());
    CHECK_FALSE(daemon::ab_status(*f.ab, json::object{{"id", "t7"}, {"x", 1}}).ok());
    const auto testing = daemon::ab_status(*f.ab, json::object{{"id", "t7"}});
    REQUIRE(testing.ok());
    CHECK(testing.result().at("state") == "testing");
    CHECK(testing.result().at("decision").is_null());
    const auto printed_testing = daemon::ctl::format_ab_status(testing.result());
    CHECK(printed_testing.out.find("no decision yet") != std::string::npos);

    f.now = kNow + 3'600'000;
    CHECK(f.ab->decide_due() == 1);
    const auto decided = daemon::ab_status(*f.ab, json::object{{"id", "t7"}});
    REQUIRE(decided.ok());
    CHECK(decided.result().at("state") == "decided");
    CHECK(decided.result().at("winner") == "b");
    CHECK(decided.result().at("cells").at(1).at("clicks") == 1);
    const auto printed = daemon::ctl::format_ab_status(decided.result()).out;
    CAPTURE(printed);
    CHECK(printed.find("winner:      b\n") != std::string::npos);
    CHECK(printed.find("100.0%") != std::string::npos);
    CHECK(printed.find("significant") != std::string::npos);

    const auto list = daemon::ab_list(*f.ab, json::object{});
    REQUIRE(list.ok());
    CHECK(list.result().at("tests").as_array().size() == 1);
    CHECK(daemon::ctl::format_ab_list(list.result()).out.find("t7") != std::string::npos);
}
