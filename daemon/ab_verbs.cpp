#include "daemon/ab_verbs.hpp"

#include "daemon/admin_verbs.hpp"

#include <boost/json/array.hpp>
#include <fmt/format.h>

namespace ember::daemon {

namespace json = boost::json;

AdminResult ab_status(const AbService& service, const json::object& args) {
    auto error = unknown_argument(args, {"id"});
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto id = string_arg(args, "id", error, true);
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    if (!id)
        return AdminResult::failure(R"(missing argument "id")");
    const auto* test = service.find(*id);
    if (test == nullptr)
        return AdminResult::failure(fmt::format("no A/B test {}", valid_utf8(*id)));
    return AdminResult::success(ab_test_json(*test));
}

AdminResult ab_list(const AbService& service, const json::object& args) {
    auto error = unknown_argument(args, {});
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    json::array tests;
    for (const auto* t : service.tests())
        tests.push_back(ab_test_json(*t));
    return AdminResult::success(json::object{{"tests", std::move(tests)}});
}

void add_ab_verbs(AdminServer& server, AbService& service) {
    auto* s = &service;
    server.add_verb("ab.status", SyncAdminHandler([s](const json::object& args) {
                        return ab_status(*s, args);
                    }));
    server.add_verb("ab.list",
                    SyncAdminHandler([s](const json::object& args) { return ab_list(*s, args); }));
}

} // namespace ember::daemon
