// CSV in and out for the suppression list (declared in
// feedback/suppression.hpp): RFC 4180 quoting, RFC 3339 times. Pure.

#include "feedback/suppression.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace ember::feedback {
namespace {

// ---- Civil time (proleptic Gregorian, UTC), after H. Hinnant's algorithms ----

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

std::string format_time(std::int64_t ms) {
    constexpr std::int64_t kDay = 86'400'000;
    const auto days = ms >= 0 ? ms / kDay : (ms - kDay + 1) / kDay;
    const auto rem = ms - days * kDay;
    const auto c = civil_from_days(days);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", c.year, c.month, c.day,
                       rem / 3'600'000, rem / 60'000 % 60, rem / 1000 % 60, rem % 1000);
}

// Reads `width` digits at `pos`; false when they are not all digits.
bool digits(std::string_view text, std::size_t pos, std::size_t width, unsigned& out) {
    if (pos + width > text.size())
        return false;
    out = 0;
    for (std::size_t i = pos; i < pos + width; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(text[i])))
            return false;
        out = out * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return true;
}

// "HH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)" at `pos`: ms after midnight minus
// the offset; nullopt when malformed.
std::optional<std::int64_t> parse_clock(std::string_view text, std::size_t pos) {
    unsigned h = 0, mi = 0, s = 0;
    if (!digits(text, pos, 2, h) || text.substr(pos + 2, 1) != ":" ||
        !digits(text, pos + 3, 2, mi) || text.substr(pos + 5, 1) != ":" ||
        !digits(text, pos + 6, 2, s) || h > 23 || mi > 59 || s > 60)
        return std::nullopt;
    pos += 8;
    std::int64_t ms = (h * 3600 + mi * 60 + s) * std::int64_t{1000};
    if (pos < text.size() && text[pos] == '.') {
        std::int64_t scale = 100;
        for (++pos; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]));
             ++pos) {
            ms += (text[pos] - '0') * scale;
            scale /= 10;
        }
    }
    const auto zone = text.substr(pos);
    if (zone == "Z" || zone == "z")
        return ms;
    unsigned oh = 0, om = 0;
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || !digits(zone, 1, 2, oh) ||
        zone[3] != ':' || !digits(zone, 4, 2, om))
        return std::nullopt;
    const std::int64_t offset = (oh * 60 + om) * std::int64_t{60'000};
    return zone[0] == '+' ? ms - offset : ms + offset;
}

// Unix ms, RFC 3339 date-time ('T' or ' ' between date and time), or a date.
std::optional<std::int64_t> parse_time(std::string_view text) {
    if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
        })) {
        std::int64_t ms = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
        if (ec != std::errc() || end != text.data() + text.size())
            return std::nullopt;
        return ms;
    }
    unsigned y = 0, m = 0, d = 0;
    if (!digits(text, 0, 4, y) || text.substr(4, 1) != "-" || !digits(text, 5, 2, m) ||
        text.substr(7, 1) != "-" || !digits(text, 8, 2, d) || m < 1 || m > 12 || d < 1 || d > 31)
        return std::nullopt;
    const auto day_ms = days_from_civil(y, m, d) * 86'400'000;
    if (text.size() == 10)
        return day_ms;
    if (text[10] != 'T' && text[10] != 't' && text[10] != ' ')
        return std::nullopt;
    const auto clock = parse_clock(text, 11);
    if (!clock)
        return std::nullopt;
    return day_ms + *clock;
}

