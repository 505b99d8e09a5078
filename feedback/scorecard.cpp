// The compliance scorecard half of feedback/rates.hpp: each bulk-sender
// rule as a line with the measured value, the bar, pass or fail, and why.

#include "feedback/rates.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace ember::feedback {

namespace json = boost::json;

namespace {

std::string percent(double share) {
    return fmt::format("{:.2f} %", share * 100.0);
}

// "2d 3h", "5m 20s", "850ms": a delay as people read it.
std::string human_duration(core::Duration d) {
    auto ms = d.count();
    if (ms < 1000)
        return fmt::format("{}ms", ms);
    constexpr std::array<std::pair<std::int64_t, const char*>, 4> kUnits = {
        {{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}}};
    std::string out;
    int parts = 0;
    for (const auto& [size, unit] : kUnits) {
        if (ms >= size && parts < 2) {
            out += fmt::format("{}{}{}", out.empty() ? "" : " ", ms / size, unit);
            ms %= size;
            ++parts;
        } else if (parts > 0) {
            ++parts; // only two adjacent units: "1d 3h", never "1d 5s"
        }
    }
    return out;
}

ScoreLine share_line(std::string rule, std::optional<double> measured, double threshold) {
    ScoreLine line;
    line.rule = std::move(rule);
    line.measured = measured;
    line.threshold = threshold;
    line.measured_text = measured ? percent(*measured) : "-";
    line.threshold_text = ">= " + percent(threshold);
    line.verdict =
        !measured ? Verdict::NoData : (*measured >= threshold ? Verdict::Pass : Verdict::Fail);
    return line;
}

ScoreLine rate_line(std::string rule, std::optional<double> measured, double threshold) {
    ScoreLine line;
    line.rule = std::move(rule);
    line.measured = measured;
    line.threshold = threshold;
    line.measured_text = measured ? percent(*measured) : "-";
    line.threshold_text = "< " + percent(threshold);
    line.verdict =
        !measured ? Verdict::NoData : (*measured < threshold ? Verdict::Pass : Verdict::Fail);
    return line;
}

ScoreLine aligned_line(const Counts& c, const ComplianceThresholds& t) {
    auto line = share_line("dmarc_aligned_share", c.aligned_share(), t.aligned_share);
    const auto all = c[Counter::Received];
    const auto aligned = c[Counter::DmarcAligned];
    if (line.verdict == Verdict::NoData)
        line.why = "no mail received in the window";
    else if (line.verdict == Verdict::Pass)
        line.why = fmt::format("{} of {} received messages were DMARC-aligned", aligned, all);
    else
        line.why = fmt::format("{} of {} received messages were not DMARC-aligned; Gmail and "
                               "Yahoo require bulk mail to pass DMARC with an aligned From: domain",
                               all - aligned, all);
    return line;
}

ScoreLine one_click_line(const Counts& c, const ComplianceThresholds& t) {
    auto line = share_line("one_click_share", c.one_click_share(), t.one_click_share);
    const auto bulk = c[Counter::Bulk];
    const auto with_link = c[Counter::OneClick];
    if (line.verdict == Verdict::NoData)
        line.why = "no bulk mail delivered in the window";
    else if (line.verdict == Verdict::Pass)
        line.why = fmt::format("{} of {} bulk messages carried a signed one-click "
                               "List-Unsubscribe (RFC 8058)",
                               with_link, bulk);
    else
        line.why = fmt::format("{} of {} bulk messages lacked a signed one-click "
                               "List-Unsubscribe (RFC 8058), which Gmail and Yahoo require",
                               bulk - with_link, bulk);
    return line;
}

ScoreLine complaint_line(const Counts& c, double threshold, bool limit) {
    auto line = rate_line(limit ? "complaint_rate_limit" : "complaint_rate_target",
                          c.complaint_rate(), threshold);
    const auto counts = fmt::format("{} complaints over {} delivered", c[Counter::Complaints],
                                    c[Counter::Delivered]);
    if (line.verdict == Verdict::NoData)
        line.why = "nothing delivered in the window";
    else if (line.verdict == Verdict::Pass)
        line.why = counts;
    else if (!limit)
        line.why = counts + "; Gmail and Yahoo ask senders to stay under this rate, and ember's "
                            "warm-up holds the ramp above it";
    else
        line.why = counts + "; at this rate Gmail and Yahoo reject or junk mail and stop "
                            "mitigating, and ember's warm-up pauses the domain";
    return line;
}

ScoreLine bounce_line(const Counts& c, const ComplianceThresholds& t) {
    auto line = rate_line("hard_bounce_rate", c.hard_bounce_rate(), t.hard_bounce_rate);
    const auto final_outcomes =
        c[Counter::Delivered] + c[Counter::HardBounces] + c[Counter::SoftBounces];
    const auto counts = fmt::format("{} hard bounces over {} final outcomes",
                                    c[Counter::HardBounces], final_outcomes);
    if (line.verdict == Verdict::NoData)
        line.why = "no final delivery outcome in the window";
    else if (line.verdict == Verdict::Pass)
        line.why = counts;
    else
        line.why = counts + "; a list this stale hurts reputation (bounced addresses are "
                            "suppressed; check where the list comes from)";
    return line;
}

ScoreLine tls_line(const Counts& c, const ComplianceThresholds& t) {
    auto line = share_line("tls_share", c.tls_share(), t.tls_share);
    const auto all = c[Counter::Delivered];
    const auto tls = c[Counter::DeliveredTls];
    if (line.verdict == Verdict::NoData)
        line.why = "nothing delivered in the window";
    else if (line.verdict == Verdict::Pass)
        line.why = fmt::format("{} of {} deliveries used TLS", tls, all);
    else
        line.why = fmt::format("{} of {} deliveries went without TLS; Gmail and Yahoo require "
                               "TLS (counted over every destination)",
                               all - tls, all);
    return line;
}

ScoreLine fcrdns_line(const ComplianceFacts& facts) {
    ScoreLine line;
    line.rule = "fcrdns";
    line.threshold = 1.0;
    line.threshold_text = "every source";
    if (facts.sources.empty()) {
        line.measured_text = "-";
        line.why = "no source address was checked";
        return line;
    }
    std::vector<std::string> bad;
    for (const auto& s : facts.sources)
        if (!s.confirmed)
            bad.push_back(s.ptr.empty()
                              ? s.address + " (no PTR)"
                              : fmt::format("{} (PTR {} does not resolve back)", s.address, s.ptr));
    const auto good = facts.sources.size() - bad.size();
    line.measured = static_cast<double>(good) / static_cast<double>(facts.sources.size());
    line.measured_text = fmt::format("{}/{}", good, facts.sources.size());
    line.verdict = bad.empty() ? Verdict::Pass : Verdict::Fail;
    line.why = bad.empty() ? fmt::format("all {} source addresses have forward-confirmed reverse "
                                         "DNS",
                                         facts.sources.size())
                           : fmt::format("no forward-confirmed reverse DNS for {}; Gmail and "
                                         "Yahoo require it",
                                         fmt::join(bad, ", "));
    return line;
}

ScoreLine unsubscribe_line(const ComplianceFacts& facts, const ComplianceThresholds& t) {
    ScoreLine line;
    line.rule = "unsubscribe_delay";
    line.threshold = static_cast<double>(t.unsubscribe_delay.count()) / 1000.0;
    line.threshold_text = "< " + human_duration(t.unsubscribe_delay);
    if (!facts.longest_unsubscribe_delay) {
        line.measured_text = "-";
        line.why = "no unsubscribe processed yet";
        return line;
    }
    const auto delay = *facts.longest_unsubscribe_delay;
    line.measured = static_cast<double>(delay.count()) / 1000.0;
    line.measured_text = human_duration(delay);
    line.verdict = delay < t.unsubscribe_delay ? Verdict::Pass : Verdict::Fail;
    line.why = line.verdict == Verdict::Pass
                   ? "the slowest unsubscribe reached the suppression list in " + line.measured_text
                   : "an unsubscribe took " + line.measured_text +
                         " to reach the suppression list; Gmail and Yahoo require 2 days at most";
    return line;
}

json::object line_json(const ScoreLine& l) {
    json::object o;
    o["rule"] = l.rule;
    if (l.measured)
        o["measured"] = *l.measured;
    else
        o["measured"] = nullptr;
    o["measured_text"] = l.measured_text;
    o["threshold"] = l.threshold;
    o["threshold_text"] = l.threshold_text;
    o["result"] = verdict_name(l.verdict);
    o["why"] = l.why;
    return o;
}

} // namespace

