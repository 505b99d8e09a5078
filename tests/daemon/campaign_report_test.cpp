#include "daemon/campaign_report.hpp"

#include "daemon/dispatch.hpp"
#include "daemon/feedback_stages.hpp"
#include "tests/daemon/feedback_fixture.hpp"

#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <vector>

using namespace ember;
using namespace ember::test;
namespace asio = boost::asio;
namespace json = boost::json;
using core::OutcomeKind;
using feedback::EventType;

namespace {

// Answers every recipient from a script (the last answer repeats).
struct ScriptedDeliverer final : core::Deliverer {
    std::vector<core::Outcome> answers;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        std::vector<core::Outcome> out;
        for (std::size_t i = 0; i < job.recipients.size(); ++i)
            out.push_back(answers.at(std::min(i, answers.size() - 1)));
        co_return out;
    }
};

constexpr const char* kCampaignFrom = "From: News <news@Sender.test>\r\n"
                                      "X-Ember-Campaign:  spring-sale \r\n"
                                      "X-Ember-Tags: news, promo ,,\r\n"
                                      "X-Ember-AB: t-42; cell=b";

json::object object(const daemon::AdminResult& r) {
    INFO(r.error());
    REQUIRE(r.ok());
    REQUIRE(r.result().is_object());
    return r.result().as_object();
}

const json::object& only_campaign(const json::object& doc) {
    const auto& list = doc.at("campaigns").as_array();
    REQUIRE(list.size() == 1);
    return list.at(0).as_object();
}

feedback::Event event(EventType type, std::string campaign, std::string variant,
                      std::int64_t time_ms) {
    feedback::Event e;
    e.type = type;
    e.time_ms = time_ms;
    e.campaign = std::move(campaign);
    e.variant = std::move(variant);
    return e;
}

struct Reports {
    Fixture& f;
    std::unique_ptr<daemon::CampaignReports> reports;

    explicit Reports(Fixture& fixture, daemon::CampaignReportSettings settings = {}) : f(fixture) {
        std::string error;
        reports = daemon::CampaignReports::create(
            f.io.get_executor(), *f.store, error, [this] { return f.now; }, settings);
        INFO(error);
        REQUIRE(reports != nullptr);
    }

    void flush() {
        std::atomic<int> state{0};
        reports->flush([&state](bool ok) { state = ok ? 1 : 2; });
        f.wait_for([&state] { return state.load() != 0; });
        REQUIRE(state.load() == 1);
    }

    json::object report(json::object args = {}) { return object(reports->report(args)); }
};

} // namespace

// ---- events carry the campaign ------------------------------------------------

TEST_CASE("the campaign fields are read from X-Ember-Campaign, X-Ember-Tags and X-Ember-AB") {
    struct Case {
        std::string header;
        std::string campaign;
        std::vector<std::string> tags;
        std::string ab_test, variant;
    };
    const std::vector<Case> cases{
        {"X-Ember-Campaign: spring\r\n", "spring", {}, "", ""},
        {"X-Ember-Campaign:\r\n  folded\r\n", "folded", {}, "", ""},
        {"X-Ember-Tags: a, b ,, c\r\n", "", {"a", "b", "c"}, "", ""},
        {"X-Ember-AB: t1; cell=b\r\n", "", {}, "t1", "b"},
        {"X-Ember-AB: t1;CELL = \"rest\"\r\n", "", {}, "t1", "rest"},
        {"X-Ember-AB: t1\r\n", "", {}, "t1", ""},
        {"X-Ember-AB: t1; other=x; cell=control\r\n", "", {}, "t1", "control"},
        {"Subject: none\r\n", "", {}, "", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.header);
        const auto got = daemon::campaign_fields("From: a@b.test\r\n" + c.header + "\r\nbody\r\n");
        CHECK(got.campaign == c.campaign);
        CHECK(got.tags == c.tags);
        CHECK(got.ab_test == c.ab_test);
        CHECK(got.variant == c.variant);
    }
}

TEST_CASE("an over-long campaign id is cut to its cap at a character boundary") {
    const std::string long_id = "\xc3\xa9" + std::string(300, 'x');
    const auto got = daemon::campaign_fields("X-Ember-Campaign: " + long_id + "\r\n\r\n");
    CHECK(got.campaign.size() == daemon::kMaxCampaignOctets);
    CHECK(got.campaign.starts_with("\xc3\xa9"));
}

