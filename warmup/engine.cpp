// Admission and learning: the hot path (key, admit, record) and the lazy
// rollovers it drives. Admin verbs, status and explain are in
// engine_admin.cpp; the state codec in state_codec.cpp.

#include "warmup/engine.hpp"

#include "warmup/engine_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ember::warmup {
namespace {

using namespace std::chrono;

constexpr std::size_t kMaxEvents = 10000;
constexpr std::size_t kMaxCachedDomains = 65536;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    });
    return out;
}

std::string reply_summary(const core::Outcome& o) {
    std::string text = o.text.size() > 240 ? o.text.substr(0, 237) + "..." : o.text;
    return fmt::format("{} {} {}", o.code, o.enhanced, text);
}

} // namespace

std::string Key::to_string() const {
    std::string out = sending_domain;
    if (!provider.empty())
        out += "/" + provider;
    if (!source.empty())
        out += "@" + source;
    return out;
}

std::size_t KeyHash::operator()(const Key& k) const {
    const std::hash<std::string> h;
    std::size_t seed = h(k.sending_domain);
    seed ^= h(k.provider) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
    seed ^= h(k.source) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
    return seed;
}

std::string_view reason_name(WaitReason r) {
    switch (r) {
    case WaitReason::Cap:
        return "cap";
    case WaitReason::Rate:
        return "rate";
    case WaitReason::Backoff:
        return "backoff";
    case WaitReason::Suspended:
        return "suspended";
    case WaitReason::Paused:
        return "paused";
    }
    return "?";
}

std::string_view event_name(EventType t) {
    switch (t) {
    case EventType::BackoffStarted:
        return "backoff_started";
    case EventType::BackoffEnded:
        return "backoff_ended";
    case EventType::Suspended:
        return "suspended";
    case EventType::Resumed:
        return "resumed";
    case EventType::Paused:
        return "paused";
    case EventType::CapReached:
        return "cap_reached";
    case EventType::RampAdvanced:
        return "ramp_advanced";
    case EventType::RampHeld:
        return "ramp_held";
    case EventType::DaySet:
        return "day_set";
    }
    return "?";
}

Engine::Engine(Config config) : config_(std::move(config)) {
    rebuild_index();
}

void Engine::reconfigure(Config config) {
    config_ = std::move(config);
    rebuild_index();
    provider_cache_.clear();
    std::erase_if(keys_, [this](const auto& entry) {
        return provider_index_.count(entry.first.provider) == 0;
    });
    for (auto& [domain, ds] : domains_) {
        const auto hours = static_cast<std::size_t>(
            duration_cast<std::chrono::hours>(guardrails_of(domain).window).count());
        if (ds.window.hours() != hours)
            ds.window.resize(hours);
        ds.rolled = -1; // a new [[sender]] entry may need its ramp
        std::erase_if(ds.paused_providers,
                      [this](const std::string& p) { return provider_index_.count(p) == 0; });
    }
}

void Engine::rebuild_index() {
    providers_ = ProviderMap(config_);
    provider_index_.clear();
    for (std::size_t i = 0; i < config_.providers.size(); ++i)
        provider_index_.emplace(config_.providers[i].name, i);
    senders_by_domain_.clear();
    for (const auto& s : config_.senders)
        senders_by_domain_[s.domain].push_back(&s);
    rules_by_provider_.assign(config_.providers.size(), {});
    for (const auto& r : config_.rules) {
        for (std::size_t i = 0; i < config_.providers.size(); ++i) {
            if (r.provider.empty() || r.provider == config_.providers[i].name)
                rules_by_provider_[i].push_back(&r);
        }
    }
}

Key Engine::key(std::string_view sending_domain, std::string_view recipient_domain,
                std::string_view source) {
    Key k;
    k.sending_domain = lower(sending_domain);
    const auto rd = lower(recipient_domain);
    auto it = provider_cache_.find(rd);
    if (it == provider_cache_.end()) {
        if (provider_cache_.size() >= kMaxCachedDomains)
            provider_cache_.clear();
        const auto mx = learned_mx_.find(rd);
        const auto match = providers_.match(rd, mx == learned_mx_.end() ? "" : mx->second);
        it = provider_cache_.emplace(rd, match.index).first;
    }
    k.provider = config_.providers[it->second].name;
    const auto* s = find_sender(k.sending_domain, source);
    if (s != nullptr && !s->source.empty())
        k.source = s->source;
    return k;
}

