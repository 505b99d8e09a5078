#include "daemon/delivery_service.hpp"

#include "auth/dkim_keys.hpp"
#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/feedback_service.hpp"
#include "daemon/personalize_service.hpp"
#include "daemon/warmup_service.hpp"
#include "smtp/dsn.hpp"
#include "smtp/message_header.hpp"
#include "smtp/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A signed copy is reused by the other jobs of the same message (one per
// destination domain) for this long; a retry later signs again (fresh t=).
constexpr std::int64_t kSignatureReuseMs = 5 * 60 * 1000;
constexpr std::size_t kSignatureCacheEntries = 1024;

// Shutdown (DESIGN.md "Async": finish what is in DATA, then cancel hard).
// A session that has not begun sending content loses nothing when it is
// cut off (its recipients stay queued, smtp::cancelled()), so it gets only
// this long to finish: a tarpit that never greets must not hold a restart
// for greeting_timeout (5 minutes). One in DATA gets the whole grace,
// since cutting it off may deliver the message twice. A constant, not a
// key: it bounds shutdown only, and the grace itself is [server]
// shutdown_grace.
constexpr core::Duration kBeforeDataGrace = std::chrono::seconds(5);
// After the hard abort, how long the aborted jobs get to record their
// outcomes (an LMDB commit each; the aborted I/O completes at once).
constexpr core::Duration kAbortSettle = std::chrono::seconds(5);

// Polls the scheduler until it holds nothing or `deadline` passes; true
// when idle. Coroutine parameters are values (helper-common.md).
asio::awaitable<bool> idle_by(queue::Scheduler* scheduler,
                              std::chrono::steady_clock::time_point deadline) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!scheduler->idle() && std::chrono::steady_clock::now() < deadline) {
        timer.expires_after(std::chrono::milliseconds(50));
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec;
    }
    co_return scheduler->idle();
}

using SignatureKey = std::pair<std::uint64_t, std::string>; // message id, job variant

// The scheduler a committer-thread callback may notify, cleared when the
// service goes away so a late commit never touches a destroyed scheduler.
struct NotifyToken {
    std::mutex mutex;
    queue::Scheduler* scheduler = nullptr;

    void notify() {
        const std::lock_guard lock(mutex);
        if (scheduler != nullptr)
            scheduler->notify();
    }
};

} // namespace

class DeliveryService::Impl final : public core::Deliverer, public queue::BounceSink {
public:
    Impl(DeliveryService& owner, asio::any_io_executor executor, queue::Store& store,
         asio::thread_pool& pool, const Config& config)
        : owner_(owner), executor_(std::move(executor)), store_(store), pool_(pool),
          token_(std::make_shared<NotifyToken>()) {
        apply(config);
    }

    bool make_agent(const Config& config, std::string& error) {
        auto tls = smtp::make_client_tls_context(config.delivery.client.tls_ca_file, error);
        if (!tls)
            return false;
        if (agent_)
            agent_->close_idle();
        agent_ = std::make_shared<smtp::DeliveryAgent>(executor_, config.delivery.client,
                                                       *owner_.resolver_, std::move(tls),
                                                       *owner_.client_metrics_);
        std::erase_if(agents_, [](const auto& weak) { return weak.expired(); });
        agents_.push_back(agent_);
        return true;
    }

    // Every agent still in use: the current one and those that jobs started
    // before a reload still hold.
    template <typename F> void each_agent(F f) {
        for (const auto& weak : agents_) {
            if (const auto agent = weak.lock())
                f(*agent);
        }
    }

    void apply(const Config& config) {
        hostname_ = config.server.hostname;
        dsn_return_limit_ = config.delivery.dsn_return_limit.bytes;
        max_retry_time_ms_ = config.delivery.scheduler.retry.max_retry_time.count();
        signatures_.clear();
    }

    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        auto agent = agent_; // a reload may swap it; this job keeps its own
        const auto signer = owner_.signer_;
        if (signer && !signer->keys().empty()) {
            SignatureKey key{job.message_id, job.variant}; // a named local (g++ 12)
            auto content = co_await signed_content(std::move(key), job.content, signer);
            job.content = std::move(content);
        }
        auto outcomes = co_await agent->deliver(std::move(job));
        co_return outcomes;
    }

    void failed(const queue::Message& message, std::vector<std::uint32_t> indexes) override {
        queue_dsn(message, indexes, smtp::DsnKind::Failure);
    }

    void delayed(const queue::Message& message, std::vector<std::uint32_t> indexes) override {
        queue_dsn(message, indexes, smtp::DsnKind::Delay);
    }

    void close_idle() {
        if (agent_)
            agent_->close_idle();
    }

    std::shared_ptr<NotifyToken> token() const { return token_; }

