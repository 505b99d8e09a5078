#include "auth/alignment.hpp"

#include "core/log.hpp"

#include <fmt/core.h>

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace ember::auth {

namespace log = core::log;

namespace {

constexpr std::size_t kListedAddresses = 3; // addresses named in a reply before "and N more"

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string normalize(std::string_view domain) {
    if (domain.ends_with('.'))
        domain.remove_suffix(1);
    return lower(domain);
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty())
            out += separator;
        out += item;
    }
    return out;
}

std::string address_list(const std::vector<core::IpAddress>& ips) {
    std::vector<std::string> shown;
    for (std::size_t i = 0; i < ips.size() && i < kListedAddresses; ++i)
        shown.push_back(ips[i].to_string());
    std::string out = join(shown, ", ");
    if (ips.size() > kListedAddresses)
        out += fmt::format(" and {} more", ips.size() - kListedAddresses);
    return out;
}

std::string spf_terms(const std::vector<core::IpAddress>& ips) {
    std::vector<std::string> terms;
    for (const auto& ip : ips)
        terms.push_back((ip.is_v4() ? "ip4:" : "ip6:") + ip.to_string());
    return join(terms, " ");
}

// The From domain when the message has exactly one From: mailbox with a
// domain name (an address literal cannot align with anything).
std::optional<std::string> single_from_domain(const AlignmentRequest& request) {
    if (request.from_domains.size() != 1)
        return std::nullopt;
    std::string from = normalize(request.from_domains.front());
    if (from.empty() || from.front() == '[')
        return std::nullopt;
    return from;
}

bool dkim_exact(const AlignmentRequest& request, const std::string& from) {
    return std::any_of(request.dkim_domains.begin(), request.dkim_domains.end(),
                       [&](const std::string& d) { return normalize(d) == from; });
}

AlignmentMode dkim_mode(const AlignmentFacts& facts) {
    return facts.dmarc.status == DmarcLookup::Status::Found ? facts.dmarc.record.dkim
                                                            : AlignmentMode::Relaxed;
}

AlignmentMode spf_mode(const AlignmentFacts& facts) {
    return facts.dmarc.status == DmarcLookup::Status::Found ? facts.dmarc.record.spf
                                                            : AlignmentMode::Relaxed;
}

bool dkim_aligned(const AlignmentRequest& request, const std::string& from, AlignmentMode mode,
                  const PublicSuffixList& psl) {
    return std::any_of(request.dkim_domains.begin(), request.dkim_domains.end(),
                       [&](const std::string& d) { return domains_aligned(d, from, mode, psl); });
}

std::string dkim_missing(const AlignmentRequest& request, const std::string& from,
                         AlignmentMode mode) {
    if (request.dkim_domains.empty())
        return "no DKIM key configured for " + from;
    if (mode == AlignmentMode::Strict)
        return fmt::format("no DKIM key configured for exactly {} as its DMARC record requires "
                           "(adkim=s; keys: {})",
                           from, join(request.dkim_domains, ", "));
    return fmt::format("no DKIM key configured for {} (the keys for {} do not align)", from,
                       join(request.dkim_domains, ", "));
}

struct SpfFindings {
    std::vector<core::IpAddress> not_listed; // fail, softfail, neutral
    std::vector<core::IpAddress> temporary;
    bool none = false;
    std::string permerror; // the problem, when the record is broken
    std::string temp_problem;
};

SpfFindings collect(const AlignmentRequest& request, const AlignmentFacts& facts) {
    SpfFindings f;
    for (std::size_t i = 0; i < request.egress_ips.size(); ++i) {
        const core::IpAddress& ip = request.egress_ips[i];
        if (i >= facts.spf.size()) {
            f.temporary.push_back(ip); // not checked: never a permanent verdict
            f.temp_problem = "SPF was not evaluated";
            continue;
        }
        const SpfOutcome& o = facts.spf[i];
        switch (o.result) {
        case SpfResult::Pass:
            break;
        case SpfResult::None:
            f.none = true;
            break;
        case SpfResult::PermError:
            f.permerror = o.problem;
            break;
        case SpfResult::TempError:
            f.temporary.push_back(ip);
            f.temp_problem = o.problem;
            break;
        default:
            f.not_listed.push_back(ip);
            break;
        }
    }
    return f;
}

struct Missing {
    std::string clause;
    std::string remedy; // what to do about the SPF side
};

