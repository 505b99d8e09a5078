#pragma once
// The warm-up admin verbs over WarmupService, registered on an AdminServer:
//
//   warmup.status   {domain?}                    -> {"now", "enabled", "file",
//                                                    "clock_offset_s", "keys": [KeyStatus]}
//   warmup.pause    {domain, provider?}          -> {"message"}
//   warmup.resume   {domain, provider?}          -> {"message"}
//   warmup.set_day  {domain, day}                -> {"message"}
//   warmup.explain  {domain, recipient, mx?}     -> Explanation (warmup/format.hpp)
//   warmup.advance  {days}                       -> {"clock_offset_s", "now", "rescheduled"}
//
// KeyStatus and Explanation are warmup::to_json's shapes (emberctl(8)).
// pause/resume/set_day change the engine at once and save its state;
// registered, resume and set_day then release held mail (release_after:
// every Throttled recipient is due now) and answer {"message", "released"}.
// add_warmup_verbs also hands the scheduler's release_throttled to the
// service, which releases after every reload too. warmup.advance moves the
// warm-up clock forward (refused unless [warmup] allow_clock_advance is
// set) and then makes every pending recipient due now, as `queue retry
// --all` does, so mail held for the next day goes at once.
// Unknown or ill-typed arguments are errors.
//
// Threads: the engine and the scheduler live on the daemon's single
// executor, so the AdminServer MUST run on it too (emberd runs both on its
// one io_context).

#include "daemon/admin_server.hpp"
#include "daemon/warmup_service.hpp"
#include "queue/scheduler.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

namespace ember::daemon {

// `service` and `scheduler` must outlive the server.
void add_warmup_verbs(AdminServer& server, WarmupService& service, queue::Scheduler& scheduler);

// The verbs themselves, callable without a socket.
[[nodiscard]] AdminResult warmup_status(WarmupService& service, const boost::json::object& args);
[[nodiscard]] AdminResult warmup_pause(WarmupService& service, const boost::json::object& args);
[[nodiscard]] AdminResult warmup_resume(WarmupService& service, const boost::json::object& args);
[[nodiscard]] AdminResult warmup_set_day(WarmupService& service, const boost::json::object& args);
[[nodiscard]] AdminResult warmup_explain(WarmupService& service, const boost::json::object& args);
// Pointers: a coroutine's parameters are values (STYLE.md).
// After a successful `result`: releases held mail and adds "released" (and
// a note in "message"); a failed `result` comes back untouched.
[[nodiscard]] boost::asio::awaitable<AdminResult> release_after(WarmupService* service,
                                                                AdminResult result);
[[nodiscard]] boost::asio::awaitable<AdminResult>
warmup_advance(WarmupService* service, queue::Scheduler* scheduler, boost::json::object args);

} // namespace ember::daemon
