#include "personalize/hook.hpp"

#include "tests/support/hook_server_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>

using namespace ember::personalize;
using ember::test::HookServerProcess;
namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

HookRequest request_for(std::initializer_list<const char*> addresses) {
    HookRequest r;
    r.message_id = "0K3F2A1B0C9D8";
    r.campaign = "spring";
    r.tags = {"news"};
    r.from = "news@example.com";
    r.subject = "Hi {{ first_name }}";
    r.variables = {"greeting"};
    for (const char* a : addresses) {
        HookRecipient rcpt;
        rcpt.address = a;
        rcpt.attributes = {{"first_name", "Jane"}};
        rcpt.tags = {"runner"};
        rcpt.engagement = {{"tier", "hot"}};
        r.recipients.push_back(std::move(rcpt));
    }
    return r;
}

HookConfig config_for(const HookServerProcess& server) {
    HookConfig c;
    c.url = server.url();
    c.timeout = seconds(5); // generous under sanitizers; timeout tests lower it
    return c;
}

struct Harness {
    asio::io_context io;
    CircuitBreaker::TimePoint now{}; // the breaker's injected clock
    std::unique_ptr<HookClient> client;

    explicit Harness(HookConfig config) {
        std::string error;
        client =
            HookClient::create(io.get_executor(), std::move(config), error, [this] { return now; });
        INFO(error);
        REQUIRE(client != nullptr);
    }
    std::vector<HookDecision> call(HookRequest request) {
        std::optional<std::vector<HookDecision>> out;
        auto shared = std::make_shared<const HookRequest>(std::move(request));
        asio::co_spawn(io, client->call(shared),
                       [&out](std::exception_ptr e, std::vector<HookDecision> d) {
                           REQUIRE_FALSE(e);
                           out = std::move(d);
                       });
        io.restart();
        io.run();
        REQUIRE(out.has_value());
        return std::move(*out);
    }
};

#define REQUIRE_SERVER(server)                                                                     \
    INFO((server).error());                                                                        \
    REQUIRE((server).ok())

} // namespace

TEST_CASE("the hook's variables, skip, send_at, variant and headers come back per recipient") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    Harness h(config_for(server));
    const auto d =
        h.call(request_for({"jane@example.org", "skip@example.org", "later@example.org",
                            "unixtime@example.org", "variant@example.org", "header@example.org"}));
    REQUIRE(d.size() == 6);
    for (const auto& decision : d) {
        CAPTURE(decision.error);
        CHECK(decision.action == HookAction::Apply);
    }
    CHECK(d[0].answer.vars.at("greeting").as_string() == "Hello Jane");
    CHECK(d[0].answer.vars.at("tier").as_string() == "hot");
    CHECK(d[1].answer.skip_reason == "not interested");
    CHECK(d[2].answer.send_at_ms == 1893553445000);
    CHECK(d[3].answer.send_at_ms == 1900000000000);
    CHECK(d[4].answer.variant == "b");
    REQUIRE(d[5].answer.headers.size() == 1);
    CHECK(d[5].answer.headers[0].first == "X-Campaign-Variant");
    CHECK(d[5].answer.warnings ==
          std::vector<std::string>{"header From may not be set by the hook"});
    // What the hook received.
    const auto seen = server.stats().at("last_request");
    CHECK(seen.at("message_id").as_string() == "0K3F2A1B0C9D8");
    CHECK(seen.at("recipients").as_array().size() == 6);
    CHECK(seen.at("recipients").at(0).at("attributes").at("first_name").as_string() == "Jane");
    CHECK(h.client->stats().requests == 1);
}

TEST_CASE("recipients go in batches over one kept-alive connection") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    auto config = config_for(server);
    config.batch = 3;
    config.concurrency = 1;
    Harness h(config);
    const auto d = h.call(request_for({"a@x.example", "b@x.example", "c@x.example", "d@x.example",
                                       "e@x.example", "f@x.example", "g@x.example"}));
    REQUIRE(d.size() == 7);
    for (const auto& decision : d)
        CHECK(decision.action == HookAction::Apply);
    CHECK(server.stat("requests") == 3);
    (void)h.call(request_for({"h@x.example"}));
    CHECK(server.stat("requests") == 4);
    CHECK(server.stat("connections") == 1);
    CHECK(h.client->stats().connections == 1);
    CHECK(h.client->idle_connections() == 1);
}

