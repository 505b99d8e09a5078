#include "feedback/rates.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

using namespace ember::feedback;
using namespace std::chrono_literals;

namespace {

// 2023-11-14 22:00:00 UTC, on an hour boundary.
const TimePoint kStart{
    std::chrono::milliseconds(1'700'000'000'000 - 1'700'000'000'000 % 3'600'000)};

Event event(EventType type, std::string domain = "news.example.com") {
    Event e;
    e.type = type;
    e.sending_domain = std::move(domain);
    return e;
}

const ScoreLine& line(const Scorecard& card, const std::string& rule) {
    for (const auto& l : card.lines)
        if (l.rule == rule)
            return l;
    FAIL("no line ", rule);
    return card.lines.front();
}

} // namespace

TEST_CASE("a day window holds the current hour and the 23 before it, a week window 168") {
    Rates rates;
    // One delivery per hour for 200 hours.
    for (int h = 0; h < 200; ++h)
        rates.add("news.example.com", Counter::Delivered, kStart + std::chrono::hours(h) + 30min);
    const TimePoint now = kStart + 199h + 59min;
    CHECK(rates.window("news.example.com", kDayWindow, now)[Counter::Delivered] == 24);
    CHECK(rates.window("news.example.com", kWeekWindow, now)[Counter::Delivered] == 168);
    CHECK(rates.window("news.example.com", 1h, now)[Counter::Delivered] == 1);
    // An hour later nothing new came: the window slides past the oldest hour.
    CHECK(rates.window("news.example.com", kDayWindow, now + 1h)[Counter::Delivered] == 23);
    CHECK(rates.window("news.example.com", kDayWindow, now + 48h)[Counter::Delivered] == 0);
}

TEST_CASE("counts are per sending domain, case-insensitive, and unknown domains read zero") {
    Rates rates;
    rates.add("News.Example.com", Counter::Complaints, kStart);
    rates.add("other.example", Counter::Complaints, kStart, 5);
    CHECK(rates.window("news.example.com", kDayWindow, kStart)[Counter::Complaints] == 1);
    CHECK(rates.window("OTHER.example", kDayWindow, kStart)[Counter::Complaints] == 5);
    CHECK(rates.window("nobody.example", kDayWindow, kStart) == Counts{});
    CHECK(rates.domains() == std::vector<std::string>{"news.example.com", "other.example"});
}

TEST_CASE("a count for an hour the ring has moved past is ignored") {
    Rates rates;
    rates.add("d.example", Counter::Delivered, kStart + 200h);
    rates.add("d.example", Counter::Delivered, kStart + 200h - 168h); // same slot, too old
    CHECK(rates.window("d.example", kWeekWindow, kStart + 200h)[Counter::Delivered] == 1);
    // Late but inside the ring: counted in its own hour.
    rates.add("d.example", Counter::Delivered, kStart + 150h);
    CHECK(rates.window("d.example", kWeekWindow, kStart + 200h)[Counter::Delivered] == 2);
    CHECK(rates.window("d.example", kDayWindow, kStart + 200h)[Counter::Delivered] == 1);
}

