#pragma once
// `emberctl classify`, the offline verb: classify one SMTP reply, or every
// recipient of a bounce message read from a file or standard input.
//
//   emberctl classify --reply '550 5.1.1 <a@b>: User unknown' [--command RCPT]
//   emberctl classify [FILE | -] [--rules FILE]... [--no-builtin-rules] [--json]
//
// Output, one line per recipient (a reply prints "-" as the recipient):
//   recipient<TAB>reason<TAB>hard|soft<TAB>status<TAB>diagnostic
// or with --json one JSON object (kind, format, original message keys and
// a recipients array with action, reply code, command, remote MTA and the
// deciding rule too). Exit status: 0 something classified, 1 the message
// is not a bounce (nothing printed), 2 usage error, 66 the file cannot be
// read, 78 a rules file has errors (printed as file:line: message).
//
// No daemon, no sockets: this function is the whole verb, so emberctl wires
// it in one line. Standard input is read only when needed, through the
// callback.

#include <functional>
#include <string>
#include <vector>

namespace ember::feedback {

struct CommandOutput {
    int exit_code = 0;
    std::string out; // for stdout
    std::string err; // for stderr
};

// `args` are the words after "classify".
[[nodiscard]] CommandOutput classify_command(const std::vector<std::string>& args,
                                             const std::function<std::string()>& read_stdin);

// The usage text (also printed for --help).
[[nodiscard]] std::string classify_usage();

} // namespace ember::feedback
