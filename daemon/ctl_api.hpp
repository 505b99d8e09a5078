#pragma once
// emberctl's offline `api-key new`: a fresh bearer token for the injection
// API (ember-api(7)) and the [[api_key]] block holding only its SHA-256.
// The token is printed once, to stdout, and stored nowhere.

#include "daemon/ctl_cli.hpp"

#include <iosfwd>

namespace ember::daemon::ctl {

void api_key_new_options(CLI::App& command, VerbArgs& args);
[[nodiscard]] int run_api_key_new(const Invocation& invocation, std::ostream& out,
                                  std::ostream& err);

} // namespace ember::daemon::ctl
