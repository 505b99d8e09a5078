#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"

#include "tests/daemon/control_support.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>

using namespace ember;
namespace json = boost::json;
namespace ctl = ember::daemon::ctl;
using daemon::AdminResult;

namespace {

json::value parse(std::string_view text) {
    boost::system::error_code ec;
    auto value = json::parse(text, ec);
    REQUIRE_MESSAGE(!ec, text);
    return value;
}

} // namespace

// --- formatting ---

TEST_CASE("a table pads columns to the widest cell and never ends a line in spaces") {
    ctl::Table table({"ID", "SIZE", "NAME"});
    table.align_right(1);
    table.add_row({"a", "5", "x"});
    table.add_row({"bbb", "1234"});
    table.add_row({"\xc3\xa9t\xc3\xa9", "1", "long name"}); // "été" is 3 columns wide
    CHECK(table.render() == "ID   SIZE  NAME\n"
                            "a       5  x\n"
                            "bbb  1234\n"
                            "\xc3\xa9t\xc3\xa9     1  long name\n");
}

TEST_CASE("key: value blocks align their values") {
    CHECK(ctl::key_values({{"id", "X"}, {"auth user", "-"}}) == "id:        X\n"
                                                                "auth user: -\n");
}

TEST_CASE("uptime is printed in days, hours, minutes and seconds") {
    struct Case {
        std::int64_t seconds;
        const char* want;
    };
    const Case cases[] = {
        {0, "0s"},     {59, "59s"}, {60, "1m"}, {3661, "1h 1m 1s"}, {90061, "1d 1h 1m 1s"},
        {172800, "2d"}};
    for (const auto& c : cases) {
        CAPTURE(c.seconds);
        CHECK(ctl::format_uptime(c.seconds) == c.want);
    }
}

TEST_CASE("control characters from the network are not printed raw") {
    CHECK(ctl::printable("a\x1b[31mb") == "a?[31mb");
    CHECK(ctl::printable("x\r\ny\x7f") == "x??y?");
    CHECK(ctl::printable("c\xc2\x9b"
                         "1m") == "c?1m"); // U+009B, a C1 CSI
    CHECK(ctl::printable("caf\xc3\xa9") == "caf\xc3\xa9");
}

TEST_CASE("pretty JSON indents by two spaces and keeps empty containers inline") {
    const auto value = parse(R"({"a":[1,{"b":null}],"c":{},"d":[],"e":"x\"y"})");
    CHECK(ctl::pretty_json(value) == "{\n"
                                     "  \"a\": [\n"
                                     "    1,\n"
                                     "    {\n"
                                     "      \"b\": null\n"
                                     "    }\n"
                                     "  ],\n"
                                     "  \"c\": {},\n"
                                     "  \"d\": [],\n"
                                     "  \"e\": \"x\\\"y\"\n"
                                     "}\n");
}

TEST_CASE("queue list prints one line per recipient and notes truncation on stderr") {
    const auto result = parse(R"({"messages":[
        {"id":"0AAAAAAAAAAAA","mail_from":"s@x.example","size":10,
         "received_at":"2026-03-01T12:00:05Z",
         "recipients":[{"address":"r1@y.example","state":"queued"},
                       {"address":"r2@y.example","state":"deferred"}]},
        {"id":"0BBBBBBBBBBBB","mail_from":"","size":2048,"received_at":null,
         "recipients":[{"address":"r3@z.example","state":"failed"}]}],
        "truncated":true})");
    const auto printed = ctl::format_queue_list(result);
    CHECK(printed.out ==
          "ID             RECEIVED              SIZE  SENDER       STATE     RECIPIENT\n"
          "0AAAAAAAAAAAA  2026-03-01T12:00:05Z    10  s@x.example  queued    r1@y.example\n"
          "                                                        deferred  r2@y.example\n"
          "0BBBBBBBBBBBB  -                     2048  <>           failed    r3@z.example\n");
    CHECK(printed.err == "showing the first 2 messages; use --limit for more\n");
    CHECK(printed.exit_code == 0);
    CHECK(ctl::format_queue_list(parse(R"({"messages":[],"truncated":false})")).out ==
          "no matching messages\n");
}

