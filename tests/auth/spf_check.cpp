// spf_check: `emberctl spf` for tests, over the real c-ares resolver.
//   spf_check --dns HOST:PORT [--timeout-ms N] [--json] IP MAILFROM [HELO]
// Prints what auth::spf_command() prints: the result word, then the
// explanation (or one JSON object). tests/auth/spf_suite.py runs it against
// tests/support/dns_server.py serving each RFC 7208 suite scenario.
#include "auth/spf.hpp"
#include "core/net.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

using namespace ember;

namespace {

int usage() {
    std::fputs("usage: spf_check --dns HOST:PORT [--timeout-ms N] [--json] IP MAILFROM [HELO]\n",
               stderr);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string server;
    long timeout_ms = 5000;
    bool json = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--dns" && i + 1 < argc)
            server = argv[++i];
        else if (arg == "--timeout-ms" && i + 1 < argc)
            timeout_ms = std::stol(argv[++i]);
        else if (arg == "--json")
            json = true;
        else
            positional.push_back(arg);
    }
    if (positional.size() < 2 || positional.size() > 3)
        return usage();
    dns::ResolverConfig config;
    if (!server.empty()) {
        const auto endpoint = core::Endpoint::parse(server);
        if (!endpoint)
            return usage();
        config.servers.push_back(*endpoint);
    }
    config.timeout = std::chrono::milliseconds(timeout_ms);
    boost::asio::io_context io;
    std::string error;
    auto resolver = dns::make_resolver(io.get_executor(), config, error);
    if (!resolver) {
        std::fprintf(stderr, "spf_check: %s\n", error.c_str());
        return 1;
    }
    std::optional<auth::SpfCommandResult> result;
    std::exception_ptr failure;
    auto done = [&](std::exception_ptr e, auth::SpfCommandResult r) {
        failure = e;
        result = std::move(r);
        io.stop(); // the resolver's sockets would keep run() going
    };
    boost::asio::co_spawn(io,
                          auth::spf_command(resolver.get(), positional[0], positional[1],
                                            positional.size() > 2 ? positional[2] : std::string(),
                                            json),
                          std::move(done));
    io.run();
    if (failure)
        std::rethrow_exception(failure);
    std::fputs(result->output.c_str(), stdout);
    return result->exit_code;
}
