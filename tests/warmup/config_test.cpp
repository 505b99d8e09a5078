#include "warmup/config.hpp"

#include "tests/warmup/support.hpp"
#include "warmup/engine.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace ember;
using namespace ember::warmup;
using warmup::test::config_from;
namespace fs = std::filesystem;

namespace {

const fs::path source_dir = EMBER_SOURCE_DIR;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// `file:line: message` lines with the file name only, as the .expected files hold them.
std::string relative_report(const core::Diagnostics& diag) {
    std::string out;
    for (auto d : diag.sorted()) {
        d.file = fs::path(d.file).filename().string();
        out += core::format(d) + "\n";
    }
    return out;
}

std::string errors_of(std::string_view toml) {
    core::Diagnostics diag;
    const auto config = parse_config(toml, "t.toml", diag);
    CHECK_FALSE(config.has_value());
    return relative_report(diag);
}

} // namespace

TEST_CASE("every tests/config/warmup-bad file reports exactly the errors in its .expected file") {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(source_dir / "tests/config/warmup-bad")) {
        if (entry.path().extension() == ".toml")
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    CHECK(files.size() >= 20);
    for (const auto& file : files) {
        CAPTURE(file.filename());
        auto expected = file;
        expected.replace_extension(".expected");
        REQUIRE_MESSAGE(fs::exists(expected), "missing " << expected.filename());
        core::Diagnostics diag;
        const auto config = load_config(file.string(), diag);
        CHECK_FALSE(config.has_value());
        CHECK(relative_report(diag) == read_text(expected));
    }
}

TEST_CASE("etc/warmup.toml loads with its schedules, five providers and response rules") {
    core::Diagnostics diag;
    const auto config = load_config((source_dir / "etc/warmup.toml").string(), diag);
    INFO(diag.to_string());
    REQUIRE(config.has_value());
    REQUIRE(config->schedules.size() == 2);
    const auto* standard = config->schedule("standard");
    REQUIRE(standard != nullptr);
    CHECK(standard->caps.size() == 30);
    CHECK(standard->caps.front() == 50);
    CHECK(standard->caps.back() == 100000);
    CHECK(standard->spread == Spread::Hourly);
    CHECK_FALSE(standard->cap(31).has_value());
    std::vector<std::string> names;
    double shares = 0;
    for (const auto& p : config->providers) {
        names.push_back(p.name);
        shares += p.share;
    }
    CHECK(names == std::vector<std::string>{"gmail", "microsoft", "yahoo", "apple", "other"});
    CHECK(shares == doctest::Approx(1.0));
    CHECK(config->catch_all().name == "other");
    CHECK(config->default_schedule.empty());
    CHECK(config->rules.size() >= 8);
    CHECK(config->guardrails == Guardrails{});
}

TEST_CASE("a rule schedule grows by its factor each day up to the ceiling") {
    const auto config = config_from(R"(
[schedule.fast]
start = 100
growth = 2
ceiling = 1000
after = "steady"
)");
    const auto& s = config.schedules.at(0);
    CHECK(s.caps == std::vector<std::uint64_t>{100, 200, 400, 800, 1000});
    CHECK(s.cap(5) == 1000);
    CHECK(s.cap(6) == 1000); // steady: the last day's cap for good
    CHECK(s.cap(400) == 1000);
    CHECK(s.cap(0) == 100); // day 0 reads as day 1
}

TEST_CASE("after the last listed day the cap is unlimited or a steady cap") {
    const auto config = config_from(R"(
[schedule.open]
caps = [10, 20]

[schedule.flat]
caps = [10, 20]
after = "steady"
steady_cap = 15
)");
    CHECK(config.schedule("open")->cap(2) == 20);
    CHECK_FALSE(config.schedule("open")->cap(3).has_value());
    CHECK(config.schedule("flat")->cap(3) == 15);
}

TEST_CASE("shares, thresholds, rates and dates read in each of their forms") {
    const auto config = config_from(R"(
[guardrails]
max_bounce_rate = 0.05
max_deferral_rate = "12.5%"
window = "2d"

[schedule.s]
caps = [10]

[[sender]]
domain = "A.Example.COM"
schedule = "s"
start = 2026-03-01

[[sender]]
domain = "b.example.com"
source = "2001:db8::25"
schedule = "s"
start = "2026-03-02"
guardrails = { max_bounce_rate = "3%" }

[[provider]]
name = "p1"
domains = ["P1.example"]
max_rate = "600/min"
share = "25%"

[[provider]]
name = "p2"
mx = ["*.p2.example"]
max_rate = "5000/h"
share = 0.5

[[provider]]
name = "p3"
domains = ["p3.example"]
max_rate = "7/s"
share = 1
)");
    CHECK(config.guardrails.max_bounce_rate == doctest::Approx(0.05));
    CHECK(config.guardrails.max_deferral_rate == doctest::Approx(0.125));
    CHECK(config.guardrails.window == std::chrono::hours(48));
    REQUIRE(config.senders.size() == 2);
    CHECK(config.senders[0].domain == "a.example.com");
    CHECK(format_day(config.senders[0].start) == "2026-03-01");
    CHECK(format_day(config.senders[1].start) == "2026-03-02");
    CHECK(config.senders[1].source == "2001:db8::25");
    CHECK(config.senders[0].guardrails.max_bounce_rate == doctest::Approx(0.05));
    CHECK(config.senders[1].guardrails.max_bounce_rate == doctest::Approx(0.03));
    CHECK(config.senders[1].guardrails.max_deferral_rate == doctest::Approx(0.125));
    CHECK(config.provider("p1")->share == doctest::Approx(0.25));
    CHECK(config.provider("p1")->domains == std::vector<std::string>{"p1.example"});
    CHECK(config.provider("p1")->max_rate.per_second() == doctest::Approx(10.0));
    CHECK(config.provider("p2")->max_rate.to_string() == "5000/h");
    CHECK(config.provider("p3")->max_rate.to_string() == "7/s");
    CHECK(config.provider("p3")->share == doctest::Approx(1.0));
}

