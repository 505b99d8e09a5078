#pragma once
// Declarative config tables: one row per key (name, how to parse it into a
// member of a library's typed config struct, how to print it back). The same
// table drives parsing with bounds checks, unknown-key errors with a
// "did you mean", `--dump-config`, and the test that the man page documents
// every key with its default. Defaults live once, in the struct's member
// initializers; the documented default is dump(S{}).
// Parsing never throws: every problem becomes a `file:line: message`.

#include "core/diagnostics.hpp"
#include "core/net.hpp"
#include "core/units.hpp"

#include <toml.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::core::config {

struct Context {
    Diagnostics& diag;
    std::filesystem::path base_dir; // relative paths in the file resolve against it

    void error(const toml::value& at, std::string message) const;
};

template <typename S> struct Field {
    std::string key;
    std::function<void(const toml::value&, S&, const Context&)> parse;
    std::function<std::string(const S&)> dump; // a TOML literal
};

template <typename S> using Table = std::vector<Field<S>>;

// The closest known key within edit distance 2 (or sharing a prefix), or "".
[[nodiscard]] std::string did_you_mean(std::string_view key, const std::vector<std::string>& known);

// TOML rendering of values for --dump-config and the documented defaults.
[[nodiscard]] std::string quote(std::string_view s);
[[nodiscard]] std::string quote_list(const std::vector<std::string>& items);

// Reports keys of `table` that no field names; `where` is "[server]" etc.
void check_unknown_keys(const toml::value& table, std::string_view where,
                        const std::vector<std::string>& known, const Context& ctx);

template <typename S>
void parse_table(const toml::value& table, std::string_view where, const Table<S>& fields, S& out,
                 const Context& ctx) {
    if (!table.is_table()) {
        ctx.error(table, std::string(where) + " must be a table");
        return;
    }
    std::vector<std::string> known;
    for (const auto& f : fields)
        known.push_back(f.key);
    check_unknown_keys(table, where, known, ctx);
    for (const auto& f : fields) {
        const auto& t = table.as_table();
        if (const auto it = t.find(f.key); it != t.end())
            f.parse(it->second, out, ctx);
    }
}

template <typename S> std::string dump_table(const Table<S>& fields, const S& value) {
    std::string out;
    for (const auto& f : fields)
        out += f.key + " = " + f.dump(value) + "\n";
    return out;
}

// ---- value readers: true on success, otherwise an error was reported ----

[[nodiscard]] bool read_string(const toml::value& v, std::string& out, const Context& ctx);
[[nodiscard]] bool read_integer(const toml::value& v, std::int64_t min, std::int64_t max,
                                std::int64_t& out, const Context& ctx);
[[nodiscard]] bool read_bool(const toml::value& v, bool& out, const Context& ctx);
[[nodiscard]] bool read_duration(const toml::value& v, Duration min, Duration max, Duration& out,
                                 const Context& ctx);
[[nodiscard]] bool read_size(const toml::value& v, ByteSize min, ByteSize max, ByteSize& out,
                             const Context& ctx);
[[nodiscard]] bool read_string_list(const toml::value& v, std::vector<std::string>& out,
                                    const Context& ctx);
[[nodiscard]] bool read_endpoint(const toml::value& v, Endpoint& out, const Context& ctx);
[[nodiscard]] bool read_cidr_list(const toml::value& v, std::vector<Cidr>& out, const Context& ctx);
// A path; relative paths are made absolute against ctx.base_dir.
[[nodiscard]] bool read_path(const toml::value& v, std::string& out, const Context& ctx);
// A number (integer or float) within [min, max].
[[nodiscard]] bool read_number(const toml::value& v, double min, double max, double& out,
                               const Context& ctx);
[[nodiscard]] bool read_ip_list(const toml::value& v, std::vector<IpAddress>& out,
                                const Context& ctx);
[[nodiscard]] bool read_endpoint_list(const toml::value& v, std::vector<Endpoint>& out,
                                      const Context& ctx);
[[nodiscard]] std::string format_number(double value);

// ---- field factories ----

template <typename S>
Field<S> string_field(std::string key, std::string S::*member, bool allow_empty = true) {
    return {key,
            [member, allow_empty, key](const toml::value& v, S& s, const Context& ctx) {
                std::string value;
                if (!read_string(v, value, ctx))
                    return;
                if (!allow_empty && value.empty()) {
                    ctx.error(v, key + " must not be empty");
                    return;
                }
                s.*member = std::move(value);
            },
            [member](const S& s) {
                return quote(s.*member);
            }};
}

template <typename S> Field<S> path_field(std::string key, std::string S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                std::string value;
                if (read_path(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                return quote(s.*member);
            }};
}

