#include "queue/scheduler.hpp"

#include "fake_deliverer.hpp"
#include "fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using core::OutcomeKind;

namespace {

constexpr std::int64_t kStart = 1'700'000'000'000;
constexpr std::uint64_t kNoJitter = std::uint64_t{1} << 63;
constexpr std::int64_t kMinute = 60'000;

struct Report {
    QueueId id = 0;
    std::vector<std::uint32_t> indexes;
    Message message;
};

class RecordingSink final : public BounceSink {
public:
    std::vector<Report> failures;
    std::vector<Report> delays;
    void failed(const Message& m, std::vector<std::uint32_t> indexes) override {
        failures.push_back(Report{m.id, std::move(indexes), m});
    }
    void delayed(const Message& m, std::vector<std::uint32_t> indexes) override {
        delays.push_back(Report{m.id, std::move(indexes), m});
    }
};

// A real io_context and Store, a manual clock and a fixed jitter input.
// Members are destroyed bottom-up: the scheduler first, the io_context
// after the store (whose last callbacks post to it).
struct Harness {
    TempDir dir;
    asio::io_context io;
    StoreConfig store_config = config_for(dir);
    std::unique_ptr<Store> store = open_store(store_config);
    std::int64_t now = kStart;
    FakeDeliverer deliverer{io.get_executor()};
    RecordingSink sink;
    SchedulerConfig config;
    std::unique_ptr<Scheduler> scheduler;

    Harness() = default;
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    ~Harness() {
        deliverer.release();
        if (scheduler) {
            scheduler->stop();
            (void)run_until([this] { return scheduler->idle(); });
            scheduler.reset();
        }
        io.poll();
    }

    void start() {
        scheduler = std::make_unique<Scheduler>(
            io.get_executor(), *store, deliverer, config, [this] { return now; },
            [] { return kNoJitter; }, sink);
        scheduler->start();
    }

    // Runs handlers until pred() holds; false after 10 s of real time (a hang).
    template <typename Pred> [[nodiscard]] bool run_until(Pred pred) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline)
                return false;
            if (io.stopped())
                io.restart();
            io.run_one_for(5ms);
        }
        return true;
    }

    // Until nothing is held and no handler is ready: every write the
    // scheduler started has come back.
    void drain() {
        for (int i = 0; i < 1000; ++i) {
            REQUIRE(run_until([this] { return scheduler->idle(); }));
            if (io.poll() == 0 && scheduler->idle())
                return;
        }
        FAIL("the scheduler never went quiet");
    }

    // Runs every ready handler (used while jobs are held, so never idle).
    void poll_quiet() {
        while (io.poll() > 0) {
        }
    }

    QueueId submit(std::vector<Recipient> recipients,
                   std::string mail_from = "sender@example.org") {
        const auto id = store->next_id();
        auto m = message(id, std::move(recipients), now);
        m.envelope.mail_from = std::move(mail_from);
        REQUIRE(commit_sync(*store, std::move(m), content_for(id)).status == CommitStatus::Ok);
        if (scheduler)
            scheduler->notify();
        return id;
    }

    void advance(std::int64_t ms) {
        now += ms;
        scheduler->notify();
    }

    [[nodiscard]] bool gone(QueueId id) const { return !store->load(id).has_value(); }

    template <typename T> [[nodiscard]] T await(asio::awaitable<T> task) {
        std::optional<T> result;
        asio::co_spawn(io, std::move(task), [&result](const std::exception_ptr& e, T value) {
            REQUIRE(!e);
            result = std::move(value);
        });
        REQUIRE(run_until([&] { return result.has_value(); }));
        return std::move(*result);
    }
};

Recipient notify_recipient(std::string address, std::uint8_t notify) {
    auto r = recipient(std::move(address));
    r.spec.notify = notify;
    return r;
}

} // namespace

