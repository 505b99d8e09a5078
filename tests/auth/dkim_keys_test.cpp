#include "auth/dkim_keys.hpp"

#include "tests/auth/dkim_test_support.hpp"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <memory>
#include <string>

using namespace ember::auth;
using ember::auth::test::TempDir;
using ember::core::Diagnostics;
namespace fs = std::filesystem;

namespace {

std::string pem_of(EVP_PKEY* key, bool encrypted = false) {
    const std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new(BIO_s_mem()), BIO_free);
    const EVP_CIPHER* cipher = encrypted ? EVP_aes_128_cbc() : nullptr;
    static char pass[] = "secret";
    REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key, cipher, nullptr, 0, nullptr,
                                     encrypted ? pass : nullptr) == 1);
    char* data = nullptr;
    const long size = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string rsa_pem(unsigned bits) {
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)), EVP_PKEY_free);
    REQUIRE(key != nullptr);
    return pem_of(key.get());
}

std::string ed25519_pem() {
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
    REQUIRE(key != nullptr);
    return pem_of(key.get());
}

DkimKeyConfig config_for(const std::string& key_path,
                         DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256) {
    auto c = test::key_config("example.com", "s1", algorithm);
    c.key = key_path;
    return c;
}

// Loads `config` at line 7 of ember.toml; returns the diagnostics text.
std::string load_errors(const DkimKeyConfig& config) {
    Diagnostics diag;
    const auto key = load_dkim_key(config, "ember.toml", 7, diag);
    CHECK(key.has_value() == diag.empty());
    return diag.to_string();
}

} // namespace

TEST_CASE("an RSA-2048 and an Ed25519 key load with their bits and the record to publish") {
    const auto& keys = test::shared_keys();
    CHECK(keys.rsa.bits == 2048);
    CHECK(keys.rsa.record.rfind("v=DKIM1; k=rsa; p=MII", 0) == 0);
    CHECK(keys.rsa.dns_name() == "rsa1._domainkey.example.com");
    CHECK(keys.ed.bits == 256);
    CHECK(keys.ed.record.rfind("v=DKIM1; k=ed25519; p=", 0) == 0);
    CHECK(keys.ed.record.size() == std::string("v=DKIM1; k=ed25519; p=").size() + 44);
}

TEST_CASE("domain and selector are lower-cased when a key loads") {
    TempDir dir;
    auto c = config_for(dir.write("k.pem", ed25519_pem()), DkimAlgorithm::Ed25519Sha256);
    c.domain = "News.Example.COM";
    c.selector = "S2026";
    Diagnostics diag;
    const auto key = load_dkim_key(c, "ember.toml", 3, diag);
    REQUIRE(key.has_value());
    CHECK(key->config.domain == "news.example.com");
    CHECK(key->dns_name() == "s2026._domainkey.news.example.com");
}

TEST_CASE("a key file that cannot serve its [[dkim]] entry is a config error at its line") {
    TempDir dir;
    const auto garbage = dir.write("garbage.pem", "this is not a key\n");
    const auto weak = dir.write("weak.pem", rsa_pem(1024));
    const auto ed = dir.write("ed.pem", ed25519_pem());
    const auto rsa = dir.write("rsa.pem", rsa_pem(2048));
    const auto open = dir.write("open.pem", ed25519_pem(),
                                fs::perms::owner_read | fs::perms::owner_write |
                                    fs::perms::group_read | fs::perms::others_read);
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), EVP_PKEY_free);
    const auto encrypted = dir.write("enc.pem", pem_of(key.get(), true));
    fs::create_directory(dir.file("a-directory"));
    struct Case {
        DkimKeyConfig config;
        std::string want;
    };
    const std::vector<Case> cases{
        {config_for(dir.file("missing.pem")), "cannot open: No such file or directory"},
        {config_for(dir.file("a-directory")), "not a regular file"},
        {config_for(garbage), "not a PEM private key"},
        {config_for(weak), "RSA key of 1024 bits is too weak"},
        {config_for(ed), "rsa-sha256 needs an RSA key, this is an Ed25519 key"},
        {config_for(rsa, DkimAlgorithm::Ed25519Sha256),
         "ed25519-sha256 needs an Ed25519 key, this is an RSA key"},
        {config_for(open, DkimAlgorithm::Ed25519Sha256), "mode 0644 lets other users"},
        {config_for(encrypted, DkimAlgorithm::Ed25519Sha256), "encrypted private keys"},
        {config_for(""), "key (the private key file) is required"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.config.key);
        const auto got = load_errors(c.config);
        CAPTURE(got);
        CHECK(got.rfind("ember.toml:7: [[dkim]] domain \"example.com\" selector \"s1\": ", 0) == 0);
        CHECK(got.find(c.want) != std::string::npos);
    }
}

TEST_CASE("a key file its owner cannot read is a config error") {
    if (::geteuid() == 0)
        return; // root reads any file; the directory case above covers read errors
    TempDir dir;
    const auto path = dir.write("k.pem", ed25519_pem(), fs::perms::none);
    CHECK(load_errors(config_for(path, DkimAlgorithm::Ed25519Sha256)).find("Permission denied") !=
          std::string::npos);
}