Missing spf_missing(const AlignmentRequest& request, const SpfFindings& f,
                    const std::string& spf_domain) {
    if (!f.permerror.empty())
        return {fmt::format("the SPF record of {} is broken ({})", spf_domain, f.permerror),
                "fix the SPF record of " + spf_domain};
    if (f.none)
        return {spf_domain + " publishes no SPF record",
                fmt::format("publish \"v=spf1 {} -all\" for {}", spf_terms(request.egress_ips),
                            spf_domain)};
    return {fmt::format("SPF for {} does not list {}", spf_domain, address_list(f.not_listed)),
            fmt::format("add {} to the SPF record of {}", spf_terms(f.not_listed), spf_domain)};
}

Missing spf_unaligned(const AlignmentRequest& request, const std::string& spf_domain,
                      const std::string& from, AlignmentMode mode) {
    const std::string strict = mode == AlignmentMode::Strict ? " (aspf=s)" : "";
    if (request.mail_from.empty())
        return {fmt::format("the HELO name {} (the SPF identity of a null sender) does not "
                            "align with {}{}",
                            spf_domain, from, strict),
                "send with an envelope sender in " + from};
    return {fmt::format("the envelope sender domain {} does not align with {}{}", spf_domain, from,
                        strict),
            "use an envelope sender in " + from};
}

struct SpfSide {
    AlignmentStatus status = AlignmentStatus::Fail;
    Missing missing;          // when Fail
    std::string temp_problem; // when TempError
};

// Does SPF give the message an aligned pass for every egress address?
SpfSide spf_side(const AlignmentRequest& request, const AlignmentFacts& facts,
                 const std::string& from, const PublicSuffixList& psl) {
    const std::string spf_domain = spf_identity_domain(request);
    if (!domains_aligned(spf_domain, from, spf_mode(facts), psl))
        return {
            AlignmentStatus::Fail, spf_unaligned(request, spf_domain, from, spf_mode(facts)), {}};
    if (request.egress_ips.empty())
        return {AlignmentStatus::Fail,
                {"no egress address is known to check SPF for " + spf_domain,
                 "set [delivery] source_ips"},
                {}};
    const SpfFindings f = collect(request, facts);
    // A definite failure on one address outweighs a timeout on another.
    if (f.none || !f.permerror.empty() || !f.not_listed.empty())
        return {AlignmentStatus::Fail, spf_missing(request, f, spf_domain), {}};
    if (!f.temporary.empty())
        return {AlignmentStatus::TempError, {}, f.temp_problem};
    return {AlignmentStatus::Pass, {}, {}};
}

AlignmentVerdict refuse(AlignmentVerdict v, std::string text) {
    v.status = AlignmentStatus::Fail;
    v.reply = {550, "5.7.26", std::move(text)};
    return v;
}

AlignmentVerdict defer(AlignmentVerdict v, const std::string& problem) {
    v.status = AlignmentStatus::TempError;
    v.missing.push_back(problem);
    v.reply = {451, "4.4.3",
               fmt::format("Cannot check DMARC alignment for From domain {} now ({}); try "
                           "again later",
                           v.from_domain, problem)};
    return v;
}

// DMARC needs one author domain (RFC 7489 6.6.1); ember asks for exactly one
// From: mailbox, as the big receivers do.
AlignmentVerdict refuse_author(AlignmentVerdict v, const AlignmentRequest& request) {
    const std::string clause =
        request.from_domains.size() == 1
            ? "the From: address has no domain name to align with"
            : fmt::format("the message has {} From: addresses, DMARC needs exactly one",
                          request.from_domains.size());
    v.missing.push_back(clause);
    return refuse(std::move(v), "Message would fail DMARC: " + clause);
}

} // namespace

std::optional<AlignmentPolicy> parse_alignment_policy(std::string_view text) {
    if (text == "enforce")
        return AlignmentPolicy::Enforce;
    if (text == "warn")
        return AlignmentPolicy::Warn;
    if (text == "off")
        return AlignmentPolicy::Off;
    return std::nullopt;
}

std::string_view alignment_policy_name(AlignmentPolicy policy) {
    switch (policy) {
    case AlignmentPolicy::Enforce:
        return "enforce";
    case AlignmentPolicy::Warn:
        return "warn";
    case AlignmentPolicy::Off:
        return "off";
    }
    return "enforce";
}

std::string spf_identity_domain(const AlignmentRequest& request) {
    if (request.mail_from.empty())
        return normalize(request.helo);
    const auto at = request.mail_from.rfind('@');
    return normalize(at == std::string::npos ? std::string_view(request.mail_from)
                                             : std::string_view(request.mail_from).substr(at + 1));
}

