#include "personalize/contacts_csv.hpp"

#include "core/ascii.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <variant>

namespace ember::personalize {

namespace json = boost::json;

namespace {

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        const auto at = text.find(sep);
        out.push_back(trim(text.substr(0, at)));
        if (at == std::string_view::npos)
            return out;
        text.remove_prefix(at + 1);
    }
}

// ---- Reading records ----

// Reads one line (without its '\n') from `sb`, keeping at most `max`
// octets of it; false at the end of the stream with nothing read.
bool read_line(std::streambuf& sb, std::string& line, std::size_t max, bool& too_long,
               std::uint64_t& bytes) {
    line.clear();
    too_long = false;
    bool any = false;
    for (;;) {
        const auto c = sb.sbumpc();
        if (c == std::char_traits<char>::eof())
            return any;
        any = true;
        ++bytes;
        if (c == '\n')
            return true;
        if (line.size() < max)
            line.push_back(static_cast<char>(c));
        else
            too_long = true;
    }
}

// RFC 4180 fields, fed one physical line at a time: a quoted field may
// span lines. Incremental, so a long multi-line field is scanned once.
class RecordReader {
public:
    // One line without its line end; true when the record is complete
    // (then fields() and error() describe it).
    bool feed(std::string_view line) {
        size_ += line.size() + 1;
        for (const char c : line) {
            if (!error_.empty())
                break;
            step(c);
        }
        if (error_.empty() && state_ == State::Quoted) {
            if (size_ <= kMaxCsvRecord) {
                field_.push_back('\n');
                return false;
            }
            error_ = "row longer than 1 MiB (a quote never closed?)";
        }
        fields_.push_back(std::move(field_));
        return true;
    }
    [[nodiscard]] bool in_progress() const { return state_ != State::FieldStart || size_ != 0; }
    [[nodiscard]] std::vector<std::string>& fields() { return fields_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    void reset() {
        state_ = State::FieldStart;
        fields_.clear();
        field_.clear();
        error_.clear();
        size_ = 0;
    }

private:
    enum class State { FieldStart, Unquoted, Quoted, QuoteInQuoted };

    void start_unquoted(char c) {
        field_.push_back(c);
        state_ = State::Unquoted;
    }
    void quoted_quote() { // "" inside a quoted field: one literal quote
        field_.push_back('"');
        state_ = State::Quoted;
    }
    void end_field() {
        fields_.push_back(std::move(field_));
        field_.clear();
        state_ = State::FieldStart;
    }
    void step(char c) {
        switch (state_) {
        case State::FieldStart:
            if (c == '"')
                state_ = State::Quoted;
            else if (c == ',')
                end_field();
            else
                start_unquoted(c);
            return;
        case State::Unquoted:
            if (c == ',')
                end_field();
            else
                field_.push_back(c);
            return;
        case State::Quoted:
            if (c == '"')
                state_ = State::QuoteInQuoted;
            else
                field_.push_back(c);
            return;
        case State::QuoteInQuoted:
            if (c == '"')
                quoted_quote();
            else if (c == ',')
                end_field();
            else
                error_ = "text after the closing quote of a field";
            return;
        }
    }

    State state_ = State::FieldStart;
    std::vector<std::string> fields_;
    std::string field_;
    std::string error_;
    std::size_t size_ = 0;
};

// ---- The header ----

enum class CellType { String, Number, Bool, List };

struct Column {
    std::string name;
    CellType type = CellType::String;
};

struct Header {
    std::size_t width = 0;
    std::size_t address = 0;
    std::optional<std::size_t> tags;
    std::map<std::size_t, Column> attributes; // by field index
};

std::optional<CellType> parse_type(std::string_view name) {
    const auto lower = core::ascii_lower(name);
    if (lower == "string")
        return CellType::String;
    if (lower == "number")
        return CellType::Number;
    if (lower == "bool")
        return CellType::Bool;
    if (lower == "list")
        return CellType::List;
    return std::nullopt;
}

// "name:type" with a known type, else the whole text is the name.
Column parse_column(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos)
        if (const auto type = parse_type(text.substr(colon + 1)))
            return {std::string(trim(text.substr(0, colon))), *type};
    return {std::string(text), CellType::String};
}

