#pragma once
// One outbound SMTP connection as a coroutine client over a Transport
// (RFC 5321 client side): greeting, EHLO (HELO when EHLO is refused with
// 5xx), STARTTLS by policy, then any number of mail transactions, RSET
// between them, QUIT at the end. Transactions pipeline MAIL, every RCPT and
// DATA in one write when the server offers PIPELINING (RFC 2920) and send
// content dot-stuffed in bounded chunks.
//
// Every phase has its own deadline (ClientTimeouts). Everything the peer
// sends is untrusted: a malformed reply, a dropped connection or a timeout
// turns into a Deferred outcome (smtp/outcome.hpp) and makes the session
// unusable; nothing here asserts on input. A recipient is Delivered only
// after the 2xx reply to the final "." was read.
//
// Every outcome of a session that negotiated TLS carries the protocol
// (core::Outcome::tls, "TLSv1.3"); clear-text sessions leave it "".
//
// abort() (shutdown) cancels the pending I/O and ends the session: the
// recipients it had not settled get smtp::cancelled(), a Throttled
// outcome, so they stay queued and are retried as soon as delivery runs
// again. A ClientSessions lists the live sessions so shutdown can find them.
//
// Does not choose hosts, retry, pool connections or log per recipient:
// that is the delivery agent's. Single-owner, runs on the transport's
// executor; one operation at a time.

#include "core/envelope.hpp"
#include "core/outcome.hpp"
#include "smtp/client_config.hpp"
#include "smtp/outcome.hpp"
#include "smtp/reply.hpp"
#include "smtp/transport.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace ember::smtp {

// What the server's EHLO reply offered (RFC 5321 4.1.1.1; keywords are
// case-insensitive). HELO sessions offer nothing.
struct Capabilities {
    bool esmtp = false;
    bool pipelining = false;           // RFC 2920
    bool eightbitmime = false;         // RFC 6152
    bool smtputf8 = false;             // RFC 6531
    bool dsn = false;                  // RFC 3461
    bool starttls = false;             // RFC 3207
    bool chunking = false;             // RFC 3030 (parsed, not used: DATA carries everything)
    std::optional<std::uint64_t> size; // RFC 1870: advertised; 0 = no fixed limit
};

// The keywords of a 2xx EHLO reply (the first line is the server's name).
[[nodiscard]] Capabilities parse_capabilities(const Reply& ehlo);

// The MAIL FROM and RCPT TO command lines (without CRLF) for a transaction,
// with only the parameters the server offered: SIZE=, BODY=8BITMIME,
// SMTPUTF8, RET=/ENVID= and NOTIFY=/ORCPT= (xtext, RFC 3461 4).
[[nodiscard]] std::string mail_command(const core::Envelope& envelope, std::uint64_t size,
                                       bool smtputf8, const Capabilities& caps);
[[nodiscard]] std::string rcpt_command(const core::RecipientSpec& recipient,
                                       const Capabilities& caps);

// RFC 6531 3.4: the transaction needs SMTPUTF8 when an envelope address is
// not ASCII, or when the submitter declared SMTPUTF8 and the header section
// is not ASCII. A declared message that is all ASCII does not (Postfix's
// smtputf8_autodetect: such mail still reaches servers without SMTPUTF8).
[[nodiscard]] bool needs_smtputf8(const core::Envelope& envelope,
                                  const std::vector<core::RecipientSpec>& recipients,
                                  std::string_view content);

// Message content as DATA carries it (RFC 5321 4.5.2): a "." at the start of
// a line gets another; bare CR and bare LF become CRLF (RFC 5321 2.3.8, so
// no byte sequence can end DATA early on a lenient server: the SMTP
// smuggling family); a missing final CRLF is added; ".\r\n" ends it.
// Produces the wire form in bounded chunks so a large message is never
// copied whole. Holds a view: the content must outlive it.
class DotStuffer {
public:
    explicit DotStuffer(std::string_view content) : content_(content) {}
    // Appends about max_bytes of wire bytes to out (at most 8 more: a
    // stuffed dot, a line end, the terminator); false once everything,
    // terminator included, is out.
    bool next(std::string& out, std::size_t max_bytes);
    [[nodiscard]] bool done() const { return finished_; }

private:
    std::string_view content_;
    std::size_t pos_ = 0;
    bool line_start_ = true;
    bool finished_ = false;
};

