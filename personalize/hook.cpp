#include "personalize/hook.hpp"

#include "core/ascii.hpp"
#include "core/async.hpp"
#include "core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <deque>

namespace ember::personalize {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using local_socket = asio::local::stream_protocol::socket;
using asio::awaitable;
namespace log = core::log;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseHeader = std::size_t{16} * 1024;

struct Connection {
    std::optional<tcp::socket> inet;
    std::optional<local_socket> local;
    beast::flat_buffer buffer;
    void close() {
        boost::system::error_code ignored;
        if (inet)
            inet->close(ignored);
        if (local)
            local->close(ignored);
    }
};

// One request's deadline. The timer's handler closes whatever the request
// is using at that moment; shared because the handler may run after the
// request finished.
struct Deadline {
    explicit Deadline(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
    std::shared_ptr<Connection> conn;
    std::shared_ptr<tcp::resolver> resolver;
    bool expired = false;
    void expire() {
        expired = true;
        if (conn)
            conn->close();
        if (resolver)
            resolver->cancel();
    }
};

struct Exchange {
    bool ok = false;
    unsigned status = 0;
    std::string body;
    std::string error;
    bool nothing_read = false; // no octet of an answer arrived
    bool keep_alive = false;
};

// Gathers the batches of one call.
struct Gather {
    Gather(const asio::any_io_executor& executor, std::size_t count, std::size_t batches)
        : decisions(count), remaining(batches),
          wake(executor, asio::steady_timer::time_point::max()) {}
    std::vector<HookDecision> decisions;
    std::size_t remaining;
    asio::steady_timer wake;
};

} // namespace

struct HookClient::State {
    State(asio::any_io_executor ex, HookConfig cfg, HookTarget t, Clock c)
        : executor(std::move(ex)), config(std::move(cfg)), target(std::move(t)),
          clock(std::move(c)), breaker(config.breaker),
          free_slots(std::max<std::uint32_t>(1, config.concurrency)) {}
    asio::any_io_executor executor;
    HookConfig config;
    HookTarget target;
    Clock clock;
    CircuitBreaker breaker;
    HookStats stats;
    std::vector<std::shared_ptr<Connection>> idle;
    std::size_t free_slots;
    std::deque<std::shared_ptr<asio::steady_timer>> waiters;
    bool closed = false;
};

using State = HookClient::State;

namespace {

// ---- Slots: at most `concurrency` requests in flight ----

awaitable<void> acquire_slot(std::shared_ptr<State> s) {
    if (s->free_slots > 0) {
        --s->free_slots;
        co_return;
    }
    auto waiter =
        std::make_shared<asio::steady_timer>(s->executor, asio::steady_timer::time_point::max());
    s->waiters.push_back(waiter);
    // release_slot() cancels the wait: the slot is handed over.
    auto [ec] = co_await waiter->async_wait(kTuple);
    (void)ec;
}

void release_slot(State& s) {
    if (s.waiters.empty()) {
        ++s.free_slots;
        return;
    }
    auto next = std::move(s.waiters.front());
    s.waiters.pop_front();
    next->cancel();
}

// ---- One connection ----

// A connected socket, or nullptr and `error`.
awaitable<std::shared_ptr<Connection>> connect_tcp(std::shared_ptr<State> s,
                                                   std::shared_ptr<Deadline> d,
                                                   std::shared_ptr<std::string> error) {
    auto conn = std::make_shared<Connection>();
    conn->inet.emplace(s->executor);
    d->conn = conn;
    boost::system::error_code ec;
    const auto literal = asio::ip::make_address(s->target.host, ec);
    std::vector<tcp::endpoint> endpoints;
    if (!ec) {
        endpoints.emplace_back(literal, static_cast<std::uint16_t>(std::stoi(s->target.port)));
    } else {
        d->resolver = std::make_shared<tcp::resolver>(s->executor);
        auto [rec, results] =
            co_await d->resolver->async_resolve(s->target.host, s->target.port, kTuple);
        d->resolver.reset();
        if (rec) {
            *error = d->expired ? "timeout" : "resolve: " + rec.message();
            co_return nullptr;
        }
        for (const auto& r : results)
            endpoints.push_back(r.endpoint());
    }
    auto [cec, endpoint] = co_await asio::async_connect(*conn->inet, endpoints, kTuple);
    (void)endpoint;
    if (cec) {
        *error = d->expired ? "timeout" : "connect: " + cec.message();
        co_return nullptr;
    }
    conn->inet->set_option(tcp::no_delay(true), ec);
    co_return conn;
}

awaitable<std::shared_ptr<Connection>> connect_unix(std::shared_ptr<State> s,
                                                    std::shared_ptr<Deadline> d,
                                                    std::shared_ptr<std::string> error) {
    auto conn = std::make_shared<Connection>();
    conn->local.emplace(s->executor);
    d->conn = conn;
    const asio::local::stream_protocol::endpoint endpoint(s->target.socket_path);
    auto [ec] = co_await conn->local->async_connect(endpoint, kTuple);
    if (ec) {
        *error = d->expired ? "timeout" : "connect: " + ec.message();
        co_return nullptr;
    }
    co_return conn;
}

http::request<http::string_body> make_request(const HookTarget& t, std::string body) {
    http::request<http::string_body> request{http::verb::post, t.target, 11};
    request.set(http::field::host, t.host_header);
    request.set(http::field::user_agent, "ember");
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "application/json");
    request.keep_alive(true);
    request.body() = std::move(body);
    request.prepare_payload();
    return request;
}

template <typename Stream>
awaitable<Exchange> round_trip(std::shared_ptr<Connection> conn, Stream* stream,
                               http::request<http::string_body> request,
                               std::uint64_t max_response) {
    Exchange x;
    auto [wec, written] = co_await http::async_write(*stream, request, kTuple);
    (void)written;
    if (wec) {
        x.error = "write: " + wec.message();
        x.nothing_read = true;
        co_return x;
    }
    http::response_parser<http::string_body> parser;
    parser.header_limit(kMaxResponseHeader);
    parser.body_limit(max_response);
    auto [rec, read] = co_await http::async_read(*stream, conn->buffer, parser, kTuple);
    (void)read;
    if (rec) {
        x.error = "read: " + rec.message();
        x.nothing_read = !parser.got_some();
        co_return x;
    }
    auto response = parser.release();
    x.ok = true;
    x.status = response.result_int();
    x.keep_alive = response.keep_alive();
    x.body = std::move(response.body());
    co_return x;
}

std::shared_ptr<Connection> take_idle(State& s) {
    if (s.idle.empty())
        return nullptr;
    auto conn = std::move(s.idle.back());
    s.idle.pop_back();
    return conn;
}

void keep_or_close(State& s, std::shared_ptr<Connection> conn, bool keep_alive) {
    if (keep_alive && !s.closed && s.idle.size() < std::max<std::uint32_t>(1, s.config.concurrency))
        s.idle.push_back(std::move(conn));
    else
        conn->close();
}

// Write and read on a pooled or a new connection; a pooled one that turns
// out closed (nothing read) is replaced once.
awaitable<Exchange> exchange(std::shared_ptr<State> s, std::shared_ptr<Deadline> d,
                             std::string body) {
    Exchange x;
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto conn = take_idle(*s);
        const bool reused = conn != nullptr;
        if (!reused) {
            auto error = std::make_shared<std::string>();
            auto connecting =
                s->target.unix_socket ? connect_unix(s, d, error) : connect_tcp(s, d, error);
            conn = co_await std::move(connecting);
            if (!conn) {
                x.error = *error;
                co_return x;
            }
            ++s->stats.connections;
        }
        d->conn = conn;
        ++s->stats.requests;
        auto request = make_request(s->target, body);
        if (conn->inet) {
            auto op =
                round_trip(conn, &*conn->inet, std::move(request), s->config.max_response.bytes);
            x = co_await std::move(op);
        } else {
            auto op =
                round_trip(conn, &*conn->local, std::move(request), s->config.max_response.bytes);
            x = co_await std::move(op);
        }
        d->conn.reset(); // the deadline no longer owns it
        if (x.ok) {
            keep_or_close(*s, std::move(conn), x.keep_alive);
            co_return x;
        }
        conn->close();
        if (d->expired) {
            x.error = "timeout";
            co_return x;
        }
        if (!reused || !x.nothing_read)
            co_return x;
    }
    co_return x;
}

