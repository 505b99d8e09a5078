#pragma once
// The dry run behind `emberctl warmup simulate FILE [--from-events LOG]
// [--days N] [--daily-volume PROVIDER=N ...]`: a fresh Engine with a
// candidate config is fed recipients on a simulated clock, each key's
// backlog waiting exactly as the queue would (a held recipient stays queued
// and goes in a later window, in submission order), and the result is a
// table per day and provider: offered, sent, held at the end of the day,
// deferred, bounced, backoffs and suspensions.
//
// Two inputs:
// - synthetic: N recipients a day per provider, arriving evenly over the
//   day, for one sending domain; every send is delivered (there is no
//   pushback to react to, so this shows the ramp, the caps and the spread);
// - replay: a past event log (event_log.hpp); each attempt is offered at its
//   logged time and, when the simulated engine lets it go, gets its logged
//   outcome, so deferral patterns trigger the candidate's response rules
//   and bounces and complaints move its guardrails.
// Pure and deterministic: no clock, no I/O.

#include "warmup/config.hpp"
#include "warmup/engine.hpp"
#include "warmup/event_log.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ember::warmup {

struct SimulationInput {
    // The first simulated UTC day. Synthetic: defaults to the sender's start
    // day (an unlisted domain needs it given: the CLI passes today). Replay:
    // defaults to the log's first day.
    std::optional<Day> first_day;
    std::uint32_t days = 30; // replay: 0 = through the log's last day
    // Synthetic: "" = the first [[sender]] of the config.
    std::string sending_domain;
    std::vector<std::pair<std::string, std::uint64_t>> daily_volume; // provider -> per day
    std::vector<LoggedEvent> events;                                 // replay when not empty
};

struct DayRow {
    std::uint32_t day = 0; // 1-based simulation day
    Day date{};
    std::string sending_domain;
    std::string provider;
    std::uint32_t ramp_day = 0; // 0: unthrottled
    std::optional<std::uint64_t> cap;
    std::uint64_t offered = 0, sent = 0, held = 0, deferred = 0, bounced = 0;
    std::uint64_t backoffs = 0, suspensions = 0;
};

struct SimulationReport {
    std::string error;        // not empty: the input was refused and nothing ran
    std::vector<DayRow> rows; // by day, then domain, then provider
    std::vector<Event> events;
    std::vector<std::string> notes;
};

[[nodiscard]] SimulationReport simulate(const Config& config, const SimulationInput& input);
// The table (and the notable events) for people.
[[nodiscard]] std::string format_report(const SimulationReport& report);
[[nodiscard]] boost::json::object to_json(const SimulationReport& report);

// "gmail=5000" -> {"gmail", 5000}; nullopt when malformed.
[[nodiscard]] std::optional<std::pair<std::string, std::uint64_t>>
parse_daily_volume(std::string_view text);

} // namespace ember::warmup
