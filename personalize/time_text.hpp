#pragma once
// Times as the hook contract writes them: RFC 3339 date-times in UTC
// ("2026-03-01T09:00:00Z", milliseconds only when not zero) and their
// parser (a 'Z' or a numeric offset, fractional seconds optional; RFC 3339
// section 5.6). Pure, no clock, no time zone database, thread-safe.
//
// Does not: read local time, accept leap seconds (":60" is refused, as
// in most parsers: unix time has no slot for them), or accept dates before
// 1970 (nothing ember schedules can be that early).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::personalize {

inline constexpr std::int64_t kMsPerSecond = 1000;
inline constexpr std::int64_t kMsPerHour = 3'600'000;
inline constexpr std::int64_t kMsPerDay = 86'400'000;

// "2026-03-01T09:00:00Z", or "2026-03-01T09:00:00.250Z" when the
// milliseconds are not zero. `unix_ms` must be >= 0.
[[nodiscard]] std::string format_rfc3339(std::int64_t unix_ms);

// Unix milliseconds, or nullopt when `text` is not an RFC 3339 date-time
// from 1970 to 9999 (a lower-case 't' or 'z', and a space instead of 'T',
// are accepted as RFC 3339 5.6's note allows). Digits past milliseconds
// are cut, not rounded.
[[nodiscard]] std::optional<std::int64_t> parse_rfc3339(std::string_view text);

} // namespace ember::personalize
