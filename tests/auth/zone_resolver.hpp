#pragma once
// A dns::Resolver over an in-memory zone, with the semantics of the RFC 7208
// test suite's driver (pyspf testspf.py) so the suite's zonedata means the
// same here as there:
// - a name's entries are kept in order; a "TIMEOUT" entry makes a query time
//   out unless a record of the asked type came before it;
// - SERVFAIL entries (ours, for unit tests) work the same way with ServFail;
// - CNAMEs are followed (a loop, or more than 8 links, is ServFail);
// - an unknown name is NXDOMAIN, a known name without the type is NoData.
// Every question is logged ("TXT example.com") for tests that count lookups.
// Not thread-safe; answers complete immediately.

#include "dns/record.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ember::auth::test {

struct ZoneEntry {
    std::string type;  // A AAAA MX TXT PTR CNAME TIMEOUT SERVFAIL
    std::string value; // address, host, joined TXT strings
    std::uint16_t preference = 0;
};

class ZoneResolver final : public dns::Resolver {
public:
    std::vector<std::string> asked;

    void add(std::string_view name, ZoneEntry entry) {
        zone_[dns::normalize_name(name)].push_back(std::move(entry));
    }
    void a(std::string_view name, std::string_view ip) { add(name, {"A", std::string(ip)}); }
    void aaaa(std::string_view name, std::string_view ip) { add(name, {"AAAA", std::string(ip)}); }
    void txt(std::string_view name, std::string_view text) {
        add(name, {"TXT", std::string(text)});
    }
    void mx(std::string_view name, std::uint16_t pref, std::string_view host) {
        add(name, {"MX", std::string(host), pref});
    }
    void ptr(std::string_view ip, std::string_view host) {
        add(dns::reverse_name(*core::IpAddress::parse(ip)), {"PTR", std::string(host)});
    }
    void cname(std::string_view name, std::string_view target) {
        add(name, {"CNAME", std::string(target)});
    }
    void timeout(std::string_view name) { add(name, {"TIMEOUT", {}}); }
    void servfail(std::string_view name) { add(name, {"SERVFAIL", {}}); }

    [[nodiscard]] std::size_t count(std::string_view question) const {
        std::size_t n = 0;
        for (const auto& q : asked)
            n += q == question ? 1 : 0;
        return n;
    }

    boost::asio::awaitable<dns::MxAnswer> mx(std::string domain) override {
        const auto raw = lookup("MX", domain);
        dns::MxAnswer out{raw.status, {}, 300};
        for (const auto& e : raw.records)
            out.records.push_back({e.preference, dns::normalize_name(e.value)});
        co_return out;
    }
    boost::asio::awaitable<dns::AddressAnswer> a(std::string name) override {
        co_return addresses("A", name);
    }
    boost::asio::awaitable<dns::AddressAnswer> aaaa(std::string name) override {
        co_return addresses("AAAA", name);
    }
    boost::asio::awaitable<dns::TxtAnswer> txt(std::string name) override {
        co_return strings("TXT", name);
    }
    boost::asio::awaitable<dns::NameAnswer> ptr(core::IpAddress address) override {
        co_return strings("PTR", dns::reverse_name(address));
    }

private:
    struct Raw {
        dns::Status status = dns::Status::Ok;
        std::vector<ZoneEntry> records;
    };

    Raw lookup(const std::string& type, const std::string& name) {
        const std::string key = dns::normalize_name(name);
        asked.push_back(type + " " + key);
        return resolve(type, key, 0);
    }

    Raw resolve(const std::string& type, const std::string& key, int depth) {
        const auto it = zone_.find(key);
        if (it == zone_.end())
            return {dns::Status::NxDomain, {}};
        Raw out;
        for (const auto& e : it->second) {
            if ((e.type == "TIMEOUT" || e.type == "SERVFAIL") && out.records.empty())
                return {e.type == "TIMEOUT" ? dns::Status::Timeout : dns::Status::ServFail, {}};
            if (e.type == type)
                out.records.push_back(e);
            if (e.type == "CNAME" && type != "CNAME") {
                if (depth >= 8)
                    return {dns::Status::ServFail, {}};
                return resolve(type, dns::normalize_name(e.value), depth + 1);
            }
        }
        if (out.records.empty())
            out.status = dns::Status::NoData;
        return out;
    }

    dns::AddressAnswer addresses(const std::string& type, const std::string& name) {
        const auto raw = lookup(type, name);
        dns::AddressAnswer out{raw.status, {}, 300};
        for (const auto& e : raw.records)
            out.records.push_back(*core::IpAddress::parse(e.value));
        return out;
    }

    dns::Answer<std::string> strings(const std::string& type, const std::string& name) {
        const auto raw = lookup(type, name);
        dns::Answer<std::string> out{raw.status, {}, 300};
        for (const auto& e : raw.records)
            out.records.push_back(e.value);
        return out;
    }

    std::map<std::string, std::vector<ZoneEntry>> zone_;
};

// Runs one awaitable to completion (the zone answers at once).
template <typename T> T run(boost::asio::awaitable<T> task) {
    boost::asio::io_context io;
    std::optional<T> result;
    std::exception_ptr error;
    boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
        error = e;
        result = std::move(value);
    });
    io.run();
    if (error)
        std::rethrow_exception(error);
    return std::move(*result);
}

} // namespace ember::auth::test
