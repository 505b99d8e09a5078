#include "daemon/ctl_api.hpp"

#include "daemon/api_keys.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <ostream>

namespace ember::daemon::ctl {

void api_key_new_options(CLI::App& command, VerbArgs&) {
    command.add_option("--name", "the key's name (logs, Received:)")->required();
    command
        .add_option("--domain", "a sending domain the key may use; repeat for several, "
                                "\"*\" for any")
        ->required()
        ->take_all();
}

namespace {

// What goes between the quotes of the TOML block unescaped.
bool plain(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '*';
    });
}

} // namespace

int run_api_key_new(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    namespace json = boost::json;
    const auto& args = invocation.args;
    const auto* name = args.if_contains("name");
    const auto* domain = args.if_contains("domain");
    std::vector<std::string> domains;
    if (domain && domain->is_string())
        domains.emplace_back(domain->get_string());
    if (domain && domain->is_array()) {
        for (const auto& d : domain->get_array())
            domains.emplace_back(d.as_string());
    }
    const auto token = daemon::new_token();
    if (!token || !name || !name->is_string() || domains.empty()) {
        err << "emberctl: api-key new: "
            << (token ? "--name and --domain are required" : "no random bytes") << "\n";
        return kExitUsage;
    }
    const std::string key_name(name->get_string());
    const bool names_ok = plain(key_name) && std::all_of(domains.begin(), domains.end(),
                                                         [](const auto& d) { return plain(d); });
    if (!names_ok) {
        err << "emberctl: api-key new: names and domains are letters, digits, '-', '_', '.' "
               "(or \"*\")\n";
        return kExitUsage;
    }
    if (invocation.options.json) {
        out << json::serialize(
                   json::object{{"name", key_name},
                                {"token", *token},
                                {"hash", daemon::token_hash_hex(*token)},
                                {"domains", json::array(domains.begin(), domains.end())}})
            << "\n";
        return kExitOk;
    }
    out << "token: " << *token << "\n"
        << "(shown once: give it to the application; ember keeps only its hash)\n\n"
        << "# add to ember.toml, then: emberctl reload\n"
        << daemon::api_key_toml(key_name, *token, domains);
    return kExitOk;
}

} // namespace ember::daemon::ctl
