#pragma once
// The one place that turns what happened on a delivery attempt into a
// core::Outcome (STYLE.md "Errors"): remote replies (from_reply) and the
// failures ember itself observes (connect, DNS, TLS, lost connections,
// size and SMTPUTF8 mismatches, expiry), each with a proper RFC 3463
// enhanced status code. Nothing else in ember reads a reply code to decide
// delivered / deferred / failed.
//
// Decisions (Postfix's behaviour unless noted):
// - 2xx Delivered, 4xx Deferred, 5xx Failed; a 3xx where a final reply was
//   due is a protocol error (Deferred 4.5.0).
// - A missing enhanced code is synthesized from the basic code (RFC 3463
//   gives no table; this one follows sendmail's smtptodsn() with refinements):
//   421 4.4.2, 450 4.2.0, 451 4.3.0, 452 4.3.1 (4.5.3 to RCPT: too many
//   recipients, RFC 5321 4.5.3.1.10), 500 5.5.2, 501 5.5.4, 502 5.5.1,
//   503 5.5.1, 504 5.5.4, 521 5.3.2 (RFC 7504), 550 5.0.0, 551 5.1.6,
//   552 5.2.2 (5.3.4 to MAIL: RFC 1870 6.1), 553 5.1.3, 554 5.0.0,
//   555 5.5.4, 556 5.1.10 (RFC 7504), else X.0.0.
// - 421 always has site scope: the server is closing the channel.
// - 552 to RCPT is Deferred 4.5.3: RFC 5321 4.5.3.1.10 says clients treat
//   this legacy "too many recipients" reply as temporary.
// - A 5xx greeting is Deferred, not Failed: the destination's other MX
//   hosts may accept, and one misbehaving host must not bounce mail
//   (Postfix smtp_skip_5xx_greeting = yes, its default).
// - TLS required but not offered (or our TLS engine unavailable): Deferred
//   4.7.4 "security features not supported", as Postfix logs it; a failed
//   handshake or certificate verification: Deferred 4.7.5 "cryptographic
//   failure".
// Pure functions, thread-safe.

#include "core/outcome.hpp"
#include "smtp/reply.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace ember::dns {
struct MailHosts;
}

namespace ember::smtp {

// Where an outcome came from: the remote host, or none before a connection.
struct PeerName {
    std::string host;                          // "mx.example.com" (or the IP literal of a route)
    std::string ip;                            // "192.0.2.1"
    [[nodiscard]] std::string display() const; // "mx.example.com[192.0.2.1]"
};

// Command names used in outcomes and logs ("in reply to ... command").
namespace command_name {
inline constexpr std::string_view kConnect = "connect";
inline constexpr std::string_view kGreeting = "greeting";
inline constexpr std::string_view kEhlo = "EHLO";
inline constexpr std::string_view kHelo = "HELO";
inline constexpr std::string_view kStartTls = "STARTTLS";
inline constexpr std::string_view kMail = "MAIL FROM";
inline constexpr std::string_view kRcpt = "RCPT TO";
inline constexpr std::string_view kData = "DATA";
inline constexpr std::string_view kEndOfData = "end of data";
inline constexpr std::string_view kRset = "RSET";
inline constexpr std::string_view kQuit = "QUIT";
inline constexpr std::string_view kDns = "dns";
} // namespace command_name

// The enhanced code a reply without one stands for (see the table above).
[[nodiscard]] std::string synthesize_enhanced(int code, std::string_view command);

// A remote reply to `command`. `scope` is the caller's (Site for greeting,
// EHLO, STARTTLS; Message for MAIL, DATA, end of data; Recipient for RCPT);
// 421 widens it to Site.
[[nodiscard]] core::Outcome from_reply(const Reply& reply, std::string_view command,
                                       core::OutcomeScope scope, const PeerName& peer);

// --- Local outcomes: synthesized by ember, `local` is true. ---

// Connection refused, unreachable or timed out: Deferred 4.4.1 (no answer
// from host), site scope.
[[nodiscard]] core::Outcome connect_failed(const PeerName& peer, std::string_view reason);
// The connection broke or timed out mid-session while `phase` (Postfix's
// words: "receiving the initial server greeting", "sending end of data"):
// Deferred 4.4.2 (bad connection).
[[nodiscard]] core::Outcome connection_lost(std::string_view command, const PeerName& peer,
                                            std::string_view phase, bool timed_out);
// The peer sent something that is not SMTP (malformed or unexpected reply,
// plaintext injected after STARTTLS): Deferred 4.5.0, site scope.
[[nodiscard]] core::Outcome protocol_error(std::string_view command, const PeerName& peer,
                                           std::string_view detail);
// The DNS could not answer now: Deferred 4.4.3 (directory server failure).
[[nodiscard]] core::Outcome dns_temporary(std::string_view detail);
// The domain does not exist or has neither MX nor address: Failed 5.1.2.
[[nodiscard]] core::Outcome domain_not_found(std::string_view detail);
// RFC 7505 null MX: Failed 556 5.1.10.
[[nodiscard]] core::Outcome null_mx(std::string_view detail);
// MX hosts exist but none has an address: Failed 5.4.4 (unable to route).
[[nodiscard]] core::Outcome no_route(std::string_view detail);
// Why find_mail_hosts() found no host to try (one of the four above).
[[nodiscard]] core::Outcome from_mail_hosts(const dns::MailHosts& hosts);
// TLS policy "required" and the host offers no STARTTLS, or refuses it,
// or ember has no client TLS context: Deferred 4.7.4.
[[nodiscard]] core::Outcome tls_unavailable(const PeerName& peer, std::string_view detail);
// TLS handshake or certificate verification failed: Deferred 4.7.5.
[[nodiscard]] core::Outcome tls_failed(const PeerName& peer, std::string_view detail);
// The message needs SMTPUTF8 (RFC 6531 3.4) and the host does not offer it:
// Failed 550 5.6.7, message scope.
[[nodiscard]] core::Outcome smtputf8_unsupported(const PeerName& peer);
// The message is larger than the host's SIZE limit (RFC 1870): Failed 552
// 5.3.4, message scope. Checked before MAIL, so nothing is sent.
[[nodiscard]] core::Outcome message_too_big(const PeerName& peer, std::uint64_t size,
                                            std::uint64_t limit);
// The recipient stayed deferred past its maximum retry time; the scheduler
// builds it. Failed, recipient scope, 4.4.7 (RFC 3463 "delivery time
// expired": "useful only as a persistent transient error", so the class
// stays 4 while the action is failed); the text carries the last deferral.
[[nodiscard]] core::Outcome expired(std::string_view last_deferral);
// ember stopped the attempt (shutdown): Throttled 421 4.3.2 (system not
// accepting network messages). Not Deferred: the interruption is ours, not
// the destination's, so it must not spend a retry, count toward
// max_retry_time (a message near expiry would bounce) or raise the
// destination's deferral rate in warm-up; the recipients stay queued and
// are due again as soon as delivery runs.
[[nodiscard]] core::Outcome cancelled(std::string_view detail);

} // namespace ember::smtp
