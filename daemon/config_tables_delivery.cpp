// The config tables of the outbound half: [dns], [delivery], [[dkim]] and
// [warmup], plus the alignment keys of [auth] and [[listener]]. Same rules
// as config_tables.cpp: one row per key, defaults in the structs.

#include "daemon/config_tables.hpp"

#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
using core::ByteSize;
using namespace std::chrono_literals;

// Keys of routes and tls_policy: "*", a domain, or ".parent" for every
// subdomain of parent (Postfix transport_maps style).
bool valid_destination_key(const std::string& key) {
    if (key == "*")
        return true;
    const std::string_view name = key.starts_with('.') ? std::string_view(key).substr(1) : key;
    return valid_hostname(name);
}

template <typename Value, typename Read>
bool read_domain_map(const toml::value& v, std::map<std::string, Value>& out,
                     const cfg::Context& ctx, Read read) {
    if (!v.is_table()) {
        ctx.error(v, "expected a table of domain = value (e.g. { \"example.com\" = ... })");
        return false;
    }
    bool ok = true;
    out.clear();
    for (const auto& [key, value] : v.as_table()) {
        if (!valid_destination_key(key)) {
            ctx.error(value, "invalid destination " + cfg::quote(key) +
                                 " (use \"*\", a domain, or \".domain\" for its subdomains)");
            ok = false;
            continue;
        }
        Value parsed{};
        if (read(value, parsed))
            out.emplace(core::address_domain("@" + key), std::move(parsed));
        else
            ok = false;
    }
    return ok;
}

template <typename Value, typename Print>
std::string dump_domain_map(const std::map<std::string, Value>& map, Print print) {
    std::string out = "{";
    for (const auto& [key, value] : map)
        out += (out.size() > 1 ? ", " : " ") + cfg::quote(key) + " = " + print(value);
    return out + (map.empty() ? "}" : " }");
}

cfg::Field<DeliveryConfig> routes_field() {
    return {"routes",
            [](const toml::value& v, DeliveryConfig& d, const cfg::Context& ctx) {
                std::map<std::string, core::Endpoint> routes;
                const bool ok = read_domain_map(v, routes, ctx,
                                                [&](const toml::value& value, core::Endpoint& e) {
                                                    return cfg::read_endpoint(value, e, ctx);
                                                });
                if (ok)
                    d.client.routes = std::move(routes);
            },
            [](const DeliveryConfig& d) {
                return dump_domain_map(d.client.routes, [](const core::Endpoint& e) {
                    return cfg::quote(e.to_string());
                });
            }};
}

const std::vector<std::pair<std::string, smtp::TlsPolicy>>& tls_policy_names() {
    static const std::vector<std::pair<std::string, smtp::TlsPolicy>> names{
        {"none", smtp::TlsPolicy::None},
        {"opportunistic", smtp::TlsPolicy::Opportunistic},
        {"required", smtp::TlsPolicy::Required}};
    return names;
}

cfg::Field<DeliveryConfig> tls_policy_field() {
    return {"tls_policy",
            [](const toml::value& v, DeliveryConfig& d, const cfg::Context& ctx) {
                std::map<std::string, smtp::TlsPolicy> policies;
                const bool ok = read_domain_map(
                    v, policies, ctx, [&](const toml::value& value, smtp::TlsPolicy& p) {
                        std::string text;
                        if (!cfg::read_string(value, text, ctx))
                            return false;
                        for (const auto& [name, policy] : tls_policy_names()) {
                            if (name == text) {
                                p = policy;
                                return true;
                            }
                        }
                        ctx.error(value, "tls_policy: unknown value " + cfg::quote(text) +
                                             " (one of: none, opportunistic, required)");
                        return false;
                    });
                if (ok)
                    d.client.tls_policies = std::move(policies);
            },
            [](const DeliveryConfig& d) {
                return dump_domain_map(d.client.tls_policies, [](smtp::TlsPolicy p) {
                    for (const auto& [name, policy] : tls_policy_names()) {
                        if (policy == p)
                            return cfg::quote(name);
                    }
                    return std::string("\"?\"");
                });
            }};
}