TEST_CASE("delivered recipients are final and the message is removed without a DSN") {
    Harness h;
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@one.example")});
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    h.drain();
    REQUIRE(h.deliverer.jobs.size() == 1);
    CHECK(h.deliverer.jobs[0].recipients.size() == 2);
    CHECK(h.deliverer.jobs[0].queue_id == format_queue_id(id));
    CHECK(h.deliverer.jobs[0].attempt == 1);
    CHECK(*h.deliverer.jobs[0].content == content_for(id));
    CHECK(h.sink.failures.empty());
    CHECK(h.sink.delays.empty());
    CHECK(h.store->counts().at(RecipientState::Queued) == 0);
}

TEST_CASE("several recipients of one domain become one job; two domains become two jobs") {
    Harness h;
    h.deliverer.hold = true;
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example"),
                              recipient("c@one.example"), recipient("d@One.Example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    std::map<std::string, std::vector<std::uint32_t>> got;
    for (const auto& job : h.deliverer.jobs) {
        CHECK(job.message_id == id);
        for (const auto& r : job.recipients)
            got[job.domain].push_back(r.index);
    }
    const std::map<std::string, std::vector<std::uint32_t>> want = {{"one.example", {0, 2, 3}},
                                                                    {"two.example", {1}}};
    CHECK(got == want);
    // One read of the content, shared by the message's jobs.
    CHECK(h.deliverer.jobs[0].content.get() == h.deliverer.jobs[1].content.get());
    h.deliverer.release();
    REQUIRE(h.run_until([&] { return h.gone(id); }));
}

TEST_CASE("a destination's recipients beyond max_recipients_per_job are split into jobs") {
    Harness h;
    h.config.max_recipients_per_job = 2;
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@one.example"),
                              recipient("c@one.example"), recipient("d@one.example"),
                              recipient("e@one.example")});
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    std::vector<std::size_t> sizes;
    for (const auto& job : h.deliverer.jobs)
        sizes.push_back(job.recipients.size());
    CHECK(sizes == std::vector<std::size_t>{2, 2, 1});
}

TEST_CASE("a deferred recipient records its outcome and comes back after the backoff") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred(), delivered()};
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    const auto m = h.store->load(id);
    REQUIRE(m.has_value());
    const auto& r = m->recipients[0];
    CHECK(r.state == RecipientState::Deferred);
    CHECK(r.attempts == 1);
    CHECK(r.next_attempt_ms == kStart + 5 * kMinute); // the first backoff, unjittered
    CHECK(r.last_attempt_ms == kStart);
    CHECK(r.outcome == deferred());
    CHECK(r.last_reply == deferred().summary());
    CHECK(h.scheduler->next_wake_ms() == kStart + 5 * kMinute);

    h.advance(5 * kMinute - 1);
    h.drain();
    CHECK(h.deliverer.jobs.size() == 1); // not due yet

    h.advance(1);
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    REQUIRE(h.deliverer.jobs.size() == 2);
    CHECK(h.deliverer.jobs[1].attempt == 2);
    CHECK(h.sink.failures.empty());
}

TEST_CASE("the timer wakes the scheduler at the next due time without notify()") {
    Harness h;
    h.config.retry.first = 1s; // the shortest backoff: this test waits for it once
    h.config.retry.jitter = 0;
    h.deliverer.script["a@one.example"] = {deferred(), delivered()};
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    CHECK(h.scheduler->next_wake_ms() == kStart + 1000);
    h.now += 1000; // the clock moves; nobody calls notify()
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    CHECK(h.deliverer.jobs.size() == 2);
}

TEST_CASE("a permanent failure hands one failure DSN with the outcome a DSN needs") {
    Harness h;
    h.deliverer.script["a@one.example"] = {failed()};
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@one.example")});
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    h.drain();
    REQUIRE(h.sink.failures.size() == 1);
    const auto& report = h.sink.failures[0];
    CHECK(report.id == id);
    CHECK(report.indexes == std::vector<std::uint32_t>{0});
    const auto& r = report.message.recipients[0];
    CHECK(r.state == RecipientState::Failed);
    CHECK(r.outcome.code == 550);
    CHECK(r.outcome.enhanced == "5.1.1");
    CHECK(r.outcome.remote_host == "mx.example");
    CHECK(r.outcome.text == "no such user");
    CHECK(r.last_attempt_ms == kStart);
    CHECK(report.message.recipients[1].state == RecipientState::Delivered);
}

