#pragma once
// emberctl's offline verbs: they run in emberctl itself and need no daemon.
//
//   dkim keygen   a new DKIM key pair, and what to publish and configure
//   spf           RFC 7208 check_host() for one IP and MAIL FROM
//   check-domain  is DOMAIN ready to send from: SPF for every egress IP, the
//                 DKIM records of our [[dkim]] keys, DMARC; and what to publish
//   classify      feedback::classify_command (one reply, or a bounce message)
//
// Each verb is a function from typed options to Printed (stdout, stderr,
// exit status), so tests call them without a process; the run_* entry
// points adapt them to ctl_cli's verb table. The DNS verbs build a c-ares
// resolver on a private io_context, run one coroutine to completion and
// return: emberctl is a short-lived, single-threaded process.
//
// check-domain is split in three: gather_domain_facts() asks DNS only what
// the report needs; evaluate_domain() is the pure decision (facts in,
// report and exit status out); ctl_format's format_check_domain() prints it.
// Alignment follows the DMARC gate (auth/alignment.hpp): the domain aligns
// when one signing [[dkim]] key aligns with it and its published record
// carries our public key, or when SPF passes for every egress address. It
// assumes the envelope sender is at DOMAIN (SPF is checked for
// postmaster@DOMAIN), except when [feedback] gives DOMAIN a bounce domain:
// its SPF is checked too (for verp_local_part@BOUNCE, the VERP return
// path), with the record to publish when it does not pass for every egress
// address; with verp = true it is the return path of DOMAIN's mail, so it
// alone decides SPF alignment (it must pass and align with DOMAIN under
// the DMARC record's aspf), like the DMARC gate would see it.
//
// Exit status of check-domain: 0 mail From DOMAIN aligns; 1 it does not;
// 2 usage; 69 (EX_UNAVAILABLE) no resolver could be started; 75
// (EX_TEMPFAIL) it does not align as far as known, but a DNS lookup failed
// temporarily (SERVFAIL, timeout, unreachable server), so the answer may
// change: try again; 78 (EX_CONFIG) the config does not load. A DNS failure
// is temporary, never "missing" (the same rule as the DMARC gate's 451),
// hence 75 rather than 1; 69 is kept for "cannot even start".

#include "auth/dmarc.hpp"
#include "auth/spf.hpp"
#include "core/net.hpp"
#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon::ctl {

inline constexpr int kExitTempFail = 75; // EX_TEMPFAIL
inline constexpr const char* kDefaultConfig = "/etc/ember/ember.toml";

// --- dkim keygen ---

struct KeygenOptions {
    std::string domain;
    std::string selector;
    std::string algorithm = "rsa-sha256"; // or "ed25519-sha256"
    std::optional<unsigned> bits;         // RSA only; unset = 2048
    std::string out;                      // "" = auth::default_dkim_key_path()
};

// Writes the key and returns what to publish; exit 1 with the error when
// the key cannot be made (existing file, bad domain or selector, ...), 2
// for options that contradict each other.
[[nodiscard]] Printed dkim_keygen(const KeygenOptions& options, bool json);

// --- spf ---

struct SpfOptions {
    std::string dns; // "HOST:PORT" (or an IP, port 53); "" = /etc/resolv.conf
    std::string ip;
    std::string mail_from; // "" or "<>": the HELO identity is checked
    std::string helo;
};

// auth::spf_command over a resolver for `dns`; its exit status (0: evaluated,
// whatever the result; 2: bad arguments), 69 when no resolver can start.
[[nodiscard]] Printed spf(const SpfOptions& options, bool json);

// "HOST:PORT" or a bare IP (port 53) as the only server of `config`;
// false when the text is neither.
[[nodiscard]] bool set_dns_server(std::string_view text, dns::ResolverConfig& config);

// --- check-domain ---

struct CheckDomainOptions {
    std::string domain;
    std::string config = kDefaultConfig;
    std::string dns; // overrides [dns] servers of the config
};

