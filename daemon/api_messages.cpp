// POST /v1/messages and GET /v1/messages/{id} (daemon/api_service.hpp).

#include "core/ascii.hpp"
#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/ab_service.hpp"
#include "daemon/api_ab.hpp"
#include "daemon/api_request.hpp"
#include "daemon/api_service.hpp"
#include "daemon/feedback_async.hpp"
#include "daemon/personalize_service.hpp"
#include "daemon/tracking_service.hpp"
#include "personalize/compose.hpp"
#include "personalize/rfc2047.hpp"
#include "queue/store.hpp"
#include "smtp/message_header.hpp"
#include "smtp/received.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
using smtp::SinkStatus;

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string iso_time(std::int64_t ms) {
    if (ms <= 0)
        return {};
    const std::time_t t = ms / 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// RFC 5321 4.4 trace field. "with HTTP": the protocol the message came in
// by, as Received: names it (there is no SMTP keyword for an API call).
std::string received_field(const std::string& client, const std::string& key,
                           const std::string& hostname, const std::string& id) {
    return fmt::format("Received: from [{}] (api key {})\r\n\tby {} (ember) with HTTP id {};\r\n"
                       "\t{}\r\n",
                       client, smtp::sanitize_for_header(key), hostname, id,
                       smtp::format_rfc5322_date(unix_now()));
}

bool json_content_type(const HttpRequest& request) {
    const auto type = request.header("content-type");
    if (!type)
        return false;
    auto media = type->substr(0, type->find(';'));
    while (!media.empty() && media.back() == ' ')
        media.remove_suffix(1);
    return core::ascii_iequals(media, "application/json");
}

std::uint64_t pending_recipients(const queue::Store& store) {
    std::uint64_t n = 0;
    for (const auto& [state, count] : store.counts()) {
        if (queue::is_pending(state))
            n += count;
    }
    return n;
}

// The X-Ember- fields of one message (send_within: daemon/submission_personalize.hpp).
std::string ember_fields(const MessageRequest& r, const ApiRecipient& rcpt, std::string_view ab) {
    std::string out;
    if (!ab.empty())
        out += fmt::format("{}: {}\r\n", kAbHeader, ab);
    const auto vars = vars_field_value(layered_vars(r.vars, rcpt.vars));
    if (!vars.empty())
        out += "X-Ember-Vars: " + vars + "\r\n";
    if (!r.campaign.empty())
        out += "X-Ember-Campaign: " + r.campaign + "\r\n";
    if (!r.tags.empty()) {
        std::string tags;
        for (const auto& t : r.tags)
            tags += (tags.empty() ? "" : ", ") + t;
        personalize::append_folded_field("X-Ember-Tags", tags, out);
    }
    if (!r.send_within.empty())
        out += "X-Ember-Send-Within: " + r.send_within + "\r\n";
    if (!r.track.empty())
        out += "X-Ember-Track: " + r.track + "\r\n";
    return out;
}

// One recipient's message without Received: the body shared by all
// (`body`: composed parts, or the raw message) under its own fields.
std::string recipient_content(const MessageRequest& r, const ApiRecipient& rcpt,
                              const std::string& body, const smtp::HeaderCheck& raw_check,
                              const std::string& id, const std::string& hostname,
                              std::string_view ab) {
    std::string out;
    if (!r.raw || !raw_check.has_message_id)
        out += smtp::build_message_id(id, hostname);
    if (!r.raw || !raw_check.has_date)
        out += "Date: " + smtp::format_rfc5322_date(unix_now()) + "\r\n";
    if (!r.raw)
        personalize::append_folded_field("To", personalize::format_mailbox(rcpt.name, rcpt.address),
                                         out);
    out += ember_fields(r, rcpt, ab);
    out += body;
    return out;
}

// A raw message may not already carry a field the request sets.
std::optional<ApiError> raw_conflict(const MessageRequest& r, const smtp::HeaderBlock& header) {
    const bool vars =
        !r.vars.empty() || std::any_of(r.recipients.begin(), r.recipients.end(),
                                       [](const ApiRecipient& x) { return !x.vars.empty(); });
    const std::pair<const char*, bool> fields[] = {{"X-Ember-Vars", vars},
                                                   {"X-Ember-Campaign", !r.campaign.empty()},
                                                   {"X-Ember-Tags", !r.tags.empty()},
                                                   {"X-Ember-Send-Within", !r.send_within.empty()},
                                                   {"X-Ember-Track", !r.track.empty()}};
    for (const auto& [name, set] : fields) {
        if (set && smtp::find_field(header, name) != nullptr)
            return ApiError{
                400, "raw",
                fmt::format("the raw message has {} and the request sets it too", name)};
    }
    return std::nullopt;
}

struct Gather {
    std::vector<SinkStatus> statuses;
    std::size_t left = 0;
    std::function<void(std::vector<SinkStatus>)> done;
};

asio::awaitable<void> commit_one(smtp::MessageSink* sink, smtp::AcceptedMessage message,
                                 std::shared_ptr<Gather> gather, std::size_t index) {
    const auto status = co_await sink->commit(std::move(message));
    gather->statuses[index] = status;
    if (--gather->left == 0)
        gather->done(std::move(gather->statuses));
}

// Every commit at once, so they share the store's group commit; completes
// when the last is durable (or failed). Not a coroutine (core::offload).
asio::awaitable<std::vector<SinkStatus>> commit_all(asio::any_io_executor executor,
                                                    smtp::MessageSink* sink,
                                                    std::vector<smtp::AcceptedMessage> messages) {
    auto start = [executor, sink, messages = std::move(messages)](
                     std::function<void(std::vector<SinkStatus>)> done) mutable {
        auto gather = std::make_shared<Gather>();
        gather->statuses.resize(messages.size(), SinkStatus::LocalError);
        gather->left = messages.size();
        gather->done = std::move(done);
        for (std::size_t i = 0; i < messages.size(); ++i)
            core::spawn(executor, commit_one(sink, std::move(messages[i]), gather, i),
                        "api.commit");
    };
    return await_callback<std::vector<SinkStatus>>(std::move(start));
}

std::string_view status_name(SinkStatus s) {
    switch (s) {
    case SinkStatus::Ok:
        return "queued";
    case SinkStatus::StorageFull:
        return "storage_full";
    case SinkStatus::ShuttingDown:
        return "shutting_down";
    case SinkStatus::LocalError:
        return "local_error";
    }
    return "local_error";
}

unsigned status_code(SinkStatus s) {
    switch (s) {
    case SinkStatus::Ok:
        return 202;
    case SinkStatus::StorageFull:
        return 507; // RFC 4918 11.5, like SMTP's 452 4.3.1
    case SinkStatus::ShuttingDown:
        return 503;
    case SinkStatus::LocalError:
        return 500;
    }
    return 500;
}

std::string reply_text(const smtp::PolicyVerdict& v) {
    return fmt::format("{} {} {}", v.code, v.enhanced, v.text);
}

// What one request is turned into, before the commit.
struct Plan {
    MessageRequest request;
    std::string body;            // composed parts, or the raw message
    smtp::HeaderCheck raw_check; // for raw: which fields it has
    json::array refused;         // recipients the recipient policy refused
    std::vector<std::size_t> accepted;
    std::string ab_test;            // the A/B test's id; "" without variants
    std::vector<std::string> cells; // parallel to request.recipients (accepted ones set)
    // The X-Ember-AB value of recipient `index` ("" without a test).
    [[nodiscard]] std::string ab_field(std::size_t index) const {
        return ab_test.empty() ? std::string() : format_ab_field(ab_test, cells[index]);
    }
};

// The recipient policy per recipient, as RCPT TO runs it.
void check_recipients(const ApiService& api, const ApiKey& key, const HttpRequest& request,
                      Plan& plan) {
    auto* policy = api.parts().server->recipients;
    const auto client = core::Endpoint::parse(request.remote);
    for (std::size_t i = 0; i < plan.request.recipients.size(); ++i) {
        const auto& address = plan.request.recipients[i].address;
        smtp::RecipientVerdict verdict;
        if (policy != nullptr) {
            smtp::RecipientCheck check;
            if (const auto ip = client ? core::IpAddress::parse(client->host) : std::nullopt)
                check.client_ip = *ip;
            check.auth_user = "api:" + key.name;
            check.relay_allowed = true; // the key is the authorization
            check.mail_from = plan.request.from_address;
            check.recipient = address;
            verdict = policy->check_recipient(check);
        }
        if (verdict.kind == smtp::RecipientVerdict::Kind::Accept) {
            plan.accepted.push_back(i);
            continue;
        }
        const auto why = verdict.kind == smtp::RecipientVerdict::Kind::Local
                             ? std::string("an address of ember's own (bounces, reports)")
                             : reply_text(verdict.reply);
        plan.refused.push_back(json::object{
            {"address", address}, {"index", i}, {"status", "refused"}, {"error", why}});
    }
}

} // namespace

