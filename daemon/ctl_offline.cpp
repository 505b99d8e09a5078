#include "daemon/ctl_offline.hpp"

#include "auth/alignment.hpp"
#include "auth/dkim_keygen.hpp"
#include "auth/dkim_keys.hpp"
#include "auth/spf_record.hpp"
#include "core/diagnostics.hpp"
#include "daemon/config.hpp"
#include "feedback/classify_command.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <exception>
#include <iostream>
#include <iterator>
#include <utility>

namespace ember::daemon::ctl {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

constexpr int kExitSoftware = 70; // EX_SOFTWARE: a bug, not the user's input

// --- running one coroutine on a private io_context ---

// Runs `task` to completion; nullopt with `error` set if it threw (a bug:
// the libraries return errors as values). The io_context is stopped from
// the completion, since an idle resolver socket would keep run() going.
template <typename T>
std::optional<T> run_to_completion(asio::io_context& io, asio::awaitable<T> task,
                                   std::string& error) {
    std::optional<T> result;
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
        failure = std::move(e);
        result = std::move(value);
        io.stop();
    });
    io.run();
    if (failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            error = e.what();
        } catch (...) {
            error = "unknown exception";
        }
        return std::nullopt;
    }
    return result;
}

std::string lower_domain(std::string_view text) {
    if (text.ends_with('.'))
        text.remove_suffix(1);
    return auth::ascii_lower(text);
}

// --- dkim keygen ---

json::object keygen_result(const auth::DkimGeneratedKey& key,
                           const auth::DkimKeygenRequest& request) {
    json::array strings;
    for (const auto& s : key.record_strings)
        strings.emplace_back(s);
    json::value bits = nullptr;
    if (request.algorithm == auth::DkimAlgorithm::RsaSha256)
        bits = request.bits;
    return json::object{
        {"path", key.path},
        {"domain", auth::ascii_lower(request.domain)},
        {"selector", auth::ascii_lower(request.selector)},
        {"algorithm", auth::dkim_algorithm_name(request.algorithm)},
        {"bits", std::move(bits)},
        {"dns_name", key.dns_name},
        {"record", key.record},
        {"record_strings", std::move(strings)},
        {"zone_line", key.zone_line},
        {"config", key.config},
    };
}

Printed usage_error(std::string_view verb, std::string_view message) {
    return {"", fmt::format("emberctl {}: {}\n", verb, message), kExitUsage};
}

} // namespace

Printed dkim_keygen(const KeygenOptions& options, bool json) {
    const auto algorithm = auth::parse_dkim_algorithm(options.algorithm);
    if (!algorithm)
        return usage_error("dkim keygen", "--algorithm must be rsa-sha256 or ed25519-sha256");
    if (*algorithm != auth::DkimAlgorithm::RsaSha256 && options.bits)
        return usage_error("dkim keygen", "--bits applies to rsa-sha256 keys only");
    // Lower-cased: DNS names are case-insensitive, and the config entry and
    // the file name then match what load_dkim_keys() and DNS show.
    auth::DkimKeygenRequest request;
    request.domain = auth::ascii_lower(options.domain);
    request.selector = auth::ascii_lower(options.selector);
    request.algorithm = *algorithm;
    request.bits = options.bits.value_or(request.bits);
    request.path = options.out.empty()
                       ? auth::default_dkim_key_path(request.domain, request.selector)
                       : options.out;
    std::string error;
    const auto key = auth::generate_dkim_key(request, error);
    if (!key)
        return {"", fmt::format("emberctl dkim keygen: {}\n", error), kExitDaemonError};
    const auto result = keygen_result(*key, request);
    if (json)
        return {pretty_json(result), "", kExitOk};
    return format_dkim_keygen(result);
}

// --- spf ---

bool set_dns_server(std::string_view text, dns::ResolverConfig& config) {
    auto endpoint = core::Endpoint::parse(text);
    if (!endpoint) { // a bare address: the standard port
        const auto ip = core::IpAddress::parse(text);
        if (ip)
            endpoint = core::Endpoint{ip->to_string(), 53};
    }
    if (!endpoint || !core::IpAddress::parse(endpoint->host))
        return false; // a resolver is named by address, never by a name to resolve
    config.servers = {*endpoint};
    return true;
}

