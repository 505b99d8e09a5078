#include "feedback/webhooks.hpp"

#include "core/async.hpp"
#include "core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <future>
#include <map>
#include <set>

namespace ember::feedback {

namespace asio = boost::asio;
namespace log = core::log;
using asio::awaitable;
using KvWrite = queue::Store::KvWrite;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kPruneChunk = 1000; // deletes per transaction
constexpr std::uint64_t kDropChunk = 10000; // expired events skipped per read
constexpr std::uint32_t kMaxBatch = 10000;
constexpr std::string_view kNextKey = "n";

std::string be64(std::uint64_t value) {
    std::string out(8, '\0');
    for (int i = 7; i >= 0; --i, value >>= 8)
        out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
    return out;
}

std::uint64_t read_be64(std::string_view bytes) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 8 && i < bytes.size(); ++i)
        value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    return value;
}

std::string event_key(std::uint64_t seq) {
    return "e" + be64(seq);
}

// A fixed-size key whatever the URL's length (LMDB keys stop at 511 octets).
std::string cursor_key(std::string_view url) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    (void)EVP_Digest(url.data(), url.size(), digest.data(), &size, EVP_sha256(), nullptr);
    return "c" + std::string(reinterpret_cast<const char*>(digest.data()), 16);
}

// For logs and status: the query may carry an access token.
std::string label_for(std::string_view url) {
    std::string ignored;
    const auto target = parse_webhook_url(url, ignored);
    if (!target)
        return "(unparsable url)";
    const auto path = target->target.substr(0, target->target.find('?'));
    return fmt::format("{}://{}{}", target->tls ? "https" : "http", target->host_header, path);
}

// Not a coroutine (see core::offload): the initiation runs in Asio's frame.
awaitable<queue::CommitStatus> kv_write_async(queue::Store& store, std::vector<KvWrite> writes) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(queue::CommitStatus)>(
        [&store](auto handler, std::vector<KvWrite> batch) {
            // std::function needs a copyable callable: share the one-shot handler.
            using Handler = decltype(handler);
            auto home = asio::get_associated_executor(handler);
            auto shared = std::make_shared<Handler>(std::move(handler));
            auto work = std::make_shared<asio::executor_work_guard<decltype(home)>>(home);
            store.kv_write(std::move(batch), [shared, work](const queue::CommitResult& result) {
                const auto status = result.status;
                asio::post(work->get_executor(),
                           [shared, work, status]() { std::move (*shared)(status); });
            });
        },
        asio::use_awaitable, std::move(writes));
}

queue::CommitStatus kv_write_blocking(queue::Store& store, std::vector<KvWrite> writes) {
    std::promise<queue::CommitStatus> promise;
    auto future = promise.get_future();
    store.kv_write(std::move(writes), [&promise](const queue::CommitResult& result) {
        promise.set_value(result.status);
    });
    return future.get();
}

struct RunningGuard {
    std::atomic<int>& running;
    ~RunningGuard() { --running; }
};

void check_endpoint(const WebhookEndpointConfig& ep, std::size_t index,
                    std::vector<std::string>& problems) {
    const auto name = fmt::format("webhook[{}]", index);
    std::string error;
    const auto target = parse_webhook_url(ep.url, error);
    if (!target)
        problems.push_back(fmt::format("{}.url: {}", name, error));
    if (ep.secret.empty())
        problems.push_back(fmt::format("{}.secret: required (it keys X-Ember-Signature)", name));
    if (ep.batch_size < 1 || ep.batch_size > kMaxBatch)
        problems.push_back(fmt::format("{}.batch_size: must be 1..{}", name, kMaxBatch));
    if (ep.max_delay.count() < 0)
        problems.push_back(fmt::format("{}.max_delay: must not be negative", name));
    if (ep.timeout.count() <= 0)
        problems.push_back(fmt::format("{}.timeout: must be positive", name));
    if (target && target->tls && !make_webhook_tls_context(ep.ca_file, error))
        problems.push_back(fmt::format("{}.ca_file: {}", name, error));
}

} // namespace

struct WebhookOutbox::Endpoint {
    Endpoint(WebhookEndpointConfig c, HttpTarget t, const asio::strand<asio::any_io_executor>& s)
        : config(std::move(c)), target(std::move(t)), key(cursor_key(config.url)),
          label(label_for(config.url)), wake(s), retry(s) {}

