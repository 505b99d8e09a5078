#include "feedback/tokens.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

using namespace ember::feedback;

namespace {

TokenSigner signer(std::vector<TokenKey> keys) {
    std::string error;
    auto s = TokenSigner::create(std::move(keys), error);
    INFO("create error: ", error);
    REQUIRE(s.has_value());
    return std::move(*s);
}

const TokenKey kOld{"2025a", "0123456789abcdef0123456789abcdef"};
const TokenKey kNew{"2026a", "fedcba9876543210fedcba9876543210"};

constexpr std::uint64_t kQueueId = 0x018BD0A2'54C00003ULL;

// Every one-character change of the token, with a character of its alphabet.
std::vector<std::string> one_char_changes(const std::string& token, std::string_view alphabet) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < token.size(); ++i) {
        auto changed = token;
        changed[i] = alphabet[(alphabet.find(token[i]) + 1) % alphabet.size()];
        out.push_back(changed);
    }
    return out;
}

} // namespace

TEST_CASE("a VERP token round-trips queue id, recipient index and both hashes") {
    const auto s = signer({kNew});
    for (const std::uint32_t index : {0u, 1u, 127u, 128u, 70000u, 0xffffffffu}) {
        CAPTURE(index);
        const auto id = make_verp_id(kQueueId, index, "Example.COM.", "Bob@Example.net");
        const auto token = s.verp_token(id);
        const auto check = s.verify_verp(token);
        CHECK(check.status == TokenStatus::Ok);
        CHECK(check.id == id);
        CHECK(check.key_id == "2026a");
        CHECK(check.id.domain_hash == domain_hash("example.com"));
        CHECK(check.id.address_hash == address_hash("bob@example.net"));
    }
}

TEST_CASE("a VERP address is local-part safe, lower case and within 64 octets of local part") {
    const auto s = signer({kNew});
    const auto address = s.verp_address("bounces", make_verp_id(kQueueId, 3, "example.com", "a@b"),
                                        "Bounce.Example.COM");
    CAPTURE(address);
    const auto at = address.rfind('@');
    REQUIRE(at != std::string::npos);
    CHECK(address.substr(at) == "@bounce.example.com");
    const auto local = address.substr(0, at);
    CHECK(local.size() <= 64);
    CHECK(local.rfind("bounces+", 0) == 0);
    const auto token = local.substr(8);
    CHECK(std::all_of(token.begin(), token.end(),
                      [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); }));
}

TEST_CASE("a VERP token survives a receiver that upper-cases the local part") {
    const auto s = signer({kNew});
    auto token = s.verp_token(make_verp_id(kQueueId, 9, "example.com", "a@b"));
    std::transform(token.begin(), token.end(), token.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    CHECK(s.verify_verp(token).ok());
}

TEST_CASE("every one-character change of a VERP token is refused") {
    const auto s = signer({kNew});
    const auto token = s.verp_token(make_verp_id(kQueueId, 2, "example.com", "a@b"));
    for (const auto& changed : one_char_changes(token, "abcdefghijklmnopqrstuvwxyz234567")) {
        CAPTURE(changed);
        CHECK_FALSE(s.verify_verp(changed).ok());
    }
    CHECK(s.verify_verp(token.substr(0, token.size() - 1)).status == TokenStatus::Malformed);
    CHECK(s.verify_verp(token + "a").status != TokenStatus::Ok);
    CHECK(s.verify_verp("").status == TokenStatus::Malformed);
    CHECK(s.verify_verp("not-base32!").status == TokenStatus::Malformed);
}

TEST_CASE("key rotation: the first key signs, every key verifies, a retired key's tokens fail") {
    const auto old_only = signer({kOld});
    const auto rotated = signer({kNew, kOld});
    const auto new_only = signer({kNew});
    const auto id = make_verp_id(kQueueId, 1, "example.com", "a@b");

    const auto old_token = old_only.verp_token(id);
    const auto during = rotated.verify_verp(old_token);
    CHECK(during.ok());
    CHECK(during.key_id == "2025a");

    const auto new_token = rotated.verp_token(id);
    CHECK(rotated.verify_verp(new_token).key_id == "2026a");
    CHECK(old_only.verify_verp(new_token).status == TokenStatus::BadSignature);
    CHECK(new_only.verify_verp(old_token).status == TokenStatus::BadSignature);
    CHECK(rotated.signing_key_id() == "2026a");
}

TEST_CASE("an unsubscribe URL token carries address and sending domain and is URL safe") {
    const auto s = signer({kNew});
    const auto token = s.unsubscribe_url_token("Alice@Example.NET", "News.Example.com");
    CAPTURE(token);
    CHECK(std::all_of(token.begin(), token.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    }));
    const auto check = s.verify_unsubscribe_url_token(token);
    REQUIRE(check.ok());
    CHECK(check.who == Unsubscriber{"alice@example.net", "news.example.com"});
}

