// Parser robustness: every corpus file (bounces and complaint reports), and
// truncated and garbled copies of each, parse without crashing, throwing
// or hanging (the CI build runs this under ASan and UBSan).

#include "feedback/arf.hpp"
#include "feedback/bounce_parser.hpp"

#include "tests/feedback/corpus.hpp"

#include <doctest/doctest.h>

#include <random>

using namespace ember::feedback;
using namespace ember::feedback::test;

namespace {

// Parses and returns how many recipients came out, so the work cannot be
// optimised away and a test can assert on something.
std::size_t parse_all(std::string_view message) {
    const auto report = parse_bounce(message);
    const auto complaint = parse_feedback(message);
    return report.recipients.size() + (complaint ? complaint->original_rcpt_to.size() : 0);
}

std::vector<std::filesystem::path> all_samples() {
    std::vector<std::filesystem::path> files;
    if (const auto root = corpus_root(); !root.empty()) {
        files = corpus_files(root);
        const auto arf = root / ".." / "arf";
        for (const auto& entry : std::filesystem::recursive_directory_iterator(arf)) {
            if (entry.is_regular_file() && entry.path().extension() == ".eml")
                files.push_back(entry.path());
        }
    }
    const auto data = std::filesystem::path(EMBER_SOURCE_DIR) / "tests" / "data";
    for (const char* dir : {"bounces", "arf"}) {
        if (!std::filesystem::exists(data / dir))
            continue;
        for (const auto& entry : std::filesystem::directory_iterator(data / dir)) {
            if (entry.path().extension() == ".eml")
                files.push_back(entry.path());
        }
    }
    return files;
}

} // namespace

TEST_CASE("every sample and its truncated and garbled copies parse without crashing") {
    const auto files = all_samples();
    REQUIRE(!files.empty());
    std::mt19937 rng(20240429); // seeded: a failure reproduces
    std::size_t parsed = 0;
    for (const auto& path : files) {
        CAPTURE(path.string());
        const auto message = read_file(path);
        CHECK_NOTHROW((void)parse_all(message));
        for (int eighth = 1; eighth < 8; ++eighth)
            CHECK_NOTHROW(
                (void)parse_all(std::string_view(message).substr(0, message.size() * eighth / 8)));
        for (int round = 0; round < 4 && !message.empty(); ++round) {
            auto garbled = message;
            std::uniform_int_distribution<std::size_t> at(0, garbled.size() - 1);
            std::uniform_int_distribution<int> byte(0, 255);
            for (int flip = 0; flip < 1 + static_cast<int>(garbled.size() / 64); ++flip)
                garbled[at(rng)] = static_cast<char>(byte(rng));
            CHECK_NOTHROW((void)parse_all(garbled));
        }
        ++parsed;
    }
    CHECK(parsed == files.size());
}

TEST_CASE("hostile structures stay bounded: deep nesting, endless boundaries, huge lines") {
    std::string nested = "Content-Type: multipart/mixed; boundary=b0\n\n";
    for (int depth = 1; depth < 200; ++depth)
        nested += "--b" + std::to_string(depth - 1) +
                  "\nContent-Type: multipart/mixed; boundary=b" + std::to_string(depth) + "\n\n";
    CHECK_NOTHROW((void)parse_all(nested));

    std::string parts = "Content-Type: multipart/report; boundary=x\n\n";
    for (int i = 0; i < 100000; ++i)
        parts += "--x\n\n";
    CHECK_NOTHROW((void)parse_all(parts));

    const std::string long_line =
        "From: MAILER-DAEMON@example.com\n\n" + std::string(2 * 1024 * 1024, 'a') + "@b.example\n";
    CHECK_NOTHROW((void)parse_all(long_line));
    CHECK(parse_all("") == 0);
}

TEST_CASE("thousands of recipient lines cost linear time, and are capped") {
    std::string same = "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n\n";
    for (int i = 0; i < 200000; ++i)
        same += "<a@example.com>: 550 user unknown\n";
    CHECK(parse_all(same) == 1);

    std::string many = "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n\n";
    for (int i = 0; i < 50000; ++i)
        many += "<u" + std::to_string(i) + "@example.com>: 550 user unknown\n";
    CHECK(parse_all(many) <= 1000);

    std::string dsn = "From: MAILER-DAEMON@mx.example.org\n"
                      "Content-Type: multipart/report; boundary=b\n\n--b\n"
                      "Content-Type: message/delivery-status\n\n";
    for (int i = 0; i < 50000; ++i)
        dsn += "Final-Recipient: rfc822; u" + std::to_string(i) + "@example.com\nStatus: 5.1.1\n\n";
    CHECK(parse_all(dsn) <= 1000);
}
