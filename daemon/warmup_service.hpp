#pragma once
// The daemon side of warm-up (warmup/README.md "How the scheduler uses it").
//
// WarmupService owns the one warmup::Engine of the daemon, its clock, its
// persistence and its metrics:
//   - start: warmup.toml is loaded (unthrottled when [warmup] file is
//     empty) and the state last saved in the store's "warmup" KV table
//     (key "state") is restored;
//   - every [warmup] save_interval, after admin changes and at stop(), the
//     state is serialized into that table (skipped when unchanged) through
//     the store's group committer;
//   - reload: load_warmup_config() validates the new file first (App::reload
//     reports its file:line errors and keeps the old one), apply() swaps it
//     in with Engine::reconfigure(), keeping counters, ramps and backoffs;
//   - events are drained after every job and admin verb: one log line each
//     (`warmup.<event>`) and ember_warmup_events_total{type};
//   - metrics: ember_warmup_admitted_total, ember_warmup_throttled_total
//     {reason}, ember_warmup_refunded_total, ember_warmup_events_total{type},
//     and per key gauges refreshed at each scrape (ember_warmup_sent_today,
//     ember_warmup_cap, ember_warmup_rate_factor, ember_warmup_backoff,
//     ember_warmup_suspended, ember_warmup_paused, ember_warmup_ramp_day).
//
// PacingDeliverer is the gate: a core::Deliverer in front of the signing
// deliverer. For each job it finds the key (sending domain x provider x
// source), admits recipients with admit_batch(), answers the others
// Throttled (never failed, no attempt spent; the scheduler retries them at
// not_before_ms) without passing them on, delivers the admitted ones
// through the inner deliverer and records every outcome in the engine.
// An admitted recipient that comes back Suppressed (the dispatch stages'
// suppression check, a hook's skip) or Throttled (a later stage postponed
// it, e.g. a send_at) never left ember: the gate refunds it, cap slot and
// rate token (warmup::RefundScope::CapAndRate), so suppressed addresses
// never eat a ramp's daily cap.
//
// Decisions (also in emberctl(8) / ember.toml(5)):
//   - the sending domain is the domain of the message's first From: mailbox
//     (what mailbox providers build domain reputation on, and what DMARC
//     aligns and DKIM signs); the envelope sender's domain when the message
//     has no parseable From:;
//   - the source is [delivery] source_address when set (so a [[sender]]
//     entry with that source applies), else "";
//   - priority: PacingDeliverer::set_priority() gives each recipient an
//     engagement score (personalize::ContactStore::priority); it is asked
//     only when the key cannot take the whole job now (remaining() short),
//     so the common, unthrottled case costs no lookups. Without one, or on
//     ties, submission order. `now_ms` is the wall clock (engagement is
//     real time; the test offset of `warmup advance` is not applied);
//   - provider max_connections is enforced here: jobs in flight per key;
//     a job over it is throttled for 1 s (reason "connections"), counting
//     nothing. max_messages_per_connection goes to the SMTP agent on the
//     job (DeliveryJob::max_messages_per_connection; the stricter of the
//     job's and the provider's when both are set);
//   - held mail is released at once (release_held: every Throttled
//     recipient due now, through queue::Scheduler::release_throttled, which
//     add_warmup_verbs wires in) after a resume, a set-day and a reload: the
//     engine answers indefinite waits with now + 5 min and cap waits with
//     the next midnight, which would otherwise be the delay after an admin
//     lifted them. Released mail that is still over a limit is simply
//     throttled again at its next look;
//   - the clock is the wall clock plus an offset that only
//     `emberctl warmup advance` moves, and only with [warmup]
//     allow_clock_advance = true; Throttled times go back to the
//     scheduler's (wall) clock by subtracting the offset. The offset is not
//     saved: a restart returns to the wall clock.
//
// Threads: everything runs on the daemon's single-threaded executor (the
// scheduler's); the engine is not thread-safe. Store writes complete on the
// committer thread and only log there.

#include "core/delivery.hpp"
#include "core/diagnostics.hpp"
#include "daemon/metrics.hpp"
#include "queue/scheduler.hpp"
#include "queue/store.hpp"
#include "warmup/config.hpp"
#include "warmup/engine.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ember::daemon {

inline constexpr const char* kWarmupTable = "warmup";
inline constexpr const char* kWarmupStateKey = "state";
// How long a job over its provider's max_connections waits before it asks again.
inline constexpr std::int64_t kConnectionWaitMs = 1000;

using WallClock = std::function<std::int64_t()>; // unix time in milliseconds
// A recipient's engagement score (higher goes first when capacity is
// scarce); `now_ms` is unix ms. The shape of personalize::ContactStore::priority.
using PriorityFn = std::function<double(std::string_view address, std::int64_t now_ms)>;
// Makes every held (Throttled) recipient due now
// (queue::Scheduler::release_throttled). A plain function returning the
// awaitable, so that nothing it captures lives in a coroutine frame.
using ReleaseFn = std::function<boost::asio::awaitable<queue::AdminChange>()>;

// settings.file loaded and checked; unthrottled_config() when it is empty.
// nullopt with file:line errors in `diag`.
[[nodiscard]] std::optional<warmup::Config> load_warmup_config(const warmup::Settings& settings,
                                                               core::Diagnostics& diag);

// The sending domain of a job: the first From: domain of its content, else
// the envelope sender's domain, lowercased; "" for neither (a bounce
// without From:).
[[nodiscard]] std::string sending_domain_of(const core::DeliveryJob& job);

struct WarmupMetrics;

