#include "daemon/ab_service.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/feedback_async.hpp"
#include "daemon/personalize_service.hpp"
#include "personalize/time_text.hpp"
#include "queue/scheduler.hpp"
#include "smtp/message_header.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
namespace pz = personalize;

std::int64_t system_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string time_text(std::int64_t ms) {
    return ms > 0 ? pz::format_rfc3339(ms) : std::string();
}

json::object cell_json(const AbCell& c) {
    const auto& n = c.counts;
    return json::object{{"name", c.name},
                        {"split", c.split},
                        {"recipients", c.recipients},
                        {"delivered", n.delivered},
                        {"opens", n.opens},
                        {"clicks", n.clicks},
                        {"open_rate", pz::ab_rate(n, pz::AbMetric::Opens)},
                        {"click_rate", pz::ab_rate(n, pz::AbMetric::Clicks)}};
}

json::value decision_json(const AbTest& t) {
    if (!t.decided)
        return nullptr;
    const auto& d = t.decision;
    json::object o{{"winner", t.winner},
                   {"winner_rate", d.winner_rate},
                   {"runner_up_rate", d.runner_up_rate},
                   {"z", d.z},
                   {"p_value", d.p_value},
                   {"significant", d.significant},
                   {"decided_at", time_text(t.decided_ms)},
                   {"decided_at_ms", t.decided_ms}};
    if (d.runner_up && *d.runner_up < t.cells.size())
        o["runner_up"] = t.cells[*d.runner_up].name;
    else
        o["runner_up"] = nullptr;
    return o;
}

std::int64_t int_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_number())
        return 0;
    return v->is_double() ? static_cast<std::int64_t>(v->get_double())
                          : v->to_number<std::int64_t>();
}

double double_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_number() ? v->to_number<double>() : 0.0;
}

std::string string_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::uint64_t count_of(const json::object& o, std::string_view key) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(int_of(o, key), 0));
}

void read_decision(const json::object& d, AbTest& t) {
    t.decided_ms = int_of(d, "decided_at_ms");
    t.decision.winner_rate = double_of(d, "winner_rate");
    t.decision.runner_up_rate = double_of(d, "runner_up_rate");
    t.decision.z = double_of(d, "z");
    t.decision.p_value = double_of(d, "p_value");
    const auto* s = d.if_contains("significant");
    t.decision.significant = s != nullptr && s->is_bool() && s->get_bool();
    for (std::size_t i = 0; i < t.cells.size(); ++i) {
        if (t.cells[i].name == t.winner)
            t.decision.winner = i;
        if (t.cells[i].name == string_of(d, "runner_up"))
            t.decision.runner_up = i;
    }
}

bool counted_engagement(const feedback::Event& e) {
    const auto* unique = e.extra.if_contains("unique");
    const auto* machine = e.extra.if_contains("machine");
    const bool is_unique = unique != nullptr && unique->is_bool() && unique->get_bool();
    const bool is_machine = machine != nullptr && machine->is_bool() && machine->get_bool();
    return is_unique && !is_machine;
}

} // namespace

// ---- the record ----------------------------------------------------------

json::object ab_test_json(const AbTest& t) {
    json::array cells;
    for (const auto& c : t.cells)
        cells.push_back(cell_json(c));
    return json::object{{"id", t.id},
                        {"campaign", t.campaign},
                        {"created", time_text(t.created_ms)},
                        {"created_ms", t.created_ms},
                        {"decide_at", time_text(t.decide_at_ms)},
                        {"decide_at_ms", t.decide_at_ms},
                        {"metric", pz::ab_metric_name(t.metric)},
                        {"state", t.decided ? "decided" : "testing"},
                        {"rest", t.rest},
                        {"cells", std::move(cells)},
                        {"winner", t.decided ? json::value(t.winner) : json::value(nullptr)},
                        {"decision", decision_json(t)}};
}

