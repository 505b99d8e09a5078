#include "daemon/delivery_verbs.hpp"

#include "daemon/admin_verbs.hpp"
#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_client.hpp"
#include "daemon/ctl_format.hpp"
#include "tests/queue/fake_deliverer.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace ember;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace ctl = ember::daemon::ctl;
using core::OutcomeKind;
using queue::test::recipient;

namespace {

constexpr std::int64_t kStart = 1'772'366'405'000; // 2026-03-01T12:00:05Z
constexpr std::uint64_t kNoJitter = std::uint64_t{1} << 63;

using queue::test::deferred;
using queue::test::delivered;
using queue::test::FakeDeliverer;

class CountingSink final : public queue::BounceSink {
public:
    std::vector<std::vector<std::uint32_t>> failures;
    void failed(const queue::Message&, std::vector<std::uint32_t> indexes) override {
        failures.push_back(std::move(indexes));
    }
    void delayed(const queue::Message&, std::vector<std::uint32_t>) override {}
};

// A real Store, Scheduler and AdminServer on one io_context that the test
// thread runs; clients run on another thread and the test runs the
// io_context until they are done, so the scheduler only ever runs here.
struct Harness {
    queue::test::TempDir dir;
    asio::io_context io;
    std::unique_ptr<queue::Store> store = queue::test::open_store(queue::test::config_for(dir));
    std::int64_t now = kStart;
    FakeDeliverer deliverer{io.get_executor()};
    CountingSink sink;
    std::unique_ptr<queue::Scheduler> scheduler;
    std::string socket = dir.path + "/admin.sock";
    std::unique_ptr<daemon::AdminServer> admin;

    Harness() {
        scheduler = std::make_unique<queue::Scheduler>(
            io.get_executor(), *store, deliverer, queue::SchedulerConfig{}, [this] { return now; },
            [] { return kNoJitter; }, sink);
        scheduler->start();
        admin = std::make_unique<daemon::AdminServer>(io.get_executor(), socket);
        daemon::add_delivery_verbs(*admin, *scheduler);
        const auto error = admin->start();
        REQUIRE_MESSAGE(error.empty(), error);
    }
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    ~Harness() {
        deliverer.release();
        admin->stop();
        scheduler->stop();
        (void)run_until([this] { return scheduler->idle(); });
        admin.reset();
        scheduler.reset();
        io.poll();
    }

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

    void drain() {
        for (int i = 0; i < 1000; ++i) {
            REQUIRE(run_until([this] { return scheduler->idle(); }));
            if (io.poll() == 0 && scheduler->idle())
                return;
        }
        FAIL("the scheduler never went quiet");
    }

    queue::QueueId submit(std::vector<queue::Recipient> recipients) {
        const auto id = store->next_id();
        auto m = queue::test::message(id, std::move(recipients), now);
        REQUIRE(
            queue::test::commit_sync(*store, std::move(m), queue::test::content_for(id)).status ==
            queue::CommitStatus::Ok);
        scheduler->notify();
        return id;
    }

    [[nodiscard]] bool gone(queue::QueueId id) const { return !store->load(id).has_value(); }

    template <typename T> T wait_for(std::future<T> future) {
        REQUIRE(run_until([&] { return future.wait_for(0s) == std::future_status::ready; }));
        return future.get();
    }

    ctl::AdminCall call(std::string verb, json::object args = {}) {
        return wait_for(std::async(std::launch::async, [this, verb, args] {
            return ctl::call_admin(socket, verb, args, 5s);
        }));
    }

    struct Cli {
        int exit_code = -1;
        std::string out;
        std::string err;
    };
    // emberctl's whole CLI against this admin socket.
    Cli emberctl(std::vector<std::string> words) {
        std::vector<std::string> argv{"emberctl", "-s", socket};
        argv.insert(argv.end(), words.begin(), words.end());
        return wait_for(std::async(std::launch::async, [argv] {
            std::ostringstream out, err;
            const int code = ctl::run(argv, out, err);
            return Cli{code, out.str(), err.str()};
        }));
    }
};

json::object ok(const ctl::AdminCall& call) {
    INFO("error: ", call.error);
    REQUIRE(call.status == ctl::AdminCall::Status::Ok);
    REQUIRE(call.result.is_object());
    return call.result.get_object();
}

} // namespace

