#include "warmup/simulate.hpp"

#include "warmup/format.hpp"

#include <boost/json/array.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>

namespace ember::warmup {
namespace {

using namespace std::chrono;

constexpr std::uint32_t kSynthetic = UINT32_MAX; // an arrival without a logged outcome
constexpr std::size_t kComplaint = SIZE_MAX;     // an arrival that is a complaint, not a send

struct Arrival {
    TimePoint time{};
    std::size_t lane = 0;
    std::uint32_t event = kSynthetic; // index into input.events
};

struct Lane {
    Key key;
    std::deque<std::uint32_t> backlog; // events (or kSynthetic), oldest first
    TimePoint next_try{};
};

core::Outcome outcome_of(const LoggedEvent& e) {
    core::Outcome o;
    o.scope = core::OutcomeScope::Recipient;
    o.enhanced = e.enhanced;
    o.text = e.text;
    o.remote_host = e.mx_host;
    switch (e.type) {
    case LoggedType::Delivered:
        o.kind = core::OutcomeKind::Delivered;
        o.code = e.code != 0 ? e.code : 250;
        break;
    case LoggedType::Deferred:
        o.kind = core::OutcomeKind::Deferred;
        o.code = e.code != 0 ? e.code : 451;
        break;
    default:
        o.kind = core::OutcomeKind::Failed;
        o.code = e.code != 0 ? e.code : 550;
        break;
    }
    return o;
}

class Simulator {
public:
    Simulator(const Config& config, const SimulationInput& input)
        : config_(config), input_(input), engine_(config) {}

    SimulationReport run() {
        if (!(input_.events.empty() ? prepare_synthetic() : prepare_replay()))
            return std::move(report_);
        for (std::uint32_t n = 1; n <= days_; ++n)
            run_day(n, first_ + days(n - 1));
        std::uint64_t left = 0;
        for (const auto& lane : lanes_)
            left += lane.backlog.size();
        if (left != 0)
            report_.notes.push_back(
                fmt::format("{} recipients are still queued after the last day", left));
        for (auto& [at, row] : rows_)
            report_.rows.push_back(std::move(row));
        return std::move(report_);
    }

private:
    bool fail(std::string message) {
        report_.error = std::move(message);
        return false;
    }

    bool prepare_synthetic() {
        if (input_.daily_volume.empty())
            return fail("nothing to simulate: give a daily volume per provider "
                        "(--daily-volume gmail=5000) or an event log (--from-events)");
        const Sender* sender = nullptr;
        std::string domain = input_.sending_domain;
        if (domain.empty()) {
            if (config_.senders.empty())
                return fail(config_.file + " has no [[sender]]: name the sending domain");
            sender = &config_.senders.front();
            domain = sender->domain;
        } else {
            for (const auto& s : config_.senders) {
                if (s.domain == domain && sender == nullptr)
                    sender = &s;
            }
        }
        if (input_.first_day)
            first_ = *input_.first_day;
        else if (sender != nullptr)
            first_ = sender->start;
        else
            return fail(domain + " has no [[sender]] entry: give the first day to simulate");
        days_ = input_.days;
        for (const auto& [provider, volume] : input_.daily_volume) {
            if (config_.provider(provider) == nullptr)
                return fail(unknown_provider(provider));
            if (std::any_of(lanes_.begin(), lanes_.end(),
                            [&](const Lane& l) { return l.key.provider == provider; }))
                return fail("provider \"" + provider + "\" is given twice");
            lane_for(Key{domain, provider, sender != nullptr ? sender->source : ""});
            volumes_.push_back(volume);
        }
        report_.notes.push_back(
            fmt::format("synthetic: {} from {}, every send delivered", domain, format_day(first_)));
        return true;
    }

    std::string unknown_provider(const std::string& name) const {
        std::string names;
        for (const auto& p : config_.providers)
            names += (names.empty() ? "" : ", ") + p.name;
        return fmt::format("unknown provider \"{}\" (the config has: {})", name, names);
    }

    bool prepare_replay() {
        const auto& events = input_.events;
        first_ = input_.first_day.value_or(day_of(events.front().time));
        days_ = input_.days != 0
                    ? input_.days
                    : static_cast<std::uint32_t>((day_of(events.back().time) - first_).count() + 1);
        event_lane_.resize(events.size(), kComplaint);
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& e = events[i];
            if (e.type == LoggedType::Complained)
                continue;
            engine_.learn_mx(e.recipient_domain, e.mx_host);
            event_lane_[i] = lane_for(engine_.key(e.sending_domain, e.recipient_domain));
        }
        report_.notes.push_back(
            fmt::format("replay: {} events from {}", events.size(), format_day(first_)));
        return true;
    }