TEST_CASE("delivered and bounced events carry the message's campaign, tags and A/B cell") {
    Fixture f;
    ScriptedDeliverer inner;
    inner.answers = {outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok"),
                     outcome(OutcomeKind::Failed, 550, "5.1.1", "no such user")};
    auto& observer = f.service->observe(inner);
    (void)f.run(observer.deliver(job_for({"ok@dest.test", "gone@dest.test"}, kCampaignFrom)));
    const auto events = f.events();
    REQUIRE(events.size() == 2);
    CHECK(events[0].type == EventType::Delivered);
    CHECK(events[1].type == EventType::Bounced);
    for (const auto& e : events) {
        CAPTURE(feedback::encode_event(e));
        CHECK(e.campaign == "spring-sale");
        CHECK(e.tags == std::vector<std::string>{"news", "promo"});
        CHECK(e.ab_test == "t-42");
        CHECK(e.variant == "b");
    }
}

TEST_CASE("mail without campaign fields gives events without them") {
    Fixture f;
    ScriptedDeliverer inner;
    inner.answers = {outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok")};
    auto& observer = f.service->observe(inner);
    (void)f.run(observer.deliver(job_for({"ok@dest.test"})));
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].campaign.empty());
    CHECK(events[0].tags.empty());
    CHECK(events[0].variant.empty());
    CHECK(feedback::encode_event(events[0]).find("campaign") == std::string::npos);
}

TEST_CASE("a recipient suppressed at dispatch is reported with the campaign") {
    Fixture f([](daemon::Config& c) { c.feedback.verp = false; });
    f.suppress("gone@dest.test", "", feedback::SuppressionReason::Complaint);
    ScriptedDeliverer inner;
    inner.answers = {outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok")};
    daemon::Dispatcher d(inner, [&f] { return f.now; });
    f.service->add_stages(d);
    (void)f.run(d.deliver(job_for({"gone@dest.test"}, kCampaignFrom)));
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == EventType::Suppressed);
    CHECK(events[0].campaign == "spring-sale");
    CHECK(events[0].variant == "b");
}

// ---- counters, the verb, the store ------------------------------------------------

TEST_CASE("events from delivery reach the report verb with the bounce reason") {
    Fixture f;
    Reports r(f);
    f.service->add_event_listener([&r](const feedback::Event& e) { r.reports->record(e); });
    ScriptedDeliverer inner;
    inner.answers = {outcome(OutcomeKind::Delivered, 250, "2.0.0", "ok"),
                     outcome(OutcomeKind::Failed, 550, "5.1.1", "no such user")};
    auto& observer = f.service->observe(inner);
    (void)f.run(observer.deliver(
        job_for({"a@dest.test", "b@dest.test", "gone@dest.test"},
                "From: News <news@Sender.test>\r\nX-Ember-Campaign: spring-sale")));
    const auto doc = r.report(json::object{{"campaign", "spring-sale"}});
    const auto& c = only_campaign(doc);
    CAPTURE(json::serialize(c));
    CHECK(c.at("campaign") == "spring-sale");
    CHECK(c.at("delivered") == 1); // the script answers the first one 250
    CHECK(c.at("bounced") == 2);
    CHECK(c.at("hard_bounces") == 2);
    CHECK(c.at("bounce_reasons").at("userunknown") == 2);
    CHECK(c.at("first_day") == "2026-05-28");
    CHECK(c.at("rates").at("open").as_double() == 0.0); // delivered, never opened
    CHECK_FALSE(c.contains("variants"));
}

