#pragma once
// Open and click tracking in the daemon (issue 8, ember.toml(5) [tracking]):
//
//   dispatch  TrackingStage, added after the merge (PersonalizeService::
//             add_stage_after_merge) and so before List-Unsubscribe and DKIM
//             signing. For a job whose sending domain is in [tracking]
//             domains ("*" = all) or whose message carries X-Ember-Track
//             ("opens, clicks", "opens", "clicks"; "none" turns an opted-in
//             domain off for that message), each undecided recipient's
//             content (its rendered copy, else the job's) gets its links and
//             pixel rewritten with tokens made for that recipient
//             (personalize/tracking.hpp, feedback/tokens.hpp), and a
//             render key of its own ("\x1ftrk:" + index appended), so the
//             Dispatcher makes one signed sub-job per recipient. Messages
//             without a text/html part and DSNs (null sender) are left
//             alone. [tracking] opens / clicks are ceilings: off means off
//             even for a message that asks. Any failure leaves that
//             recipient's message untracked and is logged: tracking never
//             costs mail.
//   HTTP      GET /c/TOKEN: 302 to the URL signed in the token (only that:
//             never an open redirect), Cache-Control: no-store. GET
//             /o/TOKEN: a 43-octet transparent GIF, no-store. HEAD is
//             served (the router maps it to GET) and is a machine hit. A
//             malformed, tampered or retired-key token is 404 with no
//             redirect. Every hit is an opened / clicked event through
//             FeedbackService::emit (source http; extra.url, user_agent, ip,
//             machine, machine_reason, unique), classified by
//             feedback/machine_activity.hpp.
//   unique    the first HUMAN open (resp. click) of a recipient of a message
//             is unique; the marks live in the Store's "tracking" table,
//             key QUEUEID ":" lower-cased recipient, value
//             "1 FIRST_OPEN_MS FIRST_CLICK_MS" (0 = none yet). Machine hits
//             never set or read as unique. Marks older than [tracking]
//             retention (by the queue id's time, which sorts the keys) are
//             pruned on write, at most once an hour and 10,000 per pass, so
//             the table stays bounded without a timer. A hit after that is
//             unique again: reports over longer spans are the event log's.
//   client IP the peer's address; when the peer is loopback (a local TLS
//             proxy in front of the listener) the rightmost address of
//             X-Forwarded-For, the one that proxy added.
//
// Event tags are not carried (the token would grow by every tag, on every
// link); campaign, ab_test and variant are. A click does not imply an open.
//
// Reload (apply()): every [tracking] key; the policy (keys, public_url) is
// FeedbackService's snapshot, read per job and per hit.
//
// Threads: the daemon's I/O executor (stage, handlers); Store completions
// only drop their entry from the pending marks (under its mutex).

#include "daemon/config.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/http_server.hpp"
#include "feedback/machine_activity.hpp"
#include "feedback/tokens.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace ember::daemon {

class FeedbackService;

inline constexpr const char* kTrackingTable = "tracking";
inline constexpr std::string_view kClickPrefix = "/c/";
inline constexpr std::string_view kOpenPrefix = "/o/";

// What a message asks for: its X-Ember-Track field against [tracking].
struct TrackingChoice {
    bool opens = false;
    bool clicks = false;
    [[nodiscard]] bool any() const { return opens || clicks; }
};
// `track_field` is the unfolded X-Ember-Track value, nullopt when absent.
[[nodiscard]] TrackingChoice tracking_choice(const TrackingConfig& config,
                                             std::string_view sending_domain,
                                             const std::optional<std::string>& track_field);

class TrackingService {
public:
    using Clock = std::function<std::int64_t()>; // unix ms

    // Opens the "tracking" table and compiles the machine rules. nullptr and
    // `error` on failure. `feedback` must outlive the service.
    [[nodiscard]] static std::unique_ptr<TrackingService>
    create(boost::asio::any_io_executor executor, const Config& config, queue::Store& store,
           FeedbackService& feedback, std::string& error, Clock clock = {});

    void apply(const Config& config); // a validated new configuration

    // The dispatch stage (one per service; add it after the merge).
    [[nodiscard]] std::shared_ptr<DispatchStage> stage();
    // GET (and so HEAD) /c/* and /o/*.
    void add_routes(Router& router);

    // ---- for the stage, the routes and tests ----
    [[nodiscard]] const TrackingConfig& config() const { return config_; }
    [[nodiscard]] std::int64_t now_ms() const { return clock_(); }
    [[nodiscard]] HttpResponse handle(const HttpRequest& request, feedback::TrackingKind kind);
    // Rewrites the recipients of `context` (the stage's work, synchronous).
    void track(DispatchContext& context);

private:
    TrackingService(boost::asio::any_io_executor executor, queue::Store& store,
                    FeedbackService& feedback, Clock clock);
    // True when this is the first human hit of its kind; records it.
    [[nodiscard]] bool first_human(const feedback::TrackingId& id, std::int64_t now_ms);
    void prune(std::int64_t now_ms);

    boost::asio::any_io_executor executor_;
    queue::Store& store_;
    FeedbackService& feedback_;
    Clock clock_;
    TrackingConfig config_;
    std::optional<feedback::MachineDetector> detector_;
    queue::Store::TableId table_ = 0;
    // Marks written but maybe not committed yet: a second hit right after
    // the first must not read the old value. Shared with the commit
    // callbacks (the committer thread), hence the mutex.
    struct Pending {
        std::mutex mutex;
        std::map<std::string, std::string, std::less<>> marks;
    };
    std::shared_ptr<Pending> pending_ = std::make_shared<Pending>();
    std::int64_t pruned_ms_ = 0;
    std::shared_ptr<DispatchStage> stage_;
};

// The open pixel: a 1x1 transparent GIF89a.
[[nodiscard]] std::string_view transparent_gif();

} // namespace ember::daemon
