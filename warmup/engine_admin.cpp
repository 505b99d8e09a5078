// The admin side of the Engine: pause, resume, set-day, status and explain.
// These walk the state (O(keys)); they run on emberctl requests, never per
// recipient.

#include "warmup/engine_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <tuple>

namespace ember::warmup {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    });
    return out;
}

std::string when(const std::optional<TimePoint>& t) {
    return t ? format_time(*t) : "-";
}

} // namespace

AdminResult Engine::pause(std::string_view domain_in, std::string_view provider, TimePoint now) {
    const auto domain = lower(domain_in);
    if (!provider.empty() && provider_index_.count(provider) == 0)
        return {false, fmt::format("unknown provider \"{}\"", std::string(provider))};
    auto& ds = domain_state(domain, now);
    if (provider.empty()) {
        if (ds.paused)
            return {true, domain + " is already paused"};
        ds.paused = true;
    } else if (!ds.paused_providers.insert(std::string(provider)).second) {
        return {true, fmt::format("{} is already paused for {}", domain, provider)};
    }
    emit(EventType::Paused, Key{domain, std::string(provider), ""}, now, "by the admin");
    return {true, provider.empty() ? domain + " paused"
                                   : fmt::format("{} paused for {}", domain, provider)};
}

AdminResult Engine::resume(std::string_view domain_in, std::string_view provider_in,
                           TimePoint now) {
    const auto domain = lower(domain_in);
    const std::string provider(provider_in);
    if (!provider.empty() && provider_index_.count(provider) == 0)
        return {false, fmt::format("unknown provider \"{}\"", provider)};
    auto& ds = domain_state(domain, now);
    bool changed = false;
    if (provider.empty()) {
        changed = ds.paused || ds.suspended || !ds.paused_providers.empty();
        ds.paused = false;
        ds.suspended = false;
        ds.suspended_reason.clear();
        ds.paused_providers.clear();
    } else {
        changed = ds.paused_providers.erase(provider) != 0;
    }
    for (auto& [key, ks] : keys_) {
        if (key.sending_domain != domain || (!provider.empty() && key.provider != provider))
            continue;
        if (ks.suspended_until > now) {
            changed = true;
            ks.suspended_until = {};
            ks.suspended_reason.clear();
        }
    }
    std::string note;
    if (!provider.empty() && (ds.paused || ds.suspended))
        note = fmt::format("; the whole domain is still {} (warmup resume {})",
                           ds.paused ? "paused" : "suspended", domain);
    if (!changed)
        return {true, fmt::format("{} was neither paused nor suspended{}",
                                  Key{domain, provider, ""}.to_string(), note)};
    emit(EventType::Resumed, Key{domain, provider, ""}, now, "by the admin");
    return {true, fmt::format("{} resumed{}", Key{domain, provider, ""}.to_string(), note)};
}

AdminResult Engine::set_day(std::string_view domain_in, std::uint32_t day, TimePoint now) {
    const auto domain = lower(domain_in);
    if (day == 0)
        return {false, "the ramp starts at day 1"};
    const bool listed = senders_by_domain_.count(domain) != 0;
    if (!listed && config_.default_schedule.empty())
        return {false, domain + " is not warming up (no [[sender]] entry and no default "
                                "schedule)"};
    auto& ds = domain_state(domain, now);
    const auto today = day_of(now).time_since_epoch().count();
    for (auto& [source, ramp] : ds.ramps) {
        const auto info = sender_info(domain, source, &ds, today);
        const auto calendar = std::max(today, info.start) - info.start + 1;
        ramp.offset = static_cast<std::int32_t>(static_cast<std::int64_t>(day) - calendar);
        ramp.evaluated = today;
    }
    emit(EventType::DaySet, Key{domain, "", ""}, now, fmt::format("day {} by the admin", day));
    return {true, fmt::format("{} is at ramp day {}", domain, day)};
}

std::vector<KeyStatus> Engine::status(std::string_view domain_in, TimePoint now) const {
    const auto filter = lower(domain_in);
    // Ordered by domain, source, then the config's provider order.
    std::set<std::tuple<std::string, std::string, std::size_t, std::string>> rows;
    const auto add = [&](const Key& k) {
        if (!filter.empty() && k.sending_domain != filter)
            return;
        const auto it = provider_index_.find(k.provider);
        if (it != provider_index_.end())
            rows.emplace(k.sending_domain, k.source, it->second, k.provider);
    };
    for (const auto& s : config_.senders) {
        for (const auto& p : config_.providers)
            add(Key{s.domain, p.name, s.source});
    }
    for (const auto& [key, ks] : keys_)
        add(key);
    std::vector<KeyStatus> out;
    for (const auto& [domain, source, index, provider] : rows)
        out.push_back(key_status(Key{domain, provider, source}, now));
    return out;
}