TEST_CASE("NOTIFY and the sender decide whether a failure DSN is handed") {
    struct Case {
        const char* what;
        std::uint8_t notify;
        const char* mail_from;
        bool want_dsn;
    };
    const Case cases[] = {
        {"NOTIFY absent", 0, "s@example.org", true},
        {"NOTIFY=FAILURE", core::kNotifyFailure, "s@example.org", true},
        {"NOTIFY=FAILURE,DELAY", core::kNotifyFailure | core::kNotifyDelay, "s@example.org", true},
        {"NOTIFY=SUCCESS", core::kNotifySuccess, "s@example.org", false},
        {"NOTIFY=DELAY", core::kNotifyDelay, "s@example.org", false},
        {"NOTIFY=NEVER", core::kNotifyNever, "s@example.org", false},
        {"null sender", 0, "", false},
        {"null sender, NOTIFY=FAILURE", core::kNotifyFailure, "", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Harness h;
        h.deliverer.script["a@one.example"] = {failed()};
        h.start();
        const auto id = h.submit({notify_recipient("a@one.example", c.notify)}, c.mail_from);
        REQUIRE(h.run_until([&] { return h.gone(id); }));
        h.drain();
        CHECK(h.sink.failures.size() == (c.want_dsn ? 1U : 0U));
    }
}

TEST_CASE("deferrals past max_retry_time fail as expired, with one failure DSN per message") {
    Harness h;
    h.config.retry.max_retry_time = std::chrono::hours(1);
    h.deliverer.script["a@one.example"] = {deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    std::vector<std::int64_t> attempts_at;
    for (int i = 0; i < 20 && !h.gone(id); ++i) {
        REQUIRE(
            h.run_until([&] { return h.deliverer.jobs.size() == 2 * (attempts_at.size() + 1); }));
        attempts_at.push_back(h.now);
        h.drain();
        if (h.gone(id))
            break;
        const auto next = h.scheduler->next_wake_ms();
        REQUIRE(next.has_value());
        h.advance(*next - h.now);
    }
    CHECK(h.gone(id));
    // 5m, 10m, 20m backoffs, then the last attempt lands on the expiry time.
    const std::vector<std::int64_t> want = {kStart, kStart + 5 * kMinute, kStart + 15 * kMinute,
                                            kStart + 35 * kMinute, kStart + 60 * kMinute};
    CHECK(attempts_at == want);
    REQUIRE(h.sink.failures.size() == 1);
    CHECK(h.sink.failures[0].indexes == std::vector<std::uint32_t>{0, 1});
    const auto& r = h.sink.failures[0].message.recipients[0];
    CHECK(r.state == RecipientState::Failed);
    CHECK(r.outcome.enhanced == "4.4.7");
    CHECK(r.outcome.local);
    CHECK(r.outcome.remote_host == "mx.example"); // the last attempt's host, for Remote-MTA
    CHECK(r.outcome.text.find("message expired") != std::string::npos);
    CHECK(r.outcome.text.find("451 4.7.1 try later") != std::string::npos);
    CHECK(r.attempts == 5);

    h.advance(kMinute * 24 * 60);
    h.drain();
    CHECK(h.deliverer.jobs.size() == 10); // nothing after expiry
}

TEST_CASE("NOTIFY=DELAY hands one delay DSN once a recipient is deferred past delay_warning") {
    struct Case {
        const char* what;
        std::uint8_t notify;
        std::size_t want_delays;
    };
    const Case cases[] = {{"NOTIFY=DELAY", core::kNotifyDelay, 1},
                          {"NOTIFY=FAILURE,DELAY", core::kNotifyFailure | core::kNotifyDelay, 1},
                          {"NOTIFY absent", 0, 0},
                          {"NOTIFY=FAILURE", core::kNotifyFailure, 0}};
    for (const auto& c : cases) {
        CAPTURE(c.what);
        Harness h;
        h.config.retry.delay_warning = std::chrono::minutes(10);
        h.deliverer.script["a@one.example"] = {deferred()};
        h.start();
        const auto id = h.submit({notify_recipient("a@one.example", c.notify)});
        // Attempts at 0, 5m, 15m (past the warning) and 35m.
        for (std::size_t attempt = 1; attempt <= 4; ++attempt) {
            REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == attempt; }));
            h.drain();
            CHECK(h.sink.delays.size() == (attempt >= 3 ? c.want_delays : 0));
            h.advance(*h.scheduler->next_wake_ms() - h.now);
        }
        CHECK(h.sink.failures.empty());
        const auto m = h.store->load(id);
        REQUIRE(m.has_value());
        CHECK((m->recipients[0].dsn_state & kDsnDelaySent) == (c.want_delays ? kDsnDelaySent : 0));
        if (c.want_delays) {
            CHECK(h.sink.delays[0].indexes == std::vector<std::uint32_t>{0});
            CHECK(h.sink.delays[0].message.recipients[0].state == RecipientState::Deferred);
        }
    }
}

