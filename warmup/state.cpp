#include "warmup/state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ember::warmup {
namespace {

using namespace std::chrono;

std::int64_t to_ns(TimePoint t) {
    return duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

TimePoint ceil_ms(std::int64_t ns) {
    return TimePoint(ceil<milliseconds>(nanoseconds(ns)));
}

std::int64_t interval_ns(double per_second) {
    return std::max<std::int64_t>(1, std::llround(1e9 / per_second));
}

std::int64_t tolerance_ns(double per_second) {
    const double burst = std::max(1.0, std::floor(per_second));
    return static_cast<std::int64_t>(burst - 1) * interval_ns(per_second);
}

double ratio(std::uint64_t num, std::uint64_t den) {
    return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

} // namespace

bool Pacer::try_send(double per_second, TimePoint now, TimePoint& retry) {
    const auto now_ns = to_ns(now);
    const auto allowed_at = tat_ns - tolerance_ns(per_second);
    if (allowed_at > now_ns) {
        retry = ceil_ms(allowed_at);
        return false;
    }
    tat_ns = std::max(tat_ns, now_ns) + interval_ns(per_second);
    return true;
}

TimePoint Pacer::next_conforming(double per_second, TimePoint now) const {
    return std::max(now, ceil_ms(tat_ns - tolerance_ns(per_second)));
}

std::uint64_t Pacer::available(double per_second, TimePoint now) const {
    const auto now_ns = to_ns(now);
    const auto from = std::max(tat_ns, now_ns);
    const auto slack = now_ns + tolerance_ns(per_second) - from;
    if (slack < 0)
        return 0;
    return static_cast<std::uint64_t>(slack / interval_ns(per_second)) + 1;
}

void Pacer::give_back(double per_second) {
    tat_ns -= interval_ns(per_second);
}

bool Backoff::active(const Recovery& r, TimePoint now) const {
    return multiplier(r, now) < 1.0;
}

double Backoff::multiplier(const Recovery& r, TimePoint now) const {
    if (factor >= 1.0 || now < until)
        return factor;
    const auto steps = (now - until) / r.interval;
    return std::min(1.0, factor + r.step * static_cast<double>(steps));
}

bool Backoff::push_back(double rule_factor, core::Duration hold, const Recovery& r, TimePoint now) {
    const double current = multiplier(r, now);
    const bool was_active = current < 1.0;
    if (was_active && now - last_decrease < r.interval) {
        until = std::max(until, now + hold);
        factor = current; // recovery restarts from where it is after the hold
        return false;
    }
    factor = std::max(kMinMultiplier, current * rule_factor);
    until = now + hold;
    last_decrease = now;
    return !was_active;
}

Counts& Counts::operator+=(const Counts& o) {
    delivered += o.delivered;
    deferred += o.deferred;
    failed += o.failed;
    hard_bounces += o.hard_bounces;
    complaints += o.complaints;
    return *this;
}

double Counts::bounce_rate() const {
    return ratio(hard_bounces, delivered + failed);
}
double Counts::deferral_rate() const {
    return ratio(deferred, attempts());
}
double Counts::complaint_rate() const {
    return ratio(complaints, delivered);
}

void Window::resize(std::size_t hours) {
    const auto old = ring_;
    ring_.assign(std::max<std::size_t>(hours, 1), Bucket{});
    std::int64_t newest = -1;
    for (const auto& b : old)
        newest = std::max(newest, b.hour);
    for (const auto& b : old) {
        if (b.hour >= 0 && b.hour > newest - static_cast<std::int64_t>(ring_.size()))
            put(b);
    }
}

Counts& Window::at(std::int64_t hour) {
    auto& b = ring_[static_cast<std::size_t>(hour) % ring_.size()];
    if (b.hour != hour) {
        b.hour = hour;
        b.counts = {};
    }
    return b.counts;
}

Counts Window::sum(std::int64_t from, std::int64_t to) const {
    Counts out;
    for (const auto& b : ring_) {
        if (b.hour >= from && b.hour < to)
            out += b.counts;
    }
    return out;
}

void Window::put(const Bucket& b) {
    if (b.hour < 0)
        return;
    auto& slot = ring_[static_cast<std::size_t>(b.hour) % ring_.size()];
    if (slot.hour <= b.hour)
        slot = b;
}

std::int64_t hour_of(TimePoint t) {
    return floor<hours>(t.time_since_epoch()).count();
}

Verdict judge(const Counts& c, const Guardrails& g) {
    if (c.attempts() == 0 || c.attempts() < g.min_volume)
        return {};
    const auto over = [](double rate, double limit, std::uint64_t n) {
        return n > 0 && rate >= limit;
    };
    if (over(c.complaint_rate(), g.max_complaint_rate, c.complaints))
        return {true, fmt::format("complaint rate {} >= {}", format_percent(c.complaint_rate()),
                                  format_percent(g.max_complaint_rate))};
    if (over(c.bounce_rate(), g.max_bounce_rate, c.hard_bounces))
        return {true, fmt::format("hard-bounce rate {} >= {}", format_percent(c.bounce_rate()),
                                  format_percent(g.max_bounce_rate))};
    if (over(c.deferral_rate(), g.max_deferral_rate, c.deferred))
        return {true, fmt::format("deferral rate {} >= {}", format_percent(c.deferral_rate()),
                                  format_percent(g.max_deferral_rate))};
    return {};
}

std::uint32_t ramp_day(const Ramp& r, std::int64_t start, std::int64_t day) {
    const std::int64_t d = std::max<std::int64_t>(day, start) - start + 1 + r.offset;
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(d, 1, 1'000'000));
}

Ramp advance(Ramp r, std::int64_t start, std::int64_t today, const Window& w, const Guardrails& g,
             std::vector<Transition>* out) {
    if (r.evaluated >= today)
        return r;
    // Every count is older than the midnight after `evaluated` (counting
    // happens only after a rollover), so midnights more than a window past it
    // see no data and advance without a verdict.
    const auto window_days = static_cast<std::int64_t>((w.hours() + 23) / 24);
    const auto last = std::min(today, r.evaluated + window_days);
    for (auto d = std::max(r.evaluated + 1, start + 1); d <= last; ++d) {
        const auto midnight = d * 24;
        const auto verdict =
            judge(w.sum(midnight - static_cast<std::int64_t>(w.hours()), midnight), g);
        if (verdict.hold)
            --r.offset;
        if (out != nullptr)
            out->push_back({d, ramp_day(r, start, d), verdict.hold, verdict.reason});
    }
    r.evaluated = today;
    return r;
}

double KeyState::measured_rate(TimePoint now) const {
    const auto m = floor<minutes>(now.time_since_epoch()).count();
    const std::uint32_t current = m == minute ? this_minute : 0;
    const std::uint32_t previous = m == minute ? last_minute : (m == minute + 1 ? this_minute : 0);
    return static_cast<double>(std::max(current, previous)) / 60.0;
}

void KeyState::count_send(TimePoint now) {
    const auto m = floor<minutes>(now.time_since_epoch()).count();
    if (m != minute) {
        last_minute = m == minute + 1 ? this_minute : 0;
        this_minute = 0;
        minute = m;
    }
    ++this_minute;
}

void KeyState::uncount_send(TimePoint now) {
    if (floor<minutes>(now.time_since_epoch()).count() == minute && this_minute > 0)
        --this_minute;
}

} // namespace ember::warmup
