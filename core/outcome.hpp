#pragma once
// The one shape of every delivery outcome (STYLE.md "Errors"): the reply
// code, enhanced status, text, the command it answered, its scope and
// whether it is final. Remote replies and local failures (timeout,
// NXDOMAIN, null MX, TLS) alike, so the queue, the logs, DSNs and bounce
// classification all read the same thing. smtp/outcome.hpp is the only
// place that turns SMTP replies and local errors into these.

#include <cstdint>
#include <string>
#include <string_view>

namespace ember::core {

// Suppressed: settled without sending (suppression list, a hook's skip):
// final, no DSN. Throttled: held back by warm-up or rate limits before any
// attempt: not an attempt at all, the recipient waits until not_before_ms
// without spending its retry count or its max_retry_time.
enum class OutcomeKind : std::uint8_t { Delivered, Deferred, Failed, Suppressed, Throttled };
// Site: the whole destination (connection, greeting, DNS); Message: every
// recipient of the transaction (MAIL, DATA); Recipient: that RCPT only.
enum class OutcomeScope : std::uint8_t { Site, Message, Recipient };

// "delivered", "deferred", "failed", "suppressed", "throttled".
[[nodiscard]] std::string_view kind_name(OutcomeKind kind);

struct Outcome {
    OutcomeKind kind = OutcomeKind::Deferred;
    OutcomeScope scope = OutcomeScope::Site;
    int code = 0;                   // 3-digit reply code (synthesized for local failures)
    std::string enhanced;           // "5.1.1"
    std::string text;               // reply text, lines joined with a space
    std::string command;            // what it answered: "connect", "greeting", "EHLO", "STARTTLS",
                                    // "MAIL FROM", "RCPT TO", "DATA", "end of data", "dns"
    std::string remote_host;        // "mx.example.com" ("" for local failures before connect)
    std::string remote_ip;          // "192.0.2.1"
    bool local = false;             // synthesized by ember, not said by the remote host
    std::int64_t not_before_ms = 0; // Throttled: the earliest next try (unix ms)
    // The TLS protocol of the session that carried the attempt ("TLSv1.3");
    // "" when the session was clear text or never got that far. Feeds the
    // compliance scorecard's TLS share and delivery events.
    std::string tls = {};

    // Postfix style, for logs and `queue show`:
    // "host mx.example.com[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)"
    // or, when local: "connect to mx.example.com[192.0.2.1]:25: Connection refused"-like text.
    [[nodiscard]] std::string summary() const;
    friend bool operator==(const Outcome&, const Outcome&) = default;
};

} // namespace ember::core