[[nodiscard]] Printed check_domain(const CheckDomainOptions& options, bool json);

// One [[dkim]] key whose domain aligns (relaxed) with the checked domain.
struct DkimKeyFacts {
    std::string domain; // d=
    std::string selector;
    std::string key_path;
    std::string algorithm; // "rsa-sha256"
    unsigned bits = 0;
    std::string record;  // ours: "v=DKIM1; k=rsa; p=..."
    bool signing = true; // inside its not_before / not_after window now
    dns::Status status = dns::Status::Ok;
    std::vector<std::string> published; // TXT at selector._domainkey.domain
};

// SPF of one envelope-sender domain for every egress address.
struct SpfFacts {
    std::vector<auth::SpfOutcome> spf; // one per egress address
    dns::Status txt_status = dns::Status::Ok;
    std::vector<std::string> txt; // TXT at the domain, for the record to publish
};

// The [feedback] bounce domain of DOMAIN (VERP return path).
struct ReturnPathFacts {
    std::string domain; // "bounce.example.com"
    bool verp = false;  // [feedback] verp: DOMAIN's mail leaves with this return path
    SpfFacts spf;
};

struct DomainFacts {
    std::string domain; // lower-cased, no trailing dot
    std::vector<core::IpAddress> egress;
    std::vector<auth::SpfOutcome> spf; // one per egress address
    dns::Status spf_txt_status = dns::Status::Ok;
    std::vector<std::string> spf_txt; // TXT at the domain, for the record to publish
    std::vector<DkimKeyFacts> dkim;
    auth::DmarcLookup dmarc;
    std::optional<ReturnPathFacts> return_path; // none configured, or DOMAIN itself
};

struct DomainReport {
    boost::json::object json; // the --json document (emberctl(8))
    int exit_code = 0;
};

[[nodiscard]] DomainReport evaluate_domain(const DomainFacts& facts,
                                           const auth::PublicSuffixList& psl);

struct FactsRequest {
    std::string domain;
    std::vector<core::IpAddress> egress;
    std::string helo;
    std::string bounce_domain; // "" = none (or DOMAIN itself)
    std::string bounce_sender; // "bounces@bounce.example.com", checked as MAIL FROM
    bool verp = false;
    std::vector<DkimKeyFacts> keys; // DNS fields filled in by gather_domain_facts
};

// Coroutine on the caller's executor; resolver and psl must outlive it.
[[nodiscard]] boost::asio::awaitable<DomainFacts>
gather_domain_facts(dns::Resolver* resolver, const auth::PublicSuffixList* psl,
                    FactsRequest request);

// `record` ("v=spf1 ...") with an ip4:/ip6: term for each address it does
// not name yet, right after the version: a match there needs no DNS lookup
// and comes before any "all" or redirect=.
[[nodiscard]] std::string spf_record_with(std::string_view record,
                                          const std::vector<core::IpAddress>& ips);

// The value of `tag` in a DKIM key record (RFC 6376 3.6.1 tag=value list);
// whitespace inside p= is dropped (FWS is allowed there). nullopt when absent.
[[nodiscard]] std::optional<std::string> dkim_tag(std::string_view record, std::string_view tag);

// --- classify ---

// feedback::classify_command with `words` (what followed "classify"),
// plus --json when the global --json was given.
[[nodiscard]] Printed classify(std::vector<std::string> words, bool json,
                               const std::function<std::string()>& read_stdin);

// --- the verb table's entry points (Verb::offline) ---

[[nodiscard]] int run_dkim_keygen(const Invocation& invocation, std::ostream& out,
                                  std::ostream& err);
[[nodiscard]] int run_spf(const Invocation& invocation, std::ostream& out, std::ostream& err);
[[nodiscard]] int run_check_domain(const Invocation& invocation, std::ostream& out,
                                   std::ostream& err);
// Reads standard input (std::cin) when classify asks for it.
[[nodiscard]] int run_classify(const Invocation& invocation, std::ostream& out, std::ostream& err);

} // namespace ember::daemon::ctl