class ClientSession;

// The sessions that exist, for shutdown. Sessions add themselves on
// construction and leave on destruction; the registry must outlive them.
// Same executor as the sessions; not thread-safe.
class ClientSessions {
public:
    // Aborts every session, or only those not sending message content
    // (before the 354 or after the reply to the final "."): aborting one in
    // the middle of DATA may deliver the message twice.
    void abort(bool in_data_too);
    [[nodiscard]] std::size_t size() const { return sessions_.size(); }

private:
    friend class ClientSession;
    std::set<ClientSession*> sessions_;
};

struct SessionSettings {
    std::string helo_name;
    ClientTimeouts timeouts;
    TlsPolicy tls = TlsPolicy::Opportunistic;
    // nullptr: no STARTTLS (policy Required then defers with 4.7.4).
    std::shared_ptr<boost::asio::ssl::context> tls_context;
    PeerName peer;                      // for outcomes and logs
    ClientSessions* registry = nullptr; // optional: where shutdown finds the session
};

struct Transaction {
    core::Envelope envelope; // mail_from, body, smtputf8, ret, envid (recipients unused)
    std::vector<core::RecipientSpec> recipients;
    std::shared_ptr<const std::string> content;
};

struct TransactionResult {
    std::vector<core::Outcome> outcomes; // one per Transaction::recipients, in order
    // The server accepted MAIL FROM: from here on the outcomes are this
    // host's answer (the agent does not move to the next MX host).
    bool mail_accepted = false;
    // send_reused(): the RSET before the transaction failed (an error
    // reply, a 421, a connection that died while idle). Nothing was decided:
    // the outcomes only echo that failure, the connection is unusable and
    // the transaction belongs on another connection.
    bool reset_failed = false;
};

class ClientSession {
public:
    ClientSession(std::unique_ptr<Transport> transport, SessionSettings settings);
    ~ClientSession();
    ClientSession(const ClientSession&) = delete;
    ClientSession& operator=(const ClientSession&) = delete;

    // Greeting, EHLO/HELO, STARTTLS and the EHLO after it. nullopt: ready
    // for mail; otherwise the site outcome (the session is then unusable).
    [[nodiscard]] boost::asio::awaitable<std::optional<core::Outcome>> open();
    // One mail transaction. Leaves the session ready for the next one when
    // it stays usable (RSET sent after a transaction that did not finish).
    [[nodiscard]] boost::asio::awaitable<TransactionResult> send(Transaction transaction);
    // The same on a reused connection: RSET first (RFC 5321 4.1.1.5, it also
    // proves the connection is alive). With PIPELINING the RSET leads the
    // MAIL/RCPT/DATA group in one write (RFC 2920 3.1 restricts only EHLO,
    // DATA, VRFY, EXPN, TURN, QUIT and NOOP to the end of a group), saving a
    // round trip per message; without it RSET waits for its reply.
    [[nodiscard]] boost::asio::awaitable<TransactionResult> send_reused(Transaction transaction);
    // RSET: checks a reused connection is alive (RFC 5321 4.1.1.5).
    [[nodiscard]] boost::asio::awaitable<bool> reset();
    // QUIT and close; never fails (a peer that vanished is already gone).
    boost::asio::awaitable<void> quit();
    void close();
    // Shutdown: cancels the pending operation and fails the session with
    // smtp::cancelled(); no further bytes are exchanged (not even QUIT).
    void abort();

