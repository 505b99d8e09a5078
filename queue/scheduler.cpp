#include "queue/scheduler.hpp"

#include "core/async.hpp"
#include "core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/chrono.h>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <exception>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <utility>

namespace ember::queue {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using core::OutcomeKind;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// A store write that failed (disk full, LMDB error) is retried with this
// backoff while its recipients stay held: the outcome is known, so writing
// it later beats delivering the message again.
constexpr std::chrono::milliseconds kFirstWriteRetry = std::chrono::seconds(1);
constexpr std::chrono::milliseconds kMaxWriteRetry = std::chrono::minutes(1);
// Idle destinations are remembered for destinations() (last outcome); past
// this many, the idle ones are forgotten so the map cannot grow without bound.
constexpr std::size_t kMaxRememberedDestinations = 50'000;

// ---- store writes as awaitables --------------------------------------------

struct MessageUpdate {
    QueueId id = 0;
    std::vector<RecipientUpdate> updates;
    bool remove_if_final = false;
};

template <typename Handler> struct UpdateWait {
    explicit UpdateWait(Handler h, std::size_t n) : handler(std::move(h)), results(n), left(n) {}
    Handler handler;
    std::vector<UpdateResult> results;
    std::atomic<std::size_t> left;
};

// Queues every update at once (they share group commits) and completes on
// the caller's executor when all are written, results in order. Not a
// coroutine (see core::offload): the initiation runs in Asio's own frame.
asio::awaitable<std::vector<UpdateResult>> store_updates(Store& store,
                                                         std::vector<MessageUpdate> batch) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<UpdateResult>)>(
        [&store](auto handler, std::vector<MessageUpdate> requests) {
            using Handler = decltype(handler);
            auto home = asio::get_associated_executor(handler);
            auto work = std::make_shared<asio::executor_work_guard<decltype(home)>>(home);
            auto wait = std::make_shared<UpdateWait<Handler>>(std::move(handler), requests.size());
            auto finish = [wait, work] {
                asio::post(work->get_executor(),
                           [wait, work] { std::move(wait->handler)(std::move(wait->results)); });
            };
            if (requests.empty()) {
                finish();
                return;
            }
            for (std::size_t i = 0; i < requests.size(); ++i) {
                auto& r = requests[i];
                // The committer thread writes results[i]; the last one to
                // finish (acq_rel) publishes them all through post().
                store.update_recipients(r.id, std::move(r.updates), r.remove_if_final,
                                        [wait, finish, i](const UpdateResult& result) {
                                            wait->results[i] = result;
                                            if (wait->left.fetch_sub(1) == 1)
                                                finish();
                                        });
            }
        },
        asio::use_awaitable, std::move(batch));
}

// ---- policy: outcomes, DSNs -------------------------------------------------

using Key = std::pair<QueueId, std::uint32_t>;

// The queue id's high 48 bits are its arrival time in ms: a fallback for a
// record without a submission time, so such a message still expires.
std::int64_t received_at(const Message& m) {
    if (m.submission.received_at_ms > 0)
        return m.submission.received_at_ms;
    return static_cast<std::int64_t>(m.id >> 16);
}

// RFC 3461 section 4.1: without NOTIFY the MTA reports failures; NEVER
// (which the server never accepts together with another keyword) reports
// nothing. RFC 5321 section 4.5.5: nothing is ever sent to a null sender.
bool wants_failure_dsn(const Message& m, const Recipient& r) {
    const auto n = r.spec.notify;
    return !m.envelope.mail_from.empty() && (n & core::kNotifyNever) == 0 &&
           (n == 0 || (n & core::kNotifyFailure) != 0);
}

// Delay reports only when asked for: RFC 3461 leaves them to the MTA when
// NOTIFY is absent, and applications that submit bulk mail do not want
// "still trying" mail (Postfix's delay_warning_time is off by default too).
bool wants_delay_dsn(const Message& m, const Recipient& r) {
    const auto n = r.spec.notify;
    return !m.envelope.mail_from.empty() && (n & core::kNotifyNever) == 0 &&
           (n & core::kNotifyDelay) != 0;
}

bool owes_failure_dsn(const Message& m, const Recipient& r) {
    return r.state == RecipientState::Failed && (r.dsn_state & kDsnFailureSent) == 0 &&
           wants_failure_dsn(m, r);
}

// On the same clock as expiry: time held by the warm-up throttler is not
// time spent trying, so it does not bring the "still trying" report closer.
bool owes_delay_dsn(const Message& m, const Recipient& r, const RetryPolicy& policy,
                    std::int64_t now) {
    return r.state == RecipientState::Deferred && (r.dsn_state & kDsnDelaySent) == 0 &&
           policy.delay_warning.count() > 0 &&
           now - received_at(m) - r.held_ms >= policy.delay_warning.count() &&
           wants_delay_dsn(m, r);
}

bool all_final(const std::vector<Recipient>& recipients) {
    return std::none_of(recipients.begin(), recipients.end(),
                        [](const Recipient& r) { return is_pending(r.state); });
}

// What a crash may have left behind: a failure DSN not yet handed over, or
// a finished message not yet removed (the sender is checked after loading).
bool needs_settling(const std::vector<Recipient>& recipients) {
    return all_final(recipients) ||
           std::any_of(recipients.begin(), recipients.end(), [](const Recipient& r) {
               const auto n = r.spec.notify;
               return r.state == RecipientState::Failed && (r.dsn_state & kDsnFailureSent) == 0 &&
                      (n & core::kNotifyNever) == 0 && (n == 0 || (n & core::kNotifyFailure) != 0);
           });
}

