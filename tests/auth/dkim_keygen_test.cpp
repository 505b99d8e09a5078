#include "auth/dkim_keygen.hpp"

#include "tests/auth/dkim_test_support.hpp"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

using namespace ember::auth;
using ember::auth::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string decode_base64(const std::string& text) {
    std::string out(text.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    REQUIRE(n >= 0);
    std::size_t pad = 0; // EVP_DecodeBlock counts '=' padding as zero bytes
    for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it)
        ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::string p_of(const std::string& record) {
    const auto at = record.find("p=");
    REQUIRE(at != std::string::npos);
    return record.substr(at + 2);
}

std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

unsigned mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

} // namespace

TEST_CASE("keygen writes an RSA key with mode 0600 and returns the record that matches it") {
    TempDir dir;
    std::string error;
    const auto path = dir.file("example.com.s1.pem");
    const auto gen =
        generate_dkim_key({"example.com", "s1", DkimAlgorithm::RsaSha256, 3072, path}, error);
    INFO(error);
    REQUIRE(gen.has_value());
    CHECK(mode_of(path) == 0600);
    CHECK(gen->dns_name == "s1._domainkey.example.com");
    CHECK(gen->record.rfind("v=DKIM1; k=rsa; p=", 0) == 0);
    auto config = test::key_config("example.com", "s1");
    config.key = path;
    ember::core::Diagnostics diag;
    const auto key = load_dkim_key(config, "ember.toml", 1, diag);
    REQUIRE(key.has_value());
    CHECK(key->bits == 3072);
    CHECK(key->record == gen->record);
    // p= is the DER SubjectPublicKeyInfo of the key written.
    const auto der = decode_base64(p_of(gen->record));
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> pub(
        d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())), EVP_PKEY_free);
    REQUIRE(pub != nullptr);
    CHECK(EVP_PKEY_eq(pub.get(), key->key.get()) == 1);
}

TEST_CASE("keygen writes an Ed25519 key whose record carries the raw 32-byte public key") {
    TempDir dir;
    std::string error;
    const auto path = dir.file("ed.pem");
    const auto gen = generate_dkim_key(
        {"Example.COM", "ed2026", DkimAlgorithm::Ed25519Sha256, 2048, path}, error);
    REQUIRE(gen.has_value());
    CHECK(gen->dns_name == "ed2026._domainkey.example.com");
    CHECK(gen->record.rfind("v=DKIM1; k=ed25519; p=", 0) == 0);
    auto config = test::key_config("example.com", "ed2026", DkimAlgorithm::Ed25519Sha256);
    config.key = path;
    ember::core::Diagnostics diag;
    const auto key = load_dkim_key(config, "ember.toml", 1, diag);
    REQUIRE(key.has_value());
    std::array<unsigned char, 32> raw{};
    std::size_t size = raw.size();
    REQUIRE(EVP_PKEY_get_raw_public_key(key->key.get(), raw.data(), &size) == 1);
    const auto p = decode_base64(p_of(gen->record));
    REQUIRE(p.size() == 32);
    CHECK(std::equal(raw.begin(), raw.end(), reinterpret_cast<const unsigned char*>(p.data())));
    CHECK(gen->config.find("algorithm = \"ed25519-sha256\"") != std::string::npos);
}

TEST_CASE("keygen never overwrites an existing file") {
    TempDir dir;
    const auto path = dir.write("taken.pem", "the key DNS publishes\n");
    std::string error;
    const auto gen =
        generate_dkim_key({"example.com", "s1", DkimAlgorithm::Ed25519Sha256, 2048, path}, error);
    CHECK_FALSE(gen.has_value());
    CHECK(error.find("refusing to overwrite") != std::string::npos);
    CHECK(read(path) == "the key DNS publishes\n");
}

TEST_CASE("keygen refuses weak or oversized RSA keys and bad names, writing nothing") {
    TempDir dir;
    const auto path = dir.file("k.pem");
    struct Case {
        DkimKeygenRequest request;
        std::string want;
    };
    const std::vector<Case> cases{
        {{"example.com", "s1", DkimAlgorithm::RsaSha256, 1024, path}, "2048 to 4096 bits"},
        {{"example.com", "s1", DkimAlgorithm::RsaSha256, 8192, path}, "2048 to 4096 bits"},
        {{"localhost", "s1", DkimAlgorithm::RsaSha256, 2048, path}, "not a domain name"},
        {{"example.com", "s_1", DkimAlgorithm::RsaSha256, 2048, path}, "not a selector"},
        {{"example.com", "s1", DkimAlgorithm::RsaSha256, 2048, dir.file("no/such/dir/k.pem")},
         "cannot create"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.want);
        std::string error;
        CHECK_FALSE(generate_dkim_key(c.request, error).has_value());
        CAPTURE(error);
        CHECK(error.find(c.want) != std::string::npos);
        CHECK_FALSE(fs::exists(path));
    }
}

TEST_CASE("long records split into 255-octet strings for the zone file") {
    TempDir dir;
    std::string error;
    const auto gen = generate_dkim_key(
        {"example.com", "big", DkimAlgorithm::RsaSha256, 4096, dir.file("big.pem")}, error);
    REQUIRE(gen.has_value());
    REQUIRE(gen->record.size() > 255);
    std::string joined;
    for (const auto& s : gen->record_strings) {
        CHECK(s.size() <= 255);
        joined += s;
        CHECK(gen->zone_line.find("\"" + s + "\"") != std::string::npos);
    }
    CHECK(joined == gen->record);
    CHECK(gen->zone_line.rfind("big._domainkey.example.com. IN TXT ( \"", 0) == 0);
    CHECK(split_txt_record("abcdef", 4) == std::vector<std::string>{"abcd", "ef"});
}

TEST_CASE("the default key path is dir/domain.selector.pem") {
    CHECK(default_dkim_key_path("Example.com", "S1") == "/etc/ember/dkim/example.com.s1.pem");
    CHECK(default_dkim_key_path("example.com", "s1", "/tmp") == "/tmp/example.com.s1.pem");
}
