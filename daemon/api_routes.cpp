// The /v1 routes other than messages: keys, suppressions, contacts, the
// OpenAPI document, and the registration of all of them
// (daemon/api_service.hpp).

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "daemon/api_request.hpp"
#include "daemon/api_service.hpp"
#include "daemon/feedback_async.hpp"
#include "daemon/feedback_service.hpp"
#include "daemon/feedback_verbs.hpp"
#include "personalize/contacts.hpp"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;

constexpr std::string_view kSuppressionsPrefix = "/v1/suppressions/";
constexpr std::string_view kContactsPrefix = "/v1/contacts/";

// The query parameter `name`, percent-decoded ('+' is a space, as forms send it).
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
    std::size_t pos = 0;
    while (pos <= query.size()) {
        auto end = query.find('&', pos);
        if (end == std::string_view::npos)
            end = query.size();
        const auto pair = query.substr(pos, end - pos);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            std::string value(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
            std::replace(value.begin(), value.end(), '+', ' ');
            return percent_decode(value).value_or("");
        }
        pos = end + 1;
    }
    return std::nullopt;
}

// The address after `prefix` in the path, normalized; nullopt when not one.
std::optional<std::string> path_address(const HttpRequest& request, std::string_view prefix) {
    const auto decoded = percent_decode(std::string_view(request.path).substr(prefix.size()));
    return decoded ? feedback::normalize_address(*decoded) : std::nullopt;
}

HttpResponse list_suppressions(const ApiService& api, const HttpRequest& request) {
    auto auth = authorize(api, request);
    if (auth.key == nullptr)
        return std::move(auth.refusal);
    feedback::SuppressionQuery query;
    if (const auto reason = query_param(request.query, "reason")) {
        query.reason = feedback::parse_suppression_reason(*reason);
        if (!query.reason)
            return api_error(400, "reason",
                             "hard-bounce, soft-bounce, complaint, unsubscribe or manual");
    }
    if (const auto scope = query_param(request.query, "scope")) {
        query.scope = feedback::normalize_scope(*scope);
        if (!query.scope)
            return api_error(400, "scope", "a sending domain or \"global\"");
    }
    query.cursor = query_param(request.query, "cursor").value_or("");
    if (const auto limit = query_param(request.query, "limit")) {
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
        if (ec != std::errc() || end != limit->data() + limit->size() || n == 0 ||
            n > feedback::kMaxPageSize)
            return api_error(400, "limit",
                             fmt::format("an integer from 1 to {}", feedback::kMaxPageSize));
        query.limit = n;
    }
    const auto page = api.parts().feedback->suppressions().list(query);
    json::array entries;
    for (const auto& e : page.entries)
        entries.push_back(entry_json(e));
    json::object body{{"suppressions", std::move(entries)}};
    if (!page.next_cursor.empty())
        body["next_cursor"] = page.next_cursor;
    return json_response(200, json::serialize(body));
}

// Without ?scope= every scope's entry goes (what "unsuppress" means to a
// user); with it, that scope's only.
asio::awaitable<HttpResponse> delete_suppression(ApiService* api, HttpRequest request) {
    auto auth = authorize(*api, request);
    if (auth.key == nullptr)
        co_return std::move(auth.refusal);
    const auto address = path_address(request, kSuppressionsPrefix);
    if (!address)
        co_return api_error(400, "address", "not an address");
    const auto scope_text = query_param(request.query, "scope");
    const auto scope = scope_text ? feedback::normalize_scope(*scope_text) : std::nullopt;
    if (scope_text && !scope)
        co_return api_error(400, "scope", "a sending domain or \"global\"");
    auto* list = &api->parts().feedback->suppressions();
    if (list->entries_for(*address).empty())
        co_return api_error(404, "address", "not on the suppression list");
    auto start = [list, a = *address, scope](feedback::WriteDone done) {
        if (scope)
            list->remove(a, *scope, std::move(done));
        else
            list->remove_everywhere(a, std::move(done));
    };
    const auto result = co_await await_callback<feedback::WriteResult>(std::move(start));
    if (result.status != feedback::WriteStatus::Ok)
        co_return api_error(500, "", result.detail.empty() ? "the write failed" : result.detail);
    log::info("suppress.removed", "rcpt={} scope={} via=api key={}", log::q(*address),
              scope ? (scope->empty() ? "global" : *scope) : std::string("all"),
              log::q(auth.key->name));
    co_return HttpResponse{204, "application/json", "", {{"Cache-Control", "no-store"}}};
}