std::string_view verdict_name(Verdict v) {
    switch (v) {
    case Verdict::Pass:
        return "pass";
    case Verdict::Fail:
        return "fail";
    case Verdict::NoData:
        break;
    }
    return "n/a";
}

bool Scorecard::pass() const {
    return std::none_of(lines.begin(), lines.end(),
                        [](const ScoreLine& l) { return l.verdict == Verdict::Fail; });
}

Scorecard scorecard(std::string_view domain, const Counts& counts, std::chrono::hours window,
                    const ComplianceFacts& facts, const ComplianceThresholds& thresholds) {
    Scorecard card;
    card.domain = std::string(domain);
    card.window = fmt::format("{}h", window.count());
    card.counts = counts;
    card.lines.push_back(aligned_line(counts, thresholds));
    card.lines.push_back(one_click_line(counts, thresholds));
    card.lines.push_back(complaint_line(counts, thresholds.complaint_target, false));
    card.lines.push_back(complaint_line(counts, thresholds.complaint_limit, true));
    card.lines.push_back(bounce_line(counts, thresholds));
    card.lines.push_back(tls_line(counts, thresholds));
    card.lines.push_back(fcrdns_line(facts));
    card.lines.push_back(unsubscribe_line(facts, thresholds));
    return card;
}

std::string format_scorecards_text(const std::vector<Scorecard>& cards) {
    std::string out;
    for (const auto& card : cards) {
        if (!out.empty())
            out += '\n';
        out += fmt::format("{}  window {}  {}\n", card.domain, card.window,
                           card.pass() ? "PASS" : "FAIL");
        for (const auto& l : card.lines)
            out += fmt::format("  {:<4}  {:<22} {:>9}  {:<12}  {}\n", verdict_name(l.verdict),
                               l.rule, l.measured_text, l.threshold_text, l.why);
    }
    return out;
}

std::string format_scorecards_json(const std::vector<Scorecard>& cards) {
    json::array domains;
    for (const auto& card : cards) {
        json::object o;
        o["domain"] = card.domain;
        o["window"] = card.window;
        o["pass"] = card.pass();
        json::object counts;
        for (std::size_t i = 0; i < kCounters; ++i)
            counts[counter_name(static_cast<Counter>(i))] = card.counts.values[i];
        o["counts"] = std::move(counts);
        json::array lines;
        for (const auto& l : card.lines)
            lines.emplace_back(line_json(l));
        o["rules"] = std::move(lines);
        domains.emplace_back(std::move(o));
    }
    json::object root;
    root["domains"] = std::move(domains);
    return json::serialize(root);
}

} // namespace ember::feedback
