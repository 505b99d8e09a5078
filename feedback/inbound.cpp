#include "feedback/inbound.hpp"

#include "core/envelope.hpp"
#include "feedback/arf.hpp"
#include "feedback/bounce_parser.hpp"
#include "feedback/mime.hpp"
#include "feedback/original_message.hpp"

#include <algorithm>
#include <cctype>

namespace ember::feedback {
namespace {

// Header fields are at the front; a huge body is not read to find them.
constexpr std::size_t kMaxHeaderBlock = 256 * 1024;

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lower(a) == lower(b);
}

std::string_view bare(std::string_view address) {
    auto text = trim(address);
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>')
        text = trim(text.substr(1, text.size() - 2));
    return text;
}

std::string_view local_part(std::string_view address) {
    return address.substr(0, std::min(address.size(), address.rfind('@')));
}

mime::Headers header_block(std::string_view message) {
    const auto head = message.substr(0, std::min(message.size(), kMaxHeaderBlock));
    return mime::parse_entity(mime::normalize_newlines(head)).headers;
}

void add_unique(std::vector<std::string>& list, std::string value) {
    if (value.empty())
        return;
    value = lower(value);
    if (std::find(list.begin(), list.end(), value) == list.end())
        list.push_back(std::move(value));
}

// "bounce.example.com" -> itself and "example.com": the unsubscribe address
// usually lives at the sending domain or below it.
void add_domain_and_parents(std::vector<std::string>& list, std::string_view domain) {
    while (domain.find('.') != std::string_view::npos) {
        add_unique(list, std::string(domain));
        domain.remove_prefix(domain.find('.') + 1);
    }
}

RcptCheck refuse(RcptKind kind, std::string text, TokenStatus token = TokenStatus::Malformed) {
    return {false, kind, 550, "5.1.1", std::move(text), token};
}

RcptCheck accept(RcptKind kind, TokenStatus token = TokenStatus::Ok) {
    return {true, kind, 250, "2.1.5", "OK", token};
}

IgnoreAction ignore(std::string why) {
    return IgnoreAction{std::move(why)};
}

} // namespace

std::string_view rcpt_kind_name(RcptKind kind) {
    switch (kind) {
    case RcptKind::Verp:
        return "verp";
    case RcptKind::Unsubscribe:
        return "unsubscribe";
    case RcptKind::Report:
        return "report";
    case RcptKind::Postmaster:
        return "postmaster";
    case RcptKind::Unknown:
        return "unknown";
    }
    return "unknown";
}

std::string_view trace_via_name(TraceRef::Via via) {
    switch (via) {
    case TraceRef::Via::None:
        return "none";
    case TraceRef::Via::Verp:
        return "verp";
    case TraceRef::Via::EmberId:
        return "ember-id";
    case TraceRef::Via::MessageId:
        return "message-id";
    }
    return "none";
}

// ---- Mapping reports back ----

namespace {

struct Mapping {
    TraceRef trace;
    std::optional<VerpId> verp;
};

class Mapper {
public:
    Mapper(const TokenSigner& signer, const std::string& verp_prefix)
        : signer_(signer), prefix_(verp_prefix) {}

    // The token of the address the report came to, else the one in the
    // returned message's Return-Path, else X-Ember-ID, else Message-ID.
    [[nodiscard]] Mapping map(const OriginalMessage& original,
                              const std::optional<VerpId>& rcpt_verp) const {
        Mapping m;
        m.trace.message_id = original.message_id;
        m.verp = rcpt_verp;
        if (!m.verp) {
            const auto token = verp_token(original.return_path, prefix_);
            const auto check = token ? signer_.verify_verp(*token) : VerpCheck{};
            if (check.ok())
                m.verp = check.id;
        }
        if (m.verp) {
            m.trace.via = TraceRef::Via::Verp;
            m.trace.queue_id = m.verp->queue_id;
            m.trace.recipient_index = m.verp->recipient_index;
            return m;
        }
        const auto id = signer_.verify_ember_id(original.ember_id, {});
        if (id.parsed) {
            m.trace.via = TraceRef::Via::EmberId;
            m.trace.queue_id = id.queue_id;
            m.trace.recipient_index = id.recipient_index;
        } else if (!original.message_id.empty()) {
            m.trace.via = TraceRef::Via::MessageId;
        }
        return m;
    }

