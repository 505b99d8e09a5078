#include "smtp/outcome.hpp"

#include "dns/mail_hosts.hpp"

#include <fmt/core.h>

namespace ember::smtp {
namespace {

using core::Outcome;
using core::OutcomeKind;
using core::OutcomeScope;

Outcome local(OutcomeKind kind, OutcomeScope scope, int code, std::string_view enhanced,
              std::string text, std::string_view command, const PeerName& peer) {
    Outcome o;
    o.kind = kind;
    o.scope = scope;
    o.code = code;
    o.enhanced = enhanced;
    o.text = std::move(text);
    o.command = command;
    o.remote_host = peer.host;
    o.remote_ip = peer.ip;
    o.local = true;
    return o;
}

OutcomeKind kind_of(int code) {
    if (code >= 200 && code < 300)
        return OutcomeKind::Delivered;
    if (code >= 500 && code < 600)
        return OutcomeKind::Failed;
    return OutcomeKind::Deferred;
}

std::string joined_text(const Reply& reply) {
    // reply_summary() sanitizes control characters; strip its "code enh " prefix.
    Reply text_only = reply;
    text_only.enhanced.clear();
    std::string summary = reply_summary(text_only);
    return summary.size() > 4 ? summary.substr(4) : std::string();
}

} // namespace

std::string PeerName::display() const {
    if (ip.empty())
        return host;
    return fmt::format("{}[{}]", host.empty() ? ip : host, ip);
}

std::string synthesize_enhanced(int code, std::string_view command) {
    const bool rcpt = command == command_name::kRcpt;
    const bool mail = command == command_name::kMail;
    switch (code) {
    case 421:
        return "4.4.2";
    case 450:
        return "4.2.0";
    case 451:
        return "4.3.0";
    case 452:
        return rcpt ? "4.5.3" : "4.3.1";
    case 500:
        return "5.5.2";
    case 501:
        return "5.5.4";
    case 502:
        return "5.5.1";
    case 503:
        return "5.5.1";
    case 504:
        return "5.5.4";
    case 521:
        return "5.3.2";
    case 551:
        return "5.1.6";
    case 552:
        return mail ? "5.3.4" : rcpt ? "4.5.3" : "5.2.2";
    case 553:
        return "5.1.3";
    case 555:
        return "5.5.4";
    case 556:
        return "5.1.10";
    default:
        break;
    }
    if (code >= 200 && code < 600)
        return fmt::format("{}.0.0", code / 100);
    return "4.5.0";
}

Outcome from_reply(const Reply& reply, std::string_view command, OutcomeScope scope,
                   const PeerName& peer) {
    Outcome o;
    o.kind = kind_of(reply.code);
    o.scope = reply.code == 421 ? OutcomeScope::Site : scope;
    o.code = reply.code;
    o.enhanced = reply.enhanced.empty() ? synthesize_enhanced(reply.code, command) : reply.enhanced;
    o.text = joined_text(reply);
    o.command = command;
    o.remote_host = peer.host;
    o.remote_ip = peer.ip;
    if (reply.code >= 300 && reply.code < 400) {
        o.enhanced = "4.5.0"; // a 3xx is never a final answer here
        o.kind = OutcomeKind::Deferred;
    }
    if (o.kind == OutcomeKind::Failed && command == command_name::kGreeting)
        o.kind = OutcomeKind::Deferred; // smtp_skip_5xx_greeting
    if (reply.code == 552 && command == command_name::kRcpt)
        o.kind = OutcomeKind::Deferred; // RFC 5321 4.5.3.1.10
    return o;
}

Outcome connect_failed(const PeerName& peer, std::string_view reason) {
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 421, "4.4.1",
                 fmt::format("connect to {}: {}", peer.display(), reason), command_name::kConnect,
                 peer);
}

Outcome connection_lost(std::string_view command, const PeerName& peer, std::string_view phase,
                        bool timed_out) {
    std::string text =
        timed_out ? fmt::format("conversation with {} timed out while {}", peer.display(), phase)
                  : fmt::format("lost connection with {} while {}", peer.display(), phase);
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 421, "4.4.2", std::move(text), command,
                 peer);
}

Outcome protocol_error(std::string_view command, const PeerName& peer, std::string_view detail) {
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 451, "4.5.0",
                 fmt::format("protocol error with {}: {}", peer.display(), detail), command, peer);
}

Outcome dns_temporary(std::string_view detail) {
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 451, "4.4.3", std::string(detail),
                 command_name::kDns, {});
}

Outcome domain_not_found(std::string_view detail) {
    return local(OutcomeKind::Failed, OutcomeScope::Site, 550, "5.1.2", std::string(detail),
                 command_name::kDns, {});
}

Outcome null_mx(std::string_view detail) {
    return local(OutcomeKind::Failed, OutcomeScope::Site, 556, "5.1.10", std::string(detail),
                 command_name::kDns, {});
}

Outcome no_route(std::string_view detail) {
    return local(OutcomeKind::Failed, OutcomeScope::Site, 550, "5.4.4", std::string(detail),
                 command_name::kDns, {});
}

Outcome from_mail_hosts(const dns::MailHosts& hosts) {
    switch (hosts.error) {
    case dns::MailHostsError::NullMx:
        return null_mx(hosts.detail);
    case dns::MailHostsError::NoSuchDomain:
    case dns::MailHostsError::NoMailHosts:
        return domain_not_found(hosts.detail);
    case dns::MailHostsError::NoAddress:
        return no_route(hosts.detail);
    case dns::MailHostsError::None: // a caller bug, but never a false "delivered"
    case dns::MailHostsError::Temporary:
        break;
    }
    return dns_temporary(hosts.detail);
}

Outcome tls_unavailable(const PeerName& peer, std::string_view detail) {
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 450, "4.7.4",
                 fmt::format("TLS is required, but {}", detail), command_name::kStartTls, peer);
}

Outcome tls_failed(const PeerName& peer, std::string_view detail) {
    return local(OutcomeKind::Deferred, OutcomeScope::Site, 450, "4.7.5",
                 fmt::format("TLS with {} failed: {}", peer.display(), detail),
                 command_name::kStartTls, peer);
}

Outcome smtputf8_unsupported(const PeerName& peer) {
    return local(
        OutcomeKind::Failed, OutcomeScope::Message, 550, "5.6.7",
        fmt::format("SMTPUTF8 is required, but was not offered by host {}", peer.display()),
        command_name::kMail, peer);
}

Outcome message_too_big(const PeerName& peer, std::uint64_t size, std::uint64_t limit) {
    return local(OutcomeKind::Failed, OutcomeScope::Message, 552, "5.3.4",
                 fmt::format("message size {} exceeds size limit {} of server {}", size, limit,
                             peer.display()),
                 command_name::kMail, peer);
}

Outcome expired(std::string_view last_deferral) {
    std::string text = "delivery time expired";
    if (!last_deferral.empty())
        text += fmt::format("; last deferral: {}", last_deferral);
    return local(OutcomeKind::Failed, OutcomeScope::Recipient, 451, "4.4.7", std::move(text),
                 "queue", {});
}

Outcome cancelled(std::string_view detail) {
    // not_before_ms 0: due again at once (the scheduler adds its minimum pause).
    return local(OutcomeKind::Throttled, OutcomeScope::Site, 421, "4.3.2", std::string(detail),
                 "shutdown", {});
}

} // namespace ember::smtp
