#include "daemon/http_server.hpp"

#include "daemon/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <doctest/doctest.h>
#include <prometheus/counter.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>

using namespace ember;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using daemon::HttpServer;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Reply {
    unsigned status = 0; // 0: no response (the error says why)
    std::string error;
    std::string body;
    std::string content_type;
    std::string content_length;
    std::string allow;
    bool keep_alive = false;
};

using Stream = std::shared_ptr<beast::tcp_stream>;

awaitable<Stream> connect_to(std::uint16_t port) {
    auto stream = std::make_shared<beast::tcp_stream>(co_await asio::this_coro::executor);
    stream->expires_after(10s);
    auto [ec] = co_await stream->async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), kTuple);
    REQUIRE_MESSAGE(!ec, ec.message());
    co_return stream;
}

// Sends raw bytes and reads one response (for HEAD, without a body).
awaitable<Reply> send_request(Stream stream, std::string raw, bool head = false) {
    Reply reply;
    stream->expires_after(10s);
    auto [write_ec, written] = co_await asio::async_write(*stream, asio::buffer(raw), kTuple);
    if (write_ec) {
        reply.error = write_ec.message();
        co_return reply;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    auto [read_ec, n] = co_await http::async_read(*stream, buffer, parser, kTuple);
    if (read_ec) {
        reply.error = read_ec.message();
        co_return reply;
    }
    const auto& res = parser.get();
    reply.status = res.result_int();
    reply.body = res.body();
    reply.content_type = std::string(res[http::field::content_type]);
    reply.content_length = std::string(res[http::field::content_length]);
    reply.allow = std::string(res[http::field::allow]);
    reply.keep_alive = res.keep_alive();
    co_return reply;
}

awaitable<Reply> get(std::uint16_t port, std::string method, std::string path) {
    auto stream = co_await connect_to(port);
    co_return co_await send_request(
        stream, method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        method == "HEAD");
}

// A metrics registry and an HTTP server on an ephemeral loopback port.
struct Fixture {
    asio::io_context io;
    daemon::Metrics metrics;
    std::unique_ptr<HttpServer> server;

    explicit Fixture(daemon::HttpLimits limits = {}) {
        daemon::Router router;
        daemon::add_metrics_route(router, metrics);
        server = std::make_unique<HttpServer>(io.get_executor(), core::Endpoint{"127.0.0.1", 0},
                                              std::move(router), limits);
        const auto error = server->start();
        REQUIRE_MESSAGE(error.empty(), error);
        REQUIRE(server->port() != 0);
    }

    // Runs the client coroutine, then stops the server; every session must
    // end for run() to return.
    template <typename Body> void run(Body body) {
        std::exception_ptr failure;
        bool finished = false;
        asio::co_spawn(io, body(), [&](std::exception_ptr e) {
            failure = e;
            finished = true;
            server->stop();
        });
        io.run_for(60s);
        REQUIRE(finished);
        CHECK(io.stopped());
        if (failure)
            std::rethrow_exception(failure);
    }
};

} // namespace

TEST_CASE("GET /metrics serves a registered metric in the Prometheus text format") {
    Fixture f;
    prometheus::BuildCounter()
        .Name("ember_test_requests_total")
        .Help("test")
        .Register(f.metrics.registry())
        .Add({})
        .Increment(5);
    Reply reply;
    f.run([&]() -> awaitable<void> { reply = co_await get(f.server->port(), "GET", "/metrics"); });
    CAPTURE(reply.error);
    CHECK(reply.status == 200);
    CHECK(reply.content_type.starts_with("text/plain; version=0.0.4"));
    CHECK(reply.body.find("ember_test_requests_total 5") != std::string::npos);
}

TEST_CASE("GET /healthz answers ok, and 503 stopping once the server drains") {
    Fixture f;
    Reply before, after;
    f.run([&]() -> awaitable<void> {
        before = co_await get(f.server->port(), "GET", "/healthz");
        f.server->drain();
        after = co_await get(f.server->port(), "GET", "/healthz");
    });
    CHECK(before.status == 200);
    CHECK(before.body == "ok\n");
    CHECK(after.status == 503);
    CHECK(after.body == "stopping\n");
    CHECK_FALSE(after.keep_alive);
}

TEST_CASE("routing answers 404 for an unknown path and 405 with Allow for a wrong method") {
    struct Case {
        const char* method;
        const char* path;
        unsigned status;
        const char* allow;
    };
    const Case cases[] = {
        {"GET", "/nope", 404, ""},           {"GET", "/metrics/", 404, ""},
        {"POST", "/metrics", 405, "GET"},    {"DELETE", "/healthz", 405, "GET"},
        {"GET", "/metrics?name=x", 200, ""},
    };
    for (const auto& c : cases) {
        Fixture f;
        Reply reply;
        f.run(
            [&]() -> awaitable<void> { reply = co_await get(f.server->port(), c.method, c.path); });
        CAPTURE(c.method);
        CAPTURE(c.path);
        CAPTURE(reply.error);
        CHECK(reply.status == c.status);
        CHECK(reply.allow == c.allow);
    }
}

