#include "daemon/admin_server.hpp"

#include "core/async.hpp"
#include "core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <map>
#include <optional>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace ember::daemon {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
using asio::awaitable;
using Socket = asio::local::stream_protocol::socket;
using Acceptor = asio::local::stream_protocol::acceptor;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr mode_t kSocketMode = 0660;

awaitable<AdminResult> run_sync(SyncAdminHandler handler, json::object args) {
    co_return handler(args);
}

} // namespace

AdminResult AdminResult::failure(std::string message) {
    AdminResult reply;
    reply.ok_ = false;
    reply.error_ = std::move(message);
    return reply;
}

json::object AdminResult::to_json() const {
    if (ok_)
        return json::object{{"ok", true}, {"result", result_}};
    return json::object{{"ok", false}, {"error", error_}};
}

AdminRequest parse_admin_request(std::string_view line) {
    AdminRequest request;
    boost::system::error_code ec;
    json::value document = json::parse(line, ec);
    if (ec) {
        request.error = "malformed JSON request: " + ec.message();
        return request;
    }
    const auto* object = document.if_object();
    const json::value* verb = object ? object->if_contains("verb") : nullptr;
    if (!verb || !verb->is_string()) {
        request.error = R"(the request must be an object with a string "verb")";
        return request;
    }
    request.verb = std::string(verb->get_string());
    if (const auto* args = object->if_contains("args"); args && !args->is_null()) {
        if (!args->is_object()) {
            request.error = R"("args" must be an object)";
            return request;
        }
        request.args = args->get_object();
    }
    return request;
}

struct AdminServer::State {
    State(asio::any_io_executor ex, std::string p, AdminLimits l)
        : executor(std::move(ex)), path(std::move(p)), limits(l), slot_freed(executor) {}

    asio::any_io_executor executor;
    std::string path;
    AdminLimits limits;
    std::map<std::string, AdminHandler, std::less<>> verbs;
    std::optional<Acceptor> acceptor;
    asio::steady_timer slot_freed; // a condition variable for the paused acceptor
    bool started = false;
    bool stopping = false;
    dev_t device = 0; // identity of the socket file start() created
    ino_t inode = 0;
    std::size_t sessions = 0;
    std::uint64_t next_session = 0;
    std::map<std::uint64_t, Socket*> reading; // sessions waiting for their request
};

