#pragma once
// emberctl's command line: global options, the verb table, and run().
//
// Each verb is one row of a table: its words on the command line, the admin
// verb it sends (empty for an offline verb that needs no daemon, such as the
// later `dkim keygen`), a function that declares its options, one that
// builds the request arguments, and one that prints the result. Adding a
// verb is adding a row and its functions.
//
// Exit status (sysexits(3) where one fits): 0 ok, 1 the daemon answered an
// error (or kept its old configuration on reload), 2 usage error,
// 69 EX_UNAVAILABLE cannot reach the daemon, 76 EX_PROTOCOL a malformed
// answer, 78 EX_CONFIG the -c file does not load.

#include "core/units.hpp"
#include "daemon/ctl_format.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace ember::daemon::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitDaemonError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 69; // EX_UNAVAILABLE
inline constexpr int kExitProtocol = 76;    // EX_PROTOCOL
inline constexpr int kExitConfig = 78;      // EX_CONFIG

struct AdminCall;
// A failed admin call: its error on `err`, and the exit code for its status
// (69 unavailable, 76 protocol, else 1).
[[nodiscard]] int call_failed(const AdminCall& call, std::ostream& err);

inline constexpr const char* kDefaultSocket = "/run/ember/admin.sock";
inline constexpr const char* kSocketEnv = "EMBER_ADMIN_SOCKET";
inline constexpr core::Duration kTimeout = std::chrono::seconds(5); // connect + answer

struct Options {
    std::string socket; // -s
    std::string config; // -c
    bool json = false;  // --json
};

// Storage the verbs' options bind to while parsing.
struct VerbArgs {
    std::string domain;
    std::string state;
    std::string id;
    int limit = 0; // 0: not given
};

struct Invocation;

struct Verb {
    std::string_view words;      // "queue list"
    std::string_view admin_verb; // "queue.list"; empty: runs offline
    std::string_view help;
    void (*define)(CLI::App& command, VerbArgs& args);
    boost::json::object (*request)(const VerbArgs& args);
    Printed (*print)(const boost::json::value& result);
    // Offline verbs: runs the whole verb (exit status); null for daemon verbs.
    int (*offline)(const Invocation& invocation, std::ostream& out, std::ostream& err);
};

[[nodiscard]] const std::vector<Verb>& verbs();

struct Invocation {
    Options options;
    const Verb* verb = nullptr;
    boost::json::object args; // the admin request's "args"
};

struct ParseResult {
    std::optional<Invocation> invocation;
    int exit_code = kExitOk; // without an invocation: 0 after --help, else kExitUsage
    std::string output;      // help text or the usage error
};

// argv[0] included.
[[nodiscard]] ParseResult parse_command_line(const std::vector<std::string>& argv);

// -s, else [admin] socket from the -c file, else $EMBER_ADMIN_SOCKET, else
// kDefaultSocket. "" with `error` set when the -c file does not load.
[[nodiscard]] std::string resolve_socket(const Options& options, const char* env_socket,
                                         std::string& error);

// The whole tool; returns the exit status.
[[nodiscard]] int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

} // namespace ember::daemon::ctl