TEST_CASE("queue summary prints the totals, then one line per destination") {
    const auto result = parse(R"({"messages":3,
        "recipients":{"queued":2,"deferred":1,"delivered":0,"failed":0,"suppressed":0,"total":3},
        "domains":[{"domain":"big.example","queued":1,"deferred":1,"delivered":0,"failed":0,
                    "suppressed":0,"total":2}]})");
    CHECK(ctl::format_queue_summary(result).out ==
          "messages:   3\n"
          "queued:     2\n"
          "deferred:   1\n"
          "delivered:  0\n"
          "failed:     0\n"
          "suppressed: 0\n"
          "\n"
          "DOMAIN       QUEUED  DEFERRED  DELIVERED  FAILED  SUPPRESSED  TOTAL\n"
          "big.example       1         1          0       0           0      2\n");
}

TEST_CASE("queue show prints a key: value block, the recipients, then the header") {
    const auto result = parse(R"({"id":"0AAAAAAAAAAAA","size":42,
        "envelope":{"mail_from":"s@x.example","body":"8bitmime","smtputf8":false,"ret":"","envid":""},
        "submission":{"client_ip":"192.0.2.7","helo":"app","auth_user":"","tls":"",
                      "listener":"127.0.0.1:2525","received_at":"2026-03-01T12:00:05Z"},
        "recipients":[{"address":"r@y.example","orcpt":"","notify":[],"state":"deferred",
                       "attempts":2,"next_attempt":"2026-03-01T12:30:05Z",
                       "updated":"2026-03-01T12:15:05Z","last_reply":"451 4.7.1 later"}],
        "headers":[{"name":"Subject","value":"hi\u001b[2J"}],"headers_truncated":true})");
    const auto out = ctl::format_queue_show(result).out;
    CAPTURE(out);
    CHECK(out.starts_with("id:        0AAAAAAAAAAAA\n"
                          "size:      42\n"
                          "sender:    s@x.example\n"
                          "body:      8bitmime\n"
                          "smtputf8:  no\n"
                          "dsn ret:   -\n"));
    CHECK(out.find("client:    192.0.2.7 (helo app)\n") != std::string::npos);
    CHECK(out.find("\nRECIPIENT    STATE     ATTEMPTS  NEXT ATTEMPT          UPDATED"
                   "               LAST REPLY\n"
                   "r@y.example  deferred         2  2026-03-01T12:30:05Z  2026-03-01T12:15:05Z"
                   "  451 4.7.1 later\n") != std::string::npos);
    CHECK(out.ends_with("\nSubject: hi?[2J\n(more header fields not shown)\n"));
}

TEST_CASE("status prints the daemon, its listeners and its queue") {
    const auto result = parse(R"({"version":"0.1.0","pid":812,"uptime_s":3661,
        "hostname":"mta.example","sessions_active":3,
        "listeners":[{"address":"0.0.0.0:587","mode":"submission","tls":"starttls",
                      "auth":"required"}],
        "queue":{"queued":10,"deferred":2}})");
    CHECK(ctl::format_status(result).out == "version:         0.1.0\n"
                                            "pid:             812\n"
                                            "uptime:          1h 1m 1s\n"
                                            "hostname:        mta.example\n"
                                            "sessions active: 3\n"
                                            "\n"
                                            "LISTENER     MODE        TLS       AUTH\n"
                                            "0.0.0.0:587  submission  starttls  required\n"
                                            "\n"
                                            "STATE     RECIPIENTS\n"
                                            "queued            10\n"
                                            "deferred           2\n");
}

TEST_CASE("reload exits 1 and prints every error when the daemon kept its configuration") {
    const auto kept = ctl::format_reload(
        parse(R"({"reloaded":false,"errors":["a.toml:3: bad","a.toml:9: worse"]})"));
    CHECK(kept.exit_code == 1);
    CHECK(kept.out.empty());
    CHECK(kept.err.find("a.toml:3: bad\na.toml:9: worse\n") != std::string::npos);
    const auto done = ctl::format_reload(parse(R"({"reloaded":true,"errors":[]})"));
    CHECK(done.exit_code == 0);
    CHECK(done.out == "configuration reloaded\n");
    CHECK(ctl::format_reload(parse("{}")).exit_code == 1);
}

