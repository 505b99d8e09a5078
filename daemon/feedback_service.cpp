#include "daemon/feedback_service.hpp"

#include "core/assert.hpp"
#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/feedback_async.hpp"
#include "daemon/feedback_stages.hpp"
#include "daemon/metrics.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <set>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using feedback::Event;
using feedback::EventType;

constexpr auto kSaveInterval = std::chrono::minutes(1);
constexpr std::size_t kMaxThrottled = 100000;
constexpr std::size_t kMaxDelays = 10000;
constexpr std::int64_t kDelayWindowMs = std::int64_t{7} * 24 * 3600 * 1000;
constexpr std::size_t kEventTypes = 11;

std::int64_t system_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

feedback::TimePoint time_point(std::int64_t ms) {
    return feedback::TimePoint(std::chrono::milliseconds(ms));
}

void add_unique(std::vector<std::string>& out, const std::string& value) {
    if (!value.empty() && std::find(out.begin(), out.end(), value) == out.end())
        out.push_back(value);
}

// A key of 64 random hex digits, for an InboundPolicy that must verify
// nothing ember sent: without token_keys no token is ever issued.
feedback::TokenSigner ephemeral_signer() {
    std::string error;
    auto signer = feedback::TokenSigner::create(
        {feedback::TokenKey{"ephemeral", feedback::new_event_id() + feedback::new_event_id()}},
        error);
    EMBER_ASSERT(signer.has_value());
    return std::move(*signer);
}

bool alignment_enforced(const Config& c, const smtp::ListenerConfig& l) {
    switch (l.alignment) {
    case smtp::ListenerAlignment::Inherit:
        return c.auth.alignment == auth::AlignmentPolicy::Enforce;
    case smtp::ListenerAlignment::Enforce:
        return true;
    case smtp::ListenerAlignment::Warn:
    case smtp::ListenerAlignment::Off:
        return false;
    }
    return false;
}

bool same_webhooks(const feedback::WebhookConfig& a, const feedback::WebhookConfig& b) {
    if (a.endpoints.size() != b.endpoints.size() || a.max_age != b.max_age ||
        a.retry_initial != b.retry_initial || a.retry_max != b.retry_max)
        return false;
    for (std::size_t i = 0; i < a.endpoints.size(); ++i) {
        const auto& x = a.endpoints[i];
        const auto& y = b.endpoints[i];
        if (x.url != y.url || x.secret != y.secret || x.batch_size != y.batch_size ||
            x.max_delay != y.max_delay || x.timeout != y.timeout || x.ca_file != y.ca_file)
            return false;
    }
    return true;
}

std::string rfc3339(std::int64_t ms) {
    const std::time_t t = ms / 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

} // namespace

// ---- FeedbackPolicy ---------------------------------------------------------

std::string FeedbackPolicy::bounce_domain_for(std::string_view sending_domain) const {
    if (const auto it = config.bounce_domains.find(std::string(sending_domain));
        it != config.bounce_domains.end())
        return it->second;
    return config.bounce_domain;
}

bool FeedbackPolicy::bulk_domain(std::string_view sending_domain) const {
    if (sending_domain.empty())
        return false;
    return std::any_of(config.unsubscribe_domains.begin(), config.unsubscribe_domains.end(),
                       [&](const std::string& d) { return d == "*" || d == sending_domain; });
}

bool FeedbackPolicy::feedback_address(std::string_view address) const {
    const auto normal = feedback::normalize_address(address);
    if (!normal)
        return false;
    const auto& reports = config.inbound.report_addresses;
    if (std::find(reports.begin(), reports.end(), *normal) != reports.end())
        return true;
    const auto domain = core::address_domain(*normal);
    return std::find(local_domains.begin(), local_domains.end(), domain) != local_domains.end();
}

