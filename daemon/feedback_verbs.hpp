#pragma once
// The feedback admin verbs over FeedbackService, registered on an AdminServer:
//
//   suppress.add     {address, reason?, scope?, source?}  -> {"added", "scope", "reason"}
//   suppress.remove  {address, scope?}                    -> {"removed", "scope"}
//   suppress.list    {reason?, scope?, cursor?, limit?}   -> {"entries": [Entry], "next_cursor"}
//   suppress.check   {address, domain?}                   -> {"address", "suppressed",
//                                                             "entry": Entry|null, "entries"}
//   suppress.import  {entries: [Entry]}                   -> {"imported"}
//   compliance       {domain?}                            -> format_scorecards_json's document
//
// Entry: {"address", "reason", "scope" ("global" or the domain), "time"
// (RFC 3339 UTC), "time_ms", "source"}. reason defaults to manual, scope to
// global; remove without scope removes every scope's entry and the
// soft-bounce streak. Writes answer after the LMDB commit. `emberctl
// suppress import` parses the CSV itself and sends the entries in chunks
// (each request stays under the admin socket's 64 KiB); `suppress export`
// pages through suppress.list. Unknown or ill-typed arguments are errors.
//
// compliance scores the last 24 hours of each sending domain (or one) with
// feedback::scorecard(): forward-confirmed reverse DNS of the egress
// addresses is looked up now (PTR, then A/AAAA of the name), the longest
// unsubscribe delay is the service's; tls_share counts the delivered events
// whose outcome recorded a TLS session (core::Outcome::tls). One line is
// n/a rather than a false failure: dmarc_aligned_share when some submission
// listener does not enforce the DMARC gate (alignment is only known where
// it is enforced).
//
// Threads: the daemon's I/O executor, like FeedbackService.

#include "core/net.hpp"
#include "daemon/admin_server.hpp"
#include "daemon/feedback_service.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <vector>

namespace ember::daemon {

// `service` and `resolver` must outlive the server; `sources` are the
// addresses mail leaves from (for the FCrDNS line; empty: n/a).
void add_feedback_verbs(AdminServer& server, FeedbackService& service, dns::Resolver& resolver,
                        std::vector<core::IpAddress> sources);

// The verbs themselves, callable without a socket (pointers: coroutines).
[[nodiscard]] boost::asio::awaitable<AdminResult> suppress_add(FeedbackService* service,
                                                               boost::json::object args);
[[nodiscard]] boost::asio::awaitable<AdminResult> suppress_remove(FeedbackService* service,
                                                                  boost::json::object args);
[[nodiscard]] AdminResult suppress_list(FeedbackService& service, const boost::json::object& args);
[[nodiscard]] AdminResult suppress_check(FeedbackService& service, const boost::json::object& args);
[[nodiscard]] boost::asio::awaitable<AdminResult> suppress_import(FeedbackService* service,
                                                                  boost::json::object args);
[[nodiscard]] boost::asio::awaitable<AdminResult> compliance(FeedbackService* service,
                                                             dns::Resolver* resolver,
                                                             std::vector<core::IpAddress> sources,
                                                             boost::json::object args);

// An entry as the verbs speak it, and back (nullopt and `error` when ill-formed).
[[nodiscard]] boost::json::object entry_json(const feedback::SuppressionEntry& entry);
[[nodiscard]] std::optional<feedback::SuppressionEntry>
entry_from_json(const boost::json::value& value, std::int64_t now_ms, std::string& error);

} // namespace ember::daemon
