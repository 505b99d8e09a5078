#pragma once
// Rolling per-sending-domain counters (sent, delivered, bounces, complaints,
// unsubscribes, TLS, DMARC alignment, one-click unsubscribe) over hour
// buckets, the rates the warm-up guardrails and /metrics read from them,
// and the compliance scorecard that holds them against the mailbox
// providers' bulk-sender rules (`emberctl compliance [DOMAIN]`).
//
// Pure: no clock, no I/O. Every call takes `now`; state goes out and comes
// back as a string (serialize / restore) that the daemon keeps in LMDB. Not
// thread-safe: one owner (the strand that sees the events) calls it.
//
// Windows are made of whole UTC hours: a window of N hours is the current
// hour's bucket and the N-1 before it, so "24 h" covers between 23 and 24
// hours of the past. The ring keeps 168 buckets (7 days); older counts
// fall out as the ring turns. A count for a time older than the ring, or
// later than one the ring already moved past, is ignored.
//
// Where the counts come from (record()): one event is one recipient.
//   received      received events; dmarc_aligned when the event says so
//   delivered     delivered events; delivered_tls when tls, and bulk /
//                 one_click when the event says so (List-Unsubscribe is
//                 added at dispatch, so the delivered message is what counts)
//   deferred      deferred events
//   hard_bounces  bounced events with hard = true
//   soft_bounces  bounced events otherwise, and expired events
//   complaints    complained; unsubscribes: unsubscribed
//
// Rates (nullopt when the denominator is 0):
//   complaint rate   complaints / delivered          (Gmail/Yahoo: keep < 0.1 %, never 0.3 %)
//   hard-bounce rate hard / (delivered + hard + soft) (final outcomes only)
//   unsubscribe rate unsubscribes / delivered
//   TLS share        delivered_tls / delivered
//   aligned share    dmarc_aligned / received
//   one-click share  one_click / bulk

#include "core/units.hpp"
#include "feedback/events.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>; // as warmup::TimePoint

enum class Counter : std::uint8_t {
    Received,
    DmarcAligned,
    Delivered,
    DeliveredTls,
    Bulk,
    OneClick,
    Deferred,
    HardBounces,
    SoftBounces,
    Complaints,
    Unsubscribes,
};
inline constexpr std::size_t kCounters = 11;

// "received", "dmarc_aligned", "delivered", "delivered_tls", "bulk",
// "one_click", "deferred", "hard_bounces", "soft_bounces", "complaints",
// "unsubscribes": stable names for JSON, /metrics and the stored state.
[[nodiscard]] std::string_view counter_name(Counter counter);
[[nodiscard]] std::optional<Counter> parse_counter(std::string_view name);

struct Counts {
    std::array<std::uint64_t, kCounters> values{};

    [[nodiscard]] std::uint64_t operator[](Counter c) const {
        return values[static_cast<std::size_t>(c)];
    }
    [[nodiscard]] std::uint64_t& operator[](Counter c) {
        return values[static_cast<std::size_t>(c)];
    }
    [[nodiscard]] std::optional<double> complaint_rate() const;
    [[nodiscard]] std::optional<double> hard_bounce_rate() const;
    [[nodiscard]] std::optional<double> unsubscribe_rate() const;
    [[nodiscard]] std::optional<double> tls_share() const;
    [[nodiscard]] std::optional<double> aligned_share() const;
    [[nodiscard]] std::optional<double> one_click_share() const;
    friend bool operator==(const Counts&, const Counts&) = default;
};

inline constexpr std::chrono::hours kDayWindow{24};
inline constexpr std::chrono::hours kWeekWindow{24 * 7};

// What a complaint or an asynchronous bounce means for the warm-up
// guardrails: the daemon calls warmup::Engine::record_complaint(domain, now)
// or record_bounce(domain, hard, now) with it. Bounces answered during our
// own SMTP transaction (source "smtp") are not signals: Engine::record()
// already counted their outcome.
struct GuardrailSignal {
    enum class Kind : std::uint8_t { Complaint, Bounce };
    Kind kind = Kind::Complaint;
    std::string sending_domain;
    bool hard = false;
    friend bool operator==(const GuardrailSignal&, const GuardrailSignal&) = default;
};
[[nodiscard]] std::optional<GuardrailSignal> guardrail_signal(const Event& event);