TEST_CASE("a tampered unsubscribe URL token changes nothing") {
    const auto s = signer({kNew});
    const auto token = s.unsubscribe_url_token("alice@example.net", "example.com");
    for (const auto& changed : one_char_changes(
             token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")) {
        CAPTURE(changed);
        CHECK_FALSE(s.verify_unsubscribe_url_token(changed).ok());
    }
    CHECK_FALSE(s.verify_unsubscribe_url_token(token.substr(0, 20)).ok());
    CHECK_FALSE(s.verify_unsubscribe_url_token("").ok());
    CHECK_FALSE(s.verify_unsubscribe_url_token(token + "%2F").ok());
    CHECK(signer({kOld}).verify_unsubscribe_url_token(token).status == TokenStatus::BadSignature);
}

TEST_CASE("a mailto unsubscribe token verifies only for the address and domain it was made for") {
    const auto s = signer({kNew});
    const auto token = s.unsubscribe_mailto_token("alice@example.net", "example.com");
    CAPTURE(token);
    CHECK(std::string("unsubscribe+").size() + token.size() <= 64);
    CHECK(TokenSigner::mailto_token_shape(token) == TokenStatus::Ok);
    const std::vector<std::string> domains{"other.example", "example.com"};

    const std::vector<std::string> senders{"someone@else.example", "ALICE@example.net"};
    const auto ok = s.verify_unsubscribe_mailto_token(token, senders, domains);
    REQUIRE(ok.ok());
    CHECK(ok.who == Unsubscriber{"alice@example.net", "example.com"});

    const std::vector<std::string> forwarded{"bob@example.org"};
    CHECK(s.verify_unsubscribe_mailto_token(token, forwarded, domains).status ==
          TokenStatus::BadSignature);
    const std::vector<std::string> wrong_domain{"other.example"};
    CHECK_FALSE(s.verify_unsubscribe_mailto_token(token, senders, wrong_domain).ok());
    CHECK(TokenSigner::mailto_token_shape("abc") == TokenStatus::Malformed);
}

TEST_CASE("tokens of one kind never verify as another kind") {
    const auto s = signer({kNew});
    const auto verp = s.verp_token(make_verp_id(kQueueId, 0, "example.com", "a@b"));
    const auto mailto = s.unsubscribe_mailto_token("a@b", "example.com");
    CHECK_FALSE(s.verify_verp(mailto).ok());
    CHECK(TokenSigner::mailto_token_shape(verp) != TokenStatus::Ok);
    CHECK_FALSE(s.verify_unsubscribe_url_token(verp).ok());
}

TEST_CASE("X-Ember-ID is queue id, index and a MAC over the recipient") {
    const auto s = signer({kNew});
    const auto value = s.ember_id(kQueueId, 4, "Bob@Example.net");
    CAPTURE(value);
    CHECK(value.rfind("0", 0) == 0); // 13-character queue id first
    const std::vector<std::string> right{"bob@example.net"};
    const auto check = s.verify_ember_id(value, right);
    CHECK(check.parsed);
    CHECK(check.queue_id == kQueueId);
    CHECK(check.recipient_index == std::optional<std::uint32_t>(4));
    CHECK(check.verified);
    CHECK(check.recipient == "bob@example.net");

    const std::vector<std::string> wrong{"mallory@example.net"};
    const auto other = s.verify_ember_id(value, wrong);
    CHECK(other.parsed);
    CHECK_FALSE(other.verified);

    const auto id_only = value.substr(0, 13);
    CHECK(s.verify_ember_id(id_only, right).parsed);
    CHECK_FALSE(s.verify_ember_id(id_only, right).verified);
    CHECK_FALSE(s.verify_ember_id(id_only + ".x", right).parsed);
    CHECK_FALSE(s.verify_ember_id("<20231114@example.com>", right).parsed);
}

TEST_CASE("token keys are parsed from id:secret and bad key lists are refused") {
    std::string error;
    const auto key = parse_token_key("2026a:abc:defghijklmnopqrstu", error);
    REQUIRE(key.has_value());
    CHECK(key->id == "2026a");
    CHECK(key->secret == "abc:defghijklmnopqrstu");
    struct Bad {
        const char* spec;
    };
    for (const auto bad : {Bad{"nocolon"}, Bad{":0123456789abcdef"}, Bad{"id:short"},
                           Bad{"bad id:0123456789abcdef"}}) {
        CAPTURE(bad.spec);
        CHECK_FALSE(parse_token_key(bad.spec, error).has_value());
        CHECK_FALSE(error.empty());
    }
    CHECK_FALSE(TokenSigner::create({}, error).has_value());
    CHECK_FALSE(TokenSigner::create({kNew, kNew}, error).has_value());
    CHECK(error.find("twice") != std::string::npos);
    CHECK_FALSE(TokenSigner::create({{"k", "short"}}, error).has_value());
}

TEST_CASE("List-Unsubscribe carries the HTTPS URL first and the mailto; Post only with HTTPS") {
    struct Case {
        const char* url;
        const char* domain;
        const char* want;
        const char* want_post;
    };
    const Case cases[] = {
        {"https://mta.example.com", "example.com",
         "<https://mta.example.com/u/TOK>, <mailto:unsubscribe+mt@example.com>",
         "List-Unsubscribe=One-Click"},
        {"https://mta.example.com/mail/", "", "<https://mta.example.com/mail/u/TOK>",
         "List-Unsubscribe=One-Click"},
        {"http://mta.example.com", "Example.COM",
         "<http://mta.example.com/u/TOK>, <mailto:unsubscribe+mt@example.com>", ""},
        {"", "example.com", "<mailto:unsubscribe+mt@example.com>", ""},
        {"", "", "", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.url);
        CAPTURE(c.domain);
        const auto h = list_unsubscribe_headers(c.url, "TOK", "unsubscribe", "mt", c.domain);
        CHECK(h.list_unsubscribe == c.want);
        CHECK(h.list_unsubscribe_post == c.want_post);
    }
}

TEST_CASE("list_unsubscribe_for signs both tokens for the recipient and sending domain") {
    const auto s = signer({kNew});
    const auto h = list_unsubscribe_for(s, "alice@example.net", "example.com",
                                        "https://mta.example.com", "example.com");
    CAPTURE(h.list_unsubscribe);
    const std::string url_prefix = "<https://mta.example.com/u/";
    REQUIRE(h.list_unsubscribe.rfind(url_prefix, 0) == 0);
    const auto url_end = h.list_unsubscribe.find('>');
    const auto url_token =
        h.list_unsubscribe.substr(url_prefix.size(), url_end - url_prefix.size());
    CHECK(s.verify_unsubscribe_url_token(url_token).who ==
          Unsubscriber{"alice@example.net", "example.com"});
    const std::string mailto_prefix = ", <mailto:unsubscribe+";
    const auto m = h.list_unsubscribe.find(mailto_prefix);
    REQUIRE(m != std::string::npos);
    const auto at = h.list_unsubscribe.find('@', m);
    const auto mailto_token =
        h.list_unsubscribe.substr(m + mailto_prefix.size(), at - m - mailto_prefix.size());
    const std::vector<std::string> senders{"alice@example.net"};
    const std::vector<std::string> domains{"example.com"};
    CHECK(s.verify_unsubscribe_mailto_token(mailto_token, senders, domains).ok());
    CHECK(h.list_unsubscribe_post == "List-Unsubscribe=One-Click");
}

namespace {

TrackingId click_id() {
    TrackingId id;
    id.kind = TrackingKind::Click;
    id.queue_id = kQueueId;
    id.dispatched_at = 1'790'000'000;
    id.recipient = "Bob@Example.net";
    id.sending_domain = "news.example.com";
    id.campaign = "spring-sale";
    id.ab_test = "t1";
    id.variant = "b";
    id.url = "https://shop.example.com/p?id=1&utm_source=mail#top";
    return id;
}

} // namespace

TEST_CASE("a tracking token carries everything an open or click event needs, URL safe") {
    const auto s = signer({kNew});
    auto open = click_id();
    open.kind = TrackingKind::Open;
    open.url.clear();
    for (const auto& id : {click_id(), open}) {
        CAPTURE(id.url);
        const auto token = s.tracking_token(id);
        CHECK(token.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
              std::string::npos);
        const auto check = s.verify_tracking_token(token);
        CHECK(check.status == TokenStatus::Ok);
        CHECK(check.id == id);
        CHECK(check.key_id == "2026a");
    }
}

TEST_CASE("an open token without campaign or test stays short") {
    const auto s = signer({kNew});
    TrackingId id;
    id.queue_id = kQueueId;
    id.dispatched_at = 1'790'000'000;
    id.recipient = "someone@example.org";
    id.sending_domain = "example.com";
    const auto token = s.tracking_token(id);
    CAPTURE(token);
    CHECK(token.size() < 90);
}

TEST_CASE("a tampered tracking token never verifies, and a changed URL is a bad signature") {
    const auto s = signer({kNew});
    const auto token = s.tracking_token(click_id());
    for (const auto& changed : one_char_changes(
             token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")) {
        CAPTURE(changed);
        CHECK_FALSE(s.verify_tracking_token(changed).ok());
    }
    // A character inside the URL (the payload's tail, before the 16 MAC
    // characters): the shape still reads, only the signature is wrong.
    auto in_url = token;
    const auto pos = token.size() - 16 - 20;
    in_url[pos] = in_url[pos] == 'A' ? 'B' : 'A';
    CHECK(s.verify_tracking_token(in_url).status == TokenStatus::BadSignature);
    // Signed by a key we do not hold: a bad signature.
    auto evil = click_id();
    evil.url = "https://evil.example.net/";
    const TokenKey foreign{"x", "ffffffffffffffffffffffffffffffff"};
    CHECK(s.verify_tracking_token(signer({foreign}).tracking_token(evil)).status ==
          TokenStatus::BadSignature);
    CHECK(s.verify_tracking_token("").status == TokenStatus::Malformed);
    CHECK(s.verify_tracking_token("not a token!").status == TokenStatus::Malformed);
    CHECK(s.verify_tracking_token(std::string(kMaxTrackingToken + 1, 'A')).status ==
          TokenStatus::Malformed);
}

TEST_CASE("tracking tokens rotate keys and are not unsubscribe tokens") {
    const auto old_signer = signer({kOld});
    const auto both = signer({kNew, kOld});
    const auto token = old_signer.tracking_token(click_id());
    CHECK(both.verify_tracking_token(token).key_id == "2025a");
    CHECK(signer({kNew}).verify_tracking_token(token).status == TokenStatus::BadSignature);
    // An unsubscribe URL token is base64url too: it must not pass as tracking.
    const auto unsub = both.unsubscribe_url_token("bob@example.net", "example.com");
    CHECK_FALSE(both.verify_tracking_token(unsub).ok());
    CHECK_FALSE(both.verify_unsubscribe_url_token(both.tracking_token(click_id())).ok());
}
