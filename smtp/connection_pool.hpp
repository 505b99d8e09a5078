#pragma once
// Outbound connection limits and reuse for the delivery agent.
//
// - AsyncSlots: a counting semaphore for coroutines. Waiters queue FIFO on
//   a steady_timer each (expiring never, moved to the past to wake), so
//   waiting costs no CPU; release() hands the slot straight to the oldest
//   waiter; nudge() wakes the oldest without a slot, to look again.
// - ConnectionPool: one slot per open connection, under a global limit
//   (max_connections) and a per-destination one (max_connections_per_destination).
//   A destination key names where connections go and how ("example.com",
//   or "[smarthost]:587" for a route, plus the TLS policy); idle sessions
//   are kept per key for idle_timeout and handed to the next job for that
//   key, most recently used first. An idle connection counts against both
//   limits, so a job waiting for a destination's last slot is woken when a
//   connection to that destination goes idle and takes it over; when only
//   the global limit stands in the way, the oldest idle connection of any
//   destination is closed to make room.
//   Idle connections past their time are closed without QUIT, as Postfix's
//   connection cache does (the server sees an ordinary close).
//
// Not thread-safe: everything runs on the agent's executor (the daemon's
// single-threaded io_context). A waiter whose coroutine is destroyed while
// queued (io_context teardown) keeps its slot; this only happens at exit.

#include "smtp/client_session.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace ember::smtp {

class AsyncSlots {
public:
    AsyncSlots(boost::asio::any_io_executor executor, std::size_t limit);
    AsyncSlots(const AsyncSlots&) = delete;
    AsyncSlots& operator=(const AsyncSlots&) = delete;

    [[nodiscard]] bool try_acquire();
    // True: returns holding one slot. False: nudged, holding nothing (look
    // for the thing you were waiting for, then call again with front set
    // to keep your place in the queue).
    [[nodiscard]] boost::asio::awaitable<bool> acquire(bool front = false);
    void release();
    void nudge();

    [[nodiscard]] std::size_t in_use() const { return in_use_; }
    [[nodiscard]] std::size_t waiting() const { return waiters_.size(); }
    [[nodiscard]] bool idle() const { return in_use_ == 0 && waiters_.empty(); }

private:
    struct Waiter {
        explicit Waiter(boost::asio::any_io_executor executor) : timer(std::move(executor)) {}
        boost::asio::steady_timer timer;
        bool granted = false;
        bool nudged = false;
    };
    void wake(std::shared_ptr<Waiter> waiter);

    boost::asio::any_io_executor executor_;
    std::size_t limit_;
    std::size_t in_use_ = 0;
    std::deque<std::shared_ptr<Waiter>> waiters_;
};

// Holds one global and one per-destination slot; releases both when
// destroyed. Move-only.
class Lease {
public:
    Lease() = default;
    Lease(std::shared_ptr<AsyncSlots> global, std::shared_ptr<AsyncSlots> destination);
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    void release();

private:
    std::shared_ptr<AsyncSlots> global_;
    std::shared_ptr<AsyncSlots> destination_;
};

struct PooledConnection {
    std::unique_ptr<ClientSession> session;
    Lease lease;
    std::shared_ptr<void> token; // released with the connection (the agent's gauge)
};

// What checkout() found: an idle connection to reuse, or room (a lease)
// to open a new one.
struct Checkout {
    std::optional<PooledConnection> reused;
    Lease lease; // empty when reused is set
};

struct PoolLimits {
    std::uint32_t max_connections = 500;
    std::uint32_t max_connections_per_destination = 20;
    core::Duration idle_timeout = std::chrono::seconds(5);
};

class ConnectionPool {
public:
    ConnectionPool(boost::asio::any_io_executor executor, PoolLimits limits);
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;

    // An idle connection for key when there is one, else waits until one
    // more connection to key fits under both limits, or one goes idle.
    [[nodiscard]] boost::asio::awaitable<Checkout> checkout(std::string key);
    // The most recently idled connection for key, if any.
    [[nodiscard]] std::optional<PooledConnection> take(const std::string& key);
    // Whether a connection to key is worth keeping idle: not when other
    // destinations wait for a global slot and nobody waits for this one.
    [[nodiscard]] bool worth_keeping(const std::string& key);
    // Keeps a connection for reuse until idle_timeout passes, and wakes a
    // job waiting for this destination to take it.
    void give_back(const std::string& key, PooledConnection connection);
    // Closes every idle connection (shutdown, reload).
    void close_idle();

    [[nodiscard]] std::size_t idle_count() const;
    [[nodiscard]] std::size_t in_use() const;

private:
    struct Idle {
        std::uint64_t id = 0;
        PooledConnection connection;
        std::unique_ptr<boost::asio::steady_timer> timer;
    };
    struct State {
        std::map<std::string, std::list<Idle>> idle; // per key, oldest first
        std::uint64_t next_id = 1;
    };

    std::shared_ptr<AsyncSlots> slots_for(const std::string& key);
    bool evict_oldest_idle();
    void expire(const std::string& key, std::uint64_t id);

    boost::asio::any_io_executor executor_;
    PoolLimits limits_;
    std::shared_ptr<AsyncSlots> global_;
    std::map<std::string, std::shared_ptr<AsyncSlots>> per_destination_;
    std::shared_ptr<State> state_;
};

} // namespace ember::smtp