namespace {

// An A/B test decided by a metric nobody measures would always pick the
// control: refuse it. Tracking lives in HTML parts, must be on for the
// From: domain or asked for by the request, and needs signing keys.
std::optional<HttpResponse> untracked_metric(const ApiSettings& settings, const MessageRequest& r) {
    if (r.variants.empty() || !r.ab)
        return std::nullopt;
    const bool clicks = r.ab->metric == "clicks";
    const auto choice =
        tracking_choice(settings.tracking, r.from_domain,
                        r.track.empty() ? std::nullopt : std::optional<std::string>(r.track));
    const bool tracked =
        settings.tracking_signed && r.html && (clicks ? choice.clicks : choice.opens);
    if (tracked)
        return std::nullopt;
    return api_error(400, "ab.metric",
                     fmt::format("{} are not tracked for this message: the test needs an html "
                                 "part and {} tracking ([tracking] domains with {} or the "
                                 "request's \"tracking\", and [feedback] token_keys with [http] "
                                 "public_url)",
                                 r.ab->metric, clicks ? "click" : "open", r.from_domain));
}

// Parse, scope, queue depth: what answers before any policy runs.
std::variant<Plan, HttpResponse> plan_request(const ApiService& api, const ApiKey& key,
                                              const HttpRequest& request) {
    const auto* server = api.parts().server;
    RequestLimits limits;
    limits.max_recipients = api.settings().max_recipients;
    limits.max_message_size = server->settings->limits.max_message_size.bytes;
    auto parsed = parse_message_request(request.body, limits);
    if (auto* e = std::get_if<ApiError>(&parsed))
        return api_error(e->status, e->field, e->message);
    Plan plan{std::move(std::get<MessageRequest>(parsed)), {}, {}, {}, {}, {}, {}};
    const auto& r = plan.request;
    if (!r.variants.empty() && api.parts().ab == nullptr)
        return api_error(501, "variants", "A/B tests are not available in this daemon");
    if (!key.allows(r.from_domain))
        return api_error(403, r.raw ? "raw" : "from",
                         fmt::format("the key {} may not send as {}", key.name, r.from_domain));
    if (auto refused = untracked_metric(api.settings(), r))
        return std::move(*refused);
    const auto high_water = api.settings().queue_high_water;
    if (high_water > 0 && pending_recipients(*api.parts().store) + r.recipients.size() > high_water)
        return HttpResponse{429,
                            "application/json",
                            error_json({429, "",
                                        "the queue is over its high-water mark; retry "
                                        "later"}),
                            {{"Retry-After", "60"}, {"Cache-Control", "no-store"}}};
    if (r.raw) {
        const auto header = smtp::parse_header_block(*r.raw);
        plan.raw_check = smtp::check_submission_headers(header);
        if (const auto conflict = raw_conflict(r, header))
            return api_error(conflict->status, conflict->field, conflict->message);
        plan.body = *r.raw;
    } else {
        personalize::ComposeInput in;
        in.from_name = r.from_name;
        in.from_address = r.from_address;
        in.subject = r.subject;
        in.text = r.text;
        in.html = r.html;
        in.headers = r.headers;
        in.attachments = r.attachments;
        in.boundary_seed = queue::format_queue_id(api.parts().store->next_id());
        apply_variants(r, in);
        plan.body = personalize::compose(in);
    }
    if (plan.body.size() > limits.max_message_size)
        return api_error(413, "",
                         fmt::format("the message exceeds the size limit of {} octets",
                                     limits.max_message_size));
    return plan;
}

smtp::SessionInfo session_info(const ApiService& api, const ApiKey& key,
                               const HttpRequest& request) {
    smtp::SessionInfo info;
    const auto client = core::Endpoint::parse(request.remote);
    if (const auto ip = client ? core::IpAddress::parse(client->host) : std::nullopt)
        info.client_ip = *ip;
    info.helo = "api";
    info.auth_user = "api:" + key.name;
    info.listener = api.settings().listener.to_string();
    info.mode = smtp::ListenerMode::Submission;
    return info;
}

std::vector<smtp::AcceptedMessage> build_messages(const ApiService& api, const ApiKey& key,
                                                  const HttpRequest& request, const Plan& plan) {
    auto* server = api.parts().server;
    const auto& hostname = server->settings->hostname;
    const auto client = core::Endpoint::parse(request.remote);
    const auto client_host = client ? client->host : std::string("unknown");
    std::vector<smtp::AcceptedMessage> out;
    for (const auto index : plan.accepted) {
        const auto& rcpt = plan.request.recipients[index];
        smtp::AcceptedMessage m;
        m.queue_id = server->sink.new_queue_id();
        m.envelope.mail_from = plan.request.from_address;
        m.envelope.recipients.push_back(core::RecipientSpec{rcpt.address, {}, 0});
        m.info = session_info(api, key, request);
        m.content = received_field(client_host, key.name, hostname, m.queue_id) +
                    recipient_content(plan.request, rcpt, plan.body, plan.raw_check, m.queue_id,
                                      hostname, plan.ab_field(index));
        out.push_back(std::move(m));
    }
    return out;
}

// The content policy once per request: the DMARC gate depends on From: and
// the envelope sender, the template check on the parts, and neither
// differs between the recipients' copies (X-Ember-Vars is ours, valid JSON).
asio::awaitable<std::optional<HttpResponse>> content_refusal(ApiService* api, const ApiKey* key,
                                                             const HttpRequest* request,
                                                             const Plan* plan, std::string queue_id,
                                                             std::string content) {
    auto* policy = api->parts().server->policy;
    if (policy == nullptr)
        co_return std::nullopt;
    smtp::ContentCheck check;
    check.info = session_info(*api, *key, *request);
    check.listener.address = api->settings().listener;
    check.listener.mode = smtp::ListenerMode::Submission;
    check.queue_id = std::move(queue_id);
    check.envelope.mail_from = plan->request.from_address;
    for (const auto index : plan->accepted)
        check.envelope.recipients.push_back({plan->request.recipients[index].address, {}, 0});
    check.from_domains.push_back(plan->request.from_domain);
    check.content = content; // outlives the check: this frame owns it
    const auto verdict = co_await policy->check(std::move(check));
    if (verdict.accept)
        co_return std::nullopt;
    // 5xx: the request is wrong as it stands; 4xx: try again later.
    const bool permanent = verdict.code >= 500;
    auto response = api_error(permanent ? 422 : 503, "", reply_text(verdict));
    if (!permanent)
        response.headers.emplace_back("Retry-After", "60");
    co_return response;
}

HttpResponse commit_answer(const Plan& plan, const std::vector<std::string>& ids,
                           const std::vector<SinkStatus>& statuses) {
    json::array results = plan.refused;
    std::size_t queued = 0;
    SinkStatus failure = SinkStatus::Ok;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const auto index = plan.accepted[i];
        json::object o{{"address", plan.request.recipients[index].address},
                       {"index", index},
                       {"status", status_name(statuses[i])}};
        if (!plan.ab_test.empty())
            o["cell"] = plan.cells[index];
        if (statuses[i] == SinkStatus::Ok) {
            o["id"] = ids[i];
            ++queued;
        } else {
            failure = statuses[i];
        }
        results.push_back(std::move(o));
    }
    std::sort(results.begin(), results.end(), [](const json::value& a, const json::value& b) {
        return a.at("index").to_number<std::int64_t>() < b.at("index").to_number<std::int64_t>();
    });
    json::object body{{"messages", std::move(results)}};
    if (!plan.ab_test.empty())
        body["ab_test"] = plan.ab_test;
    if (queued == 0) {
        body["error"] = json::object{{"message", "nothing was queued"}};
        return json_response(status_code(failure), json::serialize(body));
    }
    return json_response(202, json::serialize(body));
}

