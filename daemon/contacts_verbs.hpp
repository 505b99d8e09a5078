#pragma once
// The contacts admin verbs over personalize::ContactStore (issue 7),
// registered on an AdminServer:
//
//   contacts.get     {address}                        -> Contact
//   contacts.set     {address, attributes?, add_tags?, tags?}
//                                                     -> Contact (after the commit)
//   contacts.delete  {address}                        -> {"deleted"}
//   contacts.event   {address, kind, at?, domain?}    -> {"address", "event", "time"}
//   contacts.import  {path, name?, empty_deletes?}    -> {"job"}
//   contacts.export  {path}                           -> {"job"}
//   contacts.job     {job}                            -> Job
//
// Contact: personalize::contact_json() ({"address", "attributes", "tags",
// "engagement": engagement_summary}). attributes merge (a null value
// removes one); add_tags adds, tags replaces them all. kind: delivered,
// open, click; at: RFC 3339 (default now); domain: the sending domain
// (opens and clicks also count in its histogram). `contacts.event` is for
// operators moving history from another platform, and for tests.
//
// Import and export go through the daemon, not to the LMDB environment
// directly, on purpose: ContactStore's read-modify-write keeps records not
// yet committed in an in-process map, so a second process writing the same
// environment could silently undo an engagement update (or an import row)
// the daemon wrote meanwhile; and the data directory is the daemon's alone.
// The daemon reads and writes the FILE itself (an absolute path: emberctl
// makes it one), so the file must be readable (import) or its directory
// writable (export) by the daemon's user; the error says so. A job runs on
// its own thread (ContactJobs): an import streams (personalize::
// import_contacts_csv: chunks of 5000 rows, at most two waiting for the
// committer, so memory is bounded), an export writes FILE.part and renames
// it to FILE when complete. emberctl polls contacts.job for the progress.
// One job at a time; the daemon's stop cancels a running job at the next
// line (rows already committed stay).
//
// Job: {"job", "kind": "import"|"export", "path", "running", "ok", "error",
//       "rows", "imported", "skipped", "bytes", "size", "errors": [...],
//       "error_count"} (errors: "FILE:LINE: message", the first 100).
//
// Threads: the verbs run on the I/O executor; writes await the commit.

#include "daemon/admin_server.hpp"
#include "personalize/contacts.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

namespace ember::daemon {

using UnixClock = std::function<std::int64_t()>; // unix ms

// Import and export jobs, one at a time, each on its own thread.
class ContactJobs {
public:
    explicit ContactJobs(personalize::ContactStore& contacts);
    ~ContactJobs(); // cancels a running job and joins it
    ContactJobs(const ContactJobs&) = delete;
    ContactJobs& operator=(const ContactJobs&) = delete;

    // The job's id, or why it did not start (another job runs, a bad path).
    // `name`: the file as the operator named it, for "name:line: message".
    [[nodiscard]] std::variant<std::uint64_t, std::string>
    start_import(std::string path, bool empty_deletes, std::string name = {});
    [[nodiscard]] std::variant<std::uint64_t, std::string> start_export(std::string path);
    // The job's state (see the header comment); null when unknown.
    [[nodiscard]] boost::json::value status(std::uint64_t job) const;
    void cancel();

    struct Job;

private:
    [[nodiscard]] std::variant<std::uint64_t, std::string> begin(std::shared_ptr<Job> job);
    void reap(); // joins a finished job's thread

    personalize::ContactStore& contacts_;
    mutable std::mutex mutex_;
    std::shared_ptr<Job> current_; // the running or last job
    std::thread thread_;
    std::uint64_t next_id_ = 1;
};

// `contacts` and `jobs` must outlive the server.
void add_contacts_verbs(AdminServer& server, personalize::ContactStore& contacts, ContactJobs& jobs,
                        UnixClock clock = {});

// The verbs themselves, callable without a socket (pointers: coroutines).
[[nodiscard]] AdminResult contacts_get(const personalize::ContactStore& contacts,
                                       const boost::json::object& args, std::int64_t now_ms);
[[nodiscard]] boost::asio::awaitable<AdminResult>
contacts_set(personalize::ContactStore* contacts, boost::json::object args, std::int64_t now_ms);
[[nodiscard]] boost::asio::awaitable<AdminResult>
contacts_delete(personalize::ContactStore* contacts, boost::json::object args);
[[nodiscard]] boost::asio::awaitable<AdminResult>
contacts_event(personalize::ContactStore* contacts, boost::json::object args, std::int64_t now_ms);
[[nodiscard]] AdminResult contacts_import(ContactJobs& jobs, const boost::json::object& args);
[[nodiscard]] AdminResult contacts_export(ContactJobs& jobs, const boost::json::object& args);
[[nodiscard]] AdminResult contacts_job(const ContactJobs& jobs, const boost::json::object& args);

} // namespace ember::daemon
