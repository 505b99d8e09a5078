#pragma once
// The SMTP envelope as ember keeps it: the reverse-path, the forward-paths
// and the per-transaction and per-recipient ESMTP parameters that travel with
// a message from submission to delivery (RFC 3461 DSN, RFC 6152 8BITMIME,
// RFC 6531 SMTPUTF8). Shared by smtp/ (which fills it) and queue/ (which
// stores it). Plain data, no behaviour beyond small helpers.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ember::core {

enum class BodyType : std::uint8_t { Unspecified, SevenBit, EightBitMime, BinaryMime };
enum class DsnRet : std::uint8_t { Unspecified, Full, Headers };

// RFC 3461 NOTIFY; 0 means the parameter was absent (the MTA default applies:
// FAILURE, and DELAY at the MTA's discretion).
enum NotifyFlag : std::uint8_t {
    kNotifyNever = 1,
    kNotifySuccess = 2,
    kNotifyFailure = 4,
    kNotifyDelay = 8,
};

struct RecipientSpec {
    std::string address; // forward-path without angle brackets
    std::string orcpt;   // ORCPT as "addr-type;address", xtext decoded; empty if absent
    std::uint8_t notify = 0;
    friend bool operator==(const RecipientSpec&, const RecipientSpec&) = default;
};

struct Envelope {
    std::string mail_from; // reverse-path without angle brackets; empty = null sender <>
    BodyType body = BodyType::Unspecified;
    bool smtputf8 = false;
    DsnRet ret = DsnRet::Unspecified;
    std::string envid; // ENVID, xtext decoded; empty if absent
    std::vector<RecipientSpec> recipients;
    friend bool operator==(const Envelope&, const Envelope&) = default;
};

// The domain of an address ("user@Example.COM" -> "example.com"); "" when the
// address has no '@'. Domains are ASCII-lowercased; U-labels are left as is.
[[nodiscard]] std::string address_domain(std::string_view address);

} // namespace ember::core
