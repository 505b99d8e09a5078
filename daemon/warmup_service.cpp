#include "daemon/warmup_service.hpp"

#include "core/async.hpp"
#include "core/envelope.hpp"
#include "core/log.hpp"
#include "smtp/message_header.hpp"
#include "warmup/format.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/core.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <numeric>

namespace ember::daemon {

namespace asio = boost::asio;
namespace log = core::log;

namespace {

std::int64_t system_unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    });
    return out;
}

// An admitted recipient the inner deliverer gave no outcome for (a broken
// contract): a local deferral, which the engine refunds.
core::Outcome missing_outcome() {
    core::Outcome o;
    o.kind = core::OutcomeKind::Deferred;
    o.scope = core::OutcomeScope::Recipient;
    o.code = 451;
    o.enhanced = "4.3.0";
    o.text = "internal error: no outcome from the deliverer";
    o.local = true;
    return o;
}

constexpr std::array<std::string_view, warmup::kWaitReasons + 1> kThrottleReasons{
    "cap", "rate", "backoff", "suspended", "paused", "connections"};
constexpr std::size_t kConnectionsReason = warmup::kWaitReasons;
constexpr std::size_t kEventTypes = 9; // warmup::Metrics::events

} // namespace

// ---- metrics ----------------------------------------------------------------

struct WarmupMetrics {
    explicit WarmupMetrics(prometheus::Registry& registry)
        : admitted(prometheus::BuildCounter()
                       .Name("ember_warmup_admitted_total")
                       .Help("Recipients the warm-up gate let go")
                       .Register(registry)
                       .Add({})),
          refunded(prometheus::BuildCounter()
                       .Name("ember_warmup_refunded_total")
                       .Help("Admitted recipients given back to the cap (local failures, "
                             "retry-later rules, suppressed or postponed after the gate)")
                       .Register(registry)
                       .Add({})),
          throttled_family(prometheus::BuildCounter()
                               .Name("ember_warmup_throttled_total")
                               .Help("Recipients held back by the warm-up gate, by reason")
                               .Register(registry)),
          events_family(prometheus::BuildCounter()
                            .Name("ember_warmup_events_total")
                            .Help("Warm-up transitions (backoff, suspension, caps, ramp), by type")
                            .Register(registry)),
          sent_today(gauge(registry, "ember_warmup_sent_today",
                           "Recipients sent today (UTC) per sending domain and provider")),
          cap(gauge(registry, "ember_warmup_cap",
                    "Today's cap per sending domain and provider (+Inf: unlimited)")),
          rate_factor(gauge(registry, "ember_warmup_rate_factor",
                            "Rate multiplier (below 1 during a backoff and its recovery)")),
          backoff(gauge(registry, "ember_warmup_backoff", "1 while the key is backed off")),
          suspended(gauge(registry, "ember_warmup_suspended",
                          "1 while the key or its whole domain is suspended")),
          paused(gauge(registry, "ember_warmup_paused",
                       "1 while the key or its whole domain is paused")),
          ramp_day(gauge(registry, "ember_warmup_ramp_day", "Ramp day (0: unthrottled)")) {
        for (std::size_t i = 0; i < kThrottleReasons.size(); ++i)
            throttled[i] = &throttled_family.Add({{"reason", std::string(kThrottleReasons[i])}});
        for (std::size_t i = 0; i < kEventTypes; ++i)
            events[i] = &events_family.Add(
                {{"type", std::string(warmup::event_name(static_cast<warmup::EventType>(i)))}});
    }

    static prometheus::Family<prometheus::Gauge>&
    gauge(prometheus::Registry& registry, const std::string& name, const std::string& help) {
        return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
    }

    // Counts what the engine counted since the last call (events, refunds).
    void sync(const warmup::Metrics& m) {
        for (std::size_t i = 0; i < kEventTypes; ++i) {
            if (m.events[i] > seen.events[i])
                events[i]->Increment(static_cast<double>(m.events[i] - seen.events[i]));
        }
        if (m.refunded > seen.refunded)
            refunded.Increment(static_cast<double>(m.refunded - seen.refunded));
        seen = m;
    }