core::Outcome local_outcome(OutcomeKind kind, int code, std::string enhanced, std::string text) {
    core::Outcome o;
    o.kind = kind;
    o.scope = core::OutcomeScope::Recipient;
    o.code = code;
    o.enhanced = std::move(enhanced);
    o.text = std::move(text);
    o.local = true;
    return o;
}

core::Outcome admin_bounce_outcome() {
    return local_outcome(OutcomeKind::Failed, 550, "5.0.0", "bounced by administrator");
}

core::Outcome missing_outcome() {
    return local_outcome(OutcomeKind::Deferred, 451, "4.3.0",
                         "internal error: no outcome from the deliverer");
}

// RFC 3463 X.4.7 "delivery time expired". The last deferral stays in the
// text (and its host in remote_host, for the DSN's Remote-MTA field), so
// the sender learns why delivery never succeeded.
core::Outcome expiry_outcome(const core::Outcome& last, const RetryPolicy& policy,
                             std::int64_t held_ms) {
    const auto held = held_ms > 0 ? fmt::format(" (plus {} held by warm-up)",
                                                core::format_duration(core::Duration(held_ms)))
                                  : std::string();
    auto o = local_outcome(OutcomeKind::Failed, 451, "4.4.7",
                           fmt::format("message expired after {}{} in queue; last error: {}",
                                       core::format_duration(policy.max_retry_time), held,
                                       last.summary()));
    o.remote_host = last.remote_host;
    o.remote_ip = last.remote_ip;
    return o;
}

// A Throttled outcome's wait is at least this long, so a throttler that
// answers "now" cannot make the scheduler spin.
constexpr std::int64_t kMinThrottleMs = 1000;

// Ends the hold in progress, if any: held_ms counted the whole wait in
// advance, so the part not waited (an early release, an admin retry) is
// given back.
void end_hold(Recipient& r, std::int64_t now) {
    if (r.throttled_until_ms > now)
        r.held_ms = std::max<std::int64_t>(r.held_ms - (r.throttled_until_ms - now), 0);
    r.throttled_until_ms = 0;
}

struct ApplyContext {
    const RetryPolicy& policy;
    std::int64_t now = 0;
    std::int64_t received_at = 0;
    bool bounce_requested = false;
};

// One attempt's outcome applied to the recipient's record.
Recipient apply_outcome(Recipient r, const core::Outcome& outcome, const ApplyContext& c,
                        const RandomSource& random) {
    end_hold(r, c.now);
    if (outcome.kind == OutcomeKind::Throttled) {
        // Not an attempt: no retry count spent, no outcome recorded over the
        // last real one, and the wait is added to held_ms so that it spends
        // none of max_retry_time either (core/outcome.hpp).
        r.updated_ms = c.now;
        r.next_attempt_ms = std::max(outcome.not_before_ms, c.now + kMinThrottleMs);
        r.throttled_until_ms = r.next_attempt_ms;
        r.held_ms += r.next_attempt_ms - c.now;
        return r;
    }
    if (outcome.kind == OutcomeKind::Suppressed) {
        r.state = RecipientState::Suppressed;
        r.updated_ms = c.now;
        r.outcome = outcome;
        r.last_reply = outcome.summary();
        return r;
    }
    ++r.attempts;
    r.updated_ms = c.now;
    r.last_attempt_ms = c.now;
    r.outcome = outcome;
    switch (outcome.kind) {
    case OutcomeKind::Delivered:
        r.state = RecipientState::Delivered;
        break;
    case OutcomeKind::Failed:
        r.state = RecipientState::Failed;
        break;
    case OutcomeKind::Suppressed:
    case OutcomeKind::Throttled:
        break; // handled above
    case OutcomeKind::Deferred:
        if (c.bounce_requested) {
            r.state = RecipientState::Failed;
            r.outcome = admin_bounce_outcome();
        } else if (expired(c.policy, c.received_at, c.now, r.held_ms)) {
            r.state = RecipientState::Failed;
            r.outcome = expiry_outcome(outcome, c.policy, r.held_ms);
        } else {
            r.state = RecipientState::Deferred;
            // The last attempt lands on the expiry time itself, so a message
            // lives max_retry_time, not max_retry_time plus a backoff.
            const auto deadline = expiry_ms(c.policy, c.received_at, r.held_ms);
            auto next = c.now + next_delay(c.policy, r.attempts, random()).count();
            if (next > deadline && deadline > c.now)
                next = deadline;
            r.next_attempt_ms = next;
        }
        break;
    }
    r.last_reply = r.outcome.summary();
    return r;
}

std::string_view result_name(RecipientState s) {
    switch (s) {
    case RecipientState::Delivered:
        return "delivered";
    case RecipientState::Failed:
        return "failed";
    case RecipientState::Suppressed:
        return "suppressed";
    default:
        return "deferred";
    }
}

// RFC 3339 UTC, to the second: when a throttled recipient is due again.
std::string format_unix_ms(std::int64_t ms) {
    const auto secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    if (::gmtime_r(&secs, &tm) == nullptr)
        return std::to_string(ms);
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", tm);
}

// Held back by the warm-up throttler: not an attempt, so not "deferred";
// `until` is when it is due again and `reply` says why.
void log_throttled(const Message& m, const Recipient& r, const core::Outcome& why,
                   std::int64_t now) {
    const double delay = static_cast<double>(now - received_at(m)) / 1000.0;
    log::info("delivery.result",
              "id={} to={} domain={} result=throttled attempts={} until={} delay={:.2f} "
              "relay=none reply={}",
              format_queue_id(m.id), log::q("<" + r.spec.address + ">"),
              log::q(core::address_domain(r.spec.address)), r.attempts,
              format_unix_ms(r.throttled_until_ms), delay, log::q(why.summary()));
}

