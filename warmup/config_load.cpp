// load_config(): TOML syntax, then one pass per section in dependency order
// (schedules and providers before the senders and rules that name them),
// then the cross-section checks. Every problem is collected as
// `file:line: message`; nothing throws out of here.

#include "core/config_table.hpp"
#include "core/net.hpp"
#include "warmup/config.hpp"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace ember::warmup {
namespace {

namespace cfg = core::config;
using cfg::Context;

constexpr std::uint32_t kMaxScheduleDays = 1000;
constexpr std::uint64_t kMaxCap = 1'000'000'000'000ULL;

// toml11 says "[error] toml::parse_key_value_pair: missing value ...\n --> file ...";
// the admin needs the first line, without the prefix and the parser function
// (the same wording as ember.toml's errors).
std::string syntax_message(std::string_view what) {
    auto line = what.substr(0, what.find('\n'));
    if (line.starts_with("[error] "))
        line.remove_prefix(8);
    if (line.starts_with("toml::")) {
        if (const auto colon = line.find(": "); colon != std::string_view::npos)
            line.remove_prefix(colon + 2);
    }
    return "syntax error: " + std::string(line);
}

std::optional<toml::value> parse_toml(std::string_view text, const std::string& name,
                                      core::Diagnostics& diag) {
    std::istringstream in{std::string(text)};
    try {
        return toml::parse(in, name);
    } catch (const toml::syntax_error& e) {
        diag.add(name, static_cast<std::uint32_t>(e.location().line()), syntax_message(e.what()));
    } catch (const std::exception& e) {
        diag.add(name, 0, syntax_message(e.what()));
    }
    return std::nullopt;
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

template <typename S>
cfg::Field<S> field(std::string key,
                    std::function<void(const toml::value&, S&, const Context&)> parse) {
    return {std::move(key), std::move(parse), [](const S&) {
                return std::string();
            }};
}

// The value of `key` in `table`, or the table itself (to report a missing key
// at the table's header).
const toml::value& at(const toml::value& table, const std::string& key) {
    if (table.is_table()) {
        const auto& t = table.as_table();
        if (const auto it = t.find(key); it != t.end())
            return it->second;
    }
    return table;
}

bool has(const toml::value& table, const std::string& key) {
    return table.is_table() && table.as_table().count(key) != 0;
}

// A share or threshold: a float (0.25), 0 or 1, or a percentage ("25%").
bool read_fraction(const toml::value& v, double& out, const Context& ctx) {
    std::optional<double> value;
    if (v.is_floating())
        value = v.as_floating();
    else if (v.is_integer())
        value = static_cast<double>(v.as_integer());
    else if (v.is_string())
        value = parse_percent(v.as_string().str);
    else {
        ctx.error(v, "expected a fraction (0.25) or a percentage (\"25%\"), found " + type_name(v));
        return false;
    }
    if (!value) {
        ctx.error(v, "invalid percentage " + cfg::quote(v.as_string().str) +
                         " (use e.g. \"25%\" or \"0.1%\")");
        return false;
    }
    if (!std::isfinite(*value) || *value < 0 || *value > 1) {
        ctx.error(v, "value " + format_percent(*value) + " is out of range [0%, 100%]");
        return false;
    }
    out = *value;
    return true;
}

bool read_rate(const toml::value& v, Rate& out, const Context& ctx) {
    std::string text;
    if (!cfg::read_string(v, text, ctx))
        return false;
    if (text == "unlimited") {
        out = Rate{};
        return true;
    }
    const auto rate = parse_rate(text);
    if (!rate) {
        ctx.error(v, "invalid rate " + cfg::quote(text) +
                         " (use e.g. \"10/s\", \"600/min\", \"5000/h\" or \"unlimited\")");
        return false;
    }
    out = *rate;
    return true;
}

bool read_day(const toml::value& v, Day& out, const Context& ctx) {
    if (v.is_local_date()) {
        const auto& d = v.as_local_date();
        const std::chrono::year_month_day ymd{
            std::chrono::year(d.year), std::chrono::month(d.month + 1U), std::chrono::day(d.day)};
        out = std::chrono::sys_days(ymd);
        return true;
    }
    if (v.is_string()) {
        if (const auto d = parse_day(v.as_string().str)) {
            out = *d;
            return true;
        }
        ctx.error(v, "invalid date " + cfg::quote(v.as_string().str) +
                         " (use 2026-03-01 or \"2026-03-01\")");
        return false;
    }
    ctx.error(v, "expected a date (2026-03-01), found " + type_name(v));
    return false;
}

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    });
    return s;
}