    // The candidate the mapping's MAC covers (VERP address hash, then the
    // X-Ember-ID MAC), lower-cased; nullopt when none is.
    [[nodiscard]] std::optional<std::string>
    verified(const Mapping& m, const OriginalMessage& original,
             const std::vector<std::string>& candidates) const {
        if (m.verp) {
            for (const auto& c : candidates) {
                if (address_hash(c) == m.verp->address_hash)
                    return lower(c);
            }
        }
        if (original.ember_id.empty())
            return std::nullopt;
        const auto id = signer_.verify_ember_id(original.ember_id, candidates);
        if (id.verified)
            return id.recipient;
        return std::nullopt;
    }

private:
    const TokenSigner& signer_;
    std::string prefix_;
};

} // namespace

// ---- InboundPolicy ----

struct InboundPolicy::Recipients {
    std::optional<VerpId> verp; // the first VERP recipient whose token verifies
    std::vector<std::string> unsubscribe;
    bool report = false; // a recipient that takes reports: VERP, report address, postmaster
};

InboundPolicy::InboundPolicy(InboundConfig config, TokenSigner signer,
                             std::shared_ptr<const Rules> rules)
    : config_(std::move(config)), signer_(std::move(signer)), rules_(std::move(rules)) {
    for (const auto& domain : config_.sending_domains)
        domains_by_hash_.emplace(domain_hash(domain), lower(domain));
}

std::optional<std::string> InboundPolicy::token_of(std::string_view address,
                                                   std::string_view local) const {
    auto token = verp_token(bare(address), std::string(local) + "+");
    if (!token || token->empty())
        return std::nullopt;
    return token;
}

std::string InboundPolicy::domain_for(std::uint32_t hash) const {
    const auto it = domains_by_hash_.find(hash);
    return it == domains_by_hash_.end() ? "" : it->second;
}

RcptCheck InboundPolicy::check_rcpt(std::string_view address) const {
    const auto addr = bare(address);
    if (const auto token = token_of(addr, config_.verp_local_part)) {
        const auto check = signer_.verify_verp(*token);
        if (check.ok())
            return accept(RcptKind::Verp);
        return refuse(RcptKind::Verp, "Recipient address rejected: bad or forged bounce address",
                      check.status);
    }
    if (const auto token = token_of(addr, config_.unsubscribe_local_part)) {
        const auto shape = TokenSigner::mailto_token_shape(*token);
        if (shape == TokenStatus::Ok)
            return accept(RcptKind::Unsubscribe, shape);
        return refuse(RcptKind::Unsubscribe,
                      "Recipient address rejected: unknown unsubscribe address", shape);
    }
    for (const auto& report : config_.report_addresses) {
        if (iequals(addr, bare(report)))
            return accept(RcptKind::Report);
    }
    if (addr.find('@') != std::string_view::npos && iequals(local_part(addr), "postmaster"))
        return accept(RcptKind::Postmaster);
    return refuse(RcptKind::Unknown, "Recipient address rejected: no such mailbox here");
}

InboundPolicy::Recipients InboundPolicy::sort_recipients(const InboundEnvelope& envelope) const {
    Recipients out;
    for (const auto& rcpt : envelope.recipients) {
        const auto check = check_rcpt(rcpt);
        if (!check.accept)
            continue;
        if (check.kind == RcptKind::Unsubscribe) {
            out.unsubscribe.emplace_back(bare(rcpt));
            continue;
        }
        out.report = true;
        if (check.kind == RcptKind::Verp && !out.verp)
            out.verp = signer_.verify_verp(*token_of(rcpt, config_.verp_local_part)).id;
    }
    return out;
}

std::vector<InboundAction> InboundPolicy::decide(const InboundEnvelope& envelope,
                                                 std::string_view message) const {
    const auto recipients = sort_recipients(envelope);
    std::vector<InboundAction> out;
    for (const auto& rcpt : recipients.unsubscribe)
        out.push_back(decide_unsubscribe(envelope, message, rcpt));
    if (recipients.report)
        decide_report(message, recipients.verp, out);
    if (out.empty())
        out.emplace_back(ignore("no recipient of ours"));
    return out;
}

InboundAction InboundPolicy::decide_unsubscribe(const InboundEnvelope& envelope,
                                                std::string_view message,
                                                const std::string& rcpt) const {
    if (bare(envelope.mail_from).empty())
        return ignore("null sender: a report, not an unsubscribe request");
    const auto headers = header_block(message);
    const auto auto_submitted = lower(trim(headers.get("Auto-Submitted")));
    if (!auto_submitted.empty() && auto_submitted != "no")
        return ignore("auto-submitted message to an unsubscribe address");
    std::vector<std::string> senders;
    add_unique(senders, std::string(bare(envelope.mail_from)));
    for (const auto* field : {"From", "Sender", "Reply-To"})
        add_unique(senders, first_address(headers.get(field)));
    std::vector<std::string> domains;
    for (const auto& domain : config_.sending_domains)
        add_unique(domains, domain);
    add_domain_and_parents(domains, core::address_domain(rcpt));
    const auto check = signer_.verify_unsubscribe_mailto_token(
        *token_of(rcpt, config_.unsubscribe_local_part), senders, domains);
    if (!check.ok())
        return ignore("unsubscribe token not issued to the sender (" +
                      std::string(token_status_name(check.status)) + ")");
    return UnsubscribeAction{check.who, check.key_id};
}

