#include "personalize/time_text.hpp"

#include <fmt/core.h>

#include <array>

namespace ember::personalize {

namespace {

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
    std::int64_t year;
    unsigned month;
    unsigned day;
};

Civil civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

bool leap(std::int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
    constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// `count` decimal digits at text[at...]; false when any is missing.
bool digits(std::string_view text, std::size_t at, std::size_t count, unsigned& out) {
    if (at + count > text.size())
        return false;
    out = 0;
    for (std::size_t i = at; i < at + count; ++i) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        out = out * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return true;
}

// "Z" or "+hh:mm" / "-hh:mm" at text[at...], to the end: the offset in
// minutes east of UTC.
std::optional<int> parse_offset(std::string_view text, std::size_t at) {
    if (at + 1 == text.size() && (text[at] == 'Z' || text[at] == 'z'))
        return 0;
    unsigned hh = 0;
    unsigned mm = 0;
    if (at + 6 != text.size() || (text[at] != '+' && text[at] != '-') || text[at + 3] != ':' ||
        !digits(text, at + 1, 2, hh) || !digits(text, at + 4, 2, mm) || hh > 23 || mm > 59)
        return std::nullopt;
    const int minutes = static_cast<int>(hh * 60 + mm);
    return text[at] == '-' ? -minutes : minutes;
}

} // namespace

std::string format_rfc3339(std::int64_t unix_ms) {
    const std::int64_t days = unix_ms / kMsPerDay;
    const std::int64_t in_day = unix_ms % kMsPerDay;
    const auto c = civil_from_days(days);
    const auto h = in_day / kMsPerHour;
    const auto m = in_day % kMsPerHour / 60'000;
    const auto s = in_day % 60'000 / kMsPerSecond;
    const auto ms = in_day % kMsPerSecond;
    if (ms == 0)
        return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", c.year, c.month, c.day, h, m, s);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.year, c.month, c.day, h, m,
                       s, ms);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) {
    unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (text.size() < 20 || !digits(text, 0, 4, y) || text[4] != '-' || !digits(text, 5, 2, mo) ||
        text[7] != '-' || !digits(text, 8, 2, d) ||
        (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !digits(text, 11, 2, h) ||
        text[13] != ':' || !digits(text, 14, 2, mi) || text[16] != ':' || !digits(text, 17, 2, s))
        return std::nullopt;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        s > 59)
        return std::nullopt;
    std::size_t at = 19;
    std::int64_t ms = 0;
    if (text[at] == '.') {
        std::size_t n = 0;
        for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++n)
            if (n < 3)
                ms = ms * 10 + (text[at] - '0');
        if (n == 0)
            return std::nullopt;
        for (; n < 3; ++n)
            ms *= 10;
    }
    const auto offset = parse_offset(text, at);
    if (!offset)
        return std::nullopt;
    const std::int64_t seconds = days_from_civil(y, mo, d) * 86'400 + h * 3600 + mi * 60 + s -
                                 static_cast<std::int64_t>(*offset) * 60;
    if (seconds < 0)
        return std::nullopt;
    return seconds * kMsPerSecond + ms;
}

} // namespace ember::personalize