// The test's cells over the accepted recipients (personalize/ab_decision.hpp).
void assign_cells(Plan& plan) {
    const auto& r = plan.request;
    if (r.variants.empty())
        return;
    plan.ab_test = new_ab_test_id();
    plan.cells.assign(r.recipients.size(), std::string());
    const auto cells = personalize::assign_cells(plan.accepted.size(), r.ab->split, plan.ab_test);
    for (std::size_t k = 0; k < plan.accepted.size(); ++k)
        plan.cells[plan.accepted[k]] =
            cells[k] ? r.variants[*cells[k]].name : std::string(kRestCell);
}

std::size_t ab_rest(const Plan& plan) {
    return static_cast<std::size_t>(
        std::count(plan.cells.begin(), plan.cells.end(), std::string(kRestCell)));
}

AbTest ab_record(const Plan& plan) {
    const auto& r = plan.request;
    AbTest t;
    t.id = plan.ab_test;
    t.campaign = r.campaign;
    t.metric = personalize::parse_ab_metric(r.ab->metric).value_or(personalize::AbMetric::Clicks);
    for (std::size_t i = 0; i < r.variants.size(); ++i) {
        const auto& name = r.variants[i].name;
        const auto n =
            static_cast<std::uint64_t>(std::count(plan.cells.begin(), plan.cells.end(), name));
        t.cells.push_back(AbCell{name, r.ab->split[i], n, {}});
    }
    t.rest = ab_rest(plan);
    return t;
}