// One POST under one deadline, after waiting for a slot.
awaitable<Exchange> post(std::shared_ptr<State> s, std::string body) {
    auto slot = acquire_slot(s);
    co_await std::move(slot);
    auto d = std::make_shared<Deadline>(s->executor);
    d->timer.expires_after(s->config.timeout);
    d->timer.async_wait([weak = std::weak_ptr<Deadline>(d)](boost::system::error_code ec) {
        if (auto deadline = weak.lock(); deadline && !ec)
            deadline->expire();
    });
    auto op = exchange(s, d, std::move(body));
    auto x = co_await std::move(op);
    d->timer.cancel();
    release_slot(*s);
    co_return x;
}

// ---- Batches ----

HookDecision failed(const HookConfig& config, std::string error) {
    HookDecision d;
    d.action =
        config.on_error == HookErrorPolicy::Defer ? HookAction::Defer : HookAction::SendDefault;
    d.error = std::move(error);
    return d;
}

// The answers of a finished exchange, or why it failed.
std::variant<std::vector<HookAnswer>, std::string>
interpret(const Exchange& x, const HookRequest& request, std::size_t first, std::size_t count) {
    if (!x.ok)
        return x.error;
    if (x.status == 204)
        return std::vector<HookAnswer>(count);
    if (x.status != 200)
        return fmt::format("status {}", x.status);
    return parse_hook_response(x.body, request, first, count);
}