class Rates {
public:
    static constexpr std::size_t kBuckets = 24 * 7;

    void add(std::string_view sending_domain, Counter counter, TimePoint now, std::uint64_t n = 1);
    // Counts what the event stands for (see the table above) at `now`.
    // Events without a sending domain count nowhere.
    void record(const Event& event, TimePoint now);

    // The window of `span` hours (1..168) ending with now's hour.
    [[nodiscard]] Counts window(std::string_view sending_domain, std::chrono::hours span,
                                TimePoint now) const;
    // Sending domains with any count in the ring, sorted.
    [[nodiscard]] std::vector<std::string> domains() const;
    // Forgets domains with nothing left in the ring (call now and then).
    void prune(TimePoint now);

    // A JSON document with counter names, so a later version with more
    // counters reads an older state. restore() replaces everything; false
    // (state unchanged) when the text is not such a document.
    [[nodiscard]] std::string serialize() const;
    [[nodiscard]] bool restore(std::string_view text);

private:
    struct Bucket {
        std::int64_t hour = -1; // hours since the epoch; -1 unused
        Counts counts;
    };
    struct Domain {
        std::array<Bucket, kBuckets> ring{};
    };
    std::map<std::string, Domain, std::less<>> domains_;
};

// ---- Compliance scorecard ----

enum class Verdict : std::uint8_t { Pass, Fail, NoData };
[[nodiscard]] std::string_view verdict_name(Verdict v); // "pass", "fail", "n/a"

struct SourceCheck {
    std::string address;    // a source IP mail leaves from
    std::string ptr;        // its PTR name, "" when none
    bool confirmed = false; // the PTR name resolves back to the address (FCrDNS)
};

struct ComplianceFacts {
    std::vector<SourceCheck> sources;                        // empty: not checked
    std::optional<core::Duration> longest_unsubscribe_delay; // unsubscribe -> suppression
};

// The bars, from Gmail's and Yahoo's sender requirements (2024): all mail
// authenticated and DMARC-aligned, one-click unsubscribe on bulk mail, spam
// complaints under 0.1 % and never 0.3 %, TLS, valid forward-confirmed
// reverse DNS, unsubscribes honoured within 2 days. The bounce bar is the
// industry's (ESPs suspend senders around 2 % hard bounces); ember's
// warm-up guardrail uses the same figure.
struct ComplianceThresholds {
    double aligned_share = 1.0;
    double one_click_share = 1.0;
    double complaint_target = 0.001;
    double complaint_limit = 0.003;
    double hard_bounce_rate = 0.02;
    double tls_share = 1.0;
    core::Duration unsubscribe_delay{std::chrono::hours(48)};
};

struct ScoreLine {
    std::string rule;               // stable id: "complaint_rate_target", ...
    std::optional<double> measured; // share or rate (0..1), seconds for the delay
    double threshold = 0;
    std::string measured_text;  // "0.12 %", "3h", "-"
    std::string threshold_text; // "< 0.10 %", ">= 100 %"
    Verdict verdict = Verdict::NoData;
    std::string why;
};

struct Scorecard {
    std::string domain;
    std::string window; // "24h"
    Counts counts;
    std::vector<ScoreLine> lines;
    [[nodiscard]] bool pass() const; // no line failed
};

// The rules in a fixed order: dmarc_aligned_share, one_click_share,
// complaint_rate_target, complaint_rate_limit, hard_bounce_rate, tls_share,
// fcrdns, unsubscribe_delay.
[[nodiscard]] Scorecard scorecard(std::string_view domain, const Counts& counts,
                                  std::chrono::hours window, const ComplianceFacts& facts,
                                  const ComplianceThresholds& thresholds = {});

// `emberctl compliance`: per domain a header line, then one line per rule
// `RESULT  rule  measured  threshold  why`.
[[nodiscard]] std::string format_scorecards_text(const std::vector<Scorecard>& cards);
// {"domains":[{"domain":..,"window":..,"pass":..,"counts":{..},"rules":[{"rule":..,
// "measured":number|null,"measured_text":..,"threshold":..,"threshold_text":..,
// "result":"pass|fail|n/a","why":..}]}]}
[[nodiscard]] std::string format_scorecards_json(const std::vector<Scorecard>& cards);

} // namespace ember::feedback