TEST_CASE("no more jobs run to one destination than max_jobs_per_destination") {
    Harness h;
    h.config.max_jobs_per_destination = 2;
    h.deliverer.hold = true;
    h.start();
    std::vector<QueueId> ids;
    ids.reserve(6);
    for (int i = 0; i < 5; ++i)
        ids.push_back(h.submit({recipient("r" + std::to_string(i) + "@one.example")}));
    ids.push_back(h.submit({recipient("x@two.example")}));
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 3; }));
    h.poll_quiet();
    CHECK(h.deliverer.active_by_domain["one.example"] == 2);
    CHECK(h.deliverer.active_by_domain["two.example"] == 1);
    CHECK(h.scheduler->jobs_in_flight() == 3);
    h.deliverer.release();
    REQUIRE(h.run_until([&] {
        return std::all_of(ids.begin(), ids.end(), [&](QueueId id) { return h.gone(id); });
    }));
    CHECK(h.deliverer.max_by_domain["one.example"] == 2);
    CHECK(h.deliverer.jobs.size() == 6);
}

TEST_CASE("no more jobs run at once than max_jobs") {
    Harness h;
    h.config.max_jobs = 3;
    h.deliverer.hold = true;
    h.start();
    std::vector<QueueId> ids;
    ids.reserve(7);
    for (int i = 0; i < 7; ++i)
        ids.push_back(h.submit({recipient("r@d" + std::to_string(i) + ".example")}));
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 3; }));
    h.poll_quiet();
    CHECK(h.deliverer.active == 3);
    h.deliverer.release();
    REQUIRE(h.run_until([&] {
        return std::all_of(ids.begin(), ids.end(), [&](QueueId id) { return h.gone(id); });
    }));
    CHECK(h.deliverer.max_active == 3);
    CHECK(h.deliverer.jobs.size() == 7);
}

TEST_CASE("a recipient in flight is not handed out twice however often notify() fires") {
    Harness h;
    h.deliverer.hold = true;
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    for (int i = 0; i < 10; ++i) {
        h.advance(kMinute);
        h.scheduler->notify();
        h.io.poll();
    }
    CHECK(h.deliverer.jobs.size() == 1);
    CHECK(h.scheduler->recipients_in_flight() == 1);
    h.deliverer.release();
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    h.drain();
    CHECK(h.deliverer.jobs.size() == 1);
}

TEST_CASE("missing outcomes from a deliverer count as local deferrals") {
    Harness h;
    h.deliverer.short_answer = true;
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    const auto m = h.store->load(id);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0].state == RecipientState::Delivered);
    CHECK(m->recipients[1].state == RecipientState::Deferred);
    CHECK(m->recipients[1].outcome.enhanced == "4.3.0");
    CHECK(m->recipients[1].outcome.local);
}

TEST_CASE("a deliverer that throws defers its recipients instead of holding them forever") {
    Harness h;
    h.deliverer.throws = true;
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    const auto m = h.store->load(id);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0].state == RecipientState::Deferred);
    CHECK(m->recipients[0].outcome.enhanced == "4.3.0");
    CHECK(h.scheduler->recipients_in_flight() == 0);
}

