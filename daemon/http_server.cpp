#include "daemon/http_server.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>

namespace ember::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace log = core::log;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// After an error answer the client may still be sending; reading (and
// dropping) a little more before closing keeps the kernel from answering
// with a RST that would destroy our answer in flight (nginx's lingering close).
constexpr std::size_t kLingerBytes = 1024 * 1024;
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

HttpResponse plain(unsigned status, std::string body) {
    return HttpResponse{status, "text/plain; charset=utf-8", std::move(body), {}};
}

awaitable<HttpResponse> run_sync(Router::SyncHandler handler, HttpRequest request) {
    co_return handler(request);
}

} // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
    const std::string wanted = lowercase(name);
    for (const auto& [field, value] : headers)
        if (field == wanted)
            return std::string_view(value);
    return std::nullopt;
}

void Router::add(std::string method, std::string path, Handler handler) {
    routes_[std::move(path)][std::move(method)] = std::move(handler);
}

void Router::add(std::string method, std::string path, SyncHandler handler) {
    add(std::move(method), std::move(path), [handler = std::move(handler)](HttpRequest request) {
        return run_sync(handler, std::move(request));
    });
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [path, methods] : routes_) {
        for (const auto& entry : methods)
            out.emplace_back(entry.first, path);
    }
    return out;
}

Router::Match Router::find(std::string_view method, std::string_view path) const {
    Match match;
    auto route = routes_.find(path);
    if (route == routes_.end()) {
        // A route "/u/*" serves every longer path under "/u/"; the longest such prefix wins.
        for (auto it = routes_.begin(); it != routes_.end(); ++it) {
            const std::string_view key = it->first;
            if (key.ends_with('*') && path.size() >= key.size() &&
                path.starts_with(key.substr(0, key.size() - 1)) &&
                (route == routes_.end() || key.size() > route->first.size()))
                route = it;
        }
    }
    if (route == routes_.end())
        return match;
    for (const auto& [name, handler] : route->second) {
        match.allowed.push_back(name);
        if (name == method)
            match.handler = &handler;
    }
    if (!match.handler && method == "HEAD") {
        if (auto get = route->second.find("GET"); get != route->second.end())
            match.handler = &get->second;
    }
    return match;
}

void add_metrics_route(Router& router, Metrics& metrics) {
    router.add("GET", "/metrics", [&metrics](const HttpRequest&) {
        return HttpResponse{200, kMetricsContentType, metrics.render(), {}};
    });
}

struct HttpServer::State {
    State(asio::any_io_executor ex, core::Endpoint ep, Router r, HttpLimits l)
        : executor(std::move(ex)), endpoint(std::move(ep)), router(std::move(r)), limits(l),
          slot_freed(executor) {}

    asio::any_io_executor executor;
    core::Endpoint endpoint;
    Router router;
    HttpLimits limits;
    std::optional<tcp::acceptor> acceptor;
    // Used as a condition variable: the paused acceptor waits on it, a
    // finishing session cancels one wait.
    asio::steady_timer slot_freed;
    bool started = false;
    bool draining = false; // /healthz 503, no keep-alive
    bool stopping = false; // no accepting, sessions end
    std::uint16_t port = 0;
    std::size_t sessions = 0;
    std::uint64_t next_session = 0;
    std::map<std::uint64_t, beast::tcp_stream*> reading; // sessions waiting for a request
    std::shared_ptr<asio::ssl::context> tls;             // set: HTTPS only
};

