#pragma once
// The injection API under /v1 on the [http] listener (ember-api(7),
// daemon/openapi.json):
//
//   POST   /v1/messages              JSON message -> one queued message per
//                                    recipient (daemon/api_request.hpp)
//   GET    /v1/messages/{id}         a queued message's recipient states
//   GET    /v1/suppressions          the suppression list, paged
//   DELETE /v1/suppressions/{address}
//   PUT|GET|DELETE /v1/contacts/{address}   attributes and tags
//   GET    /v1/openapi.json          the OpenAPI 3 document (no key needed)
//
// Keys: every route but openapi.json needs "Authorization: Bearer TOKEN"
// naming an [[api_key]] (401 with WWW-Authenticate otherwise); a message
// whose From: domain is outside the key's domains is 403. With no
// [[api_key]] configured every /v1 path answers 404: the API is off.
//
// POST /v1/messages runs what an SMTP submission runs, through the same
// parts (smtp::ServerContext): the recipient policy per recipient
// (suppression at RCPT, our feedback addresses), the content policy (the
// DMARC alignment gate and what is chained to it), the header checks of
// RFC 5322 3.6, then the MessageSink (FeedbackSink -> QueueSink: group
// commit, fsync). 202 is sent only after every message is durable.
// One queue message per recipient, because each recipient has its own To:
// and its own variables (X-Ember-Vars: the request's vars with the
// recipient's on top), and because the API promises a message id per
// recipient; the commits of one request share a group commit.
//
// Threads: the daemon's I/O executor (the HTTP server's, the SMTP
// sessions'). apply() swaps keys and limits on reload.

#include "daemon/api_keys.hpp"
#include "daemon/config.hpp"
#include "daemon/http_server.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace ember::queue {
class Store;
}
namespace ember::smtp {
struct ServerContext;
}
namespace ember::personalize {
class ContactStore;
}

namespace ember::daemon {

class FeedbackService;
class AbService;

// What the API works with; each must outlive the HTTP server. Registering
// routes dereferences none of them (tests build routers with all null).
struct ApiParts {
    smtp::ServerContext* server = nullptr;         // sink, policies, settings
    queue::Store* store = nullptr;                 // message lookups, queue depth
    FeedbackService* feedback = nullptr;           // the suppression list
    personalize::ContactStore* contacts = nullptr; // null: contacts answer 501
    AbService* ab = nullptr;                       // null: variants answer 501
};

struct ApiSettings {
    std::shared_ptr<const ApiKeys> keys = std::make_shared<const ApiKeys>();
    std::uint64_t queue_high_water = 0;
    std::uint32_t max_recipients = 1000;
    core::Endpoint listener;      // the [http] listen address: the submission's "listener"
    TrackingConfig tracking;      // an A/B test's metric must be tracked
    bool tracking_signed = false; // token_keys and public_url: tracking can sign links
};

[[nodiscard]] ApiSettings api_settings(const Config& config);
// The HTTP server's limits with room for a message of [smtp]
// max_message_size as JSON (base64 attachments grow by a third, JSON
// escapes add more): twice that, at least 1 MiB.
[[nodiscard]] HttpLimits api_http_limits(const Config& config);

class ApiService {
public:
    ApiService(ApiParts parts, ApiSettings settings)
        : parts_(parts), settings_(std::move(settings)) {}
    void apply(ApiSettings settings) { settings_ = std::move(settings); }
    void set_contacts(personalize::ContactStore* contacts) { parts_.contacts = contacts; }

    [[nodiscard]] const ApiParts& parts() const { return parts_; }
    [[nodiscard]] const ApiSettings& settings() const { return settings_; }

private:
    ApiParts parts_;
    ApiSettings settings_;
};

inline constexpr std::string_view kApiPrefix = "/v1/";

// Adds every /v1 route; `api` must outlive the server.
void add_api_routes(Router& router, ApiService& api);

// The OpenAPI 3 document (daemon/openapi.json, embedded at build time).
[[nodiscard]] std::string_view openapi_document();

// ---- shared by the route files (daemon/api_*.cpp) ----

// A JSON answer with no-store caching.
[[nodiscard]] HttpResponse
json_response(unsigned status, std::string body,
              std::vector<std::pair<std::string, std::string>> extra = {});
[[nodiscard]] HttpResponse api_error(unsigned status, std::string field, std::string message);
// RFC 3986 2.1 percent-decoding of a path segment; nullopt for a bad escape.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text);

// The key the request names, or the 401/404 to answer instead.
struct Authorized {
    const ApiKey* key = nullptr;
    std::shared_ptr<const ApiKeys> keys; // keeps `key` alive across a reload
    HttpResponse refusal;                // when key is null
};
[[nodiscard]] Authorized authorize(const ApiService& api, const HttpRequest& request);

// POST /v1/messages and GET /v1/messages/{id} (daemon/api_messages.cpp).
[[nodiscard]] boost::asio::awaitable<HttpResponse> post_messages(ApiService* api,
                                                                 HttpRequest request);
[[nodiscard]] HttpResponse get_message(const ApiService& api, const HttpRequest& request);

} // namespace ember::daemon