    std::size_t lane_for(const Key& key) {
        const auto name = key.to_string();
        const auto [it, fresh] = lane_index_.emplace(name, lanes_.size());
        if (fresh)
            lanes_.push_back(Lane{key, {}, {}});
        return it->second;
    }

    std::vector<Arrival> arrivals(TimePoint start, TimePoint end) {
        std::vector<Arrival> out;
        if (input_.events.empty()) {
            for (std::size_t lane = 0; lane < volumes_.size(); ++lane) {
                const auto n = volumes_[lane];
                for (std::uint64_t k = 0; k < n; ++k)
                    out.push_back({start + milliseconds(k * 86'400'000ULL / n), lane, kSynthetic});
            }
            std::stable_sort(out.begin(), out.end(),
                             [](const Arrival& a, const Arrival& b) { return a.time < b.time; });
            return out;
        }
        const auto& events = input_.events;
        while (cursor_ < events.size() && events[cursor_].time < start)
            ++cursor_; // before the first simulated day
        for (; cursor_ < events.size() && events[cursor_].time < end; ++cursor_)
            out.push_back(
                {events[cursor_].time, event_lane_[cursor_], static_cast<std::uint32_t>(cursor_)});
        return out;
    }

    void run_day(std::uint32_t n, Day date) {
        const auto start = start_of(date);
        const auto end = start + days(1);
        const auto incoming = arrivals(start, end);
        for (const auto& a : incoming) {
            if (a.lane != kComplaint)
                ++row(n, a.lane).offered;
        }
        std::size_t next_arrival = 0;
        while (true) {
            auto t = end;
            if (next_arrival < incoming.size())
                t = std::min(t, incoming[next_arrival].time);
            for (const auto& lane : lanes_) {
                if (!lane.backlog.empty())
                    t = std::min(t, lane.next_try);
            }
            if (t >= end)
                break;
            for (; next_arrival < incoming.size() && incoming[next_arrival].time <= t;
                 ++next_arrival)
                arrive(incoming[next_arrival], t);
            for (std::size_t i = 0; i < lanes_.size(); ++i) {
                if (!lanes_[i].backlog.empty() && lanes_[i].next_try <= t)
                    drain(n, i, t);
            }
            collect_events();
        }
        close_day(n, end - milliseconds(1));
    }

    void arrive(const Arrival& a, TimePoint t) {
        if (a.lane == kComplaint) {
            engine_.record_complaint(input_.events[a.event].sending_domain, t);
            return;
        }
        auto& lane = lanes_[a.lane];
        if (lane.backlog.empty())
            lane.next_try = t;
        lane.backlog.push_back(a.event);
    }

    void drain(std::uint32_t n, std::size_t index, TimePoint t) {
        auto& lane = lanes_[index];
        auto& r = row(n, index);
        while (!lane.backlog.empty()) {
            const auto admission = engine_.admit(lane.key, t);
            if (!admission.allowed) {
                lane.next_try = std::max(admission.until, t + milliseconds(1));
                return;
            }
            const auto event = lane.backlog.front();
            lane.backlog.pop_front();
            ++r.sent;
            if (event == kSynthetic) {
                core::Outcome delivered;
                delivered.kind = core::OutcomeKind::Delivered;
                delivered.code = 250;
                engine_.record(lane.key, delivered, false, t);
                continue;
            }
            const auto& e = input_.events[event];
            const auto outcome = outcome_of(e);
            r.deferred += outcome.kind == core::OutcomeKind::Deferred ? 1 : 0;
            r.bounced += outcome.kind == core::OutcomeKind::Failed ? 1 : 0;
            engine_.record(lane.key, outcome, e.hard, t);
        }
    }

    void collect_events() {
        for (auto& e : engine_.take_events()) {
            const auto n = static_cast<std::uint32_t>((day_of(e.time) - first_).count() + 1);
            for (std::size_t i = 0; i < lanes_.size(); ++i) {
                const auto& k = lanes_[i].key;
                const bool same = k.sending_domain == e.key.sending_domain &&
                                  (e.key.provider.empty() || e.key.provider == k.provider);
                if (!same || n < 1 || n > days_)
                    continue;
                if (e.type == EventType::BackoffStarted)
                    ++row(n, i).backoffs;
                else if (e.type == EventType::Suspended)
                    ++row(n, i).suspensions;
            }
            report_.events.push_back(std::move(e));
        }
    }