namespace {

std::string provider_reason(const ProviderMatch& match, const Provider& provider,
                            const std::string& domain, const std::string& mx) {
    switch (match.by) {
    case MatchedBy::Domain:
        return fmt::format("{} matches \"{}\" in the domains of provider {} (line {})", domain,
                           match.pattern, provider.name, provider.line);
    case MatchedBy::Mx:
        return fmt::format("MX {} matches \"{}\" in the mx of provider {} (line {})", mx,
                           match.pattern, provider.name, provider.line);
    case MatchedBy::CatchAll:
        break;
    }
    return fmt::format("{} is in no provider's domains{}; the catch-all provider {} applies",
                       domain,
                       mx.empty() ? " and its MX is not known yet"
                                  : fmt::format(" and MX {} matches no mx pattern", mx),
                       provider.name);
}

std::string sender_reason(const Sender* s, const std::string& domain,
                          const std::string& default_schedule) {
    if (s != nullptr)
        return fmt::format("[[sender]] {}{} (line {}): schedule {} from {}", s->domain,
                           s->source.empty() ? "" : " source " + s->source, s->line, s->schedule,
                           format_day(s->start));
    if (!default_schedule.empty())
        return fmt::format("{} has no [[sender]] entry: the default schedule {} applies from the "
                           "first day it sent",
                           domain, default_schedule);
    return fmt::format("{} has no [[sender]] entry and there is no default schedule: no daily cap",
                       domain);
}

} // namespace

Explanation Engine::explain(std::string_view sending_domain, std::string_view recipient,
                            TimePoint now, std::string_view mx_host,
                            std::string_view source) const {
    Explanation e;
    const auto at = recipient.rfind('@');
    e.recipient_domain = lower(at == std::string_view::npos ? recipient : recipient.substr(at + 1));
    e.mx_host = lower(mx_host);
    if (e.mx_host.empty()) {
        if (const auto it = learned_mx_.find(e.recipient_domain); it != learned_mx_.end())
            e.mx_host = it->second;
    }
    const auto match = providers_.match(e.recipient_domain, e.mx_host);
    const auto& provider = config_.providers[match.index];
    e.key.sending_domain = lower(sending_domain);
    e.key.provider = provider.name;
    e.provider_reason = provider_reason(match, provider, e.recipient_domain, e.mx_host);
    const auto* s = find_sender(e.key.sending_domain, source);
    if (s != nullptr)
        e.key.source = s->source;
    e.sender_reason = sender_reason(s, e.key.sending_domain, config_.default_schedule);
    for (const auto* rule : rules_by_provider_[match.index])
        e.rules.push_back(rule->describe());
    e.limits = limits(e.key);
    e.status = key_status(e.key, now);
    e.admission = peek(e.key, now);
    return e;
}

std::string format_explanation(const Explanation& e) {
    const auto& s = e.status;
    std::string out;
    out += fmt::format("key:       {}\n", e.key.to_string());
    out += fmt::format("provider:  {}\n", e.provider_reason);
    out += fmt::format("sender:    {}\n", e.sender_reason);
    if (!s.schedule.empty())
        out += fmt::format("ramp:      day {} of schedule {}\n", s.ramp_day, s.schedule);
    out += fmt::format(
        "today:     {} sent, cap {}{}\n", s.sent_today,
        s.cap ? std::to_string(*s.cap) : "unlimited",
        s.allowed_by_now ? fmt::format(" ({} by the end of this hour)", *s.allowed_by_now) : "");
    out += fmt::format("rate:      {}{}\n", s.rate ? format_rate_per_second(*s.rate) : "unlimited",
                       s.rate_factor < 1.0 ? fmt::format(" (backoff x{:.3g}, hold until {})",
                                                         s.rate_factor, when(s.backoff_until))
                                           : "");
    out += fmt::format(
        "limits:    {} connections, {} messages per connection\n",
        e.limits.max_connections ? std::to_string(e.limits.max_connections) : "unlimited",
        e.limits.max_messages_per_connection ? std::to_string(e.limits.max_messages_per_connection)
                                             : "unlimited");
    for (const auto& r : e.rules)
        out += "rule:      " + r + "\n";
    if (e.admission.allowed)
        out += "decision:  would go now\n";
    else
        out += fmt::format("decision:  waits ({}) until {}: {}\n", reason_name(e.admission.reason),
                           format_time(e.admission.until), e.admission.detail);
    return out;
}

} // namespace ember::warmup
