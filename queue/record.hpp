#pragma once
// The queue's records: one Message per accepted transaction (envelope,
// submission metadata, content size) and one Recipient per forward-path with
// its delivery state, its latest outcome and which DSNs were handed over for
// it. Plain data plus the binary codec the store writes. No I/O, no LMDB.

#include "core/envelope.hpp"
#include "core/outcome.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::queue {

// Queue ids are 64-bit: milliseconds since the epoch in the high 48 bits and a
// per-millisecond counter in the low 16, so they sort by arrival and never
// repeat across restarts (the store floors new ids at the largest it holds).
using QueueId = std::uint64_t;

// 13 characters of Crockford base32, fixed width so text order = id order.
[[nodiscard]] std::string format_queue_id(QueueId id);
[[nodiscard]] std::optional<QueueId> parse_queue_id(std::string_view text);

enum class RecipientState : std::uint8_t {
    Queued,     // waiting for its first attempt
    Deferred,   // an attempt failed temporarily; next_attempt says when to retry
    Delivered,  // a receiver accepted it (2xx)
    Failed,     // permanently failed or expired; a DSN may be due
    Suppressed, // not sent: the address is on the suppression list
};
[[nodiscard]] std::string_view state_name(RecipientState s);
[[nodiscard]] std::optional<RecipientState> parse_state(std::string_view text);
// Queued and Deferred recipients still have to be delivered.
[[nodiscard]] bool is_pending(RecipientState s);

// Who submitted the message and how (for Received:, logs and `queue show`).
struct Submission {
    std::string client_ip;
    std::string helo;
    std::string auth_user; // empty when not authenticated
    std::string tls;       // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
    std::string listener;  // the listener's address, e.g. "127.0.0.1:2525"
    std::int64_t received_at_ms = 0;
    friend bool operator==(const Submission&, const Submission&) = default;
};

// Which delivery status notifications were handed to the bounce sink for a
// recipient, so that none is ever generated twice (RFC 3461 section 4.1 lets
// the sender ask for FAILURE and DELAY reports; each is sent at most once).
enum DsnSent : std::uint8_t {
    kDsnFailureSent = 1,
    kDsnDelaySent = 2,
};
inline constexpr std::uint8_t kDsnSentMask = kDsnFailureSent | kDsnDelaySent;

struct Recipient {
    core::RecipientSpec spec;
    RecipientState state = RecipientState::Queued;
    std::uint32_t attempts = 0;
    std::int64_t next_attempt_ms = 0; // due time while pending
    std::int64_t updated_ms = 0;
    std::string last_reply; // the last reply or local diagnostic, Postfix style
    // The latest attempt's outcome as a DSN (RFC 3464 section 2.3) reports it:
    // Status from outcome.enhanced, Remote-MTA from outcome.remote_host,
    // Diagnostic-Code from outcome.code and outcome.text (a local diagnostic
    // when outcome.local), Last-Attempt-Date from last_attempt_ms.
    // outcome.code == 0 means no attempt has been recorded yet.
    core::Outcome outcome;
    std::int64_t last_attempt_ms = 0;
    std::uint8_t dsn_state = 0; // DsnSent flags
    // Time the warm-up throttler held this recipient back (Throttled
    // outcomes, core/outcome.hpp): not attempts, so they spend none of
    // max_retry_time; expiry and delay warnings run on a clock shifted by
    // it. Counted in advance (not_before - now) when a hold starts and
    // corrected down if the hold ends early (release, admin retry).
    std::int64_t held_ms = 0;
    // The not_before time of the hold in progress: nonzero while the
    // latest outcome recorded is a Throttled one. `outcome` keeps the last
    // real attempt, which is what a DSN reports.
    std::int64_t throttled_until_ms = 0;
    friend bool operator==(const Recipient&, const Recipient&) = default;
};

struct Message {
    QueueId id = 0;
    core::Envelope envelope; // envelope.recipients mirrors recipients[].spec on write
    Submission submission;
    std::uint64_t size = 0; // bytes of content
    std::vector<Recipient> recipients;
    friend bool operator==(const Message&, const Message&) = default;
};

// Binary codec for the LMDB values. Versioned; decode() rejects truncated or
// unknown data instead of reading past it. Recipients are written as version
// 3: version 1, plus (version 2) outcome, last attempt and DSN state, plus
// (version 3) held_ms and throttled_until_ms. Version 1 and 2 records
// written by an older ember still decode, with the newer fields 0/empty.
[[nodiscard]] std::string encode_message_header(const Message& m); // without recipients
[[nodiscard]] std::optional<Message> decode_message_header(std::string_view bytes);
[[nodiscard]] std::string encode_recipient(const Recipient& r);
[[nodiscard]] std::optional<Recipient> decode_recipient(std::string_view bytes);

} // namespace ember::queue
