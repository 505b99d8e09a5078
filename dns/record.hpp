#pragma once
// The DNS vocabulary shared by the cache, the c-ares resolver and its reply
// interpreter: record types by their wire numbers (RFC 1035 3.2.2, RFC 3596),
// a type-erased answer the cache stores, and name normalisation (names are
// compared case-insensitively, RFC 4343, and are always absolute here).
// Pure, no I/O, no state.

#include "core/net.hpp"
#include "dns/resolver.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace ember::dns {

enum class RecordType : std::uint16_t {
    A = 1,
    Ptr = 12,
    Mx = 15,
    Txt = 16,
    Aaaa = 28,
};

[[nodiscard]] std::string_view record_type_name(RecordType type);

// MX -> MxRecord, A/AAAA -> IpAddress, TXT/PTR -> std::string.
using Record = std::variant<MxRecord, core::IpAddress, std::string>;
using AnyAnswer = Answer<Record>;

// Lowercase ASCII, one trailing dot removed: "Example.COM." -> "example.com".
[[nodiscard]] std::string normalize_name(std::string_view name);

// The PTR query name of an address (RFC 1035 3.5, RFC 3596 2.5):
// 192.0.2.1 -> "1.2.0.192.in-addr.arpa", 2001:db8::1 -> "1.0.0...8.b.d.0.1.0.0.2.ip6.arpa".
[[nodiscard]] std::string reverse_name(const core::IpAddress& address);

// Unwraps a type-erased answer into the caller's record type; records of
// another alternative (never produced for the matching RecordType) are dropped.
template <typename T> [[nodiscard]] Answer<T> unwrap(const AnyAnswer& any) {
    Answer<T> out;
    out.status = any.status;
    out.ttl = any.ttl;
    out.records.reserve(any.records.size());
    for (const auto& record : any.records) {
        if (const T* value = std::get_if<T>(&record))
            out.records.push_back(*value);
    }
    return out;
}

} // namespace ember::dns
