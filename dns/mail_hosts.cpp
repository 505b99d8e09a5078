#include "dns/mail_hosts.hpp"

#include "dns/record.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <set>

namespace ember::dns {
namespace {

namespace asio = boost::asio;

MailHosts failed(MailHostsError error, std::string detail) {
    MailHosts out;
    out.error = error;
    out.detail = std::move(detail);
    return out;
}

// RFC 7505 3: a null MX is the domain's only MX record, with target ".".
bool is_null_mx(const std::vector<MxRecord>& records) {
    return !records.empty() && std::all_of(records.begin(), records.end(), [](const MxRecord& r) {
        return r.host.empty() || r.host == ".";
    });
}

struct HostLookup {
    std::vector<core::IpAddress> addresses; // IPv6 then IPv4
    bool temporary = false;                 // a lookup failed and may work later
    std::string failure;                    // "AAAA servfail", for detail texts
};

asio::awaitable<HostLookup> lookup_host(Resolver* resolver, std::string name) {
    HostLookup out;
    std::string v6_name = name;
    const AddressAnswer v6 = co_await resolver->aaaa(std::move(v6_name));
    std::string v4_name = name;
    const AddressAnswer v4 = co_await resolver->a(std::move(v4_name));
    for (const AddressAnswer* answer : {&v6, &v4}) {
        out.addresses.insert(out.addresses.end(), answer->records.begin(), answer->records.end());
        if (is_temporary(answer->status)) {
            out.temporary = true;
            out.failure =
                fmt::format("{} {}", answer == &v6 ? "AAAA" : "A", status_name(answer->status));
        }
    }
    co_return out;
}

// No MX records: the domain itself is the implicit MX (RFC 5321 5.1).
asio::awaitable<MailHosts> implicit_mx(Resolver* resolver, std::string domain) {
    std::string name = domain;
    const HostLookup found = co_await lookup_host(resolver, std::move(name));
    if (found.addresses.empty()) {
        if (found.temporary)
            co_return failed(
                MailHostsError::Temporary,
                fmt::format("address lookup for {} failed: {}", domain, found.failure));
        co_return failed(MailHostsError::NoMailHosts,
                         fmt::format("no MX or address records for {}", domain));
    }
    MailHosts out;
    out.implicit_mx = true;
    out.hosts.push_back(MailHost{domain, 0, found.addresses});
    co_return out;
}

// Appends the addresses not seen before; a host left with none is skipped.
void add_host(MailHosts& out, std::set<core::IpAddress>& seen, const MxRecord& mx,
              const std::vector<core::IpAddress>& addresses) {
    MailHost host{mx.host, mx.preference, {}};
    for (const auto& address : addresses) {
        if (seen.insert(address).second)
            host.addresses.push_back(address);
    }
    if (!host.addresses.empty())
        out.hosts.push_back(std::move(host));
}

asio::awaitable<MailHosts> resolve_mx_hosts(Resolver* resolver, std::string domain,
                                            std::vector<MxRecord> ordered) {
    MailHosts out;
    std::set<core::IpAddress> seen;
    bool any_resolved = false;
    std::string temporary; // the last soft failure, for the detail text
    for (const MxRecord& mx : ordered) {
        std::string name = mx.host;
        const HostLookup found = co_await lookup_host(resolver, std::move(name));
        any_resolved = any_resolved || !found.addresses.empty();
        if (found.temporary)
            temporary = fmt::format("{}: {}", mx.host, found.failure);
        add_host(out, seen, mx, found.addresses);
    }
    if (any_resolved)
        co_return out;
    if (!temporary.empty())
        co_return failed(MailHostsError::Temporary,
                         fmt::format("no MX host of {} resolved ({})", domain, temporary));
    co_return failed(MailHostsError::NoAddress,
                     fmt::format("no MX host of {} has an address", domain));
}

asio::awaitable<MailHosts> find_mail_hosts_from(Resolver* resolver, std::string domain,
                                                std::uint64_t seed) {
    domain = normalize_name(domain);
    std::string query = domain;
    const MxAnswer mx = co_await resolver->mx(std::move(query));
    if (mx.status == Status::NxDomain)
        co_return failed(MailHostsError::NoSuchDomain, fmt::format("{}: no such domain", domain));
    if (is_temporary(mx.status))
        co_return failed(MailHostsError::Temporary, fmt::format("MX lookup for {} failed: {}",
                                                                domain, status_name(mx.status)));
    if (mx.status == Status::NoData || mx.records.empty()) {
        MailHosts implicit = co_await implicit_mx(resolver, std::move(domain));
        co_return implicit;
    }
    if (is_null_mx(mx.records))
        co_return failed(MailHostsError::NullMx,
                         fmt::format("{} accepts no mail (null MX, RFC 7505)", domain));
    std::mt19937_64 rng(seed);
    auto ordered = order_mx(mx.records, rng);
    MailHosts hosts = co_await resolve_mx_hosts(resolver, std::move(domain), std::move(ordered));
    co_return hosts;
}

} // namespace

bool MailHosts::permanent() const {
    switch (error) {
    case MailHostsError::NullMx:
    case MailHostsError::NoSuchDomain:
    case MailHostsError::NoMailHosts:
    case MailHostsError::NoAddress:
        return true;
    case MailHostsError::None:
    case MailHostsError::Temporary:
        break;
    }
    return false;
}

std::string_view MailHosts::enhanced_status() const {
    switch (error) {
    case MailHostsError::None:
        return "";
    case MailHostsError::NullMx:
        return "5.1.10"; // RFC 7505 4.1
    case MailHostsError::NoSuchDomain:
    case MailHostsError::NoMailHosts:
        return "5.1.2"; // RFC 3463: bad destination system address
    case MailHostsError::NoAddress:
        return "5.4.4"; // RFC 3463: unable to route
    case MailHostsError::Temporary:
        return "4.4.3"; // RFC 3463: directory server failure
    }
    return "";
}

std::vector<MxRecord> order_mx(std::vector<MxRecord> records, std::mt19937_64& rng) {
    for (auto& r : records)
        r.host = normalize_name(r.host);
    std::erase_if(records, [](const MxRecord& r) { return r.host.empty() || r.host == "."; });
    // Shuffle, then a stable sort by preference: random order within each preference.
    std::shuffle(records.begin(), records.end(), rng);
    std::stable_sort(records.begin(), records.end(), [](const MxRecord& x, const MxRecord& y) {
        return x.preference < y.preference;
    });
    std::set<std::string> seen;
    std::erase_if(records, [&seen](const MxRecord& r) { return !seen.insert(r.host).second; });
    return records;
}

asio::awaitable<MailHosts> find_mail_hosts(Resolver& resolver, std::string domain,
                                           std::mt19937_64& rng) {
    return find_mail_hosts_from(&resolver, std::move(domain), rng());
}

} // namespace ember::dns