// Postfix's familiar line: to=<...> relay=host[ip] delay=... status=...
void log_result(const Message& m, const Recipient& r, std::int64_t now) {
    const auto& o = r.outcome;
    const auto relay = o.remote_host.empty() ? std::string("none")
                                             : fmt::format("{}[{}]", o.remote_host, o.remote_ip);
    const double delay = static_cast<double>(now - received_at(m)) / 1000.0;
    log::info("delivery.result",
              "id={} to={} domain={} result={} attempts={} delay={:.2f} relay={} reply={}",
              format_queue_id(m.id), log::q("<" + r.spec.address + ">"),
              log::q(core::address_domain(r.spec.address)), result_name(r.state), r.attempts, delay,
              log::q(relay), log::q(r.last_reply));
}

// Due recipients of one message and one destination: one job (one SMTP
// transaction) or, past max_recipients_per_job, several.
struct DueGroup {
    QueueId id = 0;
    std::string domain;
    std::vector<std::uint32_t> indexes;
};

// In order of each group's earliest due recipient.
std::vector<DueGroup> group_due(const std::vector<DueRecipient>& due) {
    std::vector<DueGroup> groups;
    std::map<std::pair<QueueId, std::string>, std::size_t> group_of;
    for (const auto& d : due) {
        const auto [it, fresh] = group_of.try_emplace({d.id, d.domain}, groups.size());
        if (fresh)
            groups.push_back(DueGroup{d.id, d.domain, {}});
        groups[it->second].indexes.push_back(d.index);
    }
    return groups;
}

void upsert(std::vector<RecipientUpdate>& updates, std::uint32_t index, const Recipient& r) {
    for (auto& u : updates) {
        if (u.index == index) {
            u.recipient = r;
            return;
        }
    }
    updates.push_back(RecipientUpdate{index, r});
}

} // namespace

// ---- Impl -------------------------------------------------------------------

class Scheduler::Impl : public std::enable_shared_from_this<Scheduler::Impl> {
public:
    Impl(const asio::any_io_executor& executor, Store& store, core::Deliverer& deliverer,
         SchedulerConfig config, UnixClock clock, RandomSource random, BounceSink& bounces)
        : executor_(executor), store_(store), deliverer_(deliverer), config_(config),
          clock_(std::move(clock)), random_(std::move(random)), bounces_(bounces),
          wake_timer_(executor), idle_timer_(executor) {
        // Waiters are woken with cancel(), which leaves the expiry alone, so
        // several wait_idle() callers never reset each other's waits.
        idle_timer_.expires_at(asio::steady_timer::time_point::max());
        if (!clock_)
            clock_ = [] {
                using namespace std::chrono;
                return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
            };
        if (!random_)
            random_ = [engine = std::mt19937_64(std::random_device{}())]() mutable {
                return engine();
            };
    }

    // A message some holder is working on.
    struct Flight {
        std::uint32_t holders = 0;
        bool needs_settle = false;                // a DSN or removal waits for the last holder
        bool bounce_requested = false;            // bounce_now() while jobs were in flight
        std::weak_ptr<const std::string> content; // shared by the message's jobs
    };
    struct Destination {
        std::uint32_t jobs = 0;
        std::uint64_t recipients = 0;
        std::string last_outcome;
        std::int64_t last_ms = 0;
    };
    // Records to write for one holder, and what it holds.
    struct Plan {
        QueueId id = 0;
        std::vector<RecipientUpdate> updates;
        std::vector<std::uint32_t> held; // released after the write
        bool remove = false;
    };

    void start();
    void shutdown();
    void wake();
    void hold(QueueId id, const std::vector<std::uint32_t>& indexes);
    void release(QueueId id, const std::vector<std::uint32_t>& indexes);
    [[nodiscard]] bool pass();
    [[nodiscard]] std::vector<DueRecipient> collect_due(std::uint32_t free_jobs, bool& full);
    void arm_timer();
    [[nodiscard]] bool start_job(const Message& m, const std::string& domain,
                                 std::vector<std::uint32_t> indexes);
    void leave_destination(const core::DeliveryJob& job);
    void end_job(const core::DeliveryJob& job, const Plan& plan);
    [[nodiscard]] std::shared_ptr<const std::string> content_for(QueueId id);
    [[nodiscard]] Plan complete(const core::DeliveryJob& job,
                                const std::vector<core::Outcome>& outcomes);
    void settle_step(Message& m, Plan& plan, std::int64_t now);
    void mark_sent(Message& m, Plan& plan, const std::vector<std::uint32_t>& indexes,
                   std::uint8_t flag);
    [[nodiscard]] std::optional<MessageUpdate>
    reschedule_update(QueueId id, const std::vector<std::uint32_t>& indexes, std::int64_t now);
    void spawn_settle(QueueId id);
    [[nodiscard]] Plan plan_settle(QueueId id);
    [[nodiscard]] std::vector<DestinationStatus> destinations() const;

