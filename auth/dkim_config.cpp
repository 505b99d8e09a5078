#include "auth/dkim_config.hpp"

#include <fmt/core.h>

#include <charconv>

namespace ember::auth {
namespace {

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
        return false;
    for (const char c : label) {
        if (!is_alpha(c) && !is_digit(c) && c != '-')
            return false;
    }
    return true;
}

// Splits on '.' and checks every label; returns the label count, 0 if any is bad.
std::size_t count_valid_labels(std::string_view name) {
    std::size_t labels = 0;
    while (true) {
        const auto dot = name.find('.');
        if (!valid_label(name.substr(0, dot)))
            return 0;
        ++labels;
        if (dot == std::string_view::npos)
            return labels;
        name.remove_prefix(dot + 1);
    }
}

// Howard Hinnant's days_from_civil: days since 1970-01-01.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap_year(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
    constexpr std::array<int, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : kDays[static_cast<std::size_t>(m - 1)];
}

// Exactly `width` digits at the front of `text`, consumed.
std::optional<int> take_digits(std::string_view& text, std::size_t width) {
    if (text.size() < width)
        return std::nullopt;
    int value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        if (!is_digit(text[i]))
            return std::nullopt;
        value = value * 10 + (text[i] - '0');
    }
    text.remove_prefix(width);
    return value;
}

bool take_char(std::string_view& text, char c) {
    if (text.empty() || text.front() != c)
        return false;
    text.remove_prefix(1);
    return true;
}

// "Z", "+hh:mm" or "-hh:mm" -> offset east of UTC in seconds.
std::optional<std::int64_t> take_offset(std::string_view& text) {
    if (take_char(text, 'Z') || take_char(text, 'z'))
        return 0;
    const bool east = !text.empty() && text.front() == '+';
    if (!take_char(text, '+') && !take_char(text, '-'))
        return std::nullopt;
    const auto hh = take_digits(text, 2);
    if (!hh || !take_char(text, ':'))
        return std::nullopt;
    const auto mm = take_digits(text, 2);
    if (!mm || *hh > 23 || *mm > 59)
        return std::nullopt;
    const std::int64_t seconds = *hh * 3600 + *mm * 60;
    return east ? seconds : -seconds;
}

std::optional<std::int64_t> parse_iso_time(std::string_view text) {
    const auto y = take_digits(text, 4);
    if (!y || !take_char(text, '-'))
        return std::nullopt;
    const auto mo = take_digits(text, 2);
    if (!mo || !take_char(text, '-'))
        return std::nullopt;
    const auto d = take_digits(text, 2);
    if (!d || *mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo))
        return std::nullopt;
    if (text.empty())
        return unix_time_utc(*y, *mo, *d);
    if (!take_char(text, 'T') && !take_char(text, 't') && !take_char(text, ' '))
        return std::nullopt;
    const auto h = take_digits(text, 2);
    if (!h || !take_char(text, ':'))
        return std::nullopt;
    const auto mi = take_digits(text, 2);
    if (!mi || !take_char(text, ':'))
        return std::nullopt;
    const auto s = take_digits(text, 2);
    const auto offset = s ? take_offset(text) : std::nullopt;
    if (!offset || !text.empty() || *h > 23 || *mi > 59 || *s > 60)
        return std::nullopt;
    return unix_time_utc(*y, *mo, *d, *h, *mi, *s) - *offset;
}

} // namespace

std::optional<DkimAlgorithm> parse_dkim_algorithm(std::string_view text) {
    if (text == "rsa-sha256")
        return DkimAlgorithm::RsaSha256;
    if (text == "ed25519-sha256")
        return DkimAlgorithm::Ed25519Sha256;
    return std::nullopt;
}

std::string_view dkim_algorithm_name(DkimAlgorithm algorithm) {
    return algorithm == DkimAlgorithm::RsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

std::optional<DkimCanonicalization> parse_dkim_canonicalization(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    const auto one = [](std::string_view word) -> std::optional<DkimCanon> {
        if (word == "relaxed")
            return DkimCanon::Relaxed;
        if (word == "simple")
            return DkimCanon::Simple;
        return std::nullopt;
    };
    const auto header = one(text.substr(0, slash));
    const auto body = one(text.substr(slash + 1));
    if (!header || !body)
        return std::nullopt;
    return DkimCanonicalization{*header, *body};
}

std::string format_dkim_canonicalization(DkimCanonicalization canon) {
    const auto word = [](DkimCanon c) {
        return c == DkimCanon::Relaxed ? "relaxed" : "simple";
    };
    return fmt::format("{}/{}", word(canon.header), word(canon.body));
}

std::optional<std::int64_t> parse_dkim_time(std::string_view text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
        std::int64_t value = 0;
        const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || ptr != text.data() + text.size())
            return std::nullopt;
        return value;
    }
    return parse_iso_time(text);
}

std::string format_dkim_time(std::int64_t unix_seconds) {
    const std::int64_t days = (unix_seconds >= 0 ? unix_seconds : unix_seconds - 86399) / 86400;
    const std::int64_t secs = unix_seconds - days * 86400;
    // civil_from_days (Hinnant).
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", y, m, d, secs / 3600,
                       secs % 3600 / 60, secs % 60);
}

std::int64_t unix_time_utc(int year, int month, int day, int hour, int minute, int second) {
    return days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
           hour * 3600 + minute * 60 + second;
}

bool valid_dkim_domain(std::string_view domain) {
    return domain.size() <= 253 && count_valid_labels(domain) >= 2;
}

bool valid_dkim_selector(std::string_view selector) {
    return selector.size() <= 253 && count_valid_labels(selector) >= 1;
}

bool valid_header_name(std::string_view name) {
    if (name.empty())
        return false;
    for (const char c : name) {
        if (c < 33 || c > 126 || c == ':')
            return false;
    }
    return true;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

} // namespace ember::auth