std::variant<Header, std::string> parse_header(const std::vector<std::string>& fields) {
    Header h;
    h.width = fields.size();
    std::optional<std::size_t> address;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const auto text = trim(fields[i]);
        const auto lower = core::ascii_lower(text);
        if (lower == "address" || lower == "email") {
            if (address)
                return std::string("two address columns (address or email)");
            address = i;
            continue;
        }
        if (lower == "tags") {
            if (h.tags)
                return std::string("two tags columns");
            h.tags = i;
            continue;
        }
        auto column = parse_column(text);
        if (auto why = check_attribute_name(column.name); !why.empty())
            return fmt::format("column {}: {}", i + 1, why);
        if (!seen.insert(column.name).second)
            return fmt::format("column {}: \"{}\" appears twice", i + 1, column.name);
        h.attributes.emplace(i, std::move(column));
    }
    if (!address)
        return std::string("no address or email column");
    h.address = *address;
    return h;
}

// ---- Cells ----

std::variant<json::value, std::string> parse_number(std::string_view text) {
    const auto t = trim(text);
    std::int64_t i = 0;
    if (auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), i);
        ec == std::errc() && end == t.data() + t.size())
        return json::value(i);
    double d = 0;
    if (auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
        ec == std::errc() && end == t.data() + t.size() && std::isfinite(d))
        return json::value(d);
    return fmt::format("\"{}\" is not a number", t);
}

std::variant<json::value, std::string> parse_bool(std::string_view text) {
    const auto t = core::ascii_lower(trim(text));
    if (t == "true" || t == "yes" || t == "1")
        return json::value(true);
    if (t == "false" || t == "no" || t == "0")
        return json::value(false);
    return fmt::format("\"{}\" is not true or false", trim(text));
}

std::variant<json::value, std::string> parse_cell(const std::string& text, CellType type) {
    switch (type) {
    case CellType::String:
        return json::value(text);
    case CellType::Number:
        return parse_number(text);
    case CellType::Bool:
        return parse_bool(text);
    case CellType::List:
        break;
    }
    json::array list;
    for (const auto item : split(text, ';'))
        if (!item.empty())
            list.emplace_back(item);
    return json::value(std::move(list));
}

// The patch a row asks for, or why it is bad.
std::variant<ContactPatch, std::string> row_patch(const Header& h, std::vector<std::string>& row,
                                                  bool empty_deletes) {
    if (row.size() != h.width)
        return fmt::format("{} fields, the header has {}", row.size(), h.width);
    ContactPatch patch;
    patch.address = row[h.address];
    if (!normalize_contact_address(patch.address))
        return fmt::format("not an address: \"{}\"", patch.address);
    if (h.tags) {
        for (const auto tag : split(row[*h.tags], ';')) {
            if (tag.empty())
                continue;
            if (auto why = check_tag(tag); !why.empty())
                return why;
            patch.add_tags.emplace_back(tag);
        }
    }
    for (const auto& [index, column] : h.attributes) {
        auto& cell = row[index];
        if (cell.empty()) {
            if (empty_deletes)
                patch.attributes[column.name] = nullptr;
            continue;
        }
        auto value = parse_cell(cell, column.type);
        if (auto* why = std::get_if<std::string>(&value))
            return fmt::format("{}: {}", column.name, *why);
        patch.attributes[column.name] = std::move(std::get<json::value>(value));
    }
    return patch;
}

// ---- Chunks in flight ----

// What the committer thread tells the importing thread.
struct Flight {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t in_flight = 0;
    std::vector<std::optional<ContactResult>> results; // per chunk, in order
};

class Importer {
public:
    Importer(ContactStore& contacts, const CsvImportOptions& options)
        : contacts_(contacts), options_(options), flight_(std::make_shared<Flight>()) {}

    void add(ContactPatch patch, std::uint32_t line) {
        chunk_.push_back(std::move(patch));
        lines_.push_back(line);
        if (chunk_.size() >= std::max<std::size_t>(1, options_.chunk_rows))
            submit();
    }
    void bad_row(std::uint32_t line, const std::string& why) {
        ++report_.totals.skipped;
        ++report_.error_count;
        if (report_.errors.size() < options_.max_errors)
            report_.errors.push_back(fmt::format("{}:{}: {}", options_.name, line, why));
    }
    // Hands the rows gathered so far to the committer, after waiting for
    // room; false once a commit failed (the import stops).
    bool submit();
    ImportReport finish();
    ImportProgress& totals() { return report_.totals; }
    ImportReport& report() { return report_; }
    void progress() {
        if (options_.progress)
            options_.progress(report_.totals);
    }

private:
    void tally(); // flight_->mu held

    ContactStore& contacts_;
    const CsvImportOptions& options_;
    std::shared_ptr<Flight> flight_;
    std::vector<ContactPatch> chunk_;
    std::vector<std::uint32_t> lines_;
    std::vector<std::size_t> good_; // rows written per chunk
    std::size_t tallied_ = 0;       // chunks whose result is counted
    ImportReport report_;
};

