#include "warmup/values.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace ember::warmup {
namespace {

using namespace std::chrono;

bool read_digits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
    if (pos + count > text.size())
        return false;
    out = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        out = out * 10 + (text[i] - '0');
    }
    return true;
}

std::optional<double> read_number(std::string_view text) {
    double value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || ptr != end || !std::isfinite(value))
        return std::nullopt;
    return value;
}

// "HH:MM:SS" with optional ".fff"; returns the offset past it.
std::optional<std::size_t> read_clock(std::string_view text, std::size_t pos, milliseconds& out) {
    int h = 0, m = 0, s = 0;
    if (!read_digits(text, pos, 2, h) || text.size() <= pos + 2 || text[pos + 2] != ':' ||
        !read_digits(text, pos + 3, 2, m) || text.size() <= pos + 5 || text[pos + 5] != ':' ||
        !read_digits(text, pos + 6, 2, s) || h > 23 || m > 59 || s > 60)
        return std::nullopt;
    pos += 8;
    int ms = 0, digits = 0;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (digits < 3)
                ms = ms * 10 + (text[pos] - '0');
            ++digits;
            ++pos;
        }
        if (digits == 0)
            return std::nullopt;
        for (int i = digits; i < 3; ++i)
            ms *= 10;
    }
    out = hours(h) + minutes(m) + seconds(s) + milliseconds(ms);
    return pos;
}

} // namespace

Day day_of(TimePoint t) {
    return floor<days>(t);
}

TimePoint start_of(Day d) {
    return TimePoint(d);
}

std::optional<Day> parse_day(std::string_view text) {
    int y = 0, m = 0, d = 0;
    if (text.size() != 10 || text[4] != '-' || text[7] != '-' || !read_digits(text, 0, 4, y) ||
        !read_digits(text, 5, 2, m) || !read_digits(text, 8, 2, d))
        return std::nullopt;
    const year_month_day ymd{year(y), month(static_cast<unsigned>(m)),
                             day(static_cast<unsigned>(d))};
    if (!ymd.ok())
        return std::nullopt;
    return sys_days(ymd);
}

std::string format_day(Day d) {
    const year_month_day ymd(d);
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

std::string format_time(TimePoint t) {
    const auto d = day_of(t);
    const auto in_day = t - start_of(d);
    const auto h = duration_cast<hours>(in_day);
    const auto m = duration_cast<minutes>(in_day - h);
    const auto s = duration_cast<seconds>(in_day - h - m);
    const auto ms = in_day - h - m - s;
    return fmt::format("{}T{:02}:{:02}:{:02}.{:03}Z", format_day(d), h.count(), m.count(),
                       s.count(), ms.count());
}

std::optional<TimePoint> parse_time(std::string_view text) {
    if (text.size() < 20)
        return std::nullopt;
    const auto d = parse_day(text.substr(0, 10));
    if (!d || (text[10] != 'T' && text[10] != 't' && text[10] != ' '))
        return std::nullopt;
    milliseconds clock{};
    const auto pos = read_clock(text, 11, clock);
    if (!pos)
        return std::nullopt;
    const auto zone = text.substr(*pos);
    TimePoint t = start_of(*d) + clock;
    if (zone == "Z" || zone == "z")
        return t;
    int oh = 0, om = 0;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':' ||
        !read_digits(zone, 1, 2, oh) || !read_digits(zone, 4, 2, om))
        return std::nullopt;
    const auto offset = hours(oh) + minutes(om);
    return zone[0] == '+' ? t - offset : t + offset;
}

double Rate::per_second() const {
    if (count == 0)
        return 0;
    return static_cast<double>(count) * 1000.0 / static_cast<double>(period.count());
}

std::string Rate::to_string() const {
    if (count == 0)
        return "unlimited";
    if (period == hours(1))
        return fmt::format("{}/h", count);
    if (period == minutes(1))
        return fmt::format("{}/min", count);
    return fmt::format("{}/s", count);
}

std::optional<Rate> parse_rate(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0)
        return std::nullopt;
    const auto number = text.substr(0, slash);
    const auto unit = text.substr(slash + 1);
    Rate rate;
    const auto [ptr, ec] =
        std::from_chars(number.data(), number.data() + number.size(), rate.count);
    if (ec != std::errc() || ptr != number.data() + number.size() || rate.count == 0)
        return std::nullopt;
    if (unit == "s" || unit == "sec")
        rate.period = seconds(1);
    else if (unit == "min" || unit == "m")
        rate.period = minutes(1);
    else if (unit == "h" || unit == "hour")
        rate.period = hours(1);
    else
        return std::nullopt;
    return rate;
}

std::optional<double> parse_percent(std::string_view text) {
    if (text.empty() || text.back() != '%')
        return std::nullopt;
    const auto value = read_number(text.substr(0, text.size() - 1));
    if (!value || *value < 0)
        return std::nullopt;
    return *value / 100.0;
}

std::string format_percent(double fraction) {
    // Four significant digits are plenty for thresholds and observed rates
    // and keep 0.001 from printing as 0.09999999999999999%.
    return fmt::format("{:.4g}%", fraction * 100.0);
}

std::string format_rate_per_second(double per_second) {
    if (per_second >= 1.0)
        return fmt::format("{:.4g}/s", per_second);
    if (per_second * 60.0 >= 1.0)
        return fmt::format("{:.4g}/min", per_second * 60.0);
    return fmt::format("{:.4g}/h", per_second * 3600.0);
}

} // namespace ember::warmup
