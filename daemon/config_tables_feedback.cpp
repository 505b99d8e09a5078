// The config tables of the feedback loop: [feedback], [events] and
// [[webhook]] (daemon/feedback_config.hpp). Same rules as
// config_tables.cpp: one row per key, defaults in the structs. Rules across
// the keys of [feedback] are checked when the table has been read; the
// section comes after [http], so public_url is known by then.

#include "daemon/config_tables.hpp"
#include "feedback/tokens.hpp"

#include <set>
#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
using namespace std::chrono_literals;

void domain_error(const toml::value& v, const cfg::Context& ctx, std::string_view key,
                  const std::string& value) {
    ctx.error(v, std::string(key) + ": " + cfg::quote(value) +
                     " is not a domain name (dot-separated labels of letters, digits and '-')");
}

// A domain name or "" (the key is off), lowercased.
template <typename S>
cfg::Field<S> domain_field(std::string key, std::string S::*member, bool allow_empty = true) {
    auto field = cfg::string_field<S>(key, member);
    field.parse = [key, member, allow_empty](const toml::value& v, S& s, const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_string(v, value, ctx))
            return;
        if ((!allow_empty || !value.empty()) && !valid_hostname(value)) {
            domain_error(v, ctx, key, value);
            return;
        }
        s.*member = core::address_domain("@" + value);
    };
    return field;
}

// The local part in front of "+TOKEN@": a dot-atom without '+' (RFC 5322
// 3.2.3 atext), so the token is always what follows the first '+'.
cfg::Field<feedback::InboundConfig> local_part_field(std::string key,
                                                     std::string feedback::InboundConfig::*m) {
    auto field = cfg::string_field<feedback::InboundConfig>(key, m);
    field.parse = [key, m](const toml::value& v, feedback::InboundConfig& s,
                           const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_string(v, value, ctx))
            return;
        const bool ok = !value.empty() && value.size() <= 16 &&
                        value.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
                            std::string::npos &&
                        value.front() != '.' && value.back() != '.';
        if (!ok) {
            ctx.error(v, key + ": " + cfg::quote(value) +
                             " must be 1 to 16 letters, digits, '-', '_' or '.' (no '+')");
            return;
        }
        s.*m = std::move(value);
    };
    return field;
}

// "id:secret" items, each checked by feedback::parse_token_key, ids unique.
// Dumped with the secrets masked: --dump-config must not print them.
cfg::Field<FeedbackConfig> token_keys_field() {
    return {"token_keys",
            [](const toml::value& v, FeedbackConfig& f, const cfg::Context& ctx) {
                std::vector<std::string> items;
                if (!cfg::read_string_list(v, items, ctx))
                    return;
                std::set<std::string> ids;
                for (const auto& item : items) {
                    std::string error;
                    const auto key = feedback::parse_token_key(item, error);
                    if (!key) {
                        ctx.error(v, "token_keys: " + error);
                        return;
                    }
                    if (!ids.insert(key->id).second) {
                        ctx.error(v, "token_keys: the key id " + cfg::quote(key->id) +
                                         " is used twice");
                        return;
                    }
                }
                f.token_keys = std::move(items);
            },
            [](const FeedbackConfig& f) {
                std::vector<std::string> masked;
                for (const auto& item : f.token_keys)
                    masked.push_back(item.substr(0, item.find(':')) + ":********");
                return cfg::quote_list(masked);
            }};
}

