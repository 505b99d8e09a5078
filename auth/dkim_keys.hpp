#pragma once
// Loading and validating [[dkim]] keys, at start and at every reload. A key
// that is missing, unreadable, readable by everyone, encrypted, not a
// private key, too weak (RSA under 2048 bits, RFC 8301 3.2), too large for
// receivers (RSA over 4096 bits), or of another type than its algorithm is
// a config error reported as `file:line: message` at the [[dkim]] entry;
// so are bad domains, selectors, rotation windows and header lists. Every
// problem is reported, then nothing loads: a reload keeps the old keys.
//
// A DkimKey is immutable once loaded; its EVP_PKEY is parsed once here
// (OpenSSL 3.0 spends ~0.5 ms per PEM parse, more than an RSA signature) and
// shared read-only by every signing thread, which OpenSSL 3 allows.

#include "auth/dkim_config.hpp"
#include "core/diagnostics.hpp"

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

struct DkimKey {
    DkimKeyConfig config;          // domain and selector lower-cased
    std::shared_ptr<EVP_PKEY> key; // never null
    unsigned bits = 0;             // RSA modulus size; 256 for Ed25519
    std::string record;            // the TXT record to publish: "v=DKIM1; k=rsa; p=..."

    [[nodiscard]] std::string dns_name() const; // selector._domainkey.domain
    // not_before <= now < not_after.
    [[nodiscard]] bool valid_at(std::int64_t now_unix) const;
};

// One entry. Errors go to `diag` as `config_file:line: [[dkim]] ...`
// (line 0: no line). nullopt when there was any.
[[nodiscard]] std::optional<DkimKey> load_dkim_key(const DkimKeyConfig& config,
                                                   std::string_view config_file, std::uint32_t line,
                                                   core::Diagnostics& diag);

// Every entry, each at its own `config.line`, plus the checks across
// entries (one key per domain and selector). nullopt when any failed.
[[nodiscard]] std::optional<std::vector<DkimKey>>
load_dkim_keys(const std::vector<DkimKeyConfig>& configs, std::string_view config_file,
               core::Diagnostics& diag);

// The RSA bounds enforced above.
inline constexpr unsigned kDkimMinRsaBits = 2048;
inline constexpr unsigned kDkimMaxRsaBits = 4096;

} // namespace ember::auth
