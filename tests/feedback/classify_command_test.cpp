#include "feedback/classify_command.hpp"

#include "tests/feedback/samples.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace ember::feedback;
using ember::feedback::test::sample;

namespace {

std::function<std::string()> no_stdin() {
    return [] {
        FAIL("standard input read when it should not be");
        return std::string();
    };
}

std::string data_file(const std::string& relative) {
    return (std::filesystem::path(EMBER_SOURCE_DIR) / "tests" / "data" / relative).string();
}

} // namespace

TEST_CASE("a reply line prints one tab-separated line") {
    const auto out =
        classify_command({"--reply", "550 5.1.1 <a@b.example>: User unknown"}, no_stdin());
    CHECK(out.exit_code == 0);
    CHECK(out.out == "-\tuserunknown\thard\t5.1.1\t550 5.1.1 <a@b.example>: User unknown\n");
}

TEST_CASE("the command changes what a reply means") {
    const auto data =
        classify_command({"--reply", "550 User unknown", "--command", "DATA"}, no_stdin());
    CHECK(data.out.starts_with("-\tfiltered\tsoft\t"));
    const auto rcpt =
        classify_command({"--reply", "550 User unknown", "--command", "RCPT"}, no_stdin());
    CHECK(rcpt.out.starts_with("-\tuserunknown\thard\t"));
}

TEST_CASE("a bounce file prints one line per recipient, from a file or standard input") {
    const auto file = classify_command({data_file("bounces/lhost-qmail-02.eml")}, no_stdin());
    CHECK(file.exit_code == 0);
    CHECK(file.out.starts_with("userunknown@example.jp\tuserunknown\thard\t5.1.1\t550 5.1.1"));
    CHECK(std::count(file.out.begin(), file.out.end(), '\n') == 2);
    const auto in = classify_command({"-"}, [] { return sample("bounces/lhost-qmail-02.eml"); });
    CHECK(in.out == file.out);
}

TEST_CASE("--json prints the report as one JSON object") {
    const auto out =
        classify_command({"--json", data_file("bounces/lhost-postfix-31.eml")}, no_stdin());
    CHECK(out.exit_code == 0);
    CHECK(out.out.find("\"kind\":\"bounce\"") != std::string::npos);
    CHECK(out.out.find("\"reason\":\"userunknown\"") != std::string::npos);
    CHECK(out.out.find("\"command\":\"RCPT\"") != std::string::npos);
    const auto reply =
        classify_command({"--json", "--reply", "452 4.2.2 Mailbox full"}, no_stdin());
    CHECK(reply.out.find("\"reason\":\"mailboxfull\"") != std::string::npos);
    CHECK(reply.out.find("\"hard\":false") != std::string::npos);
}

TEST_CASE("a message that is not a bounce exits 1 and says so") {
    const auto out = classify_command({data_file("bounces/is-not-bounce-01.eml")}, no_stdin());
    CHECK(out.exit_code == 1);
    CHECK(out.out.empty());
    CHECK(out.err.find("not a bounce") != std::string::npos);
}

TEST_CASE("usage errors exit 2, unreadable files 66, bad rules 78") {
    CHECK(classify_command({"--bogus"}, no_stdin()).exit_code == 2);
    CHECK(classify_command({"--reply"}, no_stdin()).exit_code == 2);
    CHECK(classify_command({"--reply", "550 x", "file.eml"}, no_stdin()).exit_code == 2);
    CHECK(classify_command({"--reply", "550 x", "--command", "NOOP"}, no_stdin()).exit_code == 2);
    CHECK(classify_command({"/nonexistent/bounce.eml"}, no_stdin()).exit_code == 66);

    std::random_device rd;
    const auto dir =
        std::filesystem::temp_directory_path() / ("ember-classify-test-" + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    const auto bad = (dir / "bad.toml").string();
    std::ofstream(bad) << "[[rule]]\nreason = \"blocked\"\npattern = \"(\"\n";
    const auto out = classify_command({"--rules", bad, "--reply", "550 x"}, no_stdin());
    CHECK(out.exit_code == 78);
    CHECK(out.err.find(bad + ":3: bad pattern") != std::string::npos);

    const auto good = (dir / "good.toml").string();
    std::ofstream(good) << "[[rule]]\nreason = \"blocked\"\npattern = \"frobnicated\"\n";
    const auto win =
        classify_command({"--rules", good, "--reply", "550 5.1.1 frobnicated"}, no_stdin());
    CHECK(win.out.starts_with("-\tblocked\tsoft\t5.1.1\t"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("--help prints the usage") {
    const auto out = classify_command({"--help"}, no_stdin());
    CHECK(out.exit_code == 0);
    CHECK(out.out == classify_usage());
}
