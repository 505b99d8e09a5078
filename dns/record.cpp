#include "dns/record.hpp"

#include <fmt/core.h>

namespace ember::dns {

std::string_view record_type_name(RecordType type) {
    switch (type) {
    case RecordType::A:
        return "A";
    case RecordType::Ptr:
        return "PTR";
    case RecordType::Mx:
        return "MX";
    case RecordType::Txt:
        return "TXT";
    case RecordType::Aaaa:
        return "AAAA";
    }
    return "?";
}

std::string normalize_name(std::string_view name) {
    if (name.size() > 1 && name.back() == '.')
        name.remove_suffix(1);
    std::string out(name);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string reverse_name(const core::IpAddress& address) {
    std::string out;
    const std::uint8_t* bytes = address.data();
    if (address.is_v4()) {
        for (int i = 3; i >= 0; --i)
            out += fmt::format("{}.", bytes[i]);
        return out + "in-addr.arpa";
    }
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
        out += kHex[bytes[i] & 0x0f];
        out += '.';
        out += kHex[bytes[i] >> 4];
        out += '.';
    }
    return out + "ip6.arpa";
}

} // namespace ember::dns
