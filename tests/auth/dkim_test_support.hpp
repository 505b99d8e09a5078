#pragma once
// Shared by the DKIM tests: a temp dir that cleans up, keys generated once
// per test binary with dkim_keygen (RSA generation costs ~0.1 s each), key
// records for the verifiers, and a runner for dkimpy as an outside verifier.

#include "auth/dkim_keygen.hpp"
#include "auth/dkim_keys.hpp"
#include "auth/dkim_opendkim.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace ember::auth::test {

namespace fs = std::filesystem;

class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() /
                ("ember-dkim-test-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] std::string file(const std::string& name) const {
        return (path_ / name).string();
    }
    [[nodiscard]] std::string write(const std::string& name, const std::string& text,
                                    fs::perms perms = fs::perms::owner_read |
                                                      fs::perms::owner_write) const {
        const auto p = file(name);
        std::ofstream(p, std::ios::binary) << text;
        fs::permissions(p, perms);
        return p;
    }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

inline DkimKeyConfig key_config(std::string domain, std::string selector,
                                DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256) {
    DkimKeyConfig c;
    c.domain = std::move(domain);
    c.selector = std::move(selector);
    c.algorithm = algorithm;
    return c;
}

// Generates a key file in `dir` and loads it with `config` (key path set here).
inline DkimKey generate_key(const TempDir& dir, DkimKeyConfig config, unsigned bits = 2048) {
    config.key = dir.file(config.domain + "." + config.selector + ".pem");
    std::string error;
    const auto generated = generate_dkim_key(
        {config.domain, config.selector, config.algorithm, bits, config.key}, error);
    INFO(error);
    REQUIRE(generated.has_value());
    core::Diagnostics diag;
    auto key = load_dkim_key(config, "test.toml", 1, diag);
    INFO(diag.to_string());
    REQUIRE(key.has_value());
    return std::move(*key);
}

// One RSA-2048 and one Ed25519 key for example.com, made once per binary.
struct SharedKeys {
    TempDir dir;
    DkimKey rsa = generate_key(dir, key_config("example.com", "rsa1"));
    DkimKey ed = generate_key(dir, key_config("example.com", "ed1", DkimAlgorithm::Ed25519Sha256));
};

inline const SharedKeys& shared_keys() {
    static const SharedKeys keys;
    return keys;
}

// The same key material under another domain, selector or policy.
inline DkimKey with_config(const DkimKey& key, const std::string& domain,
                           const std::string& selector) {
    DkimKey copy = key;
    copy.config.domain = domain;
    copy.config.selector = selector;
    return copy;
}

inline DkimKeyRecords records_for(const std::vector<const DkimKey*>& keys) {
    DkimKeyRecords records;
    for (const auto* k : keys)
        records[k->dns_name()] = k->record;
    return records;
}

// A typical bulk message: CRLF, a folded header, a List-Unsubscribe pair.
inline std::string sample_message(const std::string& from_domain = "example.com",
                                  const std::string& body = "Hello,\r\n\r\nThe news.\r\n") {
    return "Received: from app.example.com by mta.example.com; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           "From: News <news@" +
           from_domain +
           ">\r\n"
           "To: reader@example.org\r\n"
           "Subject: This week at example,\r\n\tfolded onto a second line\r\n"
           "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           "Message-ID: <1@example.com>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "List-Unsubscribe: <https://example.com/u/1>\r\n"
           "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
           "X-Campaign: 42\r\n"
           "\r\n" +
           body;
}

// dkimpy (python3-dkim) verifies signature number `index` of `message`,
// with key records served by a dnsfunc instead of DNS.
inline bool dkimpy_verifies(const std::string& message, const DkimKeyRecords& records,
                            int index = 0) {
    TempDir dir;
    const auto msg = dir.write("msg.eml", message);
    std::string recs;
    for (const auto& [name, txt] : records)
        recs += name + "\t" + txt + "\n";
    const auto rec = dir.write("records.tsv", recs);
    const auto script = dir.write("verify.py", R"(import sys, dkim
records = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip())
def dns(name, timeout=5):
    return records.get(name.decode().rstrip(".").lower(), "").encode()
msg = open(sys.argv[1], "rb").read()
try:
    ok = dkim.DKIM(msg).verify(idx=int(sys.argv[3]), dnsfunc=dns)
except dkim.DKIMException as e:
    print("dkimpy:", e)
    ok = False
sys.exit(0 if ok else 1)
)");
    const auto cmd = "/usr/bin/python3 " + script + " " + msg + " " + rec + " " +
                     std::to_string(index) + " 2>&1";
    const int status = std::system(cmd.c_str());
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

} // namespace ember::auth::test