HttpResponse no_contacts() {
    return api_error(501, "", "contacts are not available in this daemon");
}

HttpResponse get_contact(const ApiService& api, const HttpRequest& request) {
    auto auth = authorize(api, request);
    if (auth.key == nullptr)
        return std::move(auth.refusal);
    auto* contacts = api.parts().contacts;
    if (contacts == nullptr)
        return no_contacts();
    const auto address = path_address(request, kContactsPrefix);
    if (!address)
        return api_error(400, "address", "not an address");
    const auto contact = contacts->get(*address);
    if (!contact)
        return api_error(404, "address", "no such contact");
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return json_response(200, json::serialize(personalize::contact_json(*contact, now)));
}

HttpResponse contact_result(const personalize::ContactResult& r) {
    switch (r.status) {
    case personalize::ContactStatus::Ok:
        return HttpResponse{204, "application/json", "", {{"Cache-Control", "no-store"}}};
    case personalize::ContactStatus::NotFound:
        return api_error(404, "address", "no such contact");
    case personalize::ContactStatus::Invalid:
        return api_error(400, "", r.detail);
    case personalize::ContactStatus::StoreFailed:
        break;
    }
    return api_error(500, "", r.detail.empty() ? "the write failed" : r.detail);
}

// PUT merges: attributes are merged key by key (null removes one), tags,
// when given, replace the contact's tags. The body may hold only those two.
std::variant<personalize::ContactPatch, HttpResponse> contact_patch(const HttpRequest& request,
                                                                    std::string address) {
    boost::system::error_code ec;
    auto value = json::parse(request.body, ec);
    if (ec || !value.is_object())
        return api_error(400, "", "the body must be a JSON object");
    personalize::ContactPatch patch;
    patch.address = std::move(address);
    for (const auto& kv : value.get_object()) {
        if (kv.key() == "attributes" && kv.value().is_object()) {
            patch.attributes = kv.value().get_object();
        } else if (kv.key() == "tags" && kv.value().is_array()) {
            std::vector<std::string> tags;
            for (const auto& t : kv.value().get_array()) {
                if (!t.is_string())
                    return api_error(400, "tags", "must be an array of strings");
                tags.emplace_back(t.get_string());
            }
            patch.tags = std::move(tags);
        } else {
            return api_error(400, std::string(kv.key()),
                             "unknown field (attributes: object, tags: array)");
        }
    }
    return patch;
}

asio::awaitable<HttpResponse> put_contact(ApiService* api, HttpRequest request) {
    auto auth = authorize(*api, request);
    if (auth.key == nullptr)
        co_return std::move(auth.refusal);
    auto* contacts = api->parts().contacts;
    if (contacts == nullptr)
        co_return no_contacts();
    if (!core::ascii_iequals(request.header("content-type").value_or("").substr(0, 16),
                             "application/json"))
        co_return api_error(415, "", "the body must be application/json");
    const auto address = path_address(request, kContactsPrefix);
    if (!address)
        co_return api_error(400, "address", "not an address");
    auto made = contact_patch(request, *address);
    if (auto* refusal = std::get_if<HttpResponse>(&made))
        co_return std::move(*refusal);
    std::vector<personalize::ContactPatch> patches{std::move(std::get<0>(made))};
    auto errors = std::make_shared<personalize::PatchErrors>();
    auto start = [contacts, errors,
                  patches = std::move(patches)](personalize::ContactDone done) mutable {
        *errors = contacts->apply(std::move(patches), std::move(done));
    };
    const auto result = co_await await_callback<personalize::ContactResult>(std::move(start));
    if (!errors->empty())
        co_return api_error(400, "", errors->front().second);
    co_return contact_result(result);
}

