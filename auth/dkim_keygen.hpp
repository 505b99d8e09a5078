#pragma once
// `emberctl dkim keygen`: a new DKIM key pair. The private key is written as
// an unencrypted PKCS#8 PEM file with mode 0600 (never over an existing
// file); the public key comes back as the TXT record to publish at
// selector._domainkey.domain, both as one string and split into the
// <= 255-octet character-strings a zone file needs (RFC 1035 3.3.14;
// receivers concatenate them, RFC 6376 3.6.2.2).
//
// Rotation: generate a key under a new selector, publish its record, add a
// [[dkim]] entry with not_before a few days ahead (DNS caches), and give the
// old entry a not_after; both sign while the windows overlap.
//
// Offline (no daemon); blocking file I/O. Errors are values.

#include "auth/dkim_config.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

struct DkimKeygenRequest {
    std::string domain;
    std::string selector;
    DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256;
    unsigned bits = 2048; // RSA only: 2048..4096
    std::string path;     // where the private key goes; must not exist
};

struct DkimGeneratedKey {
    std::string path;                        // the private key file written
    std::string dns_name;                    // "s2026._domainkey.example.com"
    std::string record;                      // "v=DKIM1; k=rsa; p=MIIB..."
    std::vector<std::string> record_strings; // `record` in <= 255-octet pieces
    std::string zone_line;                   // `name. IN TXT ( "..." "..." )`
    std::string config;                      // the [[dkim]] entry to add to ember.toml
};

// The usual place for a key: dir/domain.selector.pem.
[[nodiscard]] std::string default_dkim_key_path(std::string_view domain, std::string_view selector,
                                                std::string_view dir = "/etc/ember/dkim");

// Generates and writes the key. On failure returns nullopt with `error` set
// and leaves no file behind.
[[nodiscard]] std::optional<DkimGeneratedKey> generate_dkim_key(const DkimKeygenRequest& request,
                                                                std::string& error);

// Splits a TXT record into character-strings of at most `max` octets.
[[nodiscard]] std::vector<std::string> split_txt_record(std::string_view record,
                                                        std::size_t max = 255);

} // namespace ember::auth
