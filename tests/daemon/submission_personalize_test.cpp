#include "daemon/submission_personalize.hpp"

#include "daemon/contact_events.hpp"
#include "personalize/time_text.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <future>
#include <string>
#include <vector>

using namespace ember;
namespace asio = boost::asio;

namespace {

std::string message(std::string_view extra_headers, std::string_view body) {
    return std::string("From: App <app@sender.example>\r\nTo: user@dest.example\r\n"
                       "Subject: hello\r\n") +
           std::string(extra_headers) + "\r\n" + std::string(body);
}

template <typename T> T run(asio::awaitable<T> task) {
    asio::io_context io;
    auto future = asio::co_spawn(io, std::move(task), asio::use_future);
    io.run();
    return future.get();
}

std::int64_t at(const char* text) {
    const auto t = personalize::parse_rfc3339(text);
    REQUIRE(t.has_value());
    return *t;
}

personalize::ContactResult wait_write(const std::function<void(personalize::ContactDone)>& start) {
    std::promise<personalize::ContactResult> promise;
    auto future = promise.get_future();
    start([&promise](personalize::ContactResult r) { promise.set_value(std::move(r)); });
    return future.get();
}

struct Contacts {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store = queue::test::open_store(queue::test::config_for(dir));
    std::unique_ptr<personalize::ContactStore> contacts;
    Contacts() {
        std::string error;
        contacts = personalize::ContactStore::open(*store, {}, error);
        REQUIRE(contacts != nullptr);
    }
    void opens(const std::string& address, std::int64_t time, int n, std::string domain = {}) {
        for (int i = 0; i < n; ++i) {
            const auto r = wait_write([&](personalize::ContactDone done) {
                contacts->record_event(address, personalize::EngagementKind::Open,
                                       time - i * 7 * personalize::kMsPerDay, domain,
                                       std::move(done));
            });
            REQUIRE(r.status == personalize::ContactStatus::Ok);
        }
    }
};

queue::Message record_for(std::vector<std::string> rcpts, std::int64_t now) {
    queue::Message m;
    m.id = 1;
    m.envelope.mail_from = "bounce@sender.example";
    for (auto& a : rcpts)
        m.recipients.push_back(
            queue::test::recipient(std::move(a), queue::RecipientState::Queued, now));
    return m;
}

} // namespace

TEST_CASE("templates and X-Ember-* fields are checked at submission with 5.6.x replies") {
    struct Case {
        const char* what;
        std::string raw;
        int code;
        const char* enhanced;
        const char* contains;
    };
    const std::vector<Case> cases{
        {"plain message", message("", "Hi.\r\n"), 0, "", ""},
        {"valid template", message("", "Hi {{ name | default: \"there\" }}.\r\n"), 0, "", ""},
        {"unclosed tag", message("", "line one\r\nHi {{ name\r\n"), 550, "5.6.0",
         "line 2, column 4"},
        {"unclosed section", message("", "{{#vip}}\r\nVIP\r\n"), 550, "5.6.0", "line 1"},
        {"markup hidden in quoted-printable",
         message("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
                 "Content-Transfer-Encoding: quoted-printable\r\n",
                 "Hi =7B=7B name\r\n"),
         550, "5.6.0", "line 1"},
        {"X-Ember-Vars not JSON", message("X-Ember-Vars: {nope\r\n", "Hi.\r\n"), 550, "5.6.0",
         "X-Ember-Vars"},
        {"X-Ember-Vars not an object", message("X-Ember-Vars: [1, 2]\r\n", "Hi.\r\n"), 550, "5.6.0",
         "X-Ember-Vars"},
        {"two X-Ember-Vars",
         message("X-Ember-Vars: {\"a\": 1}\r\nX-Ember-Vars: {\"b\": 2}\r\n", "Hi.\r\n"), 550,
         "5.6.0", "X-Ember-Vars"},
        {"X-Ember-Vars valid", message("X-Ember-Vars: {\"a\": 1}\r\n", "Hi {{ a }}\r\n"), 0, "",
         ""},
        {"send-within not a duration", message("X-Ember-Send-Within: soon\r\n", "Hi.\r\n"), 550,
         "5.6.0", "not a duration"},
        {"two send-within fields",
         message("X-Ember-Send-Within: 1h\r\nX-Ember-Send-Within: 2h\r\n", "Hi.\r\n"), 550, "5.6.0",
         "more than one"},
        {"send-within 24h", message("X-Ember-Send-Within: 24h\r\n", "Hi.\r\n"), 0, "", ""},
    };
    for (const auto& c : cases) {
        const std::string what = c.what;
        CAPTURE(what);
        const auto verdict = daemon::check_personalization(c.raw);
        if (c.code == 0) {
            CHECK_FALSE(verdict.has_value());
            continue;
        }
        REQUIRE(verdict.has_value());
        CHECK_FALSE(verdict->accept);
        CHECK(verdict->code == c.code);
        CHECK(verdict->enhanced == c.enhanced);
        CAPTURE(verdict->text);
        CHECK(verdict->text.find(c.contains) != std::string::npos);
    }
}

