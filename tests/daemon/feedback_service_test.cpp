#include "daemon/feedback_service.hpp"

#include "daemon/dispatch.hpp"
#include "daemon/feedback_sink.hpp"
#include "daemon/feedback_stages.hpp"
#include "daemon/metrics.hpp"
#include "tests/daemon/feedback_fixture.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember;
using namespace ember::test;
namespace asio = boost::asio;
using core::OutcomeKind;
using smtp::ListenerMode;
using Kind = smtp::RecipientVerdict::Kind;

namespace {

smtp::RecipientCheck rcpt(std::string address, ListenerMode mode = ListenerMode::Submission,
                          std::string mail_from = "app@sender.test") {
    smtp::RecipientCheck c;
    c.mode = mode;
    c.relay_allowed = true;
    c.mail_from = std::move(mail_from);
    c.recipient = std::move(address);
    return c;
}

std::string verp_for(const daemon::FeedbackService& s, std::uint64_t id, std::uint32_t index,
                     const std::string& address) {
    const auto p = s.policy();
    return p->signer->verp_address(
        "bounces", feedback::make_verp_id(id, index, "sender.test", address), kBounceDomain);
}

std::string flip_last(std::string text, std::size_t at_from_end) {
    auto& c = text[text.size() - at_from_end];
    c = c == 'a' ? 'b' : 'a';
    return text;
}

// Answers every recipient with the same outcome and records the jobs.
struct ScriptedDeliverer final : core::Deliverer {
    core::Outcome answer;
    std::vector<core::DeliveryJob> jobs;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        std::vector<core::Outcome> out(job.recipients.size(), answer);
        jobs.push_back(std::move(job));
        co_return out;
    }
};

std::string header_value(const std::string& content, std::string_view name) {
    const auto header = smtp::parse_header_block(content);
    const auto* f = smtp::find_field(header, name);
    if (f == nullptr)
        return {};
    auto value = smtp::unfold(f->value);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
}

} // namespace

// ---- RCPT -------------------------------------------------------------------

TEST_CASE("a VERP address under our key is ours at RCPT; a tampered one is refused 550 5.1.1") {
    Fixture f;
    const auto verp = verp_for(*f.service, 7, 0, "a@dest.test");
    for (const auto mode : {ListenerMode::Submission, ListenerMode::Inbound}) {
        CAPTURE(static_cast<int>(mode));
        CHECK(f.service->check_recipient(rcpt(verp, mode, "")).kind == Kind::Local);
        const auto local = verp.substr(0, verp.find('@'));
        const auto tampered = flip_last(local, 1) + verp.substr(verp.find('@'));
        const auto refused = f.service->check_recipient(rcpt(tampered, mode, ""));
        CHECK(refused.kind == Kind::Refuse);
        CHECK(refused.reply.code == 550);
        CHECK(refused.reply.enhanced == "5.1.1");
    }
}

TEST_CASE("addresses at our domains are ours on every listener; the rest follow relay rules") {
    Fixture f;
    for (const auto mode : {ListenerMode::Inbound, ListenerMode::Submission}) {
        CAPTURE(static_cast<int>(mode));
        CHECK(f.service->check_recipient(rcpt(kFbl, mode)).kind == Kind::Local);
        CHECK(f.service->check_recipient(rcpt("Postmaster@Bounce.test", mode)).kind == Kind::Local);
        const auto unknown = f.service->check_recipient(rcpt("user@bounce.test", mode));
        CHECK(unknown.kind == Kind::Refuse);
        CHECK(unknown.reply.code == 550);
        CHECK(unknown.reply.enhanced == "5.1.1");
        // Not ours: the session's relay rules decide (AUTH or a trusted network).
        CHECK(f.service->check_recipient(rcpt("user@dest.test", mode)).kind == Kind::Accept);
        CHECK(f.service->check_recipient(rcpt("postmaster@dest.test", mode)).kind == Kind::Accept);
    }
}

