#pragma once
// The delivery scheduler: finds due recipients in the Store, groups them
// into jobs (one message, one destination domain, at most
// max_recipients_per_job recipients: one SMTP transaction), hands each job to
// a core::Deliverer under global and per-destination concurrency limits, and
// records every core::Outcome back into the Store with retry, backoff and
// expiry (queue/retry.hpp). It tells a BounceSink when a failure or delay
// DSN is due and removes a message once all its recipients are final.
// It never parses SMTP and never builds a DSN itself.
//
// Threads: everything runs on the executor given to the constructor, which
// must be a single-threaded one (an io_context run by one thread, or a
// strand). Call every member there, except notify(), which any thread may
// call. Store writes go through the store's group-commit thread and resume
// on the executor; Store reads (due, load) run inline: they are LMDB read
// transactions on a memory map, with no lock against the committer.
//
// Time: the scheduler reads the time only through the injected clock (unix
// ms); it sleeps on a steady_timer until the next due time, capped at
// kMaxSleep so that a wall-clock step is noticed, and notify() (new mail)
// or a finished job wakes it at once. There is no polling loop.
//
// Invariants:
//   - a recipient is held by at most one holder at a time (a job, an admin
//     change or a DSN/removal step) from the moment it is chosen until its
//     new record is committed; a held recipient is never handed out, so no
//     recipient is delivered by two connections at once, and a Delivered
//     record is on disk before the recipient could be picked again;
//   - held recipients are memory only: after a crash they are simply due
//     again (at-least-once; DESIGN.md allows a duplicate only between a
//     remote 250 and our commit);
//   - a DSN is handed to the BounceSink at most once per recipient and kind
//     (Recipient::dsn_state), before the records that report it are written.
//
// Lifetime: the Store, the Deliverer and the BounceSink must outlive the
// Scheduler. Destroying the Scheduler (on its executor, or after the
// executor stopped) abandons jobs in flight without recording them, as a
// crash would; stop() then co_await wait_idle() first to drain.

#include "core/delivery.hpp"
#include "queue/record.hpp"
#include "queue/scheduler_config.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::queue {

// Where DSNs go. The daemon builds the DSN (smtp/dsn.hpp) and commits it as
// a new message. Implementations must hand the DSN to Store::commit()
// before returning: the scheduler queues the records that mark the DSN as
// sent after that, and the store writes requests in order, so a crash can
// never leave a recipient marked as reported without its DSN on disk.
// `message` holds every recipient with its latest outcome; the indexes name
// the recipients the DSN reports (RFC 3464 per-recipient fields). Called on
// the scheduler's executor; must not throw and must not block for long.
class BounceSink {
public:
    virtual ~BounceSink() = default;
    // Recipients that failed permanently or expired (RFC 3464 Action: failed).
    virtual void failed(const Message& message, std::vector<std::uint32_t> recipient_indexes) = 0;
    // Recipients still being retried after delay_warning (Action: delayed).
    virtual void delayed(const Message& message, std::vector<std::uint32_t> recipient_indexes) = 0;
};

using UnixClock = std::function<std::int64_t()>;     // unix time in milliseconds
using RandomSource = std::function<std::uint64_t()>; // uniform 64-bit values (retry jitter)

// The longest the scheduler sleeps without looking at the clock again.
inline constexpr std::chrono::milliseconds kMaxSleep = std::chrono::minutes(5);

// One destination domain as `emberctl` shows it.
struct DestinationStatus {
    std::string domain;
    std::uint64_t queued = 0;      // records in state queued (those in flight included)
    std::uint64_t deferred = 0;    // records in state deferred (those in flight included)
    std::uint64_t in_flight = 0;   // recipients in jobs being delivered now
    std::uint32_t connections = 0; // jobs in flight
    std::string last_outcome;      // Outcome::summary() of the latest result, "" if none yet
    std::int64_t last_outcome_ms = 0;
    friend bool operator==(const DestinationStatus&, const DestinationStatus&) = default;
};

// What an admin operation changed.
struct AdminChange {
    bool found = false;         // the message exists (retry_now, bounce_now)
    std::size_t recipients = 0; // recipients rescheduled or bounced
    std::size_t messages = 0;   // messages touched
    std::string error;          // a store error; "" on success
};

class Scheduler {
public:
    Scheduler(const boost::asio::any_io_executor& executor, Store& store,
              core::Deliverer& deliverer, SchedulerConfig config, UnixClock clock,
              RandomSource random, BounceSink& bounces);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // Starts the pass loop and, first, hands over DSNs and removals that a
    // crash interrupted (a scan of every recipient record, once).
    void start();
    // No new jobs; jobs in flight finish and record their outcomes.
    void stop();
    // Any thread: new mail was committed, look now.
    void notify();
    // Takes effect at the next pass; jobs in flight keep their limits.
    void reconfigure(SchedulerConfig config);
    // Completes when nothing is held (no job, admin change or DSN step).
    [[nodiscard]] boost::asio::awaitable<void> wait_idle();

    // Admin operations (emberctl). The retries set next_attempt = now for
    // pending recipients that are not in flight and wake the loop.
    [[nodiscard]] boost::asio::awaitable<AdminChange> retry_now(QueueId id);
    [[nodiscard]] boost::asio::awaitable<AdminChange> retry_domain(std::string_view domain);
    [[nodiscard]] boost::asio::awaitable<AdminChange> retry_all();
    // For the warm-up admin verbs (resume a paused domain, change its day):
    // every pending recipient whose latest outcome is Throttled
    // (Recipient::throttled_until_ms != 0) and that is not in flight becomes
    // due now, instead of at its not_before time, and the loop wakes. The
    // unused part of each hold is taken back out of held_ms. The warm-up
    // gate judges each again at its next attempt, so releasing mail that is
    // still over a limit only throttles it once more. One scan of the due
    // index (no record decoded) plus a load per message released; completes
    // once the records are committed. AdminChange::recipients is how many
    // were released, found is true when any was.
    [[nodiscard]] boost::asio::awaitable<AdminChange> release_throttled();
    // Fails every pending recipient with a local "550 5.0.0 bounced by
    // administrator" outcome and hands a failure DSN; a recipient in flight
    // fails the same way when its attempt ends in a deferral.
    [[nodiscard]] boost::asio::awaitable<AdminChange> bounce_now(QueueId id);

    // Destinations with pending recipients or activity since start, by name.
    [[nodiscard]] std::vector<DestinationStatus> destinations() const;
    [[nodiscard]] std::size_t jobs_in_flight() const;
    [[nodiscard]] std::size_t recipients_in_flight() const;
    [[nodiscard]] bool idle() const;
    // The due time (unix ms) the loop sleeps towards; nullopt when nothing
    // is scheduled (it waits for notify()).
    [[nodiscard]] std::optional<std::int64_t> next_wake_ms() const;

    class Impl;

private:
    std::shared_ptr<Impl> impl_;
};

} // namespace ember::queue
