#include "feedback/rates.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace ember::feedback {

namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, kCounters> kCounterNames = {
    "received", "dmarc_aligned", "delivered",    "delivered_tls", "bulk",        "one_click",
    "deferred", "hard_bounces",  "soft_bounces", "complaints",    "unsubscribes"};

constexpr std::int64_t kHourMs = 3'600'000;

std::int64_t hour_of(TimePoint t) {
    const auto ms = t.time_since_epoch().count();
    return ms >= 0 ? ms / kHourMs : (ms - kHourMs + 1) / kHourMs;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::optional<double> ratio(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0)
        return std::nullopt;
    return static_cast<double>(part) / static_cast<double>(whole);
}

std::size_t slot_of(std::int64_t hour) {
    return static_cast<std::size_t>(hour % static_cast<std::int64_t>(Rates::kBuckets));
}

bool restore_buckets(const json::array& rows, const std::vector<std::optional<Counter>>& names,
                     std::array<std::pair<std::int64_t, Counts>, Rates::kBuckets>& out) {
    for (const auto& row : rows) {
        if (!row.is_array() || row.get_array().empty() || !row.get_array()[0].is_int64())
            return false;
        const auto& r = row.get_array();
        const std::int64_t hour = r[0].get_int64();
        if (hour < 0)
            return false;
        Counts counts;
        for (std::size_t i = 1; i < r.size() && i - 1 < names.size(); ++i)
            if (names[i - 1] && (r[i].is_int64() || r[i].is_uint64()))
                counts[*names[i - 1]] = r[i].to_number<std::uint64_t>();
        out[slot_of(hour)] = {hour, counts};
    }
    return true;
}

} // namespace

std::string_view counter_name(Counter counter) {
    return kCounterNames.at(static_cast<std::size_t>(counter));
}

std::optional<Counter> parse_counter(std::string_view name) {
    for (std::size_t i = 0; i < kCounterNames.size(); ++i)
        if (kCounterNames[i] == name)
            return static_cast<Counter>(i);
    return std::nullopt;
}

std::optional<double> Counts::complaint_rate() const {
    return ratio((*this)[Counter::Complaints], (*this)[Counter::Delivered]);
}
std::optional<double> Counts::hard_bounce_rate() const {
    const auto hard = (*this)[Counter::HardBounces];
    return ratio(hard, (*this)[Counter::Delivered] + hard + (*this)[Counter::SoftBounces]);
}
std::optional<double> Counts::unsubscribe_rate() const {
    return ratio((*this)[Counter::Unsubscribes], (*this)[Counter::Delivered]);
}
std::optional<double> Counts::tls_share() const {
    return ratio((*this)[Counter::DeliveredTls], (*this)[Counter::Delivered]);
}
std::optional<double> Counts::aligned_share() const {
    return ratio((*this)[Counter::DmarcAligned], (*this)[Counter::Received]);
}
std::optional<double> Counts::one_click_share() const {
    return ratio((*this)[Counter::OneClick], (*this)[Counter::Bulk]);
}

std::optional<GuardrailSignal> guardrail_signal(const Event& event) {
    if (event.sending_domain.empty())
        return std::nullopt;
    if (event.type == EventType::Complained)
        return GuardrailSignal{GuardrailSignal::Kind::Complaint, lowercase(event.sending_domain),
                               false};
    if (event.type == EventType::Bounced && event.source != "smtp")
        return GuardrailSignal{GuardrailSignal::Kind::Bounce, lowercase(event.sending_domain),
                               event.hard.value_or(false)};
    return std::nullopt;
}

void Rates::add(std::string_view sending_domain, Counter counter, TimePoint now, std::uint64_t n) {
    if (sending_domain.empty() || n == 0)
        return;
    auto it = domains_.find(lowercase(sending_domain));
    if (it == domains_.end())
        it = domains_.emplace(lowercase(sending_domain), Domain{}).first;
    const std::int64_t hour = hour_of(now);
    if (hour < 0)
        return;
    Bucket& bucket = it->second.ring[slot_of(hour)];
    if (bucket.hour > hour)
        return; // the ring has moved past this hour
    if (bucket.hour < hour)
        bucket = Bucket{hour, Counts{}};
    bucket.counts[counter] += n;
}

