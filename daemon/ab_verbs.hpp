#pragma once
// The A/B test admin verbs over AbService (issue 8), on an AdminServer:
//
//   ab.status  {id}  -> the test as ab_test_json() (daemon/ab_service.hpp)
//   ab.list    {}    -> {"tests": [test, ...]} newest first
//
// Unknown arguments are errors. Reads only: the service's in-memory state
// (counts newer than the last save included).
//
// Threads: the daemon's I/O executor, like AbService.

#include "daemon/ab_service.hpp"
#include "daemon/admin_server.hpp"

#include <boost/json/object.hpp>

namespace ember::daemon {

// `service` must outlive the server.
void add_ab_verbs(AdminServer& server, AbService& service);

[[nodiscard]] AdminResult ab_status(const AbService& service, const boost::json::object& args);
[[nodiscard]] AdminResult ab_list(const AbService& service, const boost::json::object& args);

} // namespace ember::daemon