namespace {

using State = AdminServer::State;

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

// What a finished read means: the request line, an error to answer with, or
// (both empty) a client that left without asking anything.
struct ReadOutcome {
    std::optional<std::string> line;
    std::optional<std::string> error;
};

ReadOutcome interpret_read(const State& state, boost::system::error_code ec, std::size_t n,
                           std::string buffer) {
    if (!ec) {
        buffer.resize(n - 1); // drop '\n'
        if (!buffer.empty() && buffer.back() == '\r')
            buffer.pop_back();
        return {std::move(buffer), std::nullopt};
    }
    if (ec == asio::error::not_found)
        return {std::nullopt,
                fmt::format("request too large (limit {} bytes)", state.limits.max_request)};
    if (ec == asio::error::eof && !buffer.empty())
        return {std::move(buffer), std::nullopt};
    if (ec == asio::error::operation_aborted && state.stopping)
        return {std::nullopt, std::string("the daemon is stopping")};
    return {};
}

awaitable<AdminResult> dispatch(std::shared_ptr<State> state, std::string line) {
    auto request = parse_admin_request(line);
    if (!request.error.empty())
        co_return AdminResult::failure(std::move(request.error));
    auto verb = state->verbs.find(request.verb);
    if (verb == state->verbs.end())
        co_return AdminResult::failure(fmt::format("unknown verb \"{}\"", request.verb));
    AdminHandler handler = verb->second; // a copy: registrations may change meanwhile
    try {
        co_return co_await handler(std::move(request.args));
    } catch (const std::exception& e) {
        log::error("admin.handler_failed", "verb={} error={}", log::q(request.verb),
                   log::q(e.what()));
    }
    co_return AdminResult::failure("internal error, see the daemon's log");
}

std::string request_verb(std::string_view line) {
    auto request = parse_admin_request(line);
    return request.error.empty() ? request.verb : std::string("-");
}

// Cancels a socket's pending operation when its deadline passes, leaving
// the socket open so the session can still answer "timed out". The timer's
// handler holds only weak references: it may run after the session is gone.
class Watchdog {
public:
    Watchdog(const asio::any_io_executor& executor, const std::shared_ptr<Socket>& socket)
        : timer_(executor), socket_(socket) {}
    ~Watchdog() { timer_.cancel(); }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    void arm(core::Duration timeout) {
        *fired_ = false;
        timer_.expires_after(timeout);
        timer_.async_wait([socket = socket_, fired = std::weak_ptr<bool>(fired_)](auto ec) {
            auto flag = fired.lock();
            auto target = socket.lock();
            if (ec || !flag || !target)
                return;
            *flag = true;
            boost::system::error_code ignored;
            target->cancel(ignored);
        });
    }
    void disarm() { timer_.cancel(); }
    [[nodiscard]] bool fired() const { return *fired_; }

private:
    asio::steady_timer timer_;
    std::weak_ptr<Socket> socket_;
    std::shared_ptr<bool> fired_ = std::make_shared<bool>(false);
};

awaitable<void> session(std::shared_ptr<State> state, std::shared_ptr<Socket> socket) {
    SessionSlot slot(state);
    Watchdog watchdog(state->executor, socket);
    std::string buffer;
    watchdog.arm(state->limits.request_timeout);
    state->reading[slot.id] = socket.get();
    auto [ec, n] = co_await asio::async_read_until(
        *socket, asio::dynamic_buffer(buffer, state->limits.max_request), '\n', kTuple);
    state->reading.erase(slot.id);
    watchdog.disarm();

    ReadOutcome outcome;
    if (watchdog.fired())
        outcome.error = "timed out waiting for the request";
    else
        outcome = interpret_read(*state, ec, n, std::move(buffer));
    if (!outcome.line && !outcome.error)
        co_return; // the client left
    // Not a conditional expression: GCC 12 mishandles temporaries around a
    // co_await inside ?: (a use-after-free under ASan).
    AdminResult reply = AdminResult::failure(outcome.error.value_or(""));
    if (!outcome.error)
        reply = co_await dispatch(state, *outcome.line);
    const std::string verb = outcome.line ? request_verb(*outcome.line) : std::string("-");
    // Debug for success: a monitoring script polling `status` must not flood
    // the log; verbs that change something log their own event.
    if (reply.ok())
        log::debug("admin.request", "verb={} ok=true", log::q(verb));
    else
        log::info("admin.request", "verb={} ok=false error={}", log::q(verb),
                  log::q(reply.error()));

    const std::string answer = json::serialize(reply.to_json()) + "\n";
    watchdog.arm(state->limits.write_timeout);
    [[maybe_unused]] auto [write_ec, written] =
        co_await asio::async_write(*socket, asio::buffer(answer), kTuple);
    watchdog.disarm();
    boost::system::error_code ignored;
    socket->shutdown(Socket::shutdown_both, ignored);
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
            log::warning("admin.accept_failed", "error={}", log::q(ec.message()));
            backoff.expires_after(kAcceptBackoff);
            [[maybe_unused]] auto [wait_ec] = co_await backoff.async_wait(kTuple);
            continue;
        }
        core::spawn(state->executor, session(state, std::make_shared<Socket>(std::move(socket))),
                    "admin.session");
    }
}

enum class Probe { Live, Stale, Error };

// Is a daemon answering on the socket file? A non-blocking connect never
// waits: it succeeds or says EAGAIN (backlog full: alive) or ECONNREFUSED
// (nobody listens: a stale file).
Probe probe_socket(const std::string& path, std::string& error) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::strerror(errno);
        return Probe::Error;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    const int saved = errno;
    ::close(fd);
    if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS)
        return Probe::Live;
    if (saved == ECONNREFUSED || saved == ENOENT)
        return Probe::Stale;
    error = std::strerror(saved);
    return Probe::Error;
}