    static asio::awaitable<void> run_loop(std::shared_ptr<Impl> self, std::uint64_t generation);
    static asio::awaitable<void> run_job(std::shared_ptr<Impl> self, core::DeliveryJob job);
    static asio::awaitable<void> run_settle(std::shared_ptr<Impl> self, QueueId id);
    static asio::awaitable<bool> write(std::shared_ptr<Impl> self, QueueId id,
                                       std::vector<RecipientUpdate> updates, bool remove);
    static asio::awaitable<AdminChange> retry_message(std::shared_ptr<Impl> self, QueueId id);
    static asio::awaitable<void> wait_idle(std::shared_ptr<Impl> self);
    static asio::awaitable<AdminChange> reschedule(std::shared_ptr<Impl> self,
                                                   std::vector<DueRecipient> due,
                                                   std::string_view event = "queue.retry");
    static asio::awaitable<AdminChange> bounce(std::shared_ptr<Impl> self, QueueId id);

    asio::any_io_executor executor_;
    Store& store_;
    core::Deliverer& deliverer_;
    SchedulerConfig config_;
    UnixClock clock_;
    RandomSource random_;
    BounceSink& bounces_;
    asio::steady_timer wake_timer_;
    asio::steady_timer idle_timer_;
    bool started_ = false;
    bool stopped_ = false;
    std::uint64_t loop_generation_ = 0; // see start()
    bool dead_ = false;                 // the Scheduler is gone: touch nothing outside this object
    std::optional<std::int64_t> next_wake_;
    std::set<Key> in_flight_;
    std::map<QueueId, Flight> flights_;
    // Transparent: the pass looks destinations up by the store's string_view.
    std::map<std::string, Destination, std::less<>> destinations_;
    std::uint32_t jobs_ = 0;
};

// start() after stop() resumes dispatching ([delivery] hold toggled by a
// reload); a loop generation makes an older loop that has not noticed the
// stop yet exit instead of running beside the new one.
void Scheduler::Impl::start() {
    if (dead_ || (started_ && !stopped_))
        return;
    const bool first = !started_;
    started_ = true;
    stopped_ = false;
    ++loop_generation_;
    if (first) {
        const auto leftovers = store_.find_messages(needs_settling);
        for (const auto id : leftovers)
            spawn_settle(id);
        if (!leftovers.empty())
            log::info("queue.recovery", "messages={}", leftovers.size());
    }
    core::spawn(executor_, run_loop(shared_from_this(), loop_generation_), "queue scheduler",
                core::TaskKind::TopLevel);
}

void Scheduler::Impl::shutdown() {
    dead_ = true;
    stopped_ = true;
    wake_timer_.cancel();
    idle_timer_.cancel();
}

void Scheduler::Impl::wake() {
    if (!stopped_ && !dead_)
        wake_timer_.cancel();
}

void Scheduler::Impl::hold(QueueId id, const std::vector<std::uint32_t>& indexes) {
    ++flights_[id].holders;
    for (const auto i : indexes)
        in_flight_.emplace(id, i);
}

// The last holder of a message runs the DSN and removal step that others
// had to leave to it.
void Scheduler::Impl::release(QueueId id, const std::vector<std::uint32_t>& indexes) {
    for (const auto i : indexes)
        in_flight_.erase(Key{id, i});
    const auto it = flights_.find(id);
    if (it != flights_.end() && --it->second.holders == 0) {
        const bool settle = it->second.needs_settle && !dead_;
        flights_.erase(it);
        if (settle)
            spawn_settle(id);
    }
    if (flights_.empty())
        idle_timer_.cancel();
    wake();
}

asio::awaitable<void> Scheduler::Impl::run_loop(std::shared_ptr<Impl> self,
                                                std::uint64_t generation) {
    while (!self->stopped_ && self->loop_generation_ == generation) {
        const bool again = self->pass();
        if (self->stopped_)
            break;
        if (again) { // more is due than one batch: let completions run, then go on
            co_await asio::post(self->executor_, asio::use_awaitable);
            continue;
        }
        self->arm_timer();
        const auto [ec] = co_await self->wake_timer_.async_wait(kAsTuple);
        (void)ec; // expired or cancelled by wake(): either way, look again
    }
}

// One look at the queue. True when the batch was full and jobs could still
// start, so another pass should follow at once.
bool Scheduler::Impl::pass() {
    // A limit of 0 would stop delivery for good: the config table forbids
    // it, and here it counts as 1.
    const auto max_jobs = std::max<std::uint32_t>(config_.max_jobs, 1);
    if (stopped_ || jobs_ >= max_jobs)
        return false; // a finishing job wakes the loop
    bool full = false;
    const auto due = collect_due(max_jobs - jobs_, full);
    const auto groups = group_due(due);
    std::map<QueueId, std::optional<Message>> loaded;
    std::size_t started = 0;
    const auto per_destination = std::max<std::uint32_t>(config_.max_jobs_per_destination, 1);
    const std::size_t per_job = std::max<std::uint32_t>(config_.max_recipients_per_job, 1);
    for (const auto& g : groups) {
        if (jobs_ >= max_jobs)
            break;
        auto [slot, fresh] = loaded.try_emplace(g.id);
        if (fresh)
            slot->second = store_.load(g.id);
        if (!slot->second)
            continue; // removed since visit_due() read it
        for (std::size_t at = 0; at < g.indexes.size() && jobs_ < max_jobs; at += per_job) {
            if (destinations_[g.domain].jobs >= per_destination)
                break;
            const auto first = g.indexes.begin() + static_cast<std::ptrdiff_t>(at);
            const auto last = g.indexes.begin() +
                              static_cast<std::ptrdiff_t>(std::min(g.indexes.size(), at + per_job));
            if (start_job(*slot->second, g.domain, {first, last}))
                ++started;
        }
    }
    return full && started > 0 && jobs_ < max_jobs;
}

