// The config table of personalization: [personalize]
// (daemon/personalize_config.hpp, ember-hook(7)). Same rules as
// config_tables.cpp: one row per key, defaults in the structs. The hook URL
// is checked with the hook client's own parser, so --check refuses what
// the daemon could not use.

#include "daemon/config_tables.hpp"

#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
namespace pz = personalize;
using namespace std::chrono_literals;

cfg::Field<PersonalizeConfig> hook_url_field() {
    auto field = cfg::nested(&PersonalizeConfig::hook,
                             cfg::string_field<pz::HookConfig>("hook", &pz::HookConfig::url));
    field.parse = [](const toml::value& v, PersonalizeConfig& p, const cfg::Context& ctx) {
        std::string value;
        if (!cfg::read_string(v, value, ctx))
            return;
        std::string error;
        if (!value.empty() && !pz::parse_hook_url(value, error)) {
            ctx.error(v, "hook: " + cfg::quote(value) + ": " + error);
            return;
        }
        p.hook.url = std::move(value);
    };
    return field;
}

template <typename F> cfg::Field<PersonalizeConfig> hook(F&& field) {
    return cfg::nested(&PersonalizeConfig::hook, std::forward<F>(field));
}
template <typename F> cfg::Field<PersonalizeConfig> breaker(F&& field) {
    return hook(cfg::nested(&pz::HookConfig::breaker, std::forward<F>(field)));
}
template <typename F> cfg::Field<PersonalizeConfig> send_time(F&& field) {
    return cfg::nested(&PersonalizeConfig::send_time, std::forward<F>(field));
}

const cfg::Table<PersonalizeConfig>& personalize_table() {
    using H = pz::HookConfig;
    using B = pz::BreakerConfig;
    using T = pz::SendTimeConfig;
    static const cfg::Table<PersonalizeConfig> table{
        hook_url_field(),
        hook(cfg::duration_field<H>("hook_timeout", &H::timeout, 10ms, 10s)),
        hook(cfg::integer_field<H>("hook_batch", &H::batch, 1, 1000)),
        hook(cfg::integer_field<H>("hook_concurrency", &H::concurrency, 1, 256)),
        hook(cfg::enum_field<H>("on_error", &H::on_error,
                                {{"send-default", pz::HookErrorPolicy::SendDefault},
                                 {"defer", pz::HookErrorPolicy::Defer}})),
        breaker(cfg::integer_field<B>("hook_breaker_failures", &B::failure_threshold, 0, 1000)),
        breaker(cfg::duration_field<B>("hook_breaker_cooldown", &B::cool_down, 1s, 1h)),
        hook(cfg::size_field<H>("hook_max_response", &H::max_response, core::ByteSize{4096},
                                core::ByteSize{std::uint64_t{64} << 20})),
        send_time(
            cfg::integer_field<T>("sto_min_contact_events", &T::min_contact_events, 0, 10000)),
        send_time(
            cfg::integer_field<T>("sto_min_domain_events", &T::min_domain_events, 0, 1000000)),
        send_time(cfg::duration_field<T>("sto_max_window", &T::max_window, 1h, 30 * 24h)),
        cfg::nested(&PersonalizeConfig::contacts,
                    cfg::bool_field<pz::ContactsConfig>("contacts_create_on_event",
                                                        &pz::ContactsConfig::create_on_event)),
    };
    return table;
}

} // namespace

std::vector<Section> personalize_sections() {
    Section s;
    s.name = "personalize";
    s.parse = [](const toml::value& v, Config& c, const cfg::Context& ctx) {
        cfg::parse_table(v, "[personalize]", personalize_table(), c.personalize, ctx);
    };
    s.dump = [](const Config& c) {
        return "[personalize]\n" + cfg::dump_table(personalize_table(), c.personalize);
    };
    s.docs = [] {
        std::vector<KeyDoc> out;
        const PersonalizeConfig defaults{};
        for (const auto& f : personalize_table())
            out.push_back({"personalize", f.key, f.dump(defaults)});
        return out;
    };
    return {std::move(s)};
}

} // namespace ember::daemon
