#pragma once
// The external hook client: asks the sender's own service (a rules engine,
// a model) what to do with each recipient of a message, over HTTP/1.1 POST
// with JSON (hook_protocol.hpp has the contract; man page ember-hook(7)).
//
//   [personalize] hook = "http://127.0.0.1:9000/hook"   (TCP)
//                 hook = "unix:/run/ember/hook.sock"     (a unix socket; target "/")
// https is not supported: the hook is expected on the same host or a
// private network (TLS to it would cost more than the 200 ms budget buys).
//
// call() splits the recipients into batches of `batch`, sends them
// concurrently, at most `concurrency` requests in flight over all calls
// (more wait for a slot), and gives one decision per recipient, in order.
// Connections are kept alive and reused (a pool of at most `concurrency`
// idle connections); a reused connection the server closed meanwhile is
// retried once on a fresh one when nothing of the answer was read.
// TCP_NODELAY is set: a small request must not wait for a delayed ACK.
//
// Each request has one deadline, `timeout` from when it got its slot, for
// connecting, writing and reading the whole answer. A timeout, a
// connection error, a status other than 200 or 204, or a body that is not
// the contract's JSON fails the batch: its recipients get on_error's
// decision (SendDefault: send without the hook's changes; Defer: try the
// recipients again later), the failure counts toward the circuit breaker
// (circuit_breaker.hpp), and while the circuit is open batches are not sent
// at all and get on_error's decision at once.
//
// Threads: create() and every call run on one single-threaded executor
// (emberd's io_context runs on one thread); nothing here is thread-safe.
// The client may be destroyed while calls run: they keep its state alive
// and finish by their deadline.

#include "core/units.hpp"
#include "personalize/circuit_breaker.hpp"
#include "personalize/hook_protocol.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::personalize {

struct HookTarget {
    bool unix_socket = false;
    std::string socket_path; // unix
    std::string host;        // TCP: a name or an IP literal, without brackets
    std::string port;        // TCP: "80" unless given
    std::string target;      // the request target: "/hook?x=1" ("/" for unix)
    std::string host_header; // "127.0.0.1:9000" ("localhost" for unix)
};

// "http://host[:port]/path" or "unix:/absolute/path"; nullopt and `error`
// otherwise (https, user information, a relative socket path).
[[nodiscard]] std::optional<HookTarget> parse_hook_url(std::string_view url, std::string& error);

enum class HookErrorPolicy : std::uint8_t { SendDefault, Defer };
// "send-default", "defer".
[[nodiscard]] std::string_view hook_error_policy_name(HookErrorPolicy policy);
[[nodiscard]] std::optional<HookErrorPolicy> parse_hook_error_policy(std::string_view name);

struct HookConfig {
    std::string url; // "" = no hook
    core::Duration timeout = std::chrono::milliseconds(200);
    std::uint32_t batch = 50;      // recipients per request
    std::uint32_t concurrency = 8; // requests in flight, and idle connections kept
    HookErrorPolicy on_error = HookErrorPolicy::SendDefault;
    BreakerConfig breaker; // 5 consecutive failures open it for 30 s
    core::ByteSize max_response{std::uint64_t{1} << 20};
};

enum class HookAction : std::uint8_t {
    Apply,       // the hook answered: apply `answer` (which may say skip)
    SendDefault, // the hook failed; send without its changes
    Defer,       // the hook failed; try this recipient again later
};

struct HookDecision {
    HookAction action = HookAction::SendDefault;
    HookAnswer answer; // when Apply
    std::string error; // when not Apply: "timeout", "status 500", "circuit open", ...
};

struct HookStats {
    std::uint64_t requests = 0;    // HTTP requests written (a stale-connection retry counts)
    std::uint64_t failures = 0;    // batches that failed
    std::uint64_t timeouts = 0;    // of those, by the deadline
    std::uint64_t denied = 0;      // batches not sent: the circuit was open
    std::uint64_t connections = 0; // connections opened
};

class HookClient {
public:
    using Clock = std::function<CircuitBreaker::TimePoint()>;

    // nullptr and `error` when the URL is unusable. `clock` (steady time,
    // for the breaker) defaults to std::chrono::steady_clock::now.
    [[nodiscard]] static std::unique_ptr<HookClient> create(boost::asio::any_io_executor executor,
                                                            HookConfig config, std::string& error,
                                                            Clock clock = {});
    ~HookClient(); // closes idle connections
    HookClient(const HookClient&) = delete;
    HookClient& operator=(const HookClient&) = delete;

    // One decision per recipient of `request`, in order. Never throws for
    // I/O; never takes longer than the slot wait plus one deadline per batch.
    [[nodiscard]] boost::asio::awaitable<std::vector<HookDecision>>
    call(std::shared_ptr<const HookRequest> request);

    [[nodiscard]] BreakerState breaker_state() const;
    [[nodiscard]] const HookStats& stats() const;
    [[nodiscard]] const HookConfig& config() const;
    [[nodiscard]] std::size_t idle_connections() const;

    struct State; // shared with running calls

private:
    explicit HookClient(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

} // namespace ember::personalize
