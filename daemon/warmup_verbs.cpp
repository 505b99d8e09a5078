#include "daemon/warmup_verbs.hpp"

#include "daemon/admin_verbs.hpp"
#include "warmup/format.hpp"

#include <boost/json/array.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace ember::daemon {

namespace json = boost::json;

namespace {

constexpr std::int64_t kDayMs = 24 * 60 * 60 * 1000;
constexpr std::int64_t kMaxRampDay = 100000;
constexpr std::int64_t kMaxAdvanceDays = 3660;

std::optional<std::string> required_string(const json::object& args, std::string_view name,
                                           std::string& error) {
    auto value = string_arg(args, name, error, true);
    if (!value && error.empty())
        error = fmt::format("missing argument \"{}\"", name);
    return value;
}

// An integer in [min, max], given as a JSON number or as its decimal text
// (emberctl passes positional words as strings).
std::optional<std::int64_t> integer_arg(const json::object& args, std::string_view name,
                                        std::int64_t min, std::int64_t max, std::string& error) {
    const auto* value = args.if_contains(name);
    std::optional<std::int64_t> n;
    if (value && value->is_int64()) {
        n = value->get_int64();
    } else if (value && value->is_uint64()) {
        n = value->get_uint64() > static_cast<std::uint64_t>(max)
                ? max + 1
                : static_cast<std::int64_t>(value->get_uint64());
    } else if (value && value->is_string()) {
        const std::string_view text = value->get_string();
        std::int64_t parsed = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (ec == std::errc() && end == text.data() + text.size() && !text.empty())
            n = parsed;
    }
    if (!value)
        error = fmt::format("missing argument \"{}\"", name);
    else if (!n || *n < min || *n > max)
        error = fmt::format("argument \"{}\" must be an integer from {} to {}", name, min, max);
    return error.empty() ? n : std::nullopt;
}

// After a verb changed the engine: its events are logged and its state saved.
AdminResult changed(WarmupService& service, const warmup::AdminResult& result) {
    service.drain();
    service.save();
    if (!result.ok)
        return AdminResult::failure(result.message);
    return json::object{{"message", result.message}};
}

// pause and resume: {domain, provider?}.
struct Target {
    std::string domain;
    std::string provider;
    std::string error;
};

Target parse_target(const json::object& args) {
    Target t;
    t.error = unknown_argument(args, {"domain", "provider"});
    if (!t.error.empty())
        return t;
    t.domain = required_string(args, "domain", t.error).value_or("");
    t.provider = string_arg(args, "provider", t.error, true).value_or("");
    return t;
}

} // namespace

AdminResult warmup_status(WarmupService& service, const json::object& args) {
    std::string error = unknown_argument(args, {"domain"});
    const auto domain = error.empty() ? string_arg(args, "domain", error, true) : std::nullopt;
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto now = service.now();
    return json::object{
        {"now", warmup::format_time(now)},
        {"enabled", service.enabled()},
        {"file", service.settings().file},
        {"clock_offset_s", service.offset_ms() / 1000},
        {"keys", warmup::to_json(service.engine().status(domain.value_or(""), now))},
    };
}

AdminResult warmup_pause(WarmupService& service, const json::object& args) {
    const auto t = parse_target(args);
    if (!t.error.empty())
        return AdminResult::failure(t.error);
    return changed(service, service.engine().pause(t.domain, t.provider, service.now()));
}

AdminResult warmup_resume(WarmupService& service, const json::object& args) {
    const auto t = parse_target(args);
    if (!t.error.empty())
        return AdminResult::failure(t.error);
    return changed(service, service.engine().resume(t.domain, t.provider, service.now()));
}

AdminResult warmup_set_day(WarmupService& service, const json::object& args) {
    std::string error = unknown_argument(args, {"domain", "day"});
    const auto domain = error.empty() ? required_string(args, "domain", error) : std::nullopt;
    const auto day = error.empty() ? integer_arg(args, "day", 1, kMaxRampDay, error) : std::nullopt;
    if (!domain || !day)
        return AdminResult::failure(std::move(error));
    return changed(service, service.engine().set_day(*domain, static_cast<std::uint32_t>(*day),
                                                     service.now()));
}

