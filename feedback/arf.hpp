#pragma once
// Complaint reports from feedback loops: ARF (RFC 5965: multipart/report;
// report-type=feedback-report with a message/feedback-report part, RFC
// 6591 auth-failure reports included) and the provider formats that are
// not ARF but mean the same: Hotmail/Outlook JMRP (multipart/mixed with the
// complained-about message attached, recipient in
// X-HmXmrOriginalRecipient), Apple Mail's plain-text "unsubscribe" mail
// (X-Apple-Unsubscribe: true, counted as opt-out), and Amazon SES JSON
// complaint notifications.
//
// The report names the complained-about recipient(s) and carries the
// original message (or its headers), whose X-Ember-ID, Message-ID and
// return path map the complaint back to what ember sent. Counting and
// suppression are the caller's. Pure; thread-safe; never throws.

#include "feedback/mime.hpp"
#include "feedback/original_message.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

struct FeedbackReport {
    // "arf", "jmrp", "apple-unsubscribe", "ses-json"
    std::string format;
    // RFC 5965 3.1 / IANA registry: abuse, fraud, virus, other, not-spam,
    // auth-failure; plus opt-out (Yahoo, Apple), lower case as written.
    std::string feedback_type;
    std::string user_agent;
    std::string version;
    std::string original_mail_from;            // without <>
    std::vector<std::string> original_rcpt_to; // without <>
    std::string arrival_date;
    std::string source_ip;
    std::vector<std::string> reported_domains;
    std::vector<std::string> reported_uris;
    std::string authentication_results;
    std::string auth_failure; // RFC 6591: dkim, spf, dmarc, bodyhash, ...
    std::string incidents;
    std::string reporting_mta;
    mime::Headers original_headers; // of the embedded message or text/rfc822-headers
    OriginalMessage original;

    // Who complained: Original-Rcpt-To, else the JMRP original recipient,
    // else the To of the original message; empty when none is known.
    [[nodiscard]] std::vector<std::string> recipients() const;
};

// nullopt when the message is none of the formats above.
[[nodiscard]] std::optional<FeedbackReport> parse_feedback(std::string_view message);

} // namespace ember::feedback
