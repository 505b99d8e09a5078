#include "feedback/campaign_stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <utility>

namespace ember::feedback {
namespace {

bool flag(const Event& event, std::string_view name) {
    const auto* v = event.extra.if_contains(name);
    return v != nullptr && v->is_bool() && v->get_bool();
}

// The counters by name, for encode/decode and merge.
using Field = std::uint64_t CampaignCounts::*;
constexpr std::array<std::pair<std::string_view, Field>, 15> kFields{{
    {"delivered", &CampaignCounts::delivered},
    {"bounced", &CampaignCounts::bounced},
    {"hard_bounces", &CampaignCounts::hard_bounces},
    {"soft_bounces", &CampaignCounts::soft_bounces},
    {"deferred", &CampaignCounts::deferred},
    {"expired", &CampaignCounts::expired},
    {"complaints", &CampaignCounts::complaints},
    {"unsubscribes", &CampaignCounts::unsubscribes},
    {"suppressed", &CampaignCounts::suppressed},
    {"opens", &CampaignCounts::opens},
    {"unique_opens", &CampaignCounts::unique_opens},
    {"machine_opens", &CampaignCounts::machine_opens},
    {"clicks", &CampaignCounts::clicks},
    {"unique_clicks", &CampaignCounts::unique_clicks},
    {"machine_clicks", &CampaignCounts::machine_clicks},
}};

constexpr std::string_view kReasonPrefix = "reason.";

std::optional<double> ratio(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0)
        return std::nullopt;
    return static_cast<double>(part) / static_cast<double>(whole);
}

void add_bounce(CampaignCounts& c, const Event& event, Reason fallback) {
    ++c.bounced;
    if (event.hard.value_or(false))
        ++c.hard_bounces;
    else
        ++c.soft_bounces;
    ++c.by_reason[std::string(reason_name(event.reason.value_or(fallback)))];
}

// Opens and clicks: human ones count, unique human ones count again,
// machine ones (privacy proxies, link scanners) only as machine.
void add_engagement(const Event& event, std::uint64_t& all, std::uint64_t& unique,
                    std::uint64_t& machine) {
    if (flag(event, "machine")) {
        ++machine;
        return;
    }
    ++all;
    if (flag(event, "unique"))
        ++unique;
}

} // namespace

bool CampaignCounts::add(const Event& event) {
    switch (event.type) {
    case EventType::Delivered:
        ++delivered;
        return true;
    case EventType::Bounced:
        add_bounce(*this, event, Reason::Undefined);
        return true;
    case EventType::Expired:
        ++expired;
        add_bounce(*this, event, Reason::Expired);
        return true;
    case EventType::Deferred:
        ++deferred;
        return true;
    case EventType::Complained:
        ++complaints;
        return true;
    case EventType::Unsubscribed:
        ++unsubscribes;
        return true;
    case EventType::Suppressed:
        ++suppressed;
        return true;
    case EventType::Opened:
        add_engagement(event, opens, unique_opens, machine_opens);
        return true;
    case EventType::Clicked:
        add_engagement(event, clicks, unique_clicks, machine_clicks);
        return true;
    case EventType::Received:
    case EventType::Throttled:
        return false;
    }
    return false;
}

void CampaignCounts::merge(const CampaignCounts& other) {
    for (const auto& [name, field] : kFields)
        this->*field += other.*field;
    for (const auto& [reason, n] : other.by_reason)
        by_reason[reason] += n;
}

bool CampaignCounts::empty() const {
    return std::all_of(kFields.begin(), kFields.end(),
                       [this](const auto& f) { return this->*f.second == 0; }) &&
           by_reason.empty();
}

std::optional<double> CampaignCounts::open_rate() const {
    return ratio(unique_opens, delivered);
}
std::optional<double> CampaignCounts::click_rate() const {
    return ratio(unique_clicks, delivered);
}
std::optional<double> CampaignCounts::bounce_rate() const {
    return ratio(bounced, delivered + bounced);
}
std::optional<double> CampaignCounts::complaint_rate() const {
    return ratio(complaints, delivered);
}
std::optional<double> CampaignCounts::unsubscribe_rate() const {
    return ratio(unsubscribes, delivered);
}

std::string encode(const CampaignCounts& counts) {
    std::string out;
    const auto put = [&out](std::string_view name, std::uint64_t n) {
        if (n == 0)
            return;
        if (!out.empty())
            out += ' ';
        out += fmt::format("{}={}", name, n);
    };
    for (const auto& [name, field] : kFields)
        put(name, counts.*field);
    // Reason names are Sisimai's ([a-z]+): no space or '=' to escape.
    for (const auto& [reason, n] : counts.by_reason)
        put(std::string(kReasonPrefix) + reason, n);
    return out;
}

