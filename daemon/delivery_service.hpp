#pragma once
// The outbound half of emberd, wired: the DNS resolver, the SMTP delivery
// agent, the scheduler over the queue, DKIM signing at dispatch and the
// DSNs the scheduler asks for. Dispatch order for every job:
//   scheduler (due, limits) -> [outcome events: FeedbackService::observe]
//   -> warm-up gate (PacingDeliverer, when a WarmupService is given:
//   daemon/warmup_service.hpp) -> [dispatch stages: suppression, VERP,
//   List-Unsubscribe, X-Ember-ID (daemon/dispatch.hpp), when a
//   FeedbackService is given] -> sign (DKIM, once per message content and
//   dispatch variant, on the worker pool) -> deliver (smtp::DeliveryAgent)
//   -> outcomes to the store.
// Reload swaps the signer and the agent (jobs in flight keep the ones they
// started with) and the scheduler's retry policy; [dns] needs a restart.
// Runs on the daemon's I/O executor.

#include "auth/dkim_signer.hpp"
#include "core/delivery.hpp"
#include "daemon/config.hpp"
#include "dns/resolver.hpp"
#include "queue/scheduler.hpp"
#include "queue/store.hpp"
#include "smtp/client_metrics.hpp"
#include "smtp/delivery_agent.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

namespace ember::daemon {

class Dispatcher;
class FeedbackService;
class PacingDeliverer;
class PersonalizeService;
class WarmupService;

class DeliveryService {
public:
    // nullptr and `error` set when a part cannot start (c-ares, TLS context).
    // `warmup`, `feedback` and `personalize` (optional) must outlive the
    // service. Dispatch stages: feedback's suppression and VERP, then
    // personalization (hook, merge), then List-Unsubscribe and X-Ember-ID.
    [[nodiscard]] static std::unique_ptr<DeliveryService>
    create(boost::asio::any_io_executor executor, const Config& config, queue::Store& store,
           prometheus::Registry& registry, boost::asio::thread_pool& pool, std::string& error,
           WarmupService* warmup = nullptr, FeedbackService* feedback = nullptr,
           PersonalizeService* personalize = nullptr);
    ~DeliveryService();
    DeliveryService(const DeliveryService&) = delete;
    DeliveryService& operator=(const DeliveryService&) = delete;

    // Starts dispatching unless [delivery] hold is set.
    void start();
    // Stops dispatching and opening connections; waits for jobs in flight,
    // cutting off sessions that are not sending content after 5 s and the
    // rest after `grace`. Cut-off recipients stay queued (Throttled: no
    // retry spent) and go out after a restart.
    [[nodiscard]] boost::asio::awaitable<void> stop(core::Duration grace);
    // New mail was committed: look for due recipients now. Any thread.
    void notify();
    // Applies a validated new configuration (see the header comment).
    void reload(const Config& config, std::shared_ptr<const auth::DkimSigner> signer);

    [[nodiscard]] queue::Scheduler& scheduler() { return *scheduler_; }
    [[nodiscard]] dns::Resolver& resolver() { return *resolver_; }
    [[nodiscard]] std::shared_ptr<const auth::DkimSigner> signer() const { return signer_; }

    class Impl;

private:
    DeliveryService() = default;
    bool hold_ = false;

    std::unique_ptr<dns::Resolver> resolver_;
    std::shared_ptr<const auth::DkimSigner> signer_;
    std::unique_ptr<smtp::ClientMetrics> client_metrics_;
    std::unique_ptr<Impl> impl_;
    std::unique_ptr<PacingDeliverer> pacing_; // in front of impl_ when warm-up is wired
    std::unique_ptr<Dispatcher> dispatcher_;  // between pacing_ and impl_ with feedback
    std::unique_ptr<queue::Scheduler> scheduler_;
};

// Loads and checks the [[dkim]] keys; nullptr with errors in `diag`.
[[nodiscard]] std::shared_ptr<const auth::DkimSigner> load_signer(const Config& config,
                                                                  core::Diagnostics& diag);

} // namespace ember::daemon
