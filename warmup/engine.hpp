#pragma once
// The warm-up engine: decides, per recipient and in O(1), whether mail from a
// sending domain to a provider may go now (admit), learns from every
// delivery outcome (record: response rules, guardrail counters), and keeps
// the ramp, the daily counters, backoffs, suspensions and pauses.
//
// The unit of throttling is a Key: sending domain x provider (x source IP
// when the [[sender]] entry names one). A recipient that may not go now gets
// a Wait with the instant to ask again; the caller leaves it queued,
// untouched: it is never failed, bounced or charged a retry.
//
// Days are UTC days. A sender's day 1 is its start day; the ramp advances
// one day per UTC midnight unless the guardrails hold it. Unlisted domains
// use [defaults] schedule from the first day ember sees them, or nothing.
//
// No I/O and no clock: every call takes `now`; state goes out and comes back
// as a string (serialize_state / restore_state) that the daemon keeps in
// LMDB. Not thread-safe: one owner (the scheduler's strand) calls it.
// Transitions (backoff, suspension, caps, ramp) are appended to an event
// list the caller drains with take_events().

#include "core/outcome.hpp"
#include "warmup/config.hpp"
#include "warmup/provider_map.hpp"
#include "warmup/state.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ember::warmup {

struct Key {
    std::string sending_domain; // lowercase
    std::string provider;       // a provider name of the config
    std::string source;         // the [[sender]] entry's source IP, or ""

    // "news.example.com/gmail", "news.example.com/gmail@192.0.2.10"
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Key&, const Key&) = default;
};

struct KeyHash {
    [[nodiscard]] std::size_t operator()(const Key& k) const;
};

enum class WaitReason : std::uint8_t { Cap, Rate, Backoff, Suspended, Paused };
inline constexpr std::size_t kWaitReasons = 5;
[[nodiscard]] std::string_view reason_name(WaitReason r);

struct Admission {
    bool allowed = true;
    WaitReason reason = WaitReason::Cap; // when !allowed
    TimePoint until{};                   // when !allowed: ask again then
    std::string detail;                  // when !allowed: for logs and explain
};

// What the SMTP client and scheduler enforce themselves; the engine only counts.
struct Limits {
    std::uint32_t max_connections = 0;             // 0: unlimited
    std::uint32_t max_messages_per_connection = 0; // 0: unlimited
};

// One due recipient in a batch: `id` is the caller's, `priority` its
// engagement score (higher goes first; ties keep submission order).
struct Candidate {
    std::uint64_t id = 0;
    double priority = 0;
};

// What a refund gives back (Engine::refund).
//   Cap:        today's count only. For attempts that may have touched the
//               provider (a local failure after connect, a retry-later
//               reply): its rate was spent; giving the token back would let a
//               failing connection loop faster than the configured rate.
//   CapAndRate: today's count and the rate token. For recipients that never
//               left ember (suppressed at dispatch, postponed by a later
//               stage): the provider saw nothing, so, as in KumoMTA and
//               PowerMTA where shaping counts what goes on the wire, they
//               must slow nobody down.
enum class RefundScope : std::uint8_t { Cap, CapAndRate };

struct BatchAdmission {
    std::size_t admitted = 0; // the first `admitted` candidates (after reordering) may go
    Admission rest;           // why the others wait (allowed when all were admitted)
};

enum class EventType : std::uint8_t {
    BackoffStarted,
    BackoffEnded,
    Suspended,
    Resumed,
    Paused,
    CapReached,
    RampAdvanced,
    RampHeld,
    DaySet,
};
[[nodiscard]] std::string_view event_name(EventType t);

struct Event {
    EventType type = EventType::CapReached;
    Key key; // provider "" for a whole domain
    TimePoint time{};
    std::string details;
};

// Guardrail counts and rates of a sending domain over its window.
struct GuardrailStatus {
    Counts counts;
    double bounce_rate = 0, deferral_rate = 0, complaint_rate = 0;
    bool judged = false; // enough volume (min_volume) for the rates to act
    Guardrails thresholds;
};