void Engine::learn_mx(std::string_view recipient_domain, std::string_view mx_host) {
    if (mx_host.empty())
        return;
    const auto rd = lower(recipient_domain);
    // A domain the lists decide never needs its MX (and a smarthost name
    // would only mislead).
    if (providers_.decided_by_domain(rd))
        return;
    auto mx = lower(mx_host);
    if (!mx.empty() && mx.back() == '.')
        mx.pop_back();
    if (learned_mx_.size() >= kMaxCachedDomains)
        learned_mx_.clear();
    learned_mx_[rd] = mx;
    provider_cache_.erase(rd);
}

const Provider& Engine::provider_of(const Key& key) const {
    const auto it = provider_index_.find(key.provider);
    return it == provider_index_.end() ? config_.catch_all() : config_.providers[it->second];
}

// Config::sender() through the per-domain index: O(entries of that domain).
const Sender* Engine::find_sender(std::string_view domain, std::string_view source) const {
    const auto it = senders_by_domain_.find(domain);
    if (it == senders_by_domain_.end())
        return nullptr;
    const Sender* domain_wide = nullptr;
    for (const auto* s : it->second) {
        if (!source.empty() && s->source == source)
            return s;
        if (s->source.empty())
            domain_wide = s;
    }
    return domain_wide;
}

const Guardrails& Engine::guardrails_of(std::string_view domain) const {
    const auto it = senders_by_domain_.find(domain);
    if (it == senders_by_domain_.end())
        return config_.guardrails;
    // The domain-wide entry's overrides win; else the first entry's.
    for (const auto* s : it->second) {
        if (s->source.empty())
            return s->guardrails;
    }
    return it->second.front()->guardrails;
}

Engine::SenderInfo Engine::sender_info(std::string_view domain, std::string_view source,
                                       const DomainState* ds, std::int64_t today) const {
    SenderInfo info;
    info.guardrails = &guardrails_of(domain);
    if (const auto* s = find_sender(domain, source)) {
        info.sender = s;
        info.schedule = config_.schedule(s->schedule);
        info.start = s->start.time_since_epoch().count();
        info.ramp_source = s->source;
        return info;
    }
    if (!config_.default_schedule.empty()) {
        info.schedule = config_.schedule(config_.default_schedule);
        info.start = ds != nullptr ? ds->first_day : today;
    }
    return info;
}

DomainState& Engine::domain_state(std::string_view domain, TimePoint now) {
    auto it = domains_.find(domain);
    if (it == domains_.end()) {
        DomainState ds;
        ds.window.resize(
            static_cast<std::size_t>(duration_cast<hours>(guardrails_of(domain).window).count()));
        ds.first_day = day_of(now).time_since_epoch().count();
        it = domains_.emplace(std::string(domain), std::move(ds)).first;
    }
    roll_domain(domain, it->second, now);
    return it->second;
}

// Every ramp of the domain crosses midnight before the window takes the new
// day's counts, so each midnight is judged on the day that just ended.
void Engine::roll_domain(std::string_view domain, DomainState& ds, TimePoint now) {
    const auto today = day_of(now).time_since_epoch().count();
    if (ds.rolled == today)
        return; // the common case: once a day per domain does the work below
    ds.rolled = today;
    std::vector<std::string> sources;
    if (const auto it = senders_by_domain_.find(domain); it != senders_by_domain_.end()) {
        for (const auto* s : it->second)
            sources.push_back(s->source);
    } else if (!config_.default_schedule.empty()) {
        sources.emplace_back();
    }
    for (const auto& source : sources) {
        auto [it, fresh] = ds.ramps.try_emplace(source, Ramp{today, 0});
        if (fresh || it->second.evaluated >= today)
            continue;
        const auto info = sender_info(domain, source, &ds, today);
        std::vector<Transition> transitions;
        it->second =
            advance(it->second, info.start, today, ds.window, *info.guardrails, &transitions);
        for (const auto& t : transitions) {
            emit(t.held ? EventType::RampHeld : EventType::RampAdvanced,
                 Key{std::string(domain), "", source}, start_of(Day(days(t.day))),
                 t.held ? fmt::format("held at day {}: {}", t.ramp_day, t.reason)
                        : fmt::format("day {}", t.ramp_day));
        }
    }
}

