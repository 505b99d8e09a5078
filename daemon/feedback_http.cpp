#include "daemon/feedback_http.hpp"

#include "core/log.hpp"
#include "daemon/feedback_async.hpp"

#include <fmt/format.h>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;

constexpr const char* kHtml = "text/html; charset=utf-8";

std::string html_escape(std::string_view text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

// Pages of ours must not be cached by a proxy or indexed by a crawler.
std::vector<std::pair<std::string, std::string>> page_headers() {
    return {{"Cache-Control", "no-store"}, {"X-Robots-Tag", "noindex"}};
}

HttpResponse not_found() {
    return HttpResponse{404, "text/plain; charset=utf-8", "unknown or expired unsubscribe link\n",
                        page_headers()};
}

// The token's recipient, or nullopt (the check's status logged).
std::optional<feedback::Unsubscriber> verify(const FeedbackService& service,
                                             const HttpRequest& request) {
    const auto p = service.policy();
    const auto token = std::string_view(request.path).substr(kUnsubscribePrefix.size());
    if (!p->signer) {
        log::info("unsubscribe.refused", "client={} why=\"no token_keys\"", request.remote);
        return std::nullopt;
    }
    const auto check = p->signer->verify_unsubscribe_url_token(token);
    if (!check.ok()) {
        log::info("unsubscribe.refused", "client={} token={}", request.remote,
                  feedback::token_status_name(check.status));
        return std::nullopt;
    }
    return check.who;
}

asio::awaitable<HttpResponse> post(FeedbackService* service, HttpRequest request) {
    const auto who = verify(*service, request);
    if (!who)
        co_return not_found();
    if (!one_click_body(request.body))
        co_return HttpResponse{400, "text/plain; charset=utf-8",
                               "expected a body of List-Unsubscribe=One-Click (RFC 8058)\n",
                               page_headers()};
    const auto started = service->now_ms();
    const auto p = service->policy();
    const auto scope = feedback::scope_for(feedback::SuppressionReason::Unsubscribe,
                                           who->sending_domain, p->config.suppression);
    feedback::SuppressionEntry entry{
        who->address, scope, feedback::SuppressionReason::Unsubscribe, started,
        feedback::clean_source(fmt::format("one-click unsubscribe from {}", request.remote))};
    const auto written = co_await service->suppress(std::move(entry));
    if (written.status != feedback::WriteStatus::Ok) {
        log::error("unsubscribe.failed", "rcpt={} error={}", log::q(who->address),
                   log::q(written.detail));
        co_return HttpResponse{503,
                               "text/plain; charset=utf-8",
                               "temporarily unable to unsubscribe, please try again\n",
                               {{"Retry-After", "60"}}};
    }
    service->note_unsubscribe_delay(service->now_ms() - started);
    log::info("unsubscribe.done", "rcpt={} domain={} scope={} via=http", log::q(who->address),
              log::q(who->sending_domain), scope.empty() ? "global" : scope);
    feedback::Event e;
    e.type = feedback::EventType::Unsubscribed;
    e.recipient = who->address;
    e.sending_domain = who->sending_domain;
    e.destination = core::address_domain(who->address);
    e.source = "http";
    e.one_click = true;
    e.extra["scope"] = scope.empty() ? "global" : scope;
    service->emit(std::move(e));
    co_return HttpResponse{200, kHtml,
                           "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Unsubscribed"
                           "</title></head><body><p>You are unsubscribed.</p></body></html>\n",
                           page_headers()};
}

} // namespace

std::string unsubscribe_page(std::string_view address, std::string_view domain) {
    return fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\"><title>Unsubscribe</title>"
        "</head>\n<body><p>Stop mail from {} to {}?</p>\n"
        "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" "
        "value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>\n"
        "</body></html>\n",
        html_escape(domain), html_escape(address));
}

bool one_click_body(std::string_view body) {
    // x-www-form-urlencoded: the pair among '&'-separated pairs.
    std::size_t pos = 0;
    while (pos <= body.size()) {
        auto end = body.find('&', pos);
        if (end == std::string_view::npos)
            end = body.size();
        auto pair = body.substr(pos, end - pos);
        while (!pair.empty() && (pair.back() == '\r' || pair.back() == '\n'))
            pair.remove_suffix(1);
        if (pair == "List-Unsubscribe=One-Click")
            return true;
        pos = end + 1;
    }
    // multipart/form-data: a part named List-Unsubscribe whose value is One-Click.
    const auto name = body.find("name=\"List-Unsubscribe\"");
    if (name == std::string_view::npos)
        return false;
    const auto value = body.find("\r\n\r\n", name);
    return value != std::string_view::npos && body.substr(value + 4).starts_with("One-Click");
}

void add_unsubscribe_routes(Router& router, FeedbackService& service) {
    const auto path = std::string(kUnsubscribePrefix) + "*";
    router.add("POST", path,
               [&service](HttpRequest request) { return post(&service, std::move(request)); });
    router.add("GET", path, [&service](const HttpRequest& request) {
        const auto who = verify(service, request);
        if (!who)
            return not_found();
        return HttpResponse{200, kHtml, unsubscribe_page(who->address, who->sending_domain),
                            page_headers()};
    });
}

} // namespace ember::daemon