// --- the verbs over a real socket ---

TEST_CASE("queue.retry makes one message's, one destination's or all deferred recipients due") {
    Harness h;
    for (const auto* a : {"a@one.example", "b@two.example", "c@two.example", "d@three.example"})
        h.deliverer.script[a] = {deferred(), delivered()};
    const auto first = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    const auto second = h.submit({recipient("c@two.example"), recipient("d@three.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 4; }));
    h.drain();

    const auto by_id = ok(h.call("queue.retry", {{"id", queue::format_queue_id(first)}}));
    CHECK(by_id.at("changed") == 2);
    CHECK(by_id.at("messages") == 1);
    REQUIRE(h.run_until([&] { return h.gone(first); }));
    h.drain();
    CHECK_FALSE(h.gone(second));

    const auto by_domain = ok(h.call("queue.retry", {{"domain", "TWO.example"}}));
    CHECK(by_domain.at("changed") == 1);
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 7; }));
    h.drain();

    const auto everything = ok(h.call("queue.retry", {{"all", true}}));
    CHECK(everything.at("changed") == 1);
    REQUIRE(h.run_until([&] { return h.gone(second); }));
}

TEST_CASE("queue.retry refuses a missing, doubled, unknown or ill-typed selector") {
    Harness h;
    struct Case {
        json::object args;
        const char* error;
    };
    const Case cases[] = {
        {{}, R"(give exactly one of "id", "domain" or "all")"},
        {{{"id", "0AAAAAAAAAAAA"}, {"all", true}},
         R"(give exactly one of "id", "domain" or "all")"},
        {{{"domain", "x.example"}, {"all", true}},
         R"(give exactly one of "id", "domain" or "all")"},
        {{{"all", false}}, R"(argument "all" must be true)"},
        {{{"all", "yes"}}, R"(argument "all" must be true)"},
        {{{"domain", 5}}, R"(argument "domain" must be a non-empty string)"},
        {{{"id", "not an id"}}, R"(invalid queue id "not an id")"},
        {{{"id", "0AAAAAAAAAAAA"}}, "no such message: 0AAAAAAAAAAAA"},
        {{{"ids", "x"}}, R"(unknown argument "ids")"},
    };
    for (const auto& c : cases) {
        CAPTURE(json::serialize(c.args));
        const auto call = h.call("queue.retry", c.args);
        CHECK(call.status == ctl::AdminCall::Status::DaemonError);
        CHECK(call.error == c.error);
    }
}

