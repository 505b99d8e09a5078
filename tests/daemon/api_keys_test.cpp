#include "daemon/api_keys.hpp"

#include <doctest/doctest.h>

namespace ed = ember::daemon;

namespace {

ed::ApiKeys keys_for(const std::string& token, std::vector<std::string> domains) {
    return ed::ApiKeys({ed::ApiKeyConfig{"app", ed::token_hash_hex(token), std::move(domains)}});
}

} // namespace

TEST_CASE("a bearer token whose sha256 is a configured hash names that key") {
    const auto keys = keys_for("ek_secret", {"example.com"});
    const auto* key = keys.authenticate("Bearer ek_secret");
    REQUIRE(key != nullptr);
    CHECK(key->name == "app");
    CHECK(keys.authenticate("bearer   ek_secret ") == key);
}

TEST_CASE("wrong tokens and other schemes name no key") {
    const auto keys = keys_for("ek_secret", {"*"});
    for (const std::string value : {"Bearer ek_secreT", "Bearer", "Bearer ", "Basic ek_secret",
                                    "ek_secret", "Bearer ek_secret extra", "Bearerek_secret"}) {
        CAPTURE(value);
        CHECK(keys.authenticate(value) == nullptr);
    }
}

TEST_CASE("the sha256 of a token is its hex digest (FIPS 180-4 test vector)") {
    CHECK(ed::token_hash_hex("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("a key allows only its domains, case-insensitively, and * allows any") {
    const auto keys = keys_for("t", {"example.com", "news.example.org"});
    const auto& key = keys.keys().front();
    CHECK(key.allows("example.com"));
    CHECK(key.allows("EXAMPLE.com"));
    CHECK(key.allows("news.example.org"));
    CHECK_FALSE(key.allows("sub.example.com"));
    CHECK_FALSE(key.allows("example.org"));
    const auto any = keys_for("t", {"*"});
    CHECK(any.keys().front().allows("anything.test"));
}

TEST_CASE("a configured hash that is not 64 hex digits is no key") {
    const ed::ApiKeys keys({ed::ApiKeyConfig{"bad", "abc", {"*"}}});
    CHECK(keys.empty());
}

TEST_CASE("new tokens are distinct, prefixed, and their TOML block holds the hash only") {
    const auto a = ed::new_token();
    const auto b = ed::new_token();
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a != *b);
    CHECK(a->starts_with(ed::kTokenPrefix));
    CHECK(a->size() == ed::kTokenPrefix.size() + 43);
    const auto toml = ed::api_key_toml("app", *a, {"example.com", "*"});
    CHECK(toml.find(*a) == std::string::npos);
    CHECK(toml == "[[api_key]]\nname = \"app\"\nhash = \"" + ed::token_hash_hex(*a) +
                      "\"\ndomains = [\"example.com\", \"*\"]\n");
    const auto keys = ed::ApiKeys({ed::ApiKeyConfig{"app", ed::token_hash_hex(*a), {"*"}}});
    CHECK(keys.find_token(*a) != nullptr);
}