    WebhookEndpointConfig config;
    HttpTarget target;
    std::shared_ptr<asio::ssl::context> tls;
    std::string key;   // its cursor's key in the table
    std::string label; // the URL without its query
    std::size_t index = 0;
    std::uint64_t cursor = 0;
    asio::steady_timer wake;  // publish() cancels it
    asio::steady_timer retry; // the backoff: only stop() cuts it short
    bool wake_pending = false;
    std::uint32_t failures = 0;
    WebhookEndpointStatus status;
};

struct WebhookOutbox::Batch {
    std::string body; // JSON array of the events
    std::size_t count = 0;
    std::uint64_t last_seq = 0;
    std::int64_t oldest_ms = 0;
    std::uint64_t dropped = 0; // expired events at the front
    std::uint64_t dropped_upto = 0;
    std::int64_t dropped_oldest_ms = 0;
};

core::Duration webhook_backoff(std::uint32_t attempt, core::Duration initial, core::Duration cap,
                               double unit) {
    const std::int64_t cap_ms = std::max<std::int64_t>(cap.count(), 1);
    std::int64_t base = std::clamp<std::int64_t>(initial.count(), 1, cap_ms);
    for (std::uint32_t i = 1; i < attempt && base < cap_ms; ++i)
        base = std::min(base * 2, cap_ms);
    const double u = std::clamp(unit, 0.0, 1.0);
    const std::int64_t half = base / 2;
    return core::Duration(half + static_cast<std::int64_t>(u * static_cast<double>(base - half)));
}

std::vector<std::string> check_webhook_config(const WebhookConfig& config) {
    std::vector<std::string> problems;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
        check_endpoint(config.endpoints[i], i, problems);
        if (!seen.insert(config.endpoints[i].url).second)
            problems.push_back(fmt::format("webhook[{}].url: listed twice", i));
    }
    if (config.max_age.count() <= 0)
        problems.emplace_back("max_age: must be positive");
    if (config.retry_initial.count() <= 0)
        problems.emplace_back("retry_initial: must be positive");
    if (config.retry_max < config.retry_initial)
        problems.emplace_back("retry_max: must not be below retry_initial");
    if (config.table.empty())
        problems.emplace_back("table: must not be empty");
    return problems;
}

WebhookOutbox::WebhookOutbox(WebhookConfig config, queue::Store& store,
                             const asio::any_io_executor& executor, Clock clock)
    : config_(std::move(config)), store_(store), strand_(asio::make_strand(executor)),
      clock_(std::move(clock)), random_(std::random_device{}()) {}

WebhookOutbox::~WebhookOutbox() = default;

std::shared_ptr<WebhookOutbox> WebhookOutbox::create(WebhookConfig config, queue::Store& store,
                                                     const asio::any_io_executor& executor,
                                                     std::string& error, Clock clock) {
    const auto problems = check_webhook_config(config);
    if (!problems.empty()) {
        error = fmt::format("{}", fmt::join(problems, "; "));
        return nullptr;
    }
    std::shared_ptr<WebhookOutbox> outbox(
        new WebhookOutbox(std::move(config), store, executor, std::move(clock)));
    for (const auto& ep : outbox->config_.endpoints) {
        std::string ignored;
        auto target = parse_webhook_url(ep.url, ignored);
        auto endpoint = std::make_unique<Endpoint>(ep, std::move(*target), outbox->strand_);
        if (endpoint->target.tls)
            endpoint->tls = make_webhook_tls_context(ep.ca_file, ignored);
        endpoint->index = outbox->endpoints_.size();
        endpoint->status.url = endpoint->label;
        outbox->endpoints_.push_back(std::move(endpoint));
    }
    outbox->status_.resize(outbox->endpoints_.size());
    if (!outbox->load(error))
        return nullptr;
    for (const auto& ep : outbox->endpoints_)
        outbox->update_status(*ep);
    return outbox;
}