std::string quote(std::string_view field) {
    const bool needs = field.find_first_of(",\"\r\n") != std::string_view::npos ||
                       (!field.empty() && (field.front() == ' ' || field.back() == ' '));
    if (!needs)
        return std::string(field);
    std::string out = "\"";
    for (const char c : field) {
        if (c == '"')
            out.push_back('"');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

// ---- RFC 4180 reader ----

struct Row {
    std::vector<std::string> fields;
    std::uint32_t line = 0; // where the row starts
    bool unterminated = false;
};

class CsvReader {
public:
    explicit CsvReader(std::string_view text) : text_(text) {}

    // false at the end of the input.
    bool next(Row& row) {
        if (pos_ >= text_.size())
            return false;
        row = Row{{}, line_, false};
        std::string field;
        bool quoted = false;
        for (; pos_ < text_.size(); ++pos_) {
            const char c = text_[pos_];
            if (c == '\n')
                ++line_;
            if (quoted) {
                if (c != '"')
                    field.push_back(c);
                else if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"')
                    field.push_back(text_[++pos_]);
                else
                    quoted = false;
            } else if (c == '"') {
                quoted = true; // also mid-field: lenient, as spreadsheets write
            } else if (c == ',') {
                row.fields.push_back(std::move(field));
                field.clear();
            } else if (c == '\n' || c == '\r') {
                if (c == '\r') { // CRLF, or a lone CR ending the line
                    if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n')
                        ++pos_;
                    ++line_;
                }
                ++pos_;
                break;
            } else {
                field.push_back(c);
            }
        }
        row.fields.push_back(std::move(field));
        row.unterminated = quoted;
        return true;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
    std::uint32_t line_ = 1;
};

enum class Column : std::uint8_t { Address, Reason, Scope, Time, Source, Ignored };

std::string trimmed_lower(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return {};
    std::string out(text.substr(first, text.find_last_not_of(" \t") - first + 1));
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

Column column_named(const std::string& name) {
    if (name == "address" || name == "email" || name == "email_address" || name == "recipient")
        return Column::Address;
    if (name == "reason" || name == "type")
        return Column::Reason;
    if (name == "scope" || name == "domain" || name == "sending_domain")
        return Column::Scope;
    if (name == "time" || name == "created" || name == "created_at" || name == "timestamp")
        return Column::Time;
    if (name == "source" || name == "note" || name == "comment")
        return Column::Source;
    return Column::Ignored;
}

// The row's column layout when it is a header row (it names the address
// column and holds no address), else nullopt.
std::optional<std::vector<Column>> header_columns(const Row& row) {
    std::vector<Column> columns;
    bool has_address = false;
    for (const auto& field : row.fields) {
        if (field.find('@') != std::string::npos)
            return std::nullopt;
        columns.push_back(column_named(trimmed_lower(field)));
        has_address = has_address || columns.back() == Column::Address;
    }
    if (!has_address)
        return std::nullopt;
    return columns;
}

// One data row to an entry; the error text when it is bad.
std::optional<SuppressionEntry> read_row(const Row& row, const std::vector<Column>& columns,
                                         std::int64_t now_ms, std::string& error) {
    std::array<std::string, 5> value; // by Column
    for (std::size_t i = 0; i < row.fields.size() && i < columns.size(); ++i) {
        if (columns[i] != Column::Ignored)
            value[static_cast<std::size_t>(columns[i])] = row.fields[i];
    }
    const auto address = normalize_address(value[0]);
    const auto& reason_text = value[1];
    const auto reason = trimmed_lower(reason_text).empty()
                            ? std::optional(SuppressionReason::Manual)
                            : parse_suppression_reason(reason_text);
    const auto scope = normalize_scope(value[2]);
    const auto time = trimmed_lower(value[3]).empty() ? std::optional(now_ms)
                                                      : parse_time(trimmed_lower(value[3]));
    if (!address)
        error = "not an address: \"" + clean_source(value[0]) + "\"";
    else if (!reason)
        error = "unknown reason \"" + clean_source(reason_text) +
                "\" (hard-bounce, soft-bounce, complaint, unsubscribe, manual)";
    else if (!scope)
        error = "scope is not a domain: \"" + clean_source(value[2]) + "\"";
    else if (!time)
        error = "time is not unix milliseconds, RFC 3339 or YYYY-MM-DD: \"" +
                clean_source(value[3]) + "\"";
    if (!error.empty())
        return std::nullopt;
    // "import" only names where an entry came from when the file does not
    // say: an empty source column stays empty, so export -> import is exact.
    const auto source_column = std::find(columns.begin(), columns.end(), Column::Source);
    const bool has_source =
        source_column != columns.end() &&
        static_cast<std::size_t>(source_column - columns.begin()) < row.fields.size();
    return SuppressionEntry{*address, *scope, *reason, *time,
                            has_source ? clean_source(value[4]) : "import"};
}

bool blank(const Row& row) {
    return std::all_of(row.fields.begin(), row.fields.end(),
                       [](const std::string& f) { return trimmed_lower(f).empty(); });
}

} // namespace

std::string csv_line(const SuppressionEntry& entry) {
    return quote(entry.address) + "," + std::string(suppression_reason_name(entry.reason)) + "," +
           quote(entry.scope.empty() ? "global" : entry.scope) + "," + format_time(entry.time_ms) +
           "," + quote(entry.source);
}

CsvImport parse_suppression_csv(std::string_view text, std::int64_t now_ms,
                                const std::string& name) {
    CsvImport out;
    std::vector<Column> columns{Column::Address, Column::Reason, Column::Scope, Column::Time,
                                Column::Source};
    CsvReader reader(text);
    Row row;
    bool first = true;
    while (reader.next(row)) {
        if (blank(row))
            continue;
        if (std::exchange(first, false)) {
            if (auto header = header_columns(row)) {
                columns = std::move(*header);
                continue;
            }
        }
        ++out.rows;
        std::string error;
        if (row.unterminated)
            error = "unterminated quoted field";
        auto entry = error.empty() ? read_row(row, columns, now_ms, error) : std::nullopt;
        if (entry)
            out.entries.push_back(std::move(*entry));
        else
            out.errors.add(name, row.line, error);
    }
    return out;
}

} // namespace ember::feedback
