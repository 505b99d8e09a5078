#include "auth/users.hpp"

#include <doctest/doctest.h>

#include <crypt.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

using ember::auth::UsersFile;
using ember::core::Diagnostics;
namespace fs = std::filesystem;

namespace {

class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("ember-users-test-" + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] std::string write(const std::string& name, const std::string& text) const {
        const auto p = path_ / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// A fresh hash of `password` with libxcrypt's default cost for `prefix`.
std::string make_hash(const char* prefix, const std::string& password) {
    std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> salt{};
    REQUIRE(crypt_gensalt_rn(prefix, 0, nullptr, 0, salt.data(), salt.size()) != nullptr);
    crypt_data data{};
    const char* hash = crypt_rn(password.c_str(), salt.data(), &data, sizeof data);
    REQUIRE(hash != nullptr);
    return hash;
}

// Well-formed sample hashes of methods ember refuses (from mkpasswd).
constexpr const char* kMd5 = "$1$UhVnBhPS$ivKkIwmbRJOIFekXFYU9b0";
constexpr const char* kDes = "HwbwoGZFh8Rwo";
constexpr const char* kNt = "$3$$a9f0dd57e1edab5bb55a9ac0a99c15ec";
constexpr const char* kBcryptA = "$2a$05$mHd5jtAGUInM1XklHFKOMe.aaqagGF1eY3.cYsH4CSw.fK.rfV9Jq";
constexpr const char* kSunMd5 = "$md5,rounds=78154$lsPybkDA$$qHhmzT4FF1Fu6lIE./6NR1";
constexpr const char* kBsdi = "_J9..spHRvnx/8mc5x/U";
constexpr const char* kSha256 = "$5$7b/joFYzzgeqmSFj$aZ3yg95ZN1DiAUouErfgCJDNsqriZAH/8MrkEsBGsOC";
constexpr const char* kGoodYescrypt =
    "$y$j9T$6ZVWj.w75fIbtfEiafEdC/$fK4wd.peM3aKNh8yna7L25VN1cLEMSCKjHJg9/5uZeD";

} // namespace

TEST_CASE("users hashed with yescrypt and sha512-crypt verify only with their own password") {
    TempDir dir;
    const auto alice = make_hash("$y$", "correct horse");
    const auto bob = make_hash("$6$", "battery staple");
    const auto path = dir.write("users", "# ember users\n\n   # indented comment\nalice:" + alice +
                                             ":1000:1000::/home/alice\r\nbob:" + bob + "\n");
    Diagnostics diag;
    const auto users = UsersFile::load(path, diag);
    CAPTURE(diag.to_string());
    REQUIRE(users);
    CHECK(diag.empty());
    CHECK(users->size() == 2);
    CHECK(users->verify("alice", "correct horse"));
    CHECK(users->verify("bob", "battery staple"));
    CHECK_FALSE(users->verify("alice", "battery staple"));
    CHECK_FALSE(users->verify("bob", "correct horse"));
    CHECK_FALSE(users->verify("alice", ""));
    CHECK_FALSE(users->verify("Alice", "correct horse"));
    CHECK_FALSE(users->verify("carol", "correct horse"));
}

TEST_CASE("a password with a NUL octet never matches the password before the NUL") {
    TempDir dir;
    const auto path = dir.write("users", "alice:" + make_hash("$6$", "secret") + "\n");
    Diagnostics diag;
    const auto users = UsersFile::load(path, diag);
    REQUIRE(users);
    CHECK(users->verify("alice", "secret"));
    CHECK_FALSE(users->verify("alice", std::string("secret\0more", 11)));
}

TEST_CASE("verify may run on several threads at once") {
    TempDir dir;
    const auto path = dir.write("users", "alice:" + make_hash("$6$", "one") +
                                             "\nbob:" + make_hash("$6$", "two") + "\n");
    Diagnostics diag;
    const auto users = UsersFile::load(path, diag);
    REQUIRE(users);
    std::array<int, 2> good{};
    std::thread t1([&] {
        for (int i = 0; i < 20; ++i)
            good[0] += users->verify("alice", "one") ? 1 : 0;
    });
    std::thread t2([&] {
        for (int i = 0; i < 20; ++i)
            good[1] += users->verify("bob", "two") && !users->verify("bob", "one") ? 1 : 0;
    });
    t1.join();
    t2.join();
    CHECK(good[0] == 20);
    CHECK(good[1] == 20);
}

TEST_CASE("a hash made by mkpasswd -m yescrypt verifies") {
    if (::access("/usr/bin/mkpasswd", X_OK) != 0) {
        MESSAGE("mkpasswd (Debian package whois) is not installed: skipped");
        return;
    }
    FILE* pipe = ::popen("printf 'pa55 word' | /usr/bin/mkpasswd -m yescrypt --stdin", "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 512> buf{};
    const bool got = std::fgets(buf.data(), buf.size(), pipe) != nullptr;
    ::pclose(pipe);
    REQUIRE(got);
    std::string hash(buf.data());
    if (hash.ends_with('\n'))
        hash.pop_back();
    CAPTURE(hash);
    REQUIRE(hash.starts_with("$y$"));

    TempDir dir;
    Diagnostics diag;
    const auto users = UsersFile::load(dir.write("users", "mk:" + hash + "\n"), diag);
    CAPTURE(diag.to_string());
    REQUIRE(users);
    CHECK(users->verify("mk", "pa55 word"));
    CHECK_FALSE(users->verify("mk", "pa55word"));
}

TEST_CASE("every bad line is reported at its line, and the file is refused") {
    struct Case {
        std::string line;
        std::string want;
    };
    const std::string rehash = "rehash it with `mkpasswd -m yescrypt`";
    const std::vector<Case> cases{
        {"bob", "expected user:hash"},
        {std::string(":") + kGoodYescrypt, "empty user name"},
        {std::string("b ob:") + kGoodYescrypt, "user name contains a space or a control character"},
        {std::string("b\tob:") + kGoodYescrypt,
         "user name contains a space or a control character"},
        {std::string("alice:") + kGoodYescrypt, "duplicate user 'alice' (first on line 1)"},
        {"bob:", "user 'bob': empty password hash"},
        {"bob::1000", "user 'bob': empty password hash"},
        {std::string("bob:{SHA512-CRYPT}") + kGoodYescrypt,
         "user 'bob': password scheme prefixes like {SHA512-CRYPT} are not supported; write the "
         "bare crypt(3) hash"},
        {std::string("bob:") + kMd5, "user 'bob': weak password hash (MD5-crypt); " + rehash},
        {std::string("bob:") + kDes, "user 'bob': weak password hash (DES-crypt); " + rehash},
        {std::string("bob:") + kNt, "user 'bob': weak password hash (NT hash); " + rehash},
        {std::string("bob:") + kBcryptA,
         "user 'bob': weak password hash (bcrypt $2a$, obsolete); " + rehash},
        {std::string("bob:") + kSunMd5, "user 'bob': weak password hash (SunMD5); " + rehash},
        {"bob:$sha1$40000$abcdefgh$abcdefghijklmnopqrstuvwxyzAB",
         "user 'bob': weak password hash (sha1-crypt); " + rehash},
        {std::string("bob:") + kBsdi, "user 'bob': weak password hash (BSDI DES-crypt); " + rehash},
        {"bob:$6$", "user 'bob': malformed sha512-crypt hash"},
        {"bob:$y$garbage", "user 'bob': malformed yescrypt hash"},
        {"bob:$2b$05$abc def$xyz", "user 'bob': malformed bcrypt hash"},
        {"bob:plaintext-password",
         "user 'bob': unrecognised password hash; use yescrypt ($y$) or sha512-crypt ($6$): " +
             rehash},
        {"bob:*", "user 'bob': unrecognised password hash; use yescrypt ($y$) or sha512-crypt "
                  "($6$): " +
                      rehash},
    };
    TempDir dir;
    for (const auto& c : cases) {
        CAPTURE(c.line);
        const auto path = dir.write("users", std::string("alice:") + kGoodYescrypt + "\n" + c.line +
                                                 "\n# trailing comment\n");
        Diagnostics diag;
        const auto users = UsersFile::load(path, diag);
        CHECK_FALSE(users);
        const auto got = diag.to_string();
        const auto want = path + ":2: " + c.want + "\n";
        CHECK(got == want);
    }
}

TEST_CASE("several bad lines are all reported in line order") {
    TempDir dir;
    const auto path = dir.write("users", std::string("a\n") + "b:" + kMd5 + "\n" +
                                             "c:" + kGoodYescrypt + "\n:x\n");
    Diagnostics diag;
    CHECK_FALSE(UsersFile::load(path, diag));
    const auto all = diag.sorted();
    REQUIRE(all.size() == 3);
    CHECK(all[0].line == 1);
    CHECK(all[1].line == 2);
    CHECK(all[2].line == 4);
}

TEST_CASE("sha256-crypt is accepted only where libxcrypt does not call it legacy") {
    TempDir dir;
    const auto path = dir.write("users", std::string("bob:") + kSha256 + "\n");
    Diagnostics diag;
    const auto users = UsersFile::load(path, diag);
    if (crypt_checksalt(kSha256) == CRYPT_SALT_OK) {
        CHECK(users);
        CHECK(diag.empty());
    } else {
        CHECK_FALSE(users);
        CHECK(diag.to_string() ==
              path + ":1: user 'bob': sha256-crypt is disabled or marked legacy by this system's "
                     "libxcrypt; rehash it with `mkpasswd -m yescrypt`\n");
    }
}

TEST_CASE("an empty file and a file of comments load with no users") {
    TempDir dir;
    Diagnostics diag;
    const auto empty = UsersFile::load(dir.write("empty", ""), diag);
    const auto comments = UsersFile::load(dir.write("comments", "# nobody yet\n\n"), diag);
    CHECK(diag.empty());
    REQUIRE(empty);
    REQUIRE(comments);
    CHECK(empty->size() == 0);
    CHECK(comments->size() == 0);
    CHECK_FALSE(empty->verify("root", ""));
}

TEST_CASE("a missing or unreadable users file is one error naming the file") {
    TempDir dir;
    const auto missing = (dir.path() / "missing").string();
    Diagnostics diag;
    CHECK_FALSE(UsersFile::load(missing, diag));
    CHECK(diag.to_string() == missing + ": cannot read users file: No such file or directory\n");

    Diagnostics dir_diag;
    CHECK_FALSE(UsersFile::load(dir.path().string(), dir_diag));
    CHECK(dir_diag.to_string() ==
          dir.path().string() + ": cannot read users file: Is a directory\n");
}