std::optional<AbTest> ab_test_from_json(std::string_view text) {
    boost::system::error_code ec;
    const auto value = json::parse(text, ec);
    if (ec || !value.is_object())
        return std::nullopt;
    const auto& o = value.get_object();
    AbTest t;
    t.id = string_of(o, "id");
    t.campaign = string_of(o, "campaign");
    t.created_ms = int_of(o, "created_ms");
    t.decide_at_ms = int_of(o, "decide_at_ms");
    const auto metric = pz::parse_ab_metric(string_of(o, "metric"));
    const auto* cells = o.if_contains("cells");
    if (t.id.empty() || !metric || cells == nullptr || !cells->is_array())
        return std::nullopt;
    t.metric = *metric;
    t.rest = count_of(o, "rest");
    for (const auto& c : cells->get_array()) {
        if (!c.is_object())
            return std::nullopt;
        const auto& co = c.get_object();
        AbCell cell{string_of(co, "name"),
                    double_of(co, "split"),
                    count_of(co, "recipients"),
                    {count_of(co, "delivered"), count_of(co, "opens"), count_of(co, "clicks")}};
        t.cells.push_back(std::move(cell));
    }
    t.decided = string_of(o, "state") == "decided";
    t.winner = string_of(o, "winner");
    if (const auto* d = o.if_contains("decision"); t.decided && d != nullptr && d->is_object())
        read_decision(d->get_object(), t);
    return t;
}

std::string format_ab_field(std::string_view test_id, std::string_view cell) {
    return fmt::format("{}; cell={}", test_id, cell);
}

std::optional<AbField> parse_ab_field(std::string_view value) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
            s.remove_prefix(1);
        while (!s.empty() &&
               (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
            s.remove_suffix(1);
        return s;
    };
    const auto semi = value.find(';');
    if (semi == std::string_view::npos)
        return std::nullopt;
    AbField out{std::string(trim(value.substr(0, semi))), {}};
    auto rest = trim(value.substr(semi + 1));
    if (!rest.starts_with("cell="))
        return std::nullopt;
    rest.remove_prefix(5);
    out.cell = std::string(trim(rest.substr(0, rest.find(';'))));
    if (out.test_id.empty() || out.cell.empty())
        return std::nullopt;
    return out;
}

core::Outcome ab_held_outcome(std::string_view test_id, std::int64_t until_ms) {
    // Throttled: not an attempt, no retry or expiry spent (core/outcome.hpp);
    // 4.7.0 like the personalization hook's holds (RFC 3463: policy).
    core::Outcome o;
    o.kind = core::OutcomeKind::Throttled;
    o.scope = core::OutcomeScope::Recipient;
    o.code = 451;
    o.enhanced = "4.7.0";
    o.text = fmt::format("held for A/B test {} until {}", test_id, pz::format_rfc3339(until_ms));
    o.command = "ab";
    o.local = true;
    o.not_before_ms = until_ms;
    return o;
}

// ---- the service -----------------------------------------------------------

AbService::AbService(asio::any_io_executor executor, queue::Store& store, Clock clock)
    : executor_(std::move(executor)), store_(store),
      clock_(clock ? std::move(clock) : Clock(system_ms)), timer_(executor_) {}

std::unique_ptr<AbService> AbService::create(asio::any_io_executor executor, queue::Store& store,
                                             std::string& error, Clock clock) {
    std::unique_ptr<AbService> s(new AbService(std::move(executor), store, std::move(clock)));
    const auto table = store.open_table(std::string(kAbTable), error);
    if (!table)
        return nullptr;
    s->table_ = *table;
    std::size_t unreadable = 0;
    std::vector<queue::Store::KvWrite> expired;
    const auto oldest = s->clock_() - kAbRetentionMs;
    store.kv_scan(*table, "", "", [&](std::string_view key, std::string_view value) {
        auto t = ab_test_from_json(value);
        if (!t)
            ++unreadable;
        else if (t->decided && t->decided_ms < oldest)
            expired.push_back({*table, std::string(key), std::nullopt});
        else
            s->tests_.emplace(std::string(key), std::move(*t));
        return true;
    });
    if (unreadable > 0)
        log::warning("ab.records_unreadable", "count={}", unreadable);
    if (!expired.empty()) {
        log::info("ab.records_expired", "count={}", expired.size());
        store.kv_write(std::move(expired), [](queue::CommitResult r) {
            if (r.status != queue::CommitStatus::Ok)
                log::warning("ab.expire_failed", "error={}", log::q(r.detail));
        });
    }
    s->last_save_ms_ = s->clock_();
    return s;
}