void Importer::tally() {
    while (tallied_ < flight_->results.size() && flight_->results[tallied_]) {
        const auto& r = *flight_->results[tallied_];
        if (r.status == ContactStatus::Ok) {
            report_.totals.imported += good_[tallied_];
        } else if (report_.ok) {
            report_.ok = false;
            report_.error = fmt::format("{}: commit failed after {} rows: {}", options_.name,
                                        report_.totals.imported, r.detail);
        }
        ++tallied_;
    }
}

bool Importer::submit() {
    std::unique_lock lock(flight_->mu);
    flight_->cv.wait(lock, [&] {
        return flight_->in_flight < std::max<std::size_t>(1, options_.max_in_flight);
    });
    tally();
    if (!report_.ok || chunk_.empty())
        return report_.ok;
    const std::size_t index = flight_->results.size();
    flight_->results.emplace_back();
    ++flight_->in_flight;
    report_.most_in_flight = std::max(report_.most_in_flight, flight_->in_flight);
    lock.unlock();
    const std::size_t rows = chunk_.size();
    auto done = [flight = flight_, index](ContactResult r) {
        const std::lock_guard guard(flight->mu);
        flight->results[index] = std::move(r);
        --flight->in_flight;
        flight->cv.notify_all();
    };
    const auto errors = contacts_.apply(std::move(chunk_), std::move(done));
    for (const auto& [i, why] : errors)
        bad_row(lines_[i], why);
    lock.lock();
    good_.push_back(rows - errors.size());
    ++report_.chunks;
    report_.largest_chunk = std::max(report_.largest_chunk, rows);
    lock.unlock();
    chunk_.clear();
    lines_.clear();
    progress();
    return true;
}

ImportReport Importer::finish() {
    if (report_.ok)
        (void)submit();
    std::unique_lock lock(flight_->mu);
    flight_->cv.wait(lock, [&] { return flight_->in_flight == 0; });
    tally();
    lock.unlock();
    progress();
    return std::move(report_);
}

// The records of a CSV stream, one at a time, blank lines left out.
class RecordStream {
public:
    RecordStream(std::istream& in, std::uint64_t& bytes) : sb_(in.rdbuf()), bytes_(bytes) {}

    // The next record; false at the end of the stream. A record may be bad
    // (error() says why): a quote never closed at the end of the stream,
    // text after a closing quote, a line over kMaxCsvRecord octets.
    bool next() {
        reader_.reset();
        while (sb_ != nullptr && read_line(*sb_, line_, kMaxCsvRecord + 1, too_long_, bytes_)) {
            if (++line_no_ == 1 && line_.starts_with("\xEF\xBB\xBF"))
                line_.erase(0, 3); // a UTF-8 byte order mark (Excel)
            if (!line_.empty() && line_.back() == '\r')
                line_.pop_back();
            if (!reader_.in_progress())
                first_line_ = line_no_;
            if (!reader_.feed(line_))
                continue;
            const auto& f = reader_.fields();
            if (f.size() == 1 && f[0].empty() && reader_.error().empty()) {
                reader_.reset();
                continue;
            }
            error_ = too_long_ ? "row longer than 1 MiB" : reader_.error();
            return true;
        }
        if (!reader_.in_progress())
            return false;
        error_ = "a quoted field never ends";
        return true;
    }
    [[nodiscard]] std::vector<std::string>& fields() { return reader_.fields(); }
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] std::uint32_t line() const { return first_line_; } // where the record starts

private:
    std::streambuf* sb_;
    std::uint64_t& bytes_;
    RecordReader reader_;
    std::string line_;
    std::string error_;
    bool too_long_ = false;
    std::uint32_t line_no_ = 0;
    std::uint32_t first_line_ = 0;
};

// A data row: a patch for the importer or a reported error.
void import_row(Importer& importer, const Header& header, RecordStream& records,
                bool empty_deletes) {
    ++importer.totals().rows;
    if (!records.error().empty())
        return importer.bad_row(records.line(), records.error());
    auto patch = row_patch(header, records.fields(), empty_deletes);
    if (auto* why = std::get_if<std::string>(&patch))
        return importer.bad_row(records.line(), *why);
    importer.add(std::move(std::get<ContactPatch>(patch)), records.line());
}

} // namespace

