#include "personalize/engagement.hpp"

#include "core/ascii.hpp"
#include "personalize/time_text.hpp"

#include <algorithm>
#include <limits>

namespace ember::personalize {

namespace {

// 1970-01-01 was a Thursday: day 0 is weekday 3 when Monday is 0.
constexpr std::int64_t kEpochWeekday = 3;

std::int32_t day_of(std::int64_t unix_ms) {
    return static_cast<std::int32_t>(unix_ms / kMsPerDay);
}

void saturating_inc(std::uint32_t& n) {
    if (n < std::numeric_limits<std::uint32_t>::max())
        ++n;
}

void count_in_bucket(Engagement& e, EngagementKind kind, std::int32_t day) {
    const std::int32_t newest = e.days.empty() ? day : std::max(day, e.days.back().day);
    if (day <= newest - kDayBucketsKept)
        return; // older than anything the counts look at
    auto it = std::lower_bound(e.days.begin(), e.days.end(), day,
                               [](const DayBucket& b, std::int32_t d) { return b.day < d; });
    if (it == e.days.end() || it->day != day)
        it = e.days.insert(it, DayBucket{day, 0, 0, 0});
    saturating_inc(kind == EngagementKind::Delivered ? it->delivered
                   : kind == EngagementKind::Open    ? it->opens
                                                     : it->clicks);
    const auto first_kept =
        std::find_if(e.days.begin(), e.days.end(),
                     [newest](const DayBucket& b) { return b.day > newest - kDayBucketsKept; });
    e.days.erase(e.days.begin(), first_kept);
}

std::int64_t last_engaged(const Engagement& e) {
    return std::max(e.last_open_ms, e.last_click_ms);
}

boost::json::value time_or_null(std::int64_t ms) {
    if (ms <= 0)
        return nullptr;
    return boost::json::value(format_rfc3339(ms));
}

} // namespace

std::string_view engagement_kind_name(EngagementKind kind) {
    switch (kind) {
    case EngagementKind::Delivered:
        return "delivered";
    case EngagementKind::Open:
        return "open";
    case EngagementKind::Click:
        return "click";
    }
    return "delivered";
}

std::optional<EngagementKind> parse_engagement_kind(std::string_view name) {
    const auto lower = core::ascii_lower(name);
    if (lower == "delivered")
        return EngagementKind::Delivered;
    if (lower == "open" || lower == "opened")
        return EngagementKind::Open;
    if (lower == "click" || lower == "clicked")
        return EngagementKind::Click;
    return std::nullopt;
}

std::string_view engagement_tier_name(EngagementTier tier) {
    switch (tier) {
    case EngagementTier::Never:
        return "never";
    case EngagementTier::Cold:
        return "cold";
    case EngagementTier::Warm:
        return "warm";
    case EngagementTier::Hot:
        return "hot";
    }
    return "never";
}

std::size_t hour_of_week(std::int64_t unix_ms) {
    const std::int64_t hours = unix_ms >= 0 ? unix_ms / kMsPerHour : (unix_ms + 1) / kMsPerHour - 1;
    const std::int64_t week = static_cast<std::int64_t>(kHoursPerWeek);
    const std::int64_t shifted = hours + kEpochWeekday * 24;
    return static_cast<std::size_t>(((shifted % week) + week) % week);
}

void histogram_add(HourHistogram& histogram, std::size_t hour) {
    if (hour >= kHoursPerWeek)
        return;
    if (histogram[hour] >= kHistogramCap)
        for (auto& n : histogram)
            n /= 2;
    ++histogram[hour];
}

std::uint64_t histogram_total(const HourHistogram& histogram) {
    std::uint64_t total = 0;
    for (const auto n : histogram)
        total += n;
    return total;
}

Engagement record_engagement(Engagement engagement, EngagementKind kind, std::int64_t time_ms) {
    if (time_ms <= 0)
        return engagement;
    auto& e = engagement;
    switch (kind) {
    case EngagementKind::Delivered:
        e.last_delivery_ms = std::max(e.last_delivery_ms, time_ms);
        break;
    case EngagementKind::Open:
        e.last_open_ms = std::max(e.last_open_ms, time_ms);
        break;
    case EngagementKind::Click:
        e.last_click_ms = std::max(e.last_click_ms, time_ms);
        break;
    }
    count_in_bucket(e, kind, day_of(time_ms));
    if (kind != EngagementKind::Delivered)
        histogram_add(e.hours, hour_of_week(time_ms));
    return engagement;
}

EngagementCounts counts_within(const Engagement& engagement, std::int64_t now_ms,
                               std::int32_t days) {
    const std::int32_t today = day_of(std::max<std::int64_t>(now_ms, 0));
    EngagementCounts c;
    for (const auto& b : engagement.days) {
        if (b.day <= today - days)
            continue;
        c.delivered = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(std::uint64_t{c.delivered} + b.delivered, UINT32_MAX));
        c.opens = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(std::uint64_t{c.opens} + b.opens, UINT32_MAX));
        c.clicks = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(std::uint64_t{c.clicks} + b.clicks, UINT32_MAX));
    }
    return c;
}