std::shared_ptr<const FeedbackPolicy> make_feedback_policy(const Config& config,
                                                           core::Diagnostics& diag) {
    auto p = std::make_shared<FeedbackPolicy>();
    p->config = config.feedback;
    p->public_url = config.http.public_url;
    const auto before = diag.size();
    std::vector<feedback::TokenKey> keys;
    for (const auto& spec : config.feedback.token_keys) {
        std::string error;
        if (auto key = feedback::parse_token_key(spec, error))
            keys.push_back(std::move(*key));
        else
            diag.add(config.file, 0, "[feedback] token_keys: " + error);
    }
    if (!keys.empty()) {
        std::string error;
        p->signer = feedback::TokenSigner::create(std::move(keys), error);
        if (!p->signer)
            diag.add(config.file, 0, "[feedback] token_keys: " + error);
    }
    p->rules = std::make_shared<const feedback::Rules>(
        feedback::load_rules(config.feedback.classify, diag));
    auto inbound = config.feedback.inbound;
    for (const auto& [sending, bounce] : config.feedback.bounce_domains)
        add_unique(inbound.sending_domains, sending);
    for (const auto& d : config.feedback.unsubscribe_domains)
        if (d != "*")
            add_unique(inbound.sending_domains, d);
    for (const auto& k : config.dkim)
        add_unique(inbound.sending_domains, core::address_domain("@" + k.domain));
    p->inbound = std::make_shared<const feedback::InboundPolicy>(
        std::move(inbound), p->signer ? *p->signer : ephemeral_signer(), p->rules);
    add_unique(p->local_domains, config.feedback.bounce_domain);
    for (const auto& [sending, bounce] : config.feedback.bounce_domains)
        add_unique(p->local_domains, bounce);
    add_unique(p->local_domains, config.feedback.unsubscribe_mailto_domain);
    bool all = true;
    for (const auto& l : config.listeners) {
        if (l.mode != smtp::ListenerMode::Submission)
            continue;
        const bool enforced = alignment_enforced(config, l);
        p->aligned_listeners[l.address.to_string()] = enforced;
        all = all && enforced;
    }
    p->alignment_enforced_everywhere = all;
    if (diag.size() != before)
        return nullptr;
    return p;
}

std::string describe_suppression(const feedback::SuppressionEntry& entry) {
    return fmt::format("recipient suppressed: {} ({}) since {}",
                       feedback::suppression_reason_name(entry.reason),
                       entry.scope.empty() ? "global" : entry.scope, rfc3339(entry.time_ms));
}

// ---- metrics ----------------------------------------------------------------

struct FeedbackService::Metrics {
    explicit Metrics(prometheus::Registry& registry)
        : events_family(prometheus::BuildCounter()
                            .Name("ember_events_total")
                            .Help("Feedback events by type (delivered, bounced, complained, ...)")
                            .Register(registry)),
          suppressed(prometheus::BuildGauge()
                         .Name("ember_suppression_entries")
                         .Help("Suppression list entries by reason")
                         .Register(registry)),
          rates(prometheus::BuildGauge()
                    .Name("ember_feedback_rate")
                    .Help("Per sending domain rates over the last 24 hours (0..1)")
                    .Register(registry)),
          compliance(prometheus::BuildGauge()
                         .Name("ember_compliance_pass")
                         .Help("Bulk-sender rule per sending domain over 24 hours: 1 pass, 0 "
                               "fail (absent: no data)")
                         .Register(registry)),
          webhook_pending(prometheus::BuildGauge()
                              .Name("ember_webhook_pending_events")
                              .Help("Events waiting for a webhook URL")
                              .Register(registry)) {
        for (std::size_t i = 0; i < kEventTypes; ++i)
            events[i] = &events_family.Add(
                {{"type", std::string(feedback::event_type_name(static_cast<EventType>(i)))}});
    }

    // Drops last scrape's per-domain series and adds this one's.
    void reset(prometheus::Family<prometheus::Gauge>& family) {
        for (auto* g : added[&family])
            family.Remove(g);
        added[&family].clear();
    }
    prometheus::Gauge& add(prometheus::Family<prometheus::Gauge>& family,
                           const prometheus::Labels& labels) {
        auto& g = family.Add(labels);
        added[&family].push_back(&g);
        return g;
    }

    prometheus::Family<prometheus::Counter>& events_family;
    std::array<prometheus::Counter*, kEventTypes> events{};
    prometheus::Family<prometheus::Gauge>& suppressed;
    prometheus::Family<prometheus::Gauge>& rates;
    prometheus::Family<prometheus::Gauge>& compliance;
    prometheus::Family<prometheus::Gauge>& webhook_pending;
    std::map<const void*, std::vector<prometheus::Gauge*>> added;
};

// One table scan per interval, not per scrape: the gauge may lag a write by
// this much, a fair price for a list of millions (Prometheus scrapes every
// 15-60 s anyway). A clock that stepped back recounts.
constexpr std::int64_t kSuppressionCountTtlMs = 30'000;

const std::map<feedback::SuppressionReason, std::uint64_t>& FeedbackService::suppression_counts() {
    const auto now = clock_();
    const bool fresh = suppression_counted_ms_ && now >= *suppression_counted_ms_ &&
                       now - *suppression_counted_ms_ < kSuppressionCountTtlMs;
    if (!fresh) {
        suppression_counts_ = suppressions_->count_by_reason();
        suppression_counted_ms_ = now;
    }
    return suppression_counts_;
}