namespace {

using State = HttpServer::State;

// Owns one connection slot for the life of a session coroutine.
struct SessionSlot {
    std::shared_ptr<State> state;
    std::uint64_t id;
    explicit SessionSlot(std::shared_ptr<State> s)
        : state(std::move(s)), id(++state->next_session) {
        ++state->sessions;
    }
    ~SessionSlot() {
        state->reading.erase(id);
        --state->sessions;
        state->slot_freed.cancel_one();
    }
    SessionSlot(const SessionSlot&) = delete;
    SessionSlot& operator=(const SessionSlot&) = delete;
};

// The status to answer a failed read with, or 0 to close without answering
// (clean end of stream, client gone, timeout, cancellation by stop()).
unsigned read_error_status(const beast::error_code& ec) {
    static const auto& parse_category = http::make_error_code(http::error::bad_method).category();
    if (ec == http::error::end_of_stream || ec == http::error::partial_message)
        return 0;
    if (ec == http::error::header_limit)
        return 431; // RFC 6585 section 5
    if (ec == http::error::body_limit)
        return 413; // RFC 9110 section 15.5.14
    return ec.category() == parse_category ? 400 : 0;
}

std::string_view reason_body(unsigned status) {
    switch (status) {
    case 400:
        return "bad request\n";
    case 404:
        return "not found\n";
    case 405:
        return "method not allowed\n";
    case 413:
        return "request body too large\n";
    case 431:
        return "request header too large\n";
    default:
        return "internal error\n";
    }
}

HttpRequest to_request(http::request<http::string_body>&& in, std::string remote) {
    HttpRequest out;
    out.method = std::string(in.method_string());
    out.target = std::string(in.target());
    const auto mark = out.target.find('?');
    out.path = out.target.substr(0, mark);
    if (mark != std::string::npos)
        out.query = out.target.substr(mark + 1);
    for (const auto& field : in)
        out.headers.emplace_back(lowercase(field.name_string()), std::string(field.value()));
    out.body = std::move(in.body());
    out.remote = std::move(remote);
    return out;
}

http::response<http::string_body> to_beast(HttpResponse in, unsigned version, bool keep_alive,
                                           bool head) {
    http::response<http::string_body> out;
    out.version(version);
    out.result(in.status);
    out.set(http::field::server, "ember");
    out.set(http::field::content_type, in.content_type);
    for (const auto& [name, value] : in.headers)
        out.set(name, value);
    out.keep_alive(keep_alive);
    const auto size = in.body.size();
    out.body() = std::move(in.body);
    out.prepare_payload();
    if (head) { // RFC 9110 section 9.3.2: the GET header fields without content
        out.body().clear();
        out.content_length(size);
    }
    return out;
}

awaitable<HttpResponse> dispatch(std::shared_ptr<State> state, HttpRequest request) {
    if (request.target.empty() || request.target.front() != '/')
        co_return plain(400, std::string(reason_body(400)));
    const auto match = state->router.find(request.method, request.path);
    if (match.allowed.empty())
        co_return plain(404, std::string(reason_body(404)));
    if (!match.handler) {
        auto answer = plain(405, std::string(reason_body(405)));
        std::string allow;
        for (const auto& method : match.allowed)
            allow += (allow.empty() ? "" : ", ") + method;
        answer.headers.emplace_back("Allow", allow);
        co_return answer;
    }
    Router::Handler handler = *match.handler; // a copy: the route table may change meanwhile
    try {
        co_return co_await handler(request);
    } catch (const std::exception& e) {
        log::error("http.handler_failed", "path={} error={}", log::q(request.path),
                   log::q(e.what()));
    }
    co_return plain(500, std::string(reason_body(500)));
}

std::string peer_text(const beast::tcp_stream& stream) {
    boost::system::error_code ec;
    const auto peer = stream.socket().remote_endpoint(ec);
    if (ec)
        return "unknown";
    return core::Endpoint{peer.address().to_string(), peer.port()}.to_string();
}

awaitable<void> linger(beast::tcp_stream stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    std::array<char, 4096> sink{};
    std::size_t total = 0;
    stream.expires_after(kLingerTime);
    while (!ec && total < kLingerBytes) {
        auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
        ec = read_ec;
        total += n;
    }
}

// One connection: read a request, answer it, repeat while kept alive. Kept
// as one loop (Beast's coroutine server shape) although a little over 40
// lines: read, answer and the keep-alive decision belong together. `tcp`
// is `stream` itself for plain HTTP, its lowest layer for HTTPS: deadlines
// and stop()'s cancellation act there. True when an error answer was sent
// (the caller lingers).
template <typename Stream>
awaitable<bool> serve(std::shared_ptr<State> state, const SessionSlot& slot, Stream& stream,
                      beast::tcp_stream& tcp, std::string remote) {
    beast::flat_buffer buffer;
    bool failed = false;
    while (!state->stopping) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(state->limits.header_limit));
        parser.body_limit(state->limits.body_limit);
        tcp.expires_after(state->limits.read_timeout);
        state->reading[slot.id] = &tcp;
        auto [read_ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
        state->reading.erase(slot.id);

        http::response<http::string_body> reply;
        bool keep_alive = false;
        if (read_ec) {
            const unsigned status = read_error_status(read_ec);
            if (status == 0)
                break;
            log::info("http.bad_request", "client={} status={} error={}", remote, status,
                      log::q(read_ec.message()));
            reply = to_beast(plain(status, std::string(reason_body(status))), 11, false, false);
            failed = true;
        } else {
            auto request = parser.release();
            const unsigned version = request.version();
            const bool head = request.method() == http::verb::head;
            keep_alive = request.keep_alive();
            auto answer = co_await dispatch(state, to_request(std::move(request), remote));
            // After a 400 or 500 the connection's state is unknown: close it.
            keep_alive =
                keep_alive && !state->draining && answer.status != 400 && answer.status != 500;
            reply = to_beast(std::move(answer), version, keep_alive, head);
        }
        tcp.expires_after(state->limits.write_timeout);
        auto [write_ec, written] = co_await http::async_write(stream, reply, kTuple);
        if (write_ec || !keep_alive)
            break;
    }
    co_return failed;
}

