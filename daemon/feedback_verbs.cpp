#include "daemon/feedback_verbs.hpp"

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "daemon/admin_verbs.hpp"
#include "daemon/feedback_async.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <initializer_list>
#include <string_view>

namespace ember::daemon {

namespace json = boost::json;
namespace log = core::log;

namespace {

constexpr std::size_t kMaxImportEntries = 2000; // per request; emberctl sends chunks

std::string time_text(std::int64_t ms) {
    const std::time_t t = ms / 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       ((ms % 1000) + 1000) % 1000);
}

// "global", "" and absent are the global scope; else a domain.
std::optional<std::string> scope_arg(const json::object& args, std::string& error) {
    const auto text = string_arg(args, "scope", error);
    if (!error.empty())
        return std::nullopt;
    const auto scope = feedback::normalize_scope(text.value_or(""));
    if (!scope)
        error =
            fmt::format("invalid scope \"{}\" (a sending domain or \"global\")", valid_utf8(*text));
    return scope;
}

std::optional<std::string> address_arg(const json::object& args, std::string& error) {
    const auto text = string_arg(args, "address", error);
    if (!error.empty())
        return std::nullopt;
    if (!text) {
        error = R"(missing argument "address")";
        return std::nullopt;
    }
    auto address = feedback::normalize_address(*text);
    if (!address)
        error = fmt::format("not an address: \"{}\"", valid_utf8(*text));
    return address;
}

std::string write_error(const feedback::WriteResult& r) {
    return r.detail.empty() ? std::string("the write failed") : r.detail;
}

std::string admin_source(const json::object& args) {
    std::string ignored;
    return string_arg(args, "source", ignored).value_or("emberctl");
}

// What the scorecard cannot know yet is no data, not a failure.
void mark_unknown(feedback::Scorecard& card, std::string_view rule, std::string why) {
    for (auto& line : card.lines) {
        if (line.rule != rule)
            continue;
        line.verdict = feedback::Verdict::NoData;
        line.measured.reset();
        line.measured_text = "-";
        line.why = std::move(why);
    }
}

boost::asio::awaitable<std::vector<feedback::SourceCheck>>
check_sources(dns::Resolver* resolver, std::vector<core::IpAddress> sources) {
    std::vector<feedback::SourceCheck> out;
    for (const auto& ip : sources) {
        feedback::SourceCheck c;
        c.address = ip.to_string();
        const auto names = co_await resolver->ptr(ip);
        if (names.status == dns::Status::Ok && !names.records.empty()) {
            c.ptr = names.records.front();
            dns::AddressAnswer back;
            if (ip.is_v4())
                back = co_await resolver->a(c.ptr);
            else
                back = co_await resolver->aaaa(c.ptr);
            c.confirmed =
                std::find(back.records.begin(), back.records.end(), ip) != back.records.end();
        }
        out.push_back(std::move(c));
    }
    co_return out;
}

} // namespace

json::object entry_json(const feedback::SuppressionEntry& entry) {
    return json::object{{"address", valid_utf8(entry.address)},
                        {"reason", feedback::suppression_reason_name(entry.reason)},
                        {"scope", entry.scope.empty() ? std::string("global") : entry.scope},
                        {"time", time_text(entry.time_ms)},
                        {"time_ms", entry.time_ms},
                        {"source", valid_utf8(entry.source)}};
}

std::optional<feedback::SuppressionEntry> entry_from_json(const json::value& value,
                                                          std::int64_t now_ms, std::string& error) {
    if (!value.is_object()) {
        error = "an entry must be an object";
        return std::nullopt;
    }
    const auto& o = value.get_object();
    error = unknown_argument(o, {"address", "reason", "scope", "time_ms", "source", "time"});
    feedback::SuppressionEntry entry;
    const auto address = error.empty() ? address_arg(o, error) : std::nullopt;
    const auto scope = error.empty() ? scope_arg(o, error) : std::nullopt;
    const auto reason = error.empty() ? string_arg(o, "reason", error) : std::nullopt;
    if (!error.empty())
        return std::nullopt;
    entry.address = *address;
    entry.scope = *scope;
    if (reason) {
        const auto r = feedback::parse_suppression_reason(*reason);
        if (!r) {
            error = fmt::format("unknown reason \"{}\" (hard-bounce, soft-bounce, complaint, "
                                "unsubscribe, manual)",
                                valid_utf8(*reason));
            return std::nullopt;
        }
        entry.reason = *r;
    }
    entry.time_ms = now_ms;
    if (const auto* t = o.if_contains("time_ms"); t && t->is_int64())
        entry.time_ms = t->get_int64();
    entry.source = feedback::clean_source(string_arg(o, "source", error).value_or("emberctl"));
    if (!error.empty())
        return std::nullopt;
    return entry;
}

