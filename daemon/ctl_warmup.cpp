#include "daemon/ctl_warmup.hpp"

#include "core/diagnostics.hpp"
#include "warmup/config.hpp"
#include "warmup/event_log.hpp"
#include "warmup/simulate.hpp"

#include <boost/json/array.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <ostream>
#include <sstream>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

constexpr std::uint32_t kMaxDays = 3660;

Printed usage(std::string_view message) {
    return {"", fmt::format("emberctl warmup simulate: {}\n", message), kExitUsage};
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

warmup::Day today(const SimulateOptions& options) {
    const auto unix_s =
        options.today_unix.value_or(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
    return warmup::day_of(warmup::TimePoint(std::chrono::seconds(unix_s)));
}

// The input from the options; `error` set (a usage error) when one is malformed.
warmup::SimulationInput input_of(const SimulateOptions& options, const warmup::Config& config,
                                 std::string& error) {
    warmup::SimulationInput input;
    for (const auto& text : options.daily_volume) {
        auto volume = warmup::parse_daily_volume(text);
        if (!volume) {
            error = fmt::format("--daily-volume \"{}\": expected PROVIDER=N", text);
            return input;
        }
        input.daily_volume.push_back(std::move(*volume));
    }
    if (options.days)
        input.days = *options.days;
    else if (!options.from_events.empty())
        input.days = 0; // the whole log
    input.sending_domain = options.domain;
    if (!options.first_day.empty()) {
        input.first_day = warmup::parse_day(options.first_day);
        if (!input.first_day)
            error = fmt::format("--first-day \"{}\": expected YYYY-MM-DD", options.first_day);
    } else if (options.from_events.empty() && !options.domain.empty() &&
               std::none_of(config.senders.begin(), config.senders.end(),
                            [&](const warmup::Sender& s) { return s.domain == options.domain; })) {
        input.first_day = today(options); // an unlisted domain ramps from its first day: today
    }
    return input;
}

} // namespace

Printed warmup_simulate(const SimulateOptions& options, bool json) {
    if (options.days && (*options.days == 0 || *options.days > kMaxDays))
        return usage(fmt::format("--days must be from 1 to {}", kMaxDays));
    core::Diagnostics diag;
    const auto config = warmup::load_config(options.file, diag);
    if (!config)
        return {"", diag.to_string(), kExitConfig};
    std::string error;
    auto input = input_of(options, *config, error);
    if (!error.empty())
        return usage(error);
    Printed printed;
    if (!options.from_events.empty()) {
        const auto text = read_file(options.from_events);
        if (!text)
            return {"",
                    fmt::format("emberctl warmup simulate: cannot read {}\n", options.from_events),
                    kExitNoInput};
        auto log = warmup::parse_event_log(*text);
        for (const auto& skipped : log.skipped)
            printed.err += fmt::format("{}: skipped {}\n", options.from_events, skipped);
        if (log.events.empty())
            return {"",
                    printed.err + "emberctl warmup simulate: no events in " + options.from_events +
                        "\n",
                    kExitDaemonError};
        input.events = std::move(log.events);
    }
    const auto report = warmup::simulate(*config, input);
    if (!report.error.empty()) {
        printed.err += "emberctl warmup simulate: " + report.error + "\n";
        printed.exit_code = kExitDaemonError;
        if (json)
            printed.out = pretty_json(warmup::to_json(report));
        return printed;
    }
    printed.out = json ? pretty_json(warmup::to_json(report)) : warmup::format_report(report);
    return printed;
}

int run_warmup_simulate(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    const auto& args = invocation.args;
    const auto text = [&](std::string_view name) {
        const auto* value = args.if_contains(name);
        return value && value->is_string() ? std::string(value->get_string()) : std::string();
    };
    SimulateOptions options;
    options.file = text("file");
    options.from_events = text("from_events");
    options.domain = text("domain");
    options.first_day = text("first_day");
    if (const auto days = text("days"); !days.empty()) {
        std::uint32_t n = 0;
        const auto [end, ec] = std::from_chars(days.data(), days.data() + days.size(), n);
        Printed bad = usage(fmt::format("--days must be from 1 to {}", kMaxDays));
        if (ec != std::errc{} || end != days.data() + days.size()) {
            err << bad.err;
            return bad.exit_code;
        }
        options.days = n;
    }
    // One --daily-volume arrives as a string, several as an array.
    if (const auto* volume = args.if_contains("daily_volume")) {
        if (volume->is_string())
            options.daily_volume.emplace_back(volume->get_string());
        else if (volume->is_array())
            for (const auto& v : volume->get_array())
                if (v.is_string())
                    options.daily_volume.emplace_back(v.get_string());
    }
    const auto printed = warmup_simulate(options, invocation.options.json);
    out << printed.out;
    err << printed.err;
    return printed.exit_code;
}

} // namespace ember::daemon::ctl
