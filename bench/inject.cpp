// ember-inject: an SMTP load generator that measures what a submitting
// application sees: accepted messages per second and the latency from the
// end of DATA ("." sent) to the 250 reply, which with ember is the durable
// commit. Like Postfix's smtp-source, but it records every reply latency.
//
//   ember-inject [-H host] [-p port] [-n messages] [-s sessions] [-l size] [-R]
//
// -R reuses each connection for many messages (default: one per connection,
// like smtp-source without -m reuse). Prints key: value lines.

#include "core/async.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

struct Options {
    std::string host = "127.0.0.1";
    std::string port = "2525";
    int messages = 10000;
    int sessions = 20;
    std::size_t size = 2048;
    bool reuse = false;
};

struct Stats {
    int remaining = 0;
    int accepted = 0;
    int failed = 0;
    std::vector<double> latencies_ms;
    std::string first_error;
};

std::string make_body(std::size_t size) {
    std::string body = "From: <bench@sender.example>\r\nTo: <sink@dest.example>\r\n"
                       "Subject: ember-inject\r\n\r\n";
    const std::string line(76, 'x');
    while (body.size() < size)
        body += line + "\r\n";
    return body + ".\r\n";
}

// Reads one complete (possibly multi-line) reply; returns its code or -1.
asio::awaitable<int> read_reply(tcp::socket& s, std::string& buf) {
    for (;;) {
        auto [ec, n] =
            co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n", kAsTuple);
        if (ec)
            co_return -1;
        const std::string line = buf.substr(0, n);
        buf.erase(0, n);
        if (line.size() >= 4 && line[3] == '-')
            continue;
        co_return line.size() >= 3 ? std::atoi(line.substr(0, 3).c_str()) : -1;
    }
}

asio::awaitable<bool> one_transaction(tcp::socket& s, std::string& buf, const std::string& body,
                                      Stats& stats) {
    const std::string envelope =
        "MAIL FROM:<bench@sender.example>\r\nRCPT TO:<sink@dest.example>\r\nDATA\r\n";
    auto [ec, n] = co_await asio::async_write(s, asio::buffer(envelope), kAsTuple);
    if (ec)
        co_return false;
    for (const int want : {250, 250, 354}) {
        const int code = co_await read_reply(s, buf);
        if (code != want) {
            if (stats.first_error.empty())
                stats.first_error = fmt::format("got {} where {} was expected", code, want);
            co_return false;
        }
    }
    const auto start = Clock::now();
    std::tie(ec, n) = co_await asio::async_write(s, asio::buffer(body), kAsTuple);
    if (ec)
        co_return false;
    const int code = co_await read_reply(s, buf);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (code != 250) {
        if (stats.first_error.empty())
            stats.first_error = fmt::format("end of data answered {}", code);
        co_return false;
    }
    stats.latencies_ms.push_back(ms);
    co_return true;
}

asio::awaitable<void> session(const Options& o, const std::string& body, Stats& stats) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(o.host, o.port, kAsTuple);
    if (rec)
        co_return;
    while (stats.remaining > 0) {
        tcp::socket s(ex);
        auto [cec, ep] = co_await asio::async_connect(s, endpoints, kAsTuple);
        if (cec) {
            ++stats.failed;
            --stats.remaining;
            continue;
        }
        s.set_option(tcp::no_delay(true));
        std::string buf;
        const int greeting = co_await read_reply(s, buf);
        if (greeting != 220)
            co_return;
        const std::string ehlo = "EHLO inject.example\r\n";
        co_await asio::async_write(s, asio::buffer(ehlo), kAsTuple);
        const int ehlo_reply = co_await read_reply(s, buf);
        if (ehlo_reply != 250)
            co_return;
        do {
            --stats.remaining;
            const bool ok = co_await one_transaction(s, buf, body, stats);
            if (ok) {
                ++stats.accepted;
            } else {
                ++stats.failed;
                break;
            }
        } while (o.reuse && stats.remaining > 0);
        const std::string quit = "QUIT\r\n";
        co_await asio::async_write(s, asio::buffer(quit), kAsTuple);
        co_await read_reply(s, buf);
    }
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty())
        return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

Options parse(int argc, char** argv) {
    Options o;
    int c = 0;
    while ((c = getopt(argc, argv, "H:p:n:s:l:R")) != -1) {
        switch (c) {
        case 'H':
            o.host = optarg;
            break;
        case 'p':
            o.port = optarg;
            break;
        case 'n':
            o.messages = std::atoi(optarg);
            break;
        case 's':
            o.sessions = std::atoi(optarg);
            break;
        case 'l':
            o.size = static_cast<std::size_t>(std::atol(optarg));
            break;
        case 'R':
            o.reuse = true;
            break;
        default:
            fmt::print(stderr, "usage: ember-inject [-H host] [-p port] [-n messages] "
                               "[-s sessions] [-l size] [-R]\n");
            std::exit(2);
        }
    }
    return o;
}

} // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    const std::string body = make_body(o.size);
    asio::io_context io(1);
    Stats stats;
    stats.remaining = o.messages;
    const auto start = Clock::now();
    for (int i = 0; i < o.sessions; ++i)
        ember::core::spawn(io.get_executor(), session(o, body, stats), "inject session");
    io.run();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    fmt::print("messages         {} accepted, {} failed ({} sessions, {} bytes{})\n",
               stats.accepted, stats.failed, o.sessions, o.size,
               o.reuse ? ", connections reused" : "");
    fmt::print("elapsed_s        {:.3f}\n", secs);
    fmt::print("accept_rate      {:.1f} msg/s\n", stats.accepted / secs);
    fmt::print("latency_p50_ms   {:.2f}\n", percentile(stats.latencies_ms, 0.50));
    fmt::print("latency_p99_ms   {:.2f}\n", percentile(stats.latencies_ms, 0.99));
    fmt::print("latency_max_ms   {:.2f}\n", percentile(stats.latencies_ms, 1.0));
    if (!stats.first_error.empty())
        fmt::print("first_error      {}\n", stats.first_error);
    return stats.failed == 0 ? 0 : 1;
}