void note_breaker(const State& s, BreakerState before) {
    const auto after = s.breaker.state();
    if (before == after)
        return;
    if (after == BreakerState::Open)
        log::warning(
            "hook.circuit_open", "url={} failures={} retry_in_ms={}", log::q(s.config.url),
            s.breaker.consecutive_failures(),
            std::chrono::duration_cast<std::chrono::milliseconds>(s.config.breaker.cool_down)
                .count());
    else if (after == BreakerState::Closed)
        log::info("hook.circuit_closed", "url={}", log::q(s.config.url));
}

// Counts a finished batch down and wakes the call when it was the last,
// also when the batch ends by an exception.
struct BatchDone {
    std::shared_ptr<Gather> g;
    ~BatchDone() {
        if (--g->remaining == 0)
            g->wake.cancel();
    }
};

awaitable<void> run_batch(std::shared_ptr<State> s, std::shared_ptr<const HookRequest> request,
                          std::size_t first, std::size_t count, std::shared_ptr<Gather> g) {
    const BatchDone done{g};
    const auto how = s->breaker.admit(s->clock());
    if (how == Admission::Denied) {
        ++s->stats.denied;
        for (std::size_t i = 0; i < count; ++i)
            g->decisions[first + i] = failed(s->config, "circuit open");
        co_return;
    }
    auto op = post(s, encode_hook_request(*request, first, count));
    const auto x = co_await std::move(op);
    auto result = interpret(x, *request, first, count);
    const auto before = s->breaker.state();
    s->breaker.record(how, result.index() == 0, s->clock());
    note_breaker(*s, before);
    if (auto* answers = std::get_if<std::vector<HookAnswer>>(&result)) {
        for (std::size_t i = 0; i < count; ++i)
            g->decisions[first + i] = {HookAction::Apply, std::move((*answers)[i]), {}};
        co_return;
    }
    const auto& why = std::get<std::string>(result);
    ++s->stats.failures;
    if (why == "timeout")
        ++s->stats.timeouts;
    log::warning("hook.failed", "url={} message={} recipients={} error={} on_error={}",
                 log::q(s->config.url), log::q(request->message_id), count, log::q(why),
                 hook_error_policy_name(s->config.on_error));
    for (std::size_t i = 0; i < count; ++i)
        g->decisions[first + i] = failed(s->config, why);
}