// "" when the path is free for bind(): absent, or a stale socket now removed.
std::string clear_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
        return errno == ENOENT
                   ? ""
                   : fmt::format("admin: cannot stat {}: {}", path, std::strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return fmt::format("admin: {} exists and is not a socket; not removing it", path);
    std::string error;
    switch (probe_socket(path, error)) {
    case Probe::Live:
        return fmt::format("admin: another daemon is answering on {}", path);
    case Probe::Error:
        return fmt::format("admin: cannot probe {}: {}", path, error);
    case Probe::Stale:
        break;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return fmt::format("admin: cannot remove stale socket {}: {}", path, std::strerror(errno));
    log::info("admin.stale_socket_removed", "path={}", log::q(path));
    return "";
}

boost::system::error_code open_acceptor(Acceptor& acceptor, const std::string& path) {
    boost::system::error_code ec;
    const asio::local::stream_protocol::endpoint endpoint(path);
    if (acceptor.open(endpoint.protocol(), ec); ec)
        return ec;
    if (acceptor.bind(endpoint, ec); ec)
        return ec;
    acceptor.listen(Acceptor::max_listen_connections, ec);
    return ec;
}

} // namespace

AdminServer::AdminServer(asio::any_io_executor executor, std::string path, AdminLimits limits)
    : state_(std::make_shared<State>(std::move(executor), std::move(path), limits)) {}

AdminServer::~AdminServer() {
    stop();
}

void AdminServer::add_verb(std::string name, AdminHandler handler) {
    state_->verbs[std::move(name)] = std::move(handler);
}

void AdminServer::add_verb(std::string name, SyncAdminHandler handler) {
    add_verb(std::move(name), [handler = std::move(handler)](json::object args) {
        return run_sync(handler, std::move(args));
    });
}

std::vector<std::string> AdminServer::verbs() const {
    std::vector<std::string> names;
    for (const auto& [name, handler] : state_->verbs)
        names.push_back(name);
    return names;
}

const std::string& AdminServer::path() const {
    return state_->path;
}

std::string AdminServer::start() {
    auto& state = *state_;
    if (state.started)
        return fmt::format("admin: {} already started", state.path);
    if (state.path.empty() || state.path.size() >= sizeof(sockaddr_un::sun_path))
        return fmt::format("admin: socket path \"{}\" must be 1 to {} bytes long", state.path,
                           sizeof(sockaddr_un::sun_path) - 1);
    if (auto error = clear_stale_socket(state.path); !error.empty())
        return error;
    Acceptor acceptor(state.executor);
    if (auto ec = open_acceptor(acceptor, state.path); ec)
        return fmt::format("admin: cannot listen on {}: {}", state.path, ec.message());
    struct stat st {};
    if (::chmod(state.path.c_str(), kSocketMode) != 0 || ::stat(state.path.c_str(), &st) != 0) {
        const int saved = errno;
        ::unlink(state.path.c_str());
        return fmt::format("admin: cannot chmod {}: {}", state.path, std::strerror(saved));
    }
    state.device = st.st_dev;
    state.inode = st.st_ino;
    state.acceptor.emplace(std::move(acceptor));
    state.started = true;
    log::info("admin.listening", "path={}", log::q(state.path));
    core::spawn(state.executor, accept_loop(state_), "admin.accept", core::TaskKind::TopLevel);
    return "";
}

void AdminServer::stop() {
    auto& state = *state_;
    if (state.stopping)
        return;
    state.stopping = true;
    boost::system::error_code ec;
    if (state.acceptor)
        state.acceptor->close(ec);
    state.slot_freed.cancel();
    for (const auto& [id, socket] : state.reading)
        socket->cancel(ec);
    // Remove the file only if it is still ours: a second daemon started
    // after a stale-file cleanup may own the path now.
    struct stat st {};
    if (state.started && ::lstat(state.path.c_str(), &st) == 0 && st.st_dev == state.device &&
        st.st_ino == state.inode)
        ::unlink(state.path.c_str());
}

} // namespace ember::daemon
