#pragma once
// Builds DNS response messages byte by byte (RFC 1035 4.1) for the tests of
// the message reader and the reply interpreter: names are written without
// compression unless a test adds a pointer itself.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace ember::dns::test {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::uint32_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

inline void put32(Bytes& b, std::uint32_t v) {
    put16(b, v >> 16);
    put16(b, v & 0xffff);
}

inline void put_name(Bytes& b, std::string_view name) {
    while (!name.empty() && name != ".") {
        const auto dot = name.find('.');
        const auto label = name.substr(0, dot);
        b.push_back(static_cast<std::uint8_t>(label.size()));
        b.insert(b.end(), label.begin(), label.end());
        name = dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
    }
    b.push_back(0);
}

inline Bytes name_rdata(std::string_view name) {
    Bytes b;
    put_name(b, name);
    return b;
}

inline Bytes mx_rdata(std::uint16_t preference, std::string_view host) {
    Bytes b;
    put16(b, preference);
    put_name(b, host);
    return b;
}

inline Bytes txt_rdata(std::initializer_list<std::string_view> strings) {
    Bytes b;
    for (auto s : strings) {
        b.push_back(static_cast<std::uint8_t>(s.size()));
        b.insert(b.end(), s.begin(), s.end());
    }
    return b;
}

inline Bytes soa_rdata(std::uint32_t minimum) {
    Bytes b;
    put_name(b, "ns.example.test");
    put_name(b, "hostmaster.example.test");
    for (std::uint32_t v : {1u, 3600u, 600u, 86400u})
        put32(b, v);
    put32(b, minimum);
    return b;
}

enum : std::uint16_t { kA = 1, kCname = 5, kSoa = 6, kPtr = 12, kMx = 15, kTxt = 16, kAaaa = 28 };

class Message {
public:
    Message(std::string_view qname, std::uint16_t qtype, std::uint8_t rcode = 0) : rcode_(rcode) {
        put_name(question_, qname);
        put16(question_, qtype);
        put16(question_, 1);
    }
    Message& answer(std::string_view name, std::uint16_t type, std::uint32_t ttl,
                    const Bytes& rdata) {
        record(answers_, name, type, ttl, rdata);
        ++an_;
        return *this;
    }
    Message& authority(std::string_view name, std::uint16_t type, std::uint32_t ttl,
                       const Bytes& rdata) {
        record(authority_, name, type, ttl, rdata);
        ++ns_;
        return *this;
    }
    Message& truncated() {
        tc_ = true;
        return *this;
    }
    [[nodiscard]] Bytes bytes() const {
        Bytes b;
        put16(b, 0x1234);
        b.push_back(static_cast<std::uint8_t>(0x84 | (tc_ ? 0x02 : 0))); // QR AA (TC)
        b.push_back(rcode_);
        put16(b, 1);
        put16(b, an_);
        put16(b, ns_);
        put16(b, 0);
        b.insert(b.end(), question_.begin(), question_.end());
        b.insert(b.end(), answers_.begin(), answers_.end());
        b.insert(b.end(), authority_.begin(), authority_.end());
        return b;
    }

private:
    static void record(Bytes& b, std::string_view name, std::uint16_t type, std::uint32_t ttl,
                       const Bytes& rdata) {
        put_name(b, name);
        put16(b, type);
        put16(b, 1);
        put32(b, ttl);
        put16(b, static_cast<std::uint32_t>(rdata.size()));
        b.insert(b.end(), rdata.begin(), rdata.end());
    }

    std::uint8_t rcode_;
    bool tc_ = false;
    std::uint16_t an_ = 0;
    std::uint16_t ns_ = 0;
    Bytes question_, answers_, authority_;
};

} // namespace ember::dns::test
