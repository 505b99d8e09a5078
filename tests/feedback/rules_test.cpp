#include "feedback/rules.hpp"

#include "feedback/classify.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

using namespace ember::feedback;
using ember::core::Diagnostics;

namespace {

// A temporary directory removed at the end of the test.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::random_device rd;
        path =
            std::filesystem::temp_directory_path() / ("ember-rules-test-" + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        const auto file = path / name;
        std::ofstream(file) << text;
        return file.string();
    }
};

} // namespace

TEST_CASE("the shipped rules file loads without a single error") {
    Diagnostics diag;
    const auto rules = Rules::parse(Rules::builtin_text(), "bounce-rules.toml", diag);
    CHECK(diag.to_string() == "");
    CHECK(rules.size() > 50);
    CHECK(Rules::builtin().size() == rules.size());
}

TEST_CASE("every bad rule is reported with its file and line, the good ones are kept") {
    const std::string text = "[[rule]]\n"                    // 1
                             "reason = \"userunknown\"\n"    // 2
                             "pattern = \"no such (user\"\n" // 3: bad regex
                             "\n"                            // 4
                             "[[rule]]\n"                    // 5
                             "reason = \"nosuchreason\"\n"   // 6: unknown reason
                             "pattern = \"x\"\n"             // 7
                             "\n"                            // 8
                             "[[rule]]\n"                    // 9
                             "reason = \"blocked\"\n"        // 10
                             "status = \"5.x.1\"\n"          // 11: bad status
                             "\n"                            // 12
                             "[[rule]]\n"                    // 13
                             "reason = \"blocked\"\n"        // 14
                             "command = \"HELLO\"\n"         // 15: bad command
                             "pattern = \"x\"\n"             // 16
                             "\n"                            // 17
                             "[[rule]]\n"                    // 18
                             "reason = \"mailboxfull\"\n"    // 19
                             "patern = \"full\"\n"           // 20: typo
                             "\n"                            // 21
                             "[[rule]]\n"                    // 22
                             "reason = \"mailboxfull\"\n"    // 23
                             "pattern = \"quota\"\n";        // 24: fine
    Diagnostics diag;
    const auto rules = Rules::parse(text, "admin.toml", diag);
    const auto report = diag.to_string();
    CAPTURE(report);
    CHECK(report.find("admin.toml:3: bad pattern") != std::string::npos);
    CHECK(report.find("admin.toml:6: unknown reason \"nosuchreason\"") != std::string::npos);
    CHECK(report.find("admin.toml:11: bad status \"5.x.1\"") != std::string::npos);
    CHECK(report.find("admin.toml:15: unknown command \"HELLO\"") != std::string::npos);
    CHECK(report.find("admin.toml:20:") != std::string::npos);
    CHECK(report.find("patern") != std::string::npos);
    REQUIRE(rules.size() == 1);
    CHECK(rules.rules()[0].reason == Reason::MailboxFull);
    CHECK(rules.rules()[0].origin == "admin.toml:22");
}

TEST_CASE("a rule without any condition, and a TOML syntax error, are reported") {
    Diagnostics diag;
    (void)Rules::parse("[[rule]]\nreason = \"blocked\"\n", "a.toml", diag);
    CHECK(diag.to_string().find("at least one of pattern, status, code") != std::string::npos);
    Diagnostics syntax;
    (void)Rules::parse("[[rule]]\nreason = \n", "b.toml", syntax);
    CHECK(syntax.to_string().find("b.toml:2: syntax error") != std::string::npos);
}

TEST_CASE("named patterns are shared through use, and an unknown name is an error") {
    Diagnostics diag;
    const auto rules = Rules::parse("[patterns]\n"
                                    "gone = \"left the company\"\n"
                                    "[[rule]]\n"
                                    "reason = \"hasmoved\"\n"
                                    "use = \"gone\"\n"
                                    "[[rule]]\n"
                                    "reason = \"hasmoved\"\n"
                                    "use = \"missing\"\n",
                                    "p.toml", diag);
    CHECK(diag.to_string().find("p.toml:8: no pattern named \"missing\"") != std::string::npos);
    REQUIRE(rules.size() == 1);
    CHECK(classify(550, "", "She left the company", rules).reason == Reason::HasMoved);
}