TEST_CASE("HEAD is answered by the GET route with its Content-Length and no body") {
    Fixture f;
    Reply reply;
    std::string rest;
    f.run([&]() -> awaitable<void> {
        auto stream = co_await connect_to(f.server->port());
        reply = co_await send_request(stream, "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", true);
        // Nothing may follow the header: the next bytes are the next answer.
        auto second = co_await send_request(stream, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        rest = second.body;
    });
    CHECK(reply.status == 200);
    CHECK(reply.content_length == "3");
    CHECK(rest == "ok\n");
}

TEST_CASE("a request Beast cannot parse is answered 400 and the connection closed") {
    const std::string requests[] = {
        "NOT A REQUEST\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nbroken header line\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET metrics HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (const auto& raw : requests) {
        Fixture f;
        Reply reply;
        f.run([&]() -> awaitable<void> {
            auto stream = co_await connect_to(f.server->port());
            reply = co_await send_request(stream, raw);
        });
        CAPTURE(raw);
        CAPTURE(reply.error);
        CHECK(reply.status == 400);
        CHECK_FALSE(reply.keep_alive);
    }
}

TEST_CASE("a body over the limit is answered 413 and a header over the limit 431") {
    Fixture f;
    Reply body, header;
    f.run([&]() -> awaitable<void> {
        auto one = co_await connect_to(f.server->port());
        body = co_await send_request(
            one, "POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n");
        auto two = co_await connect_to(f.server->port());
        header = co_await send_request(two, "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " +
                                                std::string(17 * 1024, 'a') + "\r\n\r\n");
    });
    CAPTURE(body.error);
    CAPTURE(header.error);
    CHECK(body.status == 413);
    CHECK(header.status == 431);
}

TEST_CASE("a chunked body that grows over the limit is answered 413") {
    daemon::HttpLimits limits;
    limits.body_limit = 1000;
    Fixture f(limits);
    f.server->router().add("POST", "/echo", [](const daemon::HttpRequest& request) {
        return daemon::HttpResponse{200, "text/plain", request.body, {}};
    });
    Reply small, large;
    f.run([&]() -> awaitable<void> {
        auto one = co_await connect_to(f.server->port());
        small =
            co_await send_request(one, "POST /echo HTTP/1.1\r\nHost: a\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        auto two = co_await connect_to(f.server->port());
        large = co_await send_request(two, "POST /echo HTTP/1.1\r\nHost: a\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n7d0\r\n" +
                                               std::string(2000, 'x') + "\r\n0\r\n\r\n");
    });
    CHECK(small.status == 200);
    CHECK(small.body == "hello");
    CHECK(large.status == 413);
}

TEST_CASE("a keep-alive connection serves several requests in turn") {
    Fixture f;
    Reply first, second;
    f.run([&]() -> awaitable<void> {
        auto stream = co_await connect_to(f.server->port());
        first = co_await send_request(stream, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        second = co_await send_request(stream, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    });
    CHECK(first.status == 200);
    CHECK(first.keep_alive);
    CHECK(second.status == 200);
}

TEST_CASE("an async handler's response is served, and a throwing handler gives 500") {
    Fixture f;
    f.server->router().add(
        "GET", "/slow", [](daemon::HttpRequest request) -> awaitable<daemon::HttpResponse> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
            co_await timer.async_wait(asio::use_awaitable);
            co_return daemon::HttpResponse{200, "text/plain", "slow " + request.query, {}};
        });
    f.server->router().add("GET", "/throw", [](const daemon::HttpRequest&) -> daemon::HttpResponse {
        throw std::runtime_error("boom");
    });
    Reply slow, thrown;
    f.run([&]() -> awaitable<void> {
        slow = co_await get(f.server->port(), "GET", "/slow?x=1");
        thrown = co_await get(f.server->port(), "GET", "/throw");
    });
    CHECK(slow.status == 200);
    CHECK(slow.body == "slow x=1");
    CHECK(thrown.status == 500);
}

TEST_CASE("at the connection limit the next client waits until a connection closes") {
    daemon::HttpLimits limits;
    limits.max_connections = 1;
    Fixture f(limits);
    Reply first, waiting;
    bool waiting_done = false;
    bool answered_while_first_open = true;
    f.run([&]() -> awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto one = co_await connect_to(f.server->port());
        first = co_await send_request(one, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        auto two = co_await connect_to(f.server->port()); // completes in the backlog
        asio::co_spawn(
            ex,
            [&, two]() -> awaitable<void> {
                waiting = co_await send_request(two, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
                waiting_done = true;
            },
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        asio::steady_timer timer(ex, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        answered_while_first_open = waiting_done;
        CHECK(f.server->active_connections() == 1);
        one->close();
        for (int i = 0; i < 500 && !waiting_done; ++i) {
            timer.expires_after(10ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
    });
    CHECK(first.status == 200);
    CHECK_FALSE(answered_while_first_open);
    CHECK(waiting.status == 200);
}

TEST_CASE("stop ends idle keep-alive connections so the event loop finishes") {
    Fixture f;
    Reply first, after_stop;
    f.run([&]() -> awaitable<void> {
        auto stream = co_await connect_to(f.server->port());
        first = co_await send_request(stream, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        f.server->stop();
        after_stop = co_await send_request(stream, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    });
    CHECK(first.status == 200);
    CHECK(after_stop.status == 0);
    CHECK(f.server->active_connections() == 0);
}

TEST_CASE("start fails with a message naming the endpoint when the port is taken") {
    Fixture f;
    HttpServer second(f.io.get_executor(), core::Endpoint{"127.0.0.1", f.server->port()}, {});
    const auto error = second.start();
    CAPTURE(error);
    CHECK(error.find("127.0.0.1:" + std::to_string(f.server->port())) != std::string::npos);
    HttpServer named(f.io.get_executor(), core::Endpoint{"localhost", 0}, {});
    CHECK(named.start().find("IP address") != std::string::npos);
}