    struct Series {
        std::array<prometheus::Gauge*, 7> gauges{};
        bool seen = false;
    };

    void refresh(const std::vector<warmup::KeyStatus>& rows);

    prometheus::Counter& admitted;
    prometheus::Counter& refunded;
    prometheus::Family<prometheus::Counter>& throttled_family;
    prometheus::Family<prometheus::Counter>& events_family;
    std::array<prometheus::Counter*, kThrottleReasons.size()> throttled{};
    std::array<prometheus::Counter*, kEventTypes> events{};
    prometheus::Family<prometheus::Gauge>& sent_today;
    prometheus::Family<prometheus::Gauge>& cap;
    prometheus::Family<prometheus::Gauge>& rate_factor;
    prometheus::Family<prometheus::Gauge>& backoff;
    prometheus::Family<prometheus::Gauge>& suspended;
    prometheus::Family<prometheus::Gauge>& paused;
    prometheus::Family<prometheus::Gauge>& ramp_day;
    warmup::Metrics seen;
    std::map<std::string, Series> series; // by Key::to_string()
};

// One series per key the engine reports; keys that went away (a reload
// dropped their provider) lose theirs. O(keys) per scrape.
void WarmupMetrics::refresh(const std::vector<warmup::KeyStatus>& rows) {
    const std::array families{&sent_today, &cap,    &rate_factor, &backoff,
                              &suspended,  &paused, &ramp_day};
    for (auto& [name, s] : series)
        s.seen = false;
    for (const auto& row : rows) {
        auto [it, fresh] = series.try_emplace(row.key.to_string());
        if (fresh) {
            const prometheus::Labels labels{{"domain", row.key.sending_domain},
                                            {"provider", row.key.provider},
                                            {"source", row.key.source}};
            for (std::size_t i = 0; i < families.size(); ++i)
                it->second.gauges[i] = &families[i]->Add(labels);
        }
        auto& g = it->second.gauges;
        it->second.seen = true;
        g[0]->Set(static_cast<double>(row.sent_today));
        g[1]->Set(row.cap ? static_cast<double>(*row.cap)
                          : std::numeric_limits<double>::infinity());
        g[2]->Set(row.rate_factor);
        g[3]->Set(row.rate_factor < 1.0 ? 1 : 0);
        g[4]->Set(row.suspended_until || row.domain_suspended ? 1 : 0);
        g[5]->Set(row.paused || row.domain_paused ? 1 : 0);
        g[6]->Set(row.ramp_day);
    }
    for (auto it = series.begin(); it != series.end();) {
        if (it->second.seen) {
            ++it;
            continue;
        }
        for (std::size_t i = 0; i < families.size(); ++i)
            families[i]->Remove(it->second.gauges[i]);
        it = series.erase(it);
    }
}

// ---- free functions ---------------------------------------------------------

std::optional<warmup::Config> load_warmup_config(const warmup::Settings& settings,
                                                 core::Diagnostics& diag) {
    if (settings.file.empty())
        return warmup::unthrottled_config();
    return warmup::load_config(settings.file, diag);
}

std::string sending_domain_of(const core::DeliveryJob& job) {
    if (job.content) {
        const auto froms = smtp::from_domains(smtp::parse_header_block(*job.content));
        if (!froms.empty() && !froms.front().empty())
            return froms.front();
    }
    return lower(core::address_domain(job.envelope.mail_from));
}

// ---- WarmupService ----------------------------------------------------------

WarmupService::WarmupService(asio::any_io_executor executor, const warmup::Settings& settings,
                             warmup::Config config, queue::Store& store,
                             queue::Store::TableId table, Metrics& metrics, WallClock clock)
    : executor_(std::move(executor)), settings_(settings), engine_(std::move(config)),
      store_(store), table_(table), clock_(clock ? std::move(clock) : WallClock(system_unix_ms)),
      save_timer_(executor_), metrics_(std::make_unique<WarmupMetrics>(metrics.registry())) {}

