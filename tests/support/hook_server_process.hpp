#pragma once
// Starts tests/support/hook_server.py (under /usr/bin/python3) on a free
// TCP port of 127.0.0.1 or on a unix socket, in a temporary directory that
// is removed at the end, and stops it (SIGTERM) when destroyed. control()
// rewrites the server's control file (its mode: ok, 500, garbage, empty,
// close, drop-idle, and a delay); stats() reads what it counted (requests,
// connections, max_concurrent, last_request). Header-only, test-only.

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ember::test {

class HookServerProcess {
public:
    enum class Transport { Tcp, Unix };

    explicit HookServerProcess(Transport transport = Transport::Tcp) {
        char dir_template[] = "/tmp/ember-hook-test-XXXXXX";
        if (::mkdtemp(dir_template) == nullptr) {
            error_ = "mkdtemp failed";
            return;
        }
        dir_ = dir_template;
        control(R"({"mode":"ok"})");
        start(transport);
    }
    ~HookServerProcess() {
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
    HookServerProcess(const HookServerProcess&) = delete;
    HookServerProcess& operator=(const HookServerProcess&) = delete;

    [[nodiscard]] bool ok() const { return ready_; }
    [[nodiscard]] const std::string& error() const { return error_; }
    // "http://127.0.0.1:<port>/hook" or "unix:<dir>/hook.sock".
    [[nodiscard]] const std::string& url() const { return url_; }

    // Replaces the control file atomically (the server reads it per request).
    void control(const std::string& json) {
        const auto tmp = dir_ / "control.json.tmp";
        std::ofstream(tmp, std::ios::trunc) << json;
        std::filesystem::rename(tmp, dir_ / "control.json");
    }
    [[nodiscard]] boost::json::value stats() const {
        std::ifstream in(dir_ / "stats.json");
        std::stringstream text;
        text << in.rdbuf();
        boost::system::error_code ec;
        auto v = boost::json::parse(text.str(), ec);
        return ec ? boost::json::value() : v;
    }
    [[nodiscard]] std::int64_t stat(const char* name) const {
        const auto v = stats();
        const auto* o = v.if_object();
        const auto* n = o != nullptr ? o->if_contains(name) : nullptr;
        return n != nullptr && n->is_int64() ? n->get_int64() : -1;
    }

private:
    void start(Transport transport) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            error_ = "pipe failed";
            return;
        }
        const std::string script = std::string(EMBER_SOURCE_DIR) + "/tests/support/hook_server.py";
        const std::string control_file = (dir_ / "control.json").string();
        const std::string stats_file = (dir_ / "stats.json").string();
        const std::string socket = (dir_ / "hook.sock").string();
        const bool unix_socket = transport == Transport::Unix;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            const char* argv[] = {"/usr/bin/python3",
                                  script.c_str(),
                                  "--control",
                                  control_file.c_str(),
                                  "--stats",
                                  stats_file.c_str(),
                                  unix_socket ? "--unix" : "--port",
                                  unix_socket ? socket.c_str() : "0",
                                  nullptr};
            ::execv(argv[0], const_cast<char* const*>(argv));
            ::_exit(127);
        }
        ::close(fds[1]);
        out_fd_ = fds[0];
        const std::string line = read_line();
        if (unix_socket && line == "READY") {
            url_ = "unix:" + socket;
            ready_ = true;
        } else if (!unix_socket && line.rfind("PORT ", 0) == 0) {
            url_ = "http://127.0.0.1:" + line.substr(5) + "/hook";
            ready_ = true;
        } else {
            error_ = "hook_server.py did not start: " + line;
        }
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
    bool ready_ = false;
    std::string url_;
    std::string error_;
};

} // namespace ember::test