TEST_CASE("retry_now, retry_domain and retry_all make deferred recipients due at once") {
    Harness h;
    for (const auto* a : {"a@one.example", "b@two.example", "c@two.example", "d@three.example"})
        h.deliverer.script[a] = {deferred(), delivered()};
    h.start();
    const auto first = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    const auto second = h.submit({recipient("c@two.example"), recipient("d@three.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 4; }));
    h.drain();

    const auto unknown = h.await(h.scheduler->retry_now(first + 1000));
    CHECK_FALSE(unknown.found);
    CHECK(unknown.recipients == 0);

    const auto now = h.await(h.scheduler->retry_now(first));
    CHECK(now.found);
    CHECK(now.recipients == 2);
    CHECK(now.error.empty());
    REQUIRE(h.run_until([&] { return h.gone(first); }));
    h.drain();
    CHECK(h.deliverer.attempts_of("a@one.example") == 2);
    CHECK(h.deliverer.attempts_of("c@two.example") == 1);

    const auto domain = h.await(h.scheduler->retry_domain("TWO.example"));
    CHECK(domain.recipients == 1);
    REQUIRE(h.run_until([&] { return h.deliverer.attempts_of("c@two.example") == 2; }));
    h.drain();
    CHECK(h.deliverer.attempts_of("d@three.example") == 1);

    const auto all = h.await(h.scheduler->retry_all());
    CHECK(all.recipients == 1);
    REQUIRE(h.run_until([&] { return h.gone(second); }));
    CHECK(h.deliverer.attempts_of("d@three.example") == 2);
}

TEST_CASE("bounce_now fails pending recipients with 5.0.0 and hands one DSN") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    h.drain();
    const auto change = h.await(h.scheduler->bounce_now(id));
    CHECK(change.found);
    CHECK(change.recipients == 2);
    h.drain();
    CHECK(h.gone(id));
    REQUIRE(h.sink.failures.size() == 1);
    CHECK(h.sink.failures[0].indexes == std::vector<std::uint32_t>{0, 1});
    const auto& r = h.sink.failures[0].message.recipients[1];
    CHECK(r.outcome.code == 550);
    CHECK(r.outcome.enhanced == "5.0.0");
    CHECK(r.outcome.text == "bounced by administrator");
    CHECK_FALSE(h.await(h.scheduler->bounce_now(id)).found);
}

TEST_CASE("bounce_now fails a recipient in flight once its attempt is deferred") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    h.drain();
    // b is retried and held in flight; a waits for its backoff.
    h.deliverer.hold = true;
    CHECK(h.await(h.scheduler->retry_domain("two.example")).recipients == 1);
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 3; }));
    const auto change = h.await(h.scheduler->bounce_now(id));
    CHECK(change.recipients == 1);
    h.io.poll();
    CHECK(h.sink.failures.empty()); // the DSN waits for the job in flight
    h.deliverer.release();
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    h.drain();
    REQUIRE(h.sink.failures.size() == 1);
    CHECK(h.sink.failures[0].indexes == std::vector<std::uint32_t>{0, 1});
    CHECK(h.sink.failures[0].message.recipients[1].outcome.enhanced == "5.0.0");
}

