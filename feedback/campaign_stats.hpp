#pragma once
// Per-campaign counters for `emberctl report` (issue 8, "Reports"): what
// happened to the mail of one campaign (and one A/B cell of it) on one UTC
// day, the rates people compare campaigns by, and the lift of a variant
// against the control.
//
// Pure: no clock, no I/O, no Asio. The daemon part (daemon/campaign_report.hpp)
// feeds events, keeps one CampaignCounts per (campaign, variant, day) and
// stores their encode() text in LMDB. Not thread-safe: one owner.
//
// Which event moves which counter (add(); one event is one recipient):
//   delivered       delivered
//   bounced         bounced, and expired (a final soft failure, as the
//                   warm-up rates count it): by_reason[reason name], and
//                   hard_bounces when hard = true, else soft_bounces;
//                   expired also counts in `expired`
//   deferred        deferred (each deferral, not each recipient)
//   complaints      complained; unsubscribes: unsubscribed; suppressed: suppressed
//   opens           opened with extra.machine != true (human opens, all of them)
//   unique_opens    opened with extra.unique == true and extra.machine != true
//   machine_opens   opened with extra.machine == true (privacy proxies, scanners)
//   clicks, unique_clicks, machine_clicks: the same for clicked
// received and throttled events count nowhere (a report is about outcomes).
//
// Rates (nullopt when the denominator is 0):
//   open rate         unique_opens / delivered
//   click rate        unique_clicks / delivered
//   bounce rate       bounced / (delivered + bounced)
//   complaint rate    complaints / delivered
//   unsubscribe rate  unsubscribes / delivered
// Lift of a variant against the control: (variant - control) / control for
// a rate, nullopt when either rate is unknown or the control's is 0.

#include "feedback/events.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

inline constexpr std::int64_t kMsPerUtcDay = 86'400'000;

struct CampaignCounts {
    std::uint64_t delivered = 0;
    std::uint64_t bounced = 0;
    std::uint64_t hard_bounces = 0;
    std::uint64_t soft_bounces = 0;
    std::uint64_t deferred = 0;
    std::uint64_t expired = 0;
    std::uint64_t complaints = 0;
    std::uint64_t unsubscribes = 0;
    std::uint64_t suppressed = 0;
    std::uint64_t opens = 0;
    std::uint64_t unique_opens = 0;
    std::uint64_t machine_opens = 0;
    std::uint64_t clicks = 0;
    std::uint64_t unique_clicks = 0;
    std::uint64_t machine_clicks = 0;
    std::map<std::string, std::uint64_t> by_reason; // bounce reason name -> count

    // Counts one event (see the header comment); false when the type
    // counts nowhere.
    bool add(const Event& event);
    void merge(const CampaignCounts& other);
    [[nodiscard]] bool empty() const;

    [[nodiscard]] std::optional<double> open_rate() const;
    [[nodiscard]] std::optional<double> click_rate() const;
    [[nodiscard]] std::optional<double> bounce_rate() const;
    [[nodiscard]] std::optional<double> complaint_rate() const;
    [[nodiscard]] std::optional<double> unsubscribe_rate() const;

    friend bool operator==(const CampaignCounts&, const CampaignCounts&) = default;
};

// "delivered=3 bounced=1 ... reason.userunknown=1": space-separated
// name=value pairs, zero counters left out. decode() ignores names it does
// not know (a newer daemon's counter) and returns nullopt for anything
// that is not such a list.
[[nodiscard]] std::string encode(const CampaignCounts& counts);
[[nodiscard]] std::optional<CampaignCounts> decode_counts(std::string_view text);

// (variant - control) / control; nullopt when either is unknown or control is 0.
[[nodiscard]] std::optional<double> lift(std::optional<double> variant,
                                         std::optional<double> control);

// The control among a campaign's variant names: "control" if present, else
// "a", else the first name in `names` order that is not "rest" (the
// winner's audience is compared against the control, never used as one).
// "" when there is none.
[[nodiscard]] std::string choose_control(const std::vector<std::string>& names);

// The UTC day of a unix time in ms (days since 1970-01-01), and back.
[[nodiscard]] std::int64_t utc_day(std::int64_t unix_ms);
// "2026-03-01".
[[nodiscard]] std::string format_day(std::int64_t day);

// Per (campaign, variant, day) counters, and the report over them.
class CampaignTable {
public:
    struct Key {
        std::string campaign;
        std::string variant; // "" outside an A/B test
        std::int64_t day = 0;
        friend auto operator<=>(const Key&, const Key&) = default;
    };

    // Counts an event that has a campaign (others are ignored: false).
    // When the table holds max_keys keys already, an event for a new key is
    // dropped (false, and dropped() grows).
    bool add(const Event& event);
    void set(Key key, CampaignCounts counts); // loading from storage
    // Drops the days before `first_day`; returns the keys dropped.
    std::vector<Key> prune(std::int64_t first_day);
    void set_max_keys(std::size_t n) { max_keys_ = n; }

    [[nodiscard]] const std::map<Key, CampaignCounts>& entries() const { return entries_; }
    [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

private:
    std::map<Key, CampaignCounts> entries_;
    std::size_t max_keys_ = 1'000'000;
    std::uint64_t dropped_ = 0;
};

// One campaign's report: the sum over the days asked, and per variant when
// the campaign has variants.
struct VariantReport {
    std::string name;
    CampaignCounts counts;
    std::optional<double> open_lift;  // against the control; unset for the control
    std::optional<double> click_lift; // itself and when unknown
};

struct CampaignReport {
    std::string campaign;
    std::int64_t first_day = 0; // the days with counts, inside the range asked
    std::int64_t last_day = 0;
    CampaignCounts totals;               // every variant, and mail outside the test
    std::string control;                 // "" without variants
    std::vector<VariantReport> variants; // named cells in name order; "" is not one
};

// Every campaign (or only `campaign` when not empty) with counts on a day
// >= first_day, in campaign name order.
[[nodiscard]] std::vector<CampaignReport>
build_reports(const CampaignTable& table, std::string_view campaign, std::int64_t first_day);

} // namespace ember::feedback