void log_accepted(const ApiKey& key, const HttpRequest& request, const Plan& plan,
                  const std::vector<std::string>& ids) {
    log::info("api.accepted", "key={} client={} from=<{}> messages={} refused={} first={}",
              log::q(key.name), request.remote, log::q(plan.request.from_address), ids.size(),
              plan.refused.size(), ids.empty() ? std::string("-") : ids.front());
}

} // namespace

asio::awaitable<HttpResponse> post_messages(ApiService* api, HttpRequest request) {
    auto auth = authorize(*api, request);
    if (auth.key == nullptr)
        co_return std::move(auth.refusal);
    if (!json_content_type(request))
        co_return api_error(415, "", "the body must be application/json");
    auto planned = plan_request(*api, *auth.key, request);
    if (auto* refusal = std::get_if<HttpResponse>(&planned))
        co_return std::move(*refusal);
    auto plan = std::move(std::get<Plan>(planned));
    check_recipients(*api, *auth.key, request, plan);
    if (plan.accepted.empty()) {
        json::object body{{"error", json::object{{"field", "recipients"},
                                                 {"message", "no recipient was accepted"}}},
                          {"messages", plan.refused}};
        co_return json_response(422, json::serialize(body));
    }
    assign_cells(plan);
    auto messages = build_messages(*api, *auth.key, request, plan);
    auto first_content =
        recipient_content(plan.request, plan.request.recipients[plan.accepted[0]], plan.body,
                          plan.raw_check, messages.front().queue_id,
                          api->parts().server->settings->hostname, plan.ab_field(plan.accepted[0]));
    const auto refused = co_await content_refusal(
        api, auth.key, &request, &plan, messages.front().queue_id, std::move(first_content));
    if (refused) {
        log::info("api.refused", "key={} client={} from=<{}> why={}", log::q(auth.key->name),
                  request.remote, log::q(plan.request.from_address), log::q(refused->body));
        co_return *refused;
    }
    if (!plan.ab_test.empty()) {
        // The record first: no message of the test is queued without it.
        auto test = ab_record(plan);
        const auto duration = plan.request.ab->duration;
        auto saving = api->parts().ab->create_test(
            std::move(test), std::chrono::duration_cast<std::chrono::milliseconds>(duration));
        const bool saved = co_await std::move(saving);
        if (!saved)
            co_return api_error(503, "", "the A/B test could not be saved; retry later");
        log::info("ab.created", "test={} key={} campaign={} cells={} rest={}", plan.ab_test,
                  log::q(auth.key->name), log::q(plan.request.campaign),
                  plan.request.variants.size(), ab_rest(plan));
    }
    auto executor = co_await asio::this_coro::executor;
    std::vector<std::string> ids;
    for (const auto& m : messages)
        ids.push_back(m.queue_id);
    const auto statuses =
        co_await commit_all(executor, &api->parts().server->sink, std::move(messages));
    log_accepted(*auth.key, request, plan, ids);
    co_return commit_answer(plan, ids, statuses);
}