std::unique_ptr<WarmupService> WarmupService::create(asio::any_io_executor executor,
                                                     const warmup::Settings& settings,
                                                     warmup::Config config, queue::Store& store,
                                                     Metrics& metrics, std::string& error,
                                                     WallClock clock) {
    std::string table_error;
    const auto table = store.open_table(kWarmupTable, table_error);
    if (!table) {
        error = "cannot open the warm-up state table: " + table_error;
        return nullptr;
    }
    std::unique_ptr<WarmupService> s(new WarmupService(std::move(executor), settings,
                                                       std::move(config), store, *table, metrics,
                                                       std::move(clock)));
    s->restore();
    // The refresher may outlive the service (Metrics is the App's): it looks
    // through a handle the destructor clears.
    auto handle = std::make_shared<WarmupService*>(s.get());
    s->handle_ = handle;
    metrics.add_refresher([handle] {
        if (auto* self = *handle)
            self->metrics_->refresh(self->engine_.status("", self->now()));
    });
    return s;
}

WarmupService::~WarmupService() {
    if (handle_)
        *handle_ = nullptr;
}

void WarmupService::restore() {
    const auto blob = store_.kv_get(table_, kWarmupStateKey);
    if (!blob)
        return;
    if (!engine_.restore_state(*blob)) {
        log::warning("warmup.restore_failed",
                     "note=\"saved warm-up state unreadable; starting from empty counters\"");
        return;
    }
    last_saved_ = *blob;
    log::info("warmup.restored", "keys={} domains={}", engine_.key_count(), engine_.domain_count());
}

void WarmupService::start() {
    if (running_)
        return;
    running_ = true;
    core::spawn(executor_, save_loop(this, ++generation_), "warm-up state saver");
}

void WarmupService::stop() {
    running_ = false;
    ++generation_;
    save_timer_.cancel();
    drain();
    save();
}

void WarmupService::apply(const warmup::Settings& settings, warmup::Config config) {
    const bool interval_changed = settings.save_interval != settings_.save_interval;
    settings_ = settings;
    engine_.reconfigure(std::move(config));
    drain();
    release_held_soon(); // new caps or a lifted pause may let held mail go
    if (interval_changed && running_) {
        running_ = false;
        ++generation_;
        save_timer_.cancel();
        start();
    }
}

asio::awaitable<void> WarmupService::save_loop(WarmupService* self, std::uint64_t generation) {
    for (;;) {
        self->save_timer_.expires_after(self->settings_.save_interval);
        const auto [ec] =
            co_await self->save_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || !self->running_ || self->generation_ != generation)
            co_return;
        self->save();
    }
}

warmup::TimePoint WarmupService::now() const {
    return warmup::TimePoint(std::chrono::milliseconds(clock_() + offset_ms_));
}

std::int64_t WarmupService::wall_ms(warmup::TimePoint t) const {
    return t.time_since_epoch().count() - offset_ms_;
}

bool WarmupService::advance(std::int64_t ms) {
    if (!settings_.allow_clock_advance || ms <= 0)
        return false;
    offset_ms_ += ms;
    log::warning("warmup.clock_advanced", "offset_ms={} now={}", offset_ms_,
                 warmup::format_time(now()));
    drain();
    return true;
}

void WarmupService::save() {
    if (!enabled())
        return; // no warm-up, no state: never overwrite what a past config saved
    if (save_failed_->exchange(false))
        last_saved_.clear(); // the last write did not land: write again
    auto text = engine_.serialize_state();
    if (text == last_saved_)
        return;
    last_saved_ = text;
    std::vector<queue::Store::KvWrite> writes;
    writes.push_back({table_, kWarmupStateKey, std::move(text)});
    store_.kv_write(std::move(writes), [failed = save_failed_](queue::CommitResult r) {
        if (r.status == queue::CommitStatus::Ok)
            return;
        failed->store(true);
        log::error("warmup.save_failed", "error={}", log::q(r.detail));
    });
}