cfg::Field<DeliveryConfig> source_address_field() {
    return {"source_address",
            [](const toml::value& v, DeliveryConfig& d, const cfg::Context& ctx) {
                std::string text;
                if (!cfg::read_string(v, text, ctx))
                    return;
                if (text.empty()) {
                    d.client.source_address.reset();
                    return;
                }
                const auto ip = core::IpAddress::parse(text);
                if (!ip) {
                    ctx.error(v, "source_address " + cfg::quote(text) + " is not an IP address");
                    return;
                }
                d.client.source_address = *ip;
            },
            [](const DeliveryConfig& d) {
                return cfg::quote(d.client.source_address ? d.client.source_address->to_string()
                                                          : std::string());
            }};
}

template <typename F> cfg::Field<DeliveryConfig> client(F&& field) {
    return cfg::nested(&DeliveryConfig::client, std::forward<F>(field));
}

cfg::Field<DeliveryConfig> timeout(std::string key, core::Duration smtp::ClientTimeouts::*member) {
    return client(cfg::nested(&smtp::ClientConfig::timeouts,
                              cfg::duration_field<smtp::ClientTimeouts>(key, member, 1s, 1h)));
}

cfg::Field<DeliveryConfig> retry_duration(std::string key, core::Duration queue::RetryPolicy::*m,
                                          core::Duration min, core::Duration max) {
    return cfg::nested(&DeliveryConfig::scheduler,
                       cfg::nested(&queue::SchedulerConfig::retry,
                                   cfg::duration_field<queue::RetryPolicy>(key, m, min, max)));
}

cfg::Field<DeliveryConfig> retry_number(std::string key, double queue::RetryPolicy::*m, double min,
                                        double max) {
    return cfg::nested(&DeliveryConfig::scheduler,
                       cfg::nested(&queue::SchedulerConfig::retry,
                                   cfg::number_field<queue::RetryPolicy>(key, m, min, max)));
}

const cfg::Table<DeliveryConfig>& delivery_table() {
    using D = DeliveryConfig;
    using C = smtp::ClientConfig;
    using T = smtp::ClientTimeouts;
    static const cfg::Table<D> table{
        cfg::bool_field<D>("hold", &D::hold),
        cfg::string_field<D>("helo_name", &D::helo_name),
        client(cfg::integer_field<C>("port", &C::port, 1, 65535)),
        routes_field(),
        tls_policy_field(),
        client(cfg::path_field<C>("tls_ca_file", &C::tls_ca_file)),
        timeout("connect_timeout", &T::connect),
        timeout("greeting_timeout", &T::greeting),
        timeout("ehlo_timeout", &T::ehlo),
        timeout("starttls_timeout", &T::starttls),
        timeout("mail_timeout", &T::mail),
        timeout("rcpt_timeout", &T::rcpt),
        timeout("data_timeout", &T::data),
        timeout("data_block_timeout", &T::data_block),
        timeout("dot_timeout", &T::dot),
        timeout("rset_timeout", &T::rset),
        timeout("quit_timeout", &T::quit),
        client(cfg::integer_field<C>("max_messages_per_connection", &C::max_messages_per_connection,
                                     1, 100000)),
        client(cfg::duration_field<C>("idle_timeout", &C::idle_timeout, 0s, 10min)),
        client(cfg::integer_field<C>("max_connections", &C::max_connections, 1, 100000)),
        client(cfg::integer_field<C>("max_connections_per_destination",
                                     &C::max_connections_per_destination, 1, 100000)),
        client(cfg::integer_field<C>("max_mx_addresses", &C::max_mx_addresses, 1, 100)),
        client(cfg::integer_field<C>("max_mx_sessions", &C::max_mx_sessions, 1, 100)),
        client(cfg::enum_field<C>("address_family", &C::address_family,
                                  {{"any", smtp::AddressFamily::Any},
                                   {"ipv4", smtp::AddressFamily::Ipv4},
                                   {"ipv6", smtp::AddressFamily::Ipv6}})),
        source_address_field(),
        cfg::ip_list_field<D>("source_ips", &D::source_ips),
        cfg::nested(&D::scheduler, cfg::integer_field<queue::SchedulerConfig>(
                                       "recipients_per_transaction",
                                       &queue::SchedulerConfig::max_recipients_per_job, 1, 1000)),
        retry_duration("retry_first", &queue::RetryPolicy::first, 1s, 24h),
        retry_number("retry_factor", &queue::RetryPolicy::factor, 1.0, 10.0),
        retry_duration("retry_max", &queue::RetryPolicy::max, 1s, 24h),
        retry_number("retry_jitter", &queue::RetryPolicy::jitter, 0.0, 0.5),
        retry_duration("max_retry_time", &queue::RetryPolicy::max_retry_time, 0s, 30 * 24h),
        retry_duration("delay_warning", &queue::RetryPolicy::delay_warning, 0s, 30 * 24h),
        cfg::size_field<D>("dsn_return_limit", &D::dsn_return_limit, ByteSize{0},
                           ByteSize{std::uint64_t{2} << 30}),
    };
    return table;
}