template <typename S, typename Int>
Field<S> integer_field(std::string key, Int S::*member, std::int64_t min, std::int64_t max) {
    return {key,
            [member, min, max](const toml::value& v, S& s, const Context& ctx) {
                std::int64_t value = 0;
                if (read_integer(v, min, max, value, ctx))
                    s.*member = static_cast<Int>(value);
            },
            [member](const S& s) {
                return std::to_string(s.*member);
            }};
}

template <typename S> Field<S> bool_field(std::string key, bool S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                bool value = false;
                if (read_bool(v, value, ctx))
                    s.*member = value;
            },
            [member](const S& s) {
                return std::string(s.*member ? "true" : "false");
            }};
}

template <typename S>
Field<S> duration_field(std::string key, Duration S::*member, Duration min, Duration max) {
    return {key,
            [member, min, max](const toml::value& v, S& s, const Context& ctx) {
                Duration value{};
                if (read_duration(v, min, max, value, ctx))
                    s.*member = value;
            },
            [member](const S& s) {
                return quote(format_duration(s.*member));
            }};
}

template <typename S>
Field<S> size_field(std::string key, ByteSize S::*member, ByteSize min, ByteSize max) {
    return {key,
            [member, min, max](const toml::value& v, S& s, const Context& ctx) {
                ByteSize value{};
                if (read_size(v, min, max, value, ctx))
                    s.*member = value;
            },
            [member](const S& s) {
                return quote(format_byte_size(s.*member));
            }};
}

template <typename S> Field<S> endpoint_field(std::string key, Endpoint S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                Endpoint value;
                if (read_endpoint(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                return quote((s.*member).to_string());
            }};
}

template <typename S> Field<S> cidr_list_field(std::string key, std::vector<Cidr> S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                std::vector<Cidr> value;
                if (read_cidr_list(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                std::vector<std::string> items;
                for (const auto& c : s.*member)
                    items.push_back(c.to_string());
                return quote_list(items);
            }};
}

template <typename S>
Field<S> string_list_field(std::string key, std::vector<std::string> S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                std::vector<std::string> value;
                if (read_string_list(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                return quote_list(s.*member);
            }};
}

template <typename S>
Field<S> number_field(std::string key, double S::*member, double min, double max) {
    return {key,
            [member, min, max](const toml::value& v, S& s, const Context& ctx) {
                double value = 0;
                if (read_number(v, min, max, value, ctx))
                    s.*member = value;
            },
            [member](const S& s) {
                return format_number(s.*member);
            }};
}

template <typename S> Field<S> ip_list_field(std::string key, std::vector<IpAddress> S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                std::vector<IpAddress> value;
                if (read_ip_list(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                std::vector<std::string> items;
                for (const auto& ip : s.*member)
                    items.push_back(ip.to_string());
                return quote_list(items);
            }};
}

template <typename S>
Field<S> endpoint_list_field(std::string key, std::vector<Endpoint> S::*member) {
    return {key,
            [member](const toml::value& v, S& s, const Context& ctx) {
                std::vector<Endpoint> value;
                if (read_endpoint_list(v, value, ctx))
                    s.*member = std::move(value);
            },
            [member](const S& s) {
                std::vector<std::string> items;
                for (const auto& e : s.*member)
                    items.push_back(e.to_string());
                return quote_list(items);
            }};
}

// A field of a struct nested in S (e.g. [delivery] keys that fill
// ClientConfig::timeouts): the row parses into (s.*outer).
template <typename S, typename Inner> Field<S> nested(Inner S::*outer, Field<Inner> inner) {
    return {inner.key,
            [outer, parse = inner.parse](const toml::value& v, S& s, const Context& ctx) {
                parse(v, s.*outer, ctx);
            },
            [outer, dump = inner.dump](const S& s) {
                return dump(s.*outer);
            }};
}

template <typename S, typename E>
Field<S> enum_field(std::string key, E S::*member, std::vector<std::pair<std::string, E>> names) {
    return {key,
            [member, names, key](const toml::value& v, S& s, const Context& ctx) {
                std::string value;
                if (!read_string(v, value, ctx))
                    return;
                std::string choices;
                for (const auto& [name, e] : names) {
                    if (name == value) {
                        s.*member = e;
                        return;
                    }
                    choices += (choices.empty() ? "" : ", ") + name;
                }
                ctx.error(v,
                          key + ": unknown value " + quote(value) + " (one of: " + choices + ")");
            },
            [member, names](const S& s) {
                for (const auto& [name, e] : names) {
                    if (e == s.*member)
                        return quote(name);
                }
                return std::string("\"?\"");
            }};
}

} // namespace ember::core::config
