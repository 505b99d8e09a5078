#pragma once
// A/B tests in the daemon (issue 8): the test records, their counts, the
// timer that decides them, and the dispatch stage that gives each
// recipient its cell's variant or holds the rest until the decision.
//
// Life of a test: POST /v1/messages with variants (daemon/api_ab.hpp)
// assigns cells (personalize/ab_decision.hpp), writes the record with
// create() (durable before the 202, before any of its messages is
// committed) and queues one message per recipient with
// X-Ember-AB: ID; cell=NAME (NAME a variant, or "rest").
//   testing   the stage gives cell recipients r.variant = NAME, and holds
//             "rest" recipients with a Throttled outcome until decide_at
//             (plus kHoldMarginMs): not an attempt, no expiry spent;
//   counting  every feedback event with ab_test set and a variant other
//             than "rest" counts into its cell: delivered; opened/clicked
//             with extra.unique == true and extra.machine != true (unique
//             human opens and clicks);
//   decided   at decide_at the timer runs personalize::decide() over the
//             cells, saves the decision, logs ab.decided and calls the
//             release callback (the scheduler's release_throttled()), so
//             the held rest come back at once and get r.variant = winner.
// A test whose percentages add up to 100 has no rest; it is still decided,
// for the report.
//
// Records: the queue store's KV table "ab", key = test id, value = the
// JSON of ab_test_json() (the shape `emberctl ab status --json` prints).
// Counts live in memory and are saved every kSaveInterval and at stop()
// when they changed (best effort, like the feedback rates: a crash loses
// at most that interval of counts, never a test or a decision). Decided
// tests stay in the table for kAbRetentionMs after their decision (400
// days, like the campaign counters), then go at the next start.
//
// Unknown test (X-Ember-AB names an id with no record: a record lost, or
// a field written by hand): a cell recipient still gets its named variant,
// a "rest" recipient gets no variant, which renders the control (see
// daemon/api_ab.hpp), and ab.unknown_test is logged. Mail is never lost
// or held forever over a test.
//
// Threads: the daemon's I/O executor (the API, the stage, the feedback
// listener and the timer all run there). The injected clock gives unix ms.

#include "core/delivery.hpp"
#include "core/outcome.hpp"
#include "daemon/dispatch.hpp"
#include "feedback/events.hpp"
#include "personalize/ab_decision.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::queue {
class Scheduler;
}

namespace ember::daemon {

inline constexpr std::string_view kAbTable = "ab";
inline constexpr std::string_view kRestCell = "rest";
// The rest are held a little past decide_at, so the timer (which looks
// every kAbTick) decides first and the release brings them back.
inline constexpr std::int64_t kHoldMarginMs = 5000;
inline constexpr std::int64_t kAbRetentionMs = std::int64_t{400} * 24 * 3600 * 1000;

struct AbCell {
    std::string name;
    double split = 0;             // percent
    std::uint64_t recipients = 0; // assigned at the request
    personalize::AbCellCounts counts;
};

struct AbTest {
    std::string id;
    std::string campaign;
    std::int64_t created_ms = 0;
    std::int64_t decide_at_ms = 0;
    personalize::AbMetric metric = personalize::AbMetric::Clicks;
    std::vector<AbCell> cells; // the control first
    std::uint64_t rest = 0;    // recipients waiting for the winner
    bool decided = false;
    std::int64_t decided_ms = 0;
    std::string winner;
    personalize::AbDecision decision; // when decided
};

// The record and the status answer: {"id", "campaign", "created",
// "created_ms", "decide_at", "decide_at_ms", "metric", "state"
// ("testing"|"decided"), "rest", "cells": [{"name", "split",
// "recipients", "delivered", "opens", "clicks", "open_rate",
// "click_rate"}], "winner" (null while testing), "decision": null |
// {"winner", "runner_up", "winner_rate", "runner_up_rate", "z",
// "p_value", "significant", "decided_at", "decided_at_ms"}}.
[[nodiscard]] boost::json::object ab_test_json(const AbTest& test);
[[nodiscard]] std::optional<AbTest> ab_test_from_json(std::string_view text);

// X-Ember-AB: "ID; cell=NAME".
[[nodiscard]] std::string format_ab_field(std::string_view test_id, std::string_view cell);
struct AbField {
    std::string test_id;
    std::string cell;
};
[[nodiscard]] std::optional<AbField> parse_ab_field(std::string_view value);

// What the stage does with one recipient of a test.
struct AbPlacement {
    enum class Kind { Variant, Hold };
    Kind kind = Kind::Variant;
    std::string variant;       // Variant: "" = none (renders the control)
    std::int64_t until_ms = 0; // Hold
};

class AbService {
public:
    using Clock = std::function<std::int64_t()>;
    using Release = std::function<void()>;

