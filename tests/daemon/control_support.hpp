#pragma once
// Helpers for the control-plane tests (daemon_control): a temporary
// directory, an AdminServer running on its own I/O thread so a test talks
// to it with blocking clients, and a raw unix-socket exchange. Test-only.

#include "daemon/admin_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ember::daemon::test {

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/ember-control-XXXXXX";
        const char* made = ::mkdtemp(pattern);
        REQUIRE(made != nullptr);
        path = made;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

// An AdminServer on a background io_context thread. Register verbs before
// start(); the destructor stops the server on its thread and joins.
class AdminThread {
public:
    explicit AdminThread(std::string path, AdminLimits limits = {})
        : server_(std::make_unique<AdminServer>(io_.get_executor(), std::move(path), limits)) {}
    ~AdminThread() { stop(); }
    AdminThread(const AdminThread&) = delete;
    AdminThread& operator=(const AdminThread&) = delete;

    AdminServer& server() { return *server_; }

    void start() {
        const auto error = server_->start();
        REQUIRE_MESSAGE(error.empty(), error);
        thread_ = std::thread([this] { io_.run(); });
    }
    void stop() {
        if (!thread_.joinable())
            return;
        boost::asio::post(io_, [this] { server_->stop(); });
        thread_.join();
    }

private:
    boost::asio::io_context io_;
    std::unique_ptr<AdminServer> server_;
    std::thread thread_;
};

// Connects, sends `request` (then half-closes when `half_close`), and
// returns everything the server wrote until it closed.
inline std::string roundtrip(const std::string& path, std::string_view request,
                             bool half_close = false) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    INFO("connect: ", std::strerror(errno));
    REQUIRE(rc == 0);
    while (!request.empty()) {
        const auto n = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
        if (n <= 0)
            break; // the server may close early (oversize request); read its answer
        request.remove_prefix(static_cast<std::size_t>(n));
    }
    if (half_close)
        ::shutdown(fd, SHUT_WR);
    std::string answer;
    char chunk[4096];
    for (;;) {
        const auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0)
            break;
        answer.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return answer;
}

} // namespace ember::daemon::test