Printed spf(const SpfOptions& options, bool json) {
    dns::ResolverConfig config;
    if (!options.dns.empty() && !set_dns_server(options.dns, config))
        return usage_error("spf", fmt::format("--dns \"{}\" is not HOST:PORT", options.dns));
    asio::io_context io;
    std::string error;
    auto resolver = dns::make_resolver(io.get_executor(), config, error);
    if (!resolver)
        return {"", fmt::format("emberctl spf: {}\n", error), kExitUnavailable};
    auto result = run_to_completion(
        io, auth::spf_command(resolver.get(), options.ip, options.mail_from, options.helo, json),
        error);
    if (!result)
        return {"", fmt::format("emberctl spf: {}\n", error), kExitSoftware};
    if (result->exit_code == kExitUsage) // spf_command's own argument errors
        return {"", "emberctl " + result->output, result->exit_code};
    return {result->output, "", result->exit_code};
}

// --- check-domain: record helpers ---

std::optional<std::string> dkim_tag(std::string_view record, std::string_view tag) {
    const auto trim = [](std::string_view s) {
        const auto first = s.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos)
            return std::string_view();
        return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
    };
    while (!record.empty()) {
        const auto semi = record.find(';');
        const auto part = record.substr(0, semi);
        record.remove_prefix(semi == std::string_view::npos ? record.size() : semi + 1);
        const auto eq = part.find('=');
        if (eq == std::string_view::npos || trim(part.substr(0, eq)) != tag)
            continue;
        std::string value(trim(part.substr(eq + 1)));
        if (tag == "p") // RFC 6376 3.6.1: base64 may be folded
            std::erase_if(value,
                          [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
        return value;
    }
    return std::nullopt;
}

std::string spf_record_with(std::string_view record, const std::vector<core::IpAddress>& ips) {
    const auto space = record.find(' ');
    const std::string_view version =
        space == std::string_view::npos ? record : record.substr(0, space);
    std::string_view rest = space == std::string_view::npos ? "" : record.substr(space);
    const std::string lowered = auth::ascii_lower(record);
    std::string added;
    for (const auto& ip : ips) {
        const auto term = fmt::format("{}:{}", ip.is_v4() ? "ip4" : "ip6", ip.to_string());
        const bool named =
            lowered.find(" " + term + " ") != std::string::npos || lowered.ends_with(" " + term);
        if (!named && added.find(" " + term) == std::string::npos)
            added += " " + term;
    }
    return std::string(version) + added + std::string(rest);
}

// --- check-domain: the facts ---

asio::awaitable<DomainFacts> gather_domain_facts(dns::Resolver* resolver,
                                                 const auth::PublicSuffixList* psl,
                                                 FactsRequest request) {
    DomainFacts facts;
    facts.domain = request.domain;
    facts.egress = request.egress;
    std::string dmarc_domain = request.domain;
    facts.dmarc = co_await auth::discover_dmarc(resolver, psl, std::move(dmarc_domain));
    std::string spf_name = request.domain;
    const auto spf_answer = co_await resolver->txt(std::move(spf_name));
    facts.spf_txt_status = spf_answer.status;
    facts.spf_txt = spf_answer.records;
    for (const auto& ip : request.egress) {
        auto check = auth::mail_from_check(ip, "postmaster@" + request.domain, request.helo);
        check.receiver = request.helo;
        const auto outcome = co_await auth::check_host(resolver, std::move(check));
        facts.spf.push_back(outcome);
    }
    if (!request.bounce_domain.empty()) {
        ReturnPathFacts rp;
        rp.domain = request.bounce_domain;
        rp.verp = request.verp;
        std::string name = request.bounce_domain;
        const auto answer = co_await resolver->txt(std::move(name));
        rp.spf.txt_status = answer.status;
        rp.spf.txt = answer.records;
        for (const auto& ip : request.egress) {
            auto check = auth::mail_from_check(ip, request.bounce_sender, request.helo);
            check.receiver = request.helo;
            const auto outcome = co_await auth::check_host(resolver, std::move(check));
            rp.spf.spf.push_back(outcome);
        }
        facts.return_path = std::move(rp);
    }
    for (auto& key : request.keys) {
        std::string name = fmt::format("{}._domainkey.{}", key.selector, key.domain);
        const auto answer = co_await resolver->txt(std::move(name));
        key.status = answer.status;
        key.published = answer.records;
        facts.dkim.push_back(std::move(key));
    }
    co_return facts;
}

// --- check-domain: the decision ---

namespace {

json::object check_entry(std::string_view check, std::string_view status, std::string detail) {
    return json::object{{"check", check},
                        {"status", status},
                        {"detail", std::move(detail)},
                        {"fix", nullptr},
                        {"note", ""}};
}

void set_fix(json::object& entry, std::string name, std::string value) {
    entry["fix"] =
        json::object{{"name", std::move(name)}, {"type", "TXT"}, {"value", std::move(value)}};
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts)
        out += (out.empty() ? "" : std::string(separator)) + part;
    return out;
}

struct Part {
    json::array checks;
    bool aligned = false;
    bool temporary = false;
    std::vector<std::string> reasons; // why it does not align
};

std::string spf_detail(const core::IpAddress& ip, const auth::SpfOutcome& o,
                       std::string_view domain) {
    std::string detail = fmt::format("{}: {}", ip.to_string(), auth::spf_result_name(o.result));
    if (!o.mechanism.empty())
        detail += fmt::format(" ({}{})", o.mechanism,
                              o.domain.empty() || o.domain == domain ? "" : " in " + o.domain);
    if (!o.problem.empty())
        detail += ": " + o.problem;
    return detail;
}

// One envelope-sender domain's SPF facts, as evaluate_spf reads them: the
// checked domain itself, or its VERP return path (label says which).
struct SpfSide {
    std::string_view domain;
    const std::vector<auth::SpfOutcome>& spf;
    dns::Status txt_status;
    const std::vector<std::string>& txt;
    std::string label; // "" for DOMAIN, "return path bounce.example.com, " otherwise
};

// The SPF record to publish so that every failing address passes.
void spf_fix(const SpfSide& f, const std::vector<core::IpAddress>& failing, json::object& entry) {
    if (dns::is_temporary(f.txt_status)) {
        entry["note"] = "the domain's TXT records could not be fetched: try again";
        return;
    }
    std::vector<std::string> records;
    std::copy_if(f.txt.begin(), f.txt.end(), std::back_inserter(records),
                 [](const std::string& r) { return auth::is_spf_record(r); });
    std::string value;
    if (records.empty()) {
        value = spf_record_with("v=spf1 -all", failing);
        entry["note"] = "the domain publishes no SPF record";
    } else {
        value = spf_record_with(records.front(), failing);
        entry["note"] = records.size() == 1
                            ? "the existing record, with the egress addresses added"
                            : fmt::format("{} SPF records make a permerror (RFC 7208 4.5): "
                                          "publish this one only",
                                          records.size());
    }
    set_fix(entry, std::string(f.domain), std::move(value));
}

Part evaluate_spf(const std::vector<core::IpAddress>& egress, const SpfSide& f) {
    Part part;
    if (egress.empty()) {
        auto entry = check_entry("spf", "fail", "no egress address known");
        entry["note"] = "set [delivery] source_ips to the addresses receivers see";
        part.checks.push_back(std::move(entry));
        part.reasons.emplace_back("no egress address is known for SPF");
        return part;
    }
    std::vector<core::IpAddress> failing;
    std::size_t last_failing = 0;
    for (std::size_t i = 0; i < egress.size() && i < f.spf.size(); ++i) {
        const auto& o = f.spf[i];
        const bool temporary = o.result == auth::SpfResult::TempError;
        const char* status = o.result == auth::SpfResult::Pass ? "ok" : temporary ? "temp" : "fail";
        auto entry = check_entry("spf", status, f.label + spf_detail(egress[i], o, f.domain));
        entry["ip"] = egress[i].to_string();
        entry["result"] = auth::spf_result_name(o.result);
        entry["domain"] = f.domain;
        part.temporary = part.temporary || temporary;
        if (std::string_view(status) == "fail") {
            failing.push_back(egress[i]);
            last_failing = part.checks.size();
        }
        part.checks.push_back(std::move(entry));
    }
    if (!failing.empty())
        spf_fix(f, failing, part.checks[last_failing].as_object());
    part.aligned = failing.empty() && !part.temporary;
    if (!failing.empty()) {
        std::vector<std::string> ips;
        for (const auto& ip : failing)
            ips.push_back(ip.to_string());
        part.reasons.push_back(fmt::format("SPF {}does not pass for {}",
                                           f.label.empty() ? "" : fmt::format("of {} ", f.domain),
                                           join(ips, ", ")));
    }
    return part;
}

SpfSide domain_side(const DomainFacts& f) {
    return {f.domain, f.spf, f.spf_txt_status, f.spf_txt, ""};
}

SpfSide return_path_side(const ReturnPathFacts& rp) {
    return {rp.domain, rp.spf.spf, rp.spf.txt_status, rp.spf.txt,
            fmt::format("return path {}, ", rp.domain)};
}

// With VERP the return path's SPF is what receivers check, and DMARC asks
// that its domain align with the From: domain (RFC 7489 3.1.2, aspf).
Part evaluate_return_path(const DomainFacts& f, const auth::PublicSuffixList& psl) {
    const auto& rp = *f.return_path;
    if (f.egress.empty()) { // DOMAIN's own SPF check already says so
        Part part;
        part.reasons.emplace_back("no egress address is known for SPF");
        return part;
    }
    Part part = evaluate_spf(f.egress, return_path_side(rp));
    auto& last = part.checks.back().as_object();
    if (!rp.verp) {
        const std::string note(last.at("note").as_string());
        last["note"] = note + (note.empty() ? "" : "; ") +
                       "[feedback] verp is off: mail does not use this return path yet";
        return part;
    }
    auto mode = auth::AlignmentMode::Relaxed;
    if (f.dmarc.status == auth::DmarcLookup::Status::Found)
        mode = f.dmarc.record.spf;
    else if (f.dmarc.status == auth::DmarcLookup::Status::TempError)
        mode = auth::AlignmentMode::Strict; // as for DKIM: claim no alignment aspf=s would refuse
    if (!auth::domains_aligned(rp.domain, f.domain, mode, psl)) {
        part.aligned = false;
        part.reasons.push_back(fmt::format("the return path domain {} does not align with {}{}",
                                           rp.domain, f.domain,
                                           mode == auth::AlignmentMode::Strict ? " (aspf=s)" : ""));
    }
    return part;
}

std::string key_text(const DkimKeyFacts& key) {
    return key.bits > 0 && key.algorithm == "rsa-sha256"
               ? fmt::format("{} ({}, {} bits)", key.key_path, key.algorithm, key.bits)
               : fmt::format("{} ({})", key.key_path, key.algorithm);
}

// One key's record, as published against ours.
json::object evaluate_key(const DkimKeyFacts& key, std::string_view domain,
                          auth::AlignmentMode mode, const auth::PublicSuffixList& psl,
                          bool& aligned) {
    const auto name = fmt::format("{}._domainkey.{}", key.selector, key.domain);
    const auto ours_p = dkim_tag(key.record, "p").value_or("");
    const auto ours_k = dkim_tag(key.record, "k").value_or("rsa");
    bool found = false, matching = false, revoked = false;
    for (const auto& record : key.published) {
        const auto p = dkim_tag(record, "p");
        if (!p)
            continue; // not a key record (RFC 6376 3.6.1: p= is required)
        found = true;
        revoked = revoked || p->empty();
        matching = matching || (*p == ours_p && dkim_tag(record, "k").value_or("rsa") == ours_k);
    }
    json::object entry;
    if (dns::is_temporary(key.status)) {
        entry =
            check_entry("dkim", "temp",
                        fmt::format("{}: lookup failed ({})", name, dns::status_name(key.status)));
    } else if (matching && !auth::domains_aligned(key.domain, domain, mode, psl)) {
        entry = check_entry("dkim", "fail",
                            fmt::format("{}: matches {}, but d={} does not align with {} (adkim=s)",
                                        name, key.key_path, key.domain, domain));
    } else if (matching) {
        entry = check_entry("dkim", "ok", fmt::format("{}: matches {}", name, key_text(key)));
        if (!key.signing)
            entry["note"] = "the key does not sign now: outside its not_before/not_after window";
        aligned = aligned || key.signing;
    } else {
        const auto why = !found    ? "no DKIM key record"
                         : revoked ? "the published key is revoked (empty p=)"
                                   : "the published key is not the public key of";
        entry = check_entry("dkim", "fail",
                            found && !revoked ? fmt::format("{}: {} {}", name, why, key.key_path)
                                              : fmt::format("{}: {}", name, why));
        set_fix(entry, name, key.record);
    }
    entry["selector"] = key.selector;
    entry["name"] = name;
    entry["key"] = key.key_path;
    return entry;
}

Part evaluate_dkim(const DomainFacts& f, const auth::PublicSuffixList& psl) {
    Part part;
    // Without a DMARC answer the mode is unknown: strict, so as not to claim
    // an alignment that adkim=s would refuse.
    auto mode = auth::AlignmentMode::Relaxed;
    if (f.dmarc.status == auth::DmarcLookup::Status::Found)
        mode = f.dmarc.record.dkim;
    else if (f.dmarc.status == auth::DmarcLookup::Status::TempError)
        mode = auth::AlignmentMode::Strict;
    if (f.dkim.empty()) {
        auto entry =
            check_entry("dkim", "fail",
                        fmt::format("no [[dkim]] key signs for {} or its organization", f.domain));
        entry["note"] =
            fmt::format("make one: emberctl dkim keygen --domain {} --selector SELECTOR, "
                        "publish its record and add the [[dkim]] entry it prints",
                        f.domain);
        part.checks.push_back(std::move(entry));
    }
    for (const auto& key : f.dkim) {
        auto entry = evaluate_key(key, f.domain, mode, psl, part.aligned);
        part.temporary = part.temporary || entry.at("status") == "temp";
        part.checks.push_back(std::move(entry));
    }
    if (!part.aligned)
        part.reasons.emplace_back("no signing [[dkim]] key is aligned and published");
    return part;
}

Part evaluate_dmarc(const DomainFacts& f) {
    Part part;
    const auto& d = f.dmarc;
    const auto org = d.organizational_domain.empty() ? f.domain : d.organizational_domain;
    json::object entry;
    switch (d.status) {
    case auth::DmarcLookup::Status::Found: {
        std::string detail = fmt::format("_dmarc.{}: p={}", d.record_domain,
                                         auth::dmarc_policy_name(d.applied_policy()));
        if (d.record.dkim == auth::AlignmentMode::Strict)
            detail += ", adkim=s";
        if (d.record.spf == auth::AlignmentMode::Strict)
            detail += ", aspf=s";
        entry = check_entry("dmarc", "ok", std::move(detail));
        entry["note"] = join(d.record.warnings, "; ");
        entry["policy"] = auth::dmarc_policy_name(d.applied_policy());
        part.aligned = true;
        break;
    }
    case auth::DmarcLookup::Status::None:
        entry = check_entry("dmarc", "fail",
                            d.problem.empty() ? fmt::format("_dmarc.{}: no DMARC policy", f.domain)
                                              : "no DMARC policy: " + d.problem);
        set_fix(entry, "_dmarc." + org, fmt::format("v=DMARC1; p=none; rua=mailto:dmarc@{}", org));
        entry["note"] = "a starting point: p=none only asks for aggregate reports (rua)";
        break;
    case auth::DmarcLookup::Status::TempError:
        entry = check_entry("dmarc", "temp",
                            fmt::format("_dmarc.{}: lookup failed ({})", f.domain, d.problem));
        part.temporary = true;
        break;
    }
    part.checks.push_back(std::move(entry));
    return part;
}

std::string verdict(const DomainFacts& f, const Part& spf, const Part& dkim, bool temporary) {
    if (dkim.aligned || spf.aligned) {
        const char* how = dkim.aligned && spf.aligned ? "DKIM and SPF"
                          : dkim.aligned              ? "DKIM"
                                                      : "SPF (it passes for every egress address)";
        return fmt::format("mail From {} aligns: {}", f.domain, how);
    }
    std::vector<std::string> reasons = dkim.reasons;
    reasons.insert(reasons.end(), spf.reasons.begin(), spf.reasons.end());
    if (temporary)
        return fmt::format("mail From {} does not align as far as known; DNS lookups failed, "
                           "try again",
                           f.domain);
    return fmt::format("mail From {} does not align: {}", f.domain, join(reasons, "; "));
}

} // namespace