TEST_CASE("events count as the header's table says") {
    struct Case {
        std::string name;
        Event event;
        std::vector<Counter> counted;
    };
    auto delivered = event(EventType::Delivered);
    delivered.tls = true;
    delivered.bulk = true;
    delivered.one_click = true;
    auto plain = event(EventType::Delivered);
    plain.tls = false;
    plain.one_click = true; // not bulk: one_click is not counted
    auto received = event(EventType::Received);
    received.dmarc_aligned = true;
    auto hard = event(EventType::Bounced);
    hard.hard = true;
    auto soft = event(EventType::Bounced);
    soft.hard = false;
    const std::vector<Case> table = {
        {"delivered, TLS, bulk, one-click",
         delivered,
         {Counter::Delivered, Counter::DeliveredTls, Counter::Bulk, Counter::OneClick}},
        {"delivered in clear, not bulk", plain, {Counter::Delivered}},
        {"received, aligned", received, {Counter::Received, Counter::DmarcAligned}},
        {"received, unknown alignment", event(EventType::Received), {Counter::Received}},
        {"hard bounce", hard, {Counter::HardBounces}},
        {"soft bounce", soft, {Counter::SoftBounces}},
        {"expired", event(EventType::Expired), {Counter::SoftBounces}},
        {"deferred", event(EventType::Deferred), {Counter::Deferred}},
        {"complaint", event(EventType::Complained), {Counter::Complaints}},
        {"unsubscribe", event(EventType::Unsubscribed), {Counter::Unsubscribes}},
        {"click", event(EventType::Clicked), {}},
        {"no sending domain", event(EventType::Complained, ""), {}},
    };
    for (const auto& c : table) {
        CAPTURE(c.name);
        Rates rates;
        rates.record(c.event, kStart);
        Counts want;
        for (const auto counter : c.counted)
            want[counter] = 1;
        const auto got = rates.window(c.event.sending_domain, kDayWindow, kStart);
        for (std::size_t i = 0; i < kCounters; ++i) {
            CAPTURE(counter_name(static_cast<Counter>(i)));
            CHECK(got.values[i] == want.values[i]);
        }
    }
}

TEST_CASE("rates divide by the documented denominators and are unknown without one") {
    Counts c;
    CHECK_FALSE(c.complaint_rate().has_value());
    CHECK_FALSE(c.hard_bounce_rate().has_value());
    c[Counter::Delivered] = 960;
    c[Counter::HardBounces] = 30;
    c[Counter::SoftBounces] = 10;
    c[Counter::Complaints] = 3;
    c[Counter::Unsubscribes] = 12;
    c[Counter::DeliveredTls] = 480;
    c[Counter::Received] = 1000;
    c[Counter::DmarcAligned] = 999;
    c[Counter::Bulk] = 4;
    c[Counter::OneClick] = 1;
    CHECK(*c.complaint_rate() == doctest::Approx(3.0 / 960));
    CHECK(*c.hard_bounce_rate() == doctest::Approx(30.0 / 1000));
    CHECK(*c.unsubscribe_rate() == doctest::Approx(12.0 / 960));
    CHECK(*c.tls_share() == doctest::Approx(0.5));
    CHECK(*c.aligned_share() == doctest::Approx(0.999));
    CHECK(*c.one_click_share() == doctest::Approx(0.25));
}

TEST_CASE("complaints and asynchronous bounces are guardrail signals; SMTP answers are not") {
    auto complaint = event(EventType::Complained, "News.Example.com");
    complaint.source = "arf";
    auto dsn = event(EventType::Bounced);
    dsn.source = "dsn";
    dsn.hard = true;
    auto smtp = event(EventType::Bounced);
    smtp.source = "smtp";
    smtp.hard = true;
    CHECK(guardrail_signal(complaint) ==
          GuardrailSignal{GuardrailSignal::Kind::Complaint, "news.example.com", false});
    CHECK(guardrail_signal(dsn) ==
          GuardrailSignal{GuardrailSignal::Kind::Bounce, "news.example.com", true});
    CHECK_FALSE(guardrail_signal(smtp).has_value());
    CHECK_FALSE(guardrail_signal(event(EventType::Delivered)).has_value());
    CHECK_FALSE(guardrail_signal(event(EventType::Complained, "")).has_value());
}

TEST_CASE("the state survives serialize and restore, and bad state changes nothing") {
    Rates rates;
    rates.add("a.example", Counter::Delivered, kStart, 7);
    rates.add("a.example", Counter::Complaints, kStart + 5h, 2);
    rates.add("b.example", Counter::HardBounces, kStart + 100h);
    const auto text = rates.serialize();
    Rates copy;
    REQUIRE(copy.restore(text));
    const TimePoint now = kStart + 100h;
    for (const auto* domain : {"a.example", "b.example"}) {
        CAPTURE(domain);
        CHECK(copy.window(domain, kWeekWindow, now) == rates.window(domain, kWeekWindow, now));
    }
    CHECK(copy.window("a.example", kWeekWindow, now)[Counter::Delivered] == 7);
    CHECK_FALSE(copy.restore("{\"counters\":3}"));
    CHECK_FALSE(copy.restore("garbage"));
    CHECK(copy.window("a.example", kWeekWindow, now)[Counter::Complaints] == 2);
    // A state written with an unknown counter (a later version) still reads.
    REQUIRE(copy.restore(
        R"({"version":2,"counters":["future","delivered"],)"
        R"("domains":{"c.example":[[)" +
        std::to_string(std::chrono::floor<std::chrono::hours>(kStart).time_since_epoch().count()) +
        ",9,4]]}}"));
    CHECK(copy.window("c.example", kDayWindow, kStart)[Counter::Delivered] == 4);
    CHECK(copy.window("a.example", kDayWindow, kStart) == Counts{});
}

