#include "feedback/reason.hpp"

#include <array>
#include <cctype>
#include <utility>

namespace ember::feedback {
namespace {

constexpr std::array<std::pair<Reason, std::string_view>, 35> kNames{{
    {Reason::Undefined, "undefined"},
    {Reason::UserUnknown, "userunknown"},
    {Reason::HostUnknown, "hostunknown"},
    {Reason::MailboxFull, "mailboxfull"},
    {Reason::ExceedLimit, "exceedlimit"},
    {Reason::EmailTooLarge, "emailtoolarge"},
    {Reason::Filtered, "filtered"},
    {Reason::Rejected, "rejected"},
    {Reason::Blocked, "blocked"},
    {Reason::SpamDetected, "spamdetected"},
    {Reason::VirusDetected, "virusdetected"},
    {Reason::PolicyViolation, "policyviolation"},
    {Reason::AuthFailure, "authfailure"},
    {Reason::RequirePtr, "requireptr"},
    {Reason::BadReputation, "badreputation"},
    {Reason::RateLimited, "ratelimited"},
    {Reason::TooManyConn, "toomanyconn"},
    {Reason::SecurityError, "securityerror"},
    {Reason::NotAccept, "notaccept"},
    {Reason::NoRelaying, "norelaying"},
    {Reason::Suspend, "suspend"},
    {Reason::HasMoved, "hasmoved"},
    {Reason::SyntaxError, "syntaxerror"},
    {Reason::ContentError, "contenterror"},
    {Reason::MailerError, "mailererror"},
    {Reason::NetworkError, "networkerror"},
    {Reason::SystemError, "systemerror"},
    {Reason::SystemFull, "systemfull"},
    {Reason::Expired, "expired"},
    {Reason::NotCompliantRfc, "notcompliantrfc"},
    {Reason::FailedStartTls, "failedstarttls"},
    {Reason::OnHold, "onhold"},
    {Reason::Vacation, "vacation"},
    {Reason::Delivered, "delivered"},
    {Reason::Feedback, "feedback"},
}};

constexpr auto make_reasons() {
    std::array<Reason, kNames.size()> out{};
    for (std::size_t i = 0; i < kNames.size(); ++i)
        out[i] = kNames[i].first;
    return out;
}
constexpr auto kReasons = make_reasons();

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

} // namespace

std::string_view reason_name(Reason reason) {
    const auto index = static_cast<std::size_t>(reason);
    return index < kNames.size() ? kNames[index].second : "undefined";
}

std::optional<Reason> parse_reason(std::string_view name) {
    for (const auto& [reason, text] : kNames) {
        if (iequals(name, text))
            return reason;
    }
    // Sisimai 4 names, renamed in Sisimai 5.
    if (iequals(name, "mesgtoobig"))
        return Reason::EmailTooLarge;
    if (iequals(name, "speeding"))
        return Reason::RateLimited;
    return std::nullopt;
}

std::span<const Reason> all_reasons() {
    return kReasons;
}

bool default_hard(Reason reason, bool transient) {
    switch (reason) {
    case Reason::UserUnknown:
    case Reason::HostUnknown:
    case Reason::HasMoved:
    case Reason::NotAccept:
        return !transient;
    default:
        return false;
    }
}

bool is_failure(Reason reason) {
    return reason != Reason::Delivered && reason != Reason::Feedback && reason != Reason::Vacation;
}

} // namespace ember::feedback