TEST_CASE("a suppressed recipient is refused 550 5.7.1 naming the reason only when told to") {
    for (const auto mode : {daemon::SuppressionAtRcpt::Drop, daemon::SuppressionAtRcpt::Reject}) {
        CAPTURE(static_cast<int>(mode));
        Fixture f([mode](daemon::Config& c) { c.feedback.suppression_at_rcpt = mode; });
        f.suppress("Gone@Dest.test", "", feedback::SuppressionReason::HardBounce);
        f.suppress("left@dest.test", "sender.test", feedback::SuppressionReason::Unsubscribe);
        const auto gone = f.service->check_recipient(rcpt("gone@dest.test"));
        const auto left = f.service->check_recipient(rcpt("left@dest.test"));
        const auto left_other = f.service->check_recipient(
            rcpt("left@dest.test", ListenerMode::Submission, "app@other.test"));
        CHECK(left_other.kind == Kind::Accept); // another sending domain's entry
        if (mode == daemon::SuppressionAtRcpt::Drop) {
            CHECK(gone.kind == Kind::Accept);
            CHECK(left.kind == Kind::Accept);
            continue;
        }
        REQUIRE(gone.kind == Kind::Refuse);
        CHECK(gone.reply.code == 550);
        CHECK(gone.reply.enhanced == "5.7.1");
        CHECK(gone.reply.text.find("hard-bounce") != std::string::npos);
        REQUIRE(left.kind == Kind::Refuse);
        CHECK(left.reply.text.find("unsubscribe for sender.test") != std::string::npos);
    }
}

// ---- dispatch stages ----------------------------------------------------------

TEST_CASE("a suppressed recipient is settled at dispatch with one suppressed event") {
    Fixture f([](daemon::Config& c) { c.feedback.verp = false; });
    f.suppress("gone@dest.test", "", feedback::SuppressionReason::Complaint);
    ScriptedDeliverer inner;
    inner.answer = outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok");
    daemon::Dispatcher d(inner, [&f] { return f.now; });
    f.service->add_stages(d);
    const auto out = f.run(d.deliver(job_for({"ok@dest.test", "gone@dest.test"})));
    REQUIRE(out.size() == 2);
    CHECK(out[0].kind == OutcomeKind::Delivered);
    CHECK(out[1].kind == OutcomeKind::Suppressed);
    CHECK(out[1].text.find("complaint (global)") != std::string::npos);
    REQUIRE(inner.jobs.size() == 1);
    REQUIRE(inner.jobs[0].recipients.size() == 1);
    CHECK(inner.jobs[0].recipients[0].spec.address == "ok@dest.test");
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == feedback::EventType::Suppressed);
    CHECK(events[0].recipient == "gone@dest.test");
    CHECK(events[0].queue_id == "Q7");
    CHECK(events[0].sending_domain == "sender.test");
}

TEST_CASE("VERP gives each recipient its own return path, which the inbound policy accepts") {
    Fixture f;
    ScriptedDeliverer inner;
    inner.answer = outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok");
    daemon::Dispatcher d(inner, [&f] { return f.now; });
    f.service->add_stages(d);
    (void)f.run(d.deliver(job_for({"a@dest.test", "b@dest.test"})));
    REQUIRE(inner.jobs.size() == 2);
    CHECK(inner.jobs[0].envelope.mail_from != inner.jobs[1].envelope.mail_from);
    for (const auto& job : inner.jobs) {
        CAPTURE(job.envelope.mail_from);
        CHECK(job.envelope.mail_from.starts_with("bounces+"));
        CHECK(job.envelope.mail_from.ends_with("@" + std::string(kBounceDomain)));
        CHECK(f.service->policy()->inbound->check_rcpt(job.envelope.mail_from).accept);
        CHECK_FALSE(job.variant.empty());
    }
    // A bounce (null sender) never gets a return path.
    inner.jobs.clear();
    auto dsn = job_for({"a@dest.test"});
    dsn.envelope.mail_from.clear();
    (void)f.run(d.deliver(std::move(dsn)));
    REQUIRE(inner.jobs.size() == 1);
    CHECK(inner.jobs[0].envelope.mail_from.empty());
}