AdminResult warmup_explain(WarmupService& service, const json::object& args) {
    std::string error = unknown_argument(args, {"domain", "recipient", "mx"});
    const auto domain = error.empty() ? required_string(args, "domain", error) : std::nullopt;
    const auto recipient = error.empty() ? required_string(args, "recipient", error) : std::nullopt;
    const auto mx = error.empty() ? string_arg(args, "mx", error, true) : std::nullopt;
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto e = service.engine().explain(*domain, *recipient, service.now(), mx.value_or(""),
                                            service.source());
    return warmup::to_json(e);
}

boost::asio::awaitable<AdminResult> release_after(WarmupService* service, AdminResult result) {
    if (!result.ok())
        co_return result;
    auto op = service->release_held();
    const auto change = co_await std::move(op);
    auto answer = result.result().as_object();
    const std::string said(answer["message"].as_string());
    if (!change.error.empty()) {
        answer["message"] =
            fmt::format("{}; held mail could not be released now ({}): it goes at its next look",
                        said, change.error);
    } else if (change.recipients != 0) {
        answer["message"] = fmt::format("{}; {} held recipient{} released", said, change.recipients,
                                        change.recipients == 1 ? "" : "s");
    }
    answer["released"] = change.recipients;
    co_return answer;
}

boost::asio::awaitable<AdminResult> warmup_advance(WarmupService* service,
                                                   queue::Scheduler* scheduler, json::object args) {
    std::string error = unknown_argument(args, {"days"});
    const auto days =
        error.empty() ? integer_arg(args, "days", 1, kMaxAdvanceDays, error) : std::nullopt;
    if (!days)
        co_return AdminResult::failure(std::move(error));
    if (!service->advance(*days * kDayMs))
        co_return AdminResult::failure(
            "the warm-up clock is not adjustable: set [warmup] allow_clock_advance = true "
            "(for tests only)");
    service->save();
    // Held mail waits for times on the old clock: look at all of it again.
    const auto change = co_await scheduler->retry_all();
    if (!change.error.empty())
        co_return AdminResult::failure("clock advanced, but the queue could not be rescheduled: " +
                                       change.error);
    co_return json::object{{"clock_offset_s", service->offset_ms() / 1000},
                           {"now", warmup::format_time(service->now())},
                           {"rescheduled", change.recipients}};
}

void add_warmup_verbs(AdminServer& server, WarmupService& service, queue::Scheduler& scheduler) {
    WarmupService* w = &service;
    queue::Scheduler* s = &scheduler;
    // Also used after every reload (WarmupService::apply).
    service.set_release([s] { return s->release_throttled(); });
    server.add_verb("warmup.status", SyncAdminHandler([w](const json::object& args) {
                        return warmup_status(*w, args);
                    }));
    server.add_verb("warmup.pause", SyncAdminHandler([w](const json::object& args) {
                        return warmup_pause(*w, args);
                    }));
    // Resume and set-day may let held mail go: they release it at once
    // (the engine would otherwise answer it again in up to 5 minutes, or at
    // midnight for the cap). The engine changes before the lambda returns.
    server.add_verb("warmup.resume", AdminHandler([w](json::object args) {
                        return release_after(w, warmup_resume(*w, args));
                    }));
    server.add_verb("warmup.set_day", AdminHandler([w](json::object args) {
                        return release_after(w, warmup_set_day(*w, args));
                    }));
    server.add_verb("warmup.explain", SyncAdminHandler([w](const json::object& args) {
                        return warmup_explain(*w, args);
                    }));
    // A plain lambda returning the coroutine: its frame holds copies, never
    // the lambda's captures.
    server.add_verb("warmup.advance", AdminHandler([w, s](json::object args) {
                        return warmup_advance(w, s, std::move(args));
                    }));
}

} // namespace ember::daemon
