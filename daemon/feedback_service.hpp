#pragma once
// The daemon side of the feedback loop (issue 6, DESIGN.md "How mail
// flows" steps 1, 3 and 4). FeedbackService owns the suppression list, the
// token signer and the inbound policy (as one immutable FeedbackPolicy
// snapshot that reload swaps), the event log, the webhook outbox and the
// per-domain rates, and hands the daemon the parts it wires in:
//
//   RCPT TO        check_recipient() (smtp::RecipientPolicy): addresses at
//                  our bounce and unsubscribe domains and the report
//                  addresses are ours on every listener: VERP return paths
//                  and unsubscribe+TOKEN whose token verifies, report
//                  addresses and postmaster are Local, anything else there
//                  (a forged or tampered token) is refused 550 5.1.1; other
//                  recipients are left to the relay rules (an inbound
//                  listener relays only for AUTH or trusted clients, like
//                  any other); a suppressed one is refused 550 5.7.1 naming
//                  the reason when suppression_at_rcpt = "reject", else
//                  accepted and settled at dispatch;
//   after DATA     FeedbackSink (daemon/feedback_sink.hpp): mail to our
//                  addresses is read (InboundPolicy::decide) and its
//                  suppressions and events are durable before the 250;
//   dispatch       the stages of daemon/feedback_stages.hpp (suppression
//                  check, VERP, List-Unsubscribe and X-Ember-ID) run inside
//                  the Dispatcher, before DKIM signing;
//   results        OutcomeObserver and BounceObserver (feedback_stages.hpp)
//                  turn every outcome into an event, hard bounces into
//                  suppressions, final soft failures into the soft-bounce
//                  streak, deliveries into its end;
//   HTTP           POST/GET /u/TOKEN (daemon/feedback_http.hpp);
//   admin          suppress.* and compliance (daemon/feedback_verbs.hpp).
//
// Every event goes through emit(): the event log (best effort), the rates
// (and the warm-up guardrails), the events counter, and the webhook outbox
// (durable: emit_durable() completes after the LMDB commit).
//
// Decisions (also in ember.toml(5)):
//   - without token_keys nothing is signed: VERP and List-Unsubscribe are
//     off (the config refuses them), no X-Ember-ID is added (an unsigned
//     one could not be trusted, and mail relayed by a daemon that does not
//     use the feedback loop stays as it was submitted), and every VERP or
//     unsubscribe address is refused;
//   - the suppression check at RCPT uses the envelope sender's domain as
//     the sending domain (the From: field is not known yet); dispatch
//     checks again with the From: domain;
//   - complaints move a domain's complaint rate only when they map back to
//     a message ember sent (VERP, X-Ember-ID or Message-ID), so a forged
//     report naming nothing cannot; a "not-spam" report is not a complaint;
//   - the rates are saved in the store's "feedback" KV table (key "rates")
//     every minute and at stop, so a restart keeps them.
//
// Threads: everything but the Store callbacks runs on the daemon's single
// I/O executor (the scheduler's, the SMTP sessions', the HTTP and admin
// servers'); the Rates are only touched there. Store completions post back.

#include "core/delivery.hpp"
#include "core/diagnostics.hpp"
#include "daemon/config.hpp"
#include "feedback/events.hpp"
#include "feedback/inbound.hpp"
#include "feedback/rates.hpp"
#include "feedback/rules.hpp"
#include "feedback/suppression.hpp"
#include "feedback/tokens.hpp"
#include "feedback/webhooks.hpp"
#include "queue/scheduler.hpp"
#include "queue/store.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::daemon {

class Dispatcher;
class Metrics;

inline constexpr const char* kFeedbackTable = "feedback";
inline constexpr const char* kRatesKey = "rates";

// What the feedback parts read from the configuration, built once per
// (re)load and never changed: a session or a job keeps the snapshot it took.
struct FeedbackPolicy {
    FeedbackConfig config;
    std::string public_url;                      // [http] public_url
    std::optional<feedback::TokenSigner> signer; // unset without token_keys
    std::shared_ptr<const feedback::Rules> rules;
    std::shared_ptr<const feedback::InboundPolicy> inbound;
    // Domains whose addresses are ours on a submission listener: the
    // bounce domains and the unsubscribe mailto domain.
    std::vector<std::string> local_domains;
    // Listener address text -> the DMARC gate enforces on it (mail it
    // accepted is aligned; elsewhere alignment is unknown).
    std::map<std::string, bool> aligned_listeners;
    bool alignment_enforced_everywhere = false;