DomainReport evaluate_domain(const DomainFacts& facts, const auth::PublicSuffixList& psl) {
    const auto own = evaluate_spf(facts.egress, domain_side(facts));
    const auto return_path = facts.return_path ? evaluate_return_path(facts, psl) : Part{};
    // With VERP on, DOMAIN's mail leaves with the return path: its SPF
    // decides; DOMAIN's own record is still shown (other mail may use it).
    const bool verp = facts.return_path && facts.return_path->verp;
    const auto& spf = verp ? return_path : own;
    const auto dkim = evaluate_dkim(facts, psl);
    const auto dmarc = evaluate_dmarc(facts);
    const bool temporary = spf.temporary || dkim.temporary || dmarc.temporary;
    const bool aligned = spf.aligned || dkim.aligned;
    json::array checks;
    for (const auto* part : {&own, &return_path, &dkim, &dmarc})
        for (const auto& entry : part->checks)
            checks.push_back(entry);
    json::array egress;
    for (const auto& ip : facts.egress)
        egress.emplace_back(ip.to_string());
    DomainReport report;
    report.json = json::object{{"domain", facts.domain},
                               {"return_path_domain", facts.return_path
                                                          ? json::value(facts.return_path->domain)
                                                          : json::value(nullptr)},
                               {"egress_ips", std::move(egress)},
                               {"aligned", aligned},
                               {"dkim_aligned", dkim.aligned},
                               {"spf_aligned", spf.aligned},
                               {"temporary", temporary},
                               {"checks", std::move(checks)},
                               {"verdict", verdict(facts, spf, dkim, temporary)}};
    report.exit_code = aligned ? kExitOk : temporary ? kExitTempFail : kExitDaemonError;
    return report;
}

