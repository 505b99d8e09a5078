#pragma once
// The small value types warmup.toml speaks, with their text forms: rates
// ("100/s", "600/min", "5000/h"), shares and thresholds ("25%" or 0.25) and
// UTC calendar days ("2026-03-01"). Time is milliseconds since the Unix
// epoch (the queue's unit); warm-up days are UTC days. Pure, no I/O.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::warmup {

using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;
using Day = std::chrono::sys_days;

// UTC day of a time point, and the start of that day / of the next one.
[[nodiscard]] Day day_of(TimePoint t);
[[nodiscard]] TimePoint start_of(Day d);
// "2026-03-01"; nullopt for anything else (including impossible dates).
[[nodiscard]] std::optional<Day> parse_day(std::string_view text);
[[nodiscard]] std::string format_day(Day d);
// RFC 3339 UTC with milliseconds ("2026-03-01T10:00:00.000Z"), for events and status.
[[nodiscard]] std::string format_time(TimePoint t);
// RFC 3339 with a 'Z' or numeric offset, fractional seconds optional.
[[nodiscard]] std::optional<TimePoint> parse_time(std::string_view text);

// N messages per period. count == 0 means unlimited.
struct Rate {
    std::uint64_t count = 0;
    std::chrono::milliseconds period{1000};

    [[nodiscard]] bool unlimited() const { return count == 0; }
    [[nodiscard]] double per_second() const;
    // "100/min"; "unlimited" when count == 0.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Rate&, const Rate&) = default;
};

// "N/s", "N/min", "N/h" (also "N/sec", "N/m", "N/hour"); N >= 1.
[[nodiscard]] std::optional<Rate> parse_rate(std::string_view text);

// "25%", "0.1%" -> 0.25, 0.001. Only the percent form; plain numbers are
// read from TOML floats by the config loader.
[[nodiscard]] std::optional<double> parse_percent(std::string_view text);
// 0.25 -> "25%", 0.001 -> "0.1%" (shortest exact-enough form).
[[nodiscard]] std::string format_percent(double fraction);
// A per-second rate for humans: "0.5/s", "30/min", "12/h".
[[nodiscard]] std::string format_rate_per_second(double per_second);

} // namespace ember::warmup
