#include "daemon/warmup_service.hpp"

#include "daemon/ctl_format.hpp"
#include "daemon/ctl_warmup.hpp"
#include "daemon/warmup_verbs.hpp"
#include "tests/queue/fake_deliverer.hpp"
#include "tests/queue/fixture.hpp"
#include "warmup/values.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace ember;
namespace asio = boost::asio;
namespace json = boost::json;
using core::OutcomeKind;

namespace {

// 2026-03-01T12:00:00Z: the sender below starts that day.
constexpr std::int64_t kNoon = 1'772'366'400'000;
constexpr std::int64_t kNextMidnight = 1'772'409'600'000; // 2026-03-02T00:00:00Z
constexpr std::int64_t kDayMs = 86'400'000;

const char* const kWarmupToml = R"(
[schedule.tiny]
caps = [3, 3, 3]
after = "steady"
steady_cap = 3

[[sender]]
domain = "sender.test"
schedule = "tiny"
start = 2026-03-01

[[provider]]
name = "dest"
domains = ["dest.test"]
max_connections = 1

[[provider]]
name = "other"

[[rule]]
code = "421"
enhanced = "4\\.7\\.28"
action = "backoff"
factor = 0.5
duration = "1h"
)";

warmup::Config warmup_config(const char* toml = kWarmupToml) {
    core::Diagnostics diag;
    auto config = warmup::parse_config(toml, "warmup.toml", diag);
    INFO(diag.to_string());
    REQUIRE(config.has_value());
    return *config;
}

core::DeliveryJob job_for(const std::vector<std::string>& rcpts,
                          const std::string& from = "News <news@Sender.test>") {
    core::DeliveryJob job;
    job.message_id = 1;
    job.queue_id = "Q1";
    job.domain = "dest.test";
    job.envelope.mail_from = "bounces@envelope.test";
    job.content =
        std::make_shared<const std::string>("From: " + from + "\r\nSubject: hi\r\n\r\nbody\r\n");
    for (std::uint32_t i = 0; i < rcpts.size(); ++i)
        job.recipients.push_back(core::JobRecipient{i, core::RecipientSpec{rcpts[i], "", 0}});
    return job;
}

// A service over a real Store with an injected clock, a fake inner
// deliverer and its gate, all on one io_context the test runs.
struct Fixture {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store = queue::test::open_store(queue::test::config_for(dir));
    asio::io_context io;
    daemon::Metrics metrics;
    std::int64_t now = kNoon;
    queue::test::FakeDeliverer inner{io.get_executor()};
    std::unique_ptr<daemon::WarmupService> service;
    std::unique_ptr<daemon::PacingDeliverer> gate;

    explicit Fixture(warmup::Settings settings = enabled_settings(),
                     warmup::Config config = warmup_config()) {
        service = make_service(settings, std::move(config));
        gate = std::make_unique<daemon::PacingDeliverer>(*service, inner);
    }

    static warmup::Settings enabled_settings() {
        warmup::Settings s;
        s.file = "warmup.toml"; // the config is handed over parsed; the name only enables it
        return s;
    }

    std::unique_ptr<daemon::WarmupService> make_service(const warmup::Settings& settings,
                                                        warmup::Config config) {
        std::string error;
        auto s = daemon::WarmupService::create(io.get_executor(), settings, std::move(config),
                                               *store, metrics, error, [this] { return now; });
        INFO(error);
        REQUIRE(s != nullptr);
        return s;
    }

    std::vector<core::Outcome> deliver(core::DeliveryJob job) {
        std::optional<std::vector<core::Outcome>> result;
        std::exception_ptr failure;
        asio::co_spawn(io, gate->deliver(std::move(job)),
                       [&](std::exception_ptr e, std::vector<core::Outcome> outcomes) {
                           failure = e;
                           result = std::move(outcomes);
                       });
        io.restart();
        io.run();
        REQUIRE_FALSE(failure);
        REQUIRE(result.has_value());
        return *result;
    }

    std::vector<warmup::KeyStatus> status(const std::string& domain = "sender.test") {
        return service->engine().status(domain, service->now());
    }

    const warmup::KeyStatus& dest_status(std::vector<warmup::KeyStatus>& rows) {
        for (const auto& r : rows)
            if (r.key.provider == "dest")
                return r;
        FAIL("no status row for sender.test/dest");
        return rows.front();
    }
};

