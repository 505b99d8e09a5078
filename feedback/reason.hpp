#pragma once
// The bounce reason vocabulary: the names the Sisimai bounce library uses
// (v5, with its renames: mesgtoobig is emailtoolarge, speeding is
// ratelimited), so ember's results compare with Sisimai's, plus the hard or
// soft verdict each reason has by default.
//
// Hard means "this address will not take mail, stop sending to it": only a
// permanent failure that says the address itself is wrong (userunknown,
// hostunknown, hasmoved, and notaccept: null MX or a host that takes no
// mail). That is Sisimai's rule (its is_hardbounce), with one change of
// ours: a transient answer (4xx reply, 4.x.x status) is never hard, so a
// "450 4.1.1 try again later" from a recipient-verification proxy does not
// suppress anyone. Every other reason is soft, including the non-failures
// (delivered, feedback, vacation) and the unknowns (onhold, undefined).
// Pure data and functions; thread-safe.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ember::feedback {

enum class Reason : std::uint8_t {
    Undefined,
    UserUnknown,
    HostUnknown,
    MailboxFull,
    ExceedLimit,
    EmailTooLarge,
    Filtered,
    Rejected,
    Blocked,
    SpamDetected,
    VirusDetected,
    PolicyViolation,
    AuthFailure,
    RequirePtr,
    BadReputation,
    RateLimited,
    TooManyConn,
    SecurityError,
    NotAccept,
    NoRelaying,
    Suspend,
    HasMoved,
    SyntaxError,
    ContentError,
    MailerError,
    NetworkError,
    SystemError,
    SystemFull,
    Expired,
    NotCompliantRfc,
    FailedStartTls,
    OnHold,
    Vacation,
    Delivered,
    Feedback,
};

// "userunknown", "emailtoolarge", ...: the lower-case Sisimai name.
[[nodiscard]] std::string_view reason_name(Reason reason);

// The name back to the reason, case-insensitive; Sisimai's older names
// ("mesgtoobig", "speeding") are accepted too. nullopt for anything else.
[[nodiscard]] std::optional<Reason> parse_reason(std::string_view name);

// Every reason, in declaration order (for tables and tests).
[[nodiscard]] std::span<const Reason> all_reasons();

// The default verdict (see the header comment). `transient` is true when
// the reply code is 4xx or the status class is 4.
[[nodiscard]] bool default_hard(Reason reason, bool transient);

// Reasons that are not delivery failures: a bounce parser reports them, but
// nothing should be suppressed or counted as a bounce for them.
[[nodiscard]] bool is_failure(Reason reason);

} // namespace ember::feedback
