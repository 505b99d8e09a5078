#pragma once
// emberctl's A/B test verbs (daemon/ab_verbs.hpp is the daemon side):
//
//   ab status ID   the test: state, metric, decide time, then per cell its
//                  split, recipients, delivered, unique human opens and
//                  clicks and their rates, then the decision (winner,
//                  runner-up, z, p-value, significant)
//   ab list        one line per test, newest first
//
// --json prints the daemon's JSON. The formatters are pure.

#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"

#include <boost/json/value.hpp>

namespace ember::daemon::ctl {

[[nodiscard]] Printed format_ab_status(const boost::json::value& result);
[[nodiscard]] Printed format_ab_list(const boost::json::value& result);

void ab_status_options(CLI::App& command, VerbArgs& args);
void ab_list_options(CLI::App& command, VerbArgs& args);

} // namespace ember::daemon::ctl