HttpResponse get_message(const ApiService& api, const HttpRequest& request) {
    auto auth = authorize(api, request);
    if (auth.key == nullptr)
        return std::move(auth.refusal);
    const auto text =
        std::string_view(request.path).substr(std::string_view("/v1/messages/").size());
    const auto id = queue::parse_queue_id(text);
    const auto message = id ? api.parts().store->load(*id) : std::nullopt;
    if (!message)
        return api_error(404, "id",
                         "no such message in the queue (delivered and failed "
                         "messages leave it; see the events)");
    // A key sees only mail it could have sent.
    if (!auth.key->allows(core::address_domain(message->envelope.mail_from)))
        return api_error(404, "id",
                         "no such message in the queue (delivered and failed "
                         "messages leave it; see the events)");
    json::array recipients;
    for (const auto& r : message->recipients) {
        json::object o{{"address", r.spec.address},
                       {"state", queue::state_name(r.state)},
                       {"attempts", r.attempts}};
        if (!r.last_reply.empty())
            o["last_reply"] = r.last_reply;
        if (queue::is_pending(r.state))
            o["next_attempt_at"] = iso_time(r.next_attempt_ms);
        o["updated_at"] = iso_time(r.updated_ms);
        recipients.push_back(std::move(o));
    }
    json::object body{{"id", queue::format_queue_id(message->id)},
                      {"from", message->envelope.mail_from},
                      {"received_at", iso_time(message->submission.received_at_ms)},
                      {"size", message->size},
                      {"recipients", std::move(recipients)}};
    return json_response(200, json::serialize(body));
}

} // namespace ember::daemon