// Cursors of configured URLs are kept; new URLs start at the newest event;
// cursors of URLs no longer configured are deleted (their backlog goes).
bool WebhookOutbox::load(std::string& error) {
    const auto table = store_.open_table(config_.table, error);
    if (!table)
        return false;
    table_ = *table;
    if (const auto next = store_.kv_get(table_, kNextKey); next && next->size() == 8)
        next_seq_ = std::max<std::uint64_t>(read_be64(*next), 1);
    published_upto_ = next_seq_ - 1;

    std::map<std::string, std::pair<std::uint64_t, std::string>> stored;
    store_.kv_scan(table_, "c", "", [&](std::string_view key, std::string_view value) {
        if (value.size() >= 8)
            stored[std::string(key)] = {read_be64(value), std::string(value.substr(8))};
        return true;
    });
    std::vector<KvWrite> writes;
    for (auto& ep : endpoints_) {
        if (const auto it = stored.find(ep->key); it != stored.end()) {
            ep->cursor = it->second.first;
            stored.erase(it);
            continue;
        }
        ep->cursor = next_seq_ - 1;
        writes.push_back(KvWrite{table_, ep->key, be64(ep->cursor) + ep->config.url});
        log::info("webhook.endpoint_added", "url={} starts_after={}", log::q(ep->label),
                  ep->cursor);
    }
    for (const auto& [key, entry] : stored) {
        writes.push_back(KvWrite{table_, key, std::nullopt});
        log::warning("webhook.endpoint_removed", "url={} undelivered={}",
                     log::q(label_for(entry.second)),
                     next_seq_ - 1 > entry.first ? next_seq_ - 1 - entry.first : 0);
    }
    pruned_upto_ = next_seq_ - 1;
    store_.kv_scan(table_, "e", "", [&](std::string_view key, std::string_view) {
        pruned_upto_ = read_be64(key.substr(1)) - 1;
        return false;
    });
    if (writes.empty())
        return true;
    const auto status = kv_write_blocking(store_, std::move(writes));
    if (status != queue::CommitStatus::Ok)
        error = "cannot write the webhook cursors to the store";
    return status == queue::CommitStatus::Ok;
}

void WebhookOutbox::start() {
    running_ += static_cast<int>(endpoints_.size());
    asio::post(strand_, [self = shared_from_this()] {
        for (const auto& ep : self->endpoints_)
            core::spawn(self->strand_, self->send_loop(self, ep.get()),
                        "webhook.send " + ep->label);
        self->start_pruner();
    });
}

void WebhookOutbox::stop() {
    if (stopped_.exchange(true))
        return;
    asio::post(strand_, [self = shared_from_this()] {
        self->stopping_ = true;
        for (const auto& ep : self->endpoints_) {
            ep->wake.cancel();
            ep->retry.cancel();
        }
    });
}

bool WebhookOutbox::idle() const {
    return stopped_ && running_ == 0;
}

// O(1) for /metrics: the table holds the events, one cursor per configured
// URL (load() wrote or kept each, and deleted the others) and the next seq.
std::uint64_t WebhookOutbox::stored() const {
    const std::uint64_t entries = store_.kv_count(table_);
    const std::uint64_t meta =
        endpoints_.size() + (store_.kv_get(table_, kNextKey).has_value() ? 1 : 0);
    return entries > meta ? entries - meta : 0;
}

std::vector<WebhookEndpointStatus> WebhookOutbox::status() const {
    std::lock_guard lock(status_mutex_);
    auto out = status_;
    const auto head = published_upto_.load();
    for (auto& s : out)
        s.pending = head > s.cursor ? head - s.cursor : 0;
    return out;
}

void WebhookOutbox::update_status(const Endpoint& ep) {
    std::lock_guard lock(status_mutex_);
    status_[ep.index] = ep.status;
    status_[ep.index].cursor = ep.cursor;
}

void WebhookOutbox::publish(Event event, std::function<void(bool stored)> done) {
    std::vector<Event> events;
    events.push_back(std::move(event));
    publish(std::move(events), std::move(done));
}