// The due recipients this pass can start jobs for, by destination from the
// store's destination index. A destination at max_jobs_per_destination is
// passed over with one map lookup however long its due backlog (a tarpit
// holding its connections used to cost a record decode per waiting
// recipient per pass), and from the others only as many messages are read
// as they have free job slots: a job is one message and at most
// max_recipients_per_job recipients. `full`: stopped at `batch` recipients.
std::vector<DueRecipient> Scheduler::Impl::collect_due(std::uint32_t free_jobs, bool& full) {
    const auto per_destination = std::max<std::uint32_t>(config_.max_jobs_per_destination, 1);
    const std::size_t per_job = std::max<std::uint32_t>(config_.max_recipients_per_job, 1);
    const std::size_t batch = std::max<std::size_t>(config_.batch, 1);
    std::vector<DueRecipient> out;
    std::uint32_t slots = 0;                 // jobs the current destination may still start
    std::map<QueueId, std::size_t> messages; // its recipients taken, per message
    DueVisitor visitor;
    visitor.destination = [&](std::string_view domain) {
        if (free_jobs == 0)
            return DueStep::Stop;
        const auto it = destinations_.find(domain);
        const std::uint32_t running = it == destinations_.end() ? 0 : it->second.jobs;
        if (running >= per_destination)
            return DueStep::Pass;
        slots = std::min(per_destination - running, free_jobs);
        messages.clear();
        return DueStep::Continue;
    };
    visitor.recipient = [&](std::string_view domain, QueueId id, std::uint32_t index,
                            std::int64_t at) {
        if (in_flight_.contains(Key{id, index}))
            return DueStep::Continue;
        auto& taken = messages[id];
        if (taken % per_job == 0) { // this recipient would open a new job
            if (slots == 0)
                return DueStep::Pass;
            --slots;
            --free_jobs;
        }
        ++taken;
        out.push_back(DueRecipient{id, index, std::string(domain), at});
        full = out.size() >= batch;
        return full ? DueStep::Stop : DueStep::Continue;
    };
    store_.visit_due(clock_(), visitor);
    return out;
}

// Recipients due now but not started are in flight or over a limit: a
// finishing job wakes the loop for them. Only future due times need the timer.
void Scheduler::Impl::arm_timer() {
    const auto now = clock_();
    next_wake_ = store_.next_due_after(now);
    if (!next_wake_) {
        wake_timer_.expires_at(asio::steady_timer::time_point::max());
        return;
    }
    const auto wait = std::clamp<std::int64_t>(*next_wake_ - now, 0, kMaxSleep.count());
    wake_timer_.expires_after(std::chrono::milliseconds(wait));
}

bool Scheduler::Impl::start_job(const Message& m, const std::string& domain,
                                std::vector<std::uint32_t> indexes) {
    core::DeliveryJob job;
    job.message_id = m.id;
    job.queue_id = format_queue_id(m.id);
    job.domain = domain;
    job.envelope = m.envelope;
    job.envelope.recipients.clear();
    std::uint32_t most_attempts = 0;
    std::erase_if(indexes, [&](std::uint32_t i) {
        return i >= m.recipients.size() || !is_pending(m.recipients[i].state);
    });
    for (const auto i : indexes) {
        job.recipients.push_back(core::JobRecipient{i, m.recipients[i].spec});
        most_attempts = std::max(most_attempts, m.recipients[i].attempts);
    }
    if (job.recipients.empty())
        return false;
    job.attempt = most_attempts + 1;
    hold(m.id, indexes);
    ++jobs_;
    auto& dest = destinations_[domain];
    ++dest.jobs;
    dest.recipients += indexes.size();
    log::debug("delivery.start", "id={} domain={} recipients={} attempt={}", job.queue_id,
               log::q(domain), indexes.size(), job.attempt);
    auto name = fmt::format("delivery {} {}", job.queue_id, domain);
    core::spawn(executor_, run_job(shared_from_this(), std::move(job)), std::move(name));
    return true;
}

std::shared_ptr<const std::string> Scheduler::Impl::content_for(QueueId id) {
    auto& flight = flights_[id];
    if (auto shared = flight.content.lock())
        return shared;
    auto content = store_.load_content(id);
    if (!content)
        return nullptr;
    auto shared = std::make_shared<const std::string>(std::move(*content));
    flight.content = shared;
    return shared;
}

// co_spawn starts a coroutine inline when called on its executor's thread;
// holders begin with a post so that they never run inside pass() or
// release(), and so that the jobs of one pass all hold their recipients
// before the first of them finishes.
asio::awaitable<void> Scheduler::Impl::run_job(std::shared_ptr<Impl> self, core::DeliveryJob job) {
    co_await asio::post(self->executor_, asio::use_awaitable);
    job.content = self->content_for(job.message_id);
    std::vector<core::Outcome> outcomes;
    if (job.content) {
        auto attempt = job;
        try {
            auto delivery = self->deliverer_.deliver(std::move(attempt));
            outcomes = co_await std::move(delivery);
        } catch (const std::exception& e) {
            // Deliverers must not throw; if one does, the attempt counts as a
            // local deferral instead of leaving its recipients held forever.
            log::error("delivery.exception", "id={} error={}", job.queue_id, log::q(e.what()));
            outcomes.clear();
        } catch (...) {
            log::error("delivery.exception", "id={} error=unknown", job.queue_id);
            outcomes.clear();
        }
    }
    if (self->dead_)
        co_return;
    auto plan = job.content ? self->complete(job, outcomes) : Plan{job.message_id, {}, {}, false};
    if (!job.content)
        log::warning("delivery.no_content", "id={} domain={}", job.queue_id, log::q(job.domain));
    self->leave_destination(job);
    if (!plan.updates.empty() || plan.remove) {
        auto updates = plan.updates;
        const bool written = co_await write(self, plan.id, std::move(updates), plan.remove);
        (void)written; // either way the recipients are released: unwritten ones are due again
    }
    if (self->dead_)
        co_return;
    self->end_job(job, plan);
}

