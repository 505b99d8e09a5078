#pragma once
// The admin socket: a unix stream socket that `emberctl` talks to.
//
// Protocol (one exchange per connection): the client sends ONE JSON object on
// one line, `{"verb":"queue.list","args":{...}}\n` ("args" may be omitted),
// the server answers ONE line, `{"ok":true,"result":...}` or
// `{"ok":false,"error":"text"}`, and closes. A request that ends at EOF
// without the newline is accepted too (`printf '...' | socat`).
// Malformed JSON, an unknown verb, a request over AdminLimits::max_request,
// a request not complete within request_timeout, and a handler that throws
// all produce an error answer, never a crash.
//
// Access control is the file mode: the socket is chmod'ed 0660 after bind,
// so the daemon's user and group may use it (Postfix's public/ and
// private/ directories work the same way). start() removes a stale socket
// file left by a crashed daemon, but refuses to start when a live daemon
// still answers on it, and never removes a path that is not a socket.
// stop() removes the socket file if it is still the one start() created.
//
// Verbs are registered by the code that owns the data (queue verbs in
// admin_verbs.hpp, status and reload by the application). Handlers run on
// the I/O thread, one request at a time per connection; a handler's own
// duration is not bounded by the server, so handlers must be quick or
// await asynchronously.
//
// Threads: like HttpServer, everything runs on the single-threaded executor
// given to the constructor; destroy the server before its io_context.

#include "core/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

// A verb's outcome: a JSON result, or an error text for the operator.
// Converts implicitly from JSON, so a handler writes
// `co_return json::object{{"deleted", id}};` (or AdminResult::success(value))
// and `co_return AdminResult::failure("no such message");`.
class AdminResult {
public:
    AdminResult(boost::json::value result) : result_(std::move(result)) {}  // NOLINT: implicit
    AdminResult(boost::json::object result) : result_(std::move(result)) {} // NOLINT: implicit
    AdminResult(boost::json::array result) : result_(std::move(result)) {}  // NOLINT: implicit
    [[nodiscard]] static AdminResult success(boost::json::value result) {
        return {std::move(result)};
    }
    [[nodiscard]] static AdminResult failure(std::string message);

    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const boost::json::value& result() const { return result_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    // The wire form: {"ok":true,"result":...} or {"ok":false,"error":"..."}.
    [[nodiscard]] boost::json::object to_json() const;

private:
    AdminResult() = default;
    boost::json::value result_;
    std::string error_;
    bool ok_ = true;
};

using AdminHandler = std::function<boost::asio::awaitable<AdminResult>(boost::json::object args)>;
using SyncAdminHandler = std::function<AdminResult(const boost::json::object& args)>;

struct AdminLimits {
    std::size_t max_request = 64 * 1024; // bytes of the request line, newline included
    core::Duration request_timeout = std::chrono::seconds(10); // connect to complete request
    core::Duration write_timeout = std::chrono::seconds(10);
    std::size_t max_connections = 32; // then the acceptor pauses
};

// A parsed request line, or the error to answer with.
struct AdminRequest {
    std::string verb;
    boost::json::object args;
    std::string error; // non-empty: the line is not a valid request
};
[[nodiscard]] AdminRequest parse_admin_request(std::string_view line);

class AdminServer {
public:
    AdminServer(boost::asio::any_io_executor executor, std::string path, AdminLimits limits = {});
    ~AdminServer(); // stop()s
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // A later registration under the same name replaces the handler. The
    // second form takes a plain function (the queue verbs are synchronous).
    void add_verb(std::string name, AdminHandler handler);
    void add_verb(std::string name, SyncAdminHandler handler);
    [[nodiscard]] std::vector<std::string> verbs() const; // sorted

    // Binds, chmods 0660 and listens; "" or an error text naming the path.
    [[nodiscard]] std::string start();
    void stop();

    [[nodiscard]] const std::string& path() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

} // namespace ember::daemon
