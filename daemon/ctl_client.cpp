#include "daemon/ctl_client.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace ember::daemon::ctl {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

// A generous cap: a 10000-message list is a few MiB.
constexpr std::size_t kMaxAnswer = std::size_t{256} << 20;

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

AdminCall unavailable(std::string text) {
    return AdminCall{AdminCall::Status::Unavailable, nullptr, std::move(text)};
}

int remaining_ms(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

// A blocking unix connect waits for room in a full backlog up to SO_SNDTIMEO
// (the same timeout bounds send()), so one option bounds both.
std::string connect_to(int fd, const std::string& path, core::Duration timeout) {
    sockaddr_un address{};
    if (path.empty() || path.size() >= sizeof address.sun_path)
        return "socket path too long";
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    const auto ms = timeout.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        return errno == EAGAIN || errno == EINPROGRESS ? "timed out" : std::strerror(errno);
    return "";
}

std::string send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? "timed out" : std::strerror(errno);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return "";
}

// Reads up to the first newline (or EOF); "" error on success.
std::string read_line(int fd, Clock::time_point deadline, std::string& line) {
    char chunk[65536];
    while (line.find('\n') == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0)
            return "timed out waiting for the answer";
        if (ready < 0)
            return std::strerror(errno);
        const auto n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return std::strerror(errno);
        if (n == 0)
            return line.empty() ? "the daemon closed the connection without answering" : "";
        line.append(chunk, static_cast<std::size_t>(n));
        if (line.size() > kMaxAnswer)
            return "answer too large";
    }
    line.resize(line.find('\n'));
    return "";
}

} // namespace

AdminCall parse_admin_answer(std::string_view line) {
    const AdminCall broken{AdminCall::Status::Protocol, nullptr,
                           "malformed answer from the daemon"};
    boost::system::error_code ec;
    json::value answer = json::parse(line, ec);
    const auto* object = ec ? nullptr : answer.if_object();
    const auto* ok = object ? object->if_contains("ok") : nullptr;
    if (!ok || !ok->is_bool())
        return broken;
    if (ok->get_bool()) {
        const auto* result = object->if_contains("result");
        return AdminCall{AdminCall::Status::Ok, result ? *result : json::value(), ""};
    }
    const auto* error = object->if_contains("error");
    if (!error || !error->is_string())
        return broken;
    return AdminCall{AdminCall::Status::DaemonError, nullptr, std::string(error->get_string())};
}

AdminCall call_admin(const std::string& socket_path, std::string_view verb,
                     const json::object& args, core::Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        return unavailable(fmt::format("cannot create a socket: {}", std::strerror(errno)));
    if (auto error = connect_to(fd.get(), socket_path, timeout); !error.empty())
        return unavailable(
            fmt::format("cannot connect to {}: {} (is emberd running?)", socket_path, error));
    const std::string request =
        json::serialize(json::object{{"verb", verb}, {"args", args}}) + "\n";
    if (auto error = send_all(fd.get(), request); !error.empty())
        return unavailable(fmt::format("cannot send to {}: {}", socket_path, error));
    std::string line;
    if (auto error = read_line(fd.get(), deadline, line); !error.empty())
        return unavailable(fmt::format("{}: {}", socket_path, error));
    return parse_admin_answer(line);
}

} // namespace ember::daemon::ctl
