#include "feedback/arf.hpp"

#include "feedback/ses_notification.hpp"

#include <algorithm>
#include <cctype>

namespace ember::feedback {
namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

std::string without_angles(std::string_view value) {
    const auto address = first_address(value);
    return address.empty() ? std::string(value) : address;
}

bool is_headers_part(const mime::Part& part) {
    // RFC 6591 and RFC 5965 use text/rfc822-headers; some reporters write
    // text/rfc822-header.
    return part.mime_type == "text/rfc822-headers" || part.mime_type == "text/rfc822-header";
}

// RFC 5965 3.1-3.3 fields of the machine-readable part.
void read_report_fields(const mime::Headers& fields, FeedbackReport& out) {
    out.feedback_type = lower(fields.get("Feedback-Type"));
    out.user_agent = fields.get("User-Agent");
    out.version = fields.get("Version");
    out.original_mail_from = without_angles(fields.get("Original-Mail-From"));
    for (const auto& field : {"Original-Rcpt-To", "Removal-Recipient"}) {
        for (const auto& rcpt : fields.get_all(field)) {
            const auto address = without_angles(rcpt);
            const bool seen =
                std::any_of(out.original_rcpt_to.begin(), out.original_rcpt_to.end(),
                            [&](const std::string& a) { return lower(a) == lower(address); });
            if (!address.empty() && !seen)
                out.original_rcpt_to.push_back(address);
        }
    }
    out.arrival_date = fields.get("Arrival-Date");
    if (out.arrival_date.empty())
        out.arrival_date = fields.get("Received-Date"); // the draft-era name
    out.source_ip = fields.get("Source-IP");
    out.reported_domains = fields.get_all("Reported-Domain");
    out.reported_uris = fields.get_all("Reported-URI");
    out.authentication_results = fields.get("Authentication-Results");
    out.auth_failure = lower(fields.get("Auth-Failure"));
    out.incidents = fields.get("Incidents");
    const auto mta = fields.get("Reporting-MTA");
    out.reporting_mta =
        std::string(mta.substr(mta.find(';') == std::string::npos ? 0 : mta.find(';') + 1));
    while (!out.reporting_mta.empty() && out.reporting_mta.front() == ' ')
        out.reporting_mta.erase(0, 1);
}

void read_original(const std::vector<mime::Part>& parts, FeedbackReport& out) {
    for (const auto& part : parts) {
        if (part.mime_type == "message/rfc822" || part.mime_type == "message/global") {
            out.original_headers = mime::parse_entity(part.body).headers;
            break;
        }
        if (is_headers_part(part)) {
            out.original_headers = mime::parse_headers(part.body);
            break;
        }
    }
    out.original = original_from_headers(out.original_headers);
}

std::optional<FeedbackReport> read_arf(const mime::Entity& top,
                                       const std::vector<mime::Part>& parts) {
    const auto report = std::find_if(parts.begin(), parts.end(), [](const mime::Part& p) {
        return p.mime_type == "message/feedback-report";
    });
    const auto type = mime::parse_content_type(top.headers.get("Content-Type"));
    const bool declared = type.mime_type() == "multipart/report" &&
                          lower(type.param("report-type")) == "feedback-report";
    if (report == parts.end() && !declared)
        return std::nullopt;
    FeedbackReport out;
    out.format = "arf";
    if (report != parts.end())
        read_report_fields(mime::parse_headers(report->body), out);
    if (out.feedback_type.empty())
        out.feedback_type = "abuse"; // RFC 5965 3.1 requires it; abuse is what a loop reports
    read_original(parts, out);
    return out;
}

// Microsoft JMRP: the complained-about message attached as message/rfc822,
// the complaining recipient in its X-HmXmrOriginalRecipient header.
std::optional<FeedbackReport> read_jmrp(const std::vector<mime::Part>& parts) {
    for (const auto& part : parts) {
        if (part.mime_type != "message/rfc822")
            continue;
        const auto headers = mime::parse_entity(part.body).headers;
        const auto rcpt = headers.get("X-HmXmrOriginalRecipient");
        if (rcpt.empty())
            continue;
        FeedbackReport out;
        out.format = "jmrp";
        out.feedback_type = "abuse";
        out.original_rcpt_to.push_back(without_angles(rcpt));
        out.source_ip = headers.get("X-Reporter-IP");
        out.authentication_results = headers.get("Authentication-Results");
        out.original_headers = headers;
        out.original = original_from_headers(headers);
        return out;
    }
    return std::nullopt;
}

// Apple Mail's "unsubscribe" mail to a List-Unsubscribe mailto: address:
// the sender of the mail is the recipient who opts out.
std::optional<FeedbackReport> read_apple(const mime::Entity& top) {
    if (lower(top.headers.get("X-Apple-Unsubscribe")) != "true")
        return std::nullopt;
    FeedbackReport out;
    out.format = "apple-unsubscribe";
    out.feedback_type = "opt-out";
    const auto from = first_address(top.headers.get("From"));
    if (!from.empty())
        out.original_rcpt_to.push_back(from);
    out.original.to = top.headers.get("To"); // the mailto: address we published
    return out;
}

std::optional<FeedbackReport> read_ses(const mime::Entity& top) {
    const auto notification = parse_ses_notification(top.body);
    if (!notification || notification->type != SesNotification::Type::Complaint)
        return std::nullopt;
    FeedbackReport out;
    out.format = "ses-json";
    out.feedback_type = notification->feedback_type.empty() ? "abuse" : notification->feedback_type;
    out.user_agent = notification->user_agent;
    for (const auto& r : notification->recipients)
        out.original_rcpt_to.push_back(r.address);
    out.original = notification->original;
    return out;
}

} // namespace

std::vector<std::string> FeedbackReport::recipients() const {
    if (!original_rcpt_to.empty())
        return original_rcpt_to;
    const auto to = first_address(original.to);
    if (!to.empty())
        return {to};
    return {};
}

std::optional<FeedbackReport> parse_feedback(std::string_view message) {
    const auto text = mime::normalize_newlines(message.substr(0, 16 * 1024 * 1024));
    const auto top = mime::parse_entity(text);
    const auto parts = mime::leaves(top);
    if (auto arf = read_arf(top, parts))
        return arf;
    if (auto apple = read_apple(top))
        return apple;
    if (auto jmrp = read_jmrp(parts))
        return jmrp;
    return read_ses(top);
}

} // namespace ember::feedback