    // The bounce domain for VERP return paths of mail from `sending_domain`;
    // "" when none applies.
    [[nodiscard]] std::string bounce_domain_for(std::string_view sending_domain) const;
    // The domain is listed in unsubscribe_domains (or "*" is).
    [[nodiscard]] bool bulk_domain(std::string_view sending_domain) const;
    // A feedback address of ours, on any listener: a report address or an
    // address at a local domain.
    [[nodiscard]] bool feedback_address(std::string_view address) const;
};

// Builds the snapshot: token keys, classification rules (file:line errors in
// `diag`), the inbound policy. nullptr when diag got errors.
[[nodiscard]] std::shared_ptr<const FeedbackPolicy> make_feedback_policy(const Config& config,
                                                                         core::Diagnostics& diag);

// How an event was learned, and what it may move.
struct EmitOptions {
    bool count = true; // rates and guardrails (false: log and webhooks only)
};

class OutcomeObserver;
class BounceObserver;

class FeedbackService final : public smtp::RecipientPolicy {
public:
    using Clock = std::function<std::int64_t()>; // unix ms
    using GuardrailHook = std::function<void(const feedback::GuardrailSignal&)>;

    // Opens the suppression list, the event log, the webhook outbox and the
    // saved rates. nullptr and `error` on failure (a bad key, an
    // unwritable log, a store error).
    [[nodiscard]] static std::unique_ptr<FeedbackService>
    create(boost::asio::any_io_executor executor, const Config& config, queue::Store& store,
           Metrics& metrics, std::string& error, Clock clock = {});
    ~FeedbackService() override;
    FeedbackService(const FeedbackService&) = delete;
    FeedbackService& operator=(const FeedbackService&) = delete;

    void start();                    // webhook senders and the periodic save of the rates
    void stop();                     // saves the rates, stops the webhook senders
    [[nodiscard]] bool idle() const; // after stop(): no webhook task left
    // A validated new configuration: the policy snapshot is swapped; the
    // event log path, the webhooks and the soft-bounce policy keep their
    // values until a restart (logged).
    void apply(const Config& config, std::shared_ptr<const FeedbackPolicy> policy);
    void reopen_log(); // SIGHUP, after logrotate
    void flush_log();  // blocks until the event log wrote what was emitted (stop, tests)
    // Complaints and asynchronous bounces for the warm-up guardrails.
    void set_guardrail(GuardrailHook hook) { guardrail_ = std::move(hook); }
    // Every counted event (EmitOptions::count), after the log and the
    // rates: contacts' engagement (daemon/contact_events.hpp). Runs on the
    // emitting thread; must be quick.
    using EventListener = std::function<void(const feedback::Event&)>;
    // Listeners run in the order added (engagement, A/B counts, reports).
    void add_event_listener(EventListener listener) {
        event_listeners_.push_back(std::move(listener));
    }

    // ---- the parts the daemon wires ----
    [[nodiscard]] smtp::RecipientVerdict
    check_recipient(const smtp::RecipientCheck& check) override;
    // Adds the suppression, VERP and unsubscribe stages, in that order.
    void add_stages(Dispatcher& dispatcher);
    // The same in two halves, so the personalization stage (hook, merge)
    // goes between: suppression and VERP before rendering (a suppressed
    // recipient is never shown to the hook), List-Unsubscribe and
    // X-Ember-ID after it.
    void add_stages_before_render(Dispatcher& dispatcher);
    void add_stages_after_render(Dispatcher& dispatcher);
    // A Deliverer in front of `inner` that reports every outcome; owned by
    // the service, valid while it lives.
    [[nodiscard]] core::Deliverer& observe(core::Deliverer& inner);
    // The same for the scheduler's DSN hand-over (expiries, admin bounces).
    [[nodiscard]] queue::BounceSink& observe_bounces(queue::BounceSink& inner);

