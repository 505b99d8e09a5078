#pragma once
// SMTP AUTH credentials: the users file, one `user:hash` per line, like
// Dovecot's passwd-file (fields after the hash are ignored; '#' comments and
// blank lines are skipped). The hash is a crypt(3) string from libxcrypt.
//
// Only hashes that are still considered strong are accepted: yescrypt ($y$),
// gost-yescrypt ($gy$), scrypt ($7$), bcrypt ($2b$, $2y$), sha512-crypt ($6$)
// and sha256-crypt ($5$), and only when this system's libxcrypt also calls
// the setting CRYPT_SALT_OK (Debian 12 marks $5$ as legacy, so it is refused
// there). DES, MD5-crypt, NT and the other legacy methods are load errors:
// a file that silently keeps weak hashes is worse than one that fails.
//
// load() does no hashing (it would cost ~50 ms per yescrypt user); a hash
// that is well-formed but corrupt simply never verifies.
//
// verify() is CPU-heavy by design (yescrypt): call it off the event loop,
// through core/async.hpp offload(). It is thread-safe (crypt_rn with a
// per-call buffer, no static state); a loaded UsersFile is immutable.

#include "core/diagnostics.hpp"

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ember::auth {

class UsersFile {
public:
    // Every problem is added to `diag` as `path:line: message` (or `path: message`
    // when the file cannot be read); nullopt when there was any.
    [[nodiscard]] static std::optional<UsersFile> load(const std::string& path,
                                                       core::Diagnostics& diag);

    // True only when `user` exists and `password` hashes to its stored hash.
    // An unknown user costs the same yescrypt computation as a known one, so
    // the reply time does not tell which users exist.
    [[nodiscard]] bool verify(std::string_view user, std::string_view password) const;

    [[nodiscard]] std::size_t size() const { return users_.size(); }

private:
    std::map<std::string, std::string, std::less<>> users_; // user -> crypt hash
};

} // namespace ember::auth
