#pragma once
// SASL pieces SMTP AUTH (RFC 4954) needs: strict base64 (RFC 4648 4) and the
// PLAIN mechanism's message (RFC 4616). Checking the credentials against the
// users file is auth/'s job; this only decodes. Pure functions, thread-safe.
//
// base64 is written here rather than taken from OpenSSL's EVP_DecodeBlock:
// that one skips surrounding whitespace, does not report padding, and accepts
// non-zero pad bits, while AUTH wants a strict yes/no, and the pure smtp/
// parsing layer then needs no crypto library.

#include <optional>
#include <string>
#include <string_view>

namespace ember::smtp {

// Strict: length a multiple of 4, only A-Z a-z 0-9 + /, at most two "=" and
// only at the end, zero pad bits, no whitespace. "" decodes to "".
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);
[[nodiscard]] std::string base64_encode(std::string_view data);

struct PlainCredentials {
    std::string authzid; // empty: act as authcid
    std::string authcid;
    std::string password;
};

// RFC 4616 2: base64 of authzid NUL authcid NUL passwd; exactly two NULs,
// authcid and password non-empty, each part at most 255 octets. The two
// identities must be UTF-8 (they reach logs and Received: lines); the
// password is compared as octets, so it only has to be NUL-free.
[[nodiscard]] std::optional<PlainCredentials> decode_plain(std::string_view base64);
// The client's side: the base64 initial response for AUTH PLAIN.
[[nodiscard]] std::string encode_plain(const PlainCredentials& credentials);

} // namespace ember::smtp