TEST_CASE("only messages that could hold markup are compiled") {
    CHECK_FALSE(daemon::may_personalize(message("", "Hi { there }, price {5}.\r\n")));
    for (const char* trigger :
         {"{{", "=7B", "=7b", "=?utf-8?q?x?=", "BASE64", "X-EMBER-VARS", "utf-16", "UTF-7"}) {
        CAPTURE(trigger);
        CHECK(daemon::may_personalize(message("", std::string("see ") + trigger + "\r\n")));
    }
}

TEST_CASE("strip_header_fields removes the field and its continuation lines, not the body") {
    auto content = message("x-ember-send-within: 24h\r\n\tfolded\r\nX-Other: 1\r\n",
                           "X-Ember-Send-Within: body line stays\r\n");
    CHECK(daemon::strip_header_fields(content, "X-Ember-Send-Within") == 1);
    CHECK(content == message("X-Other: 1\r\n", "X-Ember-Send-Within: body line stays\r\n"));
    CHECK(daemon::strip_header_fields(content, "X-Ember-Send-Within") == 0);
}

TEST_CASE("PersonalizeGate refuses a bad template on submission listeners only") {
    daemon::PersonalizeGate gate;
    const auto raw = message("", "Hi {{ name\r\n");
    smtp::ContentCheck check;
    check.listener.mode = smtp::ListenerMode::Submission;
    check.content = raw;
    const auto refused = run(gate.check(check));
    CHECK_FALSE(refused.accept);
    CHECK(refused.code == 550);
    check.listener.mode = smtp::ListenerMode::Inbound;
    CHECK(run(gate.check(check)).accept);
}

namespace {

class Fixed final : public smtp::ContentPolicy {
public:
    explicit Fixed(bool accept) : accept_(accept) {}
    asio::awaitable<smtp::PolicyVerdict> check(smtp::ContentCheck) override {
        ++calls;
        co_return smtp::PolicyVerdict{accept_, accept_ ? 0 : 550, "5.7.1", "no"};
    }
    int calls = 0;

private:
    bool accept_;
};

} // namespace

TEST_CASE("PolicyChain runs policies in order and stops at the first refusal") {
    Fixed yes(true), no(false), never(true);
    daemon::PolicyChain chain;
    chain.add(&yes);
    chain.add(&no);
    chain.add(&never);
    const auto verdict = run(chain.check(smtp::ContentCheck{}));
    CHECK_FALSE(verdict.accept);
    CHECK(verdict.code == 550);
    CHECK(yes.calls == 1);
    CHECK(no.calls == 1);
    CHECK(never.calls == 0);
}

TEST_CASE("send-time planning gives recipients with different histograms different slots") {
    Contacts c;
    const auto now = at("2026-03-02T00:30:00Z");                  // a Monday
    c.opens("early@dest.example", at("2026-02-23T05:10:00Z"), 6); // Mondays 05:xx
    c.opens("late@dest.example", at("2026-02-23T10:40:00Z"), 6);  // Mondays 10:xx
    c.opens("few@dest.example", at("2026-02-23T07:00:00Z"), 2);   // too little history
    daemon::SendTimePlanner planner(*c.contacts, {});
    auto content = message("X-Ember-Send-Within: 24h\r\n", "Hi.\r\n");
    auto record = record_for(
        {"Early@dest.example", "late@dest.example", "few@dest.example", "new@dest.example"}, now);
    const auto slots = planner.plan(content, record, now, "q1");
    REQUIRE(slots.size() == 4);
    CHECK(content == message("", "Hi.\r\n"));
    CHECK(record.size == content.size());
    CHECK(record.recipients[0].next_attempt_ms == at("2026-03-02T05:00:00Z"));
    CHECK(slots[0].time.source == personalize::SendTimeSource::Contact);
    CHECK(record.recipients[1].next_attempt_ms == at("2026-03-02T10:00:00Z"));
    CHECK(record.recipients[2].next_attempt_ms == now);
    CHECK(slots[2].time.source == personalize::SendTimeSource::Now);
    CHECK(record.recipients[3].next_attempt_ms == now);
}