cfg::Field<FeedbackConfig> bounce_domains_field() {
    return {"bounce_domains",
            [](const toml::value& v, FeedbackConfig& f, const cfg::Context& ctx) {
                if (!v.is_table()) {
                    ctx.error(v, "bounce_domains: expected a table of sending domain = bounce "
                                 "domain (e.g. { \"example.com\" = \"bounce.example.com\" })");
                    return;
                }
                std::map<std::string, std::string> out;
                for (const auto& [key, value] : v.as_table()) {
                    std::string bounce;
                    if (!cfg::read_string(value, bounce, ctx))
                        return;
                    if (!valid_hostname(key))
                        return domain_error(value, ctx, "bounce_domains", key);
                    if (!valid_hostname(bounce))
                        return domain_error(value, ctx, "bounce_domains", bounce);
                    out[core::address_domain("@" + key)] = core::address_domain("@" + bounce);
                }
                f.bounce_domains = std::move(out);
            },
            [](const FeedbackConfig& f) {
                std::string out = "{";
                for (const auto& [key, value] : f.bounce_domains)
                    out +=
                        (out.size() > 1 ? ", " : " ") + cfg::quote(key) + " = " + cfg::quote(value);
                return out + (f.bounce_domains.empty() ? "}" : " }");
            }};
}

// "*" or domain names, lowercased.
cfg::Field<FeedbackConfig> unsubscribe_domains_field() {
    auto field = cfg::string_list_field<FeedbackConfig>("unsubscribe_domains",
                                                        &FeedbackConfig::unsubscribe_domains);
    field.parse = [](const toml::value& v, FeedbackConfig& f, const cfg::Context& ctx) {
        std::vector<std::string> items;
        if (!cfg::read_string_list(v, items, ctx))
            return;
        for (auto& item : items) {
            if (item != "*" && !valid_hostname(item))
                return domain_error(v, ctx, "unsubscribe_domains", item);
            if (item != "*")
                item = core::address_domain("@" + item);
        }
        f.unsubscribe_domains = std::move(items);
    };
    return field;
}

cfg::Field<feedback::InboundConfig> report_addresses_field() {
    auto field = cfg::string_list_field<feedback::InboundConfig>(
        "report_addresses", &feedback::InboundConfig::report_addresses);
    field.parse = [](const toml::value& v, feedback::InboundConfig& s, const cfg::Context& ctx) {
        std::vector<std::string> items;
        if (!cfg::read_string_list(v, items, ctx))
            return;
        for (auto& item : items) {
            const auto normal = feedback::normalize_address(item);
            if (!normal) {
                ctx.error(v, "report_addresses: " + cfg::quote(item) + " is not an address");
                return;
            }
            item = *normal;
        }
        s.report_addresses = std::move(items);
    };
    return field;
}

// Admin bounce-rules files (feedback/README.md), relative to the config file.
cfg::Field<feedback::ClassifyConfig> rules_files_field() {
    auto field = cfg::string_list_field<feedback::ClassifyConfig>(
        "rules_files", &feedback::ClassifyConfig::rules_files);
    field.parse = [](const toml::value& v, feedback::ClassifyConfig& s, const cfg::Context& ctx) {
        std::vector<std::string> items;
        if (!cfg::read_string_list(v, items, ctx))
            return;
        for (auto& item : items) {
            std::filesystem::path p(item);
            if (p.is_relative())
                p = ctx.base_dir / p;
            item = p.lexically_normal().string();
        }
        s.rules_files = std::move(items);
    };
    return field;
}

cfg::Field<feedback::SuppressionConfig>
scope_field(std::string key, feedback::SuppressionScope feedback::SuppressionConfig::*m) {
    return cfg::enum_field<feedback::SuppressionConfig>(
        std::move(key), m,
        {{"domain", feedback::SuppressionScope::Domain},
         {"global", feedback::SuppressionScope::Global}});
}

template <typename F> cfg::Field<FeedbackConfig> suppression(F&& field) {
    return cfg::nested(&FeedbackConfig::suppression, std::forward<F>(field));
}
template <typename F> cfg::Field<FeedbackConfig> inbound(F&& field) {
    return cfg::nested(&FeedbackConfig::inbound, std::forward<F>(field));
}
template <typename F> cfg::Field<FeedbackConfig> classify(F&& field) {
    return cfg::nested(&FeedbackConfig::classify, std::forward<F>(field));
}

