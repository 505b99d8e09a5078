#pragma once
// Campaign reports (issue 8): the daemon keeps per (campaign, A/B cell, UTC
// day) counters of every counted event that names a campaign (the pure
// counting is feedback/campaign_stats.hpp), stores them in the Store's
// "campaigns" KV table, and answers the admin verb
//
//   report  {campaign?, since? (unix ms)}  -> {"since"?, "campaigns": [Campaign]}
//
// Campaign: {"campaign", "first_day", "last_day" (the UTC days with counts,
// "YYYY-MM-DD"), Counts, "control" (when it has variants), "variants":
// [{"variant", Counts, "lift": {"open_rate", "click_rate"}}]}; Counts:
// {"delivered", "bounced", "hard_bounces", "soft_bounces", "bounce_reasons":
// {reason: n}, "deferred", "expired", "complaints", "unsubscribes",
// "suppressed", "opens", "unique_opens", "machine_opens", "clicks",
// "unique_clicks", "machine_clicks", "rates": {"open", "click", "bounce",
// "complaint", "unsubscribe"}} (a rate or lift is null when unknown).
// Day granularity: `since` selects the UTC day containing it and every
// later one.
//
// Storage, decided like the warm-up and feedback rates (best effort, not
// the durable path): the counters live in memory, all of them (loaded at
// start), and dirty ones are written every kFlushInterval and at stop.
// A crash loses at most the last interval's counts; the event log and the
// webhooks keep every event. Key "YYYY-MM-DD\0campaign\0variant", value
// feedback::encode(counts). Bounded: days older than `retention_days`
// (400: a year and a month, so last year's same campaign compares) are
// dropped at start and at each flush, and at most `max_keys` keys are kept
// (an event for a new key beyond that is not counted; logged once per
// flush with the number dropped).
//
// Threads: everything on the daemon's I/O executor (the events' listener,
// the flush timer, the verb); Store completions only log.

#include "core/units.hpp"
#include "daemon/admin_server.hpp"
#include "feedback/campaign_stats.hpp"
#include "queue/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ember::daemon {

inline constexpr const char* kCampaignsTable = "campaigns";

struct CampaignReportSettings {
    std::int64_t retention_days = 400;
    core::Duration flush_interval = std::chrono::seconds(5);
    std::size_t max_keys = 1'000'000;
};

class CampaignReports {
public:
    using Clock = std::function<std::int64_t()>; // unix ms

    // Opens the table and loads what it holds (unreadable rows are skipped
    // with a warning). nullptr and `error` on a store error.
    [[nodiscard]] static std::unique_ptr<CampaignReports>
    create(boost::asio::any_io_executor executor, queue::Store& store, std::string& error,
           Clock clock = {}, CampaignReportSettings settings = {});
    CampaignReports(const CampaignReports&) = delete;
    CampaignReports& operator=(const CampaignReports&) = delete;

    void start(); // the periodic flush
    void stop();  // flushes now

    // The FeedbackService listener: counts an event with a campaign.
    void record(const feedback::Event& event);
    // Drops the days past retention and writes the changed keys; `done`
    // (optional, tests) runs on the committer thread after the commit.
    void flush(std::function<void(bool ok)> done = {});

    // The `report` verb.
    [[nodiscard]] AdminResult report(const boost::json::object& args) const;
    [[nodiscard]] const feedback::CampaignTable& table() const { return table_; }

private:
    CampaignReports(boost::asio::any_io_executor executor, queue::Store& store, Clock clock,
                    CampaignReportSettings settings);
    void load();
    [[nodiscard]] std::int64_t first_kept_day() const;
    static boost::asio::awaitable<void> flush_loop(CampaignReports* self, std::uint64_t generation);

    boost::asio::any_io_executor executor_;
    queue::Store& store_;
    Clock clock_;
    CampaignReportSettings settings_;
    queue::Store::TableId table_id_ = 0;
    feedback::CampaignTable table_;
    std::set<feedback::CampaignTable::Key> dirty_;
    std::uint64_t dropped_logged_ = 0;
    boost::asio::steady_timer timer_;
    std::uint64_t generation_ = 0;
    bool running_ = false;
};

// The storage key of a table key, and back (nullopt when malformed).
[[nodiscard]] std::string campaign_key(const feedback::CampaignTable::Key& key);
[[nodiscard]] std::optional<feedback::CampaignTable::Key> parse_campaign_key(std::string_view key);

// The verb's answer for `reports` (see the header comment).
[[nodiscard]] boost::json::object report_json(const std::vector<feedback::CampaignReport>& reports,
                                              std::optional<std::int64_t> since_day);

// `reports` must outlive the server.
void add_report_verbs(AdminServer& server, CampaignReports& reports);

} // namespace ember::daemon
