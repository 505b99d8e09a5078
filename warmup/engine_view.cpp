// The read side of the Engine: the effective view of a key and the
// admission decision on it. Every function here is const and O(1) once the
// domain has been rolled over (admit does that first).

#include "warmup/engine_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ember::warmup {
namespace {

using namespace std::chrono;

// Indefinite holds (an admin pause, a complaint suspension) are re-asked
// every few minutes, so a resume takes effect without anyone rescheduling.
constexpr auto kRecheck = minutes(5);

std::uint64_t share_of(std::uint64_t cap, double share) {
    if (share >= 1.0)
        return cap;
    // The epsilon keeps 30 x 0.6 at 18 whatever the rounding of 0.6.
    const auto part =
        static_cast<std::uint64_t>(std::floor(static_cast<double>(cap) * share + 1e-9));
    return std::max<std::uint64_t>(part, 1);
}

// Hourly spread: by the end of UTC hour h, ceil(cap * (h + 1) / 24).
std::uint64_t spread_allowance(std::uint64_t cap, TimePoint now) {
    const auto h =
        static_cast<std::uint64_t>(duration_cast<hours>(now - start_of(day_of(now))).count());
    return (cap * (h + 1) + 23) / 24;
}

Admission wait(WaitReason reason, TimePoint until, std::string detail) {
    return {false, reason, until, std::move(detail)};
}

} // namespace

Engine::View Engine::view(const Key& key, TimePoint now) const {
    View v;
    v.key = &key;
    v.provider = &provider_of(key);
    v.today = day_of(now).time_since_epoch().count();
    if (const auto it = domains_.find(key.sending_domain); it != domains_.end())
        v.ds = &it->second;
    if (const auto it = keys_.find(key); it != keys_.end())
        v.ks = &it->second;
    v.sender = sender_info(key.sending_domain, key.source, v.ds, v.today);
    if (v.ks != nullptr) {
        v.sent = v.ks->sent_on(v.today);
        v.multiplier = v.ks->backoff.multiplier(config_.recovery, now);
    }
    if (v.sender.schedule != nullptr) {
        Ramp ramp{v.today, 0};
        if (v.ds != nullptr) {
            if (const auto r = v.ds->ramps.find(v.sender.ramp_source); r != v.ds->ramps.end())
                ramp = advance(r->second, v.sender.start, v.today, v.ds->window,
                               *v.sender.guardrails, nullptr);
        }
        v.ramp_day = ramp_day(ramp, v.sender.start, v.today);
        if (const auto cap = v.sender.schedule->cap(v.ramp_day)) {
            v.cap = share_of(*cap, v.provider->share);
            v.allowance = v.sender.schedule->spread == Spread::Hourly
                              ? std::min(*v.cap, spread_allowance(*v.cap, now))
                              : *v.cap;
        }
    }
    const auto& configured = v.provider->max_rate;
    if (!configured.unlimited())
        v.rate = configured.per_second() * v.multiplier;
    else if (v.multiplier < 1.0 && v.ks != nullptr)
        v.rate = v.ks->backoff.base_per_second * v.multiplier;
    return v;
}

Admission Engine::decide(const View& v, TimePoint now) const {
    if (v.ds != nullptr) {
        if (v.ds->paused)
            return wait(WaitReason::Paused, now + kRecheck, "the sending domain is paused");
        if (v.ds->suspended)
            return wait(WaitReason::Suspended, now + kRecheck,
                        "the sending domain is suspended: " + v.ds->suspended_reason);
        if (v.ds->paused_providers.count(v.key->provider) != 0)
            return wait(WaitReason::Paused, now + kRecheck,
                        "the sending domain is paused for " + v.key->provider);
    }
    if (v.ks != nullptr && v.ks->suspended_until > now)
        return wait(WaitReason::Suspended, v.ks->suspended_until,
                    "suspended by " + v.ks->suspended_reason);
    if (v.cap && v.sent >= *v.cap)
        return wait(WaitReason::Cap, start_of(Day(days(v.today + 1))),
                    fmt::format("today's cap of {} is spent (ramp day {})", *v.cap, v.ramp_day));
    if (v.allowance && v.sent >= *v.allowance)
        return wait(WaitReason::Cap, ceil<hours>(now + milliseconds(1)),
                    fmt::format("{} of today's {} may go by the end of this hour (spread)",
                                *v.allowance, *v.cap));
    if (v.rate) {
        const auto at = v.ks != nullptr ? v.ks->pacer.next_conforming(*v.rate, now) : now;
        if (at > now) {
            const bool backoff = v.multiplier < 1.0;
            return wait(
                backoff ? WaitReason::Backoff : WaitReason::Rate, at,
                fmt::format("rate {}{}", format_rate_per_second(*v.rate),
                            backoff ? fmt::format(" (backoff x{:.3g})", v.multiplier) : ""));
        }
    }
    return {};
}

GuardrailStatus Engine::guardrail_status(std::string_view domain, TimePoint now) const {
    GuardrailStatus g;
    g.thresholds = guardrails_of(domain);
    const auto it = domains_.find(domain);
    if (it == domains_.end())
        return g;
    const auto hour = hour_of(now);
    g.counts = it->second.window.sum(
        hour + 1 - static_cast<std::int64_t>(it->second.window.hours()), hour + 1);
    g.bounce_rate = g.counts.bounce_rate();
    g.deferral_rate = g.counts.deferral_rate();
    g.complaint_rate = g.counts.complaint_rate();
    g.judged = g.counts.attempts() > 0 && g.counts.attempts() >= g.thresholds.min_volume;
    return g;
}

KeyStatus Engine::key_status(const Key& key, TimePoint now) const {
    const auto v = view(key, now);
    KeyStatus s;
    s.key = key;
    if (v.sender.schedule != nullptr) {
        s.schedule = v.sender.schedule->name;
        s.ramp_day = v.ramp_day;
    }
    s.sent_today = v.sent;
    s.cap = v.cap;
    if (v.cap && v.allowance != v.cap)
        s.allowed_by_now = v.allowance;
    s.rate = v.rate;
    s.configured_rate = v.provider->max_rate;
    s.rate_factor = v.multiplier;
    if (v.ks != nullptr) {
        if (v.multiplier < 1.0 && v.ks->backoff.until > now)
            s.backoff_until = v.ks->backoff.until;
        if (v.ks->suspended_until > now) {
            s.suspended_until = v.ks->suspended_until;
            s.suspended_reason = v.ks->suspended_reason;
        }
    }
    if (v.ds != nullptr) {
        s.paused = v.ds->paused_providers.count(key.provider) != 0;
        s.domain_paused = v.ds->paused;
        s.domain_suspended = v.ds->suspended;
        s.domain_suspended_reason = v.ds->suspended_reason;
    }
    s.guardrails = guardrail_status(key.sending_domain, now);
    return s;
}

} // namespace ember::warmup