void Rates::record(const Event& e, TimePoint now) {
    const auto& d = e.sending_domain;
    const auto flag = [&](const std::optional<bool>& f, Counter c) {
        if (f.value_or(false))
            add(d, c, now);
    };
    switch (e.type) {
    case EventType::Received:
        add(d, Counter::Received, now);
        flag(e.dmarc_aligned, Counter::DmarcAligned);
        break;
    case EventType::Delivered:
        add(d, Counter::Delivered, now);
        flag(e.tls, Counter::DeliveredTls);
        flag(e.bulk, Counter::Bulk);
        flag(e.bulk.value_or(false) ? e.one_click : std::nullopt, Counter::OneClick);
        break;
    case EventType::Deferred:
        add(d, Counter::Deferred, now);
        break;
    case EventType::Bounced:
        add(d, e.hard.value_or(false) ? Counter::HardBounces : Counter::SoftBounces, now);
        break;
    case EventType::Expired:
        add(d, Counter::SoftBounces, now);
        break;
    case EventType::Complained:
        add(d, Counter::Complaints, now);
        break;
    case EventType::Unsubscribed:
        add(d, Counter::Unsubscribes, now);
        break;
    default:
        break;
    }
}

Counts Rates::window(std::string_view sending_domain, std::chrono::hours span,
                     TimePoint now) const {
    Counts total;
    const auto it = domains_.find(lowercase(sending_domain));
    if (it == domains_.end())
        return total;
    const std::int64_t hours =
        std::clamp<std::int64_t>(span.count(), 1, static_cast<std::int64_t>(kBuckets));
    const std::int64_t last = hour_of(now);
    const std::int64_t first = last - hours + 1;
    for (const auto& bucket : it->second.ring)
        if (bucket.hour >= first && bucket.hour <= last)
            for (std::size_t i = 0; i < kCounters; ++i)
                total.values[i] += bucket.counts.values[i];
    return total;
}

std::vector<std::string> Rates::domains() const {
    std::vector<std::string> out;
    for (const auto& [name, domain] : domains_)
        if (std::any_of(domain.ring.begin(), domain.ring.end(),
                        [](const Bucket& b) { return b.hour >= 0; }))
            out.push_back(name);
    return out;
}

void Rates::prune(TimePoint now) {
    const std::int64_t first = hour_of(now) - static_cast<std::int64_t>(kBuckets) + 1;
    std::erase_if(domains_, [first](const auto& entry) {
        return std::none_of(entry.second.ring.begin(), entry.second.ring.end(),
                            [first](const Bucket& b) { return b.hour >= first; });
    });
}

std::string Rates::serialize() const {
    json::object root;
    root["version"] = 1;
    json::array names;
    for (const auto name : kCounterNames)
        names.emplace_back(name);
    root["counters"] = std::move(names);
    json::object domains;
    for (const auto& [name, domain] : domains_) {
        json::array rows;
        for (const auto& bucket : domain.ring) {
            if (bucket.hour < 0)
                continue;
            json::array row;
            row.emplace_back(bucket.hour);
            for (const auto v : bucket.counts.values)
                row.emplace_back(v);
            rows.emplace_back(std::move(row));
        }
        if (!rows.empty())
            domains[name] = std::move(rows);
    }
    root["domains"] = std::move(domains);
    return json::serialize(root);
}

bool Rates::restore(std::string_view text) {
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    if (ec || !v.is_object())
        return false;
    const auto* counters = v.get_object().if_contains("counters");
    const auto* domains = v.get_object().if_contains("domains");
    if (counters == nullptr || !counters->is_array() || domains == nullptr || !domains->is_object())
        return false;
    std::vector<std::optional<Counter>> names;
    for (const auto& name : counters->get_array())
        names.push_back(name.is_string() ? parse_counter(name.get_string()) : std::nullopt);
    std::map<std::string, Domain, std::less<>> restored;
    for (const auto& [name, rows] : domains->get_object()) {
        if (!rows.is_array())
            return false;
        std::array<std::pair<std::int64_t, Counts>, kBuckets> buckets;
        buckets.fill({-1, Counts{}});
        if (!restore_buckets(rows.get_array(), names, buckets))
            return false;
        Domain& domain = restored[lowercase(name)];
        for (std::size_t i = 0; i < kBuckets; ++i)
            domain.ring[i] = Bucket{buckets[i].first, buckets[i].second};
    }
    domains_ = std::move(restored);
    return true;
}

} // namespace ember::feedback