TEST_CASE("variants are reported with lift against the control and the rest's lift") {
    Fixture f;
    Reports r(f);
    const auto add = [&](std::string variant, int delivered, int unique_opens) {
        for (int i = 0; i < delivered; ++i)
            r.reports->record(event(EventType::Delivered, "spring", variant, f.now));
        for (int i = 0; i < unique_opens; ++i) {
            auto e = event(EventType::Opened, "spring", variant, f.now);
            e.extra["unique"] = true;
            r.reports->record(e);
        }
    };
    add("a", 10, 2);
    add("b", 10, 3);
    add("rest", 80, 32);
    auto machine = event(EventType::Opened, "spring", "b", f.now);
    machine.extra["machine"] = true;
    r.reports->record(machine);
    const auto c = only_campaign(r.report());
    CAPTURE(json::serialize(c));
    CHECK(c.at("control") == "a");
    CHECK(c.at("unique_opens") == 37);
    CHECK(c.at("machine_opens") == 1);
    const auto& v = c.at("variants").as_array();
    REQUIRE(v.size() == 3);
    CHECK(v[0].at("variant") == "a");
    CHECK(v[0].at("lift").at("open_rate").is_null());
    CHECK(v[1].at("variant") == "b");
    CHECK(v[1].at("lift").at("open_rate").as_double() == doctest::Approx(0.5));
    CHECK(v[2].at("variant") == "rest");
    CHECK(v[2].at("lift").at("open_rate").as_double() == doctest::Approx(1.0));
}

TEST_CASE("since selects the UTC day containing it and the days after") {
    Fixture f;
    Reports r(f);
    const auto day = feedback::kMsPerUtcDay;
    r.reports->record(event(EventType::Delivered, "spring", "", f.now - 3 * day));
    r.reports->record(event(EventType::Delivered, "spring", "", f.now - day));
    r.reports->record(event(EventType::Delivered, "spring", "", f.now));
    // One millisecond into the day before yesterday's end: that day counts.
    const auto since = (feedback::utc_day(f.now) - 1) * day + day - 1;
    const auto doc = r.report(json::object{{"since", since}});
    CHECK(doc.at("since") == "2026-05-27");
    CHECK(only_campaign(doc).at("delivered") == 2);
    CHECK(only_campaign(r.report()).at("delivered") == 3);
    CHECK(r.report(json::object{{"campaign", "other"}}).at("campaigns").as_array().empty());
}

TEST_CASE("the report verb refuses unknown and ill-typed arguments") {
    Fixture f;
    Reports r(f);
    for (const auto& args : {json::object{{"campain", "x"}}, json::object{{"campaign", 3}},
                             json::object{{"since", "7d"}}, json::object{{"since", -1}}}) {
        CAPTURE(json::serialize(args));
        CHECK_FALSE(r.reports->report(args).ok());
    }
}

TEST_CASE("counters are flushed to the store and read back by a new instance") {
    Fixture f;
    {
        Reports r(f);
        r.reports->record(event(EventType::Delivered, "spring", "a", f.now));
        auto b = event(EventType::Bounced, "spring", "a", f.now);
        b.reason = feedback::Reason::MailboxFull;
        b.hard = false;
        r.reports->record(b);
        r.flush();
    }
    Reports again(f);
    const auto c = only_campaign(again.report());
    CAPTURE(json::serialize(c));
    CHECK(c.at("delivered") == 1);
    CHECK(c.at("soft_bounces") == 1);
    CHECK(c.at("bounce_reasons").at("mailboxfull") == 1);
    CHECK(c.at("variants").as_array().size() == 1);
}

TEST_CASE("days past the retention are dropped from memory and from the store") {
    Fixture f;
    daemon::CampaignReportSettings settings;
    settings.retention_days = 10;
    {
        Reports r(f, settings);
        r.reports->record(event(EventType::Delivered, "old", "", f.now));
        r.reports->record(
            event(EventType::Delivered, "new", "", f.now + 5 * feedback::kMsPerUtcDay));
        r.flush();
        f.now += 12 * feedback::kMsPerUtcDay;
        r.flush();
        CHECK(r.reports->table().entries().size() == 1);
    }
    Reports again(f, settings);
    const auto doc = again.report();
    CHECK(only_campaign(doc).at("campaign") == "new");
}

TEST_CASE("storage keys round-trip and malformed ones are refused") {
    const feedback::CampaignTable::Key key{"spring sale", "b", 20'600};
    const auto text = daemon::campaign_key(key);
    CHECK(daemon::parse_campaign_key(text) == key);
    using namespace std::string_literals;
    CHECK_FALSE(daemon::parse_campaign_key("2026-05-28"));
    CHECK_FALSE(daemon::parse_campaign_key("2026-13-01\0c\0v"s));
    CHECK_FALSE(daemon::parse_campaign_key("2026-05-28\0\0v"s));
    CHECK_FALSE(daemon::parse_campaign_key("2026-05-28\0c\0v\0x"s));
}
