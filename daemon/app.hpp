#pragma once
// emberd's wiring: builds every part from a validated Config (queue store,
// SMTP listeners, HTTP listener, admin socket), runs the event loop on the
// calling thread, and handles the service life cycle:
//   SIGHUP or `emberctl reload`: re-read the config file, validate all of it,
//     then swap settings, users file, TLS context and log level at once; on
//     any error the old configuration stays in force and the errors are
//     logged (and returned to emberctl).
//   SIGTERM/SIGINT: stop accepting, let sessions finish their transaction for
//     up to [server] shutdown_grace, then close what is left; commits already
//     handed to the store complete before the process exits.
//   systemd: READY=1 once listening, RELOADING=1/READY=1 around a reload,
//     STOPPING=1 on shutdown (Type=notify).

#include "core/diagnostics.hpp"
#include "core/log.hpp"
#include "daemon/config.hpp"

#include <optional>
#include <string>

namespace ember::daemon {

struct RunOptions {
    // --log-level wins over [server] log_level, also across reloads.
    std::optional<core::log::Level> log_level_override;
};

// What load_config() cannot check without building runtime objects: the TLS
// certificate and key load and match. Errors go to `diag`.
[[nodiscard]] bool validate_runtime(const Config& config, core::Diagnostics& diag);

// Runs the daemon until it is told to stop; returns the process exit code.
[[nodiscard]] int run_daemon(Config config, const RunOptions& options);

} // namespace ember::daemon
