#pragma once
// What ember does with mail arriving on the inbound listener (the one that
// receives bounces at VERP return paths, feedback-loop complaint reports
// and mailto unsubscribes): a pure decision from the envelope and the
// message bytes to a list of actions. The daemon carries them out
// (suppression list, events, complaint and bounce rates); nothing here
// writes, sends or looks anything up.
//
// RCPT TO (check_rcpt) accepts only
//   - LOCAL+TOKEN@any     VERP return paths whose token verifies (a forged
//                         or tampered bounce address gets 550 5.1.1 at RCPT,
//                         so backscatter and forged bounces never reach DATA);
//   - UNSUB+TOKEN@any     mailto unsubscribe addresses whose token has the
//                         right shape (it can only be verified against the
//                         message's sender, after DATA);
//   - report_addresses    the addresses feedback loops send to;
//   - postmaster@any      RFC 5321 4.5.1 requires it;
// and refuses everything else with 550 5.1.1: the listener holds no
// mailboxes and must not relay. Local parts are matched without case.
//
// decide() then reads the message once:
//   - to an unsubscribe address: the token is verified against the sender
//     (MAIL FROM, From, Sender, Reply-To) for each configured sending domain
//     (and the unsubscribe address's own domain and its parents) with the
//     token's domain hash -> Unsubscribe; else Ignore. A null sender or an
//     Auto-Submitted message is not a request (RFC 3834: never act on
//     automatic mail as if a person had sent it);
//   - a complaint report (feedback/arf.hpp) -> one Complaint per
//     complained-about recipient, mapped back by the VERP token it came to,
//     the VERP token in the quoted message's Return-Path, its X-Ember-ID, or
//     its Message-ID, in that order;
//   - a bounce (feedback/bounce_parser.hpp) -> one Bounce per failed
//     recipient, mapped the same way; a bounce that maps to nothing ember
//     sent is ignored;
//   - an autoreply, a delay notice, anything else -> Ignore with why.
// `recipient_verified` says the MAC of the token that mapped the report
// covers that very recipient (the VERP address hash or the X-Ember-ID MAC):
// only then is the address safe to suppress, because anybody who received
// one of our messages holds a valid token and could name somebody else in a
// forged report.
//
// Pure and immutable after construction; thread-safe.

#include "feedback/original_message.hpp"
#include "feedback/reason.hpp"
#include "feedback/rules.hpp"
#include "feedback/tokens.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ember::feedback {

struct BounceReport;   // feedback/bounce_parser.hpp
struct FeedbackReport; // feedback/arf.hpp

struct InboundConfig {
    std::string verp_local_part = "bounces";            // bounces+TOKEN@...
    std::string unsubscribe_local_part = "unsubscribe"; // unsubscribe+TOKEN@...
    // Full addresses feedback loops deliver to ("fbl@example.com").
    std::vector<std::string> report_addresses;
    // The sending domains, to name the domain behind a token's hash.
    std::vector<std::string> sending_domains;
};

enum class RcptKind : std::uint8_t { Verp, Unsubscribe, Report, Postmaster, Unknown };
[[nodiscard]] std::string_view rcpt_kind_name(RcptKind kind);

struct RcptCheck {
    bool accept = false;
    RcptKind kind = RcptKind::Unknown;
    // The reply when refused: code 550, enhanced "5.1.1", text for after them.
    int code = 0;
    std::string enhanced;
    std::string text;
    // Verp/Unsubscribe: what the token check said (for the log line).
    TokenStatus token = TokenStatus::Malformed;
};

// How a report was mapped back to what ember sent.
struct TraceRef {
    enum class Via : std::uint8_t { None, Verp, EmberId, MessageId };
    Via via = Via::None;
    std::uint64_t queue_id = 0;                   // Verp, EmberId
    std::optional<std::uint32_t> recipient_index; // Verp, EmberId with an index
    std::string message_id;                       // the returned message's, without <>
    friend bool operator==(const TraceRef&, const TraceRef&) = default;
};
[[nodiscard]] std::string_view trace_via_name(TraceRef::Via via);

struct BounceAction {
    TraceRef trace;
    // The token's domain among InboundConfig::sending_domains, else the
    // domain of the returned message's From; "" when unknown.
    std::string sending_domain;
    std::string recipient; // the address ember mailed when verified, else the reported one
    bool recipient_verified = false;
    Reason reason = Reason::Undefined;
    bool hard = false;
    std::string status;     // enhanced status (given or synthesized)
    std::string diagnostic; // the remote server's words
    int reply_code = 0;
    std::string remote_mta;
    std::string format; // which reader: "rfc3464", "qmail", ...
};

struct ComplaintAction {
    TraceRef trace;
    std::string sending_domain; // as for BounceAction
    std::string recipient;      // "" when the report names nobody (redacted)
    bool recipient_verified = false;
    std::string feedback_type; // abuse, fraud, opt-out, not-spam, ...
    std::string format;        // arf, jmrp, apple-unsubscribe, ses-json
    std::string user_agent;
    std::string source_ip;
};

struct UnsubscribeAction {
    Unsubscriber who; // address (the sender that verified) and sending domain
    std::string key_id;
};

struct IgnoreAction {
    std::string why; // one short phrase for the log
};

using InboundAction = std::variant<BounceAction, ComplaintAction, UnsubscribeAction, IgnoreAction>;

struct InboundEnvelope {
    std::string mail_from;               // "" for the null sender
    std::vector<std::string> recipients; // the accepted RCPT TO addresses
};

class InboundPolicy {
public:
    // `rules` null: the built-in classification rules.
    InboundPolicy(InboundConfig config, TokenSigner signer,
                  std::shared_ptr<const Rules> rules = nullptr);

    [[nodiscard]] RcptCheck check_rcpt(std::string_view address) const;
    // At least one action; never throws on any input.
    [[nodiscard]] std::vector<InboundAction> decide(const InboundEnvelope& envelope,
                                                    std::string_view message) const;

private:
    struct Recipients; // the envelope's recipients, sorted by kind
    [[nodiscard]] Recipients sort_recipients(const InboundEnvelope& envelope) const;
    [[nodiscard]] InboundAction decide_unsubscribe(const InboundEnvelope& envelope,
                                                   std::string_view message,
                                                   const std::string& rcpt) const;
    void decide_report(std::string_view message, const std::optional<VerpId>& verp,
                       std::vector<InboundAction>& out) const;
    void add_bounces(const BounceReport& report, const std::optional<VerpId>& verp,
                     std::vector<InboundAction>& out) const;
    void add_complaints(const FeedbackReport& report, const std::optional<VerpId>& verp,
                        std::vector<InboundAction>& out) const;
    [[nodiscard]] std::string sending_domain(const std::optional<VerpId>& verp,
                                             const OriginalMessage& original,
                                             std::string_view mail_from) const;
    [[nodiscard]] std::string domain_for(std::uint32_t hash) const;
    [[nodiscard]] std::optional<std::string> token_of(std::string_view address,
                                                      std::string_view local_part) const;

    InboundConfig config_;
    TokenSigner signer_;
    std::shared_ptr<const Rules> rules_;
    std::map<std::uint32_t, std::string> domains_by_hash_;
};

} // namespace ember::feedback
