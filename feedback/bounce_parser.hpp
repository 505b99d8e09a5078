#pragma once
// Asynchronous bounce messages (what arrives at a VERP return path) to
// classified failed recipients.
//
// Reads, in this order: complaint reports (feedback/arf.hpp: kind
// Feedback, reason `feedback`); Amazon SES JSON notifications; RFC 3464
// DSNs (message/delivery-status, one entry per recipient group), enriched
// from the human-readable part (the SMTP command a Postfix or Exim report
// names, a fuller diagnostic); autoreplies (RFC 3834 or the usual
// subjects, when nothing says "report"), which are not bounces (kind
// AutoReply, reason `vacation`); then the non-standard layouts real MTAs
// and providers send (qmail, Exim, Postfix and Sendmail without DSN,
// Exchange/Office 365 NDRs, Gmail, Yahoo, Courier, Domino, ...), read by
// the text scanner in feedback/bounce_text.hpp, and a bounce forwarded as
// an attachment. Each recipient is classified (feedback/classify.hpp) from
// its diagnostic, status, reply code and command. Recipients come in the
// order the report gives them.
//
// Never crashes, throws or hangs on garbage: input is capped at
// kMaxBounceSize, MIME nesting is bounded, every pattern is RE2 (linear
// time). Pure; thread-safe.

#include "feedback/classify.hpp"
#include "feedback/original_message.hpp"
#include "feedback/rules.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

// Bytes beyond this are ignored (the report is at the front; a bounce
// carrying a huge original is truncated, not refused).
inline constexpr std::size_t kMaxBounceSize = 16 * 1024 * 1024;

enum class BounceKind : std::uint8_t {
    NotBounce, // nothing recognised: no recipients
    Bounce,    // a failure or delay report: `recipients` are the failed ones
    AutoReply, // an autoreply / vacation notice, not a failure
    Feedback,  // an ARF (or provider) complaint report
};

[[nodiscard]] std::string_view bounce_kind_name(BounceKind kind);

struct BouncedRecipient {
    std::string recipient;          // the final recipient address
    std::string original_recipient; // ORCPT, when reported
    std::string action;             // failed, delayed, delivered, ... ("failed" when implied)
    std::string status;             // as reported ("" when none); classification.status is
                                    // the one to use
    int reply_code = 0;             // the remote SMTP reply code, 0 when none
    std::string diagnostic;         // the remote server's words, one line
    std::string diagnostic_type;    // "smtp", "x-unix", ... ("" when unknown)
    std::string remote_mta;
    Command command = Command::Unknown; // what the remote reply answered
    Classification classification;
};

struct BounceReport {
    BounceKind kind = BounceKind::NotBounce;
    // Which reader found the recipients: "rfc3464", "arf", "autoreply",
    // "qmail", "exim", "postfix", "sendmail", "exchange", "text", ...
    std::string format;
    std::vector<BouncedRecipient> recipients;
    OriginalMessage original;
    // When kind is Feedback: the ARF Feedback-Type (abuse, fraud, opt-out, ...).
    std::string feedback_type;
};

[[nodiscard]] BounceReport parse_bounce(std::string_view message, const Rules& rules);
// With the built-in rules.
[[nodiscard]] BounceReport parse_bounce(std::string_view message);

} // namespace ember::feedback