asio::awaitable<HttpResponse> delete_contact(ApiService* api, HttpRequest request) {
    auto auth = authorize(*api, request);
    if (auth.key == nullptr)
        co_return std::move(auth.refusal);
    auto* contacts = api->parts().contacts;
    if (contacts == nullptr)
        co_return no_contacts();
    const auto address = path_address(request, kContactsPrefix);
    if (!address)
        co_return api_error(400, "address", "not an address");
    auto start = [contacts, a = *address](personalize::ContactDone done) {
        contacts->remove(a, std::move(done));
    };
    const auto result = co_await await_callback<personalize::ContactResult>(std::move(start));
    co_return contact_result(result);
}

HttpResponse openapi(const ApiService& api) {
    if (api.settings().keys->empty())
        return api_error(404, "", "the API is off: no [[api_key]] is configured");
    return HttpResponse{
        200, "application/json", std::string(openapi_document()), {{"Cache-Control", "no-cache"}}};
}

} // namespace

ApiSettings api_settings(const Config& config) {
    ApiSettings s;
    s.keys = std::make_shared<const ApiKeys>(config.api_keys);
    s.queue_high_water = config.http.queue_high_water;
    s.max_recipients = config.http.max_recipients;
    s.listener = config.http.listen.value_or(core::Endpoint{});
    s.tracking = config.tracking;
    s.tracking_signed = !config.feedback.token_keys.empty() && !config.http.public_url.empty();
    return s;
}

HttpLimits api_http_limits(const Config& config) {
    HttpLimits limits;
    const auto wanted = config.smtp.max_message_size.bytes * 2;
    limits.body_limit = std::max<std::size_t>(limits.body_limit, wanted);
    return limits;
}

HttpResponse json_response(unsigned status, std::string body,
                           std::vector<std::pair<std::string, std::string>> extra) {
    extra.emplace_back("Cache-Control", "no-store");
    return HttpResponse{status, "application/json", std::move(body), std::move(extra)};
}

HttpResponse api_error(unsigned status, std::string field, std::string message) {
    return json_response(status, error_json({status, std::move(field), std::move(message)}));
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        unsigned value = 0;
        if (i + 2 >= text.size())
            return std::nullopt;
        const auto [end, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
        if (ec != std::errc() || end != text.data() + i + 3)
            return std::nullopt;
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

Authorized authorize(const ApiService& api, const HttpRequest& request) {
    Authorized a;
    a.keys = api.settings().keys;
    if (a.keys->empty()) {
        a.refusal = api_error(404, "", "the API is off: no [[api_key]] is configured");
        return a;
    }
    const auto header = request.header("authorization");
    a.key = header ? a.keys->authenticate(*header) : nullptr;
    if (a.key != nullptr)
        return a;
    // RFC 6750 3: the challenge, with invalid_token when a credential was sent.
    const auto challenge = header ? std::string(R"(Bearer realm="ember", error="invalid_token")")
                                  : std::string(R"(Bearer realm="ember")");
    a.refusal = api_error(401, "",
                          header ? "the API key is not valid"
                                 : "an API key is required (Authorization: Bearer KEY)");
    a.refusal.headers.emplace_back("WWW-Authenticate", challenge);
    log::info("api.unauthorized", "client={} path={} credential={}", request.remote,
              log::q(request.path), header ? "invalid" : "none");
    return a;
}

void add_api_routes(Router& router, ApiService& api) {
    auto* s = &api;
    router.add("POST", "/v1/messages",
               [s](HttpRequest request) { return post_messages(s, std::move(request)); });
    router.add("GET", "/v1/messages/*",
               [s](const HttpRequest& request) { return get_message(*s, request); });
    router.add("GET", "/v1/suppressions",
               [s](const HttpRequest& request) { return list_suppressions(*s, request); });
    router.add("DELETE", "/v1/suppressions/*",
               [s](HttpRequest request) { return delete_suppression(s, std::move(request)); });
    router.add("GET", "/v1/contacts/*",
               [s](const HttpRequest& request) { return get_contact(*s, request); });
    router.add("PUT", "/v1/contacts/*",
               [s](HttpRequest request) { return put_contact(s, std::move(request)); });
    router.add("DELETE", "/v1/contacts/*",
               [s](HttpRequest request) { return delete_contact(s, std::move(request)); });
    router.add("GET", "/v1/openapi.json", [s](const HttpRequest&) { return openapi(*s); });
}

} // namespace ember::daemon