boost::asio::awaitable<AdminResult> suppress_add(FeedbackService* service, json::object args) {
    std::string error = unknown_argument(args, {"address", "reason", "scope", "source"});
    json::object spec = args;
    if (!spec.contains("source"))
        spec["source"] = admin_source(args);
    const auto entry =
        error.empty() ? entry_from_json(spec, service->now_ms(), error) : std::nullopt;
    if (!entry)
        co_return AdminResult::failure(std::move(error));
    json::object answer{{"added", entry->address},
                        {"scope", entry->scope.empty() ? std::string("global") : entry->scope},
                        {"reason", feedback::suppression_reason_name(entry->reason)}};
    auto write = *entry;
    const auto r = co_await service->suppress(std::move(write));
    if (r.status != feedback::WriteStatus::Ok)
        co_return AdminResult::failure(write_error(r));
    log::info("suppress.added", "rcpt={} scope={} reason={} via=admin", log::q(entry->address),
              entry->scope.empty() ? "global" : entry->scope,
              feedback::suppression_reason_name(entry->reason));
    co_return answer;
}

boost::asio::awaitable<AdminResult> suppress_remove(FeedbackService* service, json::object args) {
    std::string error = unknown_argument(args, {"address", "scope"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    const bool everywhere = !args.contains("scope");
    const auto scope = error.empty() && !everywhere ? scope_arg(args, error) : std::nullopt;
    if (!error.empty())
        co_return AdminResult::failure(std::move(error));
    auto* list = &service->suppressions();
    auto start = [list, a = *address, s = scope.value_or(""),
                  everywhere](feedback::WriteDone done) mutable {
        if (everywhere)
            list->remove_everywhere(a, std::move(done));
        else
            list->remove(a, s, std::move(done));
    };
    const auto r = co_await await_callback<feedback::WriteResult>(std::move(start));
    if (r.status != feedback::WriteStatus::Ok)
        co_return AdminResult::failure(write_error(r));
    log::info("suppress.removed", "rcpt={} scope={} via=admin", log::q(*address),
              everywhere ? "all" : (scope->empty() ? "global" : *scope));
    co_return json::object{
        {"removed", *address},
        {"scope", everywhere ? std::string("all") : (scope->empty() ? "global" : *scope)}};
}

AdminResult suppress_list(FeedbackService& service, const json::object& args) {
    std::string error = unknown_argument(args, {"reason", "scope", "cursor", "limit"});
    feedback::SuppressionQuery query;
    if (const auto reason = error.empty() ? string_arg(args, "reason", error) : std::nullopt) {
        query.reason = feedback::parse_suppression_reason(*reason);
        if (!query.reason)
            error = fmt::format("unknown reason \"{}\"", valid_utf8(*reason));
    }
    if (error.empty() && args.contains("scope"))
        query.scope = scope_arg(args, error);
    query.cursor = error.empty() ? string_arg(args, "cursor", error).value_or("") : "";
    if (const auto* limit = args.if_contains("limit"); limit && error.empty()) {
        // A number, or its digits (emberctl passes options as strings).
        std::optional<std::int64_t> n;
        if (const auto* i = limit->if_int64())
            n = *i;
        else if (limit->is_string() && !limit->get_string().empty() &&
                 limit->get_string().size() < 10 &&
                 std::all_of(limit->get_string().begin(), limit->get_string().end(),
                             [](char c) { return c >= '0' && c <= '9'; }))
            n = std::stoll(std::string(limit->get_string()));
        if (!n || *n < 1 || static_cast<std::size_t>(*n) > feedback::kMaxPageSize)
            error = fmt::format("argument \"limit\" must be 1 to {}", feedback::kMaxPageSize);
        else
            query.limit = static_cast<std::size_t>(*n);
    }
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto page = service.suppressions().list(query);
    json::array entries;
    for (const auto& e : page.entries)
        entries.push_back(entry_json(e));
    return json::object{{"entries", std::move(entries)},
                        {"next_cursor", page.next_cursor},
                        {"total", service.suppressions().size()}};
}

AdminResult suppress_check(FeedbackService& service, const json::object& args) {
    std::string error = unknown_argument(args, {"address", "domain"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    const auto domain = error.empty() ? string_arg(args, "domain", error) : std::nullopt;
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto sending = core::ascii_lower(domain.value_or(""));
    const auto hit = service.suppressions().check(*address, sending);
    json::array all;
    for (const auto& e : service.suppressions().entries_for(*address))
        all.push_back(entry_json(e));
    return json::object{{"address", *address},
                        {"domain", sending},
                        {"suppressed", hit.has_value()},
                        {"entry", hit ? json::value(entry_json(*hit)) : json::value(nullptr)},
                        {"entries", std::move(all)}};
}

boost::asio::awaitable<AdminResult> suppress_import(FeedbackService* service, json::object args) {
    std::string error = unknown_argument(args, {"entries"});
    const auto* items = args.if_contains("entries");
    if (error.empty() && (!items || !items->is_array()))
        error = R"(argument "entries" must be an array)";
    if (error.empty() && items->get_array().size() > kMaxImportEntries)
        error = fmt::format("at most {} entries per request", kMaxImportEntries);
    std::vector<feedback::SuppressionEntry> entries;
    const auto now = service->now_ms();
    for (std::size_t i = 0; error.empty() && i < items->get_array().size(); ++i) {
        auto entry = entry_from_json(items->get_array()[i], now, error);
        if (entry)
            entries.push_back(std::move(*entry));
        else
            error = fmt::format("entry {}: {}", i + 1, error);
    }
    if (!error.empty())
        co_return AdminResult::failure(std::move(error));
    auto* list = &service->suppressions();
    auto start = [list, e = std::move(entries)](feedback::WriteDone done) mutable {
        list->add_all(std::move(e), std::move(done));
    };
    const auto r = co_await await_callback<feedback::WriteResult>(std::move(start));
    if (r.status != feedback::WriteStatus::Ok)
        co_return AdminResult::failure(
            fmt::format("{} (imported {} before the failure)", write_error(r), r.written));
    log::info("suppress.imported", "entries={} via=admin", r.written);
    co_return json::object{{"imported", r.written}};
}

boost::asio::awaitable<AdminResult> compliance(FeedbackService* service, dns::Resolver* resolver,
                                               std::vector<core::IpAddress> sources,
                                               json::object args) {
    std::string error = unknown_argument(args, {"domain"});
    const auto domain = error.empty() ? string_arg(args, "domain", error) : std::nullopt;
    if (!error.empty())
        co_return AdminResult::failure(std::move(error));
    feedback::ComplianceFacts facts;
    if (!sources.empty()) {
        auto task = check_sources(resolver, std::move(sources));
        facts.sources = co_await std::move(task);
    }
    facts.longest_unsubscribe_delay = service->longest_unsubscribe_delay();
    const auto now = feedback::TimePoint(std::chrono::milliseconds(service->now_ms()));
    const auto policy = service->policy();
    std::vector<std::string> domains;
    if (domain)
        domains.push_back(core::ascii_lower(*domain));
    else
        domains = service->rates().domains();
    std::vector<feedback::Scorecard> cards;
    for (const auto& d : domains) {
        const auto counts = service->rates().window(d, feedback::kDayWindow, now);
        auto card = feedback::scorecard(d, counts, feedback::kDayWindow, facts);
        if (!policy->alignment_enforced_everywhere)
            mark_unknown(card, "dmarc_aligned_share",
                         "alignment is known only where the DMARC gate enforces it "
                         "([auth] alignment)");
        cards.push_back(std::move(card));
    }
    co_return json::parse(feedback::format_scorecards_json(cards));
}

void add_feedback_verbs(AdminServer& server, FeedbackService& service, dns::Resolver& resolver,
                        std::vector<core::IpAddress> sources) {
    // Plain lambdas that return the coroutine (see add_delivery_verbs).
    FeedbackService* s = &service;
    dns::Resolver* r = &resolver;
    server.add_verb("suppress.add", AdminHandler([s](json::object args) {
                        return suppress_add(s, std::move(args));
                    }));
    server.add_verb("suppress.remove", AdminHandler([s](json::object args) {
                        return suppress_remove(s, std::move(args));
                    }));
    server.add_verb("suppress.list", SyncAdminHandler([s](const json::object& args) {
                        return suppress_list(*s, args);
                    }));
    server.add_verb("suppress.check", SyncAdminHandler([s](const json::object& args) {
                        return suppress_check(*s, args);
                    }));
    server.add_verb("suppress.import", AdminHandler([s](json::object args) {
                        return suppress_import(s, std::move(args));
                    }));
    server.add_verb("compliance", AdminHandler([s, r, sources](json::object args) {
                        return compliance(s, r, sources, std::move(args));
                    }));
}

} // namespace ember::daemon
