#include "personalize/send_time.hpp"

#include "personalize/time_text.hpp"

#include <algorithm>

namespace ember::personalize {

std::string_view send_time_source_name(SendTimeSource source) {
    switch (source) {
    case SendTimeSource::Contact:
        return "contact";
    case SendTimeSource::Domain:
        return "domain";
    case SendTimeSource::Now:
        return "now";
    }
    return "now";
}

BestHour best_hour_in_window(std::int64_t now_ms, core::Duration within,
                             const HourHistogram& histogram) {
    BestHour best{now_ms, 0};
    if (within.count() <= 0)
        return best;
    const std::int64_t end = now_ms + within.count();
    // The hour `now` falls in (floor, also for a negative now).
    const std::int64_t hour_start = now_ms >= 0
                                        ? now_ms / kMsPerHour * kMsPerHour
                                        : (now_ms - kMsPerHour + 1) / kMsPerHour * kMsPerHour;
    for (std::size_t k = 0; k < kHoursPerWeek; ++k) {
        const std::int64_t start = hour_start + static_cast<std::int64_t>(k) * kMsPerHour;
        if (start > end)
            break;
        const std::int64_t at = std::max(start, now_ms);
        const auto count = histogram[hour_of_week(at)];
        if (count > best.count)
            best = {at, count};
    }
    return best;
}

SendTime choose_send_time(std::int64_t now_ms, core::Duration within, const HourHistogram& contact,
                          const HourHistogram& domain, const SendTimeConfig& config) {
    if (within.count() <= 0)
        return {now_ms, SendTimeSource::Now};
    within = std::min(within, config.max_window);
    if (histogram_total(contact) >= config.min_contact_events) {
        const auto best = best_hour_in_window(now_ms, within, contact);
        if (best.count > 0)
            return {best.at_ms, SendTimeSource::Contact};
    }
    if (histogram_total(domain) >= config.min_domain_events) {
        const auto best = best_hour_in_window(now_ms, within, domain);
        if (best.count > 0)
            return {best.at_ms, SendTimeSource::Domain};
    }
    return {now_ms, SendTimeSource::Now};
}

} // namespace ember::personalize
