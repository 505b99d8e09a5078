#include "core/units.hpp"

#include <array>
#include <charconv>
#include <limits>

namespace ember::core {
namespace {

struct Unit {
    std::string_view suffix;
    std::uint64_t factor;
};

// Longest suffix first so "ms" is not read as "m" + "s".
constexpr std::array<Unit, 6> kDurationUnits{{{"ms", 1},
                                              {"s", 1000},
                                              {"m", 60'000},
                                              {"h", 3'600'000},
                                              {"d", 86'400'000},
                                              {"w", 604'800'000}}};

constexpr std::array<Unit, 5> kSizeUnits{
    {{"", 1}, {"k", 1ull << 10}, {"M", 1ull << 20}, {"G", 1ull << 30}, {"T", 1ull << 40}}};

std::optional<std::uint64_t> leading_number(std::string_view& text) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr == text.data())
        return std::nullopt;
    text.remove_prefix(static_cast<std::size_t>(ptr - text.data()));
    return value;
}

std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
    if (b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b)
        return std::nullopt;
    return a * b;
}

} // namespace

std::optional<Duration> parse_duration(std::string_view text) {
    auto number = leading_number(text);
    if (!number)
        return std::nullopt;
    if (text.empty())
        return *number == 0 ? std::optional<Duration>(Duration{0}) : std::nullopt;
    for (const auto& unit : kDurationUnits) {
        if (text == unit.suffix) {
            const auto ms = checked_mul(*number, unit.factor);
            if (!ms || *ms > static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max()))
                return std::nullopt;
            return Duration{static_cast<Duration::rep>(*ms)};
        }
    }
    return std::nullopt;
}

std::string format_duration(Duration d) {
    const auto ms = static_cast<std::uint64_t>(d.count());
    if (ms == 0)
        return "0s";
    for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
        if (ms % it->factor == 0)
            return std::to_string(ms / it->factor) + std::string(it->suffix);
    }
    return std::to_string(ms) + "ms";
}

std::optional<ByteSize> parse_byte_size(std::string_view text) {
    auto number = leading_number(text);
    if (!number)
        return std::nullopt;
    if (text.ends_with("iB"))
        text.remove_suffix(2);
    else if (text.ends_with("B"))
        text.remove_suffix(1);
    std::string unit(text);
    if (unit == "K")
        unit = "k";
    for (const auto& u : kSizeUnits) {
        if (unit == u.suffix) {
            const auto bytes = checked_mul(*number, u.factor);
            if (!bytes)
                return std::nullopt;
            return ByteSize{*bytes};
        }
    }
    return std::nullopt;
}

std::string format_byte_size(ByteSize size) {
    if (size.bytes == 0)
        return "0";
    for (auto it = kSizeUnits.rbegin(); it != kSizeUnits.rend(); ++it) {
        if (size.bytes % it->factor == 0)
            return std::to_string(size.bytes / it->factor) + std::string(it->suffix);
    }
    return std::to_string(size.bytes);
}

} // namespace ember::core