TEST_CASE("destinations() shows pending, in-flight and last outcome per domain") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.start();
    h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    h.deliverer.hold = true;
    h.submit({recipient("b@two.example"), recipient("c@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));

    const auto got = h.scheduler->destinations();
    REQUIRE(got.size() == 2);
    CHECK(got[0].domain == "one.example");
    CHECK(got[0].deferred == 1);
    CHECK(got[0].queued == 0);
    CHECK(got[0].in_flight == 0);
    CHECK(got[0].connections == 0);
    CHECK(got[0].last_outcome == deferred().summary());
    CHECK(got[0].last_outcome_ms == kStart);
    CHECK(got[1].domain == "two.example");
    CHECK(got[1].queued == 2);
    CHECK(got[1].in_flight == 2);
    CHECK(got[1].connections == 1);
    CHECK(got[1].last_outcome.empty());
}

TEST_CASE("stop() starts no new job but lets jobs in flight record their outcome") {
    Harness h;
    h.deliverer.hold = true;
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.scheduler->stop();
    const auto later = h.submit({recipient("b@one.example")});
    h.deliverer.release();
    bool idle = false;
    asio::co_spawn(
        h.io,
        [](Scheduler* s, bool* flag) -> asio::awaitable<void> {
            co_await s->wait_idle();
            *flag = true;
        }(h.scheduler.get(), &idle),
        asio::detached);
    REQUIRE(h.run_until([&] { return idle; }));
    CHECK(h.gone(id));
    CHECK_FALSE(h.gone(later));
    CHECK(h.deliverer.jobs.size() == 1);
}

TEST_CASE("a recipient in flight when the process dies is due again after a restart") {
    TempDir dir;
    const auto config = config_for(dir);
    QueueId id = 0;
    {
        asio::io_context io;
        auto store = open_store(config);
        FakeDeliverer deliverer(io.get_executor());
        RecordingSink sink;
        deliverer.hold = true;
        std::int64_t now = kStart;
        {
            Scheduler scheduler(
                io.get_executor(), *store, deliverer, SchedulerConfig{}, [&now] { return now; },
                [] { return kNoJitter; }, sink);
            scheduler.start();
            id = store->next_id();
            REQUIRE(
                commit_sync(*store, message(id, {recipient("a@one.example")}, now), "x").status ==
                CommitStatus::Ok);
            scheduler.notify();
            const auto deadline = std::chrono::steady_clock::now() + 10s;
            while (deliverer.jobs.empty() && std::chrono::steady_clock::now() < deadline)
                io.run_one_for(5ms);
            REQUIRE(deliverer.jobs.size() == 1);
            io.stop(); // the process dies with the job in flight
        }
        store.reset();
        // The deliverer's frame is destroyed with the io_context below.
    }
    Harness h;
    h.store.reset();
    h.store = open_store(config);
    const auto m = h.store->load(id);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0].state == RecipientState::Queued);
    h.start();
    REQUIRE(h.run_until([&] { return h.gone(id); }));
    CHECK(h.deliverer.jobs.size() == 1);
}

TEST_CASE("at start, failure DSNs and removals a crash interrupted are completed") {
    Harness h;
    auto owed = recipient("a@one.example", RecipientState::Failed);
    owed.outcome = failed();
    auto sent = recipient("b@one.example", RecipientState::Failed);
    sent.dsn_state = kDsnFailureSent;
    const auto with_owed = h.submit({owed, recipient("c@one.example", RecipientState::Delivered)});
    const auto all_sent = h.submit({sent});
    const auto pending = h.submit(
        {owed, recipient("d@two.example", RecipientState::Deferred, kStart + 60 * kMinute)});
    h.start();
    REQUIRE(h.run_until([&] { return h.gone(with_owed) && h.gone(all_sent); }));
    h.drain();
    REQUIRE(h.sink.failures.size() == 2);
    std::vector<QueueId> reported = {h.sink.failures[0].id, h.sink.failures[1].id};
    std::sort(reported.begin(), reported.end());
    CHECK(reported == std::vector<QueueId>{with_owed, pending});
    const auto m = h.store->load(pending);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0].dsn_state == kDsnFailureSent);
    CHECK(h.deliverer.jobs.empty());
}

TEST_CASE("a destination at its job limit does not hold back others behind its due backlog") {
    Harness h;
    h.config.max_jobs_per_destination = 2;
    h.config.batch = 10; // far smaller than the backlog
    h.deliverer.hold_domains.insert("tarpit.example");
    h.start();
    for (int i = 0; i < 200; ++i)
        (void)h.submit({recipient("r" + std::to_string(i) + "@tarpit.example")});
    std::vector<QueueId> ok;
    ok.reserve(30);
    for (int i = 0; i < 30; ++i)
        ok.push_back(h.submit({recipient("x" + std::to_string(i) + "@ok.example")}));
    REQUIRE(h.run_until(
        [&] { return std::all_of(ok.begin(), ok.end(), [&](QueueId id) { return h.gone(id); }); }));
    CHECK(h.deliverer.active_by_domain["tarpit.example"] == 2);
    CHECK(h.deliverer.attempts_of("r0@tarpit.example") == 1);
    CHECK(h.deliverer.max_by_domain["ok.example"] <= 2);
    h.deliverer.release();
}

