#include "daemon/config_tables.hpp"

#include "core/ascii.hpp"

#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
using core::ByteSize;
using namespace std::chrono_literals;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = kKiB << 10;
constexpr std::uint64_t kGiB = kMiB << 10;
constexpr std::uint64_t kTiB = kGiB << 10;

// A path that must not be empty (relative paths resolve against the file).
template <typename S> cfg::Field<S> required_path_field(std::string key, std::string S::*member) {
    auto field = cfg::path_field<S>(key, member);
    field.parse = [member, key](const toml::value& v, S& s, const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_path(v, value, ctx))
            return;
        if (value.empty()) {
            ctx.error(v, key + " must not be empty");
            return;
        }
        s.*member = std::move(value);
    };
    return field;
}

cfg::Field<ServerConfig> hostname_field() {
    auto field = cfg::string_field<ServerConfig>("hostname", &ServerConfig::hostname);
    field.parse = [](const toml::value& v, ServerConfig& s, const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_string(v, value, ctx))
            return;
        if (!value.empty() && !valid_hostname(value)) {
            ctx.error(v, "hostname " + cfg::quote(value) +
                             " is not a domain name (dot-separated labels of letters, digits "
                             "and '-')");
            return;
        }
        s.hostname = std::move(value);
    };
    return field;
}

// An optional endpoint: "" (the default) means no HTTP listener.
cfg::Field<HttpConfig> http_listen_field() {
    return {"listen",
            [](const toml::value& v, HttpConfig& s, const cfg::Context& ctx) {
                if (v.is_string() && v.as_string().str.empty()) {
                    s.listen.reset();
                    return;
                }
                core::Endpoint e;
                if (cfg::read_endpoint(v, e, ctx))
                    s.listen = std::move(e);
            },
            [](const HttpConfig& s) {
                return cfg::quote(s.listen ? s.listen->to_string() : std::string());
            }};
}

// Where one-click unsubscribe and tracking links point (RFC 8058 needs an
// https URI in practice; http is allowed for test setups).
cfg::Field<HttpConfig> public_url_field() {
    auto field = cfg::string_field<HttpConfig>("public_url", &HttpConfig::public_url);
    field.parse = [](const toml::value& v, HttpConfig& s, const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_string(v, value, ctx))
            return;
        if (!value.empty() && !value.starts_with("https://") && !value.starts_with("http://")) {
            ctx.error(v,
                      "public_url " + cfg::quote(value) + " must start with https:// (or http://)");
            return;
        }
        s.public_url = std::move(value);
    };
    return field;
}

const cfg::Table<ServerConfig>& server_table() {
    // io_threads is deliberately not a key yet: only 1 is supported, and a key
    // that accepts one value is noise. It becomes a key when it does something.
    static const cfg::Table<ServerConfig> table{
        hostname_field(),
        required_path_field<ServerConfig>("data_dir", &ServerConfig::data_dir),
        cfg::enum_field<ServerConfig>("log_level", &ServerConfig::log_level,
                                      {{"debug", core::log::Level::Debug},
                                       {"info", core::log::Level::Info},
                                       {"warning", core::log::Level::Warning},
                                       {"error", core::log::Level::Error}}),
        cfg::duration_field<ServerConfig>("shutdown_grace", &ServerConfig::shutdown_grace, 0s,
                                          10min),
    };
    return table;
}

const cfg::Table<smtp::ListenerConfig>& listener_table() {
    using L = smtp::ListenerConfig;
    static const cfg::Table<L> table{
        cfg::endpoint_field<L>("address", &L::address),
        cfg::enum_field<L>("mode", &L::mode,
                           {{"submission", smtp::ListenerMode::Submission},
                            {"inbound", smtp::ListenerMode::Inbound}}),
        cfg::enum_field<L>("tls", &L::tls,
                           {{"none", smtp::TlsMode::None},
                            {"starttls", smtp::TlsMode::StartTls},
                            {"implicit", smtp::TlsMode::Implicit}}),
        cfg::enum_field<L>("auth", &L::auth,
                           {{"none", smtp::AuthPolicy::None},
                            {"optional", smtp::AuthPolicy::Optional},
                            {"required", smtp::AuthPolicy::Required}}),
        cfg::bool_field<L>("auth_without_tls", &L::auth_without_tls),
        listener_alignment_field(),
    };
    return table;
}

