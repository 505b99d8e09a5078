#pragma once
// emberctl's contacts verbs (daemon/contacts_verbs.hpp is the daemon side):
//
//   contacts get ADDRESS                    attributes, tags, engagement
//   contacts set ADDRESS [NAME[:TYPE]=VALUE ...] [--tag T ...]
//                                           TYPE: string (default), number,
//                                           bool, list (';'-separated), as
//                                           in the CSV header; NAME= (empty)
//                                           removes the attribute; --tag adds
//   contacts delete ADDRESS
//   contacts event ADDRESS KIND [--at TIME] [--domain SENDING-DOMAIN]
//                                           record delivered/open/click
//   contacts import FILE [--empty-deletes]  CSV; progress on stderr; bad rows
//                                           as FILE:LINE: message; exit 1
//                                           when a row was bad
//   contacts export FILE                    CSV that imports back unchanged
//
// Import and export are done by the daemon (see contacts_verbs.hpp for
// why): emberctl sends FILE as an absolute path, then polls contacts.job
// every 200 ms until the job ends. --json prints the daemon's JSON (import
// and export: the final job state).

#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_feedback.hpp"
#include "daemon/ctl_format.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <variant>

namespace ember::daemon::ctl {

[[nodiscard]] Printed format_contact(const boost::json::value& result);
[[nodiscard]] Printed format_contact_change(const boost::json::value& result);

void contacts_address_options(CLI::App& command, VerbArgs& args);
void contacts_set_options(CLI::App& command, VerbArgs& args);
void contacts_event_options(CLI::App& command, VerbArgs& args);
void contacts_import_options(CLI::App& command, VerbArgs& args);
void contacts_export_options(CLI::App& command, VerbArgs& args);

struct Assignment {
    std::string name;
    boost::json::value value; // null: remove the attribute
};
// "first_name=Jane", "age:number=42", "vip:bool=yes", "likes:list=a;b",
// "first_name=" (remove); else why not.
[[nodiscard]] std::variant<Assignment, std::string> parse_assignment(std::string_view text);

// The contacts.set request of `contacts set`'s parsed words; `error` when
// an assignment is bad.
[[nodiscard]] boost::json::object contacts_set_request(const boost::json::object& given,
                                                       std::string& error);

// Verb::offline entries (they call the daemon themselves).
[[nodiscard]] int run_contacts_set(const Invocation& invocation, std::ostream& out,
                                   std::ostream& err);
[[nodiscard]] int run_contacts_import(const Invocation& invocation, std::ostream& out,
                                      std::ostream& err);
[[nodiscard]] int run_contacts_export(const Invocation& invocation, std::ostream& out,
                                      std::ostream& err);

// Starts `verb` with `args` and polls contacts.job until it ends; progress
// on `err` (`wait` sleeps between polls; injectable for tests).
[[nodiscard]] int run_contacts_job(const std::string& verb, const boost::json::object& args,
                                   bool json, const AdminCaller& call, std::ostream& out,
                                   std::ostream& err, const std::function<void()>& wait);

} // namespace ember::daemon::ctl
