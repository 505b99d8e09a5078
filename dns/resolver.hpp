#pragma once
// DNS as the rest of ember sees it: an abstract, asynchronous Resolver
// (MX, A, AAAA, TXT, PTR) whose answers say precisely what happened, because
// callers decide differently on each: NXDOMAIN is permanent for delivery and
// a "void lookup" for SPF; SERVFAIL and timeouts are temporary everywhere.
// The production implementation (c-ares driven by Asio, with a TTL cache)
// is make_resolver(); tests use fakes. Runs on the caller's executor.

#include "core/net.hpp"
#include "core/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ember::dns {

enum class Status {
    Ok,        // records follow (possibly none only for NoData below)
    NxDomain,  // the name does not exist (RCODE 3)
    NoData,    // the name exists but has no records of that type
    ServFail,  // the server failed (RCODE 2) or refused: temporary
    Timeout,   // no answer in time: temporary
    Malformed, // an answer that could not be parsed: temporary
};

// Temporary results: retry later, never treat as "does not exist".
[[nodiscard]] bool is_temporary(Status s);
[[nodiscard]] std::string_view status_name(Status s);

struct MxRecord {
    std::uint16_t preference = 0;
    std::string host; // without the trailing dot; "" for a null MX (RFC 7505 ".")
    friend bool operator==(const MxRecord&, const MxRecord&) = default;
};

template <typename T> struct Answer {
    Status status = Status::Ok;
    std::vector<T> records;
    std::uint32_t ttl = 0; // seconds, the smallest TTL of the records (or the SOA minimum)
};

using MxAnswer = Answer<MxRecord>;
using AddressAnswer = Answer<core::IpAddress>;
using TxtAnswer = Answer<std::string>;  // each TXT record's strings concatenated (RFC 7208 3.3)
using NameAnswer = Answer<std::string>; // PTR targets

class Resolver {
public:
    virtual ~Resolver() = default;
    [[nodiscard]] virtual boost::asio::awaitable<MxAnswer> mx(std::string domain) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<AddressAnswer> a(std::string name) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<AddressAnswer> aaaa(std::string name) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<TxtAnswer> txt(std::string name) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<NameAnswer> ptr(core::IpAddress address) = 0;
};

struct ResolverConfig {
    // "ip:port" servers; empty = /etc/resolv.conf.
    std::vector<core::Endpoint> servers;
    core::Duration timeout = std::chrono::seconds(5); // per query, all tries included
    std::uint32_t tries = 2; // rounds over the servers; c-ares doubles the wait each round
    std::uint32_t cache_entries = 100000; // 0 disables the cache
    core::Duration max_cache_ttl = std::chrono::hours(1);
    core::Duration negative_ttl = std::chrono::minutes(5); // cap for NXDOMAIN/NoData caching
};

// c-ares on the given executor; nullptr and `error` set when c-ares cannot start.
[[nodiscard]] std::unique_ptr<Resolver> make_resolver(boost::asio::any_io_executor executor,
                                                      const ResolverConfig& config,
                                                      std::string& error);

} // namespace ember::dns
