#include "auth/spf.hpp"

#include "auth/spf_macro.hpp"

#include <boost/json.hpp>
#include <fmt/core.h>

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <optional>
#include <vector>

namespace ember::auth {

namespace {

using Clock = std::chrono::steady_clock;

// One top-level check_host(): the limits of 4.6.4 are counted across every
// include and redirect it follows.
struct Evaluation {
    dns::Resolver* resolver = nullptr;
    SpfCheck check;
    MacroContext macros; // domain is set per record
    Clock::time_point deadline;
    unsigned dns_terms = 0;
    unsigned void_lookups = 0;
};

// The result of one record, before the explanation is fetched.
struct Verdict {
    SpfResult result = SpfResult::Neutral;
    std::string mechanism;
    std::string domain;
    std::string problem;
    std::optional<std::string> exp_spec; // the deciding record's exp= (6.2)
};

enum class Match { No, Yes, TempError, PermError };

struct TermResult {
    Match match = Match::No;
    std::string problem;
};

// A target-name: Yes with a name to query, No when no query can be composed
// (treated as non-existent), PermError when the %{p} expansion is over the
// term limit.
struct Target {
    Match status = Match::No;
    std::string name;
    std::string problem;
};

struct RecordLookup {
    SpfResult status = SpfResult::None; // Pass means "found"
    SpfRecord record;
    std::string problem;
};

struct PtrNames {
    std::vector<std::string> validated;
    bool void_answer = false;
};

template <typename T> bool is_void(const dns::Answer<T>& answer) {
    return answer.status == dns::Status::NxDomain || answer.status == dns::Status::NoData ||
           (answer.status == dns::Status::Ok && answer.records.empty());
}

std::string_view status_word(dns::Status status) {
    switch (status) {
    case dns::Status::Ok:
        return "ok";
    case dns::Status::NxDomain:
        return "NXDOMAIN";
    case dns::Status::NoData:
        return "no data";
    case dns::Status::ServFail:
        return "SERVFAIL";
    case dns::Status::Timeout:
        return "timeout";
    case dns::Status::Malformed:
        return "malformed answer";
    }
    return "error";
}

std::string dns_problem(std::string_view type, std::string_view name, dns::Status status) {
    return fmt::format("DNS {} looking up {} {}", status_word(status), type, name);
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string strip_dot(std::string_view name) {
    if (name.ends_with('.'))
        name.remove_suffix(1);
    return std::string(name);
}

// name equals target or is a subdomain of it, case-insensitively (5.5).
bool within(std::string_view name, std::string_view target) {
    const std::string n = lower(name);
    const std::string t = lower(target);
    return n == t || (n.size() > t.size() && n.ends_with(t) && n[n.size() - t.size() - 1] == '.');
}

// 4.3: a multi-label name, every label 1-63 octets, at most 253, a valid
// toplabel (so "[192.0.2.1]" and "A2345678" give none).
bool valid_check_domain(std::string_view domain) {
    for (const char c : domain) {
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    const auto name = query_name(domain);
    if (!name || *name != strip_dot(domain))
        return false;
    const auto dot = name->rfind('.');
    return dot != std::string::npos && is_toplabel(std::string_view(*name).substr(dot + 1));
}

bool count_term(Evaluation& ev) {
    return ++ev.dns_terms <= ev.check.limits.dns_terms;
}

bool count_void(Evaluation& ev) {
    return ++ev.void_lookups <= ev.check.limits.void_lookups;
}

TermResult term_limit(const Evaluation& ev) {
    return {Match::PermError, fmt::format("more than {} DNS-querying terms (RFC 7208 4.6.4)",
                                          ev.check.limits.dns_terms)};
}

TermResult void_limit(const Evaluation& ev) {
    return {Match::PermError, fmt::format("more than {} void lookups (RFC 7208 4.6.4)",
                                          ev.check.limits.void_lookups)};
}

bool expired(const Evaluation& ev) {
    return Clock::now() > ev.deadline;
}

SpfResult qualifier_result(SpfQualifier qualifier) {
    switch (qualifier) {
    case SpfQualifier::Pass:
        return SpfResult::Pass;
    case SpfQualifier::Fail:
        return SpfResult::Fail;
    case SpfQualifier::SoftFail:
        return SpfResult::SoftFail;
    case SpfQualifier::Neutral:
        return SpfResult::Neutral;
    }
    return SpfResult::Neutral;
}

MacroContext make_macro_context(const SpfCheck& check) {
    MacroContext m;
    const auto at = check.sender.rfind('@');
    m.local_part = at == std::string::npos ? std::string() : check.sender.substr(0, at);
    m.sender_domain = at == std::string::npos ? check.sender : check.sender.substr(at + 1);
    if (m.local_part.empty())
        m.local_part = "postmaster"; // 4.3
    m.sender = m.local_part + "@" + m.sender_domain;
    m.ip = check.ip;
    m.helo = check.helo;
    m.receiver = check.receiver;
    m.timestamp =
        check.timestamp != 0 ? check.timestamp : static_cast<std::int64_t>(std::time(nullptr));
    return m;
}

// ---- DNS helpers: every query first checks the overall deadline. ----

boost::asio::awaitable<dns::AddressAnswer> addresses(Evaluation* ev, std::string name, bool v6) {
    if (expired(*ev))
        co_return dns::AddressAnswer{dns::Status::Timeout, {}, 0};
    if (v6) {
        auto answer = co_await ev->resolver->aaaa(std::move(name));
        co_return answer;
    }
    auto answer = co_await ev->resolver->a(std::move(name));
    co_return answer;
}

boost::asio::awaitable<dns::TxtAnswer> txt_records(Evaluation* ev, std::string name) {
    if (expired(*ev))
        co_return dns::TxtAnswer{dns::Status::Timeout, {}, 0};
    auto answer = co_await ev->resolver->txt(std::move(name));
    co_return answer;
}

// 5.5: PTR names of <ip> (the first ptr_names of them) that resolve back to
// <ip>. Only names within `filter` are validated when it is not empty: the
// ptr mechanism could not match the others anyway. DNS errors skip a name.
boost::asio::awaitable<PtrNames> validated_names(Evaluation* ev, std::string filter) {
    PtrNames out;
    if (expired(*ev))
        co_return out;
    const auto ptr = co_await ev->resolver->ptr(ev->check.ip);
    out.void_answer = is_void(ptr);
    if (ptr.status != dns::Status::Ok)
        co_return out;
    const bool v6 = !ev->check.ip.is_v4();
    const std::size_t count = std::min<std::size_t>(ptr.records.size(), ev->check.limits.ptr_names);
    for (std::size_t i = 0; i < count; ++i) {
        const std::string name = strip_dot(ptr.records[i]);
        if ((!filter.empty() && !within(name, filter)) || !query_name(name))
            continue;
        const auto answer = co_await addresses(ev, name, v6);
        const auto& found = answer.records;
        if (answer.status == dns::Status::Ok &&
            std::find(found.begin(), found.end(), ev->check.ip) != found.end())
            out.validated.push_back(name);
    }
    co_return out;
}

// 7.3 "p": the <domain> itself if validated, else a subdomain of it, else any
// validated name, else "unknown".
boost::asio::awaitable<std::string> p_macro_value(Evaluation* ev, std::string domain) {
    std::string no_filter;
    const PtrNames names = co_await validated_names(ev, std::move(no_filter));
    for (const auto& name : names.validated) {
        if (lower(name) == lower(domain))
            co_return name;
    }
    for (const auto& name : names.validated) {
        if (within(name, domain))
            co_return name;
    }
    co_return names.validated.empty() ? std::string("unknown") : names.validated.front();
}

// The name a term queries: its domain-spec expanded for <domain> (7.3), or
// <domain> itself. %{p} needs its own PTR lookups first; `counted` says
// whether they count as a DNS-querying term (not for exp=, 4.6.4).
boost::asio::awaitable<Target> target_name(Evaluation* ev, std::string spec, std::string domain,
                                           bool counted) {
    Target target;
    if (spec.empty()) {
        const auto name = query_name(domain);
        target.status = name ? Match::Yes : Match::No;
        target.name = name.value_or(std::string());
        co_return target;
    }
    MacroContext context = ev->macros;
    context.domain = domain;
    if (uses_p_macro(spec)) {
        if (counted && !count_term(*ev)) {
            const TermResult limit = term_limit(*ev);
            co_return Target{Match::PermError, {}, limit.problem};
        }
        context.validated_name = co_await p_macro_value(ev, domain);
    }
    const auto expanded = expand_macros(spec, context, MacroUse::Domain);
    const auto name = expanded ? query_name(*expanded) : std::nullopt;
    target.status = name ? Match::Yes : Match::No;
    target.name = name.value_or(std::string());
    co_return target;
}

TermResult unqueryable(const Target& target) {
    return {target.status == Match::PermError ? Match::PermError : Match::No, target.problem};
}

// ---- Mechanisms (section 5). ----

boost::asio::awaitable<Verdict> evaluate(Evaluation* ev, std::string domain);

TermResult match_addresses(Evaluation& ev, const dns::AddressAnswer& answer, const SpfMechanism& m,
                           const std::string& name) {
    const bool v6 = !ev.check.ip.is_v4();
    if (dns::is_temporary(answer.status))
        return {Match::TempError, dns_problem(v6 ? "AAAA" : "A", name, answer.status)};
    if (is_void(answer))
        return count_void(ev) ? TermResult{} : void_limit(ev);
    for (const auto& address : answer.records) {
        if (same_network(ev.check.ip, address, v6 ? m.cidr6 : m.cidr4))
            return {Match::Yes, {}};
    }
    return {};
}

boost::asio::awaitable<TermResult> match_a(Evaluation* ev, SpfMechanism m, std::string domain) {
    if (!count_term(*ev))
        co_return term_limit(*ev);
    const Target target = co_await target_name(ev, m.domain_spec, std::move(domain), true);
    if (target.status != Match::Yes)
        co_return unqueryable(target);
    const auto answer = co_await addresses(ev, target.name, !ev->check.ip.is_v4());
    co_return match_addresses(*ev, answer, m, target.name);
}

// 5.4: the MX names, at most mx_names of them (more is a permerror), then
// their addresses. A null MX (RFC 7505) names no host.
boost::asio::awaitable<TermResult> match_mx(Evaluation* ev, SpfMechanism m, std::string domain) {
    if (!count_term(*ev))
        co_return term_limit(*ev);
    const Target target = co_await target_name(ev, m.domain_spec, std::move(domain), true);
    if (target.status != Match::Yes)
        co_return unqueryable(target);
    dns::MxAnswer mx{dns::Status::Timeout, {}, 0};
    if (!expired(*ev))
        mx = co_await ev->resolver->mx(target.name);
    if (dns::is_temporary(mx.status))
        co_return TermResult{Match::TempError, dns_problem("MX", target.name, mx.status)};
    if (is_void(mx))
        co_return count_void(*ev) ? TermResult{} : void_limit(*ev);
    if (mx.records.size() > ev->check.limits.mx_names) {
        co_return TermResult{Match::PermError,
                             fmt::format("{} has more than {} MX records (RFC 7208 4.6.4)",
                                         target.name, ev->check.limits.mx_names)};
    }
    for (const auto& record : mx.records) {
        if (record.host.empty() || !query_name(record.host))
            continue;
        const auto answer = co_await addresses(ev, record.host, !ev->check.ip.is_v4());
        if (dns::is_temporary(answer.status))
            co_return TermResult{Match::TempError, dns_problem("A", record.host, answer.status)};
        // A host without addresses does not make the term void: its MX query answered.
        if (is_void(answer))
            continue;
        TermResult result = match_addresses(*ev, answer, m, record.host);
        if (result.match != Match::No)
            co_return result;
    }
    co_return TermResult{};
}

boost::asio::awaitable<TermResult> match_ptr(Evaluation* ev, SpfMechanism m, std::string domain) {
    if (!count_term(*ev))
        co_return term_limit(*ev);
    const Target target = co_await target_name(ev, m.domain_spec, std::move(domain), true);
    if (target.status != Match::Yes)
        co_return unqueryable(target);
    const PtrNames names = co_await validated_names(ev, target.name);
    if (names.void_answer && !count_void(*ev))
        co_return void_limit(*ev);
    co_return TermResult{names.validated.empty() ? Match::No : Match::Yes, {}};
}

// 5.7: an A query whatever the client's address family.
boost::asio::awaitable<TermResult> match_exists(Evaluation* ev, SpfMechanism m,
                                                std::string domain) {
    if (!count_term(*ev))
        co_return term_limit(*ev);
    const Target target = co_await target_name(ev, m.domain_spec, std::move(domain), true);
    if (target.status != Match::Yes)
        co_return unqueryable(target);
    const auto answer = co_await addresses(ev, target.name, false);
    if (dns::is_temporary(answer.status))
        co_return TermResult{Match::TempError, dns_problem("A", target.name, answer.status)};
    if (is_void(answer))
        co_return count_void(*ev) ? TermResult{} : void_limit(*ev);
    co_return TermResult{Match::Yes, {}};
}

// 5.2: pass matches; fail, softfail and neutral do not; temperror stays
// temperror; permerror and none are a permerror.
boost::asio::awaitable<TermResult> match_include(Evaluation* ev, SpfMechanism m,
                                                 std::string domain) {
    if (!count_term(*ev))
        co_return term_limit(*ev);
    const Target target = co_await target_name(ev, m.domain_spec, std::move(domain), true);
    if (target.status == Match::PermError)
        co_return unqueryable(target);
    if (target.status != Match::Yes)
        co_return TermResult{Match::PermError, m.text + ": not a valid domain name"};
    const Verdict inner = co_await evaluate(ev, target.name);
    switch (inner.result) {
    case SpfResult::Pass:
        co_return TermResult{Match::Yes, {}};
    case SpfResult::Fail:
    case SpfResult::SoftFail:
    case SpfResult::Neutral:
        co_return TermResult{};
    case SpfResult::TempError:
        co_return TermResult{Match::TempError, m.text + ": " + inner.problem};
    case SpfResult::None:
    case SpfResult::PermError:
        break;
    }
    co_return TermResult{Match::PermError, m.text + ": " + inner.problem};
}

boost::asio::awaitable<TermResult> match_term(Evaluation* ev, SpfMechanism m, std::string domain) {
    using K = SpfMechanismKind;
    switch (m.kind) {
    case K::All:
        co_return TermResult{Match::Yes, {}};
    case K::Ip4:
    case K::Ip6:
        co_return TermResult{m.network.contains(ev->check.ip) ? Match::Yes : Match::No, {}};
    default:
        break;
    }
    TermResult result;
    if (m.kind == K::A)
        result = co_await match_a(ev, std::move(m), std::move(domain));
    else if (m.kind == K::Mx)
        result = co_await match_mx(ev, std::move(m), std::move(domain));
    else if (m.kind == K::Ptr)
        result = co_await match_ptr(ev, std::move(m), std::move(domain));
    else if (m.kind == K::Exists)
        result = co_await match_exists(ev, std::move(m), std::move(domain));
    else
        result = co_await match_include(ev, std::move(m), std::move(domain));
    co_return result;
}

// ---- Records (4.4-4.7) and redirect (6.1). ----

boost::asio::awaitable<RecordLookup> fetch_record(Evaluation* ev, std::string domain) {
    RecordLookup out;
    const auto answer = co_await txt_records(ev, domain);
    if (dns::is_temporary(answer.status)) {
        out.status = SpfResult::TempError;
        out.problem = dns_problem("TXT", domain, answer.status);
        co_return out;
    }
    std::vector<std::string_view> records;
    for (const auto& txt : answer.records) {
        if (is_spf_record(txt))
            records.emplace_back(txt);
    }
    if (records.size() != 1) {
        out.status = records.empty() ? SpfResult::None : SpfResult::PermError;
        out.problem = records.empty()
                          ? fmt::format("{} publishes no SPF record", domain)
                          : fmt::format("{} publishes {} SPF records", domain, records.size());
        co_return out;
    }
    SpfParse parsed = parse_spf_record(records.front());
    if (!parsed.record) {
        out.status = SpfResult::PermError;
        out.problem = fmt::format("SPF record of {}: {}", domain, parsed.error);
        co_return out;
    }
    out.status = SpfResult::Pass;
    out.record = std::move(*parsed.record);
    co_return out;
}

boost::asio::awaitable<Verdict> follow_redirect(Evaluation* ev, std::string spec,
                                                std::string domain) {
    const std::string term = "redirect=" + spec;
    if (!count_term(*ev))
        co_return Verdict{SpfResult::PermError, term, domain, term_limit(*ev).problem, {}};
    const Target target = co_await target_name(ev, spec, domain, true);
    if (target.status != Match::Yes) {
        const std::string problem =
            target.status == Match::PermError ? target.problem : term + ": not a valid domain name";
        co_return Verdict{SpfResult::PermError, term, domain, problem, {}};
    }
    Verdict inner = co_await evaluate(ev, target.name);
    if (inner.result == SpfResult::None) // 6.1: no record at the target is a permerror
        co_return Verdict{SpfResult::PermError, term, domain, term + ": " + inner.problem, {}};
    co_return inner;
}

boost::asio::awaitable<Verdict> evaluate(Evaluation* ev, std::string domain) {
    if (!valid_check_domain(domain))
        co_return Verdict{SpfResult::None,
                          {},
                          domain,
                          fmt::format("'{}' is not a valid domain name", domain),
                          {}};
    const RecordLookup lookup = co_await fetch_record(ev, domain);
    if (lookup.status != SpfResult::Pass)
        co_return Verdict{lookup.status, {}, domain, lookup.problem, {}};
    for (const SpfMechanism& m : lookup.record.mechanisms) {
        const TermResult term = co_await match_term(ev, m, domain);
        if (term.match == Match::TempError)
            co_return Verdict{SpfResult::TempError, m.text, domain, term.problem, {}};
        if (term.match == Match::PermError)
            co_return Verdict{SpfResult::PermError, m.text, domain, term.problem, {}};
        if (term.match == Match::Yes) {
            const SpfResult result = qualifier_result(m.qualifier);
            auto exp = result == SpfResult::Fail ? lookup.record.explanation : std::nullopt;
            co_return Verdict{result, m.text, domain, {}, std::move(exp)};
        }
    }
    if (lookup.record.redirect) {
        Verdict redirected = co_await follow_redirect(ev, *lookup.record.redirect, domain);
        co_return redirected;
    }
    co_return Verdict{SpfResult::Neutral, {}, domain, "no mechanism matched", {}}; // 4.7
}

// 6.2: any DNS error, no record or several, or a syntax error in the text:
// proceed as if there were no exp=. Not counted against the limits (4.6.4).
boost::asio::awaitable<std::string> fetch_explanation(Evaluation* ev, std::string spec,
                                                      std::string domain) {
    const Target target = co_await target_name(ev, spec, domain, false);
    if (target.status != Match::Yes)
        co_return std::string();
    const auto answer = co_await txt_records(ev, target.name);
    if (answer.status != dns::Status::Ok || answer.records.size() != 1)
        co_return std::string();
    MacroContext context = ev->macros;
    context.domain = domain;
    if (uses_p_macro(answer.records.front()))
        context.validated_name = co_await p_macro_value(ev, domain);
    auto text = expand_macros(answer.records.front(), context, MacroUse::Explanation);
    co_return text.value_or(std::string());
}

std::string strip_angle_brackets(std::string_view text) {
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>')
        text = text.substr(1, text.size() - 2);
    return std::string(text);
}

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0)
        return "unknown";
    return buf[0] != '\0' ? std::string(buf) : std::string("unknown");
}

} // namespace

std::string_view spf_result_name(SpfResult result) {
    switch (result) {
    case SpfResult::None:
        return "none";
    case SpfResult::Neutral:
        return "neutral";
    case SpfResult::Pass:
        return "pass";
    case SpfResult::Fail:
        return "fail";
    case SpfResult::SoftFail:
        return "softfail";
    case SpfResult::TempError:
        return "temperror";
    case SpfResult::PermError:
        return "permerror";
    }
    return "none";
}

SpfCheck mail_from_check(const core::IpAddress& ip, std::string_view mail_from,
                         std::string_view helo) {
    if (mail_from.empty())
        return helo_check(ip, helo);
    SpfCheck check;
    check.ip = ip;
    check.helo = std::string(helo);
    const auto at = mail_from.rfind('@');
    check.domain = std::string(at == std::string_view::npos ? mail_from : mail_from.substr(at + 1));
    const std::string_view local =
        at == std::string_view::npos ? std::string_view() : mail_from.substr(0, at);
    check.sender =
        (local.empty() ? std::string("postmaster") : std::string(local)) + "@" + check.domain;
    return check;
}

SpfCheck helo_check(const core::IpAddress& ip, std::string_view helo) {
    SpfCheck check;
    check.ip = ip;
    check.helo = std::string(helo);
    check.domain = std::string(helo);
    check.sender = "postmaster@" + check.domain;
    return check;
}

boost::asio::awaitable<SpfOutcome> check_host(dns::Resolver* resolver, SpfCheck check) {
    Evaluation ev;
    ev.resolver = resolver;
    ev.macros = make_macro_context(check);
    ev.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(check.limits.deadline);
    ev.check = std::move(check);
    std::string domain = strip_dot(ev.check.domain);
    const Verdict verdict = co_await evaluate(&ev, std::move(domain));
    SpfOutcome outcome;
    outcome.result = verdict.result;
    outcome.mechanism = verdict.mechanism;
    outcome.domain = verdict.domain;
    outcome.problem = verdict.problem;
    if (verdict.result == SpfResult::Fail && verdict.exp_spec)
        outcome.explanation = co_await fetch_explanation(&ev, *verdict.exp_spec, verdict.domain);
    outcome.dns_terms = ev.dns_terms;
    outcome.void_lookups = ev.void_lookups;
    co_return outcome;
}

std::string describe(const SpfOutcome& outcome, const SpfCheck& check) {
    const std::string ip = check.ip.to_string();
    const std::string via = outcome.mechanism.empty() ? std::string("no mechanism matched")
                                                      : "matched " + outcome.mechanism;
    const std::string where =
        outcome.domain.empty() || lower(outcome.domain) == lower(strip_dot(check.domain))
            ? std::string()
            : " in the record of " + outcome.domain;
    switch (outcome.result) {
    case SpfResult::Pass:
        return fmt::format("{} allows {} to send ({}{})", check.domain, ip, via, where);
    case SpfResult::Fail:
        if (!outcome.explanation.empty())
            return outcome.explanation;
        return fmt::format("{} does not allow {} to send ({}{})", check.domain, ip, via, where);
    case SpfResult::SoftFail:
        return fmt::format("{} does not allow {} to send, but asks for a soft fail ({}{})",
                           check.domain, ip, via, where);
    case SpfResult::Neutral:
        return fmt::format("{} makes no assertion about {} ({}{})", check.domain, ip, via, where);
    case SpfResult::None:
        return "no SPF record: " + outcome.problem;
    case SpfResult::TempError:
        return "temporary DNS error: " + outcome.problem;
    case SpfResult::PermError:
        return "broken SPF record: " + outcome.problem;
    }
    return {};
}

boost::asio::awaitable<SpfCommandResult> spf_command(dns::Resolver* resolver, std::string ip,
                                                     std::string mail_from, std::string helo,
                                                     bool json) {
    const auto address = core::IpAddress::parse(ip);
    if (!address)
        co_return SpfCommandResult{2, fmt::format("spf: '{}' is not an IP address\n", ip)};
    mail_from = strip_angle_brackets(mail_from);
    if (mail_from.empty() && helo.empty())
        co_return SpfCommandResult{2, "spf: an empty MAILFROM needs a HELO name\n"};
    SpfCheck check = mail_from_check(*address, mail_from, helo);
    check.receiver = host_name();
    const SpfCheck request = check;
    const SpfOutcome outcome = co_await check_host(resolver, std::move(check));
    const std::string description = describe(outcome, request);
    if (!json) {
        co_return SpfCommandResult{
            0, fmt::format("{}\n{}\n", spf_result_name(outcome.result), description)};
    }
    boost::json::object o;
    o["ip"] = address->to_string();
    o["mail_from"] = mail_from;
    o["helo"] = helo;
    o["domain"] = request.domain;
    o["result"] = std::string(spf_result_name(outcome.result));
    o["explanation"] = outcome.explanation;
    o["mechanism"] = outcome.mechanism;
    o["problem"] = outcome.problem;
    o["dns_terms"] = outcome.dns_terms;
    o["void_lookups"] = outcome.void_lookups;
    o["description"] = description;
    co_return SpfCommandResult{0, boost::json::serialize(o) + "\n"};
}

} // namespace ember::auth
