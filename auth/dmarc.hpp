#pragma once
// DMARC (RFC 7489): policy records, their discovery in DNS, organizational
// domains and identifier alignment. Not here: DKIM verification, reports.
//
// Records (6.3, 6.4): "v=DMARC1" must be the first tag, exactly; tag names
// and keyword values are case-insensitive (ABNF quoted strings); unknown
// tags are ignored. A missing or invalid p=, or an invalid sp=, makes the
// record invalid unless rua= holds a valid URI, in which case it reads as
// p=none (6.6.3 step 6). Other invalid values (adkim, aspf, pct, fo, rf,
// ri, single bad rua/ruf URIs) fall back to their defaults with a warning
// (6.3: "syntax errors in the remainder of the record SHOULD be discarded in
// favor of default values"). An invalid record means "no DMARC policy".
//
// Discovery (6.6.3): TXT at _dmarc.<From domain>; records not starting with
// v=DMARC1 are discarded; when none is left, _dmarc.<organizational domain>
// is tried; several records (at either name) mean no policy. A DNS failure
// (SERVFAIL, timeout) is a temporary error, never "no policy".
//
// Organizational domains (3.2) come from the Public Suffix List via libpsl.
// PublicSuffixList::system() uses psl_latest(): the newer of libpsl's
// built-in list and /usr/share/publicsuffix/public_suffix_list.dafsa (Debian
// package "publicsuffix", updated by apt without rebuilding ember), falling
// back to psl_builtin(). Lookups are read-only and thread-safe.

#include "dns/resolver.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct psl_ctx_st; // libpsl's context; <libpsl.h> stays in dmarc.cpp

namespace ember::auth {

enum class DmarcPolicy { None, Quarantine, Reject };
enum class AlignmentMode { Relaxed, Strict };

[[nodiscard]] std::string_view dmarc_policy_name(DmarcPolicy policy);

struct DmarcRecord {
    DmarcPolicy policy = DmarcPolicy::None;      // p
    std::optional<DmarcPolicy> subdomain_policy; // sp; unset = p
    AlignmentMode dkim = AlignmentMode::Relaxed; // adkim
    AlignmentMode spf = AlignmentMode::Relaxed;  // aspf
    unsigned percent = 100;                      // pct, 0-100
    std::vector<std::string> aggregate_uris;     // rua, valid URIs only
    std::vector<std::string> failure_uris;       // ruf, valid URIs only
    std::string failure_options = "0";           // fo: "0", "1", "d", "s" joined by ':'
    std::string report_format = "afrf";          // rf
    std::uint32_t report_interval = 86400;       // ri, seconds
    bool policy_from_rua = false;      // p was missing or invalid; read as p=none because of rua
    std::vector<std::string> warnings; // values ignored in favour of defaults
};

// First tag "v=DMARC1" (spaces around '=' allowed).
[[nodiscard]] bool is_dmarc_record(std::string_view txt);

struct DmarcParse {
    std::optional<DmarcRecord> record;
    std::string error; // when !record: the record gives no DMARC policy
};
[[nodiscard]] DmarcParse parse_dmarc_record(std::string_view txt);

class PublicSuffixList {
public:
    PublicSuffixList(const PublicSuffixList&) = delete;
    PublicSuffixList& operator=(const PublicSuffixList&) = delete;
    ~PublicSuffixList();

    // The process-wide list (see the header comment); loaded once, never null.
    [[nodiscard]] static std::shared_ptr<const PublicSuffixList> system();
    // A list file in PSL text (.dat) or DAFSA form; nullptr and `error` set on failure.
    [[nodiscard]] static std::shared_ptr<const PublicSuffixList> load(const std::string& path,
                                                                      std::string& error);

    // The public suffix plus one label, lower-cased: "mail.example.co.uk" ->
    // "example.co.uk". nullopt when the name is itself a public suffix or is
    // not a domain name (empty labels, a leading dot).
    [[nodiscard]] std::optional<std::string> registrable_domain(std::string_view domain) const;
    // RFC 7489 3.2; the lower-cased name itself when it has no registrable
    // domain (a public suffix sending mail is its own organization).
    [[nodiscard]] std::string organizational_domain(std::string_view domain) const;

private:
    PublicSuffixList(psl_ctx_st* owned, const psl_ctx_st* view);
    psl_ctx_st* owned_ = nullptr; // freed with psl_free; null for the built-in list
    const psl_ctx_st* view_ = nullptr;
};

// RFC 7489 3.1: strict = the same name; relaxed = the same organizational
// domain. Case-insensitive; one trailing dot (the root) is ignored.
[[nodiscard]] bool domains_aligned(std::string_view a, std::string_view b, AlignmentMode mode,
                                   const PublicSuffixList& psl);

struct DmarcLookup {
    enum class Status { Found, None, TempError };
    Status status = Status::None;
    DmarcRecord record;                // when Found
    std::string from_domain;           // lower-cased, without trailing dot
    std::string record_domain;         // the name the record was found for (without "_dmarc.")
    std::string organizational_domain; // of from_domain
    std::string problem; // None: why no policy (absent, several, invalid); TempError: the DNS error

    // p, or sp when the record came from the organizational domain and the
    // From domain is a subdomain of it (6.6.3).
    [[nodiscard]] DmarcPolicy applied_policy() const;
};

// Coroutine on the caller's executor; resolver and psl must outlive it.
[[nodiscard]] boost::asio::awaitable<DmarcLookup>
discover_dmarc(dns::Resolver* resolver, const PublicSuffixList* psl, std::string from_domain);

} // namespace ember::auth