void FeedbackService::refresh_metrics() {
    auto& m = *metrics_;
    for (auto* f : {&m.suppressed, &m.rates, &m.compliance, &m.webhook_pending})
        m.reset(*f);
    for (const auto& [reason, n] : suppression_counts())
        m.add(m.suppressed, {{"reason", std::string(feedback::suppression_reason_name(reason))}})
            .Set(static_cast<double>(n));
    const auto now = time_point(clock_());
    for (const auto& domain : rates_.domains()) {
        const auto counts = rates_.window(domain, feedback::kDayWindow, now);
        const std::pair<const char*, std::optional<double>> rates[] = {
            {"complaint", counts.complaint_rate()},
            {"hard_bounce", counts.hard_bounce_rate()},
            {"unsubscribe", counts.unsubscribe_rate()}};
        for (const auto& [name, value] : rates)
            if (value)
                m.add(m.rates, {{"domain", domain}, {"rate", name}}).Set(*value);
        feedback::ComplianceFacts facts;
        facts.longest_unsubscribe_delay = longest_unsubscribe_delay();
        const auto card = feedback::scorecard(domain, counts, feedback::kDayWindow, facts);
        for (const auto& line : card.lines)
            if (line.verdict != feedback::Verdict::NoData)
                m.add(m.compliance, {{"domain", domain}, {"rule", line.rule}})
                    .Set(line.verdict == feedback::Verdict::Pass ? 1 : 0);
    }
    for (const auto& s : outbox_->status())
        m.add(m.webhook_pending, {{"url", s.url}}).Set(static_cast<double>(s.pending));
}

// ---- FeedbackService --------------------------------------------------------

FeedbackService::FeedbackService(asio::any_io_executor executor, queue::Store& store, Clock clock)
    : executor_(std::move(executor)), store_(store),
      clock_(clock ? std::move(clock) : Clock(system_ms)), save_timer_(executor_) {}

FeedbackService::~FeedbackService() {
    if (handle_)
        *handle_ = nullptr;
}

std::unique_ptr<FeedbackService> FeedbackService::create(asio::any_io_executor executor,
                                                         const Config& config, queue::Store& store,
                                                         daemon::Metrics& metrics,
                                                         std::string& error, Clock clock) {
    std::unique_ptr<FeedbackService> s(new FeedbackService(std::move(executor), store, clock));
    if (!s->open(config, metrics, error))
        return nullptr;
    return s;
}

bool FeedbackService::open(const Config& config, daemon::Metrics& metrics, std::string& error) {
    core::Diagnostics diag;
    policy_ = make_feedback_policy(config, diag);
    if (!policy_) {
        error = diag.to_string();
        return false;
    }
    suppressions_ = feedback::SuppressionList::open(store_, config.feedback.suppression, error);
    if (!suppressions_)
        return false;
    const auto table = store_.open_table(kFeedbackTable, error);
    if (!table)
        return false;
    table_ = *table;
    started_ = config;
    if (!config.events.log.path.empty()) {
        log_ = feedback::EventLog::open(config.events.log, error);
        if (!log_)
            return false;
    }
    outbox_ =
        feedback::WebhookOutbox::create(config.events.webhooks, store_, executor_, error, clock_);
    if (!outbox_)
        return false;
    restore_rates();
    metrics_ = std::make_unique<Metrics>(metrics.registry());
    // The refresher may outlive the service (Metrics is the App's): it looks
    // through a handle the destructor clears.
    auto handle = std::make_shared<FeedbackService*>(this);
    handle_ = handle;
    metrics.add_refresher([handle] {
        if (auto* self = *handle)
            self->refresh_metrics();
    });
    return true;
}

void FeedbackService::start() {
    outbox_->start();
    running_ = true;
    core::spawn(executor_, save_loop(this, ++generation_), "feedback.save");
}

void FeedbackService::stop() {
    if (running_) {
        running_ = false;
        ++generation_;
        save_timer_.cancel();
    }
    save_rates();
    outbox_->stop();
    if (log_)
        log_->flush();
}

bool FeedbackService::idle() const {
    return outbox_->idle();
}

