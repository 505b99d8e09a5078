#pragma once
// The daemon side of personalization (issue 7, ember-hook(7)).
// PersonalizeService owns what dispatch and submission share:
//
//   contacts     the ContactStore (attributes, tags, engagement) in the
//                daemon's queue::Store LMDB environment; the submission
//                path, the admin verbs and the event path use contacts();
//   hook         the HookClient when [personalize] hook is set;
//   dispatch     add_stages() adds the personalization stage
//                (daemon/personalize_stages.hpp): the hook, then the merge,
//                between the feedback stages that come before rendering
//                (suppression, VERP) and those after it (List-Unsubscribe,
//                X-Ember-ID), all before DKIM signing;
//   compiled     a small LRU of compiled messages, so the jobs of one
//                message (one per destination domain) compile it once.
//
// Reload (apply()): the hook keys and the sto_* keys take effect. A changed
// hook setting builds a new HookClient (calls in flight finish on the old
// one, which keeps its state alive; the new breaker starts closed).
// contacts_create_on_event is the contact store's and needs a restart
// (logged as config.restart_needed): the store is not reopened.
//
// Threads: everything runs on the daemon's single I/O executor (the
// scheduler's, the SMTP sessions', the admin server's), except that
// contacts() is thread-safe (ContactStore is) and renders over a size
// threshold run on the worker pool.

#include "core/delivery.hpp"
#include "daemon/config.hpp"
#include "daemon/dispatch.hpp"
#include "personalize/contacts.hpp"
#include "personalize/hook.hpp"
#include "personalize/merge.hpp"
#include "personalize/send_time.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::daemon {

class FeedbackService;

// The header fields of a submitted message that speak to ember, not to the
// recipient: all are removed at dispatch before signing (X-Ember-Vars by
// the merge's compile, the others by the personalization stage).
inline constexpr std::string_view kCampaignHeader = "X-Ember-Campaign";      // the hook's campaign
inline constexpr std::string_view kTagsHeader = "X-Ember-Tags";              // comma-separated tags
inline constexpr std::string_view kSendWithinHeader = "X-Ember-Send-Within"; // issue 7 STO
inline constexpr std::string_view kAbHeader = "X-Ember-AB"; // "TEST-ID; cell=NAME" (A/B tests)
inline constexpr std::string_view kTrackHeader = "X-Ember-Track"; // "opens, clicks" or "none"

// A job's message as the stage needs it: compiled from the queued bytes
// without the X-Ember-* fields above, or why it cannot be rendered.
struct CompiledEntry {
    std::shared_ptr<const personalize::CompiledMessage> message; // null on error
    personalize::MergeError error;                               // when message is null
    // message->content() differs from the queued bytes (an X-Ember-* field
    // was removed): every recipient needs the stripped copy.
    bool stripped = false;
    std::shared_ptr<const std::string> content; // message->content() as a shareable copy
    std::string campaign;                       // X-Ember-Campaign, unfolded and trimmed
    std::vector<std::string> tags;              // X-Ember-Tags, split on ','
    std::string from;                           // the first From: address
    std::string subject;                        // decoded to UTF-8 (RFC 2047)
};

class PersonalizeService {
public:
    using Clock = std::function<std::int64_t()>; // unix ms

    // Opens the contact tables in `store` and builds the hook client when
    // configured. nullptr and `error` on failure. `feedback` (optional,
    // must outlive the service) receives the skip events; `pool`
    // (optional) runs large renders off the event loop.
    [[nodiscard]] static std::unique_ptr<PersonalizeService>
    create(boost::asio::any_io_executor executor, const Config& config, queue::Store& store,
           std::string& error, FeedbackService* feedback = nullptr,
           boost::asio::thread_pool* pool = nullptr, Clock clock = {});
    ~PersonalizeService();
    PersonalizeService(const PersonalizeService&) = delete;
    PersonalizeService& operator=(const PersonalizeService&) = delete;

    // A validated new configuration (see the header comment).
    void apply(const Config& config);

    // ---- what the daemon wires ----
    [[nodiscard]] personalize::ContactStore& contacts() { return *contacts_; }
    [[nodiscard]] const PersonalizeConfig& config() const { return config_; }
    // Adds the personalization stage (hook, then merge).
    void add_stages(Dispatcher& dispatcher);
    // Stages that belong around the merge: `before` ones run ahead of it
    // (the A/B stage assigns variants), `after` ones on its output
    // (tracking rewrites the rendered HTML). Call before add_stages().
    void add_stage_before_merge(std::shared_ptr<DispatchStage> stage) {
        before_merge_.push_back(std::move(stage));
    }
    void add_stage_after_merge(std::shared_ptr<DispatchStage> stage) {
        after_merge_.push_back(std::move(stage));
    }

    // The contact's engagement priority (ContactStore::priority) now: what
    // the warm-up gate orders recipients by when its cap is scarce.
    [[nodiscard]] double priority(std::string_view address) const;
    // Send-time optimisation for one recipient of a message that may wait
    // `within` (X-Ember-Send-Within): the contact's, then the sending
    // domain's histogram, then now, per [personalize] sto_*.
    [[nodiscard]] personalize::SendTime send_time(std::string_view address,
                                                  std::string_view sending_domain,
                                                  core::Duration within, std::int64_t now_ms) const;

    // ---- for the stage ----
    // nullptr when no hook is configured.
    [[nodiscard]] personalize::HookClient* hook() { return hook_.get(); }
    [[nodiscard]] FeedbackService* feedback() { return feedback_; }
    [[nodiscard]] boost::asio::thread_pool* pool() { return pool_; }
    [[nodiscard]] std::int64_t now_ms() const { return clock_(); }
    // [delivery] max_retry_time in ms: no recipient is held past it.
    [[nodiscard]] std::int64_t max_retry_ms() const { return max_retry_ms_; }
    // The job's message compiled (cached by message id and content).
    [[nodiscard]] std::shared_ptr<const CompiledEntry> compiled(const core::DeliveryJob& job);
    // A hook's send_at is honoured once per recipient: when the recipient
    // comes back at that time, a later send_at is ignored (a hook that
    // always answers "in an hour" must not hold mail until it expires).
    [[nodiscard]] bool held_before(std::uint64_t message_id, std::uint32_t index,
                                   std::int64_t now_ms);
    void note_held(std::uint64_t message_id, std::uint32_t index, std::int64_t until_ms);

private:
    PersonalizeService(boost::asio::any_io_executor executor, FeedbackService* feedback,
                       boost::asio::thread_pool* pool, Clock clock);
    [[nodiscard]] bool make_hook(const personalize::HookConfig& config, std::string& error);

    boost::asio::any_io_executor executor_;
    FeedbackService* feedback_;
    std::vector<std::shared_ptr<DispatchStage>> before_merge_;
    std::vector<std::shared_ptr<DispatchStage>> after_merge_;
    boost::asio::thread_pool* pool_;
    Clock clock_;
    PersonalizeConfig config_;
    std::int64_t max_retry_ms_ = 0;
    std::unique_ptr<personalize::ContactStore> contacts_;
    std::unique_ptr<personalize::HookClient> hook_;
    struct Cached {
        std::uint64_t message_id = 0;
        std::shared_ptr<const std::string> content; // the queued bytes (identity)
        std::shared_ptr<const CompiledEntry> entry;
    };
    std::list<Cached> cache_; // most recent first
    std::map<std::pair<std::uint64_t, std::uint32_t>, std::int64_t> held_;
};

} // namespace ember::daemon