    static constexpr auto kAbTick = std::chrono::seconds(1);
    static constexpr auto kSaveInterval = std::chrono::seconds(30);

    // Opens the "ab" table and loads every test; nullptr and `error` on failure.
    [[nodiscard]] static std::unique_ptr<AbService> create(boost::asio::any_io_executor executor,
                                                           queue::Store& store, std::string& error,
                                                           Clock clock = {});

    // Called after each decision (the scheduler's release_throttled()).
    void set_release(Release release) { release_ = std::move(release); }
    void start(); // the timer loop
    void stop();  // ends the loop, saves changed counts

    // Writes a new test (created_ms and decide_at_ms are set here from
    // `duration`); completes after the fsynced commit: false if it failed.
    // Not a coroutine (see daemon/feedback_async.hpp).
    [[nodiscard]] boost::asio::awaitable<bool> create_test(AbTest test,
                                                           std::chrono::milliseconds duration);

    // The feedback listener (FeedbackService::add_event_listener).
    void on_event(const feedback::Event& event);

    // Decides every test whose decide_at has come; the timer calls it.
    // Returns how many were decided.
    std::size_t decide_due();

    [[nodiscard]] AbPlacement place(const AbField& field, std::string_view queue_id);

    [[nodiscard]] const AbTest* find(std::string_view id) const;
    [[nodiscard]] std::vector<const AbTest*> tests() const; // newest first
    [[nodiscard]] std::int64_t now_ms() const { return clock_(); }

    // Saves the tests whose counts changed since the last save.
    void save_changed();

private:
    AbService(boost::asio::any_io_executor executor, queue::Store& store, Clock clock);
    void decide(AbTest& test);
    void save(const AbTest& test);
    static boost::asio::awaitable<void> loop(AbService* self, std::uint64_t generation);

    boost::asio::any_io_executor executor_;
    queue::Store& store_;
    Clock clock_;
    queue::Store::TableId table_ = 0;
    std::map<std::string, AbTest, std::less<>> tests_;
    std::map<std::string, bool, std::less<>> dirty_;
    Release release_;
    boost::asio::steady_timer timer_;
    std::int64_t last_save_ms_ = 0;
    std::uint64_t generation_ = 0;
    bool running_ = false;
};

// The dispatch stage (before the merge): reads X-Ember-AB from the job's
// queued content and sets each undecided recipient's variant, or holds it.
class AbStage final : public DispatchStage {
public:
    explicit AbStage(AbService& service) : service_(service) {}
    [[nodiscard]] boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) override;

private:
    AbService& service_;
};

// A Release that runs `scheduler.release_throttled()` on `executor`.
[[nodiscard]] AbService::Release scheduler_release(boost::asio::any_io_executor executor,
                                                   queue::Scheduler& scheduler);

// The outcome that holds a "rest" recipient until the decision.
[[nodiscard]] core::Outcome ab_held_outcome(std::string_view test_id, std::int64_t until_ms);

} // namespace ember::daemon