TEST_CASE("formatters print a dash for what an unexpected result lacks") {
    for (auto* format : {ctl::format_status, ctl::format_queue_summary, ctl::format_queue_list,
                         ctl::format_queue_show, ctl::format_queue_delete}) {
        for (const char* text : {"null", "[]", "{}", R"({"recipients":5,"messages":"x"})"}) {
            CAPTURE(text);
            const auto printed = format(parse(text));
            CHECK(printed.exit_code == 0);
        }
    }
    CHECK(ctl::format_queue_delete(parse("{}")).out == "deleted -\n");
}

// --- command line ---

TEST_CASE("each verb is parsed into its admin verb and arguments") {
    struct Case {
        std::vector<std::string> argv;
        std::string verb;
        std::string args;
    };
    const Case cases[] = {
        {{"emberctl", "status"}, "status", "{}"},
        {{"emberctl", "reload"}, "reload", "{}"},
        {{"emberctl", "queue", "summary"}, "queue.summary", "{}"},
        {{"emberctl", "queue", "list"}, "queue.list", "{}"},
        {{"emberctl", "queue", "list", "--domain", "x.example", "--state", "deferred", "--limit",
          "5"},
         "queue.list",
         R"({"domain":"x.example","state":"deferred","limit":5})"},
        {{"emberctl", "queue", "show", "0AAAAAAAAAAAA"}, "queue.show", R"({"id":"0AAAAAAAAAAAA"})"},
        {{"emberctl", "queue", "delete", "0AAAAAAAAAAAA"},
         "queue.delete",
         R"({"id":"0AAAAAAAAAAAA"})"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.verb);
        const auto parsed = ctl::parse_command_line(c.argv);
        CAPTURE(parsed.output);
        REQUIRE(parsed.invocation);
        CHECK(parsed.invocation->verb->admin_verb == c.verb);
        CHECK(json::serialize(parsed.invocation->args) == c.args);
    }
}

TEST_CASE("global options are accepted before and after the verb") {
    const auto before = ctl::parse_command_line({"emberctl", "-s", "/x.sock", "--json", "status"});
    REQUIRE(before.invocation);
    CHECK(before.invocation->options.socket == "/x.sock");
    CHECK(before.invocation->options.json);
    const auto after =
        ctl::parse_command_line({"emberctl", "queue", "summary", "--json", "-c", "/e.toml"});
    REQUIRE(after.invocation);
    CHECK(after.invocation->options.json);
    CHECK(after.invocation->options.config == "/e.toml");
}

TEST_CASE("usage errors exit 2 with a message, help exits 0") {
    const std::vector<std::vector<std::string>> errors = {
        {"emberctl"},
        {"emberctl", "queue"},
        {"emberctl", "bogus"},
        {"emberctl", "queue", "show"},
        {"emberctl", "queue", "list", "--limit", "0"},
        {"emberctl", "queue", "list", "--limit", "10001"},
        {"emberctl", "queue", "list", "--state", "lost"},
        {"emberctl", "status", "extra"},
        {"emberctl", "--nope", "status"},
    };
    for (const auto& argv : errors) {
        CAPTURE(argv.back());
        CAPTURE(argv.size());
        const auto parsed = ctl::parse_command_line(argv);
        CHECK_FALSE(parsed.invocation);
        CHECK(parsed.exit_code == ctl::kExitUsage);
        CHECK_FALSE(parsed.output.empty());
    }
    const auto help = ctl::parse_command_line({"emberctl", "-h"});
    CHECK(help.exit_code == 0);
    CHECK(help.output.find("queue") != std::string::npos);
    const auto list_help = ctl::parse_command_line({"emberctl", "queue", "list", "--help"});
    CHECK(list_help.exit_code == 0);
    CHECK(list_help.output.find("--domain") != std::string::npos);
}