ImportReport import_contacts_csv(ContactStore& contacts, std::istream& in,
                                 const CsvImportOptions& options) {
    Importer importer(contacts, options);
    RecordStream records(in, importer.totals().bytes);
    std::optional<Header> header;
    while (importer.report().ok && records.next()) {
        if (header) {
            import_row(importer, *header, records, options.empty_deletes);
            continue;
        }
        auto parsed = records.error().empty() ? parse_header(records.fields())
                                              : std::variant<Header, std::string>(records.error());
        if (auto* why = std::get_if<std::string>(&parsed)) {
            auto report = importer.finish();
            report.ok = false;
            report.error = fmt::format("{}:{}: {}", options.name, records.line(), *why);
            return report;
        }
        header = std::move(std::get<Header>(parsed));
    }
    auto report = importer.finish();
    if (!header && report.ok) {
        report.ok = false;
        report.error = fmt::format("{}: no header row", options.name);
    }
    return report;
}

// ---- Export ----

std::string csv_field(std::string_view value) {
    const bool quote = value.find_first_of(",\"\r\n") != std::string_view::npos ||
                       (!value.empty() && (value.front() == ' ' || value.front() == '\t' ||
                                           value.back() == ' ' || value.back() == '\t'));
    if (!quote)
        return std::string(value);
    std::string out = "\"";
    for (const char c : value) {
        if (c == '"')
            out.push_back('"');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

namespace {

std::string cell_text(const json::value& v) {
    if (v.is_string())
        return std::string(v.get_string());
    if (v.is_array()) {
        std::string out;
        for (const auto& item : v.get_array()) {
            if (!out.empty())
                out.push_back(';');
            out += cell_text(item);
        }
        return out;
    }
    if (v.is_bool())
        return v.get_bool() ? "true" : "false";
    if (v.is_int64())
        return std::to_string(v.get_int64());
    if (v.is_uint64())
        return std::to_string(v.get_uint64());
    if (v.is_double())
        return fmt::format("{}", v.get_double());
    return {};
}

std::optional<CellType> type_of(const json::value& v) {
    if (v.is_string())
        return CellType::String;
    if (v.is_number())
        return CellType::Number;
    if (v.is_bool())
        return CellType::Bool;
    if (v.is_array())
        return CellType::List;
    return std::nullopt;
}

std::string_view type_suffix(CellType type) {
    switch (type) {
    case CellType::Number:
        return ":number";
    case CellType::Bool:
        return ":bool";
    case CellType::List:
        return ":list";
    case CellType::String:
        break;
    }
    return "";
}

// Every column's single type (String when mixed), by a pass over the table.
std::map<std::string, CellType> column_types(const ContactStore& contacts, bool all_names,
                                             const std::vector<std::string>& names) {
    std::map<std::string, std::optional<CellType>, std::less<>> seen;
    for (const auto& n : names)
        seen.emplace(n, std::nullopt);
    contacts.scan("", [&](const Contact& c) {
        for (const auto& [name, value] : c.attributes) {
            auto it = seen.find(std::string_view(name));
            if (it == seen.end()) {
                if (!all_names)
                    continue;
                it = seen.emplace(std::string(name), std::nullopt).first;
            }
            const auto t = type_of(value);
            if (!it->second)
                it->second = t;
            else if (it->second != t)
                it->second = CellType::String;
        }
        return true;
    });
    std::map<std::string, CellType> out;
    for (const auto& [name, type] : seen)
        out.emplace(name, type.value_or(CellType::String));
    return out;
}

} // namespace

std::uint64_t export_contacts_csv(const ContactStore& contacts,
                                  const std::function<bool(std::string_view)>& write,
                                  const CsvExportOptions& options) {
    const auto types = column_types(contacts, options.columns.empty(), options.columns);
    std::vector<std::string> columns = options.columns;
    if (columns.empty())
        for (const auto& [name, type] : types)
            columns.push_back(name);
    std::string line = "address,tags";
    for (const auto& name : columns)
        line += "," + csv_field(name + std::string(type_suffix(types.at(name))));
    line.push_back('\n');
    if (!write(line))
        return 0;
    std::uint64_t rows = 0;
    contacts.scan("", [&](const Contact& c) {
        line = csv_field(c.address) + ",";
        std::string tags;
        for (const auto& t : c.tags)
            tags += (tags.empty() ? "" : ";") + t;
        line += csv_field(tags);
        for (const auto& name : columns) {
            line.push_back(',');
            if (const auto* v = c.attributes.if_contains(name))
                line += csv_field(cell_text(*v));
        }
        line.push_back('\n');
        if (!write(line))
            return false;
        ++rows;
        return true;
    });
    return rows;
}

} // namespace ember::personalize