struct KeyStatus {
    Key key;
    std::string schedule;       // "" when unthrottled
    std::uint32_t ramp_day = 0; // 0 when unthrottled
    std::uint64_t sent_today = 0;
    std::optional<std::uint64_t> cap;            // today's cap for this key; nullopt: unlimited
    std::optional<std::uint64_t> allowed_by_now; // with hourly spread
    std::optional<double> rate;                  // per second now; nullopt: unlimited
    Rate configured_rate;
    double rate_factor = 1.0;               // < 1 during a backoff and its recovery
    std::optional<TimePoint> backoff_until; // end of the hold at the reduced rate
    std::optional<TimePoint> suspended_until;
    std::string suspended_reason;
    bool paused = false; // this provider of the domain
    bool domain_paused = false;
    bool domain_suspended = false; // complaints; an admin resumes
    std::string domain_suspended_reason;
    GuardrailStatus guardrails;
};

struct Explanation {
    Key key;
    std::string recipient_domain;
    std::string mx_host; // as given or learned; "" unknown
    std::string provider_reason;
    std::string sender_reason;
    std::vector<std::string> rules; // the response rules this key is matched against, in order
    Limits limits;
    KeyStatus status;
    Admission admission; // what admit() would answer now (nothing is counted)
};
// A few lines for `emberctl warmup explain`.
[[nodiscard]] std::string format_explanation(const Explanation& e);

struct Metrics {
    std::uint64_t admitted = 0;
    std::array<std::uint64_t, kWaitReasons> throttled{}; // by WaitReason
    std::uint64_t refunded = 0;
    std::array<std::uint64_t, 9> events{}; // by EventType
};

struct AdminResult {
    bool ok = true;
    std::string message;
};

class Engine {
public:
    explicit Engine(Config config = unthrottled_config());
    // The indexes point into config_: a copy would point into the original.
    // A move keeps the vectors' buffers, so the indexes stay valid.
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;
    Engine(Engine&&) = default;
    Engine& operator=(Engine&&) = default;

    // Applies a new config; counters, ramps, backoffs, suspensions and
    // pauses are kept (state of providers that no longer exist is dropped).
    void reconfigure(Config config);
    [[nodiscard]] const Config& config() const { return config_; }

    // The key for mail from `sending_domain` (via `source`, "" if none) to
    // `recipient_domain`. Uses the MX learned for the domain when the domain
    // lists do not decide. Cached per recipient domain.
    [[nodiscard]] Key key(std::string_view sending_domain, std::string_view recipient_domain,
                          std::string_view source = {});
    // The MX host mail for `recipient_domain` went to (from the outcome's
    // remote_host, or a DNS answer): later keys for that domain use it.
    void learn_mx(std::string_view recipient_domain, std::string_view mx_host);

    // May one recipient go now? Counts it when allowed. O(1).
    [[nodiscard]] Admission admit(const Key& key, TimePoint now);
    // The same answer without counting anything (explain, dry runs).
    [[nodiscard]] Admission peek(const Key& key, TimePoint now) const;
    // How many recipients admit() would let go back to back now.
    [[nodiscard]] std::uint64_t remaining(const Key& key, TimePoint now) const;
    // Reorders `batch` (highest priority first, stable; NaN counts as the
    // lowest) when it is larger than what may go, then admits from the front.
    [[nodiscard]] BatchAdmission admit_batch(const Key& key, std::span<Candidate> batch,
                                             TimePoint now);
    [[nodiscard]] Limits limits(const Key& key) const;

    // One recipient's outcome. `hard_bounce`: a permanent failure of the
    // address (feedback/ classifies; until then Failed with Recipient scope).
    // Local outcomes (DNS, connect, TLS) never reached the provider: the send
    // is refunded (RefundScope::Cap) and nothing else changes. Suppressed and
    // Throttled outcomes (settled or postponed after the gate, nothing sent)
    // are refunded with RefundScope::CapAndRate.
    void record(const Key& key, const core::Outcome& outcome, bool hard_bounce, TimePoint now);
    // Takes back one recipient admit() let go at `now`'s UTC day. O(1).
    // Nothing happens when the key has no send today to give back (the day
    // changed since, or it was never admitted), so a late or duplicate
    // refund can never push a counter below what was really sent.
    void refund(const Key& key, TimePoint now, RefundScope scope);
    // Feedback that arrives later (ARF complaints, DSN bounces).
    void record_complaint(std::string_view sending_domain, TimePoint now);
    void record_bounce(std::string_view sending_domain, bool hard, TimePoint now);

