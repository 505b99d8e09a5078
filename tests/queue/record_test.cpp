#include "queue/record.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <random>

using namespace ember;
using namespace ember::queue;

namespace {

Message full_message() {
    Message m;
    m.id = 0x0123456789abcdefULL;
    m.envelope.mail_from = "bounce+x=y@example.org";
    m.envelope.body = core::BodyType::EightBitMime;
    m.envelope.smtputf8 = true;
    m.envelope.ret = core::DsnRet::Headers;
    m.envelope.envid = "QQ314159";
    m.submission =
        Submission{"2001:db8::1",    "client.example", "alice", "TLSv1.3 TLS_AES_256_GCM_SHA384",
                   "127.0.0.1:2525", 1'700'000'000'123};
    m.size = 123456;
    return m;
}

Recipient full_recipient() {
    Recipient r;
    r.spec = core::RecipientSpec{"bob@example.net", "rfc822;bob@example.net",
                                 core::kNotifyFailure | core::kNotifyDelay};
    r.state = RecipientState::Deferred;
    r.attempts = 3;
    r.next_attempt_ms = 1'700'000'900'000;
    r.updated_ms = 1'700'000'100'000;
    r.last_reply = "host mx.example.net[192.0.2.25] said: 451 4.7.1 try later";
    return r;
}

} // namespace

TEST_CASE("queue ids print as 13 uppercase Crockford characters and parse back") {
    struct Case {
        QueueId id;
        const char* text;
    };
    const Case cases[] = {{0, "0000000000000"},
                          {1, "0000000000001"},
                          {31, "000000000000Z"},
                          {32, "0000000000010"},
                          {std::numeric_limits<QueueId>::max(), "FZZZZZZZZZZZZ"},
                          {0x0123456789abcdefULL, "028T5CY4TQKFF"}};
    for (const auto& c : cases) {
        CAPTURE(c.id);
        CHECK(format_queue_id(c.id) == c.text);
        CHECK(parse_queue_id(c.text) == c.id);
    }
}

TEST_CASE("queue id text sorts like the ids themselves") {
    std::mt19937_64 rng(42);
    std::vector<QueueId> ids(200);
    for (auto& id : ids)
        id = rng();
    std::vector<std::string> texts;
    texts.reserve(ids.size());
    for (const auto id : ids)
        texts.push_back(format_queue_id(id));
    std::sort(ids.begin(), ids.end());
    std::sort(texts.begin(), texts.end());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        CAPTURE(texts[i]);
        CHECK(parse_queue_id(texts[i]) == ids[i]);
    }
}

TEST_CASE("queue id parsing is case-insensitive") {
    CHECK(parse_queue_id("028t5cy4tqkff") == 0x0123456789abcdefULL);
    CHECK(parse_queue_id("028t5Cy4TqKfF") == 0x0123456789abcdefULL);
}

TEST_CASE("queue ids of the wrong length, outside the alphabet or over 64 bits are refused") {
    for (const char* bad : {"", "000000000000", "00000000000000", "000000000000I", "000000000000L",
                            "000000000000O", "000000000000U", "000000000000u", "00000000000-0",
                            "000000 000000", "G000000000000", "Z000000000000"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_queue_id(bad).has_value());
    }
}

TEST_CASE("state names round trip and unknown names are refused") {
    struct Case {
        RecipientState state;
        const char* name;
        bool pending;
    };
    const Case cases[] = {{RecipientState::Queued, "queued", true},
                          {RecipientState::Deferred, "deferred", true},
                          {RecipientState::Delivered, "delivered", false},
                          {RecipientState::Failed, "failed", false},
                          {RecipientState::Suppressed, "suppressed", false}};
    for (const auto& c : cases) {
        CAPTURE(c.name);
        CHECK(state_name(c.state) == c.name);
        CHECK(parse_state(c.name) == c.state);
        CHECK(is_pending(c.state) == c.pending);
    }
    for (const char* bad : {"", "Queued", "bounced", "queued "}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_state(bad).has_value());
    }
}

TEST_CASE("a message header round trips through the codec without its recipients") {
    auto m = full_message();
    const auto decoded = decode_message_header(encode_message_header(m));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == m);

    m.recipients.push_back(full_recipient());
    m.envelope.recipients.push_back(full_recipient().spec);
    const auto without = decode_message_header(encode_message_header(m));
    REQUIRE(without.has_value());
    CHECK(without->recipients.empty());
    CHECK(without->envelope.recipients.empty());
}

TEST_CASE("a recipient round trips through the codec in every state") {
    for (int s = 0; s <= static_cast<int>(RecipientState::Suppressed); ++s) {
        auto r = full_recipient();
        r.state = static_cast<RecipientState>(s);
        CAPTURE(state_name(r.state));
        const auto decoded = decode_recipient(encode_recipient(r));
        REQUIRE(decoded.has_value());
        CHECK(*decoded == r);
    }
    const Recipient empty;
    CHECK(decode_recipient(encode_recipient(empty)) == empty);
}

