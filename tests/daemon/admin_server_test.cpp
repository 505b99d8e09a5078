#include "daemon/admin_server.hpp"

#include "daemon/ctl_client.hpp"
#include "tests/daemon/control_support.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <string>

#include <sys/stat.h>

using namespace ember;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
using daemon::AdminResult;
using daemon::test::AdminThread;
using daemon::test::roundtrip;
using daemon::test::TempDir;

namespace {

// The answer line as JSON; fails the test unless it is exactly one line.
json::object answer_of(const std::string& text) {
    CAPTURE(text);
    REQUIRE(!text.empty());
    REQUIRE(text.back() == '\n');
    REQUIRE(text.find('\n') == text.size() - 1);
    boost::system::error_code ec;
    auto value = json::parse(text, ec);
    REQUIRE(!ec);
    REQUIRE(value.is_object());
    return value.get_object();
}

void add_test_verbs(daemon::AdminServer& server) {
    server.add_verb("echo", [](const json::object& args) { return AdminResult(args); });
    server.add_verb("fail",
                    [](const json::object&) { return AdminResult::failure("it went wrong"); });
    server.add_verb("throw",
                    [](const json::object&) -> AdminResult { throw std::runtime_error("boom"); });
    server.add_verb("wait", [](json::object args) -> asio::awaitable<AdminResult> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
        co_await timer.async_wait(asio::use_awaitable);
        co_return json::object{{"waited", true}, {"args", args}};
    });
}

} // namespace

TEST_CASE("a registered verb answers its result in one JSON line and the server closes") {
    TempDir dir;
    AdminThread admin(dir.path + "/admin.sock");
    add_test_verbs(admin.server());
    admin.start();

    const auto answer =
        answer_of(roundtrip(dir.path + "/admin.sock", R"({"verb":"echo","args":{"x":1,"y":"z"}})"
                                                      "\n"));
    CHECK(answer.at("ok") == true);
    CHECK(json::serialize(answer.at("result")) == R"({"x":1,"y":"z"})");

    const auto waited = answer_of(roundtrip(dir.path + "/admin.sock", R"({"verb":"wait"})"
                                                                      "\n"));
    CHECK(waited.at("ok") == true);
    CHECK(waited.at("result").at("waited") == true);
}

TEST_CASE("bad requests get an error answer, never a crash") {
    struct Case {
        std::string request;
        std::string error; // a part of the expected error text
    };
    const Case cases[] = {
        {R"({"verb":"nope"})"
         "\n",
         "unknown verb \"nope\""},
        {"{not json\n", "malformed JSON"},
        {"\n", "malformed JSON"},
        {"[1,2]\n", "string \"verb\""},
        {R"({"verb":7})"
         "\n",
         "string \"verb\""},
        {R"({"verb":"echo","args":[1]})"
         "\n",
         "\"args\" must be an object"},
        {R"({"verb":"fail"})"
         "\n",
         "it went wrong"},
        {R"({"verb":"throw"})"
         "\n",
         "internal error"},
        {std::string(70 * 1024, 'x') + "\n", "request too large"},
        {"{\"verb\":\"echo\",\"args\":{\"s\":\"\xff\"}}\n", "malformed JSON"},
    };
    TempDir dir;
    AdminThread admin(dir.path + "/admin.sock");
    add_test_verbs(admin.server());
    admin.start();
    for (const auto& c : cases) {
        CAPTURE(c.request.substr(0, 80));
        const auto answer = answer_of(roundtrip(dir.path + "/admin.sock", c.request));
        CHECK(answer.at("ok") == false);
        const std::string error(answer.at("error").as_string());
        CAPTURE(error);
        CHECK(error.find(c.error) != std::string::npos);
    }
}

TEST_CASE("a request ended by EOF instead of a newline is still answered") {
    TempDir dir;
    AdminThread admin(dir.path + "/admin.sock");
    add_test_verbs(admin.server());
    admin.start();
    const auto answer =
        answer_of(roundtrip(dir.path + "/admin.sock", R"({"verb":"echo","args":{"a":2}})", true));
    CHECK(answer.at("ok") == true);
    CHECK(answer.at("result").at("a") == 2);
}

TEST_CASE("a client that sends nothing within the deadline gets a timeout answer") {
    TempDir dir;
    daemon::AdminLimits limits;
    limits.request_timeout = 50ms;
    AdminThread admin(dir.path + "/admin.sock", limits);
    admin.start();
    const auto answer = answer_of(roundtrip(dir.path + "/admin.sock", R"({"verb":"ec)"));
    CHECK(answer.at("ok") == false);
    CHECK(answer.at("error") == "timed out waiting for the request");
}

TEST_CASE("the socket is created mode 0660 and removed by stop") {
    TempDir dir;
    const auto path = dir.path + "/admin.sock";
    AdminThread admin(path);
    admin.start();
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
    admin.stop();
    CHECK(::lstat(path.c_str(), &st) != 0);
}

TEST_CASE("a stale socket file is replaced, a live daemon's socket is not") {
    TempDir dir;
    const auto path = dir.path + "/admin.sock";
    { // a socket file nobody listens on, as a crashed daemon leaves it
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
        ::close(fd);
    }
    AdminThread first(path);
    add_test_verbs(first.server());
    first.start(); // REQUIREs success

    asio::io_context io;
    daemon::AdminServer second(io.get_executor(), path);
    const auto error = second.start();
    CAPTURE(error);
    CHECK(error.find("another daemon") != std::string::npos);
    CHECK(error.find(path) != std::string::npos);
    // The first server still answers on its socket.
    CHECK(answer_of(roundtrip(path, "{\"verb\":\"echo\"}\n")).at("ok") == true);
}

TEST_CASE("a path that is not a socket is never removed") {
    TempDir dir;
    const auto path = dir.path + "/admin.sock";
    std::ofstream(path) << "precious";
    asio::io_context io;
    daemon::AdminServer server(io.get_executor(), path);
    const auto error = server.start();
    CAPTURE(error);
    CHECK(error.find("not a socket") != std::string::npos);
    std::ifstream in(path);
    std::string content;
    in >> content;
    CHECK(content == "precious");
}

TEST_CASE("emberctl's client reports ok, daemon errors and an absent daemon") {
    TempDir dir;
    const auto path = dir.path + "/admin.sock";
    AdminThread admin(path);
    add_test_verbs(admin.server());
    admin.start();
    using Status = daemon::ctl::AdminCall::Status;

    auto ok = daemon::ctl::call_admin(path, "echo", json::object{{"k", "v"}}, 5s);
    CHECK(ok.status == Status::Ok);
    CHECK(json::serialize(ok.result) == R"({"k":"v"})");

    auto failed = daemon::ctl::call_admin(path, "fail", {}, 5s);
    CHECK(failed.status == Status::DaemonError);
    CHECK(failed.error == "it went wrong");

    auto absent = daemon::ctl::call_admin(dir.path + "/none.sock", "echo", {}, 5s);
    CHECK(absent.status == Status::Unavailable);
    CHECK(absent.error.find(dir.path + "/none.sock") != std::string::npos);
}

TEST_CASE("an answer that is not an admin answer is a protocol error") {
    using Status = daemon::ctl::AdminCall::Status;
    const char* answers[] = {
        "", "nope", "[]", R"({"ok":"yes"})", R"({"ok":false})", R"({"ok":false,"error":3})"};
    for (const char* line : answers) {
        CAPTURE(line);
        CHECK(daemon::ctl::parse_admin_answer(line).status == Status::Protocol);
    }
    CHECK(daemon::ctl::parse_admin_answer(R"({"ok":true})").status == Status::Ok);
}