    // ---- for the parts ----
    [[nodiscard]] std::shared_ptr<const FeedbackPolicy> policy() const { return policy_; }
    [[nodiscard]] feedback::SuppressionList& suppressions() { return *suppressions_; }
    [[nodiscard]] queue::Store& store() { return store_; }
    [[nodiscard]] const feedback::Rates& rates() const { return rates_; }
    [[nodiscard]] std::int64_t now_ms() const { return clock_(); }
    [[nodiscard]] feedback::WebhookOutbox& outbox() { return *outbox_; }

    // Sets id and time when empty; log, rates, counters, webhooks.
    void emit(feedback::Event event, EmitOptions options = {},
              std::function<void(bool stored)> done = {});
    // Completes once the webhook outbox stored it (true) or failed to (false).
    [[nodiscard]] boost::asio::awaitable<bool> emit_durable(feedback::Event event,
                                                            EmitOptions options = {});
    // Suppression writes as coroutines (they complete after the commit).
    [[nodiscard]] boost::asio::awaitable<feedback::WriteResult>
    suppress(feedback::SuppressionEntry entry);
    [[nodiscard]] boost::asio::awaitable<feedback::WriteResult>
    record_soft_failure(std::string address, std::string source);
    // Fire and forget (the dispatch path): errors are logged.
    void suppress_later(feedback::SuppressionEntry entry);
    void record_soft_failure_later(std::string address, std::string source);
    void record_delivery_later(std::string address);

    // An unsubscribe took `delay_ms` from its request to its durable
    // suppression (the compliance scorecard's unsubscribe_delay).
    void note_unsubscribe_delay(std::int64_t delay_ms);
    [[nodiscard]] std::optional<core::Duration> longest_unsubscribe_delay() const;

    // The "throttled" event is sent once per recipient and reason, not at
    // every look of the scheduler: true when this one is new.
    [[nodiscard]] bool throttle_changed(std::uint64_t message_id, std::uint32_t index,
                                        const std::string& reason);
    void forget_throttle(std::uint64_t message_id, std::uint32_t index);

    struct Metrics;

private:
    FeedbackService(boost::asio::any_io_executor executor, queue::Store& store, Clock clock);
    [[nodiscard]] bool open(const Config& config, daemon::Metrics& metrics, std::string& error);
    void restore_rates();
    void save_rates();
    static boost::asio::awaitable<void> save_loop(FeedbackService* self, std::uint64_t generation);
    void refresh_metrics();
    // count_by_reason() scans the whole suppression table: /metrics uses a
    // copy at most kSuppressionCountTtl old, so a scrape costs O(1) however
    // large the list (and however often Prometheus asks).
    const std::map<feedback::SuppressionReason, std::uint64_t>& suppression_counts();

    boost::asio::any_io_executor executor_;
    queue::Store& store_;
    Clock clock_;
    std::shared_ptr<const FeedbackPolicy> policy_;
    std::unique_ptr<feedback::SuppressionList> suppressions_;
    std::unique_ptr<feedback::EventLog> log_;
    std::shared_ptr<feedback::WebhookOutbox> outbox_;
    feedback::Rates rates_;
    queue::Store::TableId table_ = 0;
    std::string last_saved_;
    boost::asio::steady_timer save_timer_;
    std::uint64_t generation_ = 0;
    bool running_ = false;
    GuardrailHook guardrail_;
    std::vector<EventListener> event_listeners_;
    std::vector<std::pair<std::int64_t, std::int64_t>> unsubscribe_delays_; // (at, delay) ms
    std::map<feedback::SuppressionReason, std::uint64_t> suppression_counts_;
    std::optional<std::int64_t> suppression_counted_ms_; // clock_() of the last scan
    std::map<std::pair<std::uint64_t, std::uint32_t>, std::string> throttled_;
    std::unique_ptr<Metrics> metrics_;
    std::unique_ptr<OutcomeObserver> observer_;
    std::unique_ptr<BounceObserver> bounce_observer_;
    std::shared_ptr<FeedbackService*> handle_; // the metrics refresher's view of this
    Config started_;                           // what only a restart changes, as it started
};

// "recipient suppressed: hard-bounce (global) since 2026-11-29T10:00:00Z"
[[nodiscard]] std::string describe_suppression(const feedback::SuppressionEntry& entry);

} // namespace ember::daemon