void AbService::start() {
    running_ = true;
    core::spawn(executor_, loop(this, ++generation_), "ab.timer");
}

void AbService::stop() {
    if (running_) {
        running_ = false;
        ++generation_;
        timer_.cancel();
    }
    save_changed();
}

asio::awaitable<void> AbService::loop(AbService* self, std::uint64_t generation) {
    while (self->running_ && self->generation_ == generation) {
        self->timer_.expires_after(kAbTick);
        auto [ec] = co_await self->timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || !self->running_ || self->generation_ != generation)
            co_return;
        (void)self->decide_due();
        const auto interval = std::chrono::milliseconds(kSaveInterval).count();
        if (self->clock_() - self->last_save_ms_ >= interval)
            self->save_changed();
    }
}

asio::awaitable<bool> AbService::create_test(AbTest test, std::chrono::milliseconds duration) {
    test.created_ms = clock_();
    test.decide_at_ms = test.created_ms + duration.count();
    std::vector<queue::Store::KvWrite> writes;
    writes.push_back({table_, test.id, json::serialize(ab_test_json(test))});
    auto id = test.id;
    tests_.insert_or_assign(std::move(id), std::move(test));
    auto* store = &store_;
    auto start = [store, writes = std::move(writes)](std::function<void(bool)> done) mutable {
        store->kv_write(std::move(writes), [done = std::move(done)](queue::CommitResult r) {
            if (r.status != queue::CommitStatus::Ok)
                log::error("ab.save_failed", "error={}", log::q(r.detail));
            done(r.status == queue::CommitStatus::Ok);
        });
    };
    return await_callback<bool>(std::move(start));
}

void AbService::on_event(const feedback::Event& e) {
    if (e.ab_test.empty() || e.variant.empty() || e.variant == kRestCell)
        return;
    const auto it = tests_.find(e.ab_test);
    if (it == tests_.end())
        return;
    auto& cells = it->second.cells;
    const auto cell = std::find_if(cells.begin(), cells.end(),
                                   [&](const AbCell& c) { return c.name == e.variant; });
    if (cell == cells.end())
        return;
    auto& n = cell->counts;
    switch (e.type) {
    case feedback::EventType::Delivered:
        ++n.delivered;
        break;
    case feedback::EventType::Opened:
        if (!counted_engagement(e))
            return;
        ++n.opens;
        break;
    case feedback::EventType::Clicked:
        if (!counted_engagement(e))
            return;
        ++n.clicks;
        break;
    default:
        return;
    }
    dirty_[it->first] = true;
}

std::size_t AbService::decide_due() {
    const auto now = clock_();
    std::size_t decided = 0;
    for (auto& [id, test] : tests_) {
        if (test.decided || now < test.decide_at_ms)
            continue;
        decide(test);
        ++decided;
    }
    if (decided > 0 && release_)
        release_();
    return decided;
}

void AbService::decide(AbTest& t) {
    std::vector<pz::AbCellCounts> counts;
    for (const auto& c : t.cells)
        counts.push_back(c.counts);
    t.decision = pz::decide(counts, t.metric);
    t.decided = true;
    t.decided_ms = clock_();
    t.winner = t.cells.at(t.decision.winner).name;
    const auto& w = t.cells[t.decision.winner].counts;
    log::info("ab.decided",
              "test={} campaign={} metric={} winner={} rate={:.4f} runner_up={} "
              "runner_up_rate={:.4f} z={:.3f} p={:.4f} significant={} delivered={} rest={}",
              t.id, log::q(t.campaign), pz::ab_metric_name(t.metric), log::q(t.winner),
              t.decision.winner_rate,
              t.decision.runner_up ? log::q(t.cells[*t.decision.runner_up].name) : "-",
              t.decision.runner_up_rate, t.decision.z, t.decision.p_value, t.decision.significant,
              w.delivered, t.rest);
    save(t);
}

