#pragma once
// The DMARC alignment gate at submission: before the 250, would this message
// pass DMARC (RFC 7489) once ember signs and sends it? It passes when one of
// the DKIM signatures ember would add aligns with the From: domain, or when
// SPF passes for every egress address on the envelope sender's domain (the
// HELO name for a null reverse-path, RFC 7489 3.1.2) and that domain aligns.
// Alignment is strict or relaxed as the From domain's DMARC record says
// (adkim, aspf), relaxed when it publishes none; the gate checks alignment
// whether or not a record exists and whatever its p=, because receivers
// (Gmail, Yahoo) require it of bulk mail anyway.
//
// decide_alignment() is the pure decision: facts in (the request, the DMARC
// lookup, one SPF outcome per egress address), verdict and exact reply out.
// check_alignment() gathers the facts over dns::Resolver, asking only what
// the decision needs (a DKIM key for exactly the From domain needs no DNS at
// all). alignment_gate() applies the policy: off skips, warn accepts and
// logs an event, enforce refuses with 550 5.7.26 naming what is missing. A
// DNS failure is 451 4.4.3 under enforce, never a permanent refusal.
//
// Independent of smtp/: plain strings in, a code/enhanced/text reply out.
// Coroutines run on the caller's executor; no cache of its own (the
// Resolver caches).

#include "auth/dmarc.hpp"
#include "auth/spf.hpp"
#include "core/net.hpp"

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

enum class AlignmentPolicy { Enforce, Warn, Off };

// "enforce", "warn", "off".
[[nodiscard]] std::optional<AlignmentPolicy> parse_alignment_policy(std::string_view text);
[[nodiscard]] std::string_view alignment_policy_name(AlignmentPolicy policy);

// [auth] alignment and its per-listener override.
struct AlignmentConfig {
    AlignmentPolicy policy = AlignmentPolicy::Enforce;
};

[[nodiscard]] inline AlignmentPolicy effective_policy(const AlignmentConfig& config,
                                                      std::optional<AlignmentPolicy> listener) {
    return listener.value_or(config.policy);
}

struct AlignmentRequest {
    std::vector<std::string> from_domains;   // the domain of each From: mailbox
    std::vector<std::string> dkim_domains;   // d= of each signature ember would add
    std::string mail_from;                   // the envelope sender; "" = null reverse-path
    std::string helo;                        // our EHLO name (the SPF identity for "<>")
    std::vector<core::IpAddress> egress_ips; // [delivery] source_ips, or the host's
};

struct AlignmentFacts {
    DmarcLookup dmarc;           // Status::None: relaxed alignment
    std::vector<SpfOutcome> spf; // one per egress_ips entry, in order; empty when not checked
};

enum class AlignmentStatus { Pass, Fail, TempError };

struct AlignmentReply {
    int code = 0;         // 0 when the status is Pass
    std::string enhanced; // "5.7.26", "4.4.3"
    std::string text;
};

struct AlignmentVerdict {
    AlignmentStatus status = AlignmentStatus::Pass;
    std::string from_domain;
    bool dkim_aligned = false;
    bool spf_aligned = false;         // SPF passed for every egress address and the domain aligns
    std::vector<std::string> missing; // what is missing, one clause each (empty on pass)
    AlignmentReply reply;
};

[[nodiscard]] AlignmentVerdict decide_alignment(const AlignmentRequest& request,
                                                const AlignmentFacts& facts,
                                                const PublicSuffixList& psl);

// The SPF identity's domain: the envelope sender's, or the HELO name for "<>".
[[nodiscard]] std::string spf_identity_domain(const AlignmentRequest& request);

[[nodiscard]] boost::asio::awaitable<AlignmentVerdict>
check_alignment(dns::Resolver* resolver, std::shared_ptr<const PublicSuffixList> psl,
                AlignmentRequest request);

struct GateDecision {
    bool accept = true;
    AlignmentReply reply; // the refusal when !accept
    AlignmentVerdict verdict;
};

// Logs "alignment.unaligned" / "alignment.temperror" events (warning) with
// `context` (e.g. "queue_id=... client=...") and action=accepted|refused.
[[nodiscard]] boost::asio::awaitable<GateDecision>
alignment_gate(dns::Resolver* resolver, std::shared_ptr<const PublicSuffixList> psl,
               AlignmentPolicy policy, AlignmentRequest request, std::string context);

// The host's own addresses that a receiver could see: every interface
// address that is global unicast (no loopback, link-local, RFC 1918, CGNAT,
// ULA or documentation ranges). Behind NAT this is empty or wrong: set
// [delivery] source_ips.
[[nodiscard]] std::vector<core::IpAddress> host_egress_addresses();

} // namespace ember::auth
