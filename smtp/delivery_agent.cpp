#include "smtp/delivery_agent.hpp"

#include "core/assert.hpp"
#include "core/log.hpp"
#include "dns/mail_hosts.hpp"
#include "dns/resolver.hpp"
#include "smtp/outcome.hpp"

#include <boost/asio/ssl/context.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using core::Outcome;

std::string_view policy_name(TlsPolicy policy) {
    switch (policy) {
    case TlsPolicy::None:
        return "none";
    case TlsPolicy::Opportunistic:
        return "opportunistic";
    case TlsPolicy::Required:
        return "required";
    }
    return "opportunistic";
}

bool family_allowed(AddressFamily family, const core::IpAddress& ip) {
    return family == AddressFamily::Any || (family == AddressFamily::Ipv4) == ip.is_v4();
}

// The whole transaction failed at site level before the server took MAIL
// FROM (a lost connection, a 421, garbage): another host may do better.
bool site_failure(const TransactionResult& result) {
    return !result.mail_accepted && !result.outcomes.empty() &&
           std::all_of(result.outcomes.begin(), result.outcomes.end(), [](const Outcome& o) {
               return o.kind == core::OutcomeKind::Deferred && o.scope == core::OutcomeScope::Site;
           });
}

} // namespace

std::string route_key(const core::Endpoint& route) {
    return fmt::format("[{}]:{}", route.host, route.port);
}

struct DeliveryAgent::Attempt {
    std::optional<TransactionResult> result; // the host answered the transaction
    std::optional<Outcome> failure;          // it did not: try the next address
    bool established = false;                // the handshake completed (max_mx_sessions)
    bool retry_plaintext = false;            // opportunistic TLS handshake failed
};

DeliveryAgent::DeliveryAgent(asio::any_io_executor executor, ClientConfig config,
                             dns::Resolver& resolver, std::shared_ptr<asio::ssl::context> tls,
                             ClientMetrics& metrics, std::unique_ptr<Connector> connector)
    : executor_(executor), config_(std::move(config)), resolver_(resolver), tls_(std::move(tls)),
      metrics_(metrics),
      connector_(connector ? std::move(connector) : make_tcp_connector(executor)),
      pool_(executor, PoolLimits{config_.max_connections, config_.max_connections_per_destination,
                                 config_.idle_timeout}),
      rng_(std::random_device{}()) {}

DeliveryAgent::~DeliveryAgent() {
    close_idle();
}

void DeliveryAgent::close_idle() {
    pooling_ = false;
    pool_.close_idle();
}

void DeliveryAgent::begin_shutdown() {
    stopping_ = true;
    close_idle();
}

void DeliveryAgent::abort_sessions(bool in_data_too) {
    begin_shutdown();
    log::info("delivery.abort", "sessions={} in_data={}", sessions_.size(), in_data_too);
    sessions_.abort(in_data_too);
    connector_->cancel_all();
}

asio::awaitable<std::vector<Outcome>> DeliveryAgent::deliver(core::DeliveryJob job) {
    const auto start = std::chrono::steady_clock::now();
    const std::size_t n = job.recipients.size();
    if (n == 0)
        co_return std::vector<Outcome>{};
    Transaction transaction{job.envelope, {}, job.content};
    for (const auto& r : job.recipients)
        transaction.recipients.push_back(r.spec);
    NextHop hop = co_await next_hop(job.domain);
    std::vector<Outcome> outcomes;
    if (hop.failure) {
        outcomes.assign(n, *hop.failure);
    } else {
        const std::uint32_t limit = job.max_messages_per_connection != 0
                                        ? job.max_messages_per_connection
                                        : config_.max_messages_per_connection;
        outcomes = co_await deliver_via(std::move(hop), limit, std::move(transaction));
    }
    EMBER_ASSERT(outcomes.size() == n);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    report(job, outcomes, took.count());
    co_return outcomes;
}

asio::awaitable<DeliveryAgent::NextHop> DeliveryAgent::next_hop(std::string domain) {
    const core::Endpoint* route = config_.route_for(domain);
    if (route) {
        NextHop hop = co_await route_hop(std::move(domain), *route);
        co_return hop;
    }
    NextHop hop = co_await mx_hop(std::move(domain));
    co_return hop;
}

