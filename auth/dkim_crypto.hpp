#pragma once
// The OpenSSL pieces DKIM shares: RAII handles, SHA-256, the two DKIM
// signature primitives, base64 and the public-key text a TXT record
// carries. Thread-safe: no shared mutable state (the SHA-256 method is
// fetched once, then only read).

#include "auth/dkim_config.hpp"

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ember::auth::dkim {

using Sha256 = std::array<std::uint8_t, 32>;

struct EvpPkeyFree {
    void operator()(EVP_PKEY* key) const noexcept;
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

struct EvpMdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const noexcept;
};

class Sha256Hasher {
public:
    Sha256Hasher();
    void update(std::string_view bytes);
    [[nodiscard]] Sha256 finish();

private:
    std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx_;
};

[[nodiscard]] Sha256 sha256(std::string_view bytes);

// The b= signature over `data` (RFC 6376 3.7's header hash input):
// rsa-sha256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2); ed25519-sha256
// is PureEdDSA Ed25519 over SHA-256(data) (RFC 8463 3). nullopt when
// OpenSSL fails, which a loaded, validated key only does out of memory.
[[nodiscard]] std::optional<std::string> sign(EVP_PKEY* key, DkimAlgorithm algorithm,
                                              std::string_view data);

// p= of the key record (RFC 6376 3.6.1): base64 of the DER
// SubjectPublicKeyInfo for RSA, of the raw 32-byte key for Ed25519
// (RFC 8463 4). "" if the key has no public part OpenSSL can export.
[[nodiscard]] std::string public_key_base64(EVP_PKEY* key, DkimAlgorithm algorithm);

// "v=DKIM1; k=rsa; p=..." / "v=DKIM1; k=ed25519; p=...".
[[nodiscard]] std::string key_record(EVP_PKEY* key, DkimAlgorithm algorithm);

[[nodiscard]] std::string base64(const std::uint8_t* data, std::size_t size);
[[nodiscard]] inline std::string base64(std::string_view bytes) {
    return base64(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

// Drains OpenSSL's error queue for this thread into one line ("" if empty).
[[nodiscard]] std::string openssl_errors();

} // namespace ember::auth::dkim