TEST_CASE("the socket comes from -s, else -c, else the environment, else the default") {
    daemon::test::TempDir dir;
    const auto config = dir.path + "/ember.toml";
    std::ofstream(config) << "[server]\n"
                             "data_dir = \""
                          << dir.path
                          << "/data\"\n"
                             "[[listener]]\n"
                             "address = \"127.0.0.1:2525\"\n"
                             "tls = \"none\"\n"
                             "auth = \"none\"\n"
                             "[admin]\n"
                             "socket = \""
                          << dir.path << "/from-config.sock\"\n";
    std::string error;
    CHECK(ctl::resolve_socket({"/s.sock", config, false}, "/env.sock", error) == "/s.sock");
    CHECK(ctl::resolve_socket({"", config, false}, "/env.sock", error) ==
          dir.path + "/from-config.sock");
    CAPTURE(error);
    CHECK(ctl::resolve_socket({"", "", false}, "/env.sock", error) == "/env.sock");
    CHECK(ctl::resolve_socket({"", "", false}, "", error) == ctl::kDefaultSocket);
    CHECK(ctl::resolve_socket({"", "", false}, nullptr, error) == ctl::kDefaultSocket);

    std::ofstream(config) << "[admin]\nsocket = 5\n";
    error.clear();
    CHECK(ctl::resolve_socket({"", config, false}, nullptr, error).empty());
    CHECK(error.find(config + ":2:") != std::string::npos);
}

// --- the built binary against an in-process admin server ---

#ifdef EMBERCTL_PATH
namespace {

struct Run {
    int exit_code = -1;
    std::string output; // stdout and stderr
};

Run run_emberctl(const std::string& args, const std::string& env = "") {
    const std::string command = env + " " + std::string(EMBERCTL_PATH) + " " + args + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    Run run;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;)
        run.output.append(chunk, n);
    const int status = ::pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

} // namespace

TEST_CASE("the emberctl binary talks to a running admin server and exits by outcome") {
    daemon::test::TempDir dir;
    const auto path = dir.path + "/admin.sock";
    daemon::test::AdminThread admin(path);
    admin.server().add_verb("status", [](const json::object&) {
        return AdminResult(json::object{{"version", "9.9.9"}, {"hostname", "mta.test"}});
    });
    admin.server().add_verb("reload", [](const json::object&) {
        return AdminResult(json::object{{"reloaded", false},
                                        {"errors", json::array{"e.toml:4: unknown key \"x\""}}});
    });
    admin.server().add_verb("queue.delete", [](const json::object& args) {
        return AdminResult::failure("no such message: " + std::string(args.at("id").as_string()));
    });
    admin.start();

    const auto status = run_emberctl("-s " + path + " status");
    CAPTURE(status.output);
    CHECK(status.exit_code == 0);
    CHECK(status.output.find("hostname:        mta.test") != std::string::npos);

    const auto as_json = run_emberctl("-s " + path + " status --json");
    CHECK(as_json.exit_code == 0);
    CHECK(parse(as_json.output).at("version") == "9.9.9");

    const auto reload = run_emberctl("-s " + path + " reload");
    CAPTURE(reload.output);
    CHECK(reload.exit_code == 1);
    CHECK(reload.output.find("e.toml:4: unknown key \"x\"") != std::string::npos);

    const auto deleted = run_emberctl("-s " + path + " queue delete 0AAAAAAAAAAAA");
    CHECK(deleted.exit_code == 1);
    CHECK(deleted.output == "emberctl: no such message: 0AAAAAAAAAAAA\n");

    const auto absent = run_emberctl("-s " + dir.path + "/absent.sock status");
    CHECK(absent.exit_code == 69);
    CHECK(absent.output.find(dir.path + "/absent.sock") != std::string::npos);

    const auto from_env = run_emberctl("status", "EMBER_ADMIN_SOCKET=" + path);
    CHECK(from_env.exit_code == 0);

    const auto usage = run_emberctl("queue");
    CHECK(usage.exit_code == 2);
}
#endif
