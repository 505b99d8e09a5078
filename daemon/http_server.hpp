#pragma once
// A small HTTP/1.1 server (Boost.Beast) for the daemon's own endpoints:
// GET /metrics, GET /healthz now, the injection and unsubscribe API later.
//
// - Router: method + exact path -> handler. Handlers are coroutines so an API
//   route can await a queue commit; add() also takes a plain function. A
//   path ending in '*' ("/u/*") serves every longer path starting with what
//   precedes the '*' (the handler reads HttpRequest::path); exact paths win.
//   A HEAD request is served by the GET handler without the body.
// - Answers 404 for an unknown path, 405 (with Allow) for a known path and a
//   wrong method, 400 for a request Beast cannot parse, 431 when the header
//   exceeds HttpLimits::header_limit, 413 when the body exceeds body_limit,
//   500 when a handler throws (logged; the connection then closes).
// - One coroutine per connection: read a request, answer, repeat while the
//   client keeps the connection alive. Every read and write has a deadline.
//   At max_connections the acceptor pauses (the kernel backlog holds new
//   clients) instead of accepting and dropping them.
// - drain() starts a graceful shutdown: /healthz answers 503 "stopping" so
//   load balancers and probes look elsewhere, and keep-alive ends after each
//   answer, while requests are still served. stop() drains, closes the
//   acceptor, ends idle and reading connections at once and lets a request
//   being handled finish its response, then closes it. The server's state is shared with
//   its sessions, so destroying the HttpServer right after stop() is safe
//   (but before its io_context, like any Asio I/O object); objects a handler
//   captures by reference must outlive the io_context run.
//
// - With set_tls(), every connection is HTTPS ([http] tls): the TLS
//   handshake runs under the read deadline, and no plain request is served.
//
// Threads: every member is called on, and every session runs on, the
// executor given to the constructor; it must be single-threaded (strand or a
// one-thread io_context), so no locks are needed.

#include "core/net.hpp"
#include "core/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::daemon {

class Metrics;

struct HttpRequest {
    std::string method; // "GET", as sent
    std::string target; // origin-form, as sent
    std::string path;   // target before '?'; matched exactly, no percent-decoding
    std::string query;  // target after '?', undecoded
    std::vector<std::pair<std::string, std::string>> headers; // names lowercased, in order
    std::string body;
    std::string remote; // peer "ip:port"

    // The first field with that name (case-insensitive).
    [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

struct HttpResponse {
    // Constructors rather than an aggregate, so HttpResponse{200, type, body}
    // compiles warning-free (-Wmissing-field-initializers).
    HttpResponse() = default;
    HttpResponse(unsigned status_code, std::string type, std::string text,
                 std::vector<std::pair<std::string, std::string>> fields = {})
        : status(status_code), content_type(std::move(type)), body(std::move(text)),
          headers(std::move(fields)) {}

    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers; // extra fields
};

class Router {
public:
    using Handler = std::function<boost::asio::awaitable<HttpResponse>(HttpRequest)>;
    using SyncHandler = std::function<HttpResponse(const HttpRequest&)>;

    // A later add() for the same method and path replaces the handler.
    void add(std::string method, std::string path, Handler handler);
    void add(std::string method, std::string path, SyncHandler handler);

    struct Match {
        const Handler* handler = nullptr; // null: no route for this method
        std::vector<std::string> allowed; // methods the path has; empty: unknown path
    };
    // HEAD falls back to the GET route of the path.
    [[nodiscard]] Match find(std::string_view method, std::string_view path) const;
    // Every (method, path) added, in path order (the API's OpenAPI test).
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> routes() const;

private:
    std::map<std::string, std::map<std::string, Handler>, std::less<>> routes_; // path, method
};

struct HttpLimits {
    std::size_t header_limit = 16 * 1024;
    std::size_t body_limit = 1024 * 1024;
    core::Duration read_timeout = std::chrono::seconds(30); // a whole request, and keep-alive idle
    core::Duration write_timeout = std::chrono::seconds(30);
    std::size_t max_connections = 256;
};

// GET /metrics: metrics.render() as the Prometheus text format. `metrics`
// must outlive the server's sessions.
void add_metrics_route(Router& router, Metrics& metrics);

class HttpServer {
public:
    HttpServer(boost::asio::any_io_executor executor, core::Endpoint endpoint, Router router,
               HttpLimits limits = {});
    ~HttpServer(); // stop()s
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Routes added before start(). GET /healthz is built in.
    [[nodiscard]] Router& router();

    // Binds and listens (host must be an IP literal; port 0 picks a free
    // port), then accepts in the background. "" or an error text naming the
    // endpoint.
    [[nodiscard]] std::string start();
    // HTTPS from now on for new connections (the [tls] certificate, also
    // after a reload); nullptr = plain HTTP. A connection keeps the context
    // it was accepted with.
    void set_tls(std::shared_ptr<boost::asio::ssl::context> tls);
    void drain();
    void stop();

    // The bound port (useful with port 0); 0 before start().
    [[nodiscard]] std::uint16_t port() const;
    [[nodiscard]] std::size_t active_connections() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

} // namespace ember::daemon
