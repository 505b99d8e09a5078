#pragma once
// emberctl's output for people: aligned tables, key: value blocks, and the
// pretty JSON of --json. Pure functions from the daemon's JSON results to
// text; no I/O, so tests check the exact output.
//
// The formatters never throw on an unexpected shape (a newer or older
// daemon): a missing field prints as "-". Text that came from the network
// (header fields, remote replies) has its control characters replaced by
// '?' so printing it cannot drive the operator's terminal.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon::ctl {

// What a verb prints, and the exit status it implies.
struct Printed {
    std::string out; // for stdout
    std::string err; // for stderr
    int exit_code = 0;
};

// Columns padded to their widest cell (in code points), separated by two
// spaces; the last column is not padded, so no line ends in spaces.
class Table {
public:
    explicit Table(std::vector<std::string> headers);
    void add_row(std::vector<std::string> cells); // missing cells are empty
    void align_right(std::size_t column);         // for numbers
    [[nodiscard]] std::size_t rows() const { return rows_.size(); }
    [[nodiscard]] std::string render() const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<bool> right_;
};

// "key: value" lines with the values aligned.
[[nodiscard]] std::string key_values(const std::vector<std::pair<std::string, std::string>>& rows);

// Two-space indented JSON with a final newline.
[[nodiscard]] std::string pretty_json(const boost::json::value& value);

// Seconds as "3d 4h 5m 6s", largest units first, zero units left out.
[[nodiscard]] std::string format_uptime(std::int64_t seconds);

// Control characters (C0, DEL, C1) replaced by '?'.
[[nodiscard]] std::string printable(std::string_view text);

// Fields of a daemon answer for tables: a string printable, other values as
// JSON, "-" when absent or null.
[[nodiscard]] std::string text_of(const boost::json::object& o, std::string_view key);
// An integer field; 0 when absent or not an integer.
[[nodiscard]] std::int64_t int_of(const boost::json::object& o, std::string_view key);
// A count: as int_of, negative values are 0.
[[nodiscard]] std::uint64_t count_of(const boost::json::object& o, std::string_view key);

[[nodiscard]] Printed format_status(const boost::json::value& result);
[[nodiscard]] Printed format_reload(const boost::json::value& result); // exit 1 unless reloaded
[[nodiscard]] Printed format_queue_summary(const boost::json::value& result);
[[nodiscard]] Printed format_queue_list(const boost::json::value& result);
[[nodiscard]] Printed format_queue_show(const boost::json::value& result);
[[nodiscard]] Printed format_queue_delete(const boost::json::value& result);

// The delivery verbs (daemon/delivery_verbs.hpp).
[[nodiscard]] Printed format_queue_retry(const boost::json::value& result);
[[nodiscard]] Printed format_queue_bounce(const boost::json::value& result);
[[nodiscard]] Printed format_domains(const boost::json::value& result);

// The longest remote reply `domains` prints, in columns; a terminal-ish
// width, so that a line of the table stays readable. --json has it whole.
inline constexpr std::size_t kReplyColumns = 60;

// At most `columns` code points: a longer text keeps columns - 3 of them
// and ends in "...".
[[nodiscard]] std::string truncate_text(std::string_view text, std::size_t columns);

// The offline verbs' results (daemon/ctl_offline.hpp builds them as JSON,
// so --json and the text come from one value). check-domain's exit status
// is decided by ctl_offline, not here.
[[nodiscard]] Printed format_dkim_keygen(const boost::json::value& result);
[[nodiscard]] Printed format_check_domain(const boost::json::value& result);

// The warm-up verbs (daemon/warmup_verbs.hpp): status as a table with each
// domain's guardrail rates under it, explain as key: value lines, and the
// one-line answers of pause, resume, set-day and advance.
[[nodiscard]] Printed format_warmup_status(const boost::json::value& result);
[[nodiscard]] Printed format_warmup_explain(const boost::json::value& result);
[[nodiscard]] Printed format_warmup_message(const boost::json::value& result);
[[nodiscard]] Printed format_warmup_advance(const boost::json::value& result);

} // namespace ember::daemon::ctl