const cfg::Table<dns::ResolverConfig>& dns_table() {
    using R = dns::ResolverConfig;
    static const cfg::Table<R> table{
        cfg::endpoint_list_field<R>("servers", &R::servers),
        cfg::duration_field<R>("timeout", &R::timeout, 100ms, 60s),
        cfg::integer_field<R>("tries", &R::tries, 1, 5),
        cfg::integer_field<R>("cache_entries", &R::cache_entries, 0, 10000000),
        cfg::duration_field<R>("max_cache_ttl", &R::max_cache_ttl, 0s, 24h),
        cfg::duration_field<R>("negative_ttl", &R::negative_ttl, 0s, 24h),
    };
    return table;
}

const cfg::Table<warmup::Settings>& warmup_table() {
    using W = warmup::Settings;
    static const cfg::Table<W> table{
        cfg::path_field<W>("file", &W::file),
        cfg::duration_field<W>("save_interval", &W::save_interval, 1s, 1h),
        cfg::bool_field<W>("allow_clock_advance", &W::allow_clock_advance),
    };
    return table;
}

// ---- [[dkim]] ----

// not_before / not_after: a TOML date or date-time (UTC when no offset), a
// "YYYY-MM-DD" string, or unix seconds.
cfg::Field<auth::DkimKeyConfig>
dkim_time_field(std::string key, std::optional<std::int64_t> auth::DkimKeyConfig::*m) {
    return {
        key,
        [m, key](const toml::value& v, auth::DkimKeyConfig& s, const cfg::Context& ctx) {
            if (v.is_integer()) {
                s.*m = v.as_integer();
                return;
            }
            if (v.is_local_date()) {
                const auto d = v.as_local_date();
                s.*m = auth::unix_time_utc(d.year, d.month + 1, d.day);
                return;
            }
            if (v.is_local_datetime() || v.is_offset_datetime()) {
                const auto tp = v.is_local_datetime()
                                    ? std::chrono::system_clock::time_point(v.as_local_datetime())
                                    : std::chrono::system_clock::time_point(v.as_offset_datetime());
                s.*m =
                    std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
                return;
            }
            std::string text;
            if (!cfg::read_string(v, text, ctx))
                return;
            const auto t = auth::parse_dkim_time(text);
            if (!t) {
                ctx.error(v, key + ": invalid time " + cfg::quote(text) +
                                 " (use 2026-01-01, 2026-01-01T00:00:00Z or unix seconds)");
                return;
            }
            s.*m = *t;
        },
        [m](const auto& s) {
            return s.*m ? cfg::quote(auth::format_dkim_time(*(s.*m))) : std::string("\"\"");
        }};
}

