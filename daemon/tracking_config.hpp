#pragma once
// [tracking]: open and click tracking (issue 8; daemon/tracking_service.hpp,
// ember.toml(5)). Plain values, defaults written once; parsed by
// daemon/config_tables_tracking.cpp. The machine-hit rules are the feedback
// library's own struct (feedback/machine_activity.hpp), embedded.

#include "core/units.hpp"
#include "feedback/machine_activity.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace ember::daemon {

struct TrackingConfig {
    // Sending domains whose HTML mail is tracked without being asked
    // (lowercase; "*" = every domain). A message's X-Ember-Track field
    // opts in (or, with "none", out) whatever this says.
    std::vector<std::string> domains;
    // Ceilings: opens = false inserts no pixel anywhere, even when a
    // message asks for it (a privacy policy the admin sets); likewise clicks.
    bool opens = true;
    bool clicks = true;
    // machine_click_window, machine_user_agents, machine_networks.
    feedback::MachineConfig machine;
    // How long the first-open / first-click marks of a message are kept
    // (the "unique" flag); counted from the message's queue id time.
    core::Duration retention = std::chrono::hours(24 * 90);
};

} // namespace ember::daemon
