// emberd: parse argv, load the configuration, hand over to run_daemon().
// Exit status: 0 after a clean stop or a passing --check, 78 (EX_CONFIG) on
// configuration errors (every one printed as file:line: message), 1 when a
// runtime part (queue store, listener) cannot start, 2 on usage errors.

#include "core/log.hpp"
#include "daemon/app.hpp"
#include "daemon/config.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

namespace {

constexpr int kExitConfig = 78;

} // namespace

int main(int argc, char** argv) {
    using namespace ember;
    CLI::App cli{"emberd: ember mail transfer and sending daemon"};
    std::string config_path = "/etc/ember/ember.toml";
    bool check = false;
    bool dump = false;
    bool version = false;
    std::string level_text;
    cli.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
    cli.add_flag("--check", check, "validate the configuration and exit");
    cli.add_flag("--dump-config", dump, "print the effective configuration as TOML and exit");
    cli.add_option("--log-level", level_text, "debug, info, warning or error (overrides the file)");
    cli.add_flag("-V,--version", version, "print the version and exit");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e);
    }
    if (version) {
        std::cout << "emberd " << EMBER_VERSION << "\n";
        return 0;
    }
    daemon::RunOptions options;
    if (!level_text.empty()) {
        core::log::Level level{};
        if (!core::log::parse_level(level_text, level)) {
            std::cerr << "emberd: --log-level: unknown level '" << level_text << "'\n";
            return 2;
        }
        options.log_level_override = level;
    }
    core::Diagnostics diag;
    auto config = daemon::load_config(config_path, diag);
    if (config)
        (void)daemon::validate_runtime(*config, diag);
    if (!config || !diag.empty()) {
        std::cerr << diag.to_string();
        std::cerr << "emberd: " << diag.size() << " configuration error"
                  << (diag.size() == 1 ? "" : "s") << "\n";
        return kExitConfig;
    }
    if (check) {
        std::cout << config_path << ": configuration ok\n";
        return 0;
    }
    if (dump) {
        std::cout << daemon::dump_config(*config);
        return 0;
    }
    return daemon::run_daemon(std::move(*config), options);
}
