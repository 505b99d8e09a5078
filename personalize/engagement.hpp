#pragma once
// A contact's engagement, derived from delivery, open and click events, and
// what the rest of ember reads from it: the tier, the warm-up priority, the
// summary a hook receives, the hour-of-week histogram send-time
// optimisation (send_time.hpp) picks hours from.
//
// Pure: events and `now` are arguments, nothing reads a clock. Values are
// plain and thread-compatible.
//
// What is kept (bounded, whatever the volume):
//   - the last delivery, open and click (unix ms; 0 = never);
//   - day buckets (UTC days) of delivered / opened / clicked counts for the
//     last kDayBucketsKept days counted back from the newest event, at most
//     kDayBucketsKept of them: the 30- and 90-day counts;
//   - 168 hour-of-week buckets (UTC; 0 = Monday 00:00-00:59) counting opens
//     and clicks. When a bucket would pass kHistogramCap, every bucket is
//     halved first, so old habits fade and the counts stay small.
// Hours are UTC on purpose: a send window is absolute time, so learning
// and scheduling in the same absolute hours needs no time zone for the
// recipient (a habit of reading at 08:00 in Berlin is "07:00 UTC" in winter
// and "06:00 UTC" in summer: DST moves it one bucket, which the histogram
// absorbs).
//
// Tiers, at `now` (days are UTC days; "engaged" = opened or clicked):
//   hot    a click in the last kHotDays days, or at least kHotMinEngagements
//          opens and clicks together in them;
//   warm   otherwise, engaged within the last kWarmDays days;
//   cold   engaged before, but not within kWarmDays days;
//   never  never engaged (whatever was delivered).
// One open alone is "warm", not "hot": privacy proxies (Apple Mail Privacy
// Protection) fetch images without a reader, so an open is weak evidence
// and a click strong.
//
// Priority (warm-up gate: higher goes first), in non-overlapping bands:
//   hot    300 + min(99, 2 x clicks30 + opens30)
//   warm   200 + min(99, 2 x clicks90 + opens90)
//   new    150  (never engaged and nothing delivered yet: fresh sign-ups
//               engage most, and no history is no evidence against them)
//   cold   100 - min(50, delivered90)
//   never   50 - min(50, delivered90)  (mailed, never engaged)

#include <boost/json/object.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace ember::personalize {

enum class EngagementKind : std::uint8_t { Delivered, Open, Click };
enum class EngagementTier : std::uint8_t { Never, Cold, Warm, Hot };

// "delivered", "open", "click".
[[nodiscard]] std::string_view engagement_kind_name(EngagementKind kind);
// Those names, and the event log's "opened" and "clicked" (ASCII case ignored).
[[nodiscard]] std::optional<EngagementKind> parse_engagement_kind(std::string_view name);
// "never", "cold", "warm", "hot".
[[nodiscard]] std::string_view engagement_tier_name(EngagementTier tier);

inline constexpr std::size_t kHoursPerWeek = 168;
inline constexpr std::int32_t kDayBucketsKept = 90;
inline constexpr std::int32_t kHotDays = 30;
inline constexpr std::int32_t kWarmDays = 90;
inline constexpr std::uint32_t kHotMinEngagements = 2;
inline constexpr std::uint32_t kHistogramCap = 1000;

using HourHistogram = std::array<std::uint32_t, kHoursPerWeek>;

// The hour of the week of a unix time, UTC, 0 = Monday 00:00.
[[nodiscard]] std::size_t hour_of_week(std::int64_t unix_ms);
// One more event in `hour`, halving every bucket first when it would pass
// kHistogramCap.
void histogram_add(HourHistogram& histogram, std::size_t hour);
[[nodiscard]] std::uint64_t histogram_total(const HourHistogram& histogram);

struct DayBucket {
    std::int32_t day = 0; // days since 1970-01-01 (UTC)
    std::uint32_t delivered = 0;
    std::uint32_t opens = 0;
    std::uint32_t clicks = 0;
    friend bool operator==(const DayBucket&, const DayBucket&) = default;
};

struct Engagement {
    std::int64_t last_delivery_ms = 0; // 0: never
    std::int64_t last_open_ms = 0;
    std::int64_t last_click_ms = 0;
    std::vector<DayBucket> days; // ascending, within kDayBucketsKept days of the newest
    HourHistogram hours{};
    friend bool operator==(const Engagement&, const Engagement&) = default;
};

// `engagement` after one event at `time_ms` (the event's own time: late
// events land in their day and never push newer buckets out). Counts
// saturate instead of wrapping. time_ms <= 0 is ignored.
[[nodiscard]] Engagement record_engagement(Engagement engagement, EngagementKind kind,
                                           std::int64_t time_ms);

struct EngagementCounts {
    std::uint32_t delivered = 0;
    std::uint32_t opens = 0;
    std::uint32_t clicks = 0;
    friend bool operator==(const EngagementCounts&, const EngagementCounts&) = default;
};

// Counts in the `days` UTC days ending with today (today included; events
// dated after `now` count too: a clock that went back hides nothing).
[[nodiscard]] EngagementCounts counts_within(const Engagement& engagement, std::int64_t now_ms,
                                             std::int32_t days);
[[nodiscard]] EngagementTier engagement_tier(const Engagement& engagement, std::int64_t now_ms);
[[nodiscard]] double priority_score(const Engagement& engagement, std::int64_t now_ms);

// What a hook receives (the contract of ember-hook(7)):
//   {"tier":"hot","score":312,
//    "last_delivery":"2026-03-01T09:00:00Z","last_open":...,"last_click":...  (null: never)
//    "delivered_30d":4,"opens_30d":3,"clicks_30d":1,
//    "delivered_90d":9,"opens_90d":5,"clicks_90d":2,
//    "history":17,                (opens and clicks in the histogram)
//    "best_hour_of_week":33}      (null without history; 0 = Monday 00:00 UTC)
[[nodiscard]] boost::json::object engagement_summary(const Engagement& engagement,
                                                     std::int64_t now_ms);

} // namespace ember::personalize