// --- check-domain: wiring ---

namespace {

struct LoadedDomainConfig {
    FactsRequest request;
    dns::ResolverConfig dns;
};

// The config's egress addresses, HELO name, resolver and the [[dkim]] keys
// that could align with `domain`; Printed set when it does not load.
std::optional<LoadedDomainConfig> load_domain_config(const CheckDomainOptions& options,
                                                     const std::string& domain,
                                                     const auth::PublicSuffixList& psl,
                                                     Printed& failure) {
    core::Diagnostics diag;
    const auto config = load_config(options.config, diag);
    const auto keys =
        config ? auth::load_dkim_keys(config->dkim, config->file, diag) : std::nullopt;
    if (!config || !keys) {
        const auto text = diag.to_string();
        failure = {"", text + (text.ends_with('\n') ? "" : "\n"), kExitConfig};
        return std::nullopt;
    }
    LoadedDomainConfig loaded;
    loaded.dns = config->dns;
    if (!options.dns.empty() && !set_dns_server(options.dns, loaded.dns)) {
        failure =
            usage_error("check-domain", fmt::format("--dns \"{}\" is not HOST:PORT", options.dns));
        return std::nullopt;
    }
    auto& request = loaded.request;
    request.domain = domain;
    request.egress = config->delivery.source_ips.empty() ? auth::host_egress_addresses()
                                                         : config->delivery.source_ips;
    request.helo =
        !config->delivery.helo_name.empty() ? config->delivery.helo_name : config->server.hostname;
    // FeedbackPolicy::bounce_domain_for: the domain's own entry, else the default.
    const auto& feedback = config->feedback;
    const auto named = feedback.bounce_domains.find(domain);
    const auto bounce = lower_domain(
        named != feedback.bounce_domains.end() ? named->second : feedback.bounce_domain);
    if (!bounce.empty() && bounce != domain) {
        request.bounce_domain = bounce;
        request.bounce_sender = feedback.inbound.verp_local_part + "@" + bounce;
        request.verp = feedback.verp;
    }
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    for (const auto& key : *keys) {
        if (!auth::domains_aligned(key.config.domain, domain, auth::AlignmentMode::Relaxed, psl))
            continue;
        DkimKeyFacts facts;
        facts.domain = key.config.domain;
        facts.selector = key.config.selector;
        facts.key_path = key.config.key;
        facts.algorithm = auth::dkim_algorithm_name(key.config.algorithm);
        facts.bits = key.bits;
        facts.record = key.record;
        facts.signing = key.valid_at(now);
        request.keys.push_back(std::move(facts));
    }
    return loaded;
}

} // namespace