TEST_CASE("every truncation of an encoded record is rejected") {
    const auto header = encode_message_header(full_message());
    for (std::size_t n = 0; n < header.size(); ++n) {
        CAPTURE(n);
        CHECK_FALSE(decode_message_header(std::string_view(header).substr(0, n)).has_value());
    }
    const auto rcpt = encode_recipient(full_recipient());
    for (std::size_t n = 0; n < rcpt.size(); ++n) {
        CAPTURE(n);
        CHECK_FALSE(decode_recipient(std::string_view(rcpt).substr(0, n)).has_value());
    }
}

TEST_CASE("trailing bytes, unknown versions, swapped kinds and out-of-range enums are rejected") {
    const auto header = encode_message_header(full_message());
    const auto rcpt = encode_recipient(full_recipient());
    CHECK_FALSE(decode_message_header(header + '\0').has_value());
    CHECK_FALSE(decode_recipient(rcpt + 'x').has_value());
    CHECK_FALSE(decode_message_header(rcpt).has_value());
    CHECK_FALSE(decode_recipient(header).has_value());

    auto future = header;
    future[0] = 2;
    CHECK_FALSE(decode_message_header(future).has_value());
    auto old = rcpt;
    old[0] = 0;
    CHECK_FALSE(decode_recipient(old).has_value());

    // state is the byte after address, orcpt (each u32 length + bytes) and notify
    const auto r = full_recipient();
    const auto state_at = 2 + 4 + r.spec.address.size() + 4 + r.spec.orcpt.size() + 1;
    auto bad_state = rcpt;
    bad_state[state_at] = 5;
    CHECK_FALSE(decode_recipient(bad_state).has_value());
    auto bad_notify = rcpt;
    bad_notify[state_at - 1] = 0x10;
    CHECK_FALSE(decode_recipient(bad_notify).has_value());

    // body, smtputf8 and ret follow version, kind, id and mail_from
    const auto body_at = 2 + 8 + 4 + full_message().envelope.mail_from.size();
    for (const auto at : {body_at, body_at + 1, body_at + 2}) {
        CAPTURE(at);
        auto bad = header;
        bad[at] = 9;
        CHECK_FALSE(decode_message_header(bad).has_value());
    }
}

TEST_CASE("a hostile string length is rejected without reading past the end") {
    std::string bytes = {1, 'R'};
    bytes += std::string("\xff\xff\xff\xff", 4); // address claims 4 GiB
    bytes += "short";
    CHECK_FALSE(decode_recipient(bytes).has_value());
}

TEST_CASE("whatever random or mutated bytes decode to re-encodes to exactly those bytes") {
    // The codec is canonical: anything it accepts is something encode() produces,
    // so a decoder that skipped a check would fail here. Under ASan/UBSan this
    // also shows that no input reads out of bounds.
    std::mt19937 rng(7);
    const auto header = encode_message_header(full_message());
    const auto rcpt = encode_recipient(full_recipient());
    std::size_t accepted = 0;
    for (int round = 0; round < 20000; ++round) {
        const auto& base = round % 2 == 0 ? header : rcpt;
        std::string bytes = base;
        if (round % 4 < 2) {
            bytes[rng() % bytes.size()] = static_cast<char>(rng());
        } else {
            bytes.resize(rng() % 64);
            for (auto& c : bytes)
                c = static_cast<char>(rng());
        }
        if (const auto m = decode_message_header(bytes)) {
            ++accepted;
            CHECK(encode_message_header(*m) == bytes);
        }
        if (const auto r = decode_recipient(bytes)) {
            ++accepted;
            CHECK(encode_recipient(*r) == bytes);
        }
    }
    CHECK(accepted > 0); // single-byte mutations of string contents stay valid
}

TEST_CASE("warm-up hold times round trip, and a version 2 record decodes with none") {
    auto r = full_recipient();
    r.held_ms = 7'200'000;
    r.throttled_until_ms = 1'700'000'950'000;
    const auto bytes = encode_recipient(r);
    CHECK(bytes[0] == 3);
    CHECK(decode_recipient(bytes) == r);
    // Version 2 is version 3 without the last two fields.
    auto v2 = bytes.substr(0, bytes.size() - 16);
    v2[0] = 2;
    const auto old = decode_recipient(v2);
    REQUIRE(old.has_value());
    CHECK(old->held_ms == 0);
    CHECK(old->throttled_until_ms == 0);
    auto want = r;
    want.held_ms = 0;
    want.throttled_until_ms = 0;
    CHECK(*old == want);
    // The version byte decides: version 2 bytes with the new fields are garbage.
    auto mislabeled = bytes;
    mislabeled[0] = 2;
    CHECK_FALSE(decode_recipient(mislabeled).has_value());
}

TEST_CASE("a recipient whose last outcome is Suppressed or Throttled still decodes") {
    for (const auto kind : {core::OutcomeKind::Suppressed, core::OutcomeKind::Throttled}) {
        CAPTURE(core::kind_name(kind));
        auto r = full_recipient();
        r.outcome.kind = kind;
        CHECK(decode_recipient(encode_recipient(r)) == r);
    }
}
