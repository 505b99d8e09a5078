#pragma once
// emberctl's side of the admin socket protocol (see admin_server.hpp): one
// connection, one request line, one answer line. Blocking POSIX I/O with a
// single deadline covering connect, send and answer: emberctl is a
// short-lived command with nothing else to do meanwhile, so an event loop
// would add nothing.

#include "core/units.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace ember::daemon::ctl {

struct AdminCall {
    enum class Status {
        Ok,          // result holds the verb's result
        DaemonError, // the daemon answered {"ok":false}: error holds its text
        Unavailable, // no connection, or no answer before the deadline
        Protocol,    // the answer is not a valid admin answer
    };
    Status status = Status::Ok;
    boost::json::value result;
    std::string error; // names the socket path when Unavailable
};

[[nodiscard]] AdminCall call_admin(const std::string& socket_path, std::string_view verb,
                                   const boost::json::object& args, core::Duration timeout);

// Interprets one answer line (exposed for tests).
[[nodiscard]] AdminCall parse_admin_answer(std::string_view line);

} // namespace ember::daemon::ctl