Printed check_domain(const CheckDomainOptions& options, bool json) {
    const auto domain = lower_domain(options.domain);
    if (!auth::valid_dkim_domain(domain))
        return usage_error("check-domain",
                           fmt::format("\"{}\" is not a domain name of two or more labels",
                                       printable(options.domain)));
    const auto psl = auth::PublicSuffixList::system();
    Printed failure;
    auto loaded = load_domain_config(options, domain, *psl, failure);
    if (!loaded)
        return failure;
    asio::io_context io;
    std::string error;
    auto resolver = dns::make_resolver(io.get_executor(), loaded->dns, error);
    if (!resolver)
        return {"", fmt::format("emberctl check-domain: {}\n", error), kExitUnavailable};
    const auto facts = run_to_completion(
        io, gather_domain_facts(resolver.get(), psl.get(), std::move(loaded->request)), error);
    if (!facts)
        return {"", fmt::format("emberctl check-domain: {}\n", error), kExitSoftware};
    const auto report = evaluate_domain(*facts, *psl);
    Printed printed =
        json ? Printed{pretty_json(report.json), "", 0} : format_check_domain(report.json);
    printed.exit_code = report.exit_code;
    return printed;
}

// --- classify ---

Printed classify(std::vector<std::string> words, bool json,
                 const std::function<std::string()>& read_stdin) {
    if (json && std::find(words.begin(), words.end(), "--json") == words.end())
        words.emplace_back("--json");
    auto result = feedback::classify_command(words, read_stdin);
    return {std::move(result.out), std::move(result.err), result.exit_code};
}

