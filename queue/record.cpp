#include "queue/record.hpp"

#include "core/assert.hpp"

#include <array>
#include <cstdint>

namespace ember::queue {
namespace {

// Crockford's alphabet: no I, L, O or U, so ids survive being read aloud.
constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::size_t kIdChars = 13; // 13 * 5 = 65 bits: the first char holds 4

constexpr std::array<std::string_view, 5> kStateNames = {"queued", "deferred", "delivered",
                                                         "failed", "suppressed"};

// Record layout: version(1) kind(1) fields... Integers are fixed-width
// little-endian, strings a u32 length then the bytes. A new field means a new
// version; decode() refuses versions it does not know rather than guessing.
constexpr std::uint8_t kCodecVersion = 1; // message headers
// Recipients: version 2 appends the latest outcome, the last attempt time and
// the DSN state to version 1's fields. Version 1 still decodes (a queue
// written by an older ember), so the layout before the new fields must never
// change.
// Version 3 appends the warm-up hold fields (held_ms, throttled_until_ms).
constexpr std::uint8_t kRecipientV1 = 1;
constexpr std::uint8_t kRecipientV2 = 2;
constexpr std::uint8_t kRecipientV3 = 3;
constexpr int kMaxReplyCode = 999;
constexpr std::uint8_t kKindMessage = 'M';
constexpr std::uint8_t kKindRecipient = 'R';

class Writer {
public:
    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u32(std::uint32_t v) { fixed(v, 4); }
    void u64(std::uint64_t v) { fixed(v, 8); }
    void i64(std::int64_t v) { fixed(static_cast<std::uint64_t>(v), 8); }
    void str(std::string_view s) {
        EMBER_ASSERT(s.size() <= UINT32_MAX); // record fields are addresses and replies
        u32(static_cast<std::uint32_t>(s.size()));
        out_.append(s);
    }
    [[nodiscard]] std::string take() { return std::move(out_); }

private:
    void fixed(std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i)
            out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    std::string out_;
};

// Bounds-checked and sticky: the first read past the end marks the reader
// failed and every later read returns zero, so decoders read all fields and
// check ok()/finished() once. Lengths are checked before anything is copied,
// so a hostile length prefix cannot make it allocate.
class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    [[nodiscard]] std::uint8_t u8() { return static_cast<std::uint8_t>(fixed(1)); }
    [[nodiscard]] std::uint32_t u32() { return static_cast<std::uint32_t>(fixed(4)); }
    [[nodiscard]] std::uint64_t u64() { return fixed(8); }
    [[nodiscard]] std::int64_t i64() { return static_cast<std::int64_t>(fixed(8)); }
    [[nodiscard]] std::string str() {
        const std::uint32_t n = u32();
        if (failed_ || n > in_.size() - pos_) {
            failed_ = true;
            return {};
        }
        std::string s(in_.substr(pos_, n));
        pos_ += n;
        return s;
    }
    // Every byte consumed and no read overran: trailing bytes are garbage too.
    [[nodiscard]] bool finished() const { return !failed_ && pos_ == in_.size(); }

private:
    std::uint64_t fixed(std::size_t bytes) {
        if (failed_ || bytes > in_.size() - pos_) {
            failed_ = true;
            return 0;
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < bytes; ++i)
            v |= std::uint64_t{static_cast<unsigned char>(in_[pos_ + i])} << (8 * i);
        pos_ += bytes;
        return v;
    }
    std::string_view in_;
    std::size_t pos_ = 0;
    bool failed_ = false;
};

int crockford_value(char c) {
    if (c >= 'a' && c <= 'z')
        c = static_cast<char>(c - 'a' + 'A');
    const auto pos = kAlphabet.find(c);
    return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

} // namespace

std::string format_queue_id(QueueId id) {
    std::string out(kIdChars, '0');
    for (std::size_t i = kIdChars; i-- > 0;) {
        out[i] = kAlphabet[id & 31];
        id >>= 5;
    }
    return out;
}

// Strict: Crockford's decode aliases (O->0, I/L->1) are refused so that one
// id has exactly one spelling and grepping logs for it always works.
std::optional<QueueId> parse_queue_id(std::string_view text) {
    if (text.size() != kIdChars)
        return std::nullopt;
    QueueId id = 0;
    for (std::size_t i = 0; i < kIdChars; ++i) {
        const int v = crockford_value(text[i]);
        if (v < 0 || (i == 0 && v > 15)) // the first char carries only bits 60..63
            return std::nullopt;
        id = (id << 5) | static_cast<QueueId>(v);
    }
    return id;
}

std::string_view state_name(RecipientState s) {
    const auto i = static_cast<std::size_t>(s);
    return i < kStateNames.size() ? kStateNames[i] : std::string_view("unknown");
}

std::optional<RecipientState> parse_state(std::string_view text) {
    for (std::size_t i = 0; i < kStateNames.size(); ++i) {
        if (kStateNames[i] == text)
            return static_cast<RecipientState>(i);
    }
    return std::nullopt;
}

bool is_pending(RecipientState s) {
    return s == RecipientState::Queued || s == RecipientState::Deferred;
}

std::string encode_message_header(const Message& m) {
    Writer w;
    w.u8(kCodecVersion);
    w.u8(kKindMessage);
    w.u64(m.id);
    w.str(m.envelope.mail_from);
    w.u8(static_cast<std::uint8_t>(m.envelope.body));
    w.u8(m.envelope.smtputf8 ? 1 : 0);
    w.u8(static_cast<std::uint8_t>(m.envelope.ret));
    w.str(m.envelope.envid);
    w.str(m.submission.client_ip);
    w.str(m.submission.helo);
    w.str(m.submission.auth_user);
    w.str(m.submission.tls);
    w.str(m.submission.listener);
    w.i64(m.submission.received_at_ms);
    w.u64(m.size);
    return w.take();
}

std::optional<Message> decode_message_header(std::string_view bytes) {
    Reader r(bytes);
    if (r.u8() != kCodecVersion || r.u8() != kKindMessage)
        return std::nullopt;
    Message m;
    m.id = r.u64();
    m.envelope.mail_from = r.str();
    const auto body = r.u8();
    const auto smtputf8 = r.u8();
    const auto ret = r.u8();
    m.envelope.envid = r.str();
    m.submission.client_ip = r.str();
    m.submission.helo = r.str();
    m.submission.auth_user = r.str();
    m.submission.tls = r.str();
    m.submission.listener = r.str();
    m.submission.received_at_ms = r.i64();
    m.size = r.u64();
    if (!r.finished() || body > static_cast<std::uint8_t>(core::BodyType::BinaryMime) ||
        smtputf8 > 1 || ret > static_cast<std::uint8_t>(core::DsnRet::Headers))
        return std::nullopt;
    m.envelope.body = static_cast<core::BodyType>(body);
    m.envelope.smtputf8 = smtputf8 == 1;
    m.envelope.ret = static_cast<core::DsnRet>(ret);
    return m;
}

std::string encode_recipient(const Recipient& rcpt) {
    Writer w;
    w.u8(kRecipientV3);
    w.u8(kKindRecipient);
    w.str(rcpt.spec.address);
    w.str(rcpt.spec.orcpt);
    w.u8(rcpt.spec.notify);
    w.u8(static_cast<std::uint8_t>(rcpt.state));
    w.u32(rcpt.attempts);
    w.i64(rcpt.next_attempt_ms);
    w.i64(rcpt.updated_ms);
    w.str(rcpt.last_reply);
    // version 2
    const auto& o = rcpt.outcome;
    w.u8(static_cast<std::uint8_t>(o.kind));
    w.u8(static_cast<std::uint8_t>(o.scope));
    w.u32(static_cast<std::uint32_t>(o.code));
    w.str(o.enhanced);
    w.str(o.text);
    w.str(o.command);
    w.str(o.remote_host);
    w.str(o.remote_ip);
    w.u8(o.local ? 1 : 0);
    w.i64(rcpt.last_attempt_ms);
    w.u8(rcpt.dsn_state);
    // version 3
    w.i64(rcpt.held_ms);
    w.i64(rcpt.throttled_until_ms);
    return w.take();
}

namespace {

// The version 2 fields; false when one is out of range.
bool read_outcome_fields(Reader& r, Recipient& rcpt) {
    auto& o = rcpt.outcome;
    const auto kind = r.u8();
    const auto scope = r.u8();
    const auto code = r.u32();
    o.enhanced = r.str();
    o.text = r.str();
    o.command = r.str();
    o.remote_host = r.str();
    o.remote_ip = r.str();
    const auto local = r.u8();
    rcpt.last_attempt_ms = r.i64();
    rcpt.dsn_state = r.u8();
    // Suppressed is recorded as a recipient's outcome too (the scheduler's
    // apply_outcome); refusing it made such a record undecodable.
    if (kind > static_cast<std::uint8_t>(core::OutcomeKind::Throttled) ||
        scope > static_cast<std::uint8_t>(core::OutcomeScope::Recipient) ||
        code > static_cast<std::uint32_t>(kMaxReplyCode) || local > 1 ||
        (rcpt.dsn_state & ~kDsnSentMask) != 0)
        return false;
    o.kind = static_cast<core::OutcomeKind>(kind);
    o.scope = static_cast<core::OutcomeScope>(scope);
    o.code = static_cast<int>(code);
    o.local = local == 1;
    return true;
}

} // namespace

std::optional<Recipient> decode_recipient(std::string_view bytes) {
    Reader r(bytes);
    const auto version = r.u8();
    if (version < kRecipientV1 || version > kRecipientV3 || r.u8() != kKindRecipient)
        return std::nullopt;
    Recipient rcpt;
    rcpt.spec.address = r.str();
    rcpt.spec.orcpt = r.str();
    rcpt.spec.notify = r.u8();
    const auto state = r.u8();
    rcpt.attempts = r.u32();
    rcpt.next_attempt_ms = r.i64();
    rcpt.updated_ms = r.i64();
    rcpt.last_reply = r.str();
    if (version >= kRecipientV2 && !read_outcome_fields(r, rcpt))
        return std::nullopt;
    if (version >= kRecipientV3) {
        rcpt.held_ms = r.i64();
        rcpt.throttled_until_ms = r.i64();
    }
    if (!r.finished() || state >= kStateNames.size() || (rcpt.spec.notify & ~0x0fU) != 0 ||
        rcpt.held_ms < 0 || rcpt.throttled_until_ms < 0)
        return std::nullopt;
    rcpt.state = static_cast<RecipientState>(state);
    return rcpt;
}

} // namespace ember::queue
