#pragma once
// Runs tests/feedback/webhook_receiver.py (under /usr/bin/python3) on a
// given port of 127.0.0.1 (0: any), reads its `PORT <n>` line, stops it
// (SIGTERM) when destroyed or on stop(). posts() reads what it recorded.
// A temporary directory for the record (and test certificates) is created
// by the caller (TempDir). Test-only.

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
#include <fstream>
#include <string>
#include <vector>

namespace ember::feedback::test {

struct ReceivedPost {
    int status = 0;
    bool sig_ok = false;
    std::string content_type;
    boost::json::array events;
};

struct ReceiverOptions {
    std::uint16_t port = 0;
    std::string log;
    std::string secret;
    int fail_first = 0;
    std::string cert; // HTTPS when set
    std::string key;
};

class WebhookReceiver {
public:
    explicit WebhookReceiver(ReceiverOptions options) : options_(std::move(options)) { start(); }
    ~WebhookReceiver() { stop(); }
    WebhookReceiver(const WebhookReceiver&) = delete;
    WebhookReceiver& operator=(const WebhookReceiver&) = delete;

    [[nodiscard]] bool ok() const { return port_ != 0; }
    [[nodiscard]] const std::string& error() const { return error_; }
    [[nodiscard]] std::uint16_t port() const { return port_; }

    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
        if (out_fd_ >= 0) {
            ::close(out_fd_);
            out_fd_ = -1;
        }
    }

    // Every POST recorded so far (also those of earlier runs on the same log).
    [[nodiscard]] static std::vector<ReceivedPost> posts(const std::string& log) {
        std::vector<ReceivedPost> out;
        std::ifstream in(log);
        for (std::string line; std::getline(in, line);) {
            boost::system::error_code ec;
            const auto v = boost::json::parse(line, ec);
            if (ec || !v.is_object())
                continue; // a line being written
            const auto& o = v.get_object();
            ReceivedPost p;
            p.status = static_cast<int>(o.at("status").as_int64());
            p.sig_ok = o.at("sig_ok").as_bool();
            if (o.at("content_type").is_string())
                p.content_type = std::string(o.at("content_type").as_string());
            if (o.at("events").is_array())
                p.events = o.at("events").as_array();
            out.push_back(std::move(p));
        }
        return out;
    }

private:
    void start() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            error_ = "pipe failed";
            return;
        }
        const std::string script =
            std::string(EMBER_SOURCE_DIR) + "/tests/feedback/webhook_receiver.py";
        const std::string port = std::to_string(options_.port);
        const std::string fail = std::to_string(options_.fail_first);
        std::vector<std::string> args = {
            "/usr/bin/python3", script,     "--port",        port,           "--log",
            options_.log,       "--secret", options_.secret, "--fail-first", fail};
        if (!options_.cert.empty())
            args.insert(args.end(), {"--cert", options_.cert, "--key", options_.key});
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(fds[1], STDOUT_FILENO);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(fds[1]);
        out_fd_ = fds[0];
        const std::string line = read_line();
        if (line.rfind("PORT ", 0) != 0) {
            error_ = "webhook_receiver.py did not start: " + line;
            return;
        }
        port_ = static_cast<std::uint16_t>(std::atoi(line.c_str() + 5));
    }

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

    ReceiverOptions options_;
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::uint16_t port_ = 0;
    std::string error_;
};

} // namespace ember::feedback::test
