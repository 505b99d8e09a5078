// [[api_key]]: the injection API's bearer keys (daemon/api_config.hpp).
// Same rules as config_tables.cpp: one table, bounds and dump in one place.

#include "daemon/config_tables.hpp"

#include "core/ascii.hpp"

#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;

bool is_lower_hex(std::string_view s) {
    for (const char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

cfg::Field<ApiKeyConfig> hash_field() {
    return {"hash",
            [](const toml::value& v, ApiKeyConfig& k, const cfg::Context& ctx) {
                std::string value;
                if (!cfg::read_string(v, value, ctx))
                    return;
                value = core::ascii_lower(value);
                if (value.starts_with("sha256:"))
                    value.erase(0, 7);
                if (value.size() != 64 || !is_lower_hex(value)) {
                    ctx.error(v, "hash must be the SHA-256 of the token as 64 hex digits "
                                 "(emberctl api-key new prints it)");
                    return;
                }
                k.hash = std::move(value);
            },
            [](const ApiKeyConfig& k) {
                return cfg::quote(k.hash);
            }};
}

// Sending domains, lowercased with the trailing dot dropped; "*" is any.
cfg::Field<ApiKeyConfig> domains_field() {
    auto field = cfg::string_list_field<ApiKeyConfig>("domains", &ApiKeyConfig::domains);
    field.parse = [](const toml::value& v, ApiKeyConfig& k, const cfg::Context& ctx) {
        std::vector<std::string> list;
        if (!read_domain_list(v, list, ctx))
            return;
        if (list.empty()) {
            ctx.error(v, "domains must name at least one sending domain (or \"*\")");
            return;
        }
        k.domains = std::move(list);
    };
    return field;
}

const cfg::Table<ApiKeyConfig>& api_key_table() {
    static const cfg::Table<ApiKeyConfig> table{
        cfg::string_field<ApiKeyConfig>("name", &ApiKeyConfig::name, false),
        hash_field(),
        domains_field(),
    };
    return table;
}

void parse_api_key(const toml::value& v, Config& c, const cfg::Context& ctx) {
    ApiKeyConfig key;
    cfg::parse_table(v, "[[api_key]]", api_key_table(), key, ctx);
    if (v.is_table()) {
        for (const char* required : {"name", "hash", "domains"}) {
            if (!v.as_table().contains(required))
                ctx.error(v, std::string("[[api_key]] needs ") + required);
        }
        for (const auto& other : c.api_keys) {
            if (!key.name.empty() && other.name == key.name)
                ctx.error(v, "[[api_key]] name " + cfg::quote(key.name) + " is listed twice");
            if (!key.hash.empty() && other.hash == key.hash)
                ctx.error(v, "[[api_key]] " + cfg::quote(key.name) + " has the hash of " +
                                 cfg::quote(other.name));
        }
    }
    c.api_keys.push_back(std::move(key));
}

} // namespace

Section api_key_section() {
    Section s;
    s.name = "api_key";
    s.array = true;
    s.parse = parse_api_key;
    s.dump = [](const Config& c) {
        std::string out;
        for (const auto& k : c.api_keys)
            out += (out.empty() ? "" : "\n") + std::string("[[api_key]]\n") +
                   cfg::dump_table(api_key_table(), k);
        return out;
    };
    s.docs = [] {
        std::vector<KeyDoc> docs;
        for (const auto& f : api_key_table())
            docs.push_back({"api_key", f.key, "", true});
        return docs;
    };
    return s;
}

} // namespace ember::daemon