// What the gate decided for one job.
struct Gate {
    bool active = false;                 // the job went through the engine
    warmup::Key key;                     // when active
    std::string domain;                  // the job's destination, when active
    warmup::Limits limits;               // the provider's, when active
    std::vector<std::size_t> admitted;   // positions in job.recipients, in order
    std::vector<core::Outcome> outcomes; // one per job recipient; Throttled ones filled
};

class WarmupService {
public:
    // Opens the KV table and restores the saved state. nullptr with `error`
    // set when the table cannot be opened. `clock` defaults to the system clock.
    [[nodiscard]] static std::unique_ptr<WarmupService>
    create(boost::asio::any_io_executor executor, const warmup::Settings& settings,
           warmup::Config config, queue::Store& store, Metrics& metrics, std::string& error,
           WallClock clock = {});
    ~WarmupService();
    WarmupService(const WarmupService&) = delete;
    WarmupService& operator=(const WarmupService&) = delete;

    // Starts the periodic save.
    void start();
    // Stops it and saves once more (the store's destructor drains the write).
    void stop();
    // New settings and config after a validated reload.
    void apply(const warmup::Settings& settings, warmup::Config config);
    void set_source(std::string source) { source_ = std::move(source); }
    [[nodiscard]] const std::string& source() const { return source_; }

    // [warmup] file is set: jobs go through the engine.
    [[nodiscard]] bool enabled() const { return !settings_.file.empty(); }
    [[nodiscard]] const warmup::Settings& settings() const { return settings_; }
    [[nodiscard]] warmup::Engine& engine() { return engine_; }
    // The warm-up clock: wall clock plus the test offset.
    [[nodiscard]] warmup::TimePoint now() const;
    [[nodiscard]] std::int64_t offset_ms() const { return offset_ms_; }
    // A warm-up time as the scheduler's (wall-clock) unix ms.
    [[nodiscard]] std::int64_t wall_ms(warmup::TimePoint t) const;
    // Moves the warm-up clock forward; false (and nothing changes) unless
    // [warmup] allow_clock_advance is set.
    [[nodiscard]] bool advance(std::int64_t ms);

    // The gate's two halves, for PacingDeliverer (and tests). `priority`
    // (may be empty) orders the recipients when not all may go.
    [[nodiscard]] Gate admit(const core::DeliveryJob& job, const PriorityFn& priority = {});
    // Records the inner deliverer's outcomes (one per admitted recipient)
    // and merges them into gate.outcomes; Suppressed and Throttled ones are
    // refunded (see the header comment).
    void settle(Gate& gate, std::vector<core::Outcome> outcomes);
    void job_started(const warmup::Key& key);
    void job_finished(const warmup::Key& key);

    // What releases held mail; unset: release_held() releases nothing and
    // held mail waits for its next look. Whatever it refers to must outlive
    // the last reload and admin verb.
    void set_release(ReleaseFn release) { release_ = std::move(release); }
    // After a change that may let held mail go (resume, set-day, reload):
    // makes it due now; completes with what the scheduler changed.
    [[nodiscard]] boost::asio::awaitable<queue::AdminChange> release_held();
    // The same without waiting (apply(), which is not a coroutine); a
    // failure is logged.
    void release_held_soon();

    // Logs and counts the engine's events and metrics since the last call.
    void drain();
    // Serializes the state and writes it unless unchanged since the last save.
    void save();

private:
    WarmupService(boost::asio::any_io_executor executor, const warmup::Settings& settings,
                  warmup::Config config, queue::Store& store, queue::Store::TableId table,
                  Metrics& metrics, WallClock clock);
    void restore();
    [[nodiscard]] core::Outcome throttled(std::string_view reason, std::string_view detail,
                                          warmup::TimePoint until) const;
    static boost::asio::awaitable<void> save_loop(WarmupService* self, std::uint64_t generation);
    static boost::asio::awaitable<void> release_task(ReleaseFn release);

    boost::asio::any_io_executor executor_;
    warmup::Settings settings_;
    warmup::Engine engine_;
    queue::Store& store_;
    queue::Store::TableId table_;
    WallClock clock_;
    std::int64_t offset_ms_ = 0;
    std::string source_;
    ReleaseFn release_;
    std::string last_saved_;
    boost::asio::steady_timer save_timer_;
    std::uint64_t generation_ = 0;
    bool running_ = false;
    std::unordered_map<warmup::Key, std::uint32_t, warmup::KeyHash> in_flight_;
    std::unique_ptr<WarmupMetrics> metrics_;
    // Set by a failed write on the committer thread: the next save() writes again.
    std::shared_ptr<std::atomic<bool>> save_failed_ = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<WarmupService*> handle_; // the metrics refresher's view of this
};

// The gate in front of the deliverer chain (see the header comment).
// `service` and `inner` must outlive every deliver() coroutine.
class PacingDeliverer final : public core::Deliverer {
public:
    PacingDeliverer(WarmupService& service, core::Deliverer& inner)
        : service_(service), inner_(inner) {}

    [[nodiscard]] boost::asio::awaitable<std::vector<core::Outcome>>
    deliver(core::DeliveryJob job) override;

    // Orders a job's recipients by engagement when not all may go now
    // (higher first, ties and unset: submission order). Set it before the
    // first job; it runs on the scheduler's executor and must not block.
    void set_priority(std::function<double(std::string_view address, std::int64_t now_ms)> fn) {
        priority_ = std::move(fn);
    }

private:
    WarmupService& service_;
    core::Deliverer& inner_;
    PriorityFn priority_;
};

} // namespace ember::daemon