private:
    // The message with its DKIM-Signature fields prepended, signed once per
    // message content on the worker pool (RSA signing costs ~1 ms of CPU).
    // Keyed by message and dispatch variant: two copies of one message
    // (VERP sender, List-Unsubscribe) never share a signature.
    asio::awaitable<std::shared_ptr<const std::string>>
    signed_content(SignatureKey id, std::shared_ptr<const std::string> content,
                   std::shared_ptr<const auth::DkimSigner> signer) {
        const auto now = unix_ms();
        if (const auto it = signatures_.find(id);
            it != signatures_.end() && now - it->second.at_ms < kSignatureReuseMs)
            co_return it->second.content;
        const auto froms = smtp::from_domains(smtp::parse_header_block(*content));
        std::string from = froms.empty() ? std::string() : froms.front();
        auto task = [signer, content, from = std::move(from), now] {
            return signer->sign(*content, from, now / 1000);
        };
        std::string signature = co_await core::offload(pool_.get_executor(), std::move(task));
        std::shared_ptr<const std::string> result = content;
        if (!signature.empty())
            result = std::make_shared<const std::string>(signature + *content);
        if (signatures_.size() >= kSignatureCacheEntries)
            signatures_.erase(signatures_.begin()); // the oldest id: ids grow with time
        signatures_[id] = Signed{result, now};
        co_return result;
    }

    smtp::DsnInput dsn_input(const queue::Message& m, const std::vector<std::uint32_t>& indexes,
                             smtp::DsnKind kind, std::string_view original) const {
        smtp::DsnInput in;
        in.kind = kind;
        in.reporting_mta = hostname_;
        in.queue_id = queue::format_queue_id(m.id);
        in.envid = m.envelope.envid;
        in.ret = m.envelope.ret;
        in.original_sender = m.envelope.mail_from;
        in.arrival_unix = m.submission.received_at_ms / 1000;
        in.now_unix = unix_ms() / 1000;
        in.original_message = original;
        in.max_returned_size = dsn_return_limit_;
        for (const auto i : indexes) {
            if (i >= m.recipients.size())
                continue;
            const auto& r = m.recipients[i];
            smtp::DsnRecipient d;
            d.final_recipient = r.spec.address;
            d.original_recipient = r.spec.orcpt;
            d.outcome = r.outcome;
            d.last_attempt_unix = r.last_attempt_ms / 1000;
            // Time held by warm-up does not count (queue/retry.hpp expiry_ms).
            d.will_retry_until_unix =
                (m.submission.received_at_ms + max_retry_time_ms_ + r.held_ms) / 1000;
            in.recipients.push_back(std::move(d));
        }
        return in;
    }

    // Builds the DSN and hands it to the store before returning: the store
    // commits in order, so the DSN is durable no later than the recipients'
    // "DSN sent" state the scheduler writes next.
    void queue_dsn(const queue::Message& m, const std::vector<std::uint32_t>& indexes,
                   smtp::DsnKind kind) {
        const auto original = store_.load_content(m.id);
        const auto dsn = smtp::build_dsn(dsn_input(m, indexes, kind, original.value_or("")));
        if (!dsn)
            return; // null sender: never bounce a bounce
        queue::Message record;
        record.id = store_.next_id();
        record.envelope.body = dsn->body;
        record.envelope.smtputf8 = dsn->smtputf8;
        record.envelope.recipients = {core::RecipientSpec{dsn->recipient, "", 0}};
        record.submission.listener = "dsn";
        record.submission.received_at_ms = unix_ms();
        const auto dsn_id = queue::format_queue_id(record.id);
        log::info("dsn.queued", "id={} original={} kind={} to=<{}> recipients={}", dsn_id,
                  queue::format_queue_id(m.id),
                  kind == smtp::DsnKind::Failure ? "failure" : "delay", log::q(dsn->recipient),
                  indexes.size());
        store_.commit(
            std::move(record), dsn->content, [token = token_, dsn_id](queue::CommitResult result) {
                if (result.status == queue::CommitStatus::Ok) {
                    token->notify();
                    return;
                }
                log::error("dsn.commit_failed", "id={} error={}", dsn_id, log::q(result.detail));
            });
    }

    struct Signed {
        std::shared_ptr<const std::string> content;
        std::int64_t at_ms = 0;
    };

    DeliveryService& owner_;
    asio::any_io_executor executor_;
    queue::Store& store_;
    asio::thread_pool& pool_;
    std::shared_ptr<NotifyToken> token_;
    std::shared_ptr<smtp::DeliveryAgent> agent_;
    std::vector<std::weak_ptr<smtp::DeliveryAgent>> agents_;
    std::map<SignatureKey, Signed> signatures_;
    std::string hostname_;
    std::uint64_t dsn_return_limit_ = 0;
    std::int64_t max_retry_time_ms_ = 0;
};