void WebhookOutbox::publish(std::vector<Event> events, std::function<void(bool stored)> done) {
    if (endpoints_.empty() || events.empty()) {
        if (done)
            done(true);
        return;
    }
    std::vector<KvWrite> writes;
    writes.reserve(events.size() + 1);
    // Seqs are handed out and queued to the committer under one lock, and
    // the committer writes in queue order, so a reader never sees seq n+1
    // without seq n (the senders rely on it to keep order).
    std::lock_guard lock(publish_mutex_);
    for (auto& e : events) {
        if (e.id.empty())
            e.id = new_event_id();
        if (e.time_ms == 0)
            e.time_ms = now_ms();
        const auto time = static_cast<std::uint64_t>(std::max<std::int64_t>(e.time_ms, 0));
        writes.push_back(KvWrite{table_, event_key(next_seq_++), be64(time) + encode_event(e)});
    }
    writes.push_back(KvWrite{table_, std::string(kNextKey), be64(next_seq_)});
    const auto last = next_seq_ - 1;
    store_.kv_write(std::move(writes), [self = shared_from_this(), last,
                                        done = std::move(done)](const queue::CommitResult& result) {
        const bool ok = result.status == queue::CommitStatus::Ok;
        if (ok) {
            auto seen = self->published_upto_.load();
            while (seen < last && !self->published_upto_.compare_exchange_weak(seen, last)) {
            }
            self->notify();
        } else {
            log::error("webhook.store_failed", "last_seq={} error={}", last, log::q(result.detail));
        }
        if (done)
            done(ok);
    });
}

void WebhookOutbox::notify() {
    if (stopped_)
        return;
    asio::post(strand_, [self = shared_from_this()] {
        for (const auto& ep : self->endpoints_) {
            ep->wake_pending = true;
            ep->wake.cancel();
        }
    });
}

