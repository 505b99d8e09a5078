#pragma once
// The webhook outbox: every published event is stored in an LMDB table of
// the queue's Store before it counts as published, then posted in batches
// to every configured URL, signed (feedback/webhook_client.hpp documents
// X-Ember-Signature), and deleted only once every URL acknowledged it with
// a 2xx. A webhook outage therefore loses nothing, and a restart resumes
// where each URL left off.
//
// Table layout (Store::open_table(config.table); big-endian numbers so key
// order is numeric order):
//   'e' seq(8)         -> time_ms(8) + the event's JSON line (feedback/events.hpp)
//   'c' sha256(url)(16) -> last acknowledged seq(8) + url: one cursor per URL
//   'n'                -> the next seq(8), written with every publish
//
// Delivery per URL: in seq order, each event once, as a JSON array body
// ([event, event, ...]). A batch goes when it holds batch_size events or its
// oldest event is max_delay old. A failure (no answer, timeout, non-2xx)
// retries the same events after an exponential backoff with jitter
// (retry_initial doubling up to retry_max); other URLs go on meanwhile. The
// cursor is written after the 2xx, so a crash between the two sends that
// batch again: delivery is at least once and receivers drop duplicates by
// the event `id`. Events older than max_age are dropped for a URL that has
// not taken them yet, with a log line (webhook.events_expired).
//
// URLs added to the config start at the newest event (no history); URLs
// removed from it lose their cursor at create(), so their backlog is
// deleted (logged). Memory is bounded: a sender holds one batch, read from
// LMDB; the backlog stays on disk.
//
// Threads: publish(), stop(), status() and stored() are thread-safe.
// The senders run on a strand of the given executor, read the table there
// (LMDB reads, no locks) and write through the Store's group committer.
// create() blocks for one commit (start-up only). The Store must outlive
// the outbox; call stop() and let the executor run until idle() before
// destroying the io_context or the Store. stop() does not cut a POST in
// flight: it ends within that endpoint's timeout.

#include "core/units.hpp"
#include "feedback/events.hpp"
#include "feedback/webhook_client.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace ember::feedback {

struct WebhookEndpointConfig {
    std::string url;                // http:// or https://
    std::string secret;             // HMAC key for X-Ember-Signature; required
    std::uint32_t batch_size = 100; // events per POST, 1..10000
    core::Duration max_delay{1000}; // the oldest event waits at most this for a full batch
    core::Duration timeout{10000};  // one POST: resolve, connect, TLS, write, response
    std::string ca_file;            // https trust anchors (PEM); "" = the system store
};

struct WebhookConfig {
    std::vector<WebhookEndpointConfig> endpoints;
    core::Duration max_age{std::chrono::hours(24 * 7)}; // then undelivered events are dropped
    core::Duration retry_initial{1000};                 // first backoff, doubling...
    core::Duration retry_max{std::chrono::minutes(10)}; // ...up to this
    std::string table = "webhooks";                     // the Store table
};

struct WebhookEndpointStatus {
    std::string url;             // without its query (which may hold a token)
    std::uint64_t cursor = 0;    // last acknowledged seq
    std::uint64_t pending = 0;   // events published after the cursor
    std::uint64_t delivered = 0; // events acknowledged since start
    std::uint64_t dropped = 0;   // events dropped for max_age since start
    std::uint64_t failures = 0;  // failed POSTs since start
    std::uint32_t consecutive_failures = 0;
    std::string last_error; // "" after a success
};

// The delay before retry number `attempt` (1 after the first failure):
// base = min(cap, initial * 2^(attempt-1)), and the delay is uniform in
// [base/2, base] as `unit` goes over [0, 1) ("equal jitter": retries of
// many senders spread out, none comes sooner than half the base). Pure.
[[nodiscard]] core::Duration webhook_backoff(std::uint32_t attempt, core::Duration initial,
                                             core::Duration cap, double unit);