TEST_CASE("bulk mail gets a signed one-click List-Unsubscribe and every message X-Ember-ID") {
    Fixture f([](daemon::Config& c) { c.feedback.verp = false; });
    ScriptedDeliverer inner;
    inner.answer = outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok");
    daemon::Dispatcher d(inner, [&f] { return f.now; });
    f.service->add_stages(d);
    const auto signer = *f.service->policy()->signer;

    SUBCASE("bulk: one transaction per recipient, each with its own link") {
        (void)f.run(d.deliver(job_for({"a@dest.test", "b@dest.test"})));
        REQUIRE(inner.jobs.size() == 2);
        const std::string address = "b@dest.test";
        const auto& content = *inner.jobs[1].content;
        const auto lu = header_value(content, "List-Unsubscribe");
        const std::string prefix = std::string(kPublicUrl) + "/u/";
        REQUIRE(lu.starts_with("<" + prefix));
        const auto token = lu.substr(prefix.size() + 1, lu.find('>') - prefix.size() - 1);
        const auto check = signer.verify_unsubscribe_url_token(token);
        REQUIRE(check.ok());
        CHECK(check.who.address == address);
        CHECK(check.who.sending_domain == "sender.test");
        CHECK(lu.find("<mailto:unsubscribe+") != std::string::npos);
        CHECK(header_value(content, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click");
        const std::vector<std::string> candidates{address};
        const auto id = signer.verify_ember_id(header_value(content, "X-Ember-ID"), candidates);
        CHECK(id.verified);
        CHECK(id.queue_id == 7);
        CHECK(id.recipient_index == 1u);
    }
    SUBCASE("not bulk: one transaction, X-Ember-ID names the message only") {
        auto job = job_for({"a@dest.test", "b@dest.test"}, "From: x@other.test");
        (void)f.run(d.deliver(std::move(job)));
        REQUIRE(inner.jobs.size() == 1);
        const auto& content = *inner.jobs[0].content;
        CHECK(header_value(content, "List-Unsubscribe").empty());
        CHECK(header_value(content, "X-Ember-ID") == queue::format_queue_id(7));
    }
}

TEST_CASE("without token_keys a message is dispatched as it was submitted") {
    Fixture f([](daemon::Config& c) {
        c.feedback.token_keys.clear();
        c.feedback.verp = false;
        c.feedback.unsubscribe_domains.clear();
    });
    ScriptedDeliverer inner;
    inner.answer = outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok");
    daemon::Dispatcher d(inner, [&f] { return f.now; });
    f.service->add_stages(d);
    auto job = job_for({"a@dest.test", "b@dest.test"}, "From: x@sender.test\r\nPrecedence: bulk");
    const auto original = job.content;
    (void)f.run(d.deliver(std::move(job)));
    REQUIRE(inner.jobs.size() == 1);
    CHECK(inner.jobs[0].content == original);
    CHECK(inner.jobs[0].variant.empty());
    // And nothing that claims to be ours is taken: no key verifies it.
    const auto refused = f.service->check_recipient(rcpt(
        "bounces+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@" + std::string(kBounceDomain)));
    CHECK(refused.kind == Kind::Refuse);
}

TEST_CASE("List-Unsubscribe is for listed domains and Precedence: bulk, never over the sender's") {
    Fixture f;
    const auto policy = f.service->policy();
    struct Case {
        const char* domain;
        const char* header;
        bool want;
    };
    const Case cases[] = {
        {"sender.test", "Subject: x\r\n\r\n", true},
        {"other.test", "Subject: x\r\n\r\n", false},
        {"other.test", "Precedence: bulk\r\n\r\n", true},
        {"other.test", "Precedence:  List \r\n\r\n", true},
        {"other.test", "Precedence: junk\r\n\r\n", false},
        {"sender.test", "List-Unsubscribe: <mailto:u@sender.test>\r\n\r\n", false},
        {"", "Precedence: bulk\r\n\r\n", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.domain);
        CAPTURE(c.header);
        CHECK(daemon::wants_list_unsubscribe(*policy, c.domain,
                                             smtp::parse_header_block(c.header)) == c.want);
    }
}

// ---- results ------------------------------------------------------------------

TEST_CASE("a hard refusal is a bounced event and a global suppression; a deferral only an event") {
    Fixture f;
    ScriptedDeliverer inner;
    auto& observer = f.service->observe(inner);
    inner.answer = outcome(OutcomeKind::Failed, 550, "5.1.1", "<gone@dest.test>: no such user");
    (void)f.run(observer.deliver(job_for({"gone@dest.test"})));
    inner.answer = outcome(OutcomeKind::Deferred, 451, "4.3.0", "try again later");
    (void)f.run(observer.deliver(job_for({"slow@dest.test"})));
    f.wait_for([&] { return f.service->suppressions().check("gone@dest.test", "").has_value(); });
    const auto entry = f.service->suppressions().check("gone@dest.test", "");
    REQUIRE(entry);
    CHECK(entry->reason == feedback::SuppressionReason::HardBounce);
    CHECK(entry->scope.empty());
    CHECK_FALSE(f.service->suppressions().check("slow@dest.test", "").has_value());
    const auto events = f.events();
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == feedback::EventType::Bounced);
    CHECK(events[0].reason == feedback::Reason::UserUnknown);
    CHECK(events[0].hard == true);
    CHECK(events[0].code == 550);
    CHECK(events[0].source == "smtp");
    CHECK(events[1].type == feedback::EventType::Deferred);
    CHECK(events[1].hard == false);
    const auto counts = f.service->rates().window(
        "sender.test", feedback::kDayWindow, feedback::TimePoint(std::chrono::milliseconds(f.now)));
    CHECK(counts[feedback::Counter::HardBounces] == 1);
    CHECK(counts[feedback::Counter::Deferred] == 1);
}

TEST_CASE("a soft final failure adds to the streak and a delivery ends it") {
    Fixture f;
    ScriptedDeliverer inner;
    auto& observer = f.service->observe(inner);
    inner.answer = outcome(OutcomeKind::Failed, 552, "5.2.2", "mailbox full");
    (void)f.run(observer.deliver(job_for({"full@dest.test"})));
    f.wait_for([&] {
        return f.service->suppressions().soft_history("full@dest.test").failures_ms.size() == 1;
    });
    CHECK_FALSE(f.service->suppressions().check("full@dest.test", "").has_value());
    inner.answer = outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok");
    (void)f.run(observer.deliver(job_for({"full@dest.test"})));
    f.wait_for([&] {
        return f.service->suppressions().soft_history("full@dest.test").failures_ms.empty();
    });
    const auto events = f.events();
    REQUIRE(events.size() == 2);
    CHECK(events[0].hard == false);
    CHECK(events[1].type == feedback::EventType::Delivered);
    CHECK(events[1].bulk == true);      // sender.test is an unsubscribe domain
    CHECK(events[1].one_click == true); // and public_url is https
}

TEST_CASE("a recipient held back by warm-up gives one throttled event per reason") {
    Fixture f;
    ScriptedDeliverer inner;
    auto& observer = f.service->observe(inner);
    core::Outcome held;
    held.kind = OutcomeKind::Throttled;
    held.text = "daily cap reached";
    held.not_before_ms = f.now + 1000;
    inner.answer = held;
    for (int i = 0; i < 3; ++i)
        (void)f.run(observer.deliver(job_for({"a@dest.test"})));
    inner.answer.text = "rate";
    (void)f.run(observer.deliver(job_for({"a@dest.test"})));
    const auto events = f.events();
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == feedback::EventType::Throttled);
    CHECK(events[0].text == "daily cap reached");
    CHECK(events[1].text == "rate");
}