    // Admin verbs. provider "" = the whole domain.
    AdminResult pause(std::string_view domain, std::string_view provider, TimePoint now);
    AdminResult resume(std::string_view domain, std::string_view provider, TimePoint now);
    AdminResult set_day(std::string_view domain, std::uint32_t day, TimePoint now);

    // Every configured sender x provider and every key with state; domain "" = all.
    [[nodiscard]] std::vector<KeyStatus> status(std::string_view domain, TimePoint now) const;
    // `recipient` is an address or a domain; mx_host "" = the learned one, if any.
    [[nodiscard]] Explanation explain(std::string_view sending_domain, std::string_view recipient,
                                      TimePoint now, std::string_view mx_host = {},
                                      std::string_view source = {}) const;

    // Versioned text; restore_state() accepts what serialize_state() wrote
    // (also under a different config) and leaves the state untouched on any
    // error.
    [[nodiscard]] std::string serialize_state() const;
    [[nodiscard]] bool restore_state(std::string_view text);

    [[nodiscard]] std::vector<Event> take_events();
    [[nodiscard]] const Metrics& metrics() const { return metrics_; }
    // Number of keys and domains with state (bounded by senders x providers, never by recipients).
    [[nodiscard]] std::size_t key_count() const { return keys_.size(); }
    [[nodiscard]] std::size_t domain_count() const { return domains_.size(); }

private:
    struct SenderInfo {
        const Sender* sender = nullptr; // nullptr: unlisted (default schedule or unthrottled)
        const Schedule* schedule = nullptr;
        std::int64_t start = 0;
        std::string ramp_source; // which Ramp of the domain
        const Guardrails* guardrails = nullptr;
    };
    struct View; // the effective state of a key at `now`, computed without changes

    void rebuild_index();
    [[nodiscard]] SenderInfo sender_info(std::string_view domain, std::string_view source,
                                         const DomainState* ds, std::int64_t today) const;
    [[nodiscard]] const Sender* find_sender(std::string_view domain, std::string_view source) const;
    [[nodiscard]] const Provider& provider_of(const Key& key) const;
    [[nodiscard]] const Guardrails& guardrails_of(std::string_view domain) const;
    [[nodiscard]] View view(const Key& key, TimePoint now) const;
    [[nodiscard]] Admission decide(const View& v, TimePoint now) const;

    DomainState& domain_state(std::string_view domain, TimePoint now);
    KeyState& key_state(const Key& key, TimePoint now);
    void roll_domain(std::string_view domain, DomainState& ds, TimePoint now);
    void settle_backoff(const Key& key, KeyState& ks, TimePoint now);
    void count_outcome(std::string_view domain, const core::Outcome& outcome, bool hard_bounce,
                       TimePoint now);
    void apply_rule(const Key& key, const Rule& rule, const core::Outcome& outcome, TimePoint now);
    void check_complaints(std::string_view domain, DomainState& ds, TimePoint now);
    void emit(EventType type, Key key, TimePoint now, std::string details);
    [[nodiscard]] KeyStatus key_status(const Key& key, TimePoint now) const;
    [[nodiscard]] GuardrailStatus guardrail_status(std::string_view domain, TimePoint now) const;

    Config config_;
    ProviderMap providers_;
    StringMap<std::size_t> provider_index_;
    StringMap<std::vector<const Sender*>> senders_by_domain_;
    std::vector<std::vector<const Rule*>> rules_by_provider_;

    StringMap<DomainState> domains_;
    std::unordered_map<Key, KeyState, KeyHash> keys_;
    StringMap<std::string> learned_mx_;     // recipient domain -> MX host
    StringMap<std::size_t> provider_cache_; // recipient domain -> provider

    std::vector<Event> events_;
    Metrics metrics_;
};

} // namespace ember::warmup
