#include "auth/dkim_crypto.hpp"

#include "core/assert.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <fmt/core.h>

#include <vector>

namespace ember::auth::dkim {
namespace {

// Fetched once: an implicit fetch per digest (EVP_sha256()) takes OpenSSL
// 3.0's method-store lock on every message.
const EVP_MD* sha256_md() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EMBER_ASSERT(md != nullptr);
    return md;
}

std::optional<std::string> sign_once(EVP_PKEY* key, const EVP_MD* md, std::string_view data) {
    const std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key) != 1)
        return std::nullopt;
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t size = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &size, in, data.size()) != 1)
        return std::nullopt;
    std::string out(size, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &size, in,
                       data.size()) != 1)
        return std::nullopt;
    out.resize(size);
    return out;
}

} // namespace

void EvpPkeyFree::operator()(EVP_PKEY* key) const noexcept {
    EVP_PKEY_free(key);
}
void EvpMdCtxFree::operator()(EVP_MD_CTX* ctx) const noexcept {
    EVP_MD_CTX_free(ctx);
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
    EMBER_ASSERT(ctx_ && EVP_DigestInit_ex(ctx_.get(), sha256_md(), nullptr) == 1);
}

void Sha256Hasher::update(std::string_view bytes) {
    if (!bytes.empty())
        EMBER_ASSERT(EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) == 1);
}

Sha256 Sha256Hasher::finish() {
    Sha256 out{};
    unsigned int size = 0;
    EMBER_ASSERT(EVP_DigestFinal_ex(ctx_.get(), out.data(), &size) == 1 && size == out.size());
    return out;
}

Sha256 sha256(std::string_view bytes) {
    Sha256Hasher hasher;
    hasher.update(bytes);
    return hasher.finish();
}

std::optional<std::string> sign(EVP_PKEY* key, DkimAlgorithm algorithm, std::string_view data) {
    if (algorithm == DkimAlgorithm::RsaSha256)
        return sign_once(key, sha256_md(), data);
    const Sha256 digest = sha256(data);
    return sign_once(key, nullptr,
                     std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string public_key_base64(EVP_PKEY* key, DkimAlgorithm algorithm) {
    if (algorithm == DkimAlgorithm::Ed25519Sha256) {
        std::array<std::uint8_t, 32> raw{};
        std::size_t size = raw.size();
        if (EVP_PKEY_get_raw_public_key(key, raw.data(), &size) != 1 || size != raw.size())
            return {};
        return base64(raw.data(), raw.size());
    }
    const int size = i2d_PUBKEY(key, nullptr);
    if (size <= 0)
        return {};
    std::vector<std::uint8_t> der(static_cast<std::size_t>(size));
    auto* out = der.data();
    if (i2d_PUBKEY(key, &out) != size)
        return {};
    return base64(der.data(), der.size());
}

std::string key_record(EVP_PKEY* key, DkimAlgorithm algorithm) {
    const auto p = public_key_base64(key, algorithm);
    if (p.empty())
        return {};
    return fmt::format("v=DKIM1; k={}; p={}",
                       algorithm == DkimAlgorithm::RsaSha256 ? "rsa" : "ed25519", p);
}

std::string base64(const std::uint8_t* data, std::size_t size) {
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    const int n =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string openssl_errors() {
    std::string out;
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buf{};
        ERR_error_string_n(code, buf.data(), buf.size());
        if (!out.empty())
            out += "; ";
        out += buf.data();
    }
    return out;
}

} // namespace ember::auth::dkim