const cfg::Table<FeedbackConfig>& feedback_table() {
    using F = FeedbackConfig;
    using S = feedback::SuppressionConfig;
    using I = feedback::InboundConfig;
    using C = feedback::ClassifyConfig;
    static const cfg::Table<F> table{
        token_keys_field(),
        cfg::bool_field<F>("verp", &F::verp),
        domain_field<F>("bounce_domain", &F::bounce_domain),
        bounce_domains_field(),
        inbound(local_part_field("verp_local_part", &I::verp_local_part)),
        inbound(report_addresses_field()),
        cfg::enum_field<F>(
            "suppression_at_rcpt", &F::suppression_at_rcpt,
            {{"drop", SuppressionAtRcpt::Drop}, {"reject", SuppressionAtRcpt::Reject}}),
        suppression(cfg::integer_field<S>("soft_bounce_limit", &S::soft_bounce_limit, 0,
                                          feedback::kMaxSoftBounceLimit)),
        suppression(
            cfg::duration_field<S>("soft_bounce_window", &S::soft_bounce_window, 1h, 365 * 24h)),
        suppression(scope_field("complaint_scope", &S::complaint_scope)),
        suppression(scope_field("unsubscribe_scope", &S::unsubscribe_scope)),
        unsubscribe_domains_field(),
        domain_field<F>("unsubscribe_mailto_domain", &F::unsubscribe_mailto_domain),
        inbound(local_part_field("unsubscribe_local_part", &I::unsubscribe_local_part)),
        classify(rules_files_field()),
        classify(cfg::bool_field<C>("builtin_rules", &C::builtin_rules)),
    };
    return table;
}

// What a [feedback] table needs as a whole (each error names the key to change).
void check_feedback(const toml::value& v, const Config& c, const cfg::Context& ctx) {
    const auto& f = c.feedback;
    if (f.verp && f.token_keys.empty())
        ctx.error(v, "[feedback] verp = true needs token_keys (VERP addresses are signed)");
    if (f.verp && f.bounce_domain.empty() && f.bounce_domains.empty())
        ctx.error(v, "[feedback] verp = true needs bounce_domain or bounce_domains");
    if (!f.unsubscribe_domains.empty() && f.token_keys.empty())
        ctx.error(v, "[feedback] unsubscribe_domains needs token_keys (unsubscribe links are "
                     "signed)");
    if (!f.unsubscribe_domains.empty() && c.http.public_url.empty() &&
        f.unsubscribe_mailto_domain.empty())
        ctx.error(v, "[feedback] unsubscribe_domains needs [http] public_url or "
                     "unsubscribe_mailto_domain (somewhere for List-Unsubscribe to point)");
    if (f.inbound.verp_local_part == f.inbound.unsubscribe_local_part)
        ctx.error(v, "[feedback] verp_local_part and unsubscribe_local_part must differ");
}

const cfg::Table<feedback::WebhookConfig>& events_webhook_table() {
    using W = feedback::WebhookConfig;
    static const cfg::Table<W> table{
        cfg::duration_field<W>("webhook_max_age", &W::max_age, 1min, 90 * 24h),
        cfg::duration_field<W>("webhook_retry_initial", &W::retry_initial, 100ms, 1h),
        cfg::duration_field<W>("webhook_retry_max", &W::retry_max, 1s, 24h),
    };
    return table;
}

const cfg::Table<EventsConfig>& events_table() {
    static const cfg::Table<EventsConfig> table = [] {
        cfg::Table<EventsConfig> t{cfg::nested(
            &EventsConfig::log,
            cfg::path_field<feedback::EventLogConfig>("log", &feedback::EventLogConfig::path))};
        for (const auto& f : events_webhook_table())
            t.push_back(cfg::nested(&EventsConfig::webhooks, f));
        return t;
    }();
    return table;
}