TEST_CASE(
    "an expiry is an expired event and a soft failure; SMTP failures are not reported twice") {
    Fixture f;
    struct NullBounces final : queue::BounceSink {
        int failed_calls = 0;
        void failed(const queue::Message&, std::vector<std::uint32_t>) override { ++failed_calls; }
        void delayed(const queue::Message&, std::vector<std::uint32_t>) override {}
    } inner;
    auto& bounces = f.service->observe_bounces(inner);
    queue::Message m;
    m.id = 9;
    m.envelope.mail_from = "app@sender.test";
    queue::Recipient expired;
    expired.spec.address = "slow@dest.test";
    expired.outcome = outcome(OutcomeKind::Failed, 451, "4.4.7", "message expired after 5d");
    expired.outcome.local = true;
    queue::Recipient refused;
    refused.spec.address = "gone@dest.test";
    refused.outcome = outcome(OutcomeKind::Failed, 550, "5.1.1", "no such user");
    m.recipients = {expired, refused};
    bounces.failed(m, {0, 1});
    CHECK(inner.failed_calls == 1);
    f.wait_for([&] {
        return f.service->suppressions().soft_history("slow@dest.test").failures_ms.size() == 1;
    });
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == feedback::EventType::Expired);
    CHECK(events[0].recipient == "slow@dest.test");
    CHECK(events[0].queue_id == queue::format_queue_id(9));
}

// ---- mail to our addresses ------------------------------------------------------

namespace {

struct RecordingSink final : smtp::MessageSink {
    std::vector<smtp::AcceptedMessage> got;
    std::string new_queue_id() override { return queue::format_queue_id(42); }
    asio::awaitable<smtp::SinkStatus> commit(smtp::AcceptedMessage m) override {
        got.push_back(std::move(m));
        co_return smtp::SinkStatus::Ok;
    }
};

std::string dsn_to(const std::string& verp, const std::string& recipient) {
    return "From: MAILER-DAEMON@mx.dest.test\r\nTo: <" + verp +
           ">\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\r\n"
           "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test"
           "\r\n\r\nFinal-Recipient: rfc822; " +
           recipient +
           "\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User "
           "unknown\r\n\r\n--b--\r\n";
}

smtp::AcceptedMessage accepted(std::string mail_from, std::vector<std::string> rcpts,
                               std::string content, ListenerMode mode) {
    smtp::AcceptedMessage m;
    m.queue_id = queue::format_queue_id(42);
    m.envelope.mail_from = std::move(mail_from);
    for (auto& r : rcpts) {
        core::RecipientSpec spec;
        spec.address = std::move(r);
        m.envelope.recipients.push_back(std::move(spec));
    }
    m.info.mode = mode;
    m.info.listener = "127.0.0.1:2525";
    m.content = std::move(content);
    return m;
}

} // namespace

