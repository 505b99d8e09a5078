#pragma once
// The delivery admin verbs over queue::Scheduler, registered on an AdminServer:
//
//   queue.retry   {id} | {domain} | {all: true}  -> {"changed": N, "messages": M}
//   queue.bounce  {id}                           -> {"bounced": N, "id": id}
//   domains       {}                             -> {"domains": [{domain, queued, deferred,
//                                                    in_flight, connections, last_reply,
//                                                    last_time}]}
//
// queue.retry makes pending recipients that are not in flight due now (like
// `postqueue -i` / `postqueue -f`); queue.bounce fails every pending
// recipient of one message with "550 5.0.0 bounced by administrator" and
// hands one failure DSN to the sender, as an expiry would. Result shapes
// are documented in emberctl(8). Unknown or ill-typed arguments are errors, and retry takes
// exactly one of its three selectors, so a typo never widens it to the whole
// queue.
//
// Threads: the handlers call the Scheduler, whose members must be called on
// its own single-threaded executor, so the AdminServer MUST run on the
// scheduler's executor (emberd runs both on its one io_context). The
// retries and bounce await store commits; domains is a synchronous read of
// the scheduler's in-memory state.

#include "daemon/admin_server.hpp"
#include "queue/scheduler.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <vector>

namespace ember::daemon {

// `scheduler` must outlive the server.
void add_delivery_verbs(AdminServer& server, queue::Scheduler& scheduler);

// The verbs themselves, callable without a socket. Pointers, not references:
// they are coroutines (STYLE.md: coroutine parameters are values).
[[nodiscard]] boost::asio::awaitable<AdminResult> queue_retry(queue::Scheduler* scheduler,
                                                              boost::json::object args);
[[nodiscard]] boost::asio::awaitable<AdminResult> queue_bounce(queue::Scheduler* scheduler,
                                                               boost::json::object args);
[[nodiscard]] AdminResult domains_status(const queue::Scheduler& scheduler,
                                         const boost::json::object& args);

// The `domains` result for a list of destinations (pure; exposed for tests).
[[nodiscard]] boost::json::object
destinations_json(const std::vector<queue::DestinationStatus>& destinations);

} // namespace ember::daemon