void AbService::save(const AbTest& t) {
    dirty_.erase(t.id);
    std::vector<queue::Store::KvWrite> writes;
    writes.push_back({table_, t.id, json::serialize(ab_test_json(t))});
    store_.kv_write(std::move(writes), [id = t.id](queue::CommitResult r) {
        if (r.status != queue::CommitStatus::Ok)
            log::error("ab.save_failed", "test={} error={}", id, log::q(r.detail));
    });
}

void AbService::save_changed() {
    last_save_ms_ = clock_();
    const auto dirty = std::move(dirty_);
    dirty_.clear();
    for (const auto& [id, changed] : dirty) {
        if (const auto it = tests_.find(id); changed && it != tests_.end())
            save(it->second);
    }
}

AbPlacement AbService::place(const AbField& field, std::string_view queue_id) {
    if (field.cell != kRestCell)
        return {AbPlacement::Kind::Variant, field.cell, 0};
    const auto it = tests_.find(field.test_id);
    if (it == tests_.end()) {
        log::warning("ab.unknown_test", "id={} test={} note=\"sent as the control\"", queue_id,
                     log::q(field.test_id));
        return {AbPlacement::Kind::Variant, "", 0};
    }
    const auto& t = it->second;
    if (t.decided)
        return {AbPlacement::Kind::Variant, t.winner, 0};
    // Due but not yet decided (the timer looks every kAbTick): a short hold.
    const auto now = clock_();
    return {AbPlacement::Kind::Hold, "", std::max(t.decide_at_ms + kHoldMarginMs, now + 1000)};
}

const AbTest* AbService::find(std::string_view id) const {
    const auto it = tests_.find(id);
    return it == tests_.end() ? nullptr : &it->second;
}

std::vector<const AbTest*> AbService::tests() const {
    std::vector<const AbTest*> out;
    for (const auto& [id, t] : tests_)
        out.push_back(&t);
    std::sort(out.begin(), out.end(), [](const AbTest* a, const AbTest* b) {
        return a->created_ms != b->created_ms ? a->created_ms > b->created_ms : a->id < b->id;
    });
    return out;
}

namespace {

asio::awaitable<void> release_held(queue::Scheduler* scheduler) {
    const auto change = co_await scheduler->release_throttled();
    log::info("ab.released", "recipients={}", change.recipients);
}

} // namespace

AbService::Release scheduler_release(asio::any_io_executor executor, queue::Scheduler& scheduler) {
    auto* s = &scheduler;
    return [executor, s] {
        core::spawn(executor, release_held(s), "ab.release");
    };
}

// ---- the stage -------------------------------------------------------------

asio::awaitable<void> AbStage::apply(std::shared_ptr<DispatchContext> ctx) {
    if (!ctx->job.content || ctx->job.envelope.mail_from.empty())
        co_return; // a DSN quotes mail; it is no test's
    const auto header = smtp::parse_header_block(*ctx->job.content);
    const auto* field = smtp::find_field(header, kAbHeader);
    if (field == nullptr)
        co_return;
    const auto ab = parse_ab_field(smtp::unfold(field->value));
    if (!ab) {
        log::warning("ab.bad_field", "id={} value={}", ctx->job.queue_id,
                     log::q(smtp::unfold(field->value)));
        co_return;
    }
    const auto placement = service_.place(*ab, ctx->job.queue_id);
    for (auto& r : ctx->recipients) {
        if (r.decided)
            continue;
        if (placement.kind == AbPlacement::Kind::Hold)
            r.decided = ab_held_outcome(ab->test_id, placement.until_ms);
        else
            r.variant = placement.variant;
    }
    co_return;
}

} // namespace ember::daemon
