#include "auth/users.hpp"

#include <crypt.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

namespace ember::auth {
namespace {

// A yescrypt hash (default cost j9T, what `mkpasswd -m yescrypt` makes) of a
// random password nobody knows. Unknown users are checked against it so they
// cost the same as users hashed with yescrypt's default cost.
constexpr std::string_view kDummyHash =
    "$y$j9T$niSRap8q7E0YDyXnTrjeA/$gK8xAFMyhEJOkMOLtf6T4nAA1k0p7ZLw69IBjhH4F6D";

struct Scheme {
    std::string_view prefix;
    std::string_view name;
    bool strong;
};

// Longer prefixes never hide behind shorter ones here: no prefix is a prefix
// of another in this list.
constexpr std::array<Scheme, 13> kSchemes{{
    {"$y$", "yescrypt", true},
    {"$gy$", "gost-yescrypt", true},
    {"$7$", "scrypt", true},
    {"$2b$", "bcrypt", true},
    {"$2y$", "bcrypt", true},
    {"$6$", "sha512-crypt", true},
    {"$5$", "sha256-crypt", true},
    {"$2a$", "bcrypt $2a$, obsolete", false},
    {"$1$", "MD5-crypt", false},
    {"$3$", "NT hash", false},
    {"$md5", "SunMD5", false},
    {"$sha1$", "sha1-crypt", false},
    {"_", "BSDI DES-crypt", false},
}};

constexpr std::string_view kRehash = "rehash it with `mkpasswd -m yescrypt`";

bool is_crypt_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
}

// Traditional DES-crypt: 13 characters of the crypt alphabet, no '$'.
bool looks_like_des(std::string_view hash) {
    if (hash.size() != 13)
        return false;
    for (const char c : hash) {
        if (!is_crypt_char(c))
            return false;
    }
    return true;
}

// `$id$[params$]salt$hash`: at least three '$', a non-empty last field, and
// only the characters crypt(3) writes. crypt_checksalt() looks at the prefix
// only, so "$6$" alone would pass it.
bool well_formed(std::string_view hash) {
    std::size_t dollars = 0;
    for (const char c : hash) {
        if (c == '$')
            ++dollars;
        else if (!is_crypt_char(c) && c != '=')
            return false;
    }
    return dollars >= 3 && hash.back() != '$';
}

std::optional<std::string> hash_problem(std::string_view hash) {
    if (hash.empty())
        return "empty password hash";
    if (hash.front() == '{')
        return "password scheme prefixes like {SHA512-CRYPT} are not supported; write the bare "
               "crypt(3) hash";
    for (const auto& s : kSchemes) {
        if (!hash.starts_with(s.prefix))
            continue;
        if (!s.strong)
            return fmt::format("weak password hash ({}); {}", s.name, kRehash);
        if (!well_formed(hash))
            return fmt::format("malformed {} hash", s.name);
        if (crypt_checksalt(std::string(hash).c_str()) != CRYPT_SALT_OK)
            return fmt::format("{} is disabled or marked legacy by this system's libxcrypt; {}",
                               s.name, kRehash);
        return std::nullopt;
    }
    if (looks_like_des(hash))
        return fmt::format("weak password hash (DES-crypt); {}", kRehash);
    return fmt::format("unrecognised password hash; use yescrypt ($y$) or sha512-crypt ($6$): {}",
                       kRehash);
}

bool valid_user_name(std::string_view user) {
    for (const char c : user) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f)
            return false;
    }
    return true;
}

// The whole file, or errno.
int read_whole_file(const std::string& path, std::string& out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    std::array<char, 8192> buf{};
    int error = 0;
    for (;;) {
        const auto n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            error = errno;
        if (n <= 0)
            break;
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fd);
    return error;
}

// Compares every octet whatever the first difference, so the time taken
// does not say how much of a guessed hash was right.
bool equal_constant_time(std::string_view a, std::string_view b) {
    unsigned diff = a.size() == b.size() ? 0U : 1U;
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0U;
        const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0U;
        diff |= x ^ y;
    }
    return diff == 0;
}

bool hash_matches(std::string_view password, std::string_view hash) {
    std::string phrase(password);
    const std::string setting(hash);
    // crypt(3) stops at NUL; a password holding one must never match a
    // shorter one. Still hash, so the time does not depend on it.
    const bool has_nul = phrase.find('\0') != std::string::npos;
    auto data = std::make_unique<crypt_data>(); // zeroed, as crypt_rn requires
    const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof *data);
    const bool match = out != nullptr && equal_constant_time(out, hash);
    explicit_bzero(data.get(), sizeof *data);
    explicit_bzero(phrase.data(), phrase.size());
    return match && !has_nul;
}

struct Loader {
    const std::string& path;
    core::Diagnostics& diag;
    std::map<std::string, std::string, std::less<>>& users;
    std::map<std::string, std::uint32_t, std::less<>> first_line{};

    void line(std::string_view text, std::uint32_t number) {
        if (text.ends_with('\r'))
            text.remove_suffix(1);
        const auto first = text.find_first_not_of(" \t");
        if (first == std::string_view::npos || text[first] == '#')
            return;
        const auto colon = text.find(':');
        if (colon == std::string_view::npos) {
            diag.add(path, number, "expected user:hash");
            return;
        }
        const auto user = text.substr(0, colon);
        auto hash = text.substr(colon + 1);
        hash = hash.substr(0, hash.find(':')); // Dovecot's extra fields are ignored
        add(user, hash, number);
    }

    void add(std::string_view user, std::string_view hash, std::uint32_t number) {
        if (user.empty()) {
            diag.add(path, number, "empty user name");
            return;
        }
        if (!valid_user_name(user)) {
            diag.add(path, number, "user name contains a space or a control character");
            return;
        }
        if (const auto it = first_line.find(user); it != first_line.end()) {
            diag.add(path, number,
                     fmt::format("duplicate user '{}' (first on line {})", user, it->second));
            return;
        }
        first_line.emplace(std::string(user), number);
        if (const auto problem = hash_problem(hash)) {
            diag.add(path, number, fmt::format("user '{}': {}", user, *problem));
            return;
        }
        users.emplace(std::string(user), std::string(hash));
    }
};

} // namespace

std::optional<UsersFile> UsersFile::load(const std::string& path, core::Diagnostics& diag) {
    std::string text;
    if (const int error = read_whole_file(path, text); error != 0) {
        diag.add(path, 0, fmt::format("cannot read users file: {}", std::strerror(error)));
        return std::nullopt;
    }
    UsersFile file;
    const auto errors_before = diag.size();
    Loader loader{path, diag, file.users_};
    std::uint32_t number = 0;
    std::string_view rest(text);
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        loader.line(rest.substr(0, end), ++number);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
    if (diag.size() != errors_before)
        return std::nullopt;
    return file;
}

bool UsersFile::verify(std::string_view user, std::string_view password) const {
    const auto it = users_.find(user);
    const bool known = it != users_.end();
    const bool match = hash_matches(password, known ? std::string_view(it->second) : kDummyHash);
    return known && match;
}

} // namespace ember::auth