void FeedbackService::apply(const Config& config, std::shared_ptr<const FeedbackPolicy> policy) {
    policy_ = std::move(policy);
    const auto warn = [](std::string_view what) {
        log::warning("config.restart_needed", "setting={} note=\"kept until restart\"", what);
    };
    // The outbox and the suppression list keep the values they started with.
    if (config.events.log.path != started_.events.log.path)
        warn("events.log");
    if (!same_webhooks(config.events.webhooks, started_.events.webhooks))
        warn("webhook");
    const auto& now = config.feedback.suppression;
    const auto& then = started_.feedback.suppression;
    if (now.soft_bounce_limit != then.soft_bounce_limit ||
        now.soft_bounce_window != then.soft_bounce_window)
        warn("feedback.soft_bounce_limit/soft_bounce_window");
}

void FeedbackService::reopen_log() {
    if (log_)
        log_->reopen();
}

void FeedbackService::flush_log() {
    if (log_)
        log_->flush();
}

asio::awaitable<void> FeedbackService::save_loop(FeedbackService* self, std::uint64_t generation) {
    while (self->running_ && self->generation_ == generation) {
        self->save_timer_.expires_after(kSaveInterval);
        auto [ec] = co_await self->save_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || !self->running_ || self->generation_ != generation)
            co_return;
        self->rates_.prune(time_point(self->clock_()));
        self->save_rates();
    }
}

void FeedbackService::restore_rates() {
    const auto blob = store_.kv_get(table_, kRatesKey);
    if (!blob)
        return;
    if (!rates_.restore(*blob)) {
        log::warning("feedback.rates_unreadable", "note=\"rates start from zero\"");
        return;
    }
    last_saved_ = *blob;
}

void FeedbackService::save_rates() {
    auto state = rates_.serialize();
    if (state == last_saved_)
        return;
    last_saved_ = state;
    std::vector<queue::Store::KvWrite> writes;
    writes.push_back({table_, kRatesKey, std::move(state)});
    store_.kv_write(std::move(writes), [](queue::CommitResult r) {
        if (r.status != queue::CommitStatus::Ok)
            log::error("feedback.rates_save_failed", "error={}", log::q(r.detail));
    });
}

// ---- RCPT -------------------------------------------------------------------

smtp::RecipientVerdict FeedbackService::check_recipient(const smtp::RecipientCheck& check) {
    const auto p = policy_;
    smtp::RecipientVerdict verdict;
    if (p->feedback_address(check.recipient)) {
        const auto rc = p->inbound->check_rcpt(check.recipient);
        if (rc.accept) {
            verdict.kind = smtp::RecipientVerdict::Kind::Local;
            return verdict;
        }
        log::info("feedback.rcpt_refused", "rcpt={} kind={} token={}", log::q(check.recipient),
                  feedback::rcpt_kind_name(rc.kind), feedback::token_status_name(rc.token));
        verdict.kind = smtp::RecipientVerdict::Kind::Refuse;
        verdict.reply = smtp::PolicyVerdict{false, rc.code, rc.enhanced,
                                            "<" + check.recipient + ">: " + rc.text};
        return verdict;
    }
    if (p->config.suppression_at_rcpt != SuppressionAtRcpt::Reject)
        return verdict;
    const auto entry = suppressions_->check(check.recipient, core::address_domain(check.mail_from));
    if (!entry)
        return verdict;
    verdict.kind = smtp::RecipientVerdict::Kind::Refuse;
    // RFC 3463 X.7.1: delivery not authorized, message refused (by policy).
    verdict.reply = smtp::PolicyVerdict{
        false, 550, "5.7.1",
        fmt::format("<{}>: Recipient address rejected: suppressed ({}{})", check.recipient,
                    feedback::suppression_reason_name(entry->reason),
                    entry->scope.empty() ? "" : " for " + entry->scope)};
    return verdict;
}

// ---- wiring -----------------------------------------------------------------

void FeedbackService::add_stages(Dispatcher& dispatcher) {
    add_stages_before_render(dispatcher);
    add_stages_after_render(dispatcher);
}

void FeedbackService::add_stages_before_render(Dispatcher& dispatcher) {
    dispatcher.add_stage(std::make_shared<SuppressionStage>(*this));
    dispatcher.add_stage(std::make_shared<VerpStage>(*this));
}

void FeedbackService::add_stages_after_render(Dispatcher& dispatcher) {
    dispatcher.add_stage(std::make_shared<UnsubscribeStage>(*this));
}

core::Deliverer& FeedbackService::observe(core::Deliverer& inner) {
    observer_ = std::make_unique<OutcomeObserver>(*this, inner);
    return *observer_;
}

queue::BounceSink& FeedbackService::observe_bounces(queue::BounceSink& inner) {
    bounce_observer_ = std::make_unique<BounceObserver>(*this, inner);
    return *bounce_observer_;
}

// ---- events and writes ------------------------------------------------------