TEST_CASE("no more than `concurrency` requests are in flight at once") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    server.control(R"({"mode":"ok","delay":0.3})");
    auto config = config_for(server);
    config.batch = 1;
    config.concurrency = 2;
    Harness h(config);
    const auto d = h.call(request_for({"a@x.example", "b@x.example", "c@x.example", "d@x.example",
                                       "e@x.example", "f@x.example"}));
    REQUIRE(d.size() == 6);
    for (const auto& decision : d)
        CHECK(decision.action == HookAction::Apply);
    CHECK(server.stat("requests") == 6);
    CHECK(server.stat("max_concurrent") >= 1);
    CHECK(server.stat("max_concurrent") <= 2);
    CHECK(h.client->stats().connections <= 2);
}

TEST_CASE("a timeout follows on_error: send-default or defer") {
    for (const auto policy : {HookErrorPolicy::SendDefault, HookErrorPolicy::Defer}) {
        CAPTURE(hook_error_policy_name(policy));
        HookServerProcess server;
        REQUIRE_SERVER(server);
        server.control(R"({"mode":"ok","delay":2.0})");
        auto config = config_for(server);
        config.timeout = milliseconds(100);
        config.on_error = policy;
        Harness h(config);
        const auto d = h.call(request_for({"a@x.example", "b@x.example"}));
        REQUIRE(d.size() == 2);
        const auto want =
            policy == HookErrorPolicy::Defer ? HookAction::Defer : HookAction::SendDefault;
        for (const auto& decision : d) {
            CHECK(decision.action == want);
            CHECK(decision.error == "timeout");
        }
        CHECK(h.client->stats().timeouts == 1);
        CHECK(h.client->stats().failures == 1);
        CHECK(h.client->idle_connections() == 0);
    }
}

TEST_CASE("a 500, a body that is not JSON, or no server at all fail the batch") {
    struct Case {
        std::string mode;
        std::string error;
    };
    const Case cases[] = {
        {"500", "status 500"},
        {"garbage", "the answer is not JSON: syntax error"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.mode);
        HookServerProcess server;
        REQUIRE_SERVER(server);
        server.control(R"({"mode":")" + c.mode + R"("})");
        auto config = config_for(server);
        config.on_error = HookErrorPolicy::Defer;
        Harness h(config);
        const auto d = h.call(request_for({"a@x.example"}));
        REQUIRE(d.size() == 1);
        CHECK(d[0].action == HookAction::Defer);
        CHECK(d[0].error == c.error);
    }
    HookConfig config;
    config.url = "http://127.0.0.1:1/hook"; // nothing listens on port 1
    Harness h(config);
    const auto d = h.call(request_for({"a@x.example"}));
    REQUIRE(d.size() == 1);
    CHECK(d[0].action == HookAction::SendDefault);
    CHECK(d[0].error.starts_with("connect: "));
}

TEST_CASE("204 No Content sends every recipient as is") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    server.control(R"({"mode":"empty"})");
    Harness h(config_for(server));
    const auto d = h.call(request_for({"a@x.example", "b@x.example"}));
    REQUIRE(d.size() == 2);
    for (const auto& decision : d) {
        CHECK(decision.action == HookAction::Apply);
        CHECK(decision.answer.vars.empty());
        CHECK_FALSE(decision.answer.skip_reason.has_value());
    }
}

TEST_CASE("the circuit opens after consecutive failures and closes after a good probe") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    server.control(R"({"mode":"500"})");
    auto config = config_for(server);
    config.breaker.failure_threshold = 2;
    config.breaker.cool_down = seconds(30);
    Harness h(config);
    (void)h.call(request_for({"a@x.example"}));
    CHECK(h.client->breaker_state() == BreakerState::Closed);
    (void)h.call(request_for({"a@x.example"}));
    CHECK(h.client->breaker_state() == BreakerState::Open);
    CHECK(server.stat("requests") == 2);
    // Open: no request goes out, on_error applies at once.
    server.control(R"({"mode":"ok"})");
    auto d = h.call(request_for({"a@x.example"}));
    CHECK(d[0].action == HookAction::SendDefault);
    CHECK(d[0].error == "circuit open");
    CHECK(server.stat("requests") == 2);
    CHECK(h.client->stats().denied == 1);
    // After the cool-down the probe succeeds and closes the circuit.
    h.now += seconds(30);
    d = h.call(request_for({"a@x.example"}));
    CHECK(d[0].action == HookAction::Apply);
    CHECK(h.client->breaker_state() == BreakerState::Closed);
    CHECK(server.stat("requests") == 3);
}

