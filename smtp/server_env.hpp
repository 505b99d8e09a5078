#pragma once
// What an SMTP server session needs from the rest of the daemon, as small
// interfaces the daemon implements: where accepted mail goes (MessageSink,
// the queue in production), who may AUTH (Authenticator, the users file and
// the per-IP failure limiter), the settings snapshot, connection accounting
// and the registry that lets SIGTERM reach every open session.
// smtp/ knows nothing about storage or warm-up; it only sees these.
// Everything here lives on the single I/O thread unless stated otherwise.

#include "core/envelope.hpp"
#include "core/net.hpp"
#include "smtp/server_config.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

namespace boost::asio::ssl {
class context;
}

namespace ember::smtp {

struct ServerMetrics;

// Facts about the session that submitted a message.
struct SessionInfo {
    core::IpAddress client_ip;
    std::string helo;
    std::string auth_user; // empty when not authenticated
    std::string tls;       // "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
    std::string listener;  // "127.0.0.1:2525"
    ListenerMode mode = ListenerMode::Submission;
};

struct AcceptedMessage {
    std::string queue_id;
    core::Envelope envelope;
    SessionInfo info;
    std::string content; // the message as it will be delivered (Received: prepended)
};

enum class SinkStatus { Ok, StorageFull, LocalError, ShuttingDown };

// A submitted message as the content policy sees it, after the header
// checks and before the commit (DMARC alignment gate, later suppression).
struct ContentCheck {
    SessionInfo info;
    ListenerConfig listener;
    std::string queue_id;
    core::Envelope envelope;
    std::vector<std::string> from_domains; // one per From: mailbox, lowercased
    // The message as submitted (without the Received: field ember adds),
    // for checks of the content itself (templates). Valid only until
    // check() completes: copy what must outlive it.
    std::string_view content;
};

struct PolicyVerdict {
    bool accept = true;
    int code = 0; // the refusal when !accept: a 4xx or 5xx
    std::string enhanced;
    std::string text;
};

// One RCPT TO as the recipient policy sees it, after the syntax checks.
struct RecipientCheck {
    core::IpAddress client_ip;
    std::string auth_user;
    ListenerMode mode = ListenerMode::Submission;
    bool relay_allowed = false; // AUTH or a trusted network
    std::string mail_from;      // "" for the null sender
    std::string recipient;
};

// What the daemon says about one recipient.
//   Accept : take it (still subject to relay rules on a submission listener)
//   Local  : one of our own addresses (VERP bounce, FBL, unsubscribe): taken
//            from anyone on any listener, since it is not relaying; the
//            MessageSink hands such recipients to feedback processing
//   Refuse : the reply in `verdict` (suppressed, forged token, unknown)
struct RecipientVerdict {
    enum class Kind { Accept, Local, Refuse };
    Kind kind = Kind::Accept;
    PolicyVerdict reply; // when Refuse
};

// Synchronous on purpose: it runs once per RCPT and must only do cheap
// work (an LMDB read, an HMAC), never DNS or network.
class RecipientPolicy {
public:
    virtual ~RecipientPolicy() = default;
    [[nodiscard]] virtual RecipientVerdict check_recipient(const RecipientCheck& check) = 0;
};

class ContentPolicy {
public:
    virtual ~ContentPolicy() = default;
    [[nodiscard]] virtual boost::asio::awaitable<PolicyVerdict> check(ContentCheck check) = 0;
};

class MessageSink {
public:
    virtual ~MessageSink() = default;
    // A fresh queue id for a new transaction (it appears in Received:).
    [[nodiscard]] virtual std::string new_queue_id() = 0;
    // Completes only once the message is durable (or failed to become so).
    [[nodiscard]] virtual boost::asio::awaitable<SinkStatus> commit(AcceptedMessage message) = 0;
};

class Authenticator {
public:
    virtual ~Authenticator() = default;
    // False when no users are configured: AUTH is then not offered.
    [[nodiscard]] virtual bool has_users() const = 0;
    // May take tens of milliseconds of CPU (password hashing); implementations
    // run it off the I/O thread.
    [[nodiscard]] virtual boost::asio::awaitable<bool> verify(std::string user,
                                                              std::string password) = 0;
    // Per client IP failure accounting (454 4.7.0 once over the limit).
    [[nodiscard]] virtual bool blocked(const core::IpAddress& ip) = 0;
    virtual void record_failure(const core::IpAddress& ip) = 0;
};

// An immutable snapshot of what sessions read from the configuration.
// Reload builds a new one; a session keeps the snapshot it started with.
struct ServerSettings {
    std::string hostname;
    Limits limits;
    std::vector<core::Cidr> trusted_networks;
    std::shared_ptr<boost::asio::ssl::context> tls; // null when no certificate is configured
};

// Connections in total and per client IP, for the 421 4.7.0 limits.
class ConnectionTracker {
public:
    enum class Verdict { Ok, TooManyTotal, TooManyFromIp };
    [[nodiscard]] Verdict try_acquire(const core::IpAddress& ip, const Limits& limits);
    void release(const core::IpAddress& ip);
    [[nodiscard]] std::uint32_t total() const { return total_; }
    [[nodiscard]] std::uint32_t from(const core::IpAddress& ip) const;

private:
    std::uint32_t total_ = 0;
    std::map<core::IpAddress, std::uint32_t> per_ip_;
};

// Lets shutdown reach open sessions: ask idle ones to leave (421) now, and
// close everything once the grace period is over.
class Stoppable {
public:
    virtual ~Stoppable() = default;
    virtual void request_stop() = 0; // finish the current transaction, then 421
    virtual void force_close() = 0;  // close the connection now
};

class SessionRegistry {
public:
    void add(Stoppable* s) { live_.insert(s); }
    void remove(Stoppable* s) { live_.erase(s); }
    [[nodiscard]] std::size_t size() const { return live_.size(); }
    [[nodiscard]] bool stopping() const { return stopping_; }
    void request_stop_all();
    void force_close_all();

private:
    std::unordered_set<Stoppable*> live_;
    bool stopping_ = false;
};

// Shared by every listener and session of one daemon.
struct ServerContext {
    std::shared_ptr<const ServerSettings> settings;
    MessageSink& sink;
    Authenticator& auth;
    ServerMetrics& metrics;
    ConnectionTracker connections;
    SessionRegistry sessions;
    ContentPolicy* policy = nullptr;       // checks submissions before the commit; none when null
    RecipientPolicy* recipients = nullptr; // checks each RCPT TO; none when null
};

} // namespace ember::smtp
