#include "feedback/ses_notification.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>

namespace ember::feedback {
namespace {

namespace json = boost::json;

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

std::string str(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string())
        return "";
    return std::string(v->get_string());
}

const json::object* obj(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v == nullptr ? nullptr : v->if_object();
}

const json::array* arr(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v == nullptr ? nullptr : v->if_array();
}

std::optional<json::value> parse_object(std::string_view text) {
    const auto open = text.find('{');
    const auto close = text.rfind('}');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
        return std::nullopt;
    boost::system::error_code ec;
    auto value = json::parse(text.substr(open, close - open + 1), ec);
    if (ec || !value.is_object())
        return std::nullopt;
    return value;
}

std::string first_string(const json::object& o, std::string_view key) {
    const auto* list = arr(o, key);
    if (list == nullptr || list->empty() || !list->front().is_string())
        return "";
    return std::string(list->front().get_string());
}

void read_mail(const json::object& root, SesNotification& out) {
    const auto* mail = obj(root, "mail");
    if (mail == nullptr)
        return;
    out.original.message_id = str(*mail, "messageId");
    out.original.return_path = str(*mail, "source");
    if (const auto* common = obj(*mail, "commonHeaders")) {
        out.original.from = first_string(*common, "from");
        out.original.to = first_string(*common, "to");
        out.original.subject = str(*common, "subject");
    }
    const auto* headers = arr(*mail, "headers");
    if (headers == nullptr)
        return;
    for (const auto& h : *headers) {
        const auto* field = h.if_object();
        if (field != nullptr && lower(str(*field, "name")) == "x-ember-id")
            out.original.ember_id = str(*field, "value");
    }
}

void read_bounce(const json::object& bounce, SesNotification& out) {
    out.bounce_type = str(bounce, "bounceType");
    out.bounce_subtype = str(bounce, "bounceSubType");
    if (const auto* list = arr(bounce, "bouncedRecipients")) {
        for (const auto& r : *list) {
            if (const auto* o = r.if_object())
                out.recipients.push_back({str(*o, "emailAddress"), str(*o, "action"),
                                          str(*o, "status"), str(*o, "diagnosticCode")});
        }
    }
}

void read_complaint(const json::object& complaint, SesNotification& out) {
    out.feedback_type = lower(str(complaint, "complaintFeedbackType"));
    out.user_agent = str(complaint, "userAgent");
    if (const auto* list = arr(complaint, "complainedRecipients")) {
        for (const auto& r : *list) {
            if (const auto* o = r.if_object())
                out.recipients.push_back({str(*o, "emailAddress"), "", "", ""});
        }
    }
}

void read_delivery(const json::object& delivery, SesNotification& out) {
    const auto response = str(delivery, "smtpResponse");
    if (const auto* list = arr(delivery, "recipients")) {
        for (const auto& r : *list) {
            if (r.is_string())
                out.recipients.push_back({std::string(r.get_string()), "delivered", "", response});
        }
    }
}

std::optional<SesNotification> read_notification(const json::object& root) {
    SesNotification out;
    const auto type = str(root, "notificationType").empty() ? str(root, "eventType")
                                                            : str(root, "notificationType");
    if (type == "Bounce" && obj(root, "bounce") != nullptr) {
        out.type = SesNotification::Type::Bounce;
        read_bounce(*obj(root, "bounce"), out);
    } else if (type == "Complaint" && obj(root, "complaint") != nullptr) {
        out.type = SesNotification::Type::Complaint;
        read_complaint(*obj(root, "complaint"), out);
    } else if (type == "Delivery" && obj(root, "delivery") != nullptr) {
        out.type = SesNotification::Type::Delivery;
        read_delivery(*obj(root, "delivery"), out);
    } else {
        return std::nullopt;
    }
    read_mail(root, out);
    return out;
}

} // namespace

std::optional<SesNotification> parse_ses_notification(std::string_view body) {
    // Sendmail splits lines past its limit with "!" and a continuation
    // line; mail relayed through it carries the JSON broken so.
    std::string joined(body);
    for (auto at = joined.find("!\n "); at != std::string::npos; at = joined.find("!\n ", at))
        joined.erase(at, 3);
    const auto value = parse_object(joined);
    if (!value)
        return std::nullopt;
    const auto& root = value->get_object();
    // SNS envelope: {"Type": "Notification", "Message": "<the SES JSON>"}.
    if (const auto message = str(root, "Message"); !message.empty()) {
        const auto inner = parse_object(message);
        return inner ? read_notification(inner->get_object()) : std::nullopt;
    }
    return read_notification(root);
}

} // namespace ember::feedback
