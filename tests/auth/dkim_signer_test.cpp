#include "auth/dkim_signer.hpp"

#include "tests/auth/dkim_test_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <thread>

using namespace ember::auth;
namespace test = ember::auth::test;

namespace {

// Tag -> value of one DKIM-Signature field, folding whitespace removed.
std::map<std::string, std::string> tags_of(std::string_view field) {
    const auto colon = field.find(':');
    REQUIRE(colon != std::string_view::npos);
    std::string value;
    for (const char c : field.substr(colon + 1)) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            value.push_back(c);
    }
    std::map<std::string, std::string> tags;
    std::size_t pos = 0;
    while (pos < value.size()) {
        auto end = value.find(';', pos);
        if (end == std::string::npos)
            end = value.size();
        const auto item = value.substr(pos, end - pos);
        const auto eq = item.find('=');
        if (eq != std::string::npos)
            tags[item.substr(0, eq)] = item.substr(eq + 1);
        pos = end + 1;
    }
    return tags;
}

// The DKIM-Signature fields of sign()'s output, each with its CRLF.
std::vector<std::string> fields_of(const std::string& headers) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < headers.size()) {
        auto end = headers.find("\r\nDKIM-Signature:", pos);
        end = end == std::string::npos ? headers.size() : end + 2;
        out.push_back(headers.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

std::size_t count_in_h(const std::string& h, std::string_view name) {
    std::size_t n = 0;
    std::size_t pos = 0;
    while (pos <= h.size()) {
        auto end = h.find(':', pos);
        if (end == std::string::npos)
            end = h.size();
        if (iequals(std::string_view(h).substr(pos, end - pos), name))
            ++n;
        pos = end + 1;
    }
    return n;
}

std::int64_t now() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

} // namespace

TEST_CASE("the signing domain is the From domain, else its nearest configured parent") {
    const auto& k = test::shared_keys();
    const DkimSigner signer({test::with_config(k.ed, "example.com", "a"),
                             test::with_config(k.ed, "news.example.com", "b")});
    struct Case {
        std::string from;
        std::string want; // "" = not signed
    };
    const std::vector<Case> cases{
        {"example.com", "example.com"},
        {"news.example.com", "news.example.com"},
        {"a.b.example.com", "example.com"},
        {"deep.news.example.com", "news.example.com"},
        {"EXAMPLE.COM.", "example.com"},
        {"notexample.com", ""},
        {"example.org", ""},
        {"com", ""},
        {"", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.from);
        const auto keys = signer.keys_for(c.from, 1000);
        const std::string got = keys.empty() ? "" : keys.front()->config.domain;
        CAPTURE(got);
        CHECK(got == c.want);
        const auto headers = signer.sign(test::sample_message(), c.from, 1000);
        CHECK(headers.empty() == c.want.empty());
        if (!headers.empty())
            CHECK(tags_of(headers)["d"] == c.want);
    }
}

TEST_CASE("keys sign only inside their not_before / not_after window, overlapping in rotation") {
    const auto& k = test::shared_keys();
    auto old_key = test::with_config(k.rsa, "example.com", "old");
    auto new_key = test::with_config(k.ed, "example.com", "new");
    constexpr std::int64_t kSwitch = 1'800'000'000;
    old_key.config.not_after = kSwitch;
    new_key.config.not_before = kSwitch - 86400;
    const DkimSigner signer({old_key, new_key});
    struct Case {
        std::int64_t now;
        std::vector<std::string> want;
    };
    const std::vector<Case> cases{
        {kSwitch - 2 * 86400, {"old"}},
        {kSwitch - 86400, {"old", "new"}},
        {kSwitch - 1, {"old", "new"}},
        {kSwitch, {"new"}},
    };
    for (const auto& c : cases) {
        CAPTURE(c.now);
        std::vector<std::string> got;
        for (const auto& field :
             fields_of(signer.sign(test::sample_message(), "example.com", c.now)))
            got.push_back(tags_of(field)["s"]);
        CHECK(got == c.want);
    }
}

TEST_CASE("a From domain whose own keys are all out of their window falls back to its parent") {
    const auto& k = test::shared_keys();
    auto retired = test::with_config(k.ed, "news.example.com", "retired");
    retired.config.not_after = 500;
    const DkimSigner signer({retired, test::with_config(k.ed, "example.com", "main")});
    const auto keys = signer.keys_for("news.example.com", 1000);
    REQUIRE(keys.size() == 1);
    CHECK(keys.front()->config.selector == "main");
}

TEST_CASE("t= is the signing time and x= is t= plus expire_after, only when configured") {
    const auto& k = test::shared_keys();
    auto expiring = test::with_config(k.ed, "example.com", "x");
    expiring.config.expire_after = std::chrono::milliseconds(86'400'500); // rounds up
    const auto plain = test::with_config(k.ed, "example.com", "p");
    const auto with_x = tags_of(dkim_signature(expiring, test::sample_message(), 1'700'000'000));
    CHECK(with_x.at("t") == "1700000000");
    CHECK(with_x.at("x") == "1700086401");
    const auto without = tags_of(dkim_signature(plain, test::sample_message(), 1'700'000'000));
    CHECK(without.at("t") == "1700000000");
    CHECK(without.count("x") == 0);
}

TEST_CASE("h= signs every instance present and lists over-signed fields once more") {
    const auto& k = test::shared_keys();
    const std::string message = "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                "From: a@example.com\r\n"
                                "To: b@example.org\r\n"
                                "To: c@example.org\r\n"
                                "Subject: hi\r\n"
                                "Feedback-ID: 1:2:3:ember\r\n"
                                "X-Mailer: app\r\n"
                                "\r\nbody\r\n";
    const auto h = tags_of(dkim_signature(k.rsa, message, 1000)).at("h");
    CAPTURE(h);
    struct Case {
        std::string name;
        std::size_t want;
    };
    const std::vector<Case> cases{
        {"From", 2},
        {"To", 3},
        {"Subject", 2},
        {"Cc", 1},
        {"Reply-To", 1},
        {"Date", 1},
        {"Message-ID", 1},
        {"List-Unsubscribe", 1},
        {"List-Unsubscribe-Post", 1},
        {"Feedback-ID", 1},
        {"Received", 0},
        {"X-Mailer", 0},
        {"DKIM-Signature", 0},
        {"Content-Type", 0},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        CHECK(count_in_h(h, c.name) == c.want);
    }
}

TEST_CASE("a key's own header list replaces the default one and keeps over-signing") {
    auto key = test::with_config(test::shared_keys().ed, "example.com", "own");
    key.config.headers = {"From", "X-Campaign", "x-campaign"};
    const auto h = tags_of(dkim_signature(key, test::sample_message(), 1000)).at("h");
    CAPTURE(h);
    CHECK(count_in_h(h, "From") == 2);
    CHECK(count_in_h(h, "X-Campaign") == 1);
    CHECK(count_in_h(h, "Subject") == 0);
}

TEST_CASE("signatures verify with libopendkim: RSA, Ed25519, both, and simple/simple") {
    const auto& k = test::shared_keys();
    auto simple = test::with_config(k.rsa, "example.com", "simple");
    simple.config.canonicalization = {DkimCanon::Simple, DkimCanon::Simple};
    auto expiring = test::with_config(k.ed, "example.com", "expiring");
    expiring.config.expire_after = std::chrono::hours(1);
    struct Case {
        std::string what;
        std::vector<const DkimKey*> keys;
    };
    const std::vector<Case> cases{
        {"rsa", {&k.rsa}},     {"ed25519", {&k.ed}}, {"dual", {&k.rsa, &k.ed}},
        {"simple", {&simple}}, {"x=", {&expiring}},
    };
    const std::vector<std::string> bodies{"",
                                          "\r\n",
                                          "one line\r\n",
                                          "trailing  \t\r\n\r\n\r\n",
                                          ".\r\n..\r\n.dot\r\n",
                                          "caf\xc3\xa9 \xe2\x82\xac\r\n"};
    OpenDkim opendkim;
    for (const auto& c : cases) {
        std::vector<DkimKey> keys;
        for (const auto* key : c.keys)
            keys.push_back(*key);
        const DkimSigner signer(keys);
        for (const auto& body : bodies) {
            CAPTURE(c.what);
            CAPTURE(body);
            const auto message = test::sample_message("example.com", body);
            const auto signed_message = signer.sign(message, "example.com", now()) + message;
            const auto verdicts = opendkim.verify(signed_message, test::records_for(c.keys));
            REQUIRE(verdicts.size() == c.keys.size());
            for (const auto& v : verdicts) {
                CAPTURE(v.selector);
                CAPTURE(v.error);
                CHECK(v.pass);
            }
        }
    }
}

TEST_CASE("changing a signed part of the message breaks every signature") {
    const auto& k = test::shared_keys();
    const DkimSigner signer({k.rsa, k.ed});
    const auto message = test::sample_message();
    const auto sigs = signer.sign(message, "example.com", now());
    const auto records = test::records_for({&k.rsa, &k.ed});
    const auto replace = [&](std::string_view from, std::string_view to) {
        auto m = message;
        const auto at = m.find(from);
        REQUIRE(at != std::string::npos);
        m.replace(at, from.size(), to);
        return m;
    };
    struct Case {
        std::string what;
        std::string message;
    };
    const std::vector<Case> cases{
        {"subject changed", replace("This week", "That week")},
        {"From added on top", "From: evil@attacker.example\r\n" + message},
        {"List-Unsubscribe replaced",
         replace("<https://example.com/u/1>", "<https://attacker.example/u>")},
        {"Cc added", "Cc: spy@attacker.example\r\n" + message},
        {"body changed", message + "P.S. click here\r\n"},
    };
    OpenDkim opendkim;
    for (const auto& c : cases) {
        CAPTURE(c.what);
        const auto verdicts = opendkim.verify(sigs + c.message, records);
        REQUIRE(verdicts.size() == 2);
        for (const auto& v : verdicts)
            CHECK_FALSE(v.pass);
    }
    // The untouched message still verifies: the failures above are the changes.
    for (const auto& v : opendkim.verify(sigs + message, records))
        CHECK(v.pass);
}

TEST_CASE("signing a fixed message with a fixed key and time is deterministic and dkimpy agrees") {
    const auto& k = test::shared_keys();
    const DkimSigner signer({k.rsa, k.ed});
    const auto message = test::sample_message();
    constexpr std::int64_t kTime = 1'700'000'000;
    const auto first = signer.sign(message, "example.com", kTime);
    CHECK(first == signer.sign(message, "example.com", kTime));
    CHECK(first != signer.sign(message, "example.com", kTime + 1));
    const auto records = test::records_for({&k.rsa, &k.ed});
    CHECK(test::dkimpy_verifies(first + message, records, 0));
    CHECK(test::dkimpy_verifies(first + message, records, 1));
    CHECK_FALSE(test::dkimpy_verifies(first + message + "tampered\r\n", records, 0));
}

// RSA only: bh= and h= do not depend on the algorithm, and libopendkim
// 2.11.0~beta2's own Ed25519 signing leaks its key on every message and
// gets simple/simple wrong (dkimpy rejects those signatures too).
TEST_CASE("ember's body hash and header list match libopendkim's for the same message") {
    const auto& k = test::shared_keys();
    OpenDkim opendkim;
    for (const auto canon : {DkimCanon::Relaxed, DkimCanon::Simple}) {
        {
            auto key = k.rsa;
            key.config.canonicalization = {canon, canon};
            const auto message = test::sample_message(
                "example.com", "Dear  reader, \t\r\n\r\n.Line with dot\r\n\r\n\r\n");
            std::string error;
            const auto theirs = opendkim.sign(key, message, 1'700'000'000, error);
            INFO(error);
            REQUIRE(theirs.has_value());
            const auto ours = tags_of(dkim_signature(key, message, 1'700'000'000));
            const auto ref = tags_of(*theirs);
            CAPTURE(*theirs);
            CHECK(ours.at("bh") == ref.at("bh"));
            CHECK(ours.at("c") == ref.at("c"));
            CHECK(ours.at("a") == ref.at("a"));
            const auto names = [](std::string h) {
                std::transform(h.begin(), h.end(), h.begin(),
                               [](char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; });
                std::vector<std::string> v;
                std::size_t pos = 0;
                while (pos <= h.size()) {
                    auto end = std::min(h.find(':', pos), h.size());
                    v.push_back(h.substr(pos, end - pos));
                    pos = end + 1;
                }
                std::sort(v.begin(), v.end());
                return v;
            };
            CHECK(names(ours.at("h")) == names(ref.at("h")));
            // And libopendkim's own signature verifies with the same record.
            const auto verdicts = opendkim.verify(*theirs + message, test::records_for({&key}));
            REQUIRE(verdicts.size() == 1);
            CHECK(verdicts[0].pass);
        }
    }
}

TEST_CASE("signature fields are folded under 79 columns and end with CRLF") {
    const auto& k = test::shared_keys();
    std::string message = "From: a@example.com\r\n";
    for (int i = 0; i < 12; ++i)
        message += "Resent-To: r" + std::to_string(i) + "@example.org\r\n";
    message += "\r\nbody\r\n";
    const auto field = dkim_signature(k.rsa, message, 1000);
    CHECK(field.rfind("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 0) == 0);
    CHECK(field.substr(field.size() - 2) == "\r\n");
    std::size_t pos = 0;
    while (pos < field.size()) {
        const auto end = field.find("\r\n", pos);
        REQUIRE(end != std::string::npos);
        const auto line = field.substr(pos, end - pos);
        CAPTURE(line);
        CHECK(line.size() + (line.empty() || line[0] != '\t' ? 0 : 7) <= 78);
        pos = end + 2;
    }
}

TEST_CASE("sign() gives the same result from several threads at once") {
    const auto& k = test::shared_keys();
    const DkimSigner signer({k.rsa, k.ed});
    const auto message = test::sample_message();
    const auto want = signer.sign(message, "example.com", 1000);
    std::vector<std::string> got(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < got.size(); ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i)
                got[t] = signer.sign(message, "example.com", 1000);
        });
    }
    for (auto& t : threads)
        t.join();
    for (const auto& g : got)
        CHECK(g == want);
}