const cfg::Table<feedback::WebhookEndpointConfig>& webhook_table() {
    using E = feedback::WebhookEndpointConfig;
    static const cfg::Table<E> table{
        cfg::string_field<E>("url", &E::url, false),
        {"secret",
         [](const toml::value& v, E& e, const cfg::Context& ctx) {
             std::string value;
             if (!cfg::read_string(v, value, ctx))
                 return;
             if (value.size() < feedback::kMinSecretSize) {
                 ctx.error(v, "secret must be at least " +
                                  std::to_string(feedback::kMinSecretSize) + " octets");
                 return;
             }
             e.secret = std::move(value);
         },
         [](const E& e) {
             return cfg::quote(e.secret.empty() ? "" : "********");
         }},
        cfg::integer_field<E>("batch_size", &E::batch_size, 1, 10000),
        cfg::duration_field<E>("max_delay", &E::max_delay, 0s, 1h),
        cfg::duration_field<E>("timeout", &E::timeout, 1s, 10min),
        cfg::path_field<E>("ca_file", &E::ca_file),
    };
    return table;
}

void parse_webhook(const toml::value& v, Config& c, const cfg::Context& ctx) {
    feedback::WebhookEndpointConfig endpoint;
    cfg::parse_table(v, "[[webhook]]", webhook_table(), endpoint, ctx);
    if (v.is_table()) {
        for (const char* required : {"url", "secret"}) {
            if (!v.as_table().contains(required))
                ctx.error(v, std::string("[[webhook]] needs ") + required);
        }
        std::string error;
        if (!endpoint.url.empty() && !feedback::parse_webhook_url(endpoint.url, error))
            ctx.error(v.as_table().at("url"), "[[webhook]] url: " + error);
        for (const auto& other : c.events.webhooks.endpoints) {
            if (!endpoint.url.empty() && other.url == endpoint.url)
                ctx.error(v, "[[webhook]] url " + cfg::quote(endpoint.url) + " is listed twice");
        }
    }
    c.events.webhooks.endpoints.push_back(std::move(endpoint));
}

template <typename S>
std::vector<KeyDoc> docs_of(const std::string& name, const cfg::Table<S>& table) {
    std::vector<KeyDoc> out;
    const S defaults{};
    for (const auto& f : table)
        out.push_back({name, f.key, f.dump(defaults)});
    return out;
}

Section feedback_section() {
    Section s;
    s.name = "feedback";
    s.parse = [](const toml::value& v, Config& c, const cfg::Context& ctx) {
        cfg::parse_table(v, "[feedback]", feedback_table(), c.feedback, ctx);
        check_feedback(v, c, ctx);
    };
    s.dump = [](const Config& c) {
        return "[feedback]\n" + cfg::dump_table(feedback_table(), c.feedback);
    };
    s.docs = [] {
        return docs_of("feedback", feedback_table());
    };
    return s;
}

Section events_section() {
    Section s;
    s.name = "events";
    s.parse = [](const toml::value& v, Config& c, const cfg::Context& ctx) {
        cfg::parse_table(v, "[events]", events_table(), c.events, ctx);
        if (c.events.webhooks.retry_initial > c.events.webhooks.retry_max)
            ctx.error(v, "[events] webhook_retry_initial is longer than webhook_retry_max");
    };
    s.dump = [](const Config& c) {
        return "[events]\n" + cfg::dump_table(events_table(), c.events);
    };
    s.docs = [] {
        return docs_of("events", events_table());
    };
    return s;
}

Section webhook_section() {
    Section s;
    s.name = "webhook";
    s.array = true;
    s.parse = parse_webhook;
    s.dump = [](const Config& c) {
        std::string out;
        for (const auto& e : c.events.webhooks.endpoints)
            out += (out.empty() ? "" : "\n") + std::string("[[webhook]]\n") +
                   cfg::dump_table(webhook_table(), e);
        return out;
    };
    s.docs = [] {
        auto docs = docs_of("webhook", webhook_table());
        for (auto& d : docs) {
            if (d.key == "url" || d.key == "secret") {
                d.default_value.clear();
                d.required = true;
            }
        }
        return docs;
    };
    return s;
}

} // namespace

std::vector<Section> feedback_sections() {
    std::vector<Section> out;
    out.push_back(feedback_section());
    out.push_back(events_section());
    out.push_back(webhook_section());
    return out;
}

} // namespace ember::daemon
