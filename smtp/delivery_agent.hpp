#pragma once
// The delivery agent: core::Deliverer over SMTP. For one job (one
// message's recipients at one destination domain) it
//   1. picks the next hop: a configured route ([delivery] routes, exact
//      domain, ".parent", then "*"; no MX lookup, like Postfix's [host]) or
//      the domain's MX hosts (dns::find_mail_hosts: ordered, implicit MX,
//      null MX, NXDOMAIN); a DNS answer that ends delivery gives every
//      recipient the same local outcome (smtp/outcome.hpp);
//   2. reuses an idle connection to the same destination when one is
//      pooled (RSET first, to check it is alive), else tries the addresses
//      in order, up to max_mx_addresses addresses and max_mx_sessions
//      sessions that completed their handshake (Postfix's smtp_mx_*_limit);
//      a failed connect, a greeting or EHLO refusal, a TLS failure, or a
//      site-level failure before the server accepted MAIL FROM moves on to
//      the next address; once MAIL FROM was accepted the outcomes are that
//      host's answer. With opportunistic TLS a failed handshake is retried
//      once in plaintext on the same address (Postfix does the same);
//   3. keeps the connection for the next job to that destination when it
//      is still usable and under the job's max_messages_per_connection
//      (DeliveryJob's, set from the destination's provider; 0: the agent's
//      own), otherwise QUITs. An idle connection that already carried the
//      limit of the job that would reuse it is QUIT instead; the more
//      specific limit wins, as PowerMTA's per-domain directives do.
// A reused connection sends RSET before the next transaction, pipelined
// with it when the server offers PIPELINING; a failed RSET drops the
// connection and the job moves on to another one, nothing decided.
// Shutdown: begin_shutdown() stops opening, pooling and reusing
// connections; abort_sessions() ends the sessions in progress. Recipients
// that were not settled get smtp::cancelled() (Throttled: still queued, no
// retry spent, due again as soon as delivery runs).
// When every address failed, each recipient gets the last failure.
// It logs one delivery.result line per recipient in Postfix's shape and
// feeds ClientMetrics. It never retries later: the scheduler does.
//
// Runs on one executor (the daemon's single-threaded io_context); jobs run
// concurrently as coroutines on it. The resolver, metrics and the agent
// itself must outlive every deliver() coroutine. Call close_idle() on
// shutdown so pooled connections do not hold the io_context open.

#include "core/delivery.hpp"
#include "smtp/client_config.hpp"
#include "smtp/client_metrics.hpp"
#include "smtp/client_transport.hpp"
#include "smtp/connection_pool.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace ember::dns {
class Resolver;
}

namespace ember::smtp {

class DeliveryAgent final : public core::Deliverer {
public:
    // tls: make_client_tls_context(); nullptr disables STARTTLS (destinations
    // whose policy is "required" then defer with 4.7.4). connector: nullptr
    // for real TCP; tests pass in-memory ones.
    DeliveryAgent(boost::asio::any_io_executor executor, ClientConfig config,
                  dns::Resolver& resolver, std::shared_ptr<boost::asio::ssl::context> tls,
                  ClientMetrics& metrics, std::unique_ptr<Connector> connector = nullptr);
    ~DeliveryAgent() override;
    DeliveryAgent(const DeliveryAgent&) = delete;
    DeliveryAgent& operator=(const DeliveryAgent&) = delete;

    [[nodiscard]] boost::asio::awaitable<std::vector<core::Outcome>>
    deliver(core::DeliveryJob job) override;

    // Closes pooled connections now, and stops pooling new ones.
    void close_idle();
    // No new connection, no reuse, no pooling from now on; closes idle ones.
    void begin_shutdown();
    // Aborts the sessions in progress (all, or those not in DATA: see
    // ClientSessions::abort); implies begin_shutdown(). DNS lookups and
    // TCP connects in progress end within their own timeouts.
    void abort_sessions(bool in_data_too);
    // Sessions that exist, idle pooled ones included.
    [[nodiscard]] std::size_t sessions() const { return sessions_.size(); }

    [[nodiscard]] const ConnectionPool& pool() const { return pool_; }

    // One address to try, in order.
    struct Target {
        std::string host; // MX host name (or route host) for SNI, verification and logs
        core::IpAddress ip;
        std::uint16_t port = 25;
    };
    // Where a job goes.
    struct NextHop {
        std::string key; // connection reuse and per-destination limits
        TlsPolicy tls = TlsPolicy::Opportunistic;
        std::vector<Target> targets;
        std::optional<core::Outcome> failure; // no target: why
    };

private:
    struct Attempt; // what one try at one target produced

    boost::asio::awaitable<NextHop> next_hop(std::string domain);
    boost::asio::awaitable<NextHop> route_hop(std::string domain, core::Endpoint route);
    boost::asio::awaitable<NextHop> mx_hop(std::string domain);
    // Where a job's connection goes back: the pool key and the job's limit
    // of messages per connection (already resolved: never 0).
    struct Reuse {
        std::string key;
        std::uint32_t max_messages = 1;
    };

    boost::asio::awaitable<std::optional<TransactionResult>>
    reuse(Reuse reuse, PooledConnection connection, Transaction transaction);
    boost::asio::awaitable<Attempt> try_target(Reuse reuse, TlsPolicy tls, Target target,
                                               Transaction transaction, bool plaintext,
                                               Lease lease);
    boost::asio::awaitable<Attempt> converse(Reuse reuse, TlsPolicy tls, bool plaintext,
                                             PooledConnection connection, Transaction transaction);
    boost::asio::awaitable<std::vector<core::Outcome>>
    deliver_via(NextHop hop, std::uint32_t max_messages, Transaction transaction);
    boost::asio::awaitable<void> finish(Reuse reuse, PooledConnection connection);
    [[nodiscard]] SessionSettings session_settings(const Target& target, TlsPolicy tls);
    void report(const core::DeliveryJob& job, const std::vector<core::Outcome>& outcomes,
                double seconds);

    boost::asio::any_io_executor executor_;
    ClientConfig config_;
    dns::Resolver& resolver_;
    std::shared_ptr<boost::asio::ssl::context> tls_;
    ClientMetrics& metrics_;
    std::unique_ptr<Connector> connector_;
    ClientSessions sessions_; // before pool_: pooled sessions leave it when destroyed
    ConnectionPool pool_;
    std::mt19937_64 rng_;
    bool pooling_ = true;
    bool stopping_ = false;
};

// "[smarthost.example]:587" style text of a route, the reuse key's base.
[[nodiscard]] std::string route_key(const core::Endpoint& route);

} // namespace ember::smtp
