#pragma once
// The machine-readable part of a delivery status notification
// (message/delivery-status, RFC 3464 2.2-2.3; message/global-delivery-status,
// RFC 6533): per-message fields, then one group of fields per recipient.
// Tolerant of what real MTAs write: groups run together without the blank
// line between them, Action before Final-Recipient, a repeated field
// meaning a new recipient. Pure; thread-safe.

#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

struct DsnRecipient {
    std::string final_recipient;    // the address, address type stripped
    std::string original_recipient; // ditto
    std::string action;             // lower case: failed, delayed, delivered, relayed, expanded
    std::string status;             // "5.1.1" as written
    std::string remote_mta;         // name, type stripped
    std::string diagnostic_type;    // lower case: "smtp", "x-unix", ...
    std::string diagnostic;         // the text after "smtp;"
};

struct DeliveryStatus {
    std::string reporting_mta;
    std::string received_from_mta;
    std::string arrival_date;
    std::vector<DsnRecipient> recipients;
};

// `body` has LF line ends.
[[nodiscard]] DeliveryStatus parse_delivery_status(std::string_view body);

// "rfc822; <a@b>" -> "a@b"; "a@b" -> "a@b"; "" for nothing address-like.
[[nodiscard]] std::string strip_address_type(std::string_view value);

} // namespace ember::feedback
