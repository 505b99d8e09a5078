#include "warmup/format.hpp"

#include <fmt/format.h>

namespace ember::warmup {
namespace {

namespace json = boost::json;

json::value opt_time(const std::optional<TimePoint>& t) {
    return t ? json::value(format_time(*t)) : json::value(nullptr);
}

json::object key_json(const Key& k) {
    return {{"sending_domain", k.sending_domain}, {"provider", k.provider}, {"source", k.source}};
}

json::object guardrails_json(const GuardrailStatus& g) {
    const auto& c = g.counts;
    return {
        {"delivered", c.delivered},
        {"deferred", c.deferred},
        {"failed", c.failed},
        {"hard_bounces", c.hard_bounces},
        {"complaints", c.complaints},
        {"bounce_rate", g.bounce_rate},
        {"deferral_rate", g.deferral_rate},
        {"complaint_rate", g.complaint_rate},
        {"judged", g.judged},
        {"window_hours",
         std::chrono::duration_cast<std::chrono::hours>(g.thresholds.window).count()},
        {"max_bounce_rate", g.thresholds.max_bounce_rate},
        {"max_deferral_rate", g.thresholds.max_deferral_rate},
        {"max_complaint_rate", g.thresholds.max_complaint_rate},
        {"suspend_complaint_rate", g.thresholds.suspend_complaint_rate},
    };
}

std::string state_text(const KeyStatus& s) {
    if (s.domain_suspended)
        return "suspended (domain): " + s.domain_suspended_reason;
    if (s.domain_paused)
        return "paused (domain)";
    if (s.paused)
        return "paused";
    if (s.suspended_until)
        return "suspended until " + format_time(*s.suspended_until);
    if (s.rate_factor < 1.0)
        return fmt::format("backoff x{:.3g}{}", s.rate_factor,
                           s.backoff_until ? " until " + format_time(*s.backoff_until)
                                           : " (recovering)");
    if (s.cap && s.sent_today >= *s.cap)
        return "cap reached";
    return "ok";
}

} // namespace

json::object to_json(const Admission& a) {
    if (a.allowed)
        return {{"allowed", true}};
    return {{"allowed", false},
            {"reason", std::string(reason_name(a.reason))},
            {"until", format_time(a.until)},
            {"detail", a.detail}};
}

json::object to_json(const KeyStatus& s) {
    json::object o = key_json(s.key);
    o["schedule"] = s.schedule.empty() ? json::value(nullptr) : json::value(s.schedule);
    o["ramp_day"] = s.ramp_day;
    o["sent_today"] = s.sent_today;
    o["cap"] = s.cap ? json::value(*s.cap) : json::value(nullptr);
    o["allowed_by_now"] = s.allowed_by_now ? json::value(*s.allowed_by_now) : json::value(nullptr);
    o["rate_per_second"] = s.rate ? json::value(*s.rate) : json::value(nullptr);
    o["configured_rate"] = s.configured_rate.to_string();
    o["rate_factor"] = s.rate_factor;
    o["backoff_until"] = opt_time(s.backoff_until);
    o["suspended_until"] = opt_time(s.suspended_until);
    o["suspended_reason"] = s.suspended_reason;
    o["paused"] = s.paused;
    o["domain_paused"] = s.domain_paused;
    o["domain_suspended"] = s.domain_suspended;
    o["domain_suspended_reason"] = s.domain_suspended_reason;
    o["state"] = state_text(s);
    o["guardrails"] = guardrails_json(s.guardrails);
    return o;
}

json::array to_json(const std::vector<KeyStatus>& rows) {
    json::array out;
    for (const auto& r : rows)
        out.push_back(to_json(r));
    return out;
}

json::object to_json(const Explanation& e) {
    json::array rules;
    for (const auto& r : e.rules)
        rules.push_back(json::value(r));
    return {
        {"key", key_json(e.key)},
        {"recipient_domain", e.recipient_domain},
        {"mx_host", e.mx_host},
        {"provider_reason", e.provider_reason},
        {"sender_reason", e.sender_reason},
        {"rules", std::move(rules)},
        {"max_connections", e.limits.max_connections},
        {"max_messages_per_connection", e.limits.max_messages_per_connection},
        {"status", to_json(e.status)},
        {"admission", to_json(e.admission)},
    };
}

json::object to_json(const Event& e) {
    json::object o = key_json(e.key);
    o["type"] = std::string(event_name(e.type));
    o["time"] = format_time(e.time);
    o["details"] = e.details;
    return o;
}

std::string format_status(const std::vector<KeyStatus>& rows) {
    std::string out = fmt::format("{:<28} {:<10} {:>4} {:>17} {:>12}  {}\n", "DOMAIN", "PROVIDER",
                                  "DAY", "SENT/CAP", "RATE", "STATE");
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& s = rows[i];
        const auto domain =
            s.key.source.empty() ? s.key.sending_domain : s.key.sending_domain + "@" + s.key.source;
        const auto cap = s.cap ? std::to_string(*s.cap) : "-";
        out += fmt::format("{:<28} {:<10} {:>4} {:>17} {:>12}  {}\n", domain, s.key.provider,
                           s.ramp_day ? std::to_string(s.ramp_day) : "-",
                           fmt::format("{}/{}", s.sent_today, cap),
                           s.rate ? format_rate_per_second(*s.rate) : "-", state_text(s));
        if (i + 1 < rows.size() && rows[i + 1].key.sending_domain == s.key.sending_domain)
            continue; // the domain's guardrails once, after its last row
        const auto& g = s.guardrails;
        out +=
            fmt::format("  guardrails over {}: bounces {} deferrals {} complaints {} "
                        "({} attempts{})\n",
                        core::format_duration(g.thresholds.window), format_percent(g.bounce_rate),
                        format_percent(g.deferral_rate), format_percent(g.complaint_rate),
                        g.counts.attempts(), g.judged ? "" : ", too few to judge");
    }
    return out;
}

std::string format_event(const Event& e) {
    return fmt::format("{} {}: {}", event_name(e.type), e.key.to_string(), e.details);
}

} // namespace ember::warmup
