#pragma once
// Send-time optimisation: for a message that may wait (X-Ember-Send-Within
// or the API's send_within), the instant inside the window at which one
// recipient is most likely to read it, from hour-of-week histograms of
// opens and clicks (engagement.hpp).
//
// Pure: `now` and the histograms are arguments; thread-safe.
//
// The candidates are the hours that overlap [now, now + within]: the
// current hour, which starts at `now` itself, then every following hour
// that starts no later than now + within (the end is included). The
// answer is the candidate whose hour of the week has the highest count;
// ties go to the earliest, so a flat histogram sends now. A window of a
// week or more sees every hour of the week; only the first 168 candidates
// are looked at (later ones repeat an hour already seen, and lose ties).
//
// Whose histogram:
//   1. the contact's, when it holds at least min_contact_events opens and
//      clicks and at least one of them falls in a candidate hour;
//   2. else the sending domain's aggregate, when it holds at least
//      min_domain_events and one falls in a candidate hour;
//   3. else now.
// A window of zero or less is "now"; one over max_window is cut to it.
// The result is never before `now` and never after now + within.
//
// Does not: apply warm-up caps (a recipient scheduled for 09:00 still
// waits at the gate if the cap is spent) or a hook's send_at (the
// dispatcher lets an explicit send_at win, clamped to the window by the
// caller if it wishes).

#include "core/units.hpp"
#include "personalize/engagement.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>

namespace ember::personalize {

struct SendTimeConfig {
    std::uint32_t min_contact_events = 5; // opens + clicks before a contact's own hours count
    std::uint32_t min_domain_events = 50; // likewise for the sending domain's aggregate
    // Longer windows are cut to this: a message is not held for a month
    // because a header asked for it (and the queue's lifetime is finite).
    core::Duration max_window = std::chrono::hours(24 * 7);
};

enum class SendTimeSource : std::uint8_t { Contact, Domain, Now };
// "contact", "domain", "now" (for logs and events).
[[nodiscard]] std::string_view send_time_source_name(SendTimeSource source);

struct SendTime {
    std::int64_t at_ms = 0; // unix ms: now, or the start of the chosen hour
    SendTimeSource source = SendTimeSource::Now;
    friend bool operator==(const SendTime&, const SendTime&) = default;
};

// The best candidate hour by `histogram` alone: its start (now for the
// current hour) and its count; count 0 when no candidate has any.
struct BestHour {
    std::int64_t at_ms = 0;
    std::uint32_t count = 0;
};
[[nodiscard]] BestHour best_hour_in_window(std::int64_t now_ms, core::Duration within,
                                           const HourHistogram& histogram);

[[nodiscard]] SendTime choose_send_time(std::int64_t now_ms, core::Duration within,
                                        const HourHistogram& contact, const HourHistogram& domain,
                                        const SendTimeConfig& config = {});

} // namespace ember::personalize