// A route names its host directly: no MX lookup (RFC 5321 5.1 does not
// apply to a configured smarthost). A name that does not resolve defers
// rather than bounces: it is our configuration, not the recipient's domain.
asio::awaitable<DeliveryAgent::NextHop> DeliveryAgent::route_hop(std::string domain,
                                                                 core::Endpoint route) {
    NextHop hop;
    hop.tls = config_.tls_policy_for(domain);
    hop.key = fmt::format("{}|{}", route_key(route), policy_name(hop.tls));
    if (const auto ip = core::IpAddress::parse(route.host)) {
        hop.targets.push_back({route.host, *ip, route.port});
        co_return hop;
    }
    std::string v6_name = route.host;
    const dns::AddressAnswer v6 = co_await resolver_.aaaa(std::move(v6_name));
    std::string v4_name = route.host;
    const dns::AddressAnswer v4 = co_await resolver_.a(std::move(v4_name));
    for (const dns::AddressAnswer* answer : {&v6, &v4}) {
        for (const auto& ip : answer->records) {
            if (family_allowed(config_.address_family, ip))
                hop.targets.push_back({route.host, ip, route.port});
        }
    }
    if (hop.targets.empty())
        hop.failure = dns_temporary(fmt::format("route host {} for {} has no usable address "
                                                "(AAAA {}, A {})",
                                                route.host, domain, dns::status_name(v6.status),
                                                dns::status_name(v4.status)));
    co_return hop;
}

asio::awaitable<DeliveryAgent::NextHop> DeliveryAgent::mx_hop(std::string domain) {
    NextHop hop;
    hop.tls = config_.tls_policy_for(domain);
    hop.key = fmt::format("{}|{}", domain, policy_name(hop.tls));
    std::string query = domain;
    const dns::MailHosts hosts = co_await dns::find_mail_hosts(resolver_, std::move(query), rng_);
    if (!hosts.ok()) {
        hop.failure = from_mail_hosts(hosts);
        co_return hop;
    }
    for (const auto& host : hosts.hosts) {
        for (const auto& ip : host.addresses) {
            if (family_allowed(config_.address_family, ip))
                hop.targets.push_back({host.name, ip, config_.port});
        }
    }
    if (hop.targets.empty())
        hop.failure = connect_failed({domain, ""}, "no MX host address of the configured family");
    co_return hop;
}

// Each round checks a connection out of the pool: an idle one to reuse, or
// room for a new one to the next address. A plaintext retry after a failed
// opportunistic handshake takes the place of the next address.
// Shutdown ends a delivery wherever it is: hosts not tried yet are not a
// reason to defer, the recipients are simply still queued.
asio::awaitable<std::vector<Outcome>>
DeliveryAgent::deliver_via(NextHop hop, std::uint32_t max_messages, Transaction transaction) {
    const Outcome stopped = cancelled("ember shut down before the delivery finished");
    const std::size_t n = transaction.recipients.size();
    std::optional<Outcome> last;
    std::optional<Target> plaintext_retry;
    std::size_t next = 0;
    std::uint32_t sessions = 0;
    while (plaintext_retry || (next < hop.targets.size() && next < config_.max_mx_addresses &&
                               sessions < config_.max_mx_sessions)) {
        if (stopping_)
            co_return std::vector<Outcome>(n, stopped);
        Checkout checkout = co_await pool_.checkout(hop.key);
        if (stopping_)
            co_return std::vector<Outcome>(n, stopped);
        if (checkout.reused) {
            if (checkout.reused->session->transactions() >= max_messages) {
                co_await checkout.reused->session->quit(); // carried this job's limit already
                continue;
            }
            Reuse how{hop.key, max_messages}; // a named local, never a temporary (g++ 12)
            auto result = co_await reuse(std::move(how), std::move(*checkout.reused), transaction);
            if (result)
                co_return std::move(result->outcomes);
            continue; // it died while idle: not the destination's failure
        }
        const bool plaintext = plaintext_retry.has_value();
        const Target target = plaintext ? *plaintext_retry : hop.targets[next++];
        plaintext_retry.reset();
        Reuse how{hop.key, max_messages};
        Attempt attempt = co_await try_target(std::move(how), hop.tls, target, transaction,
                                              plaintext, std::move(checkout.lease));
        if (attempt.established)
            ++sessions;
        if (attempt.result)
            co_return std::move(attempt.result->outcomes);
        last = std::move(attempt.failure);
        if (attempt.retry_plaintext) {
            log::info("delivery.tls_fallback", "host={}[{}] reason={}", target.host,
                      target.ip.to_string(), log::q(last ? last->text : ""));
            plaintext_retry = target;
        }
    }
    if (stopping_)
        co_return std::vector<Outcome>(n, stopped);
    if (!last)
        last = connect_failed({hop.key, ""}, "no address to try");
    co_return std::vector<Outcome>(n, *last);
}

// RFC 5321 4.1.1.5: RSET first proves a pooled connection is still alive
// (send_reused). nullopt: it was not, its RSET was refused, or it died
// before MAIL FROM was accepted; nothing was decided and the caller checks
// out another connection.
asio::awaitable<std::optional<TransactionResult>>
DeliveryAgent::reuse(Reuse how, PooledConnection connection, Transaction transaction) {
    TransactionResult result = co_await connection.session->send_reused(std::move(transaction));
    if (result.reset_failed || site_failure(result)) {
        log::debug("delivery.reuse_failed", "host={} reason={}",
                   connection.session->peer().display(),
                   log::q(result.outcomes.empty() ? "" : result.outcomes.front().summary()));
        co_await connection.session->quit(); // sends QUIT only if the connection is still sane
        co_return std::nullopt;
    }
    co_await finish(std::move(how), std::move(connection));
    co_return result;
}

