#include "auth/dkim_opendkim.hpp"

#include "auth/dkim_canon.hpp"
#include "core/assert.hpp"

// dkim.h is C and says _Bool, which C++ spells bool (same ABI).
#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool

#include <openssl/bio.h>
#include <openssl/pem.h>

#include <fmt/core.h>

#include <cstring>

namespace ember::auth {
namespace {

struct DkimFree {
    void operator()(DKIM* dkim) const noexcept { dkim_free(dkim); }
};
using DkimPtr = std::unique_ptr<DKIM, DkimFree>;

const u_char* uc(const char* s) {
    return reinterpret_cast<const u_char*>(s);
}

std::string str(const unsigned char* s) {
    return s == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(s));
}

// libopendkim's callback for key records: from the map the caller passed
// as user context, never from DNS.
DKIM_CBSTAT lookup_key(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, std::size_t size) {
    const auto* records = static_cast<const DkimKeyRecords*>(dkim_get_user_context(dkim));
    const auto name = fmt::format("{}._domainkey.{}", str(dkim_sig_getselector(sig)),
                                  str(dkim_sig_getdomain(sig)));
    const auto it = records->find(ascii_lower(name));
    if (it == records->end())
        return DKIM_CBSTAT_NOTFOUND;
    if (it->second.size() + 1 > size)
        return DKIM_CBSTAT_ERROR;
    std::memcpy(buf, it->second.c_str(), it->second.size() + 1);
    return DKIM_CBSTAT_CONTINUE;
}

// Feeds the message field by field, then the body, as libopendkim wants it.
DKIM_STAT feed(DKIM* dkim, std::string_view message) {
    const auto split = dkim::split_message(message);
    std::string buffer;
    for (const auto& field : split.headers) {
        buffer.assign(field.raw);
        if (const auto st =
                dkim_header(dkim, reinterpret_cast<u_char*>(buffer.data()), buffer.size());
            st != DKIM_STAT_OK)
            return st;
    }
    if (const auto st = dkim_eoh(dkim); st != DKIM_STAT_OK)
        return st;
    buffer.assign(split.body);
    if (!buffer.empty()) {
        if (const auto st =
                dkim_body(dkim, reinterpret_cast<u_char*>(buffer.data()), buffer.size());
            st != DKIM_STAT_OK)
            return st;
    }
    bool testkey = false;
    return dkim_eom(dkim, &testkey);
}

std::optional<std::string> private_pem(EVP_PKEY* key) {
    const std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return std::nullopt;
    char* data = nullptr;
    const long size = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

template <typename T> bool set_option(DKIM_LIB* lib, int option, T value) {
    return dkim_options(lib, DKIM_OP_SETOPT, option, &value, sizeof value) == DKIM_STAT_OK;
}

// List options take the NULL-terminated array itself, not its address.
bool set_list(DKIM_LIB* lib, int option, const std::vector<std::string>& names,
              std::vector<const char*>& storage) {
    storage.clear();
    for (const auto& n : names)
        storage.push_back(n.c_str());
    storage.push_back(nullptr);
    const char** list = storage.data();
    return dkim_options(lib, DKIM_OP_SETOPT, option, static_cast<void*>(list), sizeof list) ==
           DKIM_STAT_OK;
}

dkim_canon_t canon(DkimCanon c) {
    return c == DkimCanon::Relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
}

} // namespace

void OpenDkim::Close::operator()(dkim_lib* lib) const noexcept {
    dkim_close(lib);
}

OpenDkim::OpenDkim()
    : verify_lib_(dkim_init(nullptr, nullptr)), sign_lib_(dkim_init(nullptr, nullptr)) {
    EMBER_ASSERT(verify_lib_ && sign_lib_);
    EMBER_ASSERT(dkim_set_key_lookup(verify_lib_.get(), lookup_key) == DKIM_STAT_OK);
}

OpenDkim::~OpenDkim() = default;

std::vector<OpenDkimVerdict> OpenDkim::verify(std::string_view message,
                                              const DkimKeyRecords& records) const {
    DKIM_STAT status = DKIM_STAT_OK;
    const DkimPtr dkim(dkim_verify(verify_lib_.get(), uc("ember-verify"), nullptr, &status));
    EMBER_ASSERT(dkim != nullptr);
    dkim_set_user_context(dkim.get(), const_cast<DkimKeyRecords*>(&records));
    (void)feed(dkim.get(), message); // the verdicts are per signature, below
    DKIM_SIGINFO** sigs = nullptr;
    int count = 0;
    std::vector<OpenDkimVerdict> verdicts;
    if (dkim_getsiglist(dkim.get(), &sigs, &count) != DKIM_STAT_OK)
        return verdicts;
    for (int i = 0; i < count; ++i) {
        DKIM_SIGINFO* sig = sigs[i];
        OpenDkimVerdict v;
        v.domain = str(dkim_sig_getdomain(sig));
        v.selector = str(dkim_sig_getselector(sig));
        v.pass = (dkim_sig_getflags(sig) & DKIM_SIGFLAG_PASSED) != 0 &&
                 dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH;
        if (!v.pass) {
            const int error = dkim_sig_geterror(sig);
            v.error = error == DKIM_SIGERROR_OK ? "signature or body hash mismatch"
                                                : dkim_sig_geterrorstr(error);
        }
        verdicts.push_back(std::move(v));
    }
    return verdicts;
}

std::optional<std::string> OpenDkim::sign(const DkimKey& key, std::string_view message,
                                          std::int64_t now_unix, std::string& error) {
    const auto& c = key.config;
    DKIM_LIB* lib = sign_lib_.get();
    const std::uint64_t ttl =
        c.expire_after ? static_cast<std::uint64_t>(
                             std::chrono::ceil<std::chrono::seconds>(*c.expire_after).count())
                       : 0;
    // The same header lists DkimSigner uses; libopendkim matches them
    // case-insensitively. Kept alive here in case the library keeps pointers.
    sign_headers_ = c.headers.empty() ? std::vector<std::string>(kDkimSignedHeaders.begin(),
                                                                 kDkimSignedHeaders.end())
                                      : c.headers;
    over_headers_.assign(kDkimOversignedHeaders.begin(), kDkimOversignedHeaders.end());
    const auto pem = private_pem(key.key.get());
    if (!pem || !set_option(lib, DKIM_OPTS_FIXEDTIME, static_cast<std::uint64_t>(now_unix)) ||
        !set_option(lib, DKIM_OPTS_SIGNATURETTL, ttl) ||
        !set_list(lib, DKIM_OPTS_SIGNHDRS, sign_headers_, sign_ptrs_) ||
        !set_list(lib, DKIM_OPTS_OVERSIGNHDRS, over_headers_, over_ptrs_)) {
        error = "cannot set up libopendkim";
        return std::nullopt;
    }
    DKIM_STAT status = DKIM_STAT_OK;
    const auto alg =
        c.algorithm == DkimAlgorithm::RsaSha256 ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
    std::string secret = *pem; // dkim_sign wants a mutable NUL-terminated key
    const DkimPtr dkim(
        dkim_sign(lib, uc("ember-sign"), nullptr, reinterpret_cast<dkim_sigkey_t>(secret.data()),
                  uc(c.selector.c_str()), uc(c.domain.c_str()), canon(c.canonicalization.header),
                  canon(c.canonicalization.body), alg, -1, &status));
    if (!dkim || feed(dkim.get(), message) != DKIM_STAT_OK) {
        error = fmt::format("libopendkim: {}",
                            dkim ? str(uc(dkim_geterror(dkim.get()))) : dkim_getresultstr(status));
        return std::nullopt;
    }
    // The initial width must be what dkim_eom() assumed, strlen(DKIM_SIGNHEADER)
    // as opendkim-testmsg passes: with simple header canonicalization a
    // different width folds the field differently from what was signed.
    u_char* value = nullptr;
    std::size_t size = 0;
    if (dkim_getsighdr_d(dkim.get(), std::strlen(DKIM_SIGNHEADER), &value, &size) != DKIM_STAT_OK) {
        error = "libopendkim: dkim_getsighdr_d failed";
        return std::nullopt;
    }
    return fmt::format("{}: {}\r\n", DKIM_SIGNHEADER,
                       std::string_view(reinterpret_cast<char*>(value), size));
}

} // namespace ember::auth