TEST_CASE("bad names, windows and header lists in a [[dkim]] entry are config errors") {
    TempDir dir;
    const auto path = dir.write("k.pem", ed25519_pem());
    const auto base = config_for(path, DkimAlgorithm::Ed25519Sha256);
    struct Case {
        std::string what;
        DkimKeyConfig config;
        std::string want;
    };
    std::vector<Case> cases;
    auto c = base;
    c.domain = "localhost";
    cases.push_back({"single label domain", c, "domain must be a host name"});
    c = base;
    c.domain = "exa mple.com";
    cases.push_back({"space in domain", c, "domain must be a host name"});
    c = base;
    c.selector = "-s1";
    cases.push_back({"selector with leading hyphen", c, "selector must be"});
    c = base;
    c.selector = "";
    cases.push_back({"empty selector", c, "selector must be"});
    c = base;
    c.not_before = 2000;
    c.not_after = 1000;
    cases.push_back({"window backwards", c, "not_before must be earlier than not_after"});
    c = base;
    c.expire_after = std::chrono::milliseconds(10);
    cases.push_back({"x= under a second", c, "expire_after must be at least 1s"});
    c = base;
    c.headers = {"Subject", "To"};
    cases.push_back({"no From", c, "headers must include From"});
    c = base;
    c.headers = {"From", "DKIM-Signature"};
    cases.push_back({"signing signatures", c, "DKIM-Signature changes in transit"});
    c = base;
    c.headers = {"From", "Bad:Name"};
    cases.push_back({"colon in name", c, "is not a header field name"});
    for (const auto& k : cases) {
        CAPTURE(k.what);
        const auto got = load_errors(k.config);
        CAPTURE(got);
        CHECK(got.find(k.want) != std::string::npos);
    }
}

TEST_CASE("load_dkim_keys reports every bad entry at its own line and loads nothing then") {
    TempDir dir;
    const auto ed = dir.write("ed.pem", ed25519_pem());
    auto good = config_for(ed, DkimAlgorithm::Ed25519Sha256);
    good.line = 10;
    auto missing = config_for(dir.file("missing.pem"));
    missing.selector = "s2";
    missing.line = 20;
    auto duplicate = good;
    duplicate.domain = "EXAMPLE.com";
    duplicate.line = 30;
    Diagnostics diag;
    const auto keys = load_dkim_keys({good, missing, duplicate}, "ember.toml", diag);
    CHECK_FALSE(keys.has_value());
    const auto text = diag.to_string();
    CAPTURE(text);
    CHECK(text.find("ember.toml:20:") != std::string::npos);
    CHECK(text.find("ember.toml:30:") != std::string::npos);
    CHECK(text.find("already uses this domain and selector") != std::string::npos);
    CHECK(text.find("ember.toml:10:") == std::string::npos);
}

TEST_CASE("load_dkim_keys returns every key when all entries are good") {
    TempDir dir;
    auto a = config_for(dir.write("a.pem", ed25519_pem()), DkimAlgorithm::Ed25519Sha256);
    auto b = config_for(dir.write("b.pem", rsa_pem(2048)));
    b.selector = "s2";
    Diagnostics diag;
    const auto keys = load_dkim_keys({a, b}, "ember.toml", diag);
    INFO(diag.to_string());
    REQUIRE(keys.has_value());
    REQUIRE(keys->size() == 2);
    CHECK((*keys)[0].config.algorithm == DkimAlgorithm::Ed25519Sha256);
    CHECK((*keys)[1].bits == 2048);
}

TEST_CASE("a key is valid from not_before up to, not including, not_after") {
    DkimKey key;
    key.config.not_before = 100;
    key.config.not_after = 200;
    CHECK_FALSE(key.valid_at(99));
    CHECK(key.valid_at(100));
    CHECK(key.valid_at(199));
    CHECK_FALSE(key.valid_at(200));
    key.config.not_before.reset();
    key.config.not_after.reset();
    CHECK(key.valid_at(0));
}

TEST_CASE("config values for [[dkim]] parse and print back") {
    CHECK(parse_dkim_algorithm("rsa-sha256") == DkimAlgorithm::RsaSha256);
    CHECK(parse_dkim_algorithm("ed25519-sha256") == DkimAlgorithm::Ed25519Sha256);
    CHECK_FALSE(parse_dkim_algorithm("rsa-sha1").has_value());
    const auto canon = parse_dkim_canonicalization("simple/relaxed");
    REQUIRE(canon.has_value());
    CHECK(canon->header == DkimCanon::Simple);
    CHECK(canon->body == DkimCanon::Relaxed);
    CHECK(format_dkim_canonicalization(*canon) == "simple/relaxed");
    CHECK_FALSE(parse_dkim_canonicalization("relaxed").has_value());
    struct Case {
        std::string text;
        std::optional<std::int64_t> want;
    };
    const std::vector<Case> times{
        {"2026-03-01", 1772323200},
        {"2026-03-01T12:30:00Z", 1772368200},
        {"2026-03-01T14:30:00+02:00", 1772368200},
        {"1772323200", 1772323200},
        {"2024-02-29", 1709164800},
        {"2023-02-29", std::nullopt},
        {"2026-13-01", std::nullopt},
        {"2026-03-01T12:30", std::nullopt},
        {"yesterday", std::nullopt},
    };
    for (const auto& t : times) {
        CAPTURE(t.text);
        CHECK(parse_dkim_time(t.text) == t.want);
    }
    CHECK(format_dkim_time(1772368200) == "2026-03-01T12:30:00Z");
    CHECK(parse_dkim_time(format_dkim_time(-86400)) == -86400);
}
