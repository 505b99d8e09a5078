#pragma once
// Units that config files and the admin tool speak: durations ("250ms",
// "30s", "5m", "4h", "5d", "1w") and byte sizes ("512", "64k", "10M", "2G";
// binary multiples, an optional trailing "B" or "iB" is accepted).
// Pure functions, no I/O.

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::core {

using Duration = std::chrono::milliseconds;

struct ByteSize {
    std::uint64_t bytes = 0;
    friend auto operator<=>(const ByteSize&, const ByteSize&) = default;
};

// A number followed by one unit: ms, s, m, h, d, w. "0" alone is zero.
[[nodiscard]] std::optional<Duration> parse_duration(std::string_view text);
// The largest unit that represents the value exactly: 300000ms -> "5m".
[[nodiscard]] std::string format_duration(Duration d);

[[nodiscard]] std::optional<ByteSize> parse_byte_size(std::string_view text);
// The largest binary unit that represents the value exactly: 10485760 -> "10M".
[[nodiscard]] std::string format_byte_size(ByteSize size);

} // namespace ember::core