std::vector<std::string> addresses(const core::DeliveryJob& job) {
    std::vector<std::string> out;
    for (const auto& r : job.recipients)
        out.push_back(r.spec.address);
    return out;
}

} // namespace

TEST_CASE("the sending domain is the From: domain, else the envelope sender's") {
    CHECK(daemon::sending_domain_of(job_for({"a@dest.test"})) == "sender.test");
    auto job = job_for({"a@dest.test"});
    job.content = std::make_shared<const std::string>("Subject: no from\r\n\r\nbody\r\n");
    CHECK(daemon::sending_domain_of(job) == "envelope.test");
    job.content = nullptr;
    job.envelope.mail_from = "";
    CHECK(daemon::sending_domain_of(job).empty());
}

TEST_CASE("recipients over the daily cap are throttled until the next UTC day and never reach "
          "the inner deliverer") {
    Fixture f;
    const auto outcomes = f.deliver(
        job_for({"a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test"}));
    REQUIRE(outcomes.size() == 5);
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(addresses(f.inner.jobs.front()) ==
          std::vector<std::string>{"a@dest.test", "b@dest.test", "c@dest.test"});
    for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(i);
        CHECK(outcomes[i].kind == OutcomeKind::Delivered);
    }
    for (std::size_t i = 3; i < 5; ++i) {
        CAPTURE(i);
        CHECK(outcomes[i].kind == OutcomeKind::Throttled);
        CHECK(outcomes[i].not_before_ms == kNextMidnight);
        CHECK(outcomes[i].text.find("cap") != std::string::npos);
    }
    auto rows = f.status();
    CHECK(f.dest_status(rows).sent_today == 3);
    const auto text = f.metrics.render();
    CHECK(text.find("ember_warmup_throttled_total{reason=\"cap\"} 2") != std::string::npos);
    CHECK(text.find("ember_warmup_admitted_total 3") != std::string::npos);
    CHECK(text.find("ember_warmup_events_total{type=\"cap_reached\"} 1") != std::string::npos);
}

TEST_CASE("a job entirely over the cap goes nowhere and a new day lets it go") {
    Fixture f;
    (void)f.deliver(job_for({"a@dest.test", "b@dest.test", "c@dest.test"}));
    const auto held = f.deliver(job_for({"d@dest.test"}));
    CHECK(f.inner.jobs.size() == 1);
    REQUIRE(held.size() == 1);
    CHECK(held[0].kind == OutcomeKind::Throttled);
    f.now = kNextMidnight + 1000;
    const auto sent = f.deliver(job_for({"d@dest.test"}));
    CHECK(f.inner.jobs.size() == 2);
    CHECK(sent[0].kind == OutcomeKind::Delivered);
}

TEST_CASE("a 421 4.7.28 answer matched by a backoff rule puts the key into backoff") {
    Fixture f;
    f.inner.script["a@dest.test"] = {queue::test::remote(OutcomeKind::Deferred, 421, "4.7.28",
                                                         "Our system has detected an unusual "
                                                         "rate of mail; rate limited")};
    const auto outcomes = f.deliver(job_for({"a@dest.test"}));
    REQUIRE(outcomes.size() == 1);
    CHECK(outcomes[0].kind == OutcomeKind::Deferred); // an attempt: the scheduler retries it
    auto rows = f.status();
    const auto& s = f.dest_status(rows);
    CHECK(s.rate_factor < 1.0);
    CHECK(s.backoff_until.has_value());
    const auto text = f.metrics.render();
    CHECK(text.find("ember_warmup_events_total{type=\"backoff_started\"} 1") != std::string::npos);
    CHECK(
        text.find("ember_warmup_backoff{domain=\"sender.test\",provider=\"dest\",source=\"\"} 1") !=
        std::string::npos);
}

