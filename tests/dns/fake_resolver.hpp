#pragma once
// A Resolver that answers from tables the test fills in: names are matched
// after normalize_name(); a name with no entry is NXDOMAIN. Records every
// question asked ("MX example.test") so tests can check what was looked up.

#include "dns/record.hpp"
#include "dns/resolver.hpp"

#include <map>
#include <string>
#include <vector>

namespace ember::dns::test {

class FakeResolver final : public Resolver {
public:
    std::map<std::string, MxAnswer> mx_answers;
    std::map<std::string, AddressAnswer> a_answers;
    std::map<std::string, AddressAnswer> aaaa_answers;
    std::map<std::string, TxtAnswer> txt_answers;
    std::map<std::string, NameAnswer> ptr_answers;
    std::vector<std::string> asked;

    boost::asio::awaitable<MxAnswer> mx(std::string domain) override {
        co_return answer(mx_answers, "MX", domain);
    }
    boost::asio::awaitable<AddressAnswer> a(std::string name) override {
        co_return answer(a_answers, "A", name);
    }
    boost::asio::awaitable<AddressAnswer> aaaa(std::string name) override {
        co_return answer(aaaa_answers, "AAAA", name);
    }
    boost::asio::awaitable<TxtAnswer> txt(std::string name) override {
        co_return answer(txt_answers, "TXT", name);
    }
    boost::asio::awaitable<NameAnswer> ptr(core::IpAddress address) override {
        co_return answer(ptr_answers, "PTR", reverse_name(address));
    }

private:
    template <typename A>
    A answer(const std::map<std::string, A>& table, const char* type, const std::string& name) {
        const std::string key = normalize_name(name);
        asked.push_back(std::string(type) + " " + key);
        const auto it = table.find(key);
        if (it != table.end())
            return it->second;
        A none;
        none.status = Status::NxDomain;
        return none;
    }
};

template <typename T> Answer<T> ok(std::vector<T> records, std::uint32_t ttl = 300) {
    Answer<T> a;
    a.records = std::move(records);
    a.ttl = ttl;
    return a;
}

template <typename A> A with_status(Status status) {
    A a;
    a.status = status;
    return a;
}

inline std::vector<core::IpAddress> ips(std::initializer_list<const char*> texts) {
    std::vector<core::IpAddress> out;
    for (const char* t : texts)
        out.push_back(*core::IpAddress::parse(t));
    return out;
}

} // namespace ember::dns::test