const cfg::Table<smtp::Limits>& smtp_table() {
    using L = smtp::Limits;
    static const cfg::Table<L> table{
        cfg::size_field<L>("max_message_size", &L::max_message_size, ByteSize{kKiB},
                           ByteSize{2 * kGiB}),
        cfg::integer_field<L>("max_recipients", &L::max_recipients, 1, 100000),
        cfg::integer_field<L>("max_line_length", &L::max_line_length, 0, 1000000),
        cfg::duration_field<L>("command_timeout", &L::command_timeout, 1s, 1h),
        cfg::duration_field<L>("data_timeout", &L::data_timeout, 1s, 1h),
        cfg::integer_field<L>("max_connections", &L::max_connections, 1, 100000),
        cfg::integer_field<L>("max_connections_per_ip", &L::max_connections_per_ip, 1, 100000),
        cfg::integer_field<L>("max_errors", &L::max_errors, 1, 1000),
        cfg::integer_field<L>("auth_max_failures", &L::auth_max_failures, 1, 1000),
        cfg::duration_field<L>("auth_failure_window", &L::auth_failure_window, 1s, 24h),
        cfg::enum_field<L>("bare_newlines", &L::bare_newlines,
                           {{"reject", smtp::BareNewlinePolicy::Reject},
                            {"normalize", smtp::BareNewlinePolicy::Normalize}}),
    };
    return table;
}

const cfg::Table<TlsConfig>& tls_table() {
    static const cfg::Table<TlsConfig> table{
        cfg::path_field<TlsConfig>("cert", &TlsConfig::cert),
        cfg::path_field<TlsConfig>("key", &TlsConfig::key),
        cfg::enum_field<TlsConfig, std::string>("min_version", &TlsConfig::min_version,
                                                {{"1.2", "1.2"}, {"1.3", "1.3"}}),
    };
    return table;
}

const cfg::Table<AuthConfig>& auth_table() {
    static const cfg::Table<AuthConfig> table{
        cfg::path_field<AuthConfig>("users_file", &AuthConfig::users_file),
        cfg::cidr_list_field<AuthConfig>("trusted_networks", &AuthConfig::trusted_networks),
        alignment_field(),
    };
    return table;
}

const cfg::Table<queue::StoreConfig>& queue_table() {
    using Q = queue::StoreConfig;
    // data_dir is [server] data_dir, copied by the loader: one directory, one key.
    static const cfg::Table<Q> table{
        cfg::size_field<Q>("map_size", &Q::map_size, ByteSize{kMiB}, ByteSize{kTiB}),
        cfg::integer_field<Q>("max_batch", &Q::max_batch, 1, 100000),
    };
    return table;
}

const cfg::Table<HttpConfig>& http_table() {
    static const cfg::Table<HttpConfig> table{
        http_listen_field(), public_url_field(),
        cfg::integer_field<HttpConfig>("queue_high_water", &HttpConfig::queue_high_water, 0,
                                       std::int64_t{1} << 40),
        cfg::integer_field<HttpConfig>("max_recipients", &HttpConfig::max_recipients, 1, 100000),
        cfg::bool_field<HttpConfig>("tls", &HttpConfig::tls)};
    return table;
}

// [http] tls serves with the [tls] certificate, parsed before [http].
void check_http(const toml::value& v, const Config& c, const cfg::Context& ctx) {
    if (c.http.tls && (c.tls.cert.empty() || c.tls.key.empty()))
        ctx.error(v, "[http] tls = true needs [tls] cert and key");
    if (c.http.tls && !c.http.listen)
        ctx.error(v, "[http] tls = true needs listen");
}

