#pragma once
// Delivery status notifications ember sends back to an envelope sender
// (RFC 3461, RFC 3464, RFC 6522 multipart/report, RFC 3463 codes, RFC 6533
// for internationalized addresses): a failure DSN for recipients that failed
// permanently or expired, a delay DSN for recipients still being retried.
//
// Pure: no I/O, no clock (now is an input), thread-safe. It builds the
// message; it does not decide who gets one: the caller filters recipients by
// NOTIFY (RFC 3461 4.1), batches one message's recipients into one DSN and
// queues the result with the null reverse-path, BODY= and SMTPUTF8 as Dsn says.
//
// What goes in (decisions, each with its reason in dsn.cpp):
// - Action comes from the DSN kind: "failed" in a failure DSN (also for an
//   expired recipient, whose last outcome was temporary: its 4.x.x Status is
//   kept, as Postfix does), "delayed" in a delay DSN.
// - The returned content (third part): RET=FULL returns the whole message in
//   a failure DSN; RET=HDRS and an absent RET return only the header block
//   (RFC 3461 4.3 leaves the default to the MTA: the sender has the body, and
//   bulk bodies are large); a delay DSN always returns headers only (RFC 3461
//   4.3: FULL applies to "failed" DSNs). A message over max_returned_size or
//   with lines SMTP cannot carry (over 998 octets, bare CR or LF, NUL) is
//   returned as headers only; headers that cannot be carried are left out
//   (RFC 6522: the third part is optional). The first part says which.
// - Text from outside (remote replies, addresses, ENVID) cannot inject a line:
//   control characters become spaces, and every field is folded (RFC 5322
//   2.2.3) so no line exceeds 998 octets.
// - UTF-8: when an address (sender, final or original recipient) is not
//   ASCII, the report is message/global-delivery-status with "utf-8;"
//   addresses (RFC 6533) and the first part is charset=utf-8; a returned
//   header block with UTF-8 is message/global or message/global-headers
//   (RFC 6532 3.7, RFC 6533 6); otherwise non-ASCII octets in diagnostic
//   text become '?' so an ASCII report stays 7-bit.

#include "core/envelope.hpp"
#include "core/outcome.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::smtp {

struct DsnRecipient {
    std::string final_recipient;            // the address delivery was attempted to
    std::string original_recipient;         // ORCPT as stored ("rfc822;a@b", "utf-8;..."), or ""
    core::Outcome outcome;                  // the last attempt's outcome
    std::int64_t last_attempt_unix = 0;     // 0: unknown, no Last-Attempt-Date
    std::int64_t will_retry_until_unix = 0; // delay DSNs; 0: no Will-Retry-Until
};

enum class DsnKind : std::uint8_t { Failure, Delay };

struct DsnInput {
    DsnKind kind = DsnKind::Failure;
    std::string reporting_mta; // our hostname
    std::string queue_id;
    std::string envid; // ENVID, xtext decoded; "" if absent
    core::DsnRet ret = core::DsnRet::Unspecified;
    std::string original_sender; // the envelope sender; "" is the null sender
    std::int64_t arrival_unix = 0;
    std::int64_t now_unix = 0;
    std::vector<DsnRecipient> recipients;
    std::string_view original_message; // as queued, CRLF line ends
    std::string postmaster = "postmaster";
    // RET=FULL returns at most this many octets; a larger message is
    // returned as headers only (a truncated message would be a broken one).
    std::uint64_t max_returned_size = std::uint64_t{1} << 20;
};

struct Dsn {
    std::string envelope_sender; // always "": the null reverse-path (RFC 5321 4.5.5)
    std::string recipient;       // the original envelope sender
    std::string content;         // the complete RFC 5322 message, CRLF line ends
    core::BodyType body = core::BodyType::SevenBit; // EightBitMime when content has 8-bit octets
    bool smtputf8 = false; // the recipient (and so To:) is not ASCII: send with SMTPUTF8
};

// nullopt when no DSN may be sent: the original sender is the null sender
// (never bounce a bounce: RFC 5321 4.5.5 and 6.1), or no recipients.
// Message-ID is <queue_id.dsn.NOW@reporting_mta> ("delay" for a delay DSN),
// so one message gets at most one DSN of each kind per second.
[[nodiscard]] std::optional<Dsn> build_dsn(const DsnInput& input);

} // namespace ember::smtp