const cfg::Table<auth::DkimKeyConfig>& dkim_table() {
    using K = auth::DkimKeyConfig;
    static const cfg::Table<K> table{
        cfg::string_field<K>("domain", &K::domain, false),
        cfg::string_field<K>("selector", &K::selector, false),
        cfg::path_field<K>("key", &K::key),
        cfg::enum_field<K>("algorithm", &K::algorithm,
                           {{"rsa-sha256", auth::DkimAlgorithm::RsaSha256},
                            {"ed25519-sha256", auth::DkimAlgorithm::Ed25519Sha256}}),
        dkim_time_field("not_before", &K::not_before),
        dkim_time_field("not_after", &K::not_after),
        {"expire_after",
         [](const toml::value& v, K& s, const cfg::Context& ctx) {
             core::Duration d{};
             if (cfg::read_duration(v, 1s, 3650 * 24h, d, ctx))
                 s.expire_after = d;
         },
         [](const K& s) {
             return cfg::quote(s.expire_after ? core::format_duration(*s.expire_after) : "");
         }},
        {"canonicalization",
         [](const toml::value& v, K& s, const cfg::Context& ctx) {
             std::string text;
             if (!cfg::read_string(v, text, ctx))
                 return;
             const auto c = auth::parse_dkim_canonicalization(text);
             if (!c) {
                 ctx.error(v, "canonicalization: unknown value " + cfg::quote(text) +
                                  " (relaxed/relaxed, relaxed/simple, simple/relaxed or "
                                  "simple/simple)");
                 return;
             }
             s.canonicalization = *c;
         },
         [](const K& s) {
             return cfg::quote(auth::format_dkim_canonicalization(s.canonicalization));
         }},
        cfg::string_list_field<K>("headers", &K::headers),
    };
    return table;
}

void parse_dkim(const toml::value& v, Config& c, const cfg::Context& ctx) {
    auth::DkimKeyConfig key;
    cfg::parse_table(v, "[[dkim]]", dkim_table(), key, ctx);
    key.line = v.location().line();
    if (v.is_table()) {
        for (const char* required : {"domain", "selector", "key"}) {
            if (!v.as_table().contains(required))
                ctx.error(v, std::string("[[dkim]] needs ") + required);
        }
    }
    c.dkim.push_back(std::move(key));
}

template <typename S>
std::vector<KeyDoc> docs_of(const std::string& name, const cfg::Table<S>& table) {
    std::vector<KeyDoc> out;
    const S defaults{};
    for (const auto& f : table)
        out.push_back({name, f.key, f.dump(defaults)});
    return out;
}

template <typename S>
Section simple_section(std::string name, const cfg::Table<S>& (*table)(), S Config::*member) {
    Section s;
    s.name = name;
    s.parse = [name, table, member](const toml::value& v, Config& c, const cfg::Context& ctx) {
        cfg::parse_table(v, "[" + name + "]", table(), c.*member, ctx);
    };
    s.dump = [name, table, member](const Config& c) {
        return "[" + name + "]\n" + cfg::dump_table(table(), c.*member);
    };
    s.docs = [name, table] {
        return docs_of(name, table());
    };
    return s;
}

} // namespace

std::vector<Section> delivery_sections() {
    Section dkim;
    dkim.name = "dkim";
    dkim.array = true;
    dkim.parse = parse_dkim;
    dkim.dump = [](const Config& c) {
        std::string out;
        for (const auto& k : c.dkim)
            out += (out.empty() ? "" : "\n") + std::string("[[dkim]]\n") +
                   cfg::dump_table(dkim_table(), k);
        return out;
    };
    dkim.docs = [] {
        auto docs = docs_of("dkim", dkim_table());
        for (auto& d : docs) {
            if (d.key == "domain" || d.key == "selector" || d.key == "key") {
                d.default_value.clear();
                d.required = true;
            }
        }
        return docs;
    };
    return {simple_section<dns::ResolverConfig>("dns", dns_table, &Config::dns),
            simple_section<DeliveryConfig>("delivery", delivery_table, &Config::delivery),
            std::move(dkim),
            simple_section<warmup::Settings>("warmup", warmup_table, &Config::warmup)};
}

cfg::Field<AuthConfig> alignment_field() {
    return cfg::enum_field<AuthConfig>("alignment", &AuthConfig::alignment,
                                       {{"enforce", auth::AlignmentPolicy::Enforce},
                                        {"warn", auth::AlignmentPolicy::Warn},
                                        {"off", auth::AlignmentPolicy::Off}});
}

cfg::Field<smtp::ListenerConfig> listener_alignment_field() {
    return cfg::enum_field<smtp::ListenerConfig>("alignment", &smtp::ListenerConfig::alignment,
                                                 {{"inherit", smtp::ListenerAlignment::Inherit},
                                                  {"enforce", smtp::ListenerAlignment::Enforce},
                                                  {"warn", smtp::ListenerAlignment::Warn},
                                                  {"off", smtp::ListenerAlignment::Off}});
}

} // namespace ember::daemon