TEST_CASE("without a catch-all provider an unlimited 'other' is added") {
    const auto config = config_from(R"(
[[provider]]
name = "gmail"
domains = ["gmail.com"]
)");
    REQUIRE(config.providers.size() == 2);
    CHECK(config.catch_all().name == "other");
    CHECK(config.catch_all().max_rate.unlimited());
    CHECK(config.catch_all().share == doctest::Approx(1.0));
}

TEST_CASE("provider rules are tried before global ones, each in file order") {
    const auto config = config_from(R"(
[[provider]]
name = "gmail"
domains = ["gmail.com"]

[[rule]]
code = "4\\d\\d"
action = "retry-later"

[[rule]]
provider = "gmail"
code = "421"
action = "backoff"

[[rule]]
provider = "gmail"
code = "450"
action = "suspend"
)");
    REQUIRE(config.rules.size() == 3);
    CHECK(config.rules[0].line == 10);
    CHECK(config.rules[1].line == 15);
    CHECK(config.rules[2].line == 6);
    CHECK(config.rules[2].provider.empty());
}

TEST_CASE("response rules match code and enhanced code in full and text anywhere") {
    const auto config = config_from(R"(
[[rule]]
code = "421"
enhanced = "4\\.7\\.2[68]"
text = "(?i)rate limited"
action = "backoff"
)");
    const auto& r = config.rules.at(0);
    struct Case {
        int code;
        std::string enhanced;
        std::string text;
        bool want;
    };
    const Case cases[] = {
        {421, "4.7.28", "mail has been temporarily RATE LIMITED", true},
        {421, "4.7.26", "rate limited", true},
        {4210, "4.7.28", "rate limited", false},
        {421, "4.7.280", "rate limited", false},
        {451, "4.7.28", "rate limited", false},
        {421, "4.7.28", "try later", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.code);
        CAPTURE(c.enhanced);
        CAPTURE(c.text);
        CHECK(r.matches(c.code, c.enhanced, c.text) == c.want);
    }
}

TEST_CASE("a missing file is one error naming it") {
    core::Diagnostics diag;
    const auto config = load_config("/nonexistent/warmup.toml", diag);
    CHECK_FALSE(config.has_value());
    CHECK(diag.to_string() ==
          "/nonexistent/warmup.toml: cannot read the warm-up configuration: No such file or "
          "directory\n");
}

TEST_CASE("inline errors point at the line of the offending value") {
    CHECK(errors_of("[schedule.s]\ncaps = [10, -1]\n") ==
          "t.toml:2: value -1 is out of range [1, 1000000000000]\n");
    CHECK(errors_of("[[provider]]\nname = \"x\"\n\n[[provider]]\nname = \"x\"\n") ==
          "t.toml:5: provider \"x\" is already defined at line 1\n");
}

TEST_CASE("the man page's worked 30-day table is what etc/warmup.toml gives") {
    const auto config = config_from(read_text(source_dir / "etc/warmup.toml") + R"(
[[sender]]
domain = "news.example.com"
schedule = "standard"
start = 2026-03-02
)");
    const Engine engine(config);
    std::istringstream man(read_text(source_dir / "man/ember-warmup.toml.5"));
    const std::vector<std::string> providers = {"gmail", "microsoft", "yahoo", "apple", "other"};
    int rows = 0;
    for (std::string line; std::getline(man, line);) {
        if (!line.starts_with(".It ") || line.size() < 5 || !std::isdigit(line[4]))
            continue;
        std::vector<std::uint64_t> cells;
        std::istringstream in(line.substr(4));
        for (std::string cell; in >> cell;) {
            if (cell != "Ta")
                cells.push_back(std::stoull(cell));
        }
        REQUIRE(cells.size() == 7);
        CAPTURE(line);
        const auto day = static_cast<int>(cells[0]);
        const auto noon = warmup::test::at("2026-03-02T12:00:00Z") + std::chrono::days(day - 1);
        CHECK(config.schedule("standard")->cap(static_cast<std::uint32_t>(day)) == cells[1]);
        for (const auto& s : engine.status("news.example.com", noon)) {
            const auto p = std::find(providers.begin(), providers.end(), s.key.provider);
            REQUIRE(p != providers.end());
            CHECK(s.ramp_day == static_cast<std::uint32_t>(day));
            CHECK(s.cap == cells[2 + static_cast<std::size_t>(p - providers.begin())]);
        }
        ++rows;
    }
    CHECK(rows == 30);
}
