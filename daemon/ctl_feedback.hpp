#pragma once
// emberctl's feedback verbs (daemon/feedback_verbs.hpp is the daemon side):
//
//   suppress add ADDRESS [--reason R] [--scope DOMAIN|global] [--source TEXT]
//   suppress remove ADDRESS [--scope DOMAIN|global]
//   suppress list [--reason R] [--scope S] [--limit N] [--cursor C]
//   suppress check ADDRESS [--domain SENDING-DOMAIN]
//   suppress import [FILE | -]     CSV (address,reason,scope,time,source);
//                                  bad rows are reported as FILE:LINE and
//                                  skipped; exit 1 when any row was bad
//   suppress export [--reason R] [--scope S]   CSV on stdout
//   compliance [DOMAIN]                        the scorecard of the last 24 hours
//
// --json on each prints the daemon's JSON (export: one array of entries,
// import: {"imported", "rows", "errors"}). The formatters are pure; import
// and export talk to the daemon over the admin socket themselves (many
// requests: each stays under the socket's request limit).

#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_client.hpp"
#include "daemon/ctl_format.hpp"

#include <boost/json/value.hpp>

#include <functional>
#include <iosfwd>
#include <string>

namespace ember::daemon::ctl {

[[nodiscard]] Printed format_suppress_change(const boost::json::value& result);
[[nodiscard]] Printed format_suppress_list(const boost::json::value& result);
[[nodiscard]] Printed format_suppress_check(const boost::json::value& result);
[[nodiscard]] Printed format_compliance(const boost::json::value& result);

// Option declarations for the verb table.
void suppress_add_options(CLI::App& command, VerbArgs& args);
void suppress_remove_options(CLI::App& command, VerbArgs& args);
void suppress_list_options(CLI::App& command, VerbArgs& args);
void suppress_check_options(CLI::App& command, VerbArgs& args);
void suppress_import_options(CLI::App& command, VerbArgs& args);
void suppress_export_options(CLI::App& command, VerbArgs& args);
void compliance_options(CLI::App& command, VerbArgs& args);

// Verb::offline entries (they call the daemon themselves).
[[nodiscard]] int run_suppress_import(const Invocation& invocation, std::ostream& out,
                                      std::ostream& err);
[[nodiscard]] int run_suppress_export(const Invocation& invocation, std::ostream& out,
                                      std::ostream& err);

// One admin call as import/export make it (injectable for tests).
using AdminCaller = std::function<AdminCall(const std::string& verb, const boost::json::object&)>;
[[nodiscard]] int suppress_import(const std::string& name, const std::string& csv, bool json,
                                  const AdminCaller& call, std::ostream& out, std::ostream& err,
                                  std::int64_t now_ms);
[[nodiscard]] int suppress_export(const boost::json::object& filter, bool json,
                                  const AdminCaller& call, std::ostream& out, std::ostream& err);

} // namespace ember::daemon::ctl
