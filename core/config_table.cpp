#include "core/config_table.hpp"

#include <fmt/core.h>

#include <algorithm>

namespace ember::core::config {
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string type_name(const toml::value& v) {
    switch (v.type()) {
    case toml::value_t::boolean:
        return "a boolean";
    case toml::value_t::integer:
        return "an integer";
    case toml::value_t::floating:
        return "a float";
    case toml::value_t::string:
        return "a string";
    case toml::value_t::array:
        return "an array";
    case toml::value_t::table:
        return "a table";
    default:
        return "a date or time";
    }
}

} // namespace

void Context::error(const toml::value& at, std::string message) const {
    const auto loc = at.location();
    diag.add(loc.file_name(), loc.line(), std::move(message));
}

std::string did_you_mean(std::string_view key, const std::vector<std::string>& known) {
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& k : known) {
        const auto d = edit_distance(key, k);
        if (d < best_distance) {
            best_distance = d;
            best = k;
        }
    }
    return best;
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string quote_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i)
        out += (i ? ", " : "") + quote(items[i]);
    return out + "]";
}

void check_unknown_keys(const toml::value& table, std::string_view where,
                        const std::vector<std::string>& known, const Context& ctx) {
    for (const auto& [key, value] : table.as_table()) {
        if (std::find(known.begin(), known.end(), key) != known.end())
            continue;
        std::string message = "unknown key '" + key + "' in " + std::string(where);
        if (const auto hint = did_you_mean(key, known); !hint.empty())
            message += "; did you mean '" + hint + "'?";
        ctx.error(value, std::move(message));
    }
}

bool read_string(const toml::value& v, std::string& out, const Context& ctx) {
    if (!v.is_string()) {
        ctx.error(v, "expected a string, found " + type_name(v));
        return false;
    }
    out = v.as_string().str;
    return true;
}

bool read_integer(const toml::value& v, std::int64_t min, std::int64_t max, std::int64_t& out,
                  const Context& ctx) {
    if (!v.is_integer()) {
        ctx.error(v, "expected an integer, found " + type_name(v));
        return false;
    }
    const auto value = v.as_integer();
    if (value < min || value > max) {
        ctx.error(v, "value " + std::to_string(value) + " is out of range [" + std::to_string(min) +
                         ", " + std::to_string(max) + "]");
        return false;
    }
    out = value;
    return true;
}

bool read_bool(const toml::value& v, bool& out, const Context& ctx) {
    if (!v.is_boolean()) {
        ctx.error(v, "expected true or false, found " + type_name(v));
        return false;
    }
    out = v.as_boolean();
    return true;
}

bool read_duration(const toml::value& v, Duration min, Duration max, Duration& out,
                   const Context& ctx) {
    std::string text;
    if (!read_string(v, text, ctx))
        return false;
    const auto d = parse_duration(text);
    if (!d) {
        ctx.error(v, "invalid duration " + quote(text) +
                         " (use e.g. \"250ms\", \"30s\", \"5m\", "
                         "\"4h\", \"5d\")");
        return false;
    }
    if (*d < min || *d > max) {
        ctx.error(v, "duration " + quote(text) + " is out of range [" + format_duration(min) +
                         ", " + format_duration(max) + "]");
        return false;
    }
    out = *d;
    return true;
}

bool read_size(const toml::value& v, ByteSize min, ByteSize max, ByteSize& out,
               const Context& ctx) {
    std::string text;
    if (v.is_integer() && v.as_integer() >= 0) {
        text = std::to_string(v.as_integer());
    } else if (!read_string(v, text, ctx)) {
        return false;
    }
    const auto s = parse_byte_size(text);
    if (!s) {
        ctx.error(v, "invalid size " + quote(text) + " (use e.g. \"512k\", \"10M\", \"4G\")");
        return false;
    }
    if (*s < min || *s > max) {
        ctx.error(v, "size " + quote(text) + " is out of range [" + format_byte_size(min) + ", " +
                         format_byte_size(max) + "]");
        return false;
    }
    out = *s;
    return true;
}