    [[nodiscard]] bool usable() const { return usable_; }
    // Message content is being sent or its final reply awaited.
    [[nodiscard]] bool in_data() const { return in_data_; }
    // "TLSv1.3" once STARTTLS succeeded, else "".
    [[nodiscard]] const std::string& tls_protocol() const { return tls_protocol_; }
    [[nodiscard]] bool tls_active() const;
    [[nodiscard]] std::string tls_description() const;
    // STARTTLS was attempted and the handshake failed (the agent may retry
    // the host in plaintext when the policy is opportunistic).
    [[nodiscard]] bool tls_handshake_failed() const { return tls_handshake_failed_; }
    [[nodiscard]] const Capabilities& capabilities() const { return caps_; }
    [[nodiscard]] const PeerName& peer() const { return settings_.peer; }
    [[nodiscard]] std::uint32_t transactions() const { return transactions_; }

private:
    struct Step; // a command, its deadline and what to call it in outcomes
    // The replies to MAIL, each RCPT and DATA, as far as they were read.
    struct EnvelopeReplies {
        std::vector<std::optional<core::Outcome>> outcomes; // final answers per recipient
        std::vector<bool> accepted;                         // RCPT got a 2xx
        bool mail_accepted = false;
        bool reset_failed = false; // the pipelined RSET was refused or went unanswered
        std::optional<Reply> data_reply;
    };

    boost::asio::awaitable<std::optional<Reply>> read_reply(Step step);
    boost::asio::awaitable<bool> write(std::string bytes, Step step);
    boost::asio::awaitable<std::optional<Reply>> command(std::string line, Step step);
    boost::asio::awaitable<std::optional<core::Outcome>> hello();
    boost::asio::awaitable<std::optional<core::Outcome>> start_tls();
    boost::asio::awaitable<std::optional<core::Outcome>> handshake();
    boost::asio::awaitable<TransactionResult> transact(Transaction transaction, bool reset_first);
    boost::asio::awaitable<EnvelopeReplies>
    pipelined(std::string mail, std::vector<std::string> rcpts, bool reset_first);
    boost::asio::awaitable<EnvelopeReplies> stepwise(std::string mail,
                                                     std::vector<std::string> rcpts);
    boost::asio::awaitable<EnvelopeReplies> finish_data(std::shared_ptr<const std::string> content,
                                                        EnvelopeReplies replies);
    boost::asio::awaitable<bool> send_content(std::shared_ptr<const std::string> content);
    void take_mail_reply(EnvelopeReplies& replies, const Reply& reply);
    void take_rcpt_reply(EnvelopeReplies& replies, std::size_t i, const Reply& reply);
    void take_final_reply(EnvelopeReplies& replies, const Reply& reply, std::string_view command);
    [[nodiscard]] TransactionResult finish(EnvelopeReplies replies) const;
    [[nodiscard]] TransactionResult reset_failure(std::size_t recipients);
    // The outcome for a failed read or write at this step (cancelled() once aborted).
    [[nodiscard]] core::Outcome io_failure(const Step& step, bool timeout) const;
    // The session cannot continue; the first failure is the one reported.
    void fail(core::Outcome outcome);
    // The connection itself is unusable (I/O error, timeout, garbage).
    void break_connection(core::Outcome outcome);
    [[nodiscard]] std::optional<core::Outcome> precheck(const Transaction& t) const;

    std::unique_ptr<Transport> transport_;
    SessionSettings settings_;
    ReplyParser parser_;
    Capabilities caps_;
    std::string buffer_;
    std::optional<core::Outcome> failure_; // why the session became unusable
    bool usable_ = true;                   // may carry another transaction
    bool broken_ = false;                  // no more bytes can be exchanged (not even QUIT)
    bool tls_handshake_failed_ = false;
    bool aborted_ = false;
    bool in_data_ = false;
    std::string tls_protocol_;
    std::uint32_t transactions_ = 0;
};

} // namespace ember::smtp