TEST_CASE("queue.bounce fails a message's pending recipients and hands one failure DSN") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    const auto id = h.submit({recipient("a@one.example"), recipient("b@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    h.drain();

    const auto text = queue::format_queue_id(id);
    const auto bounced = ok(h.call("queue.bounce", {{"id", text}}));
    CHECK(bounced.at("bounced") == 2);
    CHECK(bounced.at("id").as_string() == text);
    h.drain();
    CHECK(h.gone(id));
    REQUIRE(h.sink.failures.size() == 1);
    CHECK(h.sink.failures[0] == std::vector<std::uint32_t>{0, 1});

    const auto again = h.call("queue.bounce", {{"id", text}});
    CHECK(again.status == ctl::AdminCall::Status::DaemonError);
    CHECK(again.error == "no such message: " + text);
    CHECK(h.call("queue.bounce").error == R"(missing argument "id")");
    CHECK(h.call("queue.bounce", {{"id", text}, {"all", true}}).error ==
          R"(unknown argument "all")");
}

TEST_CASE("domains shows each destination's pending and in-flight recipients and last reply") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.submit({recipient("a@one.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 1; }));
    h.drain();
    h.deliverer.hold = true;
    h.submit({recipient("b@two.example"), recipient("c@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));

    const auto result = ok(h.call("domains"));
    CAPTURE(json::serialize(result));
    const auto& rows = result.at("domains").as_array();
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].at("domain") == "one.example");
    CHECK(rows[0].at("deferred") == 1);
    CHECK(rows[0].at("queued") == 0);
    CHECK(rows[0].at("in_flight") == 0);
    CHECK(rows[0].at("connections") == 0);
    CHECK(rows[0].at("last_reply").as_string() == deferred().summary());
    CHECK(rows[0].at("last_time").as_string() == daemon::format_timestamp(kStart));
    CHECK(rows[1].at("domain") == "two.example");
    CHECK(rows[1].at("queued") == 2);
    CHECK(rows[1].at("in_flight") == 2);
    CHECK(rows[1].at("connections") == 1);
    CHECK(rows[1].at("last_reply") == "");
    CHECK(rows[1].at("last_time").is_null());

    CHECK(h.call("domains", {{"domain", "x"}}).error == R"(unknown argument "domain")");
}

TEST_CASE("emberctl queue retry, queue bounce and domains print the daemon's answers") {
    Harness h;
    h.deliverer.script["a@one.example"] = {deferred()};
    h.deliverer.script["b@two.example"] = {deferred()};
    const auto kept = h.submit({recipient("a@one.example")});
    const auto bounced = h.submit({recipient("b@two.example")});
    REQUIRE(h.run_until([&] { return h.deliverer.jobs.size() == 2; }));
    h.drain();

    const auto domains = h.emberctl({"domains"});
    CAPTURE(domains.err);
    CHECK(domains.exit_code == 0);
    CHECK(domains.out.starts_with(
        "DOMAIN       QUEUED  DEFERRED  IN FLIGHT  CONNECTIONS  LAST REPLY"));
    CHECK(domains.out.find("one.example       0         1          0            0  ") !=
          std::string::npos);

    const auto as_json = h.emberctl({"domains", "--json"});
    CHECK(as_json.exit_code == 0);
    CHECK(json::parse(as_json.out).at("domains").as_array().size() == 2);

    const auto retried = h.emberctl({"queue", "retry", "--domain", "one.example"});
    CHECK(retried.exit_code == 0);
    CHECK(retried.out == "rescheduled 1 recipient of 1 message for immediate delivery\n");
    h.drain();
    CHECK_FALSE(h.gone(kept)); // deferred again: the script repeats its last answer

    const auto text = queue::format_queue_id(bounced);
    const auto bounce = h.emberctl({"queue", "bounce", text});
    CHECK(bounce.exit_code == 0);
    CHECK(bounce.out == "bounced 1 recipient of " + text + "\n");

    const auto missing = h.emberctl({"queue", "bounce", text});
    CHECK(missing.exit_code == ctl::kExitDaemonError);
    CHECK(missing.err == "emberctl: no such message: " + text + "\n");
}

// --- command line and formatting ---

TEST_CASE("queue retry, queue bounce and domains are parsed into their admin requests") {
    struct Case {
        std::vector<std::string> argv;
        std::string verb;
        std::string args;
    };
    const Case cases[] = {
        {{"emberctl", "queue", "retry", "0AAAAAAAAAAAA"},
         "queue.retry",
         R"({"id":"0AAAAAAAAAAAA"})"},
        {{"emberctl", "queue", "retry", "--domain", "x.example"},
         "queue.retry",
         R"({"domain":"x.example"})"},
        {{"emberctl", "queue", "retry", "--all"}, "queue.retry", R"({"all":true})"},
        {{"emberctl", "queue", "retry", "--all", "--json"}, "queue.retry", R"({"all":true})"},
        {{"emberctl", "queue", "bounce", "0AAAAAAAAAAAA"},
         "queue.bounce",
         R"({"id":"0AAAAAAAAAAAA"})"},
        {{"emberctl", "domains"}, "domains", "{}"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto parsed = ctl::parse_command_line(c.argv);
        CAPTURE(parsed.output);
        REQUIRE(parsed.invocation);
        CHECK(parsed.invocation->verb->admin_verb == c.verb);
        CHECK(json::serialize(parsed.invocation->args) == c.args);
    }
}

TEST_CASE("queue retry needs exactly one of ID, --domain and --all") {
    const std::vector<std::vector<std::string>> errors = {
        {"emberctl", "queue", "retry"},
        {"emberctl", "queue", "retry", "0AAAAAAAAAAAA", "--all"},
        {"emberctl", "queue", "retry", "--domain", "x.example", "--all"},
        {"emberctl", "queue", "retry", "0AAAAAAAAAAAA", "--domain", "x.example"},
        {"emberctl", "queue", "bounce"},
        {"emberctl", "domains", "x.example"},
    };
    for (const auto& argv : errors) {
        CAPTURE(argv.size());
        CAPTURE(argv.back());
        const auto parsed = ctl::parse_command_line(argv);
        CHECK_FALSE(parsed.invocation);
        CHECK(parsed.exit_code == ctl::kExitUsage);
        CHECK_FALSE(parsed.output.empty());
    }
}

TEST_CASE("retry and bounce results are one sentence each") {
    struct Case {
        const char* result;
        const char* want;
    };
    const Case cases[] = {
        {R"({"changed":1,"messages":1})",
         "rescheduled 1 recipient of 1 message for immediate delivery\n"},
        {R"({"changed":5,"messages":2})",
         "rescheduled 5 recipients of 2 messages for immediate delivery\n"},
        {R"({"changed":0,"messages":0})",
         "rescheduled 0 recipients of 0 messages (none pending outside a delivery in "
         "progress)\n"},
        {R"({"changed":3})", "rescheduled 3 recipients for immediate delivery\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.result);
        CHECK(ctl::format_queue_retry(json::parse(c.result)).out == c.want);
    }
    CHECK(ctl::format_queue_bounce(json::parse(R"({"bounced":2,"id":"0AAAAAAAAAAAA"})")).out ==
          "bounced 2 recipients of 0AAAAAAAAAAAA\n");
}

TEST_CASE("domains prints an aligned table with the last reply cut to 60 columns") {
    const std::string long_reply =
        "host mx.example[192.0.2.10] said: 451 4.7.1 try again later, we are busy "
        "(in reply to RCPT TO command)";
    json::object row{{"domain", "two.example"},
                     {"queued", 2},
                     {"deferred", 0},
                     {"in_flight", 2},
                     {"connections", 1},
                     {"last_reply", long_reply},
                     {"last_time", "2026-03-01T12:00:05Z"}};
    json::object quiet{{"domain", "one.example"}, {"queued", 0},      {"deferred", 1},
                       {"in_flight", 0},          {"connections", 0}, {"last_reply", ""},
                       {"last_time", nullptr}};
    const auto printed = ctl::format_domains(json::object{{"domains", json::array{quiet, row}}});
    const auto cut = long_reply.substr(0, 57) + "...";
    CHECK(cut.size() == 60);
    CHECK(printed.out == "DOMAIN       QUEUED  DEFERRED  IN FLIGHT  CONNECTIONS  LAST REPLY" +
                             std::string(50, ' ') + "  LAST TIME\n" +
                             "one.example       0         1          0            0  -" +
                             std::string(59, ' ') + "  -\n" +
                             "two.example       2         0          2            1  " + cut +
                             "  2026-03-01T12:00:05Z\n");
    CHECK(ctl::format_domains(json::object{{"domains", json::array{}}}).out ==
          "no destinations with queued mail or recent activity\n");
}

TEST_CASE("truncation counts code points and marks the cut with three dots") {
    struct Case {
        std::string text;
        std::size_t columns;
        std::string want;
    };
    const Case cases[] = {
        {"short", 10, "short"},
        {"exactly10!", 10, "exactly10!"},
        {"eleven chars", 10, "eleven ..."},
        {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5, "\xc3\xa9\xc3\xa9..."},
        {"abcdef", 2, "..."},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        CHECK(ctl::truncate_text(c.text, c.columns) == c.want);
    }
}