TEST_CASE("a throttled recipient spends no attempt and its hold moves its expiry") {
    Harness h;
    h.config.retry.max_retry_time = std::chrono::hours(1);
    const std::int64_t hold = 2 * 60 * kMinute;
    h.deliverer.script["a@one.example"] = {throttled(kStart + hold), deferred()};
    h.start();
    const auto id = h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    auto m = h.store->load(id);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0].state == RecipientState::Queued);
    CHECK(m->recipients[0].attempts == 0);
    CHECK(m->recipients[0].outcome == core::Outcome{}); // no attempt recorded
    CHECK(m->recipients[0].held_ms == hold);
    CHECK(m->recipients[0].throttled_until_ms == kStart + hold);
    CHECK(h.scheduler->next_wake_ms() == kStart + hold);

    // Past received_at + max_retry_time, but the hold does not count: retried.
    std::vector<std::int64_t> attempts_at;
    for (int i = 0; i < 20 && !h.gone(id); ++i) {
        h.advance(*h.scheduler->next_wake_ms() - h.now);
        REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == attempts_at.size() + 2; }));
        attempts_at.push_back(h.now);
        h.drain();
    }
    REQUIRE(h.gone(id));
    const std::int64_t resumed = kStart + hold;
    const std::vector<std::int64_t> want = {resumed, resumed + 5 * kMinute, resumed + 15 * kMinute,
                                            resumed + 35 * kMinute, resumed + 60 * kMinute};
    CHECK(attempts_at == want);
    REQUIRE(h.sink.failures.size() == 1);
    const auto& r = h.sink.failures[0].message.recipients[0];
    CHECK(r.outcome.enhanced == "4.4.7");
    CHECK(r.outcome.text.find("plus 2h held by warm-up") != std::string::npos);
    CHECK(r.attempts == 5);
    CHECK(r.throttled_until_ms == 0);
}

TEST_CASE("the delay DSN clock does not count time held by the throttler") {
    Harness h;
    h.config.retry.delay_warning = std::chrono::minutes(10);
    const std::int64_t hold = 60 * kMinute;
    h.deliverer.script["a@one.example"] = {throttled(kStart + hold), deferred()};
    h.start();
    (void)h.submit({notify_recipient("a@one.example", core::kNotifyDelay)});
    // The hold, then attempts at hold + 0, + 5m (5m of trying) and + 15m (15m).
    const std::vector<std::size_t> want_delays = {0, 0, 0, 1};
    for (std::size_t job = 1; job <= want_delays.size(); ++job) {
        CAPTURE(job);
        REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == job; }));
        h.drain();
        CHECK(h.sink.delays.size() == want_delays[job - 1]);
        h.advance(*h.scheduler->next_wake_ms() - h.now);
    }
}

TEST_CASE("release_throttled makes held recipients due now and gives back the unused hold") {
    Harness h;
    const std::int64_t hold = 60 * kMinute;
    h.deliverer.script["a@one.example"] = {throttled(kStart + hold), deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    h.start();
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    h.drain();
    h.advance(4 * kMinute); // b@two.example's retry is at 5m
    h.drain();
    CHECK(h.deliverer.jobs.size() == 2); // neither is due yet

    const auto change = h.await(h.scheduler->release_throttled());
    CHECK(change.error.empty());
    CHECK(change.found);
    CHECK(change.recipients == 1); // b@two.example waits on a retry, not the throttler
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 3; }));
    h.drain();
    CHECK(h.deliverer.jobs[2].domain == "one.example");
    const auto m = h.store->load(id);
    REQUIRE(m.has_value());
    const auto& a = m->recipients[0];
    CHECK(a.attempts == 1);
    CHECK(a.held_ms == 4 * kMinute); // held from kStart to the release, not the full hour
    CHECK(a.throttled_until_ms == 0);
    CHECK(m->recipients[1].attempts == 1);

    const auto again = h.await(h.scheduler->release_throttled());
    CHECK(again.recipients == 0);
    CHECK_FALSE(again.found);
}