TEST_CASE("a DSN to a VERP address is read before the 250 and never queued") {
    Fixture f;
    RecordingSink queue_sink;
    daemon::FeedbackSink sink(*f.service, queue_sink);
    const auto verp = verp_for(*f.service, 7, 0, "late@dest.test");
    const auto status = f.run(
        sink.commit(accepted("", {verp}, dsn_to(verp, "late@dest.test"), ListenerMode::Inbound)));
    CHECK(status == smtp::SinkStatus::Ok);
    CHECK(queue_sink.got.empty());
    // Durable before the answer: no waiting needed.
    const auto entry = f.service->suppressions().check("late@dest.test", "");
    REQUIRE(entry);
    CHECK(entry->reason == feedback::SuppressionReason::HardBounce);
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == feedback::EventType::Bounced);
    CHECK(events[0].source == "dsn");
    CHECK(events[0].queue_id == queue::format_queue_id(7));
    CHECK(events[0].sending_domain == "sender.test");
}

TEST_CASE("a DSN naming another recipient than its VERP token is an event, not a suppression") {
    Fixture f;
    RecordingSink queue_sink;
    daemon::FeedbackSink sink(*f.service, queue_sink);
    const auto verp = verp_for(*f.service, 7, 0, "late@dest.test");
    (void)f.run(
        sink.commit(accepted("", {verp}, dsn_to(verp, "victim@dest.test"), ListenerMode::Inbound)));
    CHECK_FALSE(f.service->suppressions().check("victim@dest.test", "").has_value());
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].extra.at("verified").as_bool() == false);
}

TEST_CASE("a submission to ours and to others is split: ours read, the others queued") {
    Fixture f;
    RecordingSink queue_sink;
    daemon::FeedbackSink sink(*f.service, queue_sink);
    const auto verp = verp_for(*f.service, 7, 0, "late@dest.test");
    const auto status =
        f.run(sink.commit(accepted("app@sender.test", {verp, "friend@dest.test"},
                                   dsn_to(verp, "late@dest.test"), ListenerMode::Submission)));
    CHECK(status == smtp::SinkStatus::Ok);
    REQUIRE(queue_sink.got.size() == 1);
    REQUIRE(queue_sink.got[0].envelope.recipients.size() == 1);
    CHECK(queue_sink.got[0].envelope.recipients[0].address == "friend@dest.test");
    const auto events = f.events();
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == feedback::EventType::Bounced);
    CHECK(events[1].type == feedback::EventType::Received);
    CHECK(events[1].recipient == "friend@dest.test");
}

// ---- metrics ------------------------------------------------------------------

TEST_CASE("a /metrics scrape reuses the suppression counts for 30 s instead of rescanning") {
    Fixture f;
    const auto suppress = [&f](const std::string& address) {
        const auto r = f.run(f.service->suppress(feedback::SuppressionEntry{
            address, "", feedback::SuppressionReason::HardBounce, f.now, "test"}));
        REQUIRE(r.status == feedback::WriteStatus::Ok);
    };
    const auto hard_bounces = [&f] {
        const auto text = f.metrics.render();
        const std::string series = "ember_suppression_entries{reason=\"hard-bounce\"} ";
        const auto at = text.find(series);
        REQUIRE(at != std::string::npos);
        return text.substr(at + series.size(), text.find('\n', at) - at - series.size());
    };
    suppress("a@dest.test");
    CHECK(hard_bounces() == "1");
    suppress("b@dest.test");
    f.now += 29'000;
    CHECK(hard_bounces() == "1"); // the count of the last scan, no table scan
    f.now += 1'000;
    CHECK(hard_bounces() == "2"); // counted again once 30 s old
    f.now -= 60'000;              // a clock stepped back recounts at once
    suppress("c@dest.test");
    CHECK(hard_bounces() == "3");
}