    void close_day(std::uint32_t n, TimePoint last) {
        std::map<std::string, std::vector<KeyStatus>> status;
        for (std::size_t i = 0; i < lanes_.size(); ++i) {
            const auto& lane = lanes_[i];
            auto& r = row(n, i);
            r.held = lane.backlog.size();
            auto [it, fresh] = status.try_emplace(lane.key.sending_domain);
            if (fresh)
                it->second = engine_.status(lane.key.sending_domain, last);
            for (const auto& s : it->second) {
                if (s.key == lane.key) {
                    r.ramp_day = s.ramp_day;
                    r.cap = s.cap;
                }
            }
        }
        collect_events();
    }

    DayRow& row(std::uint32_t n, std::size_t lane) {
        const auto& key = lanes_[lane].key;
        auto [it, fresh] = rows_.try_emplace({n, key.sending_domain, key.provider, key.source});
        if (fresh) {
            it->second.day = n;
            it->second.date = first_ + days(n - 1);
            it->second.sending_domain = key.sending_domain;
            it->second.provider = key.provider;
        }
        return it->second;
    }

    const Config& config_;
    const SimulationInput& input_;
    Engine engine_;
    SimulationReport report_;
    Day first_{};
    std::uint32_t days_ = 0;
    std::vector<Lane> lanes_;
    std::map<std::string, std::size_t> lane_index_;
    std::vector<std::uint64_t> volumes_;  // synthetic, per lane
    std::vector<std::size_t> event_lane_; // replay, per event
    std::size_t cursor_ = 0;
    std::map<std::tuple<std::uint32_t, std::string, std::string, std::string>, DayRow> rows_;
};

std::string opt(const std::optional<std::uint64_t>& v) {
    return v ? std::to_string(*v) : "-";
}

} // namespace

SimulationReport simulate(const Config& config, const SimulationInput& input) {
    return Simulator(config, input).run();
}

std::string format_report(const SimulationReport& report) {
    if (!report.error.empty())
        return "error: " + report.error + "\n";
    std::string out = fmt::format("{:>3} {:<10} {:<24} {:<10} {:>4} {:>9} {:>9} {:>9} {:>9} "
                                  "{:>8} {:>7} {:>8}\n",
                                  "DAY", "DATE", "DOMAIN", "PROVIDER", "RAMP", "CAP", "OFFERED",
                                  "SENT", "HELD", "DEFERRED", "BOUNCED", "BACKOFFS");
    for (const auto& r : report.rows) {
        out += fmt::format("{:>3} {:<10} {:<24} {:<10} {:>4} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} "
                           "{:>8}{}\n",
                           r.day, format_day(r.date), r.sending_domain, r.provider,
                           r.ramp_day ? std::to_string(r.ramp_day) : "-", opt(r.cap), r.offered,
                           r.sent, r.held, r.deferred, r.bounced, r.backoffs,
                           r.suspensions ? fmt::format("  suspended x{}", r.suspensions) : "");
    }
    std::size_t shown = 0;
    for (const auto& e : report.events) {
        if (e.type == EventType::CapReached || e.type == EventType::RampAdvanced)
            continue;
        if (shown++ == 0)
            out += "\nevents:\n";
        if (shown > 50) {
            out += "  ...\n";
            break;
        }
        out += fmt::format("  {} {} {}: {}\n", format_time(e.time), event_name(e.type),
                           e.key.to_string(), e.details);
    }
    for (const auto& note : report.notes)
        out += "note: " + note + "\n";
    return out;
}

boost::json::object to_json(const SimulationReport& report) {
    namespace json = boost::json;
    json::array rows;
    for (const auto& r : report.rows) {
        rows.push_back(json::object{
            {"day", r.day},
            {"date", format_day(r.date)},
            {"sending_domain", r.sending_domain},
            {"provider", r.provider},
            {"ramp_day", r.ramp_day},
            {"cap", r.cap ? json::value(*r.cap) : json::value(nullptr)},
            {"offered", r.offered},
            {"sent", r.sent},
            {"held", r.held},
            {"deferred", r.deferred},
            {"bounced", r.bounced},
            {"backoffs", r.backoffs},
            {"suspensions", r.suspensions},
        });
    }
    json::array events;
    for (const auto& e : report.events)
        events.push_back(to_json(e));
    json::array notes;
    for (const auto& n : report.notes)
        notes.push_back(json::value(n));
    json::object out{
        {"rows", std::move(rows)}, {"events", std::move(events)}, {"notes", std::move(notes)}};
    if (!report.error.empty())
        out["error"] = report.error;
    return out;
}

std::optional<std::pair<std::string, std::uint64_t>> parse_daily_volume(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0)
        return std::nullopt;
    std::uint64_t n = 0;
    const auto number = text.substr(eq + 1);
    const auto [p, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
    if (ec != std::errc() || p != number.data() + number.size() || number.empty())
        return std::nullopt;
    return std::pair{std::string(text.substr(0, eq)), n};
}

} // namespace ember::warmup
