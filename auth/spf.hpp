#pragma once
// SPF evaluation (RFC 7208): check_host() over dns::Resolver, and the
// `emberctl spf` verb built on it.
//
// check_host(ip, domain, sender) follows section 4: the domain is checked
// (4.3: a malformed or single-label name gives none), its TXT records are
// fetched (4.4: a DNS failure gives temperror), exactly one "v=spf1" record
// must be there (4.5: none without, permerror with several), it is parsed
// whole (auth/spf_record.hpp), then its mechanisms are tried in order (5),
// then redirect= (6.1; only reached when no "all" matched), else neutral.
// include maps results per the 5.2 table. A fail fetches exp= text once, at
// the end, from the record that decided (6.2; include and redirect rules).
//
// Limits (4.6.4), per top-level check: at most 10 DNS-querying terms
// (include, a, mx, ptr, exists, redirect, and each %{p} expansion in a
// term, since 4.6.4 counts the %{p} PTR query too), at most 2 void lookups
// (a term whose query answers NXDOMAIN or no records), at most 10 MX names
// per mx (more is a permerror), at most the first 10 PTR names per ptr or
// %{p} (the rest are ignored). exp= is not counted (4.6.4). The whole check
// gives temperror once `deadline` has passed (4.6.4: at least 20 seconds).
//
// DNS failures (SERVFAIL, timeout) give temperror, except inside ptr and
// %{p}, where 5.5 says a failed lookup only skips that name.
//
// Coroutines on the caller's executor; the Resolver must outlive the call.
// Nothing is cached here: the Resolver caches.

#include "auth/spf_record.hpp"
#include "core/net.hpp"
#include "core/units.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace ember::auth {

enum class SpfResult { None, Neutral, Pass, Fail, SoftFail, TempError, PermError };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
[[nodiscard]] std::string_view spf_result_name(SpfResult result);

struct SpfLimits {
    unsigned dns_terms = 10;
    unsigned void_lookups = 2;
    unsigned mx_names = 10;
    unsigned ptr_names = 10;
    core::Duration deadline = std::chrono::seconds(20);
};

struct SpfCheck {
    core::IpAddress ip;               // IPv4-mapped IPv6 is already IPv4 (core::IpAddress)
    std::string domain;               // <domain>
    std::string sender;               // <sender>: "local@domain"
    std::string helo;                 // for %{h}
    std::string receiver = "unknown"; // for %{r}: our host name
    std::int64_t timestamp = 0;       // for %{t}; 0 = now
    SpfLimits limits;
};

// RFC 7208 2.4: the MAIL FROM identity. A null reverse-path checks
// "postmaster@<helo>"; a sender without local part gets "postmaster" (4.3).
[[nodiscard]] SpfCheck mail_from_check(const core::IpAddress& ip, std::string_view mail_from,
                                       std::string_view helo);
// RFC 7208 2.3: the HELO identity, checked as "postmaster@<helo>".
[[nodiscard]] SpfCheck helo_check(const core::IpAddress& ip, std::string_view helo);

struct SpfOutcome {
    SpfResult result = SpfResult::None;
    std::string explanation; // fail only: the expanded exp= text (6.2); "" when none
    std::string mechanism;   // the term that decided ("-all", "ip4:192.0.2.0/24"); "" = default
    std::string domain;      // whose record decided (after redirects)
    std::string problem;     // none, temperror, permerror: what is missing or broken
    unsigned dns_terms = 0;  // DNS-querying terms used
    unsigned void_lookups = 0;
};

// dns::Resolver is passed by pointer because coroutine parameters must not be
// references (STYLE.md); it must stay alive until the call completes.
[[nodiscard]] boost::asio::awaitable<SpfOutcome> check_host(dns::Resolver* resolver,
                                                            SpfCheck check);

// What a person reads on the second line of `emberctl spf`: the exp= text
// when the domain gave one, otherwise ember's own words for the result.
[[nodiscard]] std::string describe(const SpfOutcome& outcome, const SpfCheck& check);

struct SpfCommandResult {
    int exit_code = 0; // 0: evaluated (whatever the result); 2: bad arguments
    std::string output;
};

// `emberctl spf [--dns HOST:PORT] [--json] IP MAILFROM [HELO]`: the caller
// parses the options and builds the Resolver (dns::make_resolver with
// --dns as its only server); this checks the MAIL FROM identity (the HELO
// identity when MAILFROM is empty or "<>") and prints the result word on the
// first line and describe() on the second; with json, one object: ip,
// mail_from, helo, domain, result, explanation (exp= text only), mechanism,
// problem, dns_terms, void_lookups, description.
[[nodiscard]] boost::asio::awaitable<SpfCommandResult> spf_command(dns::Resolver* resolver,
                                                                   std::string ip,
                                                                   std::string mail_from,
                                                                   std::string helo, bool json);

} // namespace ember::auth