bool only(std::string_view s, std::string_view extra) {
    return std::all_of(s.begin(), s.end(), [extra](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
}

bool read_name(const toml::value& v, const std::string& what, std::string& out,
               const Context& ctx) {
    std::string text;
    if (!cfg::read_string(v, text, ctx))
        return false;
    if (text.empty() || !only(text, "_-")) {
        ctx.error(v, "invalid " + what + " name " + cfg::quote(text) +
                         " (use lowercase letters, digits, '-' and '_')");
        return false;
    }
    out = std::move(text);
    return true;
}

bool valid_domain(std::string_view d) {
    return !d.empty() && only(d, ".-") && d.front() != '.' && d.back() != '.' &&
           d.find("..") == std::string_view::npos;
}

bool read_domain(const toml::value& v, std::string& out, const Context& ctx) {
    std::string text;
    if (!cfg::read_string(v, text, ctx))
        return false;
    text = lowercase(std::move(text));
    if (!valid_domain(text)) {
        ctx.error(v, "invalid domain " + cfg::quote(text) + " (e.g. \"news.example.com\")");
        return false;
    }
    out = std::move(text);
    return true;
}

// Domain or MX patterns: '*' any run of characters, '?' one character.
bool read_patterns(const toml::value& v, std::vector<std::string>& out, const Context& ctx) {
    if (!v.is_array()) {
        ctx.error(v, "expected an array of strings, found " + type_name(v));
        return false;
    }
    out.clear();
    bool ok = true;
    for (const auto& item : v.as_array()) {
        std::string text;
        if (!cfg::read_string(item, text, ctx)) {
            ok = false;
            continue;
        }
        text = lowercase(std::move(text));
        if (text.empty() || !only(text, ".-*?") || text.front() == '.' || text.back() == '.') {
            ctx.error(item, "invalid domain pattern " + cfg::quote(text) +
                                " (use e.g. \"gmail.com\", \"hotmail.*\" or \"*.google.com\")");
            ok = false;
            continue;
        }
        out.push_back(std::move(text));
    }
    return ok;
}

bool compile(const toml::value& v, std::string& source, std::shared_ptr<const re2::RE2>& out,
             const Context& ctx) {
    if (!cfg::read_string(v, source, ctx))
        return false;
    if (source.empty()) {
        ctx.error(v, "empty pattern (leave the key out to match anything)");
        return false;
    }
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const re2::RE2>(source, options);
    if (!re->ok()) {
        // RE2 says "missing ): rate (limited"; the pattern is quoted already.
        std::string why = re->error();
        const auto arg = ": " + re->error_arg();
        if (why.size() > arg.size() && why.ends_with(arg))
            why.resize(why.size() - arg.size());
        ctx.error(v, "invalid pattern " + cfg::quote(source) + ": " + why);
        return false;
    }
    out = std::move(re);
    return true;
}

template <typename S>
cfg::Table<S> fraction_fields(std::vector<std::pair<std::string, double S::*>> keys) {
    cfg::Table<S> out;
    for (auto& [key, member] : keys) {
        out.push_back(field<S>(key, [member](const toml::value& v, S& s, const Context& ctx) {
            double value = 0;
            if (read_fraction(v, value, ctx))
                s.*member = value;
        }));
    }
    return out;
}

cfg::Table<Guardrails> guardrail_fields() {
    auto fields = fraction_fields<Guardrails>({
        {"max_bounce_rate", &Guardrails::max_bounce_rate},
        {"max_deferral_rate", &Guardrails::max_deferral_rate},
        {"max_complaint_rate", &Guardrails::max_complaint_rate},
        {"suspend_complaint_rate", &Guardrails::suspend_complaint_rate},
    });
    fields.push_back(
        field<Guardrails>("window", [](const toml::value& v, Guardrails& g, const Context& ctx) {
            core::Duration d{};
            if (!cfg::read_duration(v, std::chrono::hours(1), std::chrono::days(7), d, ctx))
                return;
            if (d % std::chrono::hours(1) != core::Duration::zero()) {
                ctx.error(v, "window must be whole hours (e.g. \"24h\", \"2d\")");
                return;
            }
            g.window = d;
        }));
    fields.push_back(cfg::integer_field("min_volume", &Guardrails::min_volume, 0, 1'000'000'000));
    return fields;
}

struct ScheduleDraft {
    Schedule schedule;
    std::uint64_t start = 0, ceiling = 0, steady_cap = 0;
    double growth = 0;
};

cfg::Table<ScheduleDraft> schedule_fields() {
    using D = ScheduleDraft;
    return {
        field<D>("caps",
                 [](const toml::value& v, D& d, const Context& ctx) {
                     if (!v.is_array() || v.as_array().empty()) {
                         ctx.error(v, "caps must be a non-empty array of daily caps "
                                      "(e.g. caps = [50, 100, 200])");
                         return;
                     }
                     if (v.as_array().size() > kMaxScheduleDays) {
                         ctx.error(v,
                                   fmt::format("caps lists more than {} days", kMaxScheduleDays));
                         return;
                     }
                     for (const auto& item : v.as_array()) {
                         std::int64_t cap = 0;
                         if (cfg::read_integer(item, 1, kMaxCap, cap, ctx))
                             d.schedule.caps.push_back(static_cast<std::uint64_t>(cap));
                     }
                 }),
        cfg::integer_field("start", &D::start, 1, kMaxCap),
        cfg::integer_field("ceiling", &D::ceiling, 1, kMaxCap),
        cfg::integer_field("steady_cap", &D::steady_cap, 1, kMaxCap),
        field<D>("growth",
                 [](const toml::value& v, D& d, const Context& ctx) {
                     double g = 0;
                     if (v.is_floating())
                         g = v.as_floating();
                     else if (v.is_integer())
                         g = static_cast<double>(v.as_integer());
                     else {
                         ctx.error(v,
                                   "expected a number (e.g. growth = 1.5), found " + type_name(v));
                         return;
                     }
                     if (!(g > 1.0 && g <= 10.0)) {
                         ctx.error(v, fmt::format("growth {} is out of range (1, 10]", g));
                         return;
                     }
                     d.growth = g;
                 }),
        field<D>("after",
                 [](const toml::value& v, D& d, const Context& ctx) {
                     cfg::enum_field<Schedule, After>(
                         "after", &Schedule::after,
                         {{"unlimited", After::Unlimited}, {"steady", After::Steady}})
                         .parse(v, d.schedule, ctx);
                 }),
        field<D>("spread",
                 [](const toml::value& v, D& d, const Context& ctx) {
                     cfg::enum_field<Schedule, Spread>(
                         "spread", &Schedule::spread,
                         {{"none", Spread::None}, {"hourly", Spread::Hourly}})
                         .parse(v, d.schedule, ctx);
                 }),
    };
}

class Loader {
public:
    Loader(const toml::value& root, Config& out, const Context& ctx)
        : root_(root), out_(out), ctx_(ctx) {}

    void run() {
        if (!root_.is_table())
            return;
        check_sections();
        section("defaults", [this](const toml::value& v) { defaults(v); });
        section("guardrails", [this](const toml::value& v) {
            cfg::parse_table(v, "[guardrails]", guardrail_fields(), out_.guardrails, ctx_);
            check_guardrails(v, out_.guardrails);
        });
        section("schedule", [this](const toml::value& v) { schedules(v); });
        array("provider", [this](const toml::value& v) { provider(v); });
        add_catch_all();
        array("sender", [this](const toml::value& v) { sender(v); });
        array("rule", [this](const toml::value& v) { rule(v); });
        std::stable_partition(out_.rules.begin(), out_.rules.end(),
                              [](const Rule& r) { return !r.provider.empty(); });
        check_default_schedule();
    }

private:
    void check_sections() {
        static const std::vector<std::string> known = {"defaults", "guardrails", "schedule",
                                                       "sender",   "provider",   "rule"};
        for (const auto& [key, value] : root_.as_table()) {
            if (std::find(known.begin(), known.end(), key) != known.end())
                continue;
            std::string message = value.is_table()
                                      ? "unknown section [" + key + "]"
                                      : "unknown key '" + key + "' outside any section";
            if (const auto hint = cfg::did_you_mean(key, known); !hint.empty())
                message += "; did you mean '" + hint + "'?";
            ctx_.error(value, std::move(message));
        }
    }

    template <typename F> void section(const std::string& name, F parse) {
        const auto& t = root_.as_table();
        const auto it = t.find(name);
        if (it == t.end())
            return;
        if (!it->second.is_table()) {
            ctx_.error(it->second, "[" + name + "] must be a table");
            return;
        }
        parse(it->second);
    }

    template <typename F> void array(const std::string& name, F parse) {
        const auto& t = root_.as_table();
        const auto it = t.find(name);
        if (it == t.end())
            return;
        if (!it->second.is_array()) {
            ctx_.error(it->second, "[[" + name + "]] must be an array of tables (write [[" + name +
                                       "]] headers)");
            return;
        }
        for (const auto& item : it->second.as_array()) {
            if (!item.is_table()) {
                ctx_.error(item, "each [[" + name + "]] must be a table");
                continue;
            }
            parse(item);
        }
    }

    void defaults(const toml::value& v) {
        cfg::Table<Config> fields = {
            field<Config>("schedule",
                          [](const toml::value& value, Config& c, const Context& ctx) {
                              std::string name;
                              if (read_name(value, "schedule", name, ctx))
                                  c.default_schedule = name == "none" ? "" : name;
                          }),
            field<Config>("recovery_step",
                          [](const toml::value& value, Config& c, const Context& ctx) {
                              double step = 0;
                              if (!read_fraction(value, step, ctx))
                                  return;
                              if (step <= 0) {
                                  ctx.error(value, "recovery_step must be above 0%");
                                  return;
                              }
                              c.recovery.step = step;
                          }),
            field<Config>("recovery_interval",
                          [](const toml::value& value, Config& c, const Context& ctx) {
                              core::Duration d{};
                              if (cfg::read_duration(value, std::chrono::seconds(1),
                                                     std::chrono::days(1), d, ctx))
                                  c.recovery.interval = d;
                          }),
        };
        cfg::parse_table(v, "[defaults]", fields, out_, ctx_);
    }

    void check_guardrails(const toml::value& table, const Guardrails& g) {
        if (g.suspend_complaint_rate < g.max_complaint_rate)
            ctx_.error(at(table, "suspend_complaint_rate"),
                       fmt::format("suspend_complaint_rate ({}) is below max_complaint_rate ({})",
                                   format_percent(g.suspend_complaint_rate),
                                   format_percent(g.max_complaint_rate)));
    }

    void schedules(const toml::value& v) {
        for (const auto& [name, table] : v.as_table()) {
            if (!table.is_table()) {
                ctx_.error(table, "[schedule." + name + "] must be a table");
                continue;
            }
            if (name == "none" || name.empty() || !only(name, "_-")) {
                ctx_.error(table, "invalid schedule name " + cfg::quote(name) +
                                      (name == "none" ? " (\"none\" means unthrottled)"
                                                      : " (use lowercase letters, digits, '-' "
                                                        "and '_')"));
                continue;
            }
            schedule(name, table);
        }
        // toml11 tables are unordered: keep the file's order for status and docs.
        std::sort(out_.schedules.begin(), out_.schedules.end(),
                  [this](const Schedule& a, const Schedule& b) {
                      return line_of_schedule(a.name) < line_of_schedule(b.name);
                  });
    }

    std::size_t line_of_schedule(const std::string& name) const {
        return root_.as_table().at("schedule").as_table().at(name).location().line();
    }

    void schedule(const std::string& name, const toml::value& table) {
        ScheduleDraft d;
        d.schedule.name = name;
        const auto before = ctx_.diag.size();
        cfg::parse_table(table, "[schedule." + name + "]", schedule_fields(), d, ctx_);
        if (ctx_.diag.size() != before)
            return;
        const bool listed = has(table, "caps");
        const bool rule = has(table, "start") || has(table, "growth") || has(table, "ceiling");
        if (listed == rule) {
            ctx_.error(table, "[schedule." + name +
                                  "] needs either caps = [...] or start, "
                                  "growth and ceiling");
            return;
        }
        if (rule && !expand(table, d))
            return;
        if (d.schedule.after == After::Unlimited && has(table, "steady_cap")) {
            ctx_.error(at(table, "steady_cap"), "steady_cap needs after = \"steady\"");
            return;
        }
        d.schedule.steady_cap = d.steady_cap != 0 ? d.steady_cap : d.schedule.caps.back();
        out_.schedules.push_back(std::move(d.schedule));
    }

    // start, growth, ceiling -> caps: day n = min(ceiling, round(start * growth^(n-1))),
    // ending with the first day that reaches the ceiling.
    bool expand(const toml::value& table, ScheduleDraft& d) {
        for (const char* key : {"start", "growth", "ceiling"}) {
            if (!has(table, key)) {
                ctx_.error(table, fmt::format("[schedule.{}] needs {} (with start, growth and "
                                              "ceiling)",
                                              d.schedule.name, key));
                return false;
            }
        }
        if (d.ceiling < d.start) {
            ctx_.error(at(table, "ceiling"),
                       fmt::format("ceiling ({}) is below start ({})", d.ceiling, d.start));
            return false;
        }
        double cap = static_cast<double>(d.start);
        while (d.schedule.caps.size() < kMaxScheduleDays) {
            const auto rounded = static_cast<std::uint64_t>(std::llround(cap));
            d.schedule.caps.push_back(std::min(rounded, d.ceiling));
            if (rounded >= d.ceiling)
                return true;
            cap *= d.growth;
        }
        ctx_.error(
            at(table, "growth"),
            fmt::format("the ramp needs more than {} days to reach its ceiling", kMaxScheduleDays));
        return false;
    }

    void provider(const toml::value& table) {
        Provider p;
        p.line = static_cast<std::uint32_t>(table.location().line());
        const cfg::Table<Provider> fields = {
            field<Provider>("name",
                            [](const toml::value& v, Provider& s, const Context& ctx) {
                                std::string n;
                                if (read_name(v, "provider", n, ctx))
                                    s.name = std::move(n);
                            }),
            field<Provider>("domains",
                            [](const toml::value& v, Provider& s, const Context& ctx) {
                                (void)read_patterns(v, s.domains, ctx);
                            }),
            field<Provider>("mx", [](const toml::value& v, Provider& s,
                                     const Context& ctx) { (void)read_patterns(v, s.mx, ctx); }),
            cfg::integer_field("max_connections", &Provider::max_connections, 0, 100000),
            cfg::integer_field("max_messages_per_connection",
                               &Provider::max_messages_per_connection, 0, 1000000),
            field<Provider>("max_rate",
                            [](const toml::value& v, Provider& s, const Context& ctx) {
                                (void)read_rate(v, s.max_rate, ctx);
                            }),
            field<Provider>("share",
                            [](const toml::value& v, Provider& s, const Context& ctx) {
                                double share = 0;
                                if (!read_fraction(v, share, ctx))
                                    return;
                                if (share <= 0) {
                                    ctx.error(v, "share must be above 0% (pause a provider "
                                                 "with emberctl warmup pause)");
                                    return;
                                }
                                s.share = share;
                            }),
        };
        const auto before = ctx_.diag.size();
        cfg::parse_table(table, "[[provider]]", fields, p, ctx_);
        if (!has(table, "name")) {
            ctx_.error(table, "[[provider]] needs a name (e.g. name = \"gmail\")");
            return;
        }
        if (ctx_.diag.size() != before)
            return;
        check_provider(table, p);
    }

    void check_provider(const toml::value& table, Provider& p) {
        if (const auto* other = out_.provider(p.name)) {
            ctx_.error(at(table, "name"), fmt::format("provider {} is already defined at line {}",
                                                      cfg::quote(p.name), other->line));
            return;
        }
        if (p.catch_all()) {
            for (const auto& q : out_.providers) {
                if (q.catch_all()) {
                    ctx_.error(table, fmt::format("provider {} has neither domains nor mx, like "
                                                  "{} (line {}): only one catch-all provider",
                                                  cfg::quote(p.name), cfg::quote(q.name), q.line));
                    return;
                }
            }
        }
        for (const auto& pattern : p.domains) {
            const auto [it, fresh] = domain_owner_.emplace(pattern, p.name);
            if (!fresh) {
                ctx_.error(at(table, "domains"),
                           fmt::format("domain {} is already in provider {}", cfg::quote(pattern),
                                       cfg::quote(it->second)));
                return;
            }
        }
        out_.providers.push_back(std::move(p));
    }

    void add_catch_all() {
        if (std::any_of(out_.providers.begin(), out_.providers.end(),
                        [](const Provider& p) { return p.catch_all(); }))
            return;
        if (const auto* taken = out_.provider("other")) {
            ctx_.error(root_.as_table().at("provider").as_array().at(0),
                       fmt::format("provider \"other\" (line {}) has domains or mx; add a "
                                   "catch-all provider (one without domains and mx)",
                                   taken->line));
            return;
        }
        Provider other;
        other.name = "other";
        out_.providers.push_back(std::move(other));
    }

    void sender(const toml::value& table) {
        Sender s;
        s.line = static_cast<std::uint32_t>(table.location().line());
        s.guardrails = out_.guardrails;
        const cfg::Table<Sender> fields = {
            field<Sender>("domain",
                          [](const toml::value& v, Sender& x, const Context& ctx) {
                              (void)read_domain(v, x.domain, ctx);
                          }),
            field<Sender>("source",
                          [](const toml::value& v, Sender& x, const Context& ctx) {
                              std::string text;
                              if (!cfg::read_string(v, text, ctx))
                                  return;
                              if (!core::IpAddress::parse(text)) {
                                  ctx.error(v, "invalid source address " + cfg::quote(text) +
                                                   " (an IPv4 or IPv6 address)");
                                  return;
                              }
                              x.source = std::move(text);
                          }),
            field<Sender>("schedule",
                          [](const toml::value& v, Sender& x, const Context& ctx) {
                              (void)read_name(v, "schedule", x.schedule, ctx);
                          }),
            field<Sender>("start", [](const toml::value& v, Sender& x,
                                      const Context& ctx) { (void)read_day(v, x.start, ctx); }),
            field<Sender>("guardrails",
                          [this](const toml::value& v, Sender& x, const Context& ctx) {
                              cfg::parse_table(v, "[sender.guardrails]", guardrail_fields(),
                                               x.guardrails, ctx);
                              check_guardrails(v, x.guardrails);
                          }),
        };
        const auto before = ctx_.diag.size();
        cfg::parse_table(table, "[[sender]]", fields, s, ctx_);
        for (const auto& [key, example] : {std::pair{"domain", "domain = \"news.example.com\""},
                                           std::pair{"schedule", "schedule = \"standard\""},
                                           std::pair{"start", "start = 2026-03-01"}}) {
            if (!has(table, key))
                ctx_.error(table, fmt::format("[[sender]] needs a {} (e.g. {})", key, example));
        }
        if (ctx_.diag.size() != before)
            return;
        check_sender(table, std::move(s));
    }

    void check_sender(const toml::value& table, Sender s) {
        if (out_.schedule(s.schedule) == nullptr) {
            ctx_.error(at(table, "schedule"), unknown_schedule(s.schedule));
            return;
        }
        for (const auto& other : out_.senders) {
            if (other.domain == s.domain && other.source == s.source) {
                ctx_.error(table,
                           fmt::format("sender {}{} is already defined at line {}",
                                       cfg::quote(s.domain),
                                       s.source.empty() ? "" : " source " + s.source, other.line));
                return;
            }
        }
        out_.senders.push_back(std::move(s));
    }

    std::string unknown_schedule(const std::string& name) const {
        std::vector<std::string> names;
        for (const auto& s : out_.schedules)
            names.push_back(s.name);
        std::string message = "unknown schedule " + cfg::quote(name);
        if (const auto hint = cfg::did_you_mean(name, names); !hint.empty())
            message += "; did you mean '" + hint + "'?";
        return message;
    }

    void rule(const toml::value& table) {
        Rule r;
        r.line = static_cast<std::uint32_t>(table.location().line());
        const auto before = ctx_.diag.size();
        cfg::parse_table(table, "[[rule]]", rule_fields(), r, ctx_);
        if (!has(table, "action"))
            ctx_.error(table, "[[rule]] needs an action (backoff, suspend or retry-later)");
        else if (!has(table, "code") && !has(table, "enhanced") && !has(table, "text"))
            ctx_.error(table, "[[rule]] needs at least one of code, enhanced or text");
        if (ctx_.diag.size() != before)
            return;
        if (!r.provider.empty() && out_.provider(r.provider) == nullptr) {
            std::vector<std::string> names;
            for (const auto& p : out_.providers)
                names.push_back(p.name);
            std::string message = "unknown provider " + cfg::quote(r.provider);
            if (const auto hint = cfg::did_you_mean(r.provider, names); !hint.empty())
                message += "; did you mean '" + hint + "'?";
            ctx_.error(at(table, "provider"), message);
            return;
        }
        if (r.action != Action::Backoff && has(table, "factor")) {
            ctx_.error(at(table, "factor"), "factor only applies to action = \"backoff\"");
            return;
        }
        if (r.action == Action::RetryLater && has(table, "duration")) {
            ctx_.error(at(table, "duration"),
                       "duration does not apply to action = \"retry-later\" (the queue's retry "
                       "schedule decides)");
            return;
        }
        out_.rules.push_back(std::move(r));
    }

    static cfg::Table<Rule> rule_fields() {
        return {
            field<Rule>("provider",
                        [](const toml::value& v, Rule& r, const Context& ctx) {
                            (void)read_name(v, "provider", r.provider, ctx);
                        }),
            field<Rule>("code",
                        [](const toml::value& v, Rule& r, const Context& ctx) {
                            (void)compile(v, r.code, r.code_re, ctx);
                        }),
            field<Rule>("enhanced",
                        [](const toml::value& v, Rule& r, const Context& ctx) {
                            (void)compile(v, r.enhanced, r.enhanced_re, ctx);
                        }),
            field<Rule>("text",
                        [](const toml::value& v, Rule& r, const Context& ctx) {
                            (void)compile(v, r.text, r.text_re, ctx);
                        }),
            cfg::enum_field<Rule, Action>("action", &Rule::action,
                                          {{"backoff", Action::Backoff},
                                           {"suspend", Action::Suspend},
                                           {"retry-later", Action::RetryLater}}),
            field<Rule>("factor",
                        [](const toml::value& v, Rule& r, const Context& ctx) {
                            if (!v.is_floating()) {
                                ctx.error(v, "expected a float (e.g. factor = 0.5), found " +
                                                 type_name(v));
                                return;
                            }
                            const double f = v.as_floating();
                            if (!(f > 0 && f < 1)) {
                                ctx.error(v, fmt::format("factor {} is out of range (0, 1)", f));
                                return;
                            }
                            r.factor = f;
                        }),
            cfg::duration_field("duration", &Rule::duration, std::chrono::minutes(1),
                                std::chrono::days(7)),
        };
    }

    void check_default_schedule() {
        if (out_.default_schedule.empty() || out_.schedule(out_.default_schedule) != nullptr)
            return;
        const auto& defaults = root_.as_table().at("defaults");
        ctx_.error(at(defaults, "schedule"), unknown_schedule(out_.default_schedule) +
                                                 " (or \"none\": unlisted domains are "
                                                 "unthrottled)");
    }

    const toml::value& root_;
    Config& out_;
    const Context& ctx_;
    std::map<std::string, std::string> domain_owner_; // domain pattern -> provider
};

} // namespace

std::optional<Config> parse_config(std::string_view text, const std::string& name,
                                   core::Diagnostics& diag) {
    const auto before = diag.size();
    const auto root = parse_toml(text, name, diag);
    if (!root)
        return std::nullopt;
    Config config;
    config.file = name;
    const Context ctx{diag, {}};
    if (!root->is_table()) {
        diag.add(name, 0, "the file must hold TOML tables");
        return std::nullopt;
    }
    Loader(*root, config, ctx).run();
    if (diag.size() != before)
        return std::nullopt;
    return config;
}

std::optional<Config> load_config(const std::string& path, core::Diagnostics& diag) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        diag.add(path, 0, "cannot read the warm-up configuration: Is a directory");
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.add(path, 0,
                 std::string("cannot read the warm-up configuration: ") + std::strerror(errno));
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path, diag);
}

} // namespace ember::warmup
