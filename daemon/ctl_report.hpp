#pragma once
// emberctl's campaign report (daemon/campaign_report.hpp is the daemon side):
//
//   report [--campaign C] [--since T]
//
// T is an RFC 3339 date-time ("2026-05-01T00:00:00Z"), an RFC 3339 date
// ("2026-05-01", midnight UTC), or a duration back from now ("7d", "12h",
// "2w"; the units of ember.toml). Counters are kept per UTC day, so the
// report covers the whole UTC day containing T and every day after it.
// Without --since: every day the daemon keeps (400 days).
//
// The text form prints one block per campaign: its days, delivered,
// bounced (rate, by reason, hard/soft), deferred, complaints and
// unsubscribes (rates over delivered), suppressed, opens and clicks
// (unique human ones, their rate over delivered, all human ones, machine
// ones apart); and for a campaign with A/B cells a table of the cells with
// their lift against the control. --json prints the daemon's document.
// The formatter is pure; run_report parses T with the clock and talks to
// the daemon.

#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ember::daemon::ctl {

// T (see above) as unix ms; else why not.
[[nodiscard]] std::variant<std::int64_t, std::string> parse_since(std::string_view text,
                                                                  std::int64_t now_ms);

// The `report` request from the parsed options ({"campaign", "since"} as
// given); `error` when --since does not parse.
[[nodiscard]] boost::json::object report_request(const boost::json::object& given,
                                                 std::int64_t now_ms, std::string& error);

[[nodiscard]] Printed format_report(const boost::json::value& result);

// "12.50 %", "-" when null; lift with a sign: "+50.00 %".
[[nodiscard]] std::string percent_text(const boost::json::value* rate, bool sign = false);

void report_options(CLI::App& command, VerbArgs& args);
// Verb::offline entry (parses --since, then calls the daemon).
[[nodiscard]] int run_report(const Invocation& invocation, std::ostream& out, std::ostream& err);

} // namespace ember::daemon::ctl