TEST_CASE("prune forgets domains with nothing left in the ring") {
    Rates rates;
    rates.add("old.example", Counter::Delivered, kStart);
    rates.add("new.example", Counter::Delivered, kStart + 200h);
    rates.prune(kStart + 200h);
    CHECK(rates.domains() == std::vector<std::string>{"new.example"});
}

// ---- scorecard ----

TEST_CASE("a clean domain passes every rule, each line naming its numbers") {
    Counts c;
    c[Counter::Received] = 1000;
    c[Counter::DmarcAligned] = 1000;
    c[Counter::Delivered] = 1000;
    c[Counter::DeliveredTls] = 1000;
    c[Counter::Bulk] = 1000;
    c[Counter::OneClick] = 1000;
    c[Counter::Complaints] = 0;
    c[Counter::HardBounces] = 5;
    ComplianceFacts facts;
    facts.sources = {{"192.0.2.10", "mta.example.com", true}};
    facts.longest_unsubscribe_delay = std::chrono::minutes(3);
    const auto card = scorecard("news.example.com", c, kDayWindow, facts);
    CHECK(card.pass());
    CHECK(card.window == "24h");
    const std::vector<std::string> rules = {"dmarc_aligned_share",
                                            "one_click_share",
                                            "complaint_rate_target",
                                            "complaint_rate_limit",
                                            "hard_bounce_rate",
                                            "tls_share",
                                            "fcrdns",
                                            "unsubscribe_delay"};
    REQUIRE(card.lines.size() == rules.size());
    for (std::size_t i = 0; i < rules.size(); ++i) {
        CAPTURE(rules[i]);
        CHECK(card.lines[i].rule == rules[i]);
        CHECK(card.lines[i].verdict == Verdict::Pass);
        CHECK_FALSE(card.lines[i].why.empty());
    }
    CHECK(line(card, "hard_bounce_rate").measured_text == "0.50 %");
    CHECK(line(card, "hard_bounce_rate").why.find("5 hard bounces over 1005") != std::string::npos);
    CHECK(line(card, "unsubscribe_delay").measured_text == "3m");
    CHECK(*line(card, "unsubscribe_delay").measured == doctest::Approx(180.0));
}

TEST_CASE("complaint rates are held against 0.1 % and 0.3 % separately") {
    struct Case {
        std::uint64_t complaints;
        Verdict target;
        Verdict limit;
    };
    const std::vector<Case> table = {
        {0, Verdict::Pass, Verdict::Pass},  {9, Verdict::Pass, Verdict::Pass},
        {10, Verdict::Fail, Verdict::Pass}, {29, Verdict::Fail, Verdict::Pass},
        {30, Verdict::Fail, Verdict::Fail}, {100, Verdict::Fail, Verdict::Fail},
    };
    for (const auto& c : table) {
        CAPTURE(c.complaints);
        Counts counts;
        counts[Counter::Delivered] = 10000;
        counts[Counter::DeliveredTls] = 10000;
        counts[Counter::Complaints] = c.complaints;
        const auto card = scorecard("d.example", counts, kDayWindow, {});
        CHECK(line(card, "complaint_rate_target").verdict == c.target);
        CHECK(line(card, "complaint_rate_limit").verdict == c.limit);
        CHECK(card.pass() == (c.target == Verdict::Pass));
    }
}