// The deliverer has returned: its connection is back in the pool or
// closed, so the job's slot (max_jobs, max_jobs_per_destination) is free
// now, while its recipients stay held until their records are committed
// (end_job). Holding the slot through that commit (an fsync'd group commit,
// milliseconds) capped a destination at max_jobs_per_destination / commit
// latency whatever the receiver's speed. There is no wake() here: the
// release() after the commit wakes the loop, once for all the jobs that
// commit recorded, so one pass fills every freed slot; a wake per job
// doubled the passes, and each pass reads a batch of due recipients (in a
// relay benchmark: 2.6 s of CPU per 5,000 messages instead of 5.2 s).
void Scheduler::Impl::leave_destination(const core::DeliveryJob& job) {
    --jobs_;
    auto& dest = destinations_[job.domain];
    --dest.jobs;
    dest.recipients -= std::min<std::uint64_t>(dest.recipients, job.recipients.size());
}

void Scheduler::Impl::end_job(const core::DeliveryJob& job, const Plan& plan) {
    auto held = plan.held;
    for (const auto& r : job.recipients)
        held.push_back(r.index);
    if (destinations_.size() > kMaxRememberedDestinations)
        std::erase_if(destinations_, [](const auto& entry) { return entry.second.jobs == 0; });
    release(job.message_id, held);
}

// The outcomes of one job as records to write (plus, when this job is the
// message's only holder, the DSN and removal step). Reads the message
// afresh: other holders may have written its other recipients meanwhile.
Scheduler::Impl::Plan Scheduler::Impl::complete(const core::DeliveryJob& job,
                                                const std::vector<core::Outcome>& outcomes) {
    Plan plan{job.message_id, {}, {}, false};
    auto m = store_.load(job.message_id);
    if (!m) {
        log::warning("delivery.message_gone", "id={} domain={}", job.queue_id, log::q(job.domain));
        return plan;
    }
    if (outcomes.size() != job.recipients.size())
        log::error("delivery.outcome_count", "id={} recipients={} outcomes={}", job.queue_id,
                   job.recipients.size(), outcomes.size());
    const auto now = clock_();
    const auto& flight = flights_[job.message_id];
    const ApplyContext context{config_.retry, now, received_at(*m), flight.bounce_requested};
    auto& dest = destinations_[job.domain];
    for (std::size_t i = 0; i < job.recipients.size(); ++i) {
        const auto index = job.recipients[i].index;
        if (index >= m->recipients.size())
            continue;
        const auto outcome = i < outcomes.size() ? outcomes[i] : missing_outcome();
        auto& r = m->recipients[index];
        r = apply_outcome(std::move(r), outcome, context, random_);
        if (outcome.kind == OutcomeKind::Throttled) {
            log_throttled(*m, r, outcome, now);
        } else {
            log_result(*m, r, now);
            dest.last_outcome = r.outcome.summary();
            dest.last_ms = now;
        }
        plan.updates.push_back(RecipientUpdate{index, r});
    }
    settle_step(*m, plan, now);
    return plan;
}

// DSNs and removal, when the caller is the message's only holder; otherwise
// the last holder does it (release()). The sink is called before the plan
// is written: its DSN commit is queued first, so it is durable no later
// than the records that say it was sent.
void Scheduler::Impl::settle_step(Message& m, Plan& plan, std::int64_t now) {
    auto& flight = flights_[m.id];
    if (flight.holders > 1) {
        // The others' records may not be written yet, so what is owed and
        // whether everything is final is only known once they are.
        flight.needs_settle = true;
        return;
    }
    std::vector<std::uint32_t> failed;
    std::vector<std::uint32_t> delayed;
    for (std::uint32_t i = 0; i < m.recipients.size(); ++i) {
        if (owes_failure_dsn(m, m.recipients[i]))
            failed.push_back(i);
        else if (owes_delay_dsn(m, m.recipients[i], config_.retry, now))
            delayed.push_back(i);
    }
    if (!failed.empty()) {
        log::info("dsn.failure", "id={} recipients={}", format_queue_id(m.id), failed.size());
        bounces_.failed(m, failed);
        mark_sent(m, plan, failed, kDsnFailureSent);
    }
    if (!delayed.empty()) {
        log::info("dsn.delay", "id={} recipients={}", format_queue_id(m.id), delayed.size());
        bounces_.delayed(m, delayed);
        mark_sent(m, plan, delayed, kDsnDelaySent);
    }
    plan.remove = all_final(m.recipients);
}

// Adds the DSN flag to the plan; recipients outside it are held until the
// flag is written, so no job reads a record without it meanwhile.
void Scheduler::Impl::mark_sent(Message& m, Plan& plan, const std::vector<std::uint32_t>& indexes,
                                std::uint8_t flag) {
    for (const auto i : indexes) {
        m.recipients[i].dsn_state |= flag;
        const bool mine = std::any_of(plan.updates.begin(), plan.updates.end(),
                                      [i](const RecipientUpdate& u) { return u.index == i; });
        if (!mine && !in_flight_.contains(Key{m.id, i})) {
            in_flight_.emplace(m.id, i);
            plan.held.push_back(i);
        }
        upsert(plan.updates, i, m.recipients[i]);
    }
}

