#pragma once
// Amazon SES event notifications (Bounce, Complaint, Delivery) as they
// arrive by mail through an SNS email subscription: a JSON object, either
// SES's own or wrapped in the SNS envelope whose "Message" field holds it
// as a string. Senders who relay through SES get their bounces this way.
// Pure; thread-safe; malformed JSON is simply not a notification.

#include "feedback/original_message.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

struct SesNotification {
    enum class Type : std::uint8_t { Bounce, Complaint, Delivery };
    struct Recipient {
        std::string address;
        std::string action;     // bounces: "failed"
        std::string status;     // bounces: "5.1.1"
        std::string diagnostic; // bounces: "smtp; 550 ..."; deliveries: the smtpResponse
    };
    Type type = Type::Bounce;
    std::vector<Recipient> recipients;
    std::string bounce_type;    // Permanent, Transient, Undetermined
    std::string bounce_subtype; // General, NoEmail, MailboxFull, MessageTooLarge, ...
    std::string feedback_type;  // complaints: abuse, not-spam, ... (lower case)
    std::string user_agent;
    OriginalMessage original; // from the notification's "mail" object
};

// The first JSON object in `body` (text around it is ignored).
[[nodiscard]] std::optional<SesNotification> parse_ses_notification(std::string_view body);

} // namespace ember::feedback