std::int64_t WebhookOutbox::now_ms() const {
    if (clock_)
        return clock_();
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::uint64_t WebhookOutbox::min_cursor() const {
    if (endpoints_.empty())
        return published_upto_.load();
    std::uint64_t low = UINT64_MAX;
    for (const auto& ep : endpoints_)
        low = std::min(low, ep->cursor);
    return low;
}

WebhookOutbox::Batch WebhookOutbox::read_batch(const Endpoint& ep) const {
    Batch b;
    const std::int64_t now = now_ms();
    const std::int64_t max_age = config_.max_age.count();
    b.body = "[";
    store_.kv_scan(table_, "e", event_key(ep.cursor + 1),
                   [&](std::string_view key, std::string_view value) {
                       const std::uint64_t seq = read_be64(key.substr(1));
                       const auto time = static_cast<std::int64_t>(read_be64(value));
                       if (b.count == 0 && now - time > max_age) {
                           b.dropped_oldest_ms = b.dropped == 0 ? time : b.dropped_oldest_ms;
                           ++b.dropped;
                           b.dropped_upto = seq;
                           return b.dropped < kDropChunk;
                       }
                       if (b.count == 0)
                           b.oldest_ms = time;
                       else
                           b.body += ',';
                       b.body.append(value.substr(std::min<std::size_t>(8, value.size())));
                       ++b.count;
                       b.last_seq = seq;
                       return b.count < ep.config.batch_size;
                   });
    b.body += ']';
    return b;
}

// One sender per URL. Each turn reads a batch after the cursor from the
// table: it skips what max_age expired, waits when the batch is empty or
// not yet due, else posts it; a 2xx moves the cursor, anything else backs off.
awaitable<void> WebhookOutbox::send_loop(std::shared_ptr<WebhookOutbox> self, Endpoint* ep) {
    const RunningGuard guard{self->running_};
    while (!stopping_) {
        const Batch batch = read_batch(*ep);
        if (batch.dropped > 0) {
            log::warning("webhook.events_expired", "url={} dropped={} oldest_ms={} max_age={}",
                         log::q(ep->label), batch.dropped, batch.dropped_oldest_ms,
                         core::format_duration(config_.max_age));
            ep->status.dropped += batch.dropped;
            co_await save_cursor(ep, batch.dropped_upto);
            start_pruner();
            continue;
        }
        if (batch.count == 0) {
            co_await wait(ep, true, std::nullopt);
            continue;
        }
        const std::int64_t due = batch.oldest_ms + ep->config.max_delay.count();
        const std::int64_t now = now_ms();
        if (batch.count < ep->config.batch_size && now < due) {
            co_await wait(ep, true, core::Duration(due - now));
            continue;
        }
        auto posting = post_batch(ep, batch.body);
        const PostResult result = co_await std::move(posting);
        after_post(*ep, batch, result);
        if (result.ok()) {
            co_await save_cursor(ep, batch.last_seq);
            start_pruner();
            continue;
        }
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        const auto delay =
            webhook_backoff(ep->failures, config_.retry_initial, config_.retry_max, unit(random_));
        log::warning("webhook.post_failed",
                     "url={} events={} status={} error={} attempt={} "
                     "retry_in={}",
                     log::q(ep->label), batch.count, result.status, log::q(result.error),
                     ep->failures, core::format_duration(delay));
        co_await wait(ep, false, delay);
    }
}

void WebhookOutbox::after_post(Endpoint& ep, const Batch& batch, const PostResult& result) {
    if (result.ok()) {
        if (ep.failures > 0)
            log::info("webhook.recovered", "url={} after_failures={}", log::q(ep.label),
                      ep.failures);
        log::debug("webhook.posted", "url={} events={} last_seq={} status={}", log::q(ep.label),
                   batch.count, batch.last_seq, result.status);
        ep.failures = 0;
        ep.status.delivered += batch.count;
        ep.status.last_error.clear();
    } else {
        ++ep.failures;
        ++ep.status.failures;
        ep.status.last_error =
            result.status != 0 ? fmt::format("HTTP {}", result.status) : result.error;
    }
    ep.status.consecutive_failures = ep.failures;
    update_status(ep);
}

awaitable<PostResult> WebhookOutbox::post_batch(Endpoint* ep, std::string body) {
    // The signature's clock is the real one whatever clock_ says: receivers
    // compare t with their own time.
    const auto unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
    HttpHeaders headers;
    headers.emplace_back("X-Ember-Signature",
                         webhook_signature(ep->config.secret, unix_seconds, body));
    HttpTarget target = ep->target;
    auto tls = ep->tls;
    auto op = post_json(strand_, std::move(target), std::move(tls), std::move(headers),
                        std::move(body), ep->config.timeout);
    const PostResult result = co_await std::move(op);
    co_return result;
}

awaitable<void> WebhookOutbox::save_cursor(Endpoint* ep, std::uint64_t seq) {
    // The in-memory cursor moves even if the write fails: the events were
    // acknowledged, and a restart merely sends them again (at least once).
    ep->cursor = seq;
    update_status(*ep);
    std::vector<KvWrite> writes;
    writes.push_back(KvWrite{table_, ep->key, be64(seq) + ep->config.url});
    auto op = kv_write_async(store_, std::move(writes));
    const auto status = co_await std::move(op);
    if (status != queue::CommitStatus::Ok)
        log::error("webhook.cursor_write_failed", "url={} seq={}", log::q(ep->label), seq);
}

// `wakeable` waits end early when publish() stored something; backoff
// waits do not. stop() ends both.
awaitable<void> WebhookOutbox::wait(Endpoint* ep, bool wakeable,
                                    std::optional<core::Duration> limit) {
    if (stopping_)
        co_return;
    if (wakeable && ep->wake_pending) {
        ep->wake_pending = false;
        co_return;
    }
    auto& timer = wakeable ? ep->wake : ep->retry;
    if (limit)
        timer.expires_after(*limit);
    else
        timer.expires_at(asio::steady_timer::time_point::max());
    auto [ec] = co_await timer.async_wait(kTuple);
    (void)ec;
    if (wakeable)
        ep->wake_pending = false;
}

void WebhookOutbox::start_pruner() {
    if (pruning_ || stopping_ || min_cursor() <= pruned_upto_)
        return;
    pruning_ = true;
    ++running_;
    core::spawn(strand_, prune_loop(shared_from_this()), "webhook.prune");
}

// Deletes the events every URL has taken, in bounded transactions.
awaitable<void> WebhookOutbox::prune_loop(std::shared_ptr<WebhookOutbox> self) {
    const RunningGuard guard{self->running_};
    while (!stopping_) {
        const std::uint64_t target = min_cursor();
        if (target <= pruned_upto_)
            break;
        const std::uint64_t end = std::min(target, pruned_upto_ + kPruneChunk);
        std::vector<KvWrite> writes;
        for (std::uint64_t seq = pruned_upto_ + 1; seq <= end; ++seq)
            writes.push_back(KvWrite{table_, event_key(seq), std::nullopt});
        auto op = kv_write_async(store_, std::move(writes));
        const auto status = co_await std::move(op);
        if (status != queue::CommitStatus::Ok) {
            log::error("webhook.prune_failed", "from_seq={} to_seq={}", pruned_upto_ + 1, end);
            break;
        }
        pruned_upto_ = end;
    }
    pruning_ = false;
}

} // namespace ember::feedback