void Scheduler::Impl::spawn_settle(QueueId id) {
    hold(id, {});
    core::spawn(executor_, run_settle(shared_from_this(), id),
                "queue settle " + format_queue_id(id));
}

Scheduler::Impl::Plan Scheduler::Impl::plan_settle(QueueId id) {
    Plan plan{id, {}, {}, false};
    flights_[id].needs_settle = false;
    auto m = store_.load(id);
    if (m)
        settle_step(*m, plan, clock_());
    return plan;
}

asio::awaitable<void> Scheduler::Impl::run_settle(std::shared_ptr<Impl> self, QueueId id) {
    co_await asio::post(self->executor_, asio::use_awaitable);
    if (self->dead_)
        co_return;
    auto plan = self->plan_settle(id);
    if (!plan.updates.empty() || plan.remove) {
        auto updates = plan.updates;
        const bool written = co_await write(self, id, std::move(updates), plan.remove);
        (void)written;
    }
    if (self->dead_)
        co_return;
    self->release(id, plan.held);
}

// Writes a plan, retrying a failed write while the message still exists.
asio::awaitable<bool> Scheduler::Impl::write(std::shared_ptr<Impl> self, QueueId id,
                                             std::vector<RecipientUpdate> updates, bool remove) {
    asio::steady_timer backoff(self->executor_);
    auto wait = kFirstWriteRetry;
    const auto qid = format_queue_id(id);
    for (;;) {
        std::vector<MessageUpdate> batch{MessageUpdate{id, updates, remove}};
        const auto results = co_await store_updates(self->store_, std::move(batch));
        if (self->dead_)
            co_return false;
        const auto& result = results.front();
        if (result.status == CommitStatus::Ok) {
            if (result.removed)
                log::info("queue.removed", "id={} reason=final", qid);
            co_return true;
        }
        const bool gone = !self->store_.load(id).has_value();
        if (gone || result.status == CommitStatus::ShuttingDown) {
            log::warning("queue.outcome_dropped", "id={} reason={}", qid,
                         gone ? "message removed" : "shutting down");
            co_return false;
        }
        log::error("queue.outcome_write_failed", "id={} detail={} retry_in_ms={}", qid,
                   log::q(result.detail), wait.count());
        backoff.expires_after(wait);
        const auto [ec] = co_await backoff.async_wait(kAsTuple);
        (void)ec;
        wait = std::min(wait * 2, kMaxWriteRetry);
    }
}

asio::awaitable<void> Scheduler::Impl::wait_idle(std::shared_ptr<Impl> self) {
    while (!self->flights_.empty() && !self->dead_) {
        const auto [ec] = co_await self->idle_timer_.async_wait(kAsTuple);
        (void)ec;
    }
}

// Sets next_attempt = now for the given pending recipients, a message at a
// time but all written together.
// `event` names the log line; it must be a string literal (it outlives the
// coroutine).
asio::awaitable<AdminChange> Scheduler::Impl::reschedule(std::shared_ptr<Impl> self,
                                                         std::vector<DueRecipient> due,
                                                         std::string_view event) {
    AdminChange change;
    if (self->dead_)
        co_return change;
    std::map<QueueId, std::vector<std::uint32_t>> by_message;
    for (const auto& d : due) {
        if (!self->in_flight_.contains(Key{d.id, d.index}))
            by_message[d.id].push_back(d.index);
    }
    const auto now = self->clock_();
    std::vector<MessageUpdate> batch;
    std::vector<std::pair<QueueId, std::vector<std::uint32_t>>> held;
    for (auto& [id, indexes] : by_message) {
        auto update = self->reschedule_update(id, indexes, now);
        if (!update)
            continue;
        change.found = true;
        change.recipients += update->updates.size();
        ++change.messages;
        self->hold(id, indexes);
        held.emplace_back(id, std::move(indexes));
        batch.push_back(std::move(*update));
    }
    const auto results = co_await store_updates(self->store_, std::move(batch));
    if (self->dead_)
        co_return change;
    for (const auto& r : results) {
        if (r.status != CommitStatus::Ok && change.error.empty())
            change.error = r.detail;
    }
    for (const auto& [id, indexes] : held)
        self->release(id, indexes);
    log::info(event, "messages={} recipients={}", change.messages, change.recipients);
    co_return change;
}

std::optional<MessageUpdate>
Scheduler::Impl::reschedule_update(QueueId id, const std::vector<std::uint32_t>& indexes,
                                   std::int64_t now) {
    auto m = store_.load(id);
    if (!m)
        return std::nullopt;
    MessageUpdate update{id, {}, false};
    for (const auto i : indexes) {
        if (i >= m->recipients.size() || !is_pending(m->recipients[i].state))
            continue;
        auto r = m->recipients[i];
        end_hold(r, now); // a throttled recipient released early gives back the unused hold
        r.next_attempt_ms = now;
        r.updated_ms = now;
        update.updates.push_back(RecipientUpdate{i, std::move(r)});
    }
    if (update.updates.empty())
        return std::nullopt;
    return update;
}

asio::awaitable<AdminChange> Scheduler::Impl::retry_message(std::shared_ptr<Impl> self,
                                                            QueueId id) {
    const bool exists = !self->dead_ && self->store_.load(id).has_value();
    auto due = exists ? self->store_.due(std::numeric_limits<std::int64_t>::max(),
                                         std::numeric_limits<std::size_t>::max(),
                                         [id](const DueRecipient& d) { return d.id != id; })
                      : std::vector<DueRecipient>{};
    auto change = co_await reschedule(self, std::move(due));
    change.found = exists;
    co_return change;
}

