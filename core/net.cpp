#include "core/net.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace ember::core {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() > 64)
        return std::nullopt;
    const std::string s(text);
    std::array<std::uint8_t, 16> buf{};
    if (inet_pton(AF_INET, s.c_str(), buf.data()) == 1)
        return v4({buf[0], buf[1], buf[2], buf[3]});
    if (inet_pton(AF_INET6, s.c_str(), buf.data()) == 1)
        return v6(buf);
    return std::nullopt;
}

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
    IpAddress a;
    std::memcpy(a.bytes_.data(), bytes.data(), 4);
    a.v4_ = true;
    return a;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes.data(), kMapped, 12) == 0)
        return v4({bytes[12], bytes[13], bytes[14], bytes[15]});
    IpAddress a;
    a.bytes_ = bytes;
    a.v4_ = false;
    return a;
}

bool IpAddress::is_loopback() const {
    if (v4_)
        return bytes_[0] == 127;
    for (int i = 0; i < 15; ++i) {
        if (bytes_[static_cast<std::size_t>(i)] != 0)
            return false;
    }
    return bytes_[15] == 1;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(v4_ ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    const auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address)
        return std::nullopt;
    const unsigned max_prefix = address->is_v4() ? 32 : 128;
    unsigned prefix = max_prefix;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        const auto [ptr, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (ec != std::errc{} || ptr != digits.data() + digits.size() || digits.empty() ||
            prefix > max_prefix)
            return std::nullopt;
    }
    Cidr c;
    c.network_ = *address;
    c.prefix_ = prefix;
    return c;
}

bool Cidr::contains(const IpAddress& address) const {
    if (address.is_v4() != network_.is_v4())
        return false;
    const auto* a = address.data();
    const auto* n = network_.data();
    const unsigned full = prefix_ / 8;
    if (std::memcmp(a, n, full) != 0)
        return false;
    const unsigned bits = prefix_ % 8;
    if (bits == 0)
        return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
    return (a[full] & mask) == (n[full] & mask);
}

std::string Cidr::to_string() const {
    return network_.to_string() + "/" + std::to_string(prefix_);
}

bool any_contains(const std::vector<Cidr>& networks, const IpAddress& address) {
    for (const auto& n : networks) {
        if (n.contains(address))
            return true;
    }
    return false;
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
    Endpoint e;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        e.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        if (!IpAddress::parse(e.host))
            return std::nullopt;
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon)
            return std::nullopt;
        e.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    if (e.host.empty() || port.empty())
        return std::nullopt;
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || ptr != port.data() + port.size() || value == 0 || value > 65535)
        return std::nullopt;
    e.port = static_cast<std::uint16_t>(value);
    return e;
}

std::string Endpoint::to_string() const {
    if (host.find(':') != std::string::npos)
        return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

} // namespace ember::core
