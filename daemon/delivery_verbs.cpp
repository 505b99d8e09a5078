#include "daemon/delivery_verbs.hpp"

#include "daemon/admin_verbs.hpp"

#include <boost/json/array.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ember::daemon {

namespace json = boost::json;

namespace {

std::optional<queue::QueueId> queue_id(const std::string& text, std::string& error) {
    auto id = queue::parse_queue_id(text);
    if (!id)
        error = fmt::format("invalid queue id \"{}\"", valid_utf8(text));
    return id;
}

// What queue.retry was asked to retry: exactly one selector.
struct RetryTarget {
    std::optional<queue::QueueId> id;
    std::optional<std::string> domain;
    bool all = false;
    std::string error;
};

RetryTarget parse_retry_args(const json::object& args) {
    RetryTarget target;
    target.error = unknown_argument(args, {"id", "domain", "all"});
    if (!target.error.empty())
        return target;
    const auto id = string_arg(args, "id", target.error, true);
    target.domain = string_arg(args, "domain", target.error, true);
    if (const auto* all = args.if_contains("all"); all && !all->is_null()) {
        if (!all->is_bool() || !all->get_bool())
            target.error = R"(argument "all" must be true)";
        target.all = true;
    }
    if (!target.error.empty())
        return target;
    const int given = (id ? 1 : 0) + (target.domain ? 1 : 0) + (target.all ? 1 : 0);
    if (given != 1) // never guess: an empty request must not mean "everything"
        target.error = R"(give exactly one of "id", "domain" or "all")";
    else if (id)
        target.id = queue_id(*id, target.error);
    return target;
}

json::value time_or_null(std::int64_t unix_ms) {
    if (unix_ms == 0)
        return nullptr;
    return json::string(format_timestamp(unix_ms));
}

} // namespace

boost::asio::awaitable<AdminResult> queue_retry(queue::Scheduler* scheduler, json::object args) {
    const RetryTarget target = parse_retry_args(args);
    if (!target.error.empty())
        co_return AdminResult::failure(target.error);
    queue::AdminChange change;
    std::string what;
    if (target.id) {
        what = queue::format_queue_id(*target.id);
        change = co_await scheduler->retry_now(*target.id);
        if (!change.found && change.error.empty())
            co_return AdminResult::failure("no such message: " + what);
    } else if (target.domain) {
        what = *target.domain; // kept alive in this frame: retry_domain takes a view
        change = co_await scheduler->retry_domain(what);
    } else {
        what = "all";
        change = co_await scheduler->retry_all();
    }
    if (!change.error.empty())
        co_return AdminResult::failure(
            fmt::format("cannot retry {}: {}", valid_utf8(what), change.error));
    co_return json::object{{"changed", change.recipients}, {"messages", change.messages}};
}

boost::asio::awaitable<AdminResult> queue_bounce(queue::Scheduler* scheduler, json::object args) {
    std::string error = unknown_argument(args, {"id"});
    const auto text = error.empty() ? string_arg(args, "id", error, true) : std::nullopt;
    if (!text && error.empty())
        error = R"(missing argument "id")";
    const auto id = text ? queue_id(*text, error) : std::nullopt;
    if (!id)
        co_return AdminResult::failure(std::move(error));
    const auto name = queue::format_queue_id(*id);
    const auto change = co_await scheduler->bounce_now(*id);
    if (!change.error.empty())
        co_return AdminResult::failure(fmt::format("cannot bounce {}: {}", name, change.error));
    if (!change.found)
        co_return AdminResult::failure("no such message: " + name);
    co_return json::object{{"bounced", change.recipients}, {"id", name}};
}

json::object destinations_json(const std::vector<queue::DestinationStatus>& destinations) {
    json::array rows;
    for (const auto& d : destinations)
        rows.push_back(json::object{{"domain", valid_utf8(d.domain)},
                                    {"queued", d.queued},
                                    {"deferred", d.deferred},
                                    {"in_flight", d.in_flight},
                                    {"connections", d.connections},
                                    {"last_reply", valid_utf8(d.last_outcome)},
                                    {"last_time", time_or_null(d.last_outcome_ms)}});
    return json::object{{"domains", std::move(rows)}};
}

AdminResult domains_status(const queue::Scheduler& scheduler, const json::object& args) {
    if (auto error = unknown_argument(args, {}); !error.empty())
        return AdminResult::failure(std::move(error));
    return destinations_json(scheduler.destinations());
}

void add_delivery_verbs(AdminServer& server, queue::Scheduler& scheduler) {
    // Plain lambdas that return the coroutine: the coroutine frame holds the
    // scheduler pointer and the arguments by value, so it never refers to a
    // lambda's captures, which a capturing coroutine lambda would.
    queue::Scheduler* s = &scheduler;
    server.add_verb("queue.retry", AdminHandler([s](json::object args) {
                        return queue_retry(s, std::move(args));
                    }));
    server.add_verb("queue.bounce", AdminHandler([s](json::object args) {
                        return queue_bounce(s, std::move(args));
                    }));
    server.add_verb("domains", SyncAdminHandler([s](const json::object& args) {
                        return domains_status(*s, args);
                    }));
}

} // namespace ember::daemon