KeyState& Engine::key_state(const Key& key, TimePoint now) {
    auto& ks = keys_[key];
    const auto today = day_of(now).time_since_epoch().count();
    if (ks.day != today) {
        ks.day = today;
        ks.sent = 0;
        ks.cap_reached = false;
    }
    settle_backoff(key, ks, now);
    return ks;
}

void Engine::settle_backoff(const Key& key, KeyState& ks, TimePoint now) {
    if (ks.backoff.factor >= 1.0 || ks.backoff.active(config_.recovery, now))
        return;
    ks.backoff = Backoff{};
    emit(EventType::BackoffEnded, key, now, "rate back to the configured rate");
}

Admission Engine::admit(const Key& key, TimePoint now) {
    (void)domain_state(key.sending_domain, now);
    auto& ks = key_state(key, now);
    const auto v = view(key, now);
    auto a = decide(v, now);
    if (!a.allowed) {
        ++metrics_.throttled[static_cast<std::size_t>(a.reason)];
        return a;
    }
    if (v.rate) {
        TimePoint retry{};
        (void)ks.pacer.try_send(*v.rate, now, retry);
    }
    ++ks.sent;
    ks.count_send(now);
    ++metrics_.admitted;
    if (v.cap && ks.sent >= *v.cap && !ks.cap_reached) {
        ks.cap_reached = true;
        emit(EventType::CapReached, key, now,
             fmt::format("{} sent, cap {} (ramp day {})", ks.sent, *v.cap, v.ramp_day));
    }
    return a;
}

Admission Engine::peek(const Key& key, TimePoint now) const {
    return decide(view(key, now), now);
}

std::uint64_t Engine::remaining(const Key& key, TimePoint now) const {
    const auto v = view(key, now);
    const auto a = decide(v, now);
    if (!a.allowed)
        return 0;
    std::uint64_t n = UINT64_MAX;
    if (v.allowance)
        n = *v.allowance - std::min(*v.allowance, v.sent);
    if (v.rate)
        n = std::min(n, v.ks != nullptr ? v.ks->pacer.available(*v.rate, now)
                                        : Pacer{}.available(*v.rate, now));
    return n;
}

BatchAdmission Engine::admit_batch(const Key& key, std::span<Candidate> batch, TimePoint now) {
    BatchAdmission out;
    if (remaining(key, now) < batch.size()) {
        // NaN would break the strict weak order stable_sort relies on.
        for (auto& c : batch) {
            if (std::isnan(c.priority))
                c.priority = -std::numeric_limits<double>::infinity();
        }
        std::stable_sort(batch.begin(), batch.end(), [](const Candidate& a, const Candidate& b) {
            return a.priority > b.priority;
        });
    }
    for (; out.admitted < batch.size(); ++out.admitted) {
        out.rest = admit(key, now);
        if (!out.rest.allowed)
            break;
    }
    if (out.admitted == batch.size())
        out.rest = Admission{};
    return out;
}

Limits Engine::limits(const Key& key) const {
    const auto& p = provider_of(key);
    return {p.max_connections, p.max_messages_per_connection};
}

void Engine::record(const Key& key, const core::Outcome& outcome, bool hard_bounce, TimePoint now) {
    if (outcome.kind == core::OutcomeKind::Suppressed ||
        outcome.kind == core::OutcomeKind::Throttled) {
        refund(key, now, RefundScope::CapAndRate);
        return;
    }
    if (outcome.local) {
        refund(key, now, RefundScope::Cap);
        return;
    }
    (void)domain_state(key.sending_domain, now);
    (void)key_state(key, now);
    if (outcome.kind != core::OutcomeKind::Delivered) {
        auto it = provider_index_.find(key.provider);
        if (it == provider_index_.end())
            it = provider_index_.find(config_.catch_all().name);
        for (const auto* rule : rules_by_provider_[it->second]) {
            if (!rule->matches(outcome.code, outcome.enhanced, outcome.text))
                continue;
            apply_rule(key, *rule, outcome, now);
            if (rule->action == Action::RetryLater)
                return; // neither the cap nor the deferral rate count it
            break;
        }
    }
    count_outcome(key.sending_domain, outcome, hard_bounce, now);
}

