#include "dns/cares_answer.hpp"

#include "dns/message.hpp"

#include <ares.h>
#include <arpa/nameser.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace ember::dns {
namespace {

constexpr std::uint8_t kRcodeNxDomain = 3;

struct AresFree {
    void operator()(void* p) const { ares_free_data(p); }
};
struct HostentFree {
    void operator()(hostent* h) const { ares_free_hostent(h); }
};

AnyAnswer failure(Status status, std::uint32_t ttl = 0) {
    AnyAnswer out;
    out.status = status;
    out.ttl = ttl;
    return out;
}

// An ares_parse_* result other than success.
AnyAnswer parse_failure(int rc, const MessageSummary& summary) {
    if (rc == ARES_ENODATA)
        return failure(Status::NoData, summary.negative_ttl.value_or(0));
    return failure(Status::Malformed);
}

int size_of(std::span<const std::uint8_t> reply) {
    return static_cast<int>(reply.size());
}

// A/AAAA: c-ares gives each address its TTL (capped by the CNAME's).
template <typename Ttl, typename Parse, typename Convert>
AnyAnswer parse_addresses(std::span<const std::uint8_t> reply, const MessageSummary& summary,
                          Parse parse, Convert convert) {
    // No answer holds more records than fit in it (each at least 16 octets).
    std::vector<Ttl> ttls(reply.size() / 16 + 1);
    int count = static_cast<int>(ttls.size());
    const int rc = parse(reply.data(), size_of(reply), nullptr, ttls.data(), &count);
    if (rc != ARES_SUCCESS)
        return parse_failure(rc, summary);
    AnyAnswer out;
    for (int i = 0; i < count; ++i) {
        const Ttl& t = ttls[static_cast<std::size_t>(i)];
        const auto ttl = static_cast<std::uint32_t>(std::max(t.ttl, 0));
        out.ttl = out.records.empty() ? ttl : std::min(out.ttl, ttl);
        out.records.emplace_back(convert(t));
    }
    if (out.records.empty())
        return failure(Status::NoData, summary.negative_ttl.value_or(0));
    return out;
}

AnyAnswer parse_a(std::span<const std::uint8_t> reply, const MessageSummary& summary) {
    return parse_addresses<ares_addrttl>(reply, summary, ares_parse_a_reply,
                                         [](const ares_addrttl& t) {
                                             std::array<std::uint8_t, 4> b{};
                                             std::memcpy(b.data(), &t.ipaddr, 4);
                                             return core::IpAddress::v4(b);
                                         });
}

AnyAnswer parse_aaaa(std::span<const std::uint8_t> reply, const MessageSummary& summary) {
    return parse_addresses<ares_addr6ttl>(reply, summary, ares_parse_aaaa_reply,
                                          [](const ares_addr6ttl& t) {
                                              std::array<std::uint8_t, 16> b{};
                                              std::memcpy(b.data(), &t.ip6addr, 16);
                                              return core::IpAddress::v6(b);
                                          });
}

AnyAnswer parse_mx(std::span<const std::uint8_t> reply, const MessageSummary& summary) {
    ares_mx_reply* raw = nullptr;
    const int rc = ares_parse_mx_reply(reply.data(), size_of(reply), &raw);
    std::unique_ptr<ares_mx_reply, AresFree> list(raw);
    if (rc != ARES_SUCCESS)
        return parse_failure(rc, summary);
    AnyAnswer out;
    for (const ares_mx_reply* mx = list.get(); mx != nullptr; mx = mx->next) {
        // c-ares expands the root name of a null MX (RFC 7505) to "".
        out.records.emplace_back(MxRecord{mx->priority, normalize_name(mx->host)});
    }
    out.ttl = summary.answer_ttl.value_or(0);
    return out;
}

// RFC 7208 3.3: the character-strings of one TXT record are concatenated
// without separator; ares_txt_ext marks where each record starts.
AnyAnswer parse_txt(std::span<const std::uint8_t> reply, const MessageSummary& summary) {
    ares_txt_ext* raw = nullptr;
    const int rc = ares_parse_txt_reply_ext(reply.data(), size_of(reply), &raw);
    std::unique_ptr<ares_txt_ext, AresFree> list(raw);
    if (rc != ARES_SUCCESS)
        return parse_failure(rc, summary);
    AnyAnswer out;
    for (const ares_txt_ext* t = list.get(); t != nullptr; t = t->next) {
        if (t->record_start != 0 || out.records.empty())
            out.records.emplace_back(std::string());
        std::get<std::string>(out.records.back())
            .append(reinterpret_cast<const char*>(t->txt), t->length);
    }
    out.ttl = summary.answer_ttl.value_or(0);
    return out;
}

AnyAnswer parse_ptr(std::span<const std::uint8_t> reply, const MessageSummary& summary) {
    hostent* raw = nullptr;
    const int rc = ares_parse_ptr_reply(reply.data(), size_of(reply), nullptr, 0, AF_INET, &raw);
    std::unique_ptr<hostent, HostentFree> host(raw);
    if (rc != ARES_SUCCESS)
        return parse_failure(rc, summary);
    AnyAnswer out;
    // c-ares lists every PTR target (in answer order) among the aliases.
    for (char** alias = host->h_aliases; alias != nullptr && *alias != nullptr; ++alias)
        out.records.emplace_back(normalize_name(*alias));
    if (out.records.empty() && host->h_name != nullptr)
        out.records.emplace_back(normalize_name(host->h_name));
    out.ttl = summary.answer_ttl.value_or(0);
    return out;
}

AnyAnswer parse_by_type(RecordType type, std::span<const std::uint8_t> reply,
                        const MessageSummary& summary) {
    switch (type) {
    case RecordType::A:
        return parse_a(reply, summary);
    case RecordType::Aaaa:
        return parse_aaaa(reply, summary);
    case RecordType::Mx:
        return parse_mx(reply, summary);
    case RecordType::Txt:
        return parse_txt(reply, summary);
    case RecordType::Ptr:
        return parse_ptr(reply, summary);
    }
    return failure(Status::Malformed);
}

// c-ares 1.18's MX/TXT parsers succeed with an empty list when the answer
// holds only a CNAME: that is NoData for the type asked.
AnyAnswer parse_records(RecordType type, std::span<const std::uint8_t> reply,
                        const MessageSummary& summary) {
    AnyAnswer out = parse_by_type(type, reply, summary);
    if (out.status == Status::Ok && out.records.empty())
        return failure(Status::NoData, summary.negative_ttl.value_or(0));
    return out;
}

// A failed ares_query: the reply, when there is one, still carries the SOA.
AnyAnswer interpret_failure(int ares_status, const std::optional<MessageSummary>& summary) {
    const std::uint32_t negative = summary ? summary->negative_ttl.value_or(0) : 0;
    switch (ares_status) {
    case ARES_ENOTFOUND:
        if (summary && summary->rcode != kRcodeNxDomain)
            return failure(Status::Malformed);
        return failure(Status::NxDomain, negative);
    case ARES_EBADNAME:
        // A name that cannot be encoded cannot exist in the DNS.
        return failure(Status::NxDomain);
    case ARES_ENODATA:
        return failure(Status::NoData, negative);
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return failure(Status::Timeout);
    case ARES_EBADRESP:
        return failure(Status::Malformed);
    default:
        // ESERVFAIL, EREFUSED, EFORMERR, ENOTIMP, ENOMEM, EOF, ... and
        // ECONNREFUSED, which c-ares 1.18 reports once every server has
        // answered SERVFAIL or REFUSED on every try (or could not be reached).
        return failure(Status::ServFail);
    }
}

} // namespace

AnyAnswer interpret_reply(RecordType type, int ares_status, std::span<const std::uint8_t> reply) {
    const auto summary = reply.empty() ? std::nullopt : summarize_message(reply);
    if (ares_status != ARES_SUCCESS)
        return interpret_failure(ares_status, summary);
    if (!summary)
        return failure(Status::Malformed);
    return parse_records(type, reply, *summary);
}

} // namespace ember::dns