void InboundPolicy::decide_report(std::string_view message, const std::optional<VerpId>& verp,
                                  std::vector<InboundAction>& out) const {
    if (const auto fb = parse_feedback(message))
        return add_complaints(*fb, verp, out);
    const auto report = parse_bounce(message, rules_ ? *rules_ : Rules::builtin());
    switch (report.kind) {
    case BounceKind::Bounce:
        return add_bounces(report, verp, out);
    case BounceKind::AutoReply:
        out.emplace_back(ignore("autoreply"));
        return;
    case BounceKind::Feedback: // parse_feedback() would have read it
    case BounceKind::NotBounce:
        out.emplace_back(ignore("not a bounce or complaint report"));
        return;
    }
}

std::string InboundPolicy::sending_domain(const std::optional<VerpId>& verp,
                                          const OriginalMessage& original,
                                          std::string_view mail_from) const {
    if (verp) {
        if (auto domain = domain_for(verp->domain_hash); !domain.empty())
            return domain;
    }
    if (auto domain = core::address_domain(first_address(original.from)); !domain.empty())
        return domain;
    return core::address_domain(mail_from);
}

void InboundPolicy::add_bounces(const BounceReport& report, const std::optional<VerpId>& verp,
                                std::vector<InboundAction>& out) const {
    const Mapper mapper(signer_, config_.verp_local_part + "+");
    const auto mapping = mapper.map(report.original, verp);
    if (mapping.trace.via == TraceRef::Via::None) {
        out.emplace_back(ignore("bounce maps to no message ember sent"));
        return;
    }
    const auto before = out.size();
    for (const auto& r : report.recipients) {
        const auto action = lower(r.action);
        if ((!action.empty() && action != "failed") || !is_failure(r.classification.reason))
            continue;
        std::vector<std::string> candidates;
        add_unique(candidates, first_address(r.recipient));
        add_unique(candidates, first_address(r.original_recipient));
        const auto matched = mapper.verified(mapping, report.original, candidates);
        BounceAction a;
        a.trace = mapping.trace;
        a.sending_domain = sending_domain(mapping.verp, report.original, "");
        a.recipient = matched ? *matched : (candidates.empty() ? "" : candidates.front());
        a.recipient_verified = matched.has_value();
        a.reason = r.classification.reason;
        a.hard = r.classification.hard;
        a.status = r.classification.status;
        a.diagnostic = r.diagnostic;
        a.reply_code = r.reply_code;
        a.remote_mta = r.remote_mta;
        a.format = report.format;
        out.emplace_back(std::move(a));
    }
    if (out.size() == before)
        out.emplace_back(ignore("no failed recipient (a delay or success notice)"));
}

void InboundPolicy::add_complaints(const FeedbackReport& fb, const std::optional<VerpId>& verp,
                                   std::vector<InboundAction>& out) const {
    const Mapper mapper(signer_, config_.verp_local_part + "+");
    const auto mapping = mapper.map(fb.original, verp);
    std::vector<std::string> reported;
    for (const auto& r : fb.recipients())
        add_unique(reported, first_address(r));
    // A provider that redacts Original-Rcpt-To often leaves the quoted
    // message's To: with one recipient, try it too.
    std::vector<std::string> fallback = reported;
    add_unique(fallback, first_address(fb.original.to));
    if (reported.empty())
        reported.emplace_back();
    for (const auto& recipient : reported) {
        auto matched =
            recipient.empty() ? std::nullopt : mapper.verified(mapping, fb.original, {recipient});
        if (!matched && reported.size() == 1)
            matched = mapper.verified(mapping, fb.original, fallback);
        ComplaintAction a;
        a.trace = mapping.trace;
        a.sending_domain = sending_domain(mapping.verp, fb.original, fb.original_mail_from);
        a.recipient = matched ? *matched : recipient;
        a.recipient_verified = matched.has_value();
        a.feedback_type = fb.feedback_type;
        a.format = fb.format;
        a.user_agent = fb.user_agent;
        a.source_ip = fb.source_ip;
        out.emplace_back(std::move(a));
    }
}

} // namespace ember::feedback