TEST_CASE("a job over its provider's max_connections waits a second, counting nothing") {
    Fixture f;
    f.inner.hold = true;
    std::optional<std::vector<core::Outcome>> first;
    asio::co_spawn(f.io, f.gate->deliver(job_for({"a@dest.test"})),
                   [&](std::exception_ptr, std::vector<core::Outcome> o) { first = std::move(o); });
    while (f.inner.active == 0)
        REQUIRE(f.io.run_one() > 0);
    std::optional<std::vector<core::Outcome>> second;
    asio::co_spawn(
        f.io, f.gate->deliver(job_for({"b@dest.test"})),
        [&](std::exception_ptr, std::vector<core::Outcome> o) { second = std::move(o); });
    while (!second)
        REQUIRE(f.io.run_one() > 0);
    REQUIRE(second->size() == 1);
    CHECK((*second)[0].kind == OutcomeKind::Throttled);
    CHECK((*second)[0].not_before_ms == kNoon + daemon::kConnectionWaitMs);
    CHECK((*second)[0].text.find("connections") != std::string::npos);
    f.inner.release();
    f.io.run();
    REQUIRE(first.has_value());
    CHECK((*first)[0].kind == OutcomeKind::Delivered);
    auto rows = f.status();
    CHECK(f.dest_status(rows).sent_today == 1);
    // The slot is free again.
    CHECK(f.deliver(job_for({"c@dest.test"}))[0].kind == OutcomeKind::Delivered);
}

TEST_CASE("without a warmup file jobs pass through untouched and nothing is counted") {
    Fixture f(warmup::Settings{}, warmup::unthrottled_config());
    const auto outcomes = f.deliver(
        job_for({"a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test"}));
    CHECK(outcomes.size() == 5);
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(f.inner.jobs.front().recipients.size() == 5);
    CHECK(f.service->engine().key_count() == 0);
}

TEST_CASE("warm-up state saved in the store's KV table comes back in a new service") {
    Fixture f;
    (void)f.deliver(job_for({"a@dest.test", "b@dest.test"}));
    f.service->save();
    std::string error;
    const auto table = f.store->open_table(daemon::kWarmupTable, error);
    REQUIRE(table.has_value());
    for (int i = 0; i < 500 && !f.store->kv_get(*table, daemon::kWarmupStateKey); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10)); // the group committer
    const auto saved = f.store->kv_get(*table, daemon::kWarmupStateKey);
    REQUIRE(saved.has_value());
    CHECK(*saved == f.service->engine().serialize_state());

    daemon::Metrics other_metrics;
    std::string create_error;
    auto restored = daemon::WarmupService::create(f.io.get_executor(), Fixture::enabled_settings(),
                                                  warmup_config(), *f.store, other_metrics,
                                                  create_error, [&f] { return f.now; });
    REQUIRE(restored != nullptr);
    const auto rows = restored->engine().status("sender.test", restored->now());
    bool found = false;
    for (const auto& r : rows) {
        if (r.key.provider != "dest")
            continue;
        found = true;
        CHECK(r.sent_today == 2);
    }
    CHECK(found);
}

TEST_CASE("the warm-up clock moves only when allow_clock_advance is set") {
    Fixture refused;
    CHECK_FALSE(refused.service->advance(kDayMs));
    CHECK(refused.service->offset_ms() == 0);

    auto settings = Fixture::enabled_settings();
    settings.allow_clock_advance = true;
    Fixture f(settings);
    (void)f.deliver(job_for({"a@dest.test", "b@dest.test", "c@dest.test"}));
    const auto held = f.deliver(job_for({"d@dest.test"}));
    REQUIRE(held[0].kind == OutcomeKind::Throttled);
    CHECK(held[0].not_before_ms == kNextMidnight);
    REQUIRE(f.service->advance(kDayMs));
    // Wall time is still noon; the engine lives a day later.
    CHECK(f.service->now() == warmup::TimePoint(std::chrono::milliseconds(kNoon + kDayMs)));
    CHECK(f.deliver(job_for({"d@dest.test"}))[0].kind == OutcomeKind::Delivered);
    // Waits the engine computes on its clock go back to the scheduler's.
    (void)f.deliver(job_for({"e@dest.test", "f@dest.test"}));
    const auto again = f.deliver(job_for({"g@dest.test"}));
    REQUIRE(again[0].kind == OutcomeKind::Throttled);
    // The engine's next midnight (day 3) is the wall clock's day-2 midnight.
    CHECK(again[0].not_before_ms == kNextMidnight);
}