AlignmentVerdict decide_alignment(const AlignmentRequest& request, const AlignmentFacts& facts,
                                  const PublicSuffixList& psl) {
    AlignmentVerdict v;
    const auto from = single_from_domain(request);
    if (!from)
        return refuse_author(std::move(v), request);
    v.from_domain = *from;
    v.dkim_aligned = dkim_exact(request, *from);
    if (v.dkim_aligned)
        return v;
    if (facts.dmarc.status == DmarcLookup::Status::TempError)
        return defer(std::move(v), facts.dmarc.problem);
    v.dkim_aligned = dkim_aligned(request, *from, dkim_mode(facts), psl);
    if (v.dkim_aligned)
        return v;
    const SpfSide spf = spf_side(request, facts, *from, psl);
    if (spf.status == AlignmentStatus::Pass) {
        v.spf_aligned = true;
        return v;
    }
    if (spf.status == AlignmentStatus::TempError)
        return defer(std::move(v), spf.temp_problem);
    const std::string dkim = dkim_missing(request, *from, dkim_mode(facts));
    v.missing = {dkim, spf.missing.clause};
    return refuse(std::move(v),
                  fmt::format("From domain {} would fail DMARC: {}, and {} ({} or add a [[dkim]] "
                              "key for {})",
                              *from, dkim, spf.missing.clause, spf.missing.remedy, *from));
}

boost::asio::awaitable<AlignmentVerdict>
check_alignment(dns::Resolver* resolver, std::shared_ptr<const PublicSuffixList> psl,
                AlignmentRequest request) {
    AlignmentFacts facts;
    const auto from = single_from_domain(request);
    if (!from || dkim_exact(request, *from))
        co_return decide_alignment(request, facts, *psl);
    facts.dmarc = co_await discover_dmarc(resolver, psl.get(), *from);
    const bool need_spf =
        facts.dmarc.status != DmarcLookup::Status::TempError &&
        !dkim_aligned(request, *from, dkim_mode(facts), *psl) &&
        domains_aligned(spf_identity_domain(request), *from, spf_mode(facts), *psl);
    if (need_spf) {
        for (const core::IpAddress& ip : request.egress_ips) {
            SpfCheck check = mail_from_check(ip, request.mail_from, request.helo);
            check.receiver = request.helo.empty() ? std::string("unknown") : request.helo;
            SpfOutcome outcome = co_await check_host(resolver, std::move(check));
            facts.spf.push_back(std::move(outcome));
        }
    }
    co_return decide_alignment(request, facts, *psl);
}

boost::asio::awaitable<GateDecision> alignment_gate(dns::Resolver* resolver,
                                                    std::shared_ptr<const PublicSuffixList> psl,
                                                    AlignmentPolicy policy,
                                                    AlignmentRequest request, std::string context) {
    GateDecision decision;
    if (policy == AlignmentPolicy::Off)
        co_return decision;
    decision.verdict = co_await check_alignment(resolver, std::move(psl), std::move(request));
    const AlignmentVerdict& v = decision.verdict;
    if (v.status == AlignmentStatus::Pass)
        co_return decision;
    decision.accept = policy == AlignmentPolicy::Warn;
    if (!decision.accept)
        decision.reply = v.reply;
    const std::string_view event =
        v.status == AlignmentStatus::Fail ? "alignment.unaligned" : "alignment.temperror";
    log::warning(event, "{}{}action={} policy={} from_domain={} missing={}", context,
                 context.empty() ? "" : " ", decision.accept ? "accepted" : "refused",
                 alignment_policy_name(policy), log::q(v.from_domain),
                 log::q(join(v.missing, "; ")));
    co_return decision;
}

std::vector<core::IpAddress> host_egress_addresses() {
    static const std::vector<core::Cidr> kNotGlobal = [] {
        std::vector<core::Cidr> nets;
        for (const char* text :
             {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
              "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
              "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3", "::/127", "fc00::/7", "fe80::/10",
              "ff00::/8", "2001:db8::/32"})
            nets.push_back(*core::Cidr::parse(text));
        return nets;
    }();
    std::vector<core::IpAddress> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
        return out;
    for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr)
            continue;
        std::optional<core::IpAddress> ip;
        if (i->ifa_addr->sa_family == AF_INET) {
            sockaddr_in sin{};
            std::memcpy(&sin, i->ifa_addr, sizeof sin);
            std::array<std::uint8_t, 4> bytes{};
            std::memcpy(bytes.data(), &sin.sin_addr, 4);
            ip = core::IpAddress::v4(bytes);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            sockaddr_in6 sin6{};
            std::memcpy(&sin6, i->ifa_addr, sizeof sin6);
            std::array<std::uint8_t, 16> bytes{};
            std::memcpy(bytes.data(), &sin6.sin6_addr, 16);
            ip = core::IpAddress::v6(bytes);
        }
        if (ip && !core::any_contains(kNotGlobal, *ip) &&
            std::find(out.begin(), out.end(), *ip) == out.end())
            out.push_back(*ip);
    }
    freeifaddrs(list);
    return out;
}

} // namespace ember::auth