TEST_CASE("a failed probe keeps the circuit open for another cool-down") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    server.control(R"({"mode":"500"})");
    auto config = config_for(server);
    config.breaker.failure_threshold = 1;
    config.breaker.cool_down = seconds(10);
    Harness h(config);
    (void)h.call(request_for({"a@x.example"}));
    REQUIRE(h.client->breaker_state() == BreakerState::Open);
    h.now += seconds(10);
    (void)h.call(request_for({"a@x.example"}));
    CHECK(h.client->breaker_state() == BreakerState::Open);
    CHECK(server.stat("requests") == 2);
    h.now += seconds(5);
    CHECK(h.call(request_for({"a@x.example"}))[0].error == "circuit open");
}

TEST_CASE("a kept-alive connection the server closed is replaced without failing the batch") {
    HookServerProcess server;
    REQUIRE_SERVER(server);
    server.control(R"({"mode":"drop-idle"})");
    Harness h(config_for(server));
    for (int i = 0; i < 3; ++i) {
        CAPTURE(i);
        const auto d = h.call(request_for({"a@x.example"}));
        CHECK(d[0].action == HookAction::Apply);
    }
    CHECK(server.stat("requests") == 3);
    CHECK(h.client->stats().failures == 0);
    // Each reuse found the connection closed and went again on a new one.
    CHECK(h.client->stats().connections == 3);
    CHECK(h.client->stats().requests == 5);
    // "close" answers with Connection: close, so nothing is pooled.
    server.control(R"({"mode":"close"})");
    CHECK(h.call(request_for({"a@x.example"}))[0].action == HookAction::Apply);
    CHECK(h.client->idle_connections() == 0);
}

TEST_CASE("the hook may listen on a unix socket") {
    HookServerProcess server(HookServerProcess::Transport::Unix);
    REQUIRE_SERVER(server);
    Harness h(config_for(server));
    const auto d = h.call(request_for({"jane@example.org", "skip@example.org"}));
    REQUIRE(d.size() == 2);
    CHECK(d[0].action == HookAction::Apply);
    CHECK(d[0].answer.vars.at("greeting").as_string() == "Hello Jane");
    CHECK(d[1].answer.skip_reason == "not interested");
    CHECK(server.stat("connections") == 1);
}

TEST_CASE("hook URLs are http or unix sockets") {
    struct Case {
        std::string url;
        std::string want; // "host port target" or the error
    };
    const Case cases[] = {
        {"http://127.0.0.1:9000/hook", "127.0.0.1 9000 /hook 127.0.0.1:9000"},
        {"http://Hook.Example/h?x=1", "hook.example 80 /h?x=1 hook.example"},
        {"http://[::1]:9000", "::1 9000 / [::1]:9000"},
        {"unix:/run/ember/hook.sock", "unix /run/ember/hook.sock / localhost"},
        {"https://hook.example/", "https is not supported: run the hook on this host or a private "
                                  "network, or use unix:/path"},
        {"ftp://hook.example/", "the scheme must be http (or unix:/path)"},
        {"unix:hook.sock", "a unix socket path must be absolute (unix:/run/ember/hook.sock)"},
        {"http://user:pw@hook.example/", "user information in the URL is not allowed"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.url);
        std::string error;
        const auto t = parse_hook_url(c.url, error);
        std::string got = error;
        if (t && t->unix_socket)
            got = "unix " + t->socket_path + " " + t->target + " " + t->host_header;
        else if (t)
            got = t->host + " " + t->port + " " + t->target + " " + t->host_header;
        CHECK(got == c.want);
    }
    CHECK(parse_hook_error_policy("Defer") == HookErrorPolicy::Defer);
    CHECK(parse_hook_error_policy("send-default") == HookErrorPolicy::SendDefault);
    CHECK_FALSE(parse_hook_error_policy("drop").has_value());
}
