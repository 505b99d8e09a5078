#include "dns/message.hpp"

#include <algorithm>
#include <cstddef>

namespace ember::dns {
namespace {

constexpr std::size_t kHeaderSize = 12;
constexpr std::uint16_t kTypeSoa = 6;
constexpr std::size_t kSoaTimesSize = 20; // SERIAL REFRESH RETRY EXPIRE MINIMUM

class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> m) : m_(m) {}

    [[nodiscard]] bool skip_name() {
        // Labels end with a zero octet or a compression pointer (RFC 1035 4.1.4).
        while (pos_ < m_.size()) {
            const std::uint8_t len = m_[pos_];
            if (len == 0) {
                ++pos_;
                return true;
            }
            if ((len & 0xc0) == 0xc0)
                return skip(2);
            if ((len & 0xc0) != 0)
                return false; // the reserved label types
            if (!skip(std::size_t{len} + 1))
                return false;
        }
        return false;
    }
    [[nodiscard]] bool skip(std::size_t n) {
        if (m_.size() - pos_ < n)
            return false;
        pos_ += n;
        return true;
    }
    [[nodiscard]] std::optional<std::uint16_t> u16() {
        if (m_.size() - pos_ < 2)
            return std::nullopt;
        const auto v = static_cast<std::uint16_t>((m_[pos_] << 8) | m_[pos_ + 1]);
        pos_ += 2;
        return v;
    }
    [[nodiscard]] std::optional<std::uint32_t> u32() {
        auto hi = u16();
        auto lo = u16();
        if (!hi || !lo)
            return std::nullopt;
        return (std::uint32_t{*hi} << 16) | *lo;
    }
    [[nodiscard]] std::size_t pos() const { return pos_; }
    [[nodiscard]] std::uint32_t u32_at(std::size_t at) const {
        return (std::uint32_t{m_[at]} << 24) | (std::uint32_t{m_[at + 1]} << 16) |
               (std::uint32_t{m_[at + 2]} << 8) | m_[at + 3];
    }

private:
    std::span<const std::uint8_t> m_;
    std::size_t pos_ = 0;
};

// RFC 2181 8: a TTL with the most significant bit set is treated as zero.
std::uint32_t sane_ttl(std::uint32_t ttl) {
    return (ttl & 0x80000000u) != 0 ? 0 : ttl;
}

struct ResourceRecord {
    std::uint16_t type = 0;
    std::uint32_t ttl = 0;
    std::size_t rdata_at = 0;
    std::uint16_t rdata_size = 0;
};

std::optional<ResourceRecord> read_record(Reader& r) {
    if (!r.skip_name())
        return std::nullopt;
    auto type = r.u16();
    auto klass = r.u16();
    auto ttl = r.u32();
    auto size = r.u16();
    if (!type || !klass || !ttl || !size)
        return std::nullopt;
    ResourceRecord rr{*type, sane_ttl(*ttl), r.pos(), *size};
    if (!r.skip(*size))
        return std::nullopt;
    return rr;
}

} // namespace

std::optional<MessageSummary> summarize_message(std::span<const std::uint8_t> message) {
    if (message.size() < kHeaderSize)
        return std::nullopt;
    MessageSummary out;
    out.truncated = (message[2] & 0x02) != 0;
    out.rcode = message[3] & 0x0f;
    Reader r(message);
    (void)r.skip(4);
    const auto qd = r.u16();
    const auto an = r.u16();
    const auto ns = r.u16();
    if (!qd || !an || !ns || !r.skip(2))
        return std::nullopt;
    out.answer_count = *an;
    for (unsigned i = 0; i < *qd; ++i) {
        if (!r.skip_name() || !r.skip(4))
            return std::nullopt;
    }
    for (unsigned i = 0; i < *an; ++i) {
        const auto rr = read_record(r);
        if (!rr)
            return std::nullopt;
        out.answer_ttl = std::min(out.answer_ttl.value_or(rr->ttl), rr->ttl);
    }
    for (unsigned i = 0; i < *ns && !out.negative_ttl; ++i) {
        const auto rr = read_record(r);
        if (!rr)
            return std::nullopt;
        // MINIMUM is the last field of the SOA RDATA, after two names.
        if (rr->type == kTypeSoa && rr->rdata_size >= kSoaTimesSize + 2) {
            const std::uint32_t minimum = sane_ttl(r.u32_at(rr->rdata_at + rr->rdata_size - 4));
            out.negative_ttl = std::min(rr->ttl, minimum);
        }
    }
    return out;
}

} // namespace ember::dns