// Checks the config without touching the network or the store: URLs,
// secrets, bounds, duplicates, CA files. Empty when fine, else one line per
// problem naming the endpoint by its index ("webhook[1].url: ...").
[[nodiscard]] std::vector<std::string> check_webhook_config(const WebhookConfig& config);

class WebhookOutbox : public std::enable_shared_from_this<WebhookOutbox> {
public:
    using Clock = std::function<std::int64_t()>; // unix ms; tests inject one

    // Opens the table, loads the cursors, forgets removed URLs (one
    // blocking commit). nullptr and `error` on a bad config or store error.
    [[nodiscard]] static std::shared_ptr<WebhookOutbox>
    create(WebhookConfig config, queue::Store& store, const boost::asio::any_io_executor& executor,
           std::string& error, Clock clock = {});
    ~WebhookOutbox();
    WebhookOutbox(const WebhookOutbox&) = delete;
    WebhookOutbox& operator=(const WebhookOutbox&) = delete;

    void start(); // one sender per URL, and the pruner
    void stop();

    // Stores the events (one transaction); `done(true)` runs on the Store's
    // committer thread once they are durable, `done(false)` when the commit
    // failed (logged). An event without an id gets one, without a time the
    // current one. With no URL configured nothing is stored and done(true)
    // runs at once. `done` must not call publish() (it may run on the
    // caller's thread, inside publish(), when the Store is shutting down).
    void publish(Event event, std::function<void(bool stored)> done = {});
    void publish(std::vector<Event> events, std::function<void(bool stored)> done = {});

    [[nodiscard]] std::vector<WebhookEndpointStatus> status() const;
    [[nodiscard]] std::uint64_t stored() const; // events in the table
    [[nodiscard]] bool idle() const;            // after stop(): every task has ended

    struct Endpoint;

private:
    struct Batch;
    WebhookOutbox(WebhookConfig config, queue::Store& store,
                  const boost::asio::any_io_executor& executor, Clock clock);
    [[nodiscard]] bool load(std::string& error);
    void notify();
    [[nodiscard]] std::int64_t now_ms() const;
    [[nodiscard]] std::uint64_t min_cursor() const;
    [[nodiscard]] Batch read_batch(const Endpoint& ep) const;
    void update_status(const Endpoint& ep);
    [[nodiscard]] boost::asio::awaitable<void> send_loop(std::shared_ptr<WebhookOutbox> self,
                                                         Endpoint* ep);
    [[nodiscard]] boost::asio::awaitable<PostResult> post_batch(Endpoint* ep, std::string body);
    void after_post(Endpoint& ep, const Batch& batch, const PostResult& result);
    [[nodiscard]] boost::asio::awaitable<void> save_cursor(Endpoint* ep, std::uint64_t seq);
    [[nodiscard]] boost::asio::awaitable<void> wait(Endpoint* ep, bool wakeable,
                                                    std::optional<core::Duration> limit);
    [[nodiscard]] boost::asio::awaitable<void> prune_loop(std::shared_ptr<WebhookOutbox> self);
    void start_pruner();

    const WebhookConfig config_;
    queue::Store& store_;
    boost::asio::strand<boost::asio::any_io_executor> strand_;
    const Clock clock_;
    queue::Store::TableId table_ = 0;

    std::mutex publish_mutex_; // orders seq assignment with kv_write queueing
    std::uint64_t next_seq_ = 1;
    std::atomic<std::uint64_t> published_upto_{0}; // highest seq handed to the store

    // Strand only:
    std::vector<std::unique_ptr<Endpoint>> endpoints_;
    std::uint64_t pruned_upto_ = 0; // every event <= this is deleted (or being deleted)
    bool pruning_ = false;
    bool stopping_ = false;
    std::mt19937_64 random_;

    std::atomic<bool> stopped_{false};
    std::atomic<int> running_{0};
    mutable std::mutex status_mutex_;
    std::vector<WebhookEndpointStatus> status_; // guarded by status_mutex_
};

} // namespace ember::feedback