TEST_CASE("an admin rules file is read after the built-in one and its rules win") {
    TempDir dir;
    const auto admin = dir.write("site.toml", "[[rule]]\n"
                                              "reason = \"blocked\"\n"
                                              "pattern = \"user unknown\"\n"
                                              "code = \"550\"\n"
                                              "hard = true\n");
    Diagnostics diag;
    const auto rules = Rules::load({admin}, diag);
    CHECK(diag.empty());
    const auto c = classify(550, "5.1.1", "User unknown", rules);
    CHECK(c.reason == Reason::Blocked); // over the built-in x.1.1 -> userunknown
    CHECK(c.hard);                      // and the admin's hard = true
    CHECK(c.rule == admin + ":1");
    // Where the admin rule does not apply, the built-in table still does.
    CHECK(classify(552, "5.2.2", "Mailbox full", rules).reason == Reason::MailboxFull);
    CHECK(classify(450, "", "user unknown", Command::Rcpt, rules).reason == Reason::UserUnknown);
}

TEST_CASE("without the built-in table only the admin rules apply") {
    TempDir dir;
    const auto admin = dir.write("only.toml", "[[rule]]\nreason = \"expired\"\ncode = \"4\"\n");
    Diagnostics diag;
    const auto rules = Rules::load({admin}, diag, false);
    CHECK(rules.size() == 1);
    CHECK(classify(550, "5.1.1", "User unknown", rules).reason == Reason::OnHold);
    CHECK(classify(451, "", "later", rules).reason == Reason::Expired);
}

TEST_CASE("a rules file that cannot be read is reported") {
    Diagnostics diag;
    (void)Rules::load({"/nonexistent/ember/rules.toml"}, diag);
    CHECK(diag.to_string().find("/nonexistent/ember/rules.toml: cannot read") != std::string::npos);
}

TEST_CASE("status patterns match per component, x standing for any class") {
    CHECK(status_matches("x.1.1", "5.1.1"));
    CHECK(status_matches("x.1.1", "4.1.1"));
    CHECK_FALSE(status_matches("x.1.1", "5.1.10"));
    CHECK(status_matches("5.7", "5.7.26"));
    CHECK_FALSE(status_matches("5.7", "4.7.1"));
    CHECK(status_matches("4", "4.2.2"));
    CHECK_FALSE(status_matches("5.1.1", ""));
    CHECK(status_matches("", "5.1.1"));
}

TEST_CASE("rule conditions on code and command all have to hold") {
    Diagnostics diag;
    const auto rules = Rules::parse("[[rule]]\nreason = \"rejected\"\ncode = \"55\"\n"
                                    "command = [\"MAIL\"]\npattern = \"denied\"\n",
                                    "c.toml", diag);
    REQUIRE(diag.empty());
    const std::string text = "access denied";
    CHECK(rules.match({550, "", text, Command::Mail}) != nullptr);
    CHECK(rules.match({550, "", text, Command::Rcpt}) == nullptr);
    CHECK(rules.match({450, "", text, Command::Mail}) == nullptr);
    CHECK(rules.match({550, "", "ok", Command::Mail}) == nullptr);
}

TEST_CASE("text is normalized to one clean line before matching") {
    CHECK(normalize_text("  550 a\r\n\tb  c \n") == "550 a b c");
    CHECK(normalize_text(std::string("x\xff\xfey")) == "x??y");
    CHECK(normalize_text("caf\xc3\xa9") == "caf\xc3\xa9"); // valid UTF-8 stays
    CHECK(normalize_text(std::string("a\0b", 3)) == "a?b");
}

TEST_CASE("SMTP command names parse in their long and short spellings") {
    CHECK(parse_command("RCPT TO") == Command::Rcpt);
    CHECK(parse_command("rcpt") == Command::Rcpt);
    CHECK(parse_command("MAIL FROM") == Command::Mail);
    CHECK(parse_command("end of data") == Command::Data);
    CHECK(parse_command("BDAT") == Command::Data);
    CHECK(parse_command("greeting") == Command::Connect);
    CHECK(parse_command("HELO") == Command::Ehlo);
    CHECK(parse_command("QUIT") == Command::Unknown);
    CHECK(command_name(Command::StartTls) == "STARTTLS");
}