bool read_string_list(const toml::value& v, std::vector<std::string>& out, const Context& ctx) {
    if (!v.is_array()) {
        ctx.error(v, "expected an array of strings, found " + type_name(v));
        return false;
    }
    bool ok = true;
    out.clear();
    for (const auto& item : v.as_array()) {
        std::string s;
        if (read_string(item, s, ctx))
            out.push_back(std::move(s));
        else
            ok = false;
    }
    return ok;
}

bool read_endpoint(const toml::value& v, Endpoint& out, const Context& ctx) {
    std::string text;
    if (!read_string(v, text, ctx))
        return false;
    const auto e = Endpoint::parse(text);
    if (!e) {
        ctx.error(v, "invalid address " + quote(text) +
                         " (use \"host:port\", e.g. \"127.0.0.1:2525\" or \"[::1]:2525\")");
        return false;
    }
    out = *e;
    return true;
}

bool read_cidr_list(const toml::value& v, std::vector<Cidr>& out, const Context& ctx) {
    if (!v.is_array()) {
        ctx.error(v, "expected an array of networks, found " + type_name(v));
        return false;
    }
    bool ok = true;
    out.clear();
    for (const auto& item : v.as_array()) {
        std::string text;
        if (!read_string(item, text, ctx)) {
            ok = false;
            continue;
        }
        const auto c = Cidr::parse(text);
        if (!c) {
            ctx.error(item, "invalid network " + quote(text) + " (use e.g. \"10.0.0.0/8\")");
            ok = false;
            continue;
        }
        out.push_back(*c);
    }
    return ok;
}

bool read_number(const toml::value& v, double min, double max, double& out, const Context& ctx) {
    double value = 0;
    if (v.is_integer())
        value = static_cast<double>(v.as_integer());
    else if (v.is_floating())
        value = v.as_floating();
    else {
        ctx.error(v, "expected a number, found " + type_name(v));
        return false;
    }
    if (value < min || value > max) {
        ctx.error(v, "value " + format_number(value) + " is out of range [" + format_number(min) +
                         ", " + format_number(max) + "]");
        return false;
    }
    out = value;
    return true;
}

std::string format_number(double value) {
    std::string text = fmt::format("{:g}", value);
    if (text.find_first_of(".e") == std::string::npos)
        text += ".0"; // stays a TOML float
    return text;
}

bool read_ip_list(const toml::value& v, std::vector<IpAddress>& out, const Context& ctx) {
    std::vector<std::string> items;
    if (!read_string_list(v, items, ctx))
        return false;
    out.clear();
    for (const auto& item : items) {
        const auto ip = IpAddress::parse(item);
        if (!ip) {
            ctx.error(v, "invalid IP address " + quote(item));
            return false;
        }
        out.push_back(*ip);
    }
    return true;
}

bool read_endpoint_list(const toml::value& v, std::vector<Endpoint>& out, const Context& ctx) {
    std::vector<std::string> items;
    if (!read_string_list(v, items, ctx))
        return false;
    out.clear();
    for (const auto& item : items) {
        const auto e = Endpoint::parse(item);
        if (!e || !IpAddress::parse(e->host)) {
            ctx.error(v, "invalid address " + quote(item) +
                             " (use \"ip:port\", e.g. \"127.0.0.1:53\" or \"[::1]:53\")");
            return false;
        }
        out.push_back(*e);
    }
    return true;
}

bool read_path(const toml::value& v, std::string& out, const Context& ctx) {
    std::string text;
    if (!read_string(v, text, ctx))
        return false;
    if (text.empty()) {
        out.clear();
        return true;
    }
    std::filesystem::path p(text);
    if (p.is_relative())
        p = ctx.base_dir / p;
    out = p.lexically_normal().string();
    return true;
}

} // namespace ember::core::config