TEST_CASE("reload keeps today's counters and applies the new caps") {
    Fixture f;
    (void)f.deliver(job_for({"a@dest.test", "b@dest.test"}));
    std::string toml = kWarmupToml;
    toml.replace(toml.find("caps = [3, 3, 3]"), 16, "caps = [5, 5, 5]");
    f.service->apply(Fixture::enabled_settings(), warmup_config(toml.c_str()));
    auto rows = f.status();
    const auto& s = f.dest_status(rows);
    CHECK(s.sent_today == 2);
    REQUIRE(s.cap.has_value());
    CHECK(*s.cap == 5);
}

TEST_CASE("the admin verbs pause, resume, set the day and explain") {
    Fixture f;
    const auto paused = daemon::warmup_pause(*f.service, json::object{{"domain", "sender.test"}});
    REQUIRE(paused.ok());
    const auto held = f.deliver(job_for({"a@dest.test"}));
    CHECK(held[0].kind == OutcomeKind::Throttled);
    CHECK(held[0].text.find("paused") != std::string::npos);
    REQUIRE(daemon::warmup_resume(*f.service, json::object{{"domain", "sender.test"}}).ok());
    CHECK(f.deliver(job_for({"a@dest.test"}))[0].kind == OutcomeKind::Delivered);

    const auto bad_day =
        daemon::warmup_set_day(*f.service, json::object{{"domain", "sender.test"}, {"day", "0"}});
    CHECK_FALSE(bad_day.ok());
    REQUIRE(
        daemon::warmup_set_day(*f.service, json::object{{"domain", "sender.test"}, {"day", "2"}})
            .ok());
    const auto status = daemon::warmup_status(*f.service, json::object{{"domain", "sender.test"}});
    REQUIRE(status.ok());
    const auto text = daemon::ctl::format_warmup_status(status.result()).out;
    CAPTURE(text);
    CHECK(text.find("sender.test") != std::string::npos);
    CHECK(text.find("1/3") != std::string::npos);

    const auto explained = daemon::warmup_explain(
        *f.service, json::object{{"domain", "sender.test"}, {"recipient", "x@dest.test"}});
    REQUIRE(explained.ok());
    const auto& key = explained.result().as_object().at("key").as_object();
    CHECK(key.at("provider").as_string() == "dest");
    const auto explain_text = daemon::ctl::format_warmup_explain(explained.result()).out;
    CAPTURE(explain_text);
    CHECK(explain_text.find("may go now") != std::string::npos);

    CHECK_FALSE(daemon::warmup_pause(
                    *f.service, json::object{{"domain", "sender.test"}, {"provider", "nosuch"}})
                    .ok());
    CHECK_FALSE(daemon::warmup_status(*f.service, json::object{{"bogus", true}}).ok());
}

TEST_CASE("warmup simulate prints a day table for a synthetic volume and refuses bad input") {
    queue::test::TempDir dir;
    const auto file = dir.path + "/warmup.toml";
    std::ofstream(file) << kWarmupToml;
    daemon::ctl::SimulateOptions options;
    options.file = file;
    options.days = 2;
    options.daily_volume = {"dest=5"};
    const auto printed = daemon::ctl::warmup_simulate(options, false);
    CAPTURE(printed.out);
    CAPTURE(printed.err);
    CHECK(printed.exit_code == 0);
    CHECK(printed.out.find("2026-03-01") != std::string::npos);
    const auto json_printed = daemon::ctl::warmup_simulate(options, true);
    CHECK(json_printed.out.find("\"sent\": 3") != std::string::npos);

    options.daily_volume = {"dest:5"};
    CHECK(daemon::ctl::warmup_simulate(options, false).exit_code == daemon::ctl::kExitUsage);
    options.daily_volume = {"nosuch=5"};
    CHECK(daemon::ctl::warmup_simulate(options, false).exit_code == daemon::ctl::kExitDaemonError);
    std::ofstream(file) << "[schedule.x]\ncaps = \"no\"\n";
    const auto broken = daemon::ctl::warmup_simulate(options, false);
    CHECK(broken.exit_code == daemon::ctl::kExitConfig);
    CHECK(broken.err.find("warmup.toml:2:") != std::string::npos);
}