TEST_CASE("failing rules say what is wrong; missing data is n/a, not a failure") {
    Counts c;
    c[Counter::Received] = 200;
    c[Counter::DmarcAligned] = 150;
    c[Counter::Delivered] = 97;
    c[Counter::DeliveredTls] = 90;
    c[Counter::HardBounces] = 3;
    ComplianceFacts facts;
    facts.sources = {{"192.0.2.10", "mta.example.com", true},
                     {"192.0.2.11", "", false},
                     {"192.0.2.12", "host.isp.example", false}};
    facts.longest_unsubscribe_delay = std::chrono::hours(50);
    const auto card = scorecard("d.example", c, kWeekWindow, facts);
    CHECK_FALSE(card.pass());
    CHECK(card.window == "168h");
    CHECK(line(card, "dmarc_aligned_share").verdict == Verdict::Fail);
    CHECK(line(card, "dmarc_aligned_share").why.find("50 of 200") != std::string::npos);
    CHECK(line(card, "one_click_share").verdict == Verdict::NoData);
    CHECK(line(card, "hard_bounce_rate").verdict == Verdict::Fail); // 3 %
    CHECK(line(card, "tls_share").verdict == Verdict::Fail);
    CHECK(line(card, "tls_share").why.find("7 of 97") != std::string::npos);
    const auto& fcrdns = line(card, "fcrdns");
    CHECK(fcrdns.verdict == Verdict::Fail);
    CHECK(fcrdns.measured_text == "1/3");
    CHECK(fcrdns.why.find("192.0.2.11 (no PTR)") != std::string::npos);
    CHECK(fcrdns.why.find("host.isp.example") != std::string::npos);
    CHECK(line(card, "unsubscribe_delay").verdict == Verdict::Fail);
    CHECK(line(card, "unsubscribe_delay").measured_text == "2d 2h");

    const auto empty = scorecard("quiet.example", Counts{}, kDayWindow, {});
    CHECK(empty.pass());
    for (const auto& l : empty.lines) {
        CAPTURE(l.rule);
        CHECK(l.verdict == Verdict::NoData);
        CHECK(l.measured_text == "-");
    }
}

TEST_CASE("the text and JSON forms carry every line with its result") {
    Counts c;
    c[Counter::Delivered] = 1000;
    c[Counter::Complaints] = 2; // 0.2 %: over the target, under the limit
    const std::vector<Scorecard> cards = {scorecard("a.example", c, kDayWindow, {}),
                                          scorecard("b.example", Counts{}, kDayWindow, {})};
    const auto text = format_scorecards_text(cards);
    CHECK(text.find("a.example  window 24h  FAIL") != std::string::npos);
    CHECK(text.find("b.example  window 24h  PASS") != std::string::npos);
    CHECK(text.find("fail  complaint_rate_target") != std::string::npos);
    CHECK(text.find("pass  complaint_rate_limit") != std::string::npos);
    CHECK(text.find("0.20 %") != std::string::npos);

    boost::system::error_code ec;
    const auto v = boost::json::parse(format_scorecards_json(cards), ec);
    REQUIRE_FALSE(ec);
    const auto& domains = v.at("domains").as_array();
    REQUIRE(domains.size() == 2);
    const auto& a = domains[0].as_object();
    CHECK(a.at("domain").as_string() == "a.example");
    CHECK(a.at("pass").as_bool() == false);
    CHECK(a.at("counts").at("complaints").to_number<std::uint64_t>() == 2);
    const auto& rules = a.at("rules").as_array();
    REQUIRE(rules.size() == cards[0].lines.size());
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto& r = rules[i].as_object();
        const auto& l = cards[0].lines[i];
        CAPTURE(l.rule);
        CHECK(r.at("rule").as_string() == l.rule);
        CHECK(r.at("result").as_string() == verdict_name(l.verdict));
        CHECK(r.at("why").as_string() == l.why);
        CHECK(r.at("threshold").as_double() == doctest::Approx(l.threshold));
        if (l.measured)
            CHECK(r.at("measured").as_double() == doctest::Approx(*l.measured));
        else
            CHECK(r.at("measured").is_null());
    }
}