void Engine::apply_rule(const Key& key, const Rule& rule, const core::Outcome& outcome,
                        TimePoint now) {
    auto& ks = key_state(key, now);
    const auto why = fmt::format("{} (rule at line {})", reply_summary(outcome), rule.line);
    switch (rule.action) {
    case Action::Backoff: {
        const double measured = std::max(ks.measured_rate(now), 1.0 / 60.0);
        if (ks.backoff.push_back(rule.factor, rule.duration, config_.recovery, now)) {
            ks.backoff.base_per_second = measured;
            emit(EventType::BackoffStarted, key, now,
                 fmt::format("rate x{} until {}: {}", ks.backoff.factor,
                             format_time(ks.backoff.until), why));
        }
        break;
    }
    case Action::Suspend: {
        const bool fresh = ks.suspended_until <= now;
        ks.suspended_until = std::max(ks.suspended_until, now + rule.duration);
        ks.suspended_reason = why;
        if (fresh)
            emit(EventType::Suspended, key, now,
                 fmt::format("until {}: {}", format_time(ks.suspended_until), why));
        break;
    }
    case Action::RetryLater:
        refund(key, now, RefundScope::Cap);
        break;
    }
}

void Engine::refund(const Key& key, TimePoint now, RefundScope scope) {
    const auto it = keys_.find(key);
    if (it == keys_.end())
        return;
    auto& ks = it->second;
    if (ks.day != day_of(now).time_since_epoch().count() || ks.sent == 0)
        return;
    --ks.sent;
    ++metrics_.refunded;
    if (scope != RefundScope::CapAndRate)
        return;
    ks.uncount_send(now);
    // The token goes back at today's rate (a backoff since the admit changes
    // the interval; the difference is one interval at most, once).
    if (const auto v = view(key, now); v.rate)
        ks.pacer.give_back(*v.rate);
}

void Engine::count_outcome(std::string_view domain, const core::Outcome& outcome, bool hard_bounce,
                           TimePoint now) {
    auto& c = domain_state(domain, now).window.at(hour_of(now));
    switch (outcome.kind) {
    case core::OutcomeKind::Delivered:
        ++c.delivered;
        break;
    case core::OutcomeKind::Deferred:
        ++c.deferred;
        break;
    case core::OutcomeKind::Failed:
        ++c.failed;
        if (hard_bounce)
            ++c.hard_bounces;
        break;
    case core::OutcomeKind::Suppressed:
    case core::OutcomeKind::Throttled:
        break; // nothing was sent
    }
}

void Engine::record_complaint(std::string_view sending_domain, TimePoint now) {
    const auto domain = lower(sending_domain);
    auto& ds = domain_state(domain, now);
    ++ds.window.at(hour_of(now)).complaints;
    check_complaints(domain, ds, now);
}

void Engine::record_bounce(std::string_view sending_domain, bool hard, TimePoint now) {
    // A DSN after a 250: the recipient was already counted as delivered, so
    // only the hard bounce itself moves the bounce rate. Soft DSNs (mailbox
    // full, ...) say nothing about list quality.
    if (!hard)
        return;
    auto& ds = domain_state(lower(sending_domain), now);
    ++ds.window.at(hour_of(now)).hard_bounces;
}

void Engine::check_complaints(std::string_view domain, DomainState& ds, TimePoint now) {
    if (ds.suspended)
        return;
    const auto& g = guardrails_of(domain);
    const auto hour = hour_of(now);
    const auto c = ds.window.sum(hour + 1 - static_cast<std::int64_t>(ds.window.hours()), hour + 1);
    if (c.delivered == 0 || c.delivered < g.min_volume ||
        c.complaint_rate() < g.suspend_complaint_rate)
        return;
    ds.suspended = true;
    ds.suspended_at = now;
    ds.suspended_reason = fmt::format(
        "complaint rate {} >= {} ({} complaints, {} delivered)", format_percent(c.complaint_rate()),
        format_percent(g.suspend_complaint_rate), c.complaints, c.delivered);
    emit(EventType::Suspended, Key{std::string(domain), "", ""}, now,
         ds.suspended_reason + "; resume with emberctl warmup resume");
}

void Engine::emit(EventType type, Key key, TimePoint now, std::string details) {
    ++metrics_.events[static_cast<std::size_t>(type)];
    if (events_.size() >= kMaxEvents)
        return; // the caller stopped draining; the metrics still count
    events_.push_back({type, std::move(key), now, std::move(details)});
}

std::vector<Event> Engine::take_events() {
    return std::exchange(events_, {});
}

} // namespace ember::warmup