void FeedbackService::emit(Event event, EmitOptions options, std::function<void(bool)> done) {
    if (event.id.empty())
        event.id = feedback::new_event_id();
    if (event.time_ms == 0)
        event.time_ms = clock_();
    if (log_)
        log_->append(event);
    metrics_->events[static_cast<std::size_t>(event.type)]->Increment();
    if (options.count) {
        rates_.record(event, time_point(event.time_ms));
        if (guardrail_)
            if (const auto signal = feedback::guardrail_signal(event))
                guardrail_(*signal);
        for (const auto& listener : event_listeners_)
            listener(event);
    }
    outbox_->publish(std::move(event), std::move(done));
}

asio::awaitable<bool> FeedbackService::emit_durable(Event event, EmitOptions options) {
    auto start = [this, event = std::move(event), options](std::function<void(bool)> done) mutable {
        emit(std::move(event), options, std::move(done));
    };
    return await_callback<bool>(std::move(start));
}

asio::awaitable<feedback::WriteResult> FeedbackService::suppress(feedback::SuppressionEntry entry) {
    auto start = [this, entry = std::move(entry)](feedback::WriteDone done) mutable {
        suppressions_->add(std::move(entry), std::move(done));
    };
    return await_callback<feedback::WriteResult>(std::move(start));
}

asio::awaitable<feedback::WriteResult> FeedbackService::record_soft_failure(std::string address,
                                                                            std::string source) {
    auto start = [this, address = std::move(address),
                  source = std::move(source)](feedback::WriteDone done) mutable {
        suppressions_->record_soft_failure(address, clock_(), std::move(source), std::move(done));
    };
    return await_callback<feedback::WriteResult>(std::move(start));
}

void FeedbackService::suppress_later(feedback::SuppressionEntry entry) {
    const auto address = entry.address;
    suppressions_->add(std::move(entry), [address](feedback::WriteResult r) {
        if (r.status != feedback::WriteStatus::Ok)
            log::error("feedback.suppress_failed", "rcpt={} error={}", log::q(address),
                       log::q(r.detail));
    });
}

void FeedbackService::record_soft_failure_later(std::string address, std::string source) {
    suppressions_->record_soft_failure(
        address, clock_(), std::move(source), [address](feedback::WriteResult r) {
            if (r.status != feedback::WriteStatus::Ok)
                log::error("feedback.soft_bounce_failed", "rcpt={} error={}", log::q(address),
                           log::q(r.detail));
            else if (r.suppressed)
                log::info("feedback.suppressed", "rcpt={} reason=soft-bounce failures={}",
                          log::q(address), r.failures);
        });
}

void FeedbackService::record_delivery_later(std::string address) {
    suppressions_->record_delivery(address, [address](feedback::WriteResult r) {
        if (r.status != feedback::WriteStatus::Ok)
            log::error("feedback.streak_reset_failed", "rcpt={} error={}", log::q(address),
                       log::q(r.detail));
    });
}

void FeedbackService::note_unsubscribe_delay(std::int64_t delay_ms) {
    const auto now = clock_();
    std::erase_if(unsubscribe_delays_,
                  [now](const auto& d) { return now - d.first > kDelayWindowMs; });
    if (unsubscribe_delays_.size() >= kMaxDelays) // keep the longest ones
        std::erase(
            unsubscribe_delays_,
            *std::min_element(unsubscribe_delays_.begin(), unsubscribe_delays_.end(),
                              [](const auto& a, const auto& b) { return a.second < b.second; }));
    unsubscribe_delays_.emplace_back(now, std::max<std::int64_t>(delay_ms, 0));
}

std::optional<core::Duration> FeedbackService::longest_unsubscribe_delay() const {
    const auto now = clock_();
    std::optional<std::int64_t> longest;
    for (const auto& [at, delay] : unsubscribe_delays_)
        if (now - at <= kDelayWindowMs)
            longest = std::max(longest.value_or(0), delay);
    if (!longest)
        return std::nullopt;
    return core::Duration(*longest);
}

bool FeedbackService::throttle_changed(std::uint64_t message_id, std::uint32_t index,
                                       const std::string& reason) {
    if (throttled_.size() >= kMaxThrottled)
        throttled_.clear(); // at worst one repeated event per held recipient
    auto [it, fresh] = throttled_.try_emplace({message_id, index}, reason);
    if (fresh)
        return true;
    if (it->second == reason)
        return false;
    it->second = reason;
    return true;
}

void FeedbackService::forget_throttle(std::uint64_t message_id, std::uint32_t index) {
    throttled_.erase({message_id, index});
}

} // namespace ember::daemon