std::unique_ptr<DeliveryService>
DeliveryService::create(asio::any_io_executor executor, const Config& config, queue::Store& store,
                        prometheus::Registry& registry, asio::thread_pool& pool, std::string& error,
                        WarmupService* warmup, FeedbackService* feedback,
                        PersonalizeService* personalize) {
    std::unique_ptr<DeliveryService> s(new DeliveryService());
    s->resolver_ = dns::make_resolver(executor, config.dns, error);
    if (!s->resolver_)
        return nullptr;
    core::Diagnostics diag;
    s->signer_ = load_signer(config, diag);
    if (!diag.empty()) {
        error = diag.to_string();
        return nullptr;
    }
    s->hold_ = config.delivery.hold;
    s->client_metrics_ = std::make_unique<smtp::ClientMetrics>(registry);
    s->impl_ = std::make_unique<Impl>(*s, executor, store, pool, config);
    if (!s->impl_->make_agent(config, error))
        return nullptr;
    core::Deliverer* deliverer = s->impl_.get();
    queue::BounceSink* bounces = s->impl_.get();
    if (feedback != nullptr || personalize != nullptr) {
        s->dispatcher_ = std::make_unique<Dispatcher>(*deliverer, unix_ms);
        if (feedback != nullptr)
            feedback->add_stages_before_render(*s->dispatcher_);
        if (personalize != nullptr)
            personalize->add_stages(*s->dispatcher_);
        if (feedback != nullptr)
            feedback->add_stages_after_render(*s->dispatcher_);
        deliverer = s->dispatcher_.get();
    }
    if (warmup != nullptr) {
        s->pacing_ = std::make_unique<PacingDeliverer>(*warmup, *deliverer);
        // When the cap is scarce, the most engaged contacts go first.
        if (personalize != nullptr)
            s->pacing_->set_priority([&contacts = personalize->contacts()](std::string_view address,
                                                                           std::int64_t now_ms) {
                return contacts.priority(address, now_ms);
            });
        deliverer = s->pacing_.get();
    }
    if (feedback != nullptr) {
        deliverer = &feedback->observe(*deliverer);
        bounces = &feedback->observe_bounces(*bounces);
    }
    s->scheduler_ = std::make_unique<queue::Scheduler>(
        executor, store, *deliverer, config.delivery.scheduler, nullptr, nullptr, *bounces);
    const auto token = s->impl_->token();
    const std::lock_guard lock(token->mutex);
    token->scheduler = s->scheduler_.get();
    return s;
}

DeliveryService::~DeliveryService() {
    if (impl_) {
        const auto token = impl_->token();
        const std::lock_guard lock(token->mutex);
        token->scheduler = nullptr;
    }
}

void DeliveryService::start() {
    if (hold_) {
        log::warning("delivery.held", "note=\"[delivery] hold = true: mail is queued, not sent\"");
        return;
    }
    scheduler_->start();
}

void DeliveryService::notify() {
    scheduler_->notify();
}

// No new job and no new connection at once; sessions before DATA are cut
// off after kBeforeDataGrace, the rest after `grace`. Cut-off recipients
// are recorded as smtp::cancelled() (Throttled): still queued, no retry
// spent, due again right after a restart; never failed.
asio::awaitable<void> DeliveryService::stop(core::Duration grace) {
    scheduler_->stop();
    impl_->each_agent([](smtp::DeliveryAgent& a) { a.begin_shutdown(); });
    const auto start = std::chrono::steady_clock::now();
    const bool early =
        co_await idle_by(scheduler_.get(), start + std::min(grace, kBeforeDataGrace));
    if (!early) {
        log::info("delivery.stop_aborting", "jobs={} note=\"sessions not in DATA are cut off\"",
                  scheduler_->jobs_in_flight());
        impl_->each_agent([](smtp::DeliveryAgent& a) { a.abort_sessions(false); });
    }
    const bool drained = co_await idle_by(scheduler_.get(), start + grace);
    if (!drained) {
        log::warning("delivery.stop_grace_expired", "jobs={}", scheduler_->jobs_in_flight());
        impl_->each_agent([](smtp::DeliveryAgent& a) { a.abort_sessions(true); });
        const bool settled =
            co_await idle_by(scheduler_.get(), std::chrono::steady_clock::now() + kAbortSettle);
        if (!settled)
            log::warning("delivery.stop_unsettled", "jobs={}", scheduler_->jobs_in_flight());
    }
    impl_->close_idle();
}

void DeliveryService::reload(const Config& config, std::shared_ptr<const auth::DkimSigner> signer) {
    signer_ = std::move(signer);
    impl_->apply(config);
    std::string error;
    if (!impl_->make_agent(config, error))
        log::error("delivery.reload_failed", "error={} note=\"old delivery settings kept\"",
                   log::q(error));
    scheduler_->reconfigure(config.delivery.scheduler);
    if (config.delivery.hold != hold_) {
        hold_ = config.delivery.hold;
        if (hold_)
            scheduler_->stop();
        start();
    }
}

std::shared_ptr<const auth::DkimSigner> load_signer(const Config& config, core::Diagnostics& diag) {
    if (config.dkim.empty())
        return std::make_shared<const auth::DkimSigner>();
    auto keys = auth::load_dkim_keys(config.dkim, config.file, diag);
    if (!keys)
        return nullptr;
    return std::make_shared<const auth::DkimSigner>(std::move(*keys));
}

} // namespace ember::daemon
