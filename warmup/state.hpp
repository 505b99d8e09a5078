#pragma once
// The Engine's state and the pure arithmetic on it: the GCRA pacer (rate),
// the AIMD backoff (multiplicative decrease, additive recovery), the rolling
// guardrail window of hour buckets, and the ramp's day arithmetic. Separate
// from engine.hpp so each piece is tested on its own; nothing here knows a
// clock (every function takes `now`) and nothing allocates per recipient:
// the state is per (sending domain, provider, source) and per domain.

#include "warmup/config.hpp"
#include "warmup/values.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ember::warmup {

// Hash maps keyed by std::string that find by std::string_view without
// building a string (the hot path looks domains up on every admit).
struct StringHash {
    using is_transparent = void;
    [[nodiscard]] std::size_t operator()(std::string_view s) const {
        return std::hash<std::string_view>{}(s);
    }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// ---- rate: GCRA (the "virtual scheduling" form of a token bucket) ----
// One number of state: the theoretical arrival time of the next send, in
// nanoseconds since the epoch (a 10000/s rate is 0.1 ms apart). The burst is
// one second's worth of the rate (at least 1).
struct Pacer {
    std::int64_t tat_ns = 0;

    // Conforming at `now`: counts the send and returns true; otherwise sets
    // `retry` to the first instant a send would conform.
    [[nodiscard]] bool try_send(double per_second, TimePoint now, TimePoint& retry);
    [[nodiscard]] TimePoint next_conforming(double per_second, TimePoint now) const;
    // How many sends would conform back to back at `now`.
    [[nodiscard]] std::uint64_t available(double per_second, TimePoint now) const;
    // Undoes one conforming try_send (a refund): the next send may go one
    // interval earlier. Never grants more than the burst: available() counts
    // from max(tat, now), so a tat in the past is the same as tat == now.
    void give_back(double per_second);
};

// ---- backoff: multiplicative decrease, additive increase ----
// The rate is multiplied by `factor` (applied to `base`, the rate that was
// in force) and held until `until`; from then on it grows by
// recovery.step * base every recovery.interval until it is whole again.
// A pushback during a backoff extends the hold; it multiplies again only if
// the last decrease is at least one recovery interval old (like TCP's one
// decrease per round trip), so a burst of 421s from parallel connections
// halves the rate once, not twenty times.
struct Backoff {
    double factor = 1.0; // the multiplier at `until`; 1.0: no backoff
    TimePoint until{};   // end of the hold
    TimePoint last_decrease{};
    double base_per_second = 0; // measured rate used when the provider has no max_rate

    [[nodiscard]] bool active(const Recovery& r, TimePoint now) const;
    [[nodiscard]] double multiplier(const Recovery& r, TimePoint now) const;
    // Applies a pushback; true when this started a backoff (none was active).
    bool push_back(double rule_factor, core::Duration hold, const Recovery& r, TimePoint now);
};

// The lowest multiplier a backoff reaches: 1 % of the rate, so a provider
// that keeps deferring slows us to a trickle but never to zero.
inline constexpr double kMinMultiplier = 0.01;

// ---- guardrails: a rolling window of hour buckets ----
struct Counts {
    std::uint64_t delivered = 0, deferred = 0, failed = 0, hard_bounces = 0, complaints = 0;

    Counts& operator+=(const Counts& o);
    [[nodiscard]] std::uint64_t attempts() const { return delivered + deferred + failed; }
    [[nodiscard]] double bounce_rate() const;    // hard bounces / (delivered + failed)
    [[nodiscard]] double deferral_rate() const;  // deferred / attempts
    [[nodiscard]] double complaint_rate() const; // complaints / delivered
    friend bool operator==(const Counts&, const Counts&) = default;
};

struct Bucket {
    std::int64_t hour = -1; // hours since the epoch; -1: empty
    Counts counts;
};

class Window {
public:
    explicit Window(std::size_t hours = 24) : ring_(hours) {}
    // Keeps the buckets that fit the new size.
    void resize(std::size_t hours);
    [[nodiscard]] std::size_t hours() const { return ring_.size(); }
    // The bucket of `hour`, emptied first when it held an older hour.
    Counts& at(std::int64_t hour);
    // Sum over hours in [from, to).
    [[nodiscard]] Counts sum(std::int64_t from, std::int64_t to) const;
    [[nodiscard]] const std::vector<Bucket>& buckets() const { return ring_; }
    void put(const Bucket& b); // for restore

private:
    std::vector<Bucket> ring_;
};

[[nodiscard]] std::int64_t hour_of(TimePoint t);

struct Verdict {
    bool hold = false;
    std::string reason; // "bounce rate 3.1% >= 2%"
};
// Holds when a rate is at or above its threshold, once the window has
// min_volume attempts (smaller samples are noise: one bounce in ten).
[[nodiscard]] Verdict judge(const Counts& c, const Guardrails& g);

// ---- the ramp ----
// ramp day = calendar day since the start (day 1 on the start day) + offset;
// a held day subtracts one from the offset, set-day sets it. `evaluated` is
// the last UTC day whose midnight has been judged.
struct Ramp {
    std::int64_t evaluated = 0; // days since the epoch
    std::int32_t offset = 0;
};

struct Transition {
    std::int64_t day = 0; // the day that began
    std::uint32_t ramp_day = 0;
    bool held = false;
    std::string reason;
};

[[nodiscard]] std::uint32_t ramp_day(const Ramp& r, std::int64_t start, std::int64_t day);
// Judges each midnight after r.evaluated up to `today` with the window that
// ended at it; the transitions are appended to `out` when given.
[[nodiscard]] Ramp advance(Ramp r, std::int64_t start, std::int64_t today, const Window& w,
                           const Guardrails& g, std::vector<Transition>* out);

// ---- per domain and per key ----
struct DomainState {
    Window window;
    std::map<std::string, Ramp> ramps; // by sender source ("" = the domain-wide entry)
    std::int64_t first_day = 0;        // the start of the default schedule for unlisted domains
    std::int64_t rolled = -1;          // the day roll_domain() last ran (not saved: a cache)
    bool paused = false;
    std::set<std::string> paused_providers;
    bool suspended = false; // complaints reached suspend_complaint_rate; an admin resumes
    std::string suspended_reason;
    TimePoint suspended_at{};
};

struct KeyState {
    std::int64_t day = 0;   // the UTC day `sent` counts
    std::uint64_t sent = 0; // admitted today, minus refunds
    bool cap_reached = false;
    Pacer pacer;
    std::int64_t minute = 0; // for the measured rate
    std::uint32_t this_minute = 0, last_minute = 0;
    Backoff backoff;
    TimePoint suspended_until{};
    std::string suspended_reason;

    [[nodiscard]] std::uint64_t sent_on(std::int64_t today) const {
        return day == today ? sent : 0;
    }
    // Sends per second over the last full minute or the current one, whichever is higher.
    [[nodiscard]] double measured_rate(TimePoint now) const;
    void count_send(TimePoint now);
    // Undoes count_send() when `now` is still in the minute it counted.
    void uncount_send(TimePoint now);
};

} // namespace ember::warmup
