#pragma once
// libopendkim, the reference DKIM implementation, behind RAII: ember checks
// its own signatures against it (tests), measures its signer against it
// (bench/dkim-bench), and tools can verify a message without DNS.
// `<opendkim/dkim.h>` is included by the .cpp only.
//
// verify() serves key records from a map instead of DNS (libopendkim's key
// lookup callback), so a test needs no resolver. sign() signs the way
// libopendkim signs (it parses the PEM key on every call: that cost is why
// DkimSigner does not use it; see dkim_signer.hpp). Debian's libopendkim
// 2.11.0~beta2 leaks the key of every Ed25519 signature it makes and signs
// Ed25519 with simple/simple wrongly (dkimpy rejects those too): sign() with
// Ed25519 is for the benchmark only. Its RSA signing and all verification
// are sound and are what the tests rely on.
//
// Threading: verify() is safe from several threads (the library handle is
// only read, each call has its own DKIM handle); sign() sets library-wide
// options (fixed time, header lists) and must not run concurrently with
// another sign() on the same object.

#include "auth/dkim_keys.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct dkim_lib; // DKIM_LIB

namespace ember::auth {

// DNS name ("s1._domainkey.example.com") -> TXT record text.
using DkimKeyRecords = std::map<std::string, std::string, std::less<>>;

struct OpenDkimVerdict {
    std::string domain;   // d=
    std::string selector; // s=
    bool pass = false;    // signature and body hash both verified
    std::string error;    // libopendkim's reason when it did not pass
};

class OpenDkim {
public:
    OpenDkim();
    ~OpenDkim();
    OpenDkim(const OpenDkim&) = delete;
    OpenDkim& operator=(const OpenDkim&) = delete;

    // One verdict per DKIM-Signature in `message`, in message order.
    [[nodiscard]] std::vector<OpenDkimVerdict> verify(std::string_view message,
                                                      const DkimKeyRecords& records) const;

    // libopendkim's own DKIM-Signature field (with CRLF) for `message`, over
    // the same header lists DkimSigner uses; nullopt with `error` set.
    [[nodiscard]] std::optional<std::string> sign(const DkimKey& key, std::string_view message,
                                                  std::int64_t now_unix, std::string& error);

private:
    struct Close {
        void operator()(dkim_lib* lib) const noexcept;
    };
    std::unique_ptr<dkim_lib, Close> verify_lib_;
    std::unique_ptr<dkim_lib, Close> sign_lib_;
    std::vector<std::string> sign_headers_, over_headers_;
    std::vector<const char*> sign_ptrs_, over_ptrs_;
};

} // namespace ember::auth
