#pragma once
// The queue's admin verbs over queue::Store, registered on an AdminServer:
//
//   queue.summary  {}                                -> recipients per state, per destination
//   queue.list     {domain?, state?, limit? (1..10000, default 100)}
//                                                    -> messages with a matching recipient
//   queue.show     {id}                              -> envelope, submission, recipients, header
//   queue.delete   {id}                              -> {"deleted": id}
//
// Result shapes are documented in emberctl(8); the verb functions below are
// public so tests (and a later HTTP API) call them without a socket.
// Unknown or ill-typed arguments are errors, so a typo never widens a query.
//
// Threads: the handlers run on the admin server's I/O thread and read the
// store synchronously. That is a deliberate choice: Store reads are LMDB read
// transactions on a memory map (no locks against the committer, no fsync),
// and a list is capped at 10000 messages, so a verb costs milliseconds; an
// offload to a thread pool would buy nothing but copying. queue.delete is a
// write transaction (one fsync) and also runs inline: it is rare and manual.
// Strings that came from the network (header fields, replies, HELO) are
// made valid UTF-8 (invalid bytes become U+FFFD) so the answer is valid JSON.

#include "daemon/admin_server.hpp"
#include "queue/store.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

inline constexpr std::size_t kDefaultListLimit = 100;
inline constexpr std::size_t kMaxListLimit = 10000;
inline constexpr std::size_t kMaxHeaderFields = 200;

// `store` must outlive the server.
void add_queue_verbs(AdminServer& server, queue::Store& store);

[[nodiscard]] AdminResult queue_summary(const queue::Store& store, const boost::json::object& args);
[[nodiscard]] AdminResult queue_list(const queue::Store& store, const boost::json::object& args);
[[nodiscard]] AdminResult queue_show(const queue::Store& store, const boost::json::object& args);
[[nodiscard]] AdminResult queue_delete(queue::Store& store, const boost::json::object& args);

struct HeaderField {
    std::string name;
    std::string value; // unfolded (RFC 5322 section 2.2.3), leading and trailing WSP trimmed
};
struct HeaderSection {
    std::vector<HeaderField> fields;
    bool truncated = false; // more than max_fields fields
};
// The header fields of a message: the lines before the first empty line
// (RFC 5322 section 2.1). A line that is neither a field nor a continuation
// ends the header, as Postfix's cleanup does. CRLF or bare LF line ends.
[[nodiscard]] HeaderSection parse_header_section(std::string_view content,
                                                 std::size_t max_fields = kMaxHeaderFields);

// RFC 3339 UTC with seconds ("2026-03-01T12:00:05Z"); "" for 0.
[[nodiscard]] std::string format_timestamp(std::int64_t unix_ms);

// The text with every invalid UTF-8 sequence replaced by U+FFFD.
[[nodiscard]] std::string valid_utf8(std::string_view text);

// Argument checks shared by the admin verbs. unknown_argument: "" when every
// key of `args` is one of `known`, else the error. string_arg: nullopt when
// absent; `error` set when not a string (or empty, with `non_empty`).
[[nodiscard]] std::string unknown_argument(const boost::json::object& args,
                                           std::initializer_list<std::string_view> known);
[[nodiscard]] std::optional<std::string> string_arg(const boost::json::object& args,
                                                    std::string_view name, std::string& error,
                                                    bool non_empty = false);

} // namespace ember::daemon