TEST_CASE("without contact history the sending domain's best hour is used, then now") {
    Contacts c;
    const auto now = at("2026-03-02T00:30:00Z");
    // Opens of other contacts of mail from sender.example, at 03:xx on Mondays.
    for (int i = 0; i < 10; ++i)
        c.opens("reader" + std::to_string(i) + "@dest.example", at("2026-02-23T03:20:00Z"), 5,
                "sender.example");
    daemon::SendTimePlanner planner(*c.contacts, {});
    auto content = message("X-Ember-Send-Within: 12h\r\n", "Hi.\r\n");
    auto record = record_for({"new@dest.example"}, now);
    auto slots = planner.plan(content, record, now, "q1");
    REQUIRE(slots.size() == 1);
    CHECK(slots[0].time.source == personalize::SendTimeSource::Domain);
    CHECK(record.recipients[0].next_attempt_ms == at("2026-03-02T03:00:00Z"));

    // Another sending domain has no history: now.
    auto other = std::string("From: other@elsewhere.example\r\nTo: x@dest.example\r\n"
                             "X-Ember-Send-Within: 12h\r\n\r\nHi.\r\n");
    auto record2 = record_for({"new@dest.example"}, now);
    slots = planner.plan(other, record2, now, "q2");
    REQUIRE(slots.size() == 1);
    CHECK(slots[0].time.source == personalize::SendTimeSource::Now);
    CHECK(record2.recipients[0].next_attempt_ms == now);
}

TEST_CASE("a window over the maximum is cut and a message without the field is left alone") {
    Contacts c;
    const auto now = at("2026-03-02T00:30:00Z");
    c.opens("weekly@dest.example", at("2026-02-25T09:00:00Z"), 6); // Wednesdays 09:xx
    personalize::SendTimeConfig config;
    config.max_window = std::chrono::hours(24);
    daemon::SendTimePlanner planner(*c.contacts, config);
    auto content = message("X-Ember-Send-Within: 7d\r\n", "Hi.\r\n");
    auto record = record_for({"weekly@dest.example"}, now);
    (void)planner.plan(content, record, now, "q1");
    CHECK(record.recipients[0].next_attempt_ms == now); // Wednesday is past the cut window

    auto plain = message("", "Hi.\r\n");
    auto untouched = record_for({"weekly@dest.example"}, now - 5);
    CHECK(planner.plan(plain, untouched, now, "q2").empty());
    CHECK(untouched.recipients[0].next_attempt_ms == now - 5);
}

TEST_CASE("delivered and opened events update the contact; other events do not") {
    Contacts c;
    feedback::Event delivered;
    delivered.type = feedback::EventType::Delivered;
    delivered.recipient = "User@dest.example";
    delivered.sending_domain = "sender.example";
    delivered.time_ms = at("2026-03-02T08:00:00Z");
    CHECK(daemon::record_contact_event(*c.contacts, delivered));
    auto deferred = delivered;
    deferred.type = feedback::EventType::Deferred;
    deferred.recipient = "other@dest.example";
    CHECK_FALSE(daemon::record_contact_event(*c.contacts, deferred));
    // The writes are queued on the committer; a synchronous one after them
    // completes after them.
    c.opens("marker@dest.example", delivered.time_ms, 1);
    const auto contact = c.contacts->get("user@dest.example");
    REQUIRE(contact.has_value());
    CHECK(contact->engagement.last_delivery_ms == delivered.time_ms);
    CHECK_FALSE(c.contacts->get("other@dest.example").has_value());
}

TEST_CASE("a machine open or click is not engagement; a human one is") {
    Contacts c;
    feedback::Event open;
    open.type = feedback::EventType::Opened;
    open.recipient = "prefetched@dest.example";
    open.sending_domain = "sender.example";
    open.time_ms = at("2026-03-02T08:00:00Z");
    open.extra["machine"] = true;
    open.extra["machine_reason"] = "apple-mpp";
    CHECK_FALSE(daemon::record_contact_event(*c.contacts, open));
    auto click = open;
    click.type = feedback::EventType::Clicked;
    click.extra["machine_reason"] = "fast-click";
    CHECK_FALSE(daemon::record_contact_event(*c.contacts, click));
    auto human = open;
    human.recipient = "reader@dest.example";
    human.extra["machine"] = false;
    CHECK(daemon::record_contact_event(*c.contacts, human));
    c.opens("marker@dest.example", open.time_ms, 1); // after the queued writes
    CHECK_FALSE(c.contacts->get("prefetched@dest.example").has_value());
    const auto reader = c.contacts->get("reader@dest.example");
    REQUIRE(reader.has_value());
    CHECK(reader->engagement.last_open_ms == open.time_ms);
}
