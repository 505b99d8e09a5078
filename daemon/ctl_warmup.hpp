#pragma once
// emberctl's offline warm-up verb: `warmup simulate FILE [--from-events LOG]
// [--days N] [--daily-volume PROVIDER=N ...] [--domain DOMAIN]
// [--first-day YYYY-MM-DD]`. It loads a candidate warmup.toml, runs
// warmup::simulate() on it (no daemon, no socket, nothing is changed) and
// prints the per-day, per-provider table (or its JSON).
//
// Exit status: 0 simulated; 1 the simulation refused its input (no volume,
// unknown provider, ...); 2 usage (a malformed --daily-volume, --days or
// --first-day); 66 (EX_NOINPUT) the event log cannot be read; 78
// (EX_CONFIG) FILE does not load (its file:line errors on stderr).
// Pure but for reading FILE and LOG; single-threaded.

#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace ember::daemon::ctl {

inline constexpr int kExitNoInput = 66; // EX_NOINPUT

struct SimulateOptions {
    std::string file;
    std::string from_events;                // "" = synthetic volume
    std::optional<std::uint32_t> days;      // unset: 30 (synthetic) or the whole log (replay)
    std::vector<std::string> daily_volume;  // "gmail=5000"
    std::string domain;                     // synthetic: the sending domain ("" = first [[sender]])
    std::string first_day;                  // "" = the sender's start day, or today
    std::optional<std::int64_t> today_unix; // for tests: "today" when a day must be guessed
};

[[nodiscard]] Printed warmup_simulate(const SimulateOptions& options, bool json);

// The verb table's entry point (Verb::offline).
[[nodiscard]] int run_warmup_simulate(const Invocation& invocation, std::ostream& out,
                                      std::ostream& err);

} // namespace ember::daemon::ctl