// --- entry points ---

namespace {

std::string string_arg(const json::object& args, std::string_view name) {
    const auto* value = args.if_contains(name);
    return value && value->is_string() ? std::string(value->get_string()) : std::string();
}

int emit(const Printed& printed, std::ostream& out, std::ostream& err) {
    out << printed.out;
    err << printed.err;
    return printed.exit_code;
}

} // namespace

int run_dkim_keygen(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    const auto& args = invocation.args;
    KeygenOptions options;
    options.domain = string_arg(args, "domain");
    options.selector = string_arg(args, "selector");
    if (auto algorithm = string_arg(args, "algorithm"); !algorithm.empty())
        options.algorithm = std::move(algorithm);
    options.out = string_arg(args, "out");
    if (const auto bits = string_arg(args, "bits"); !bits.empty()) {
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
        if (ec != std::errc{} || end != bits.data() + bits.size())
            return emit(usage_error("dkim keygen", "--bits must be a number"), out, err);
        options.bits = value;
    }
    return emit(dkim_keygen(options, invocation.options.json), out, err);
}

int run_spf(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    const auto& args = invocation.args;
    SpfOptions options{string_arg(args, "dns"), string_arg(args, "ip"),
                       string_arg(args, "mailfrom"), string_arg(args, "helo")};
    return emit(spf(options, invocation.options.json), out, err);
}

int run_check_domain(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    CheckDomainOptions options;
    options.domain = string_arg(invocation.args, "domain");
    if (!invocation.options.config.empty())
        options.config = invocation.options.config;
    options.dns = string_arg(invocation.args, "dns");
    return emit(check_domain(options, invocation.options.json), out, err);
}

int run_classify(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    std::vector<std::string> words;
    if (const auto* given = invocation.args.if_contains("words"); given && given->is_array())
        for (const auto& word : given->get_array())
            if (word.is_string())
                words.emplace_back(word.get_string());
    const auto read_stdin = [] {
        return std::string(std::istreambuf_iterator<char>(std::cin),
                           std::istreambuf_iterator<char>());
    };
    return emit(classify(std::move(words), invocation.options.json, read_stdin), out, err);
}

} // namespace ember::daemon::ctl
