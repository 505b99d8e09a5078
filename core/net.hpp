#pragma once
// Addresses as config and policy code see them, without Asio: IP addresses
// (IPv4-mapped IPv6 addresses are folded to IPv4 so 127.0.0.0/8 matches
// "::ffff:127.0.0.1"), CIDR networks, and "host:port" / "[v6]:port" endpoints.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::core {

class IpAddress {
public:
    IpAddress() = default;
    [[nodiscard]] static std::optional<IpAddress> parse(std::string_view text);
    [[nodiscard]] static IpAddress v4(std::array<std::uint8_t, 4> bytes);
    [[nodiscard]] static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

    [[nodiscard]] bool is_v4() const { return v4_; }
    [[nodiscard]] bool is_loopback() const;
    // 4 bytes for IPv4, 16 for IPv6.
    [[nodiscard]] const std::uint8_t* data() const { return bytes_.data(); }
    [[nodiscard]] std::size_t size() const { return v4_ ? 4 : 16; }
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const IpAddress&, const IpAddress&) = default;
    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

private:
    std::array<std::uint8_t, 16> bytes_{};
    bool v4_ = true;
};

class Cidr {
public:
    // "10.0.0.0/8", "::1/128", or a bare address (a host network).
    [[nodiscard]] static std::optional<Cidr> parse(std::string_view text);
    [[nodiscard]] bool contains(const IpAddress& address) const;
    [[nodiscard]] std::string to_string() const;

private:
    IpAddress network_;
    unsigned prefix_ = 0;
};

[[nodiscard]] bool any_contains(const std::vector<Cidr>& networks, const IpAddress& address);

struct Endpoint {
    std::string host; // an IP literal or a name, without brackets
    std::uint16_t port = 0;

    // "127.0.0.1:2525", "[::1]:2525", "mx.example.com:25". The port is required.
    [[nodiscard]] static std::optional<Endpoint> parse(std::string_view text);
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

} // namespace ember::core
