#include "daemon/campaign_report.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/admin_verbs.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <limits>

namespace ember::daemon {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
using feedback::CampaignCounts;
using feedback::CampaignTable;

namespace {

std::int64_t system_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// "YYYY-MM-DD" to days since 1970-01-01.
std::optional<std::int64_t> parse_day(std::string_view text) {
    if (text.size() != 10 || text[4] != '-' || text[7] != '-')
        return std::nullopt;
    const auto number = [&](std::size_t at, std::size_t n) -> std::optional<int> {
        int v = 0;
        const auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + n, v);
        if (ec != std::errc() || p != text.data() + at + n)
            return std::nullopt;
        return v;
    };
    const auto y = number(0, 4), m = number(5, 2), d = number(8, 2);
    if (!y || !m || !d)
        return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year{*y},
                                          std::chrono::month{static_cast<unsigned>(*m)},
                                          std::chrono::day{static_cast<unsigned>(*d)}};
    if (!ymd.ok())
        return std::nullopt;
    return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

json::value rate(std::optional<double> r) {
    return r ? json::value(*r) : json::value(nullptr);
}

json::object counts_json(const CampaignCounts& c) {
    json::object reasons;
    for (const auto& [reason, n] : c.by_reason)
        reasons[reason] = n;
    return json::object{
        {"delivered", c.delivered},
        {"bounced", c.bounced},
        {"hard_bounces", c.hard_bounces},
        {"soft_bounces", c.soft_bounces},
        {"bounce_reasons", std::move(reasons)},
        {"deferred", c.deferred},
        {"expired", c.expired},
        {"complaints", c.complaints},
        {"unsubscribes", c.unsubscribes},
        {"suppressed", c.suppressed},
        {"opens", c.opens},
        {"unique_opens", c.unique_opens},
        {"machine_opens", c.machine_opens},
        {"clicks", c.clicks},
        {"unique_clicks", c.unique_clicks},
        {"machine_clicks", c.machine_clicks},
        {"rates", json::object{{"open", rate(c.open_rate())},
                               {"click", rate(c.click_rate())},
                               {"bounce", rate(c.bounce_rate())},
                               {"complaint", rate(c.complaint_rate())},
                               {"unsubscribe", rate(c.unsubscribe_rate())}}},
    };
}

json::object campaign_json(const feedback::CampaignReport& r) {
    json::object o{{"campaign", valid_utf8(r.campaign)},
                   {"first_day", feedback::format_day(r.first_day)},
                   {"last_day", feedback::format_day(r.last_day)}};
    for (auto& [name, value] : counts_json(r.totals))
        o[name] = std::move(value);
    if (r.variants.empty())
        return o;
    o["control"] = valid_utf8(r.control);
    json::array variants;
    for (const auto& v : r.variants) {
        json::object row{{"variant", valid_utf8(v.name)}};
        for (auto& [name, value] : counts_json(v.counts))
            row[name] = std::move(value);
        row["lift"] =
            json::object{{"open_rate", rate(v.open_lift)}, {"click_rate", rate(v.click_lift)}};
        variants.push_back(std::move(row));
    }
    o["variants"] = std::move(variants);
    return o;
}

} // namespace

std::string campaign_key(const CampaignTable::Key& key) {
    std::string out = feedback::format_day(key.day);
    out += '\0';
    out += key.campaign;
    out += '\0';
    out += key.variant;
    return out;
}

std::optional<CampaignTable::Key> parse_campaign_key(std::string_view key) {
    const auto first = key.find('\0');
    if (first == std::string_view::npos)
        return std::nullopt;
    const auto second = key.find('\0', first + 1);
    if (second == std::string_view::npos || key.find('\0', second + 1) != std::string_view::npos)
        return std::nullopt;
    const auto day = parse_day(key.substr(0, first));
    const auto campaign = key.substr(first + 1, second - first - 1);
    if (!day || campaign.empty())
        return std::nullopt;
    return CampaignTable::Key{std::string(campaign), std::string(key.substr(second + 1)), *day};
}

json::object report_json(const std::vector<feedback::CampaignReport>& reports,
                         std::optional<std::int64_t> since_day) {
    json::array campaigns;
    for (const auto& r : reports)
        campaigns.push_back(campaign_json(r));
    json::object out;
    if (since_day)
        out["since"] = feedback::format_day(*since_day);
    out["campaigns"] = std::move(campaigns);
    return out;
}

// ---- CampaignReports --------------------------------------------------------

