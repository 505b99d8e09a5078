#pragma once
// Starts tests/support/dns_server.py (under /usr/bin/python3) on a free
// port of 127.0.0.1 with zones given as JSON, reads its `PORT <n>` line,
// and stops it (SIGTERM) when destroyed. The zone file and query log live in
// a temporary directory that is removed at the end. queries() reads the
// server's log, one "udp example.test MX" line per question it received.
// Header-only so other test binaries (SPF, delivery) can include it.

#include "core/net.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ember::test {

class DnsServerProcess {
public:
    explicit DnsServerProcess(const std::string& zones_json) {
        char dir_template[] = "/tmp/ember-dns-test-XXXXXX";
        if (::mkdtemp(dir_template) == nullptr) {
            error_ = "mkdtemp failed";
            return;
        }
        dir_ = dir_template;
        write_zones(zones_json);
        start();
    }
    ~DnsServerProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        if (out_fd_ >= 0)
            ::close(out_fd_);
        if (!dir_.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(dir_, ignored);
        }
    }
    DnsServerProcess(const DnsServerProcess&) = delete;
    DnsServerProcess& operator=(const DnsServerProcess&) = delete;

    [[nodiscard]] bool ok() const { return port_ != 0; }
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] core::Endpoint endpoint() const { return {"127.0.0.1", port_}; }

    [[nodiscard]] std::vector<std::string> queries() const {
        std::ifstream in(dir_ / "queries.log");
        std::vector<std::string> lines;
        for (std::string line; std::getline(in, line);)
            lines.push_back(line);
        return lines;
    }
    // Questions for `name` and `type` received over any transport.
    [[nodiscard]] std::size_t count(const std::string& name, const std::string& type) const {
        const auto lines = queries();
        return static_cast<std::size_t>(
            std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
                return l == "udp " + name + " " + type || l == "tcp " + name + " " + type;
            }));
    }
    // Rewrites the zones and waits until the server has reread them.
    [[nodiscard]] bool reload(const std::string& zones_json) {
        write_zones(zones_json);
        ::kill(pid_, SIGHUP);
        return read_line() == "RELOADED";
    }

private:
    void write_zones(const std::string& json) {
        std::ofstream(dir_ / "zones.json", std::ios::trunc) << json;
    }

    void start() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            error_ = "pipe failed";
            return;
        }
        const std::string script = std::string(EMBER_SOURCE_DIR) + "/tests/support/dns_server.py";
        const std::string zones = (dir_ / "zones.json").string();
        const std::string log = (dir_ / "queries.log").string();
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            const char* argv[] = {
                "/usr/bin/python3", script.c_str(), zones.c_str(),        "--port", "0",
                "--query-log",      log.c_str(),    "--reload-on-sighup", nullptr};
            ::execv(argv[0], const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(fds[1]);
        out_fd_ = fds[0];
        const std::string line = read_line();
        if (line.rfind("PORT ", 0) != 0) {
            error_ = "dns_server.py did not start: " + line;
            return;
        }
        port_ = static_cast<std::uint16_t>(std::atoi(line.c_str() + 5));
    }

    // One line of the server's stdout, waiting at most 20 seconds.
    std::string read_line() {
        std::string line;
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < give_up) {
            pollfd p{out_fd_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0)
                continue;
            char c = 0;
            if (::read(out_fd_, &c, 1) != 1)
                break;
            if (c == '\n')
                return line;
            line += c;
        }
        return line;
    }

    std::filesystem::path dir_;
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::uint16_t port_ = 0;
    std::string error_;
};

} // namespace ember::test