EngagementTier engagement_tier(const Engagement& engagement, std::int64_t now_ms) {
    const std::int64_t last = last_engaged(engagement);
    if (last <= 0)
        return EngagementTier::Never;
    const auto recent = counts_within(engagement, now_ms, kHotDays);
    if (recent.clicks > 0 ||
        std::uint64_t{recent.opens} + recent.clicks >= std::uint64_t{kHotMinEngagements})
        return EngagementTier::Hot;
    const std::int32_t today = day_of(std::max<std::int64_t>(now_ms, 0));
    if (day_of(last) > today - kWarmDays)
        return EngagementTier::Warm;
    return EngagementTier::Cold;
}

double priority_score(const Engagement& engagement, std::int64_t now_ms) {
    const auto c30 = counts_within(engagement, now_ms, kHotDays);
    const auto c90 = counts_within(engagement, now_ms, kWarmDays);
    const auto capped = [](std::uint64_t n, std::uint64_t cap) {
        return static_cast<double>(std::min(n, cap));
    };
    switch (engagement_tier(engagement, now_ms)) {
    case EngagementTier::Hot:
        return 300 + capped(2 * std::uint64_t{c30.clicks} + c30.opens, 99);
    case EngagementTier::Warm:
        return 200 + capped(2 * std::uint64_t{c90.clicks} + c90.opens, 99);
    case EngagementTier::Cold:
        return 100 - capped(c90.delivered, 50);
    case EngagementTier::Never:
        break;
    }
    if (engagement.last_delivery_ms <= 0)
        return 150;
    return 50 - capped(c90.delivered, 50);
}

boost::json::object engagement_summary(const Engagement& engagement, std::int64_t now_ms) {
    const auto c30 = counts_within(engagement, now_ms, kHotDays);
    const auto c90 = counts_within(engagement, now_ms, kWarmDays);
    const auto total = histogram_total(engagement.hours);
    boost::json::object out;
    out["tier"] = engagement_tier_name(engagement_tier(engagement, now_ms));
    // Whole numbers by construction; an integer reads better than 3.12E2.
    out["score"] = static_cast<std::int64_t>(priority_score(engagement, now_ms));
    out["last_delivery"] = time_or_null(engagement.last_delivery_ms);
    out["last_open"] = time_or_null(engagement.last_open_ms);
    out["last_click"] = time_or_null(engagement.last_click_ms);
    out["delivered_30d"] = c30.delivered;
    out["opens_30d"] = c30.opens;
    out["clicks_30d"] = c30.clicks;
    out["delivered_90d"] = c90.delivered;
    out["opens_90d"] = c90.opens;
    out["clicks_90d"] = c90.clicks;
    out["history"] = total;
    if (total == 0) {
        out["best_hour_of_week"] = nullptr;
    } else {
        const auto best = std::max_element(engagement.hours.begin(), engagement.hours.end());
        out["best_hour_of_week"] = static_cast<std::uint64_t>(best - engagement.hours.begin());
    }
    return out;
}

} // namespace ember::personalize