const cfg::Table<AdminConfig>& admin_table() {
    static const cfg::Table<AdminConfig> table{
        required_path_field<AdminConfig>("socket", &AdminConfig::socket)};
    return table;
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
Section table_section(std::string name, const cfg::Table<S>& (*table)(), S Config::*member) {
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

void parse_listener(const toml::value& v, Config& c, const cfg::Context& ctx) {
    smtp::ListenerConfig listener;
    cfg::parse_table(v, "[[listener]]", listener_table(), listener, ctx);
    if (v.is_table() && !v.as_table().contains("address"))
        ctx.error(v, "[[listener]] needs an address (e.g. address = \"0.0.0.0:587\")");
    // Always appended, so listeners[i] is the i-th [[listener]] of the file.
    c.listeners.push_back(std::move(listener));
}

Section listener_section() {
    Section s;
    s.name = "listener";
    s.array = true;
    s.parse = parse_listener;
    s.dump = [](const Config& c) {
        std::string out;
        for (const auto& l : c.listeners)
            out += (out.empty() ? "" : "\n") + std::string("[[listener]]\n") +
                   cfg::dump_table(listener_table(), l);
        return out;
    };
    s.docs = [] {
        auto docs = docs_of("listener", listener_table());
        for (auto& d : docs) {
            if (d.key == "address") {
                d.default_value.clear();
                d.required = true;
            }
        }
        return docs;
    };
    return s;
}

bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
        return false;
    for (const char c : label) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

} // namespace

bool valid_hostname(std::string_view name) {
    if (name.empty() || name.size() > 253 || core::IpAddress::parse(name))
        return false;
    while (true) {
        const auto dot = name.find('.');
        if (!valid_label(name.substr(0, dot)))
            return false;
        if (dot == std::string_view::npos)
            return true;
        name.remove_prefix(dot + 1);
    }
}

bool read_domain_list(const toml::value& v, std::vector<std::string>& out,
                      const cfg::Context& ctx) {
    std::vector<std::string> list;
    if (!cfg::read_string_list(v, list, ctx))
        return false;
    for (auto& d : list) {
        d = core::ascii_lower(d);
        if (d.ends_with('.'))
            d.pop_back();
        if (d != "*" && (d.empty() || d.find_first_of(" @,;\t") != std::string::npos)) {
            ctx.error(v, "domains: " + cfg::quote(d) + " is not a domain name (or \"*\")");
            return false;
        }
    }
    out = std::move(list);
    return true;
}

const std::vector<Section>& sections() {
    static const std::vector<Section> all = [] {
        std::vector<Section> v{
            table_section<ServerConfig>("server", server_table, &Config::server),
            listener_section(),
            table_section<smtp::Limits>("smtp", smtp_table, &Config::smtp),
            table_section<TlsConfig>("tls", tls_table, &Config::tls),
            table_section<AuthConfig>("auth", auth_table, &Config::auth),
            table_section<queue::StoreConfig>("queue", queue_table, &Config::queue),
        };
        for (auto& s : delivery_sections())
            v.push_back(std::move(s));
        auto http = table_section<HttpConfig>("http", http_table, &Config::http);
        http.parse = [parse = http.parse](const toml::value& value, Config& c,
                                          const cfg::Context& ctx) {
            parse(value, c, ctx);
            check_http(value, c, ctx);
        };
        v.push_back(std::move(http));
        for (auto& s : feedback_sections()) // after [http]: they check public_url
            v.push_back(std::move(s));
        v.push_back(api_key_section());
        for (auto& s : personalize_sections())
            v.push_back(std::move(s));
        for (auto& s : tracking_sections()) // after [http] and [feedback]: it checks both
            v.push_back(std::move(s));
        v.push_back(table_section<AdminConfig>("admin", admin_table, &Config::admin));
        return v;
    }();
    return all;
}

std::string section_title(const Section& section) {
    return section.array ? "[[" + section.name + "]]" : "[" + section.name + "]";
}

} // namespace ember::daemon