CampaignReports::CampaignReports(asio::any_io_executor executor, queue::Store& store, Clock clock,
                                 CampaignReportSettings settings)
    : executor_(std::move(executor)), store_(store),
      clock_(clock ? std::move(clock) : Clock(system_ms)), settings_(settings), timer_(executor_) {
    table_.set_max_keys(settings_.max_keys);
}

std::unique_ptr<CampaignReports> CampaignReports::create(asio::any_io_executor executor,
                                                         queue::Store& store, std::string& error,
                                                         Clock clock,
                                                         CampaignReportSettings settings) {
    std::unique_ptr<CampaignReports> r(
        new CampaignReports(std::move(executor), store, std::move(clock), settings));
    const auto table = store.open_table(kCampaignsTable, error);
    if (!table)
        return nullptr;
    r->table_id_ = *table;
    r->load();
    return r;
}

std::int64_t CampaignReports::first_kept_day() const {
    return feedback::utc_day(clock_()) - settings_.retention_days + 1;
}

void CampaignReports::load() {
    std::size_t bad = 0;
    store_.kv_scan(table_id_, "", "", [&](std::string_view key, std::string_view value) {
        const auto k = parse_campaign_key(key);
        auto counts = feedback::decode_counts(value);
        if (!k || !counts) {
            ++bad;
            return true;
        }
        table_.set(*k, std::move(*counts));
        return true;
    });
    if (bad > 0)
        log::warning("report.unreadable_rows", "rows={} note=\"skipped\"", bad);
    // Rows past retention go at the next flush (they are dirty as erased).
    for (auto& key : table_.prune(first_kept_day()))
        dirty_.insert(std::move(key));
}

void CampaignReports::start() {
    running_ = true;
    core::spawn(executor_, flush_loop(this, ++generation_), "report.flush");
}

void CampaignReports::stop() {
    if (running_) {
        running_ = false;
        ++generation_;
        timer_.cancel();
    }
    flush();
}

asio::awaitable<void> CampaignReports::flush_loop(CampaignReports* self, std::uint64_t generation) {
    while (self->running_ && self->generation_ == generation) {
        self->timer_.expires_after(self->settings_.flush_interval);
        auto [ec] = co_await self->timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || !self->running_ || self->generation_ != generation)
            co_return;
        self->flush();
    }
}

void CampaignReports::record(const feedback::Event& event) {
    if (event.campaign.empty())
        return;
    if (table_.add(event))
        dirty_.insert(
            CampaignTable::Key{event.campaign, event.variant, feedback::utc_day(event.time_ms)});
}

void CampaignReports::flush(std::function<void(bool)> done) {
    for (auto& key : table_.prune(first_kept_day()))
        dirty_.insert(std::move(key));
    if (table_.dropped() != dropped_logged_) {
        log::warning("report.table_full",
                     "keys={} dropped={} note=\"events for new campaign "
                     "days not counted\"",
                     table_.entries().size(), table_.dropped() - dropped_logged_);
        dropped_logged_ = table_.dropped();
    }
    std::vector<queue::Store::KvWrite> writes;
    for (const auto& key : dirty_) {
        const auto it = table_.entries().find(key);
        writes.push_back({table_id_, campaign_key(key),
                          it == table_.entries().end()
                              ? std::nullopt
                              : std::optional<std::string>(feedback::encode(it->second))});
    }
    dirty_.clear();
    if (writes.empty()) {
        if (done)
            done(true);
        return;
    }
    store_.kv_write(std::move(writes), [done = std::move(done)](queue::CommitResult r) {
        const bool ok = r.status == queue::CommitStatus::Ok;
        if (!ok) // the counts stay in memory; the next change of a key writes it again
            log::error("report.save_failed", "error={}", log::q(r.detail));
        if (done)
            done(ok);
    });
}

AdminResult CampaignReports::report(const json::object& args) const {
    std::string error = unknown_argument(args, {"campaign", "since"});
    const auto campaign = error.empty() ? string_arg(args, "campaign", error) : std::nullopt;
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    std::optional<std::int64_t> since_day;
    if (const auto* since = args.if_contains("since")) {
        if (!since->is_int64() || since->get_int64() < 0)
            return AdminResult::failure(
                R"(argument "since" must be a time in unix milliseconds (an integer >= 0))");
        since_day = feedback::utc_day(since->get_int64());
    }
    const auto reports =
        feedback::build_reports(table_, campaign.value_or(""),
                                since_day.value_or(std::numeric_limits<std::int64_t>::min()));
    return AdminResult::success(report_json(reports, since_day));
}

void add_report_verbs(AdminServer& server, CampaignReports& reports) {
    auto* r = &reports;
    server.add_verb("report",
                    SyncAdminHandler([r](const json::object& args) { return r->report(args); }));
}

} // namespace ember::daemon