asio::awaitable<AdminChange> Scheduler::Impl::bounce(std::shared_ptr<Impl> self, QueueId id) {
    AdminChange change;
    std::optional<Message> m;
    if (!self->dead_)
        m = self->store_.load(id);
    if (!m)
        co_return change;
    change.found = true;
    const auto now = self->clock_();
    Plan plan{id, {}, {}, false};
    for (std::uint32_t i = 0; i < m->recipients.size(); ++i) {
        auto& r = m->recipients[i];
        if (!is_pending(r.state) || self->in_flight_.contains(Key{id, i}))
            continue;
        end_hold(r, now);
        r.state = RecipientState::Failed;
        r.outcome = admin_bounce_outcome();
        r.last_reply = r.outcome.summary();
        r.updated_ms = now;
        log_result(*m, r, now);
        plan.updates.push_back(RecipientUpdate{i, r});
        plan.held.push_back(i);
    }
    change.recipients = plan.updates.size();
    change.messages = 1;
    // Recipients in flight fail when their attempt ends in a deferral.
    auto& flight = self->flights_[id];
    flight.bounce_requested = true;
    self->hold(id, plan.held);
    self->settle_step(*m, plan, now);
    if (!plan.updates.empty() || plan.remove) {
        auto updates = plan.updates;
        const bool ok = co_await write(self, id, std::move(updates), plan.remove);
        if (!ok)
            change.error = "the queue could not record the bounce";
    }
    if (self->dead_)
        co_return change;
    self->release(id, plan.held);
    log::info("queue.bounce", "id={} recipients={}", format_queue_id(id), change.recipients);
    co_return change;
}

std::vector<DestinationStatus> Scheduler::Impl::destinations() const {
    std::map<std::string, DestinationStatus> out;
    const auto summary = store_.summary();
    for (const auto& entry : summary.by_domain) {
        const auto& domain = entry.first;
        const auto count = [&entry](RecipientState s) {
            const auto it = entry.second.find(s);
            return it == entry.second.end() ? std::uint64_t{0} : it->second;
        };
        if (count(RecipientState::Queued) + count(RecipientState::Deferred) == 0)
            continue;
        auto& d = out[domain];
        d.queued = count(RecipientState::Queued);
        d.deferred = count(RecipientState::Deferred);
    }
    for (const auto& [domain, state] : destinations_) {
        auto& d = out[domain];
        d.in_flight = state.recipients;
        d.connections = state.jobs;
        d.last_outcome = state.last_outcome;
        d.last_outcome_ms = state.last_ms;
    }
    std::vector<DestinationStatus> list;
    list.reserve(out.size());
    for (auto& [domain, d] : out) {
        d.domain = domain;
        list.push_back(std::move(d));
    }
    return list;
}

// ---- Scheduler --------------------------------------------------------------

Scheduler::Scheduler(const asio::any_io_executor& executor, Store& store,
                     core::Deliverer& deliverer, SchedulerConfig config, UnixClock clock,
                     RandomSource random, BounceSink& bounces)
    : impl_(std::make_shared<Impl>(executor, store, deliverer, config, std::move(clock),
                                   std::move(random), bounces)) {}

Scheduler::~Scheduler() {
    impl_->shutdown();
}

void Scheduler::start() {
    impl_->start();
}

void Scheduler::stop() {
    impl_->stopped_ = true;
    impl_->wake_timer_.cancel();
    impl_->next_wake_.reset();
}

void Scheduler::notify() {
    asio::post(impl_->executor_, [weak = std::weak_ptr<Impl>(impl_)] {
        if (const auto impl = weak.lock())
            impl->wake();
    });
}

void Scheduler::reconfigure(SchedulerConfig config) {
    impl_->config_ = config;
    impl_->wake();
}

asio::awaitable<void> Scheduler::wait_idle() {
    return Impl::wait_idle(impl_);
}

asio::awaitable<AdminChange> Scheduler::retry_now(QueueId id) {
    return Impl::retry_message(impl_, id);
}

asio::awaitable<AdminChange> Scheduler::retry_domain(std::string_view domain) {
    const auto wanted = core::address_domain("@" + std::string(domain));
    const auto all = impl_->store_.due(
        std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::size_t>::max(),
        [&wanted](const DueRecipient& d) { return d.domain != wanted; });
    return Impl::reschedule(impl_, all);
}

asio::awaitable<AdminChange> Scheduler::retry_all() {
    return Impl::reschedule(impl_, impl_->store_.due(std::numeric_limits<std::int64_t>::max(),
                                                     std::numeric_limits<std::size_t>::max()));
}

asio::awaitable<AdminChange> Scheduler::release_throttled() {
    return Impl::reschedule(impl_, impl_->store_.throttled(), "queue.release_throttled");
}

asio::awaitable<AdminChange> Scheduler::bounce_now(QueueId id) {
    return Impl::bounce(impl_, id);
}

std::vector<DestinationStatus> Scheduler::destinations() const {
    return impl_->destinations();
}

std::size_t Scheduler::jobs_in_flight() const {
    return impl_->jobs_;
}

std::size_t Scheduler::recipients_in_flight() const {
    return impl_->in_flight_.size();
}

bool Scheduler::idle() const {
    return impl_->flights_.empty();
}

std::optional<std::int64_t> Scheduler::next_wake_ms() const {
    return impl_->next_wake_;
}

} // namespace ember::queue