core::Outcome WarmupService::throttled(std::string_view reason, std::string_view detail,
                                       warmup::TimePoint until) const {
    core::Outcome o;
    o.kind = core::OutcomeKind::Throttled;
    o.scope = core::OutcomeScope::Recipient;
    // RFC 3463 X.4.5 "mail system congestion": held back here, never sent.
    o.code = 451;
    o.enhanced = "4.4.5";
    o.text = fmt::format("held by warm-up: {}: {}", reason, detail);
    o.local = true;
    o.not_before_ms = wall_ms(until);
    return o;
}

Gate WarmupService::admit(const core::DeliveryJob& job, const PriorityFn& priority) {
    Gate gate;
    const auto n = job.recipients.size();
    gate.outcomes.resize(n);
    if (!enabled() || n == 0) {
        gate.admitted.resize(n);
        std::iota(gate.admitted.begin(), gate.admitted.end(), std::size_t{0});
        return gate;
    }
    gate.active = true;
    gate.domain = job.domain;
    const auto now = this->now();
    gate.key = engine_.key(sending_domain_of(job), job.domain, source_);
    gate.limits = engine_.limits(gate.key);
    const auto& limits = gate.limits;
    if (const auto it = in_flight_.find(gate.key); limits.max_connections != 0 &&
                                                   it != in_flight_.end() &&
                                                   it->second >= limits.max_connections) {
        const auto detail = fmt::format("{} has {} connections in use (max_connections {})",
                                        gate.key.to_string(), it->second, limits.max_connections);
        for (auto& o : gate.outcomes)
            o = throttled(kThrottleReasons[kConnectionsReason], detail,
                          now + std::chrono::milliseconds(kConnectionWaitMs));
        metrics_->throttled[kConnectionsReason]->Increment(static_cast<double>(n));
        log::debug("warmup.throttled", "id={} key={} reason=connections held={}", job.queue_id,
                   log::q(gate.key.to_string()), n);
        return gate;
    }
    std::vector<warmup::Candidate> candidates(n);
    for (std::size_t i = 0; i < n; ++i)
        candidates[i] = warmup::Candidate{i, 0.0};
    // Scores only matter when some must wait; asking the contact store for
    // every recipient of every job would tax the unthrottled common case.
    if (priority && engine_.remaining(gate.key, now) < n) {
        const auto wall = clock_();
        for (auto& c : candidates)
            c.priority = priority(job.recipients[c.id].spec.address, wall);
    }
    const auto batch = engine_.admit_batch(gate.key, candidates, now);
    for (std::size_t k = 0; k < batch.admitted; ++k)
        gate.admitted.push_back(static_cast<std::size_t>(candidates[k].id));
    std::sort(gate.admitted.begin(), gate.admitted.end());
    metrics_->admitted.Increment(static_cast<double>(batch.admitted));
    if (batch.admitted == n)
        return gate;
    const auto reason = warmup::reason_name(batch.rest.reason);
    for (std::size_t k = batch.admitted; k < n; ++k)
        gate.outcomes[candidates[k].id] = throttled(reason, batch.rest.detail, batch.rest.until);
    metrics_->throttled[static_cast<std::size_t>(batch.rest.reason)]->Increment(
        static_cast<double>(n - batch.admitted));
    log::debug("warmup.throttled", "id={} key={} reason={} admitted={} held={} until={}",
               job.queue_id, log::q(gate.key.to_string()), reason, batch.admitted,
               n - batch.admitted, warmup::format_time(batch.rest.until));
    return gate;
}