TEST_CASE("an admitted recipient that a later stage suppresses or postpones gives its cap slot "
          "back") {
    Fixture f;
    auto suppressed = queue::test::remote(OutcomeKind::Suppressed, 550, "5.7.1", "suppressed");
    suppressed.local = true;
    auto postponed = queue::test::remote(OutcomeKind::Throttled, 451, "4.4.5", "send_at later");
    postponed.local = true;
    postponed.not_before_ms = kNoon + 3'600'000;
    f.inner.script["a@dest.test"] = {suppressed};
    f.inner.script["b@dest.test"] = {postponed};
    const auto outcomes = f.deliver(job_for({"a@dest.test", "b@dest.test", "c@dest.test"}));
    REQUIRE(outcomes.size() == 3);
    // The later stages' answers reach the scheduler unchanged.
    CHECK(outcomes[0].kind == OutcomeKind::Suppressed);
    CHECK(outcomes[1].kind == OutcomeKind::Throttled);
    CHECK(outcomes[1].not_before_ms == kNoon + 3'600'000);
    CHECK(outcomes[2].kind == OutcomeKind::Delivered);
    auto rows = f.status();
    CHECK(f.dest_status(rows).sent_today == 1);
    CHECK(f.dest_status(rows).guardrails.counts.attempts() == 1);
    CHECK(f.metrics.render().find("ember_warmup_refunded_total 2") != std::string::npos);
    // The two slots are usable again today (cap 3).
    const auto more = f.deliver(job_for({"d@dest.test", "e@dest.test", "g@dest.test"}));
    CHECK(more[0].kind == OutcomeKind::Delivered);
    CHECK(more[1].kind == OutcomeKind::Delivered);
    CHECK(more[2].kind == OutcomeKind::Throttled);
}

TEST_CASE("the job handed on carries its provider's max_messages_per_connection") {
    std::string toml = kWarmupToml;
    toml.replace(toml.find("max_connections = 1"), 19,
                 "max_connections = 1\nmax_messages_per_connection = 7");
    Fixture f(Fixture::enabled_settings(), warmup_config(toml.c_str()));
    struct Case {
        std::string domain;
        std::uint32_t on_job; // what the job arrives with
        std::uint32_t want;
    };
    const Case cases[] = {
        {"dest.test", 0, 7},  // the provider's value
        {"dest.test", 20, 7}, // the stricter one
        {"dest.test", 3, 3},  // the stricter one
        {"other.test", 0, 0}, // a provider without one: the agent's default
        {"other.test", 5, 5}, // untouched
    };
    for (const auto& c : cases) {
        CAPTURE(c.domain);
        CAPTURE(c.on_job);
        auto job = job_for({"a@" + c.domain});
        job.domain = c.domain;
        job.max_messages_per_connection = c.on_job;
        f.inner.jobs.clear();
        (void)f.deliver(std::move(job));
        REQUIRE(f.inner.jobs.size() == 1);
        CHECK(f.inner.jobs.front().max_messages_per_connection == c.want);
    }
}

TEST_CASE("when not all recipients may go, the priority input picks who goes first") {
    Fixture f;
    const std::map<std::string, double> score = {{"a@dest.test", 0.1},
                                                 {"b@dest.test", 0.9},
                                                 {"c@dest.test", 0.5},
                                                 {"d@dest.test", 0.9},
                                                 {"e@dest.test", 0.2}};
    std::vector<std::int64_t> asked_at;
    f.gate->set_priority([&](std::string_view address, std::int64_t now_ms) {
        asked_at.push_back(now_ms);
        return score.at(std::string(address));
    });
    const auto outcomes = f.deliver(
        job_for({"a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test"}));
    REQUIRE(f.inner.jobs.size() == 1);
    // The three best (b, d, c) go, in submission order; a and e wait.
    CHECK(addresses(f.inner.jobs.front()) ==
          std::vector<std::string>{"b@dest.test", "c@dest.test", "d@dest.test"});
    REQUIRE(outcomes.size() == 5);
    CHECK(outcomes[0].kind == OutcomeKind::Throttled);
    CHECK(outcomes[4].kind == OutcomeKind::Throttled);
    CHECK(outcomes[1].kind == OutcomeKind::Delivered);
    CHECK(asked_at == std::vector<std::int64_t>(5, kNoon)); // the wall clock, unix ms
}

