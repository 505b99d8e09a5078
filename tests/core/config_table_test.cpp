#include "core/config_table.hpp"

#include <doctest/doctest.h>

#include <sstream>

using namespace ember::core;
using namespace std::chrono_literals;

namespace {

struct Sample {
    std::string name = "ember";
    std::uint32_t count = 10;
    Duration timeout = 5min;
    ByteSize size{1 << 20};
    bool enabled = true;
    std::vector<Cidr> networks;
};

config::Table<Sample> sample_table() {
    return {config::string_field<Sample>("name", &Sample::name, false),
            config::integer_field<Sample>("count", &Sample::count, 1, 100),
            config::duration_field<Sample>("timeout", &Sample::timeout, 1s, 1h),
            config::size_field<Sample>("size", &Sample::size, ByteSize{1024}, ByteSize{1 << 30}),
            config::bool_field<Sample>("enabled", &Sample::enabled),
            config::cidr_list_field<Sample>("networks", &Sample::networks)};
}

Diagnostics parse(const std::string& text, Sample& out) {
    std::istringstream in(text);
    const auto root = toml::parse(in, "sample.toml");
    Diagnostics diag;
    config::Context ctx{diag, "/etc/ember"};
    config::parse_table(toml::find(root, "s"), "[s]", sample_table(), out, ctx);
    return diag;
}

} // namespace

TEST_CASE("a table fills the struct and keeps defaults for absent keys") {
    Sample s;
    const auto diag = parse("[s]\ncount = 42\ntimeout = \"30s\"\nnetworks = [\"10.0.0.0/8\"]\n", s);
    CHECK(diag.empty());
    CHECK(s.count == 42);
    CHECK(s.timeout == 30s);
    CHECK(s.name == "ember");
    CHECK(s.networks.size() == 1);
}

TEST_CASE("every bad key is reported with its file and line") {
    Sample s;
    const auto diag = parse("[s]\ncount = 0\ntimeot = \"5m\"\nsize = \"big\"\nenabled = \"yes\"\n"
                            "networks = [\"10.0.0.0/40\"]\nname = \"\"\n",
                            s);
    const auto all = diag.sorted();
    REQUIRE(all.size() == 6);
    CHECK(format(all[0]) == "sample.toml:2: value 0 is out of range [1, 100]");
    CHECK(format(all[1]) == "sample.toml:3: unknown key 'timeot' in [s]; did you mean 'timeout'?");
    CHECK(format(all[2]).starts_with("sample.toml:4: invalid size \"big\""));
    CHECK(format(all[3]) == "sample.toml:5: expected true or false, found a string");
    CHECK(format(all[4]).starts_with("sample.toml:6: invalid network \"10.0.0.0/40\""));
    CHECK(format(all[5]) == "sample.toml:7: name must not be empty");
}

TEST_CASE("the dump of a default struct is the documented default") {
    const auto text = config::dump_table(sample_table(), Sample{});
    CHECK(text == "name = \"ember\"\ncount = 10\ntimeout = \"5m\"\nsize = \"1M\"\nenabled = true\n"
                  "networks = []\n");
}