awaitable<std::vector<HookDecision>> run_call(std::shared_ptr<State> s,
                                              std::shared_ptr<const HookRequest> request) {
    const std::size_t n = request->recipients.size();
    const std::size_t batch = std::max<std::uint32_t>(1, s->config.batch);
    const std::size_t batches = (n + batch - 1) / batch;
    auto g = std::make_shared<Gather>(s->executor, n, batches);
    if (batches == 1) {
        auto op = run_batch(s, request, 0, n, g);
        co_await std::move(op);
    } else {
        for (std::size_t first = 0; first < n; first += batch) {
            auto task = run_batch(s, request, first, std::min(batch, n - first), g);
            core::spawn(s->executor, std::move(task), "hook.batch");
        }
    }
    // Single-threaded: a batch can only finish while this waits, so the
    // counter is never decremented unseen.
    while (g->remaining > 0) {
        auto [ec] = co_await g->wake.async_wait(kTuple);
        (void)ec;
    }
    co_return std::move(g->decisions);
}

std::optional<HookTarget> parse_unix(std::string_view path, std::string& error) {
    if (path.empty() || path.front() != '/') {
        error = "a unix socket path must be absolute (unix:/run/ember/hook.sock)";
        return std::nullopt;
    }
    HookTarget t;
    t.unix_socket = true;
    t.socket_path = std::string(path);
    t.target = "/";
    t.host_header = "localhost";
    return t;
}

} // namespace

std::optional<HookTarget> parse_hook_url(std::string_view url, std::string& error) {
    if (url.starts_with("unix:"))
        return parse_unix(url.substr(5), error);
    const auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) {
        error = fmt::format("not an absolute URL: {}", parsed.error().message());
        return std::nullopt;
    }
    const auto& u = *parsed;
    if (u.scheme_id() == boost::urls::scheme::https) {
        error = "https is not supported: run the hook on this host or a private network, "
                "or use unix:/path";
        return std::nullopt;
    }
    if (u.scheme_id() != boost::urls::scheme::http) {
        error = "the scheme must be http (or unix:/path)";
        return std::nullopt;
    }
    if (u.has_userinfo()) {
        error = "user information in the URL is not allowed";
        return std::nullopt;
    }
    HookTarget t;
    t.host = core::ascii_lower(u.host_address());
    if (t.host.empty()) {
        error = "the URL has no host";
        return std::nullopt;
    }
    t.port = u.has_port() && !u.port().empty() ? std::string(u.port()) : "80";
    if (u.port_number() == 0 && t.port != "80") {
        error = "the port must be 1-65535";
        return std::nullopt;
    }
    t.host_header = core::ascii_lower(u.encoded_host());
    if (t.port != "80")
        t.host_header += ":" + t.port;
    t.target = std::string(u.encoded_target());
    if (t.target.empty() || t.target.front() != '/')
        t.target.insert(0, "/");
    return t;
}

std::string_view hook_error_policy_name(HookErrorPolicy policy) {
    return policy == HookErrorPolicy::Defer ? "defer" : "send-default";
}

std::optional<HookErrorPolicy> parse_hook_error_policy(std::string_view name) {
    const auto lower = core::ascii_lower(name);
    if (lower == "send-default")
        return HookErrorPolicy::SendDefault;
    if (lower == "defer")
        return HookErrorPolicy::Defer;
    return std::nullopt;
}

std::unique_ptr<HookClient> HookClient::create(asio::any_io_executor executor, HookConfig config,
                                               std::string& error, Clock clock) {
    auto target = parse_hook_url(config.url, error);
    if (!target)
        return nullptr;
    if (!clock)
        clock = [] {
            return std::chrono::steady_clock::now();
        };
    auto state = std::make_shared<State>(std::move(executor), std::move(config), std::move(*target),
                                         std::move(clock));
    return std::unique_ptr<HookClient>(new HookClient(std::move(state)));
}

HookClient::HookClient(std::shared_ptr<State> state) : state_(std::move(state)) {}

HookClient::~HookClient() {
    state_->closed = true;
    for (auto& conn : state_->idle)
        conn->close();
    state_->idle.clear();
}

awaitable<std::vector<HookDecision>> HookClient::call(std::shared_ptr<const HookRequest> request) {
    return run_call(state_, std::move(request));
}

BreakerState HookClient::breaker_state() const {
    return state_->breaker.state();
}

const HookStats& HookClient::stats() const {
    return state_->stats;
}

const HookConfig& HookClient::config() const {
    return state_->config;
}

std::size_t HookClient::idle_connections() const {
    return state_->idle.size();
}

} // namespace ember::personalize