// HTTPS: the handshake under the read deadline (a client that connects and
// says nothing is dropped like an idle one), then the same loop, then a
// close_notify (bounded by the write deadline; a client that vanished is
// not waited for).
awaitable<void> serve_tls(std::shared_ptr<State> state, const SessionSlot& slot,
                          beast::ssl_stream<beast::tcp_stream>& stream, std::string remote) {
    auto& tcp = stream.next_layer();
    tcp.expires_after(state->limits.read_timeout);
    state->reading[slot.id] = &tcp;
    auto [hs_ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
    state->reading.erase(slot.id);
    if (hs_ec) {
        log::info("http.tls_failed", "client={} error={}", remote, log::q(hs_ec.message()));
        co_return;
    }
    (void)co_await serve(state, slot, stream, tcp, remote);
    tcp.expires_after(state->limits.write_timeout);
    [[maybe_unused]] auto [shutdown_ec] = co_await stream.async_shutdown(kTuple);
}

awaitable<void> session(std::shared_ptr<State> state, tcp::socket socket) {
    SessionSlot slot(state);
    beast::tcp_stream stream(std::move(socket));
    const std::string remote = peer_text(stream);
    if (auto tls = state->tls) {
        beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), *tls);
        co_await serve_tls(state, slot, secure, remote);
        co_return;
    }
    const bool failed = co_await serve(state, slot, stream, stream, remote);
    if (failed)
        co_await linger(std::move(stream));
}

awaitable<void> accept_loop(std::shared_ptr<State> state) {
    asio::steady_timer backoff(state->executor);
    while (!state->stopping) {
        if (state->sessions >= state->limits.max_connections) {
            state->slot_freed.expires_at(asio::steady_timer::time_point::max());
            [[maybe_unused]] auto [ec] = co_await state->slot_freed.async_wait(kTuple);
            continue;
        }
        auto [ec, socket] = co_await state->acceptor->async_accept(kTuple);
        if (state->stopping)
            break;
        if (ec) {
            // EMFILE and friends: wait a little instead of spinning.
            log::warning("http.accept_failed", "error={}", log::q(ec.message()));
            backoff.expires_after(kAcceptBackoff);
            [[maybe_unused]] auto [wait_ec] = co_await backoff.async_wait(kTuple);
            continue;
        }
        core::spawn(state->executor, session(state, std::move(socket)), "http.session");
    }
}

boost::system::error_code open_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& endpoint) {
    boost::system::error_code ec;
    if (acceptor.open(endpoint.protocol(), ec); ec)
        return ec;
    if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec)
        return ec;
    if (acceptor.bind(endpoint, ec); ec)
        return ec;
    acceptor.listen(tcp::acceptor::max_listen_connections, ec);
    return ec;
}

} // namespace

HttpServer::HttpServer(asio::any_io_executor executor, core::Endpoint endpoint, Router router,
                       HttpLimits limits)
    : state_(std::make_shared<State>(std::move(executor), std::move(endpoint), std::move(router),
                                     limits)) {
    // The handler only runs inside a session, which holds the state alive.
    state_->router.add("GET", "/healthz", [state = state_.get()](const HttpRequest&) {
        return state->draining ? plain(503, "stopping\n") : plain(200, "ok\n");
    });
}

HttpServer::~HttpServer() {
    stop();
}

Router& HttpServer::router() {
    return state_->router;
}

std::uint16_t HttpServer::port() const {
    return state_->port;
}

std::size_t HttpServer::active_connections() const {
    return state_->sessions;
}

std::string HttpServer::start() {
    auto& state = *state_;
    const auto where = state.endpoint.to_string();
    if (state.started)
        return fmt::format("http: {} already started", where);
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(state.endpoint.host, ec);
    if (ec)
        return fmt::format("http: cannot listen on {}: the host must be an IP address", where);
    tcp::acceptor acceptor(state.executor);
    if (ec = open_acceptor(acceptor, tcp::endpoint(address, state.endpoint.port)); ec)
        return fmt::format("http: cannot listen on {}: {}", where, ec.message());
    state.port = acceptor.local_endpoint(ec).port();
    state.acceptor.emplace(std::move(acceptor));
    state.started = true;
    log::info("http.listening", "address={} port={}", log::q(state.endpoint.host), state.port);
    core::spawn(state.executor, accept_loop(state_), "http.accept", core::TaskKind::TopLevel);
    return "";
}

void HttpServer::set_tls(std::shared_ptr<asio::ssl::context> tls) {
    state_->tls = std::move(tls);
}

void HttpServer::drain() {
    state_->draining = true;
}

void HttpServer::stop() {
    auto& state = *state_;
    if (state.stopping)
        return;
    state.draining = true;
    state.stopping = true;
    boost::system::error_code ec;
    if (state.acceptor)
        state.acceptor->close(ec);
    state.slot_freed.cancel();
    // Completions are posted, never run inline, so `reading` is not modified here.
    for (const auto& [id, stream] : state.reading)
        stream->cancel();
}

} // namespace ember::daemon
