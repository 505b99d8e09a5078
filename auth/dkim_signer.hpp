#pragma once
// DKIM signing (RFC 6376, RFC 8463): the DKIM-Signature header fields to
// prepend to a message, one per [[dkim]] key that applies to its From
// domain.
//
// When: sign the message exactly as it will be sent, after every content
// change it will get (personalization, tracking links, added List-* or
// Feedback-ID fields): at dispatch, once per distinct rendered message. Any
// later change to a signed header or to the body breaks the signature.
//
// Which keys: the signing domain is the From domain if it has a key valid
// at `now`, else its nearest parent domain that has one (d=example.com for
// From: news.example.com still aligns under relaxed DMARC, RFC 7489 3.1.1).
// Every key of that domain valid at `now` (not_before <= now < not_after)
// signs, in config order: RSA and Ed25519 together, or an old and a new
// selector while a rotation overlaps. No key: no signature ("").
//
// What is signed: the header fields of kDkimSignedHeaders (or the key's own
// list), every instance present, bottom-up (RFC 6376 5.4.2), and the
// kDkimOversignedHeaders once more than they occur (8.15), so a copy added
// later breaks the signature. The signatures are independent: none covers
// another DKIM-Signature. t= is `now_unix`; x= is t= + expire_after.
//
// Why not libopendkim here: it parses the PEM key again for every message,
// and OpenSSL 3.0 needs ~0.5 ms for that, more than an RSA-2048 signature;
// signing through it ran at about a fifth of `openssl speed`'s RSA rate (bench/dkim-bench
// prints both). This signer parses each key once; the tests check every
// signature with libopendkim (auth/dkim_opendkim.hpp), dkimpy and
// opendkim-testmsg.
//
// Threading: a DkimSigner is immutable; sign() is const and safe to call
// from any number of threads at once (the keys' EVP_PKEYs are shared
// read-only, each call has its own OpenSSL contexts). An RSA-2048 signature
// costs ~0.3 ms of CPU: run sign() on a worker pool (core::offload()), not
// on the I/O thread. A reload builds a new DkimSigner and swaps it.

#include "auth/dkim_keys.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

class DkimSigner {
public:
    DkimSigner() = default;
    explicit DkimSigner(std::vector<DkimKey> keys);

    // `message`: header and body, CRLF line ends, not dot-stuffed.
    // `from_domain`: the RFC 5322.From domain (A-labels; case and a trailing
    // dot do not matter). Returns the header fields to prepend, each
    // "DKIM-Signature: ...\r\n" and folded under 80 columns; "" if no key
    // applies.
    [[nodiscard]] std::string sign(std::string_view message, std::string_view from_domain,
                                   std::int64_t now_unix) const;

    // The keys sign() would use, in signing order.
    [[nodiscard]] std::vector<const DkimKey*> keys_for(std::string_view from_domain,
                                                       std::int64_t now_unix) const;

    [[nodiscard]] const std::vector<DkimKey>& keys() const { return keys_; }
    [[nodiscard]] bool empty() const { return keys_.empty(); }

private:
    std::vector<DkimKey> keys_;
    std::map<std::string, std::vector<std::size_t>, std::less<>> by_domain_; // -> keys_ index
};

// One DKIM-Signature header field (with its CRLF) for `message` by `key`.
[[nodiscard]] std::string dkim_signature(const DkimKey& key, std::string_view message,
                                         std::int64_t now_unix);

} // namespace ember::auth