std::optional<CampaignCounts> decode_counts(std::string_view text) {
    CampaignCounts c;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find(' ', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const auto item = text.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty())
            continue;
        const auto eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return std::nullopt;
        const auto name = item.substr(0, eq);
        const auto digits = item.substr(eq + 1);
        std::uint64_t n = 0;
        const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty())
            return std::nullopt;
        if (name.starts_with(kReasonPrefix) && name.size() > kReasonPrefix.size()) {
            c.by_reason[std::string(name.substr(kReasonPrefix.size()))] += n;
            continue;
        }
        for (const auto& [known, field] : kFields)
            if (known == name)
                c.*field = n;
    }
    return c;
}

std::optional<double> lift(std::optional<double> variant, std::optional<double> control) {
    if (!variant || !control || *control == 0.0)
        return std::nullopt;
    return (*variant - *control) / *control;
}

std::string choose_control(const std::vector<std::string>& names) {
    for (const std::string_view preferred : {"control", "a"})
        if (std::find(names.begin(), names.end(), preferred) != names.end())
            return std::string(preferred);
    for (const auto& name : names)
        if (!name.empty() && name != "rest")
            return name;
    return {};
}

std::int64_t utc_day(std::int64_t unix_ms) {
    // Floor, not truncation: a time before 1970 belongs to the day before.
    return unix_ms >= 0 ? unix_ms / kMsPerUtcDay : -((-unix_ms + kMsPerUtcDay - 1) / kMsPerUtcDay);
}

std::string format_day(std::int64_t day) {
    const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{day}}};
    return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
}

// ---- CampaignTable ----------------------------------------------------------

bool CampaignTable::add(const Event& event) {
    if (event.campaign.empty())
        return false;
    Key key{event.campaign, event.variant, utc_day(event.time_ms)};
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        CampaignCounts probe;
        if (!probe.add(event))
            return false; // an event that counts nowhere makes no key
        if (entries_.size() >= max_keys_) {
            ++dropped_;
            return false;
        }
        entries_.emplace(std::move(key), std::move(probe));
        return true;
    }
    return it->second.add(event);
}

void CampaignTable::set(Key key, CampaignCounts counts) {
    entries_[std::move(key)] = std::move(counts);
}

std::vector<CampaignTable::Key> CampaignTable::prune(std::int64_t first_day) {
    std::vector<Key> gone;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->first.day < first_day) {
            gone.push_back(it->first);
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
    return gone;
}

namespace {

void add_lifts(CampaignReport& report) {
    std::vector<std::string> names;
    for (const auto& v : report.variants)
        names.push_back(v.name);
    report.control = choose_control(names);
    const auto control = std::find_if(report.variants.begin(), report.variants.end(),
                                      [&](const auto& v) { return v.name == report.control; });
    if (control == report.variants.end())
        return;
    for (auto& v : report.variants) {
        if (v.name == report.control)
            continue;
        v.open_lift = lift(v.counts.open_rate(), control->counts.open_rate());
        v.click_lift = lift(v.counts.click_rate(), control->counts.click_rate());
    }
}

} // namespace

std::vector<CampaignReport> build_reports(const CampaignTable& table, std::string_view campaign,
                                          std::int64_t first_day) {
    std::map<std::string, CampaignReport, std::less<>> reports;
    std::map<std::string, std::map<std::string, CampaignCounts>, std::less<>> variants;
    for (const auto& [key, counts] : table.entries()) {
        if (key.day < first_day || (!campaign.empty() && key.campaign != campaign))
            continue;
        auto [it, fresh] = reports.try_emplace(key.campaign);
        auto& r = it->second;
        if (fresh) {
            r.campaign = key.campaign;
            r.first_day = r.last_day = key.day;
        }
        r.first_day = std::min(r.first_day, key.day);
        r.last_day = std::max(r.last_day, key.day);
        r.totals.merge(counts);
        if (!key.variant.empty())
            variants[key.campaign][key.variant].merge(counts);
    }
    std::vector<CampaignReport> out;
    for (auto& [name, report] : reports) {
        if (const auto v = variants.find(name); v != variants.end())
            for (auto& [variant, counts] : v->second)
                report.variants.push_back(VariantReport{variant, std::move(counts), {}, {}});
        add_lifts(report);
        out.push_back(std::move(report));
    }
    return out;
}

} // namespace ember::feedback