void WarmupService::settle(Gate& gate, std::vector<core::Outcome> outcomes) {
    const auto now = this->now();
    std::string mx;
    for (std::size_t k = 0; k < gate.admitted.size(); ++k) {
        auto o = k < outcomes.size() ? std::move(outcomes[k]) : missing_outcome();
        if (gate.active &&
            (o.kind == core::OutcomeKind::Suppressed || o.kind == core::OutcomeKind::Throttled)) {
            // Settled or postponed after the gate: nothing went out.
            engine_.refund(gate.key, now, warmup::RefundScope::CapAndRate);
        } else if (gate.active) {
            // Until feedback/ classifies bounces, a permanent refusal of the
            // address itself is the hard bounce (warmup/README.md step 3).
            const bool hard =
                o.kind == core::OutcomeKind::Failed && o.scope == core::OutcomeScope::Recipient;
            engine_.record(gate.key, o, hard, now);
            if (mx.empty() && !o.remote_host.empty())
                mx = o.remote_host;
        }
        gate.outcomes[gate.admitted[k]] = std::move(o);
    }
    if (gate.active && !mx.empty())
        engine_.learn_mx(gate.domain, mx);
    drain();
}

void WarmupService::job_started(const warmup::Key& key) {
    ++in_flight_[key];
}

void WarmupService::job_finished(const warmup::Key& key) {
    const auto it = in_flight_.find(key);
    if (it == in_flight_.end())
        return;
    if (--it->second == 0)
        in_flight_.erase(it);
}

namespace {

asio::awaitable<queue::AdminChange> nothing_released() {
    co_return queue::AdminChange{};
}

} // namespace

// Not a coroutine: the awaitable it returns is the scheduler's own.
asio::awaitable<queue::AdminChange> WarmupService::release_held() {
    if (!release_)
        return nothing_released();
    return release_();
}

void WarmupService::release_held_soon() {
    if (release_)
        core::spawn(executor_, release_task(release_), "warm-up release of held mail");
}

// Holds its own copy of the hook, never `this`: the service may go away
// while the scheduler commits.
asio::awaitable<void> WarmupService::release_task(ReleaseFn release) {
    auto op = release();
    const auto change = co_await std::move(op);
    if (!change.error.empty())
        log::error("warmup.release_failed", "error={}", log::q(change.error));
}

void WarmupService::drain() {
    for (const auto& e : engine_.take_events()) {
        const auto event = fmt::format("warmup.{}", warmup::event_name(e.type));
        log::info(event, "key={} time={} details={}", log::q(e.key.to_string()),
                  warmup::format_time(e.time), log::q(e.details));
    }
    metrics_->sync(engine_.metrics());
}

// ---- PacingDeliverer --------------------------------------------------------

namespace {

core::DeliveryJob admitted_part(core::DeliveryJob job, const Gate& gate) {
    const auto per_connection = gate.limits.max_messages_per_connection;
    if (per_connection != 0)
        job.max_messages_per_connection =
            job.max_messages_per_connection == 0
                ? per_connection
                : std::min(job.max_messages_per_connection, per_connection);
    const auto& admitted = gate.admitted;
    if (admitted.size() == job.recipients.size())
        return job;
    std::vector<core::JobRecipient> kept;
    kept.reserve(admitted.size());
    for (const auto i : admitted)
        kept.push_back(std::move(job.recipients[i]));
    job.recipients = std::move(kept);
    return job;
}

} // namespace

asio::awaitable<std::vector<core::Outcome>> PacingDeliverer::deliver(core::DeliveryJob job) {
    if (!service_.enabled()) {
        auto passed = inner_.deliver(std::move(job));
        auto outcomes = co_await std::move(passed);
        co_return outcomes;
    }
    auto gate = service_.admit(job, priority_);
    if (gate.admitted.empty()) {
        service_.drain();
        co_return std::move(gate.outcomes);
    }
    auto inner_job = admitted_part(std::move(job), gate);
    service_.job_started(gate.key);
    std::vector<core::Outcome> outcomes;
    try {
        auto delivery = inner_.deliver(std::move(inner_job));
        outcomes = co_await std::move(delivery);
    } catch (...) {
        // Deliverers must not throw; the scheduler turns it into a deferral.
        service_.job_finished(gate.key);
        throw;
    }
    service_.job_finished(gate.key);
    service_.settle(gate, std::move(outcomes));
    co_return std::move(gate.outcomes);
}

} // namespace ember::daemon