TEST_CASE("without scarcity the priority input is never asked and order is submission order") {
    Fixture f;
    int asked = 0;
    f.gate->set_priority([&](std::string_view, std::int64_t) {
        ++asked;
        return 1.0;
    });
    (void)f.deliver(job_for({"b@dest.test", "a@dest.test"}));
    CHECK(asked == 0);
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(addresses(f.inner.jobs.front()) ==
          std::vector<std::string>{"b@dest.test", "a@dest.test"});

    // Without a priority input, scarcity keeps submission order.
    Fixture plain;
    (void)plain.deliver(
        job_for({"e@dest.test", "d@dest.test", "c@dest.test", "b@dest.test", "a@dest.test"}));
    REQUIRE(plain.inner.jobs.size() == 1);
    CHECK(addresses(plain.inner.jobs.front()) ==
          std::vector<std::string>{"e@dest.test", "d@dest.test", "c@dest.test"});
}

namespace {

// What the scheduler's release_throttled answers, counting the calls.
asio::awaitable<queue::AdminChange> fake_release(int* calls, std::size_t released,
                                                 std::string error) {
    ++*calls;
    co_return queue::AdminChange{released != 0, released, released, std::move(error)};
}

asio::awaitable<void> store_result(asio::awaitable<daemon::AdminResult> verb,
                                   std::optional<daemon::AdminResult>* out) {
    out->emplace(co_await std::move(verb));
}

// AdminResult has no default state, which co_spawn's handler would need.
daemon::AdminResult run_verb(asio::io_context& io, asio::awaitable<daemon::AdminResult> verb) {
    std::optional<daemon::AdminResult> result;
    asio::co_spawn(io, store_result(std::move(verb), &result),
                   [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    io.restart();
    io.run();
    REQUIRE(result.has_value());
    return *result;
}

} // namespace

TEST_CASE("resume and set-day release held mail at once; failed verbs release nothing") {
    Fixture f;
    int calls = 0;
    f.service->set_release([&calls] { return fake_release(&calls, 4, ""); });
    const json::object domain{{"domain", "sender.test"}};
    REQUIRE(daemon::warmup_pause(*f.service, domain).ok());
    const auto resumed = run_verb(
        f.io, daemon::release_after(f.service.get(), daemon::warmup_resume(*f.service, domain)));
    REQUIRE(resumed.ok());
    CHECK(calls == 1);
    const auto& answer = resumed.result().as_object();
    CHECK(answer.at("released").as_uint64() == 4);
    const std::string message(answer.at("message").as_string());
    CAPTURE(message);
    CHECK(message.find("resumed") != std::string::npos);
    CHECK(message.find("4 held recipients released") != std::string::npos);
    // The engine took the resume before the release ran.
    CHECK(f.deliver(job_for({"a@dest.test"}))[0].kind == OutcomeKind::Delivered);

    const auto refused = run_verb(
        f.io, daemon::release_after(
                  f.service.get(),
                  daemon::warmup_resume(*f.service, json::object{{"domain", "sender.test"},
                                                                 {"provider", "nosuch"}})));
    CHECK_FALSE(refused.ok());
    CHECK(calls == 1);

    const auto day =
        run_verb(f.io, daemon::release_after(
                           f.service.get(),
                           daemon::warmup_set_day(
                               *f.service, json::object{{"domain", "sender.test"}, {"day", "3"}})));
    REQUIRE(day.ok());
    CHECK(calls == 2);

    f.service->set_release([&calls] { return fake_release(&calls, 0, "disk full"); });
    const auto failed = run_verb(
        f.io, daemon::release_after(f.service.get(), daemon::warmup_resume(*f.service, domain)));
    REQUIRE(failed.ok()); // the resume itself stands
    const std::string note(failed.result().as_object().at("message").as_string());
    CHECK(note.find("could not be released now (disk full)") != std::string::npos);
}

TEST_CASE("a reload releases held mail; without a release hook nothing is asked") {
    Fixture f;
    f.service->apply(Fixture::enabled_settings(), warmup_config()); // no hook: nothing happens
    f.io.restart();
    f.io.run();
    int calls = 0;
    f.service->set_release([&calls] { return fake_release(&calls, 2, ""); });
    f.service->apply(Fixture::enabled_settings(), warmup_config());
    f.io.restart();
    f.io.run();
    CHECK(calls == 1);
}