asio::awaitable<DeliveryAgent::Attempt> DeliveryAgent::try_target(Reuse how, TlsPolicy tls,
                                                                  Target target,
                                                                  Transaction transaction,
                                                                  bool plaintext, Lease lease) {
    const PeerName peer{target.host, target.ip.to_string()};
    ConnectRequest request{target.ip,
                           target.port,
                           config_.source_address,
                           config_.timeouts.connect,
                           target.host,
                           tls == TlsPolicy::Required};
    auto [ec, transport] = co_await connector_->connect(std::move(request));
    if (ec) {
        log::info("delivery.connect_failed", "host={} reason={}", peer.display(),
                  log::q(ec.message()));
        Attempt attempt;
        attempt.failure = connect_failed(peer, ec.message());
        co_return attempt;
    }
    if (stopping_) { // shutdown began while connecting: no session to abort
        transport->close();
        Attempt attempt;
        attempt.failure = cancelled("ember shut down before the delivery finished");
        co_return attempt;
    }
    metrics_.connection_opened();
    ClientMetrics* metrics = &metrics_;
    std::shared_ptr<void> gauge(nullptr, [metrics](void*) { metrics->connection_closed(); });
    const TlsPolicy session_tls = plaintext ? TlsPolicy::None : tls;
    PooledConnection connection{std::make_unique<ClientSession>(
                                    std::move(transport), session_settings(target, session_tls)),
                                std::move(lease), std::move(gauge)};
    Attempt attempt = co_await converse(std::move(how), tls, plaintext, std::move(connection),
                                        std::move(transaction));
    co_return attempt;
}

// The handshake and the transaction on a new connection.
asio::awaitable<DeliveryAgent::Attempt> DeliveryAgent::converse(Reuse how, TlsPolicy tls,
                                                                bool plaintext,
                                                                PooledConnection connection,
                                                                Transaction transaction) {
    Attempt attempt;
    ClientSession& session = *connection.session;
    const auto refused = co_await session.open();
    if (refused) {
        log::info("delivery.session_failed", "host={} reason={}", session.peer().display(),
                  log::q(refused->summary()));
        attempt.failure = refused;
        attempt.retry_plaintext =
            !plaintext && tls == TlsPolicy::Opportunistic && session.tls_handshake_failed();
        co_await session.quit();
        co_return attempt;
    }
    attempt.established = true;
    metrics_.session_established(session.tls_active());
    log::debug("delivery.session", "host={} tls={}", session.peer().display(),
               log::q(session.tls_description()));
    TransactionResult result = co_await session.send(std::move(transaction));
    if (site_failure(result)) {
        attempt.failure = result.outcomes.front();
        co_await session.quit();
        co_return attempt;
    }
    attempt.result = std::move(result);
    co_await finish(std::move(how), std::move(connection));
    co_return attempt;
}

// Keep the connection for the next job to this destination, or say QUIT.
asio::awaitable<void> DeliveryAgent::finish(Reuse how, PooledConnection connection) {
    const bool keep = pooling_ && pool_.worth_keeping(how.key) && connection.session->usable() &&
                      connection.session->transactions() < how.max_messages &&
                      config_.idle_timeout.count() > 0;
    if (keep) {
        pool_.give_back(how.key, std::move(connection));
        co_return;
    }
    co_await connection.session->quit();
}

SessionSettings DeliveryAgent::session_settings(const Target& target, TlsPolicy tls) {
    SessionSettings s;
    s.helo_name = config_.helo_name;
    s.timeouts = config_.timeouts;
    s.tls = tls;
    s.tls_context = tls_;
    s.peer = {target.host, target.ip.to_string()};
    s.registry = &sessions_;
    return s;
}

// One line per recipient, the fields Postfix's smtp(8) logs.
void DeliveryAgent::report(const core::DeliveryJob& job, const std::vector<Outcome>& outcomes,
                           double seconds) {
    metrics_.record_job_seconds(seconds);
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const Outcome& o = outcomes[i];
        metrics_.record_outcome(o, job.domain);
        const std::string relay = o.remote_host.empty()
                                      ? std::string("none")
                                      : PeerName{o.remote_host, o.remote_ip}.display();
        log::info("delivery.result", "id={} to={} relay={} delay={:.3f} status={} dsn={} reply={}",
                  job.queue_id, log::q(job.recipients[i].spec.address), relay, seconds,
                  core::kind_name(o.kind), o.enhanced, log::q(o.summary()));
    }
}

} // namespace ember::smtp
