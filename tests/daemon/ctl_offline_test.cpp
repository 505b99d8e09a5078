#include "daemon/ctl_offline.hpp"

#include "auth/dkim_keys.hpp"
#include "daemon/ctl_cli.hpp"
#include "daemon/ctl_format.hpp"
#include "tests/daemon/control_support.hpp"
#include "tests/support/dns_server_process.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace ember;
namespace json = boost::json;
namespace ctl = ember::daemon::ctl;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A key made by `dkim keygen`, and its TXT record.
struct Key {
    std::string path;
    std::string record;
};

Key make_key(const std::string& dir, const std::string& selector) {
    ctl::KeygenOptions options;
    options.domain = "example.com";
    options.selector = selector;
    options.out = dir + "/" + selector + ".pem";
    const auto printed = ctl::dkim_keygen(options, true);
    INFO(printed.err);
    REQUIRE(printed.exit_code == 0);
    return {options.out, std::string(json::parse(printed.out).at("record").as_string())};
}

// A config that loads: one listener, our egress address, one [[dkim]] key.
std::string write_config(const std::string& dir, const Key& key,
                         const std::string& source_ips = R"(["192.0.2.10"])") {
    const auto path = dir + "/ember.toml";
    std::ofstream(path) << "[server]\nhostname = \"mta.example.com\"\ndata_dir = \"" << dir
                        << "/data\"\n"
                           "[[listener]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n"
                           "auth = \"none\"\n"
                           "[delivery]\nsource_ips = "
                        << source_ips
                        << "\n"
                           "[[dkim]]\ndomain = \"example.com\"\nselector = \"s2026\"\nkey = \""
                        << key.path << "\"\n";
    return path;
}

json::object txt(const std::string& name, const std::string& value) {
    return json::object{{"name", name}, {"type", "TXT"}, {"value", value}};
}

std::string zones(const std::vector<json::object>& records) {
    json::array array;
    for (const auto& r : records)
        array.push_back(r);
    return json::serialize(json::object{{"records", std::move(array)}});
}

const std::string kSpfOk = "v=spf1 ip4:192.0.2.10 -all";
const std::string kDmarc = "v=DMARC1; p=none; rua=mailto:dmarc@example.com";

// One DNS server, one config and two keys for the check-domain cases.
struct DomainFixture {
    daemon::test::TempDir dir;
    Key ours = make_key(dir.path, "s2026");
    Key other = make_key(dir.path, "other");
    std::string config = write_config(dir.path, ours);
    test::DnsServerProcess dns{zones({})};

    ctl::Printed check(const std::vector<json::object>& records, bool json = false) {
        REQUIRE_MESSAGE(dns.ok(), dns.error());
        REQUIRE(dns.reload(zones(records)));
        ctl::CheckDomainOptions options;
        options.domain = "example.com";
        options.config = config;
        options.dns = dns.endpoint().to_string();
        return ctl::check_domain(options, json);
    }
};

} // namespace

// --- command line ---

TEST_CASE("the offline verbs are parsed into their arguments and run without a daemon") {
    struct Case {
        std::vector<std::string> argv;
        std::string args;
    };
    const Case cases[] = {
        {{"emberctl", "dkim", "keygen", "--domain", "example.com", "--selector", "s1"},
         R"({"domain":"example.com","selector":"s1"})"},
        {{"emberctl", "dkim", "keygen", "--domain", "example.com", "--selector", "s1",
          "--algorithm", "ed25519-sha256", "--out", "/k.pem"},
         R"({"domain":"example.com","selector":"s1","algorithm":"ed25519-sha256","out":"/k.pem"})"},
        {{"emberctl", "dkim", "keygen", "--selector", "s1", "--domain", "example.com", "--bits",
          "3072"},
         R"({"domain":"example.com","selector":"s1","bits":"3072"})"},
        {{"emberctl", "spf", "192.0.2.1", "a@example.com"},
         R"({"ip":"192.0.2.1","mailfrom":"a@example.com"})"},
        {{"emberctl", "spf", "--dns", "127.0.0.1:5353", "192.0.2.1", "<>", "mta.example.com"},
         R"({"dns":"127.0.0.1:5353","ip":"192.0.2.1","mailfrom":"<>","helo":"mta.example.com"})"},
        {{"emberctl", "-c", "/e.toml", "check-domain", "example.com", "--dns", "127.0.0.1:53"},
         R"({"dns":"127.0.0.1:53","domain":"example.com"})"},
        {{"emberctl", "classify", "--reply", "550 5.1.1 unknown", "--json"},
         R"({"words":["--reply","550 5.1.1 unknown","--json"]})"},
        {{"emberctl", "classify", "bounce.eml", "--rules", "r.toml", "--help"},
         R"({"words":["bounce.eml","--rules","r.toml","--help"]})"},
        {{"emberctl", "classify", "-"}, R"({"words":["-"]})"},
        {{"emberctl", "classify"}, R"({"words":[]})"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto parsed = ctl::parse_command_line(c.argv);
        CAPTURE(parsed.output);
        REQUIRE(parsed.invocation);
        CHECK(parsed.invocation->verb->admin_verb.empty());
        CHECK(static_cast<bool>(parsed.invocation->verb->offline));
        CHECK(json::serialize(parsed.invocation->args) == c.args);
    }
}

TEST_CASE("offline verbs with missing or invalid options are usage errors") {
    const std::vector<std::vector<std::string>> errors = {
        {"emberctl", "dkim"},
        {"emberctl", "dkim", "keygen", "--domain", "example.com"},
        {"emberctl", "dkim", "keygen", "--selector", "s1"},
        {"emberctl", "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--bits",
         "1024"},
        {"emberctl", "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--algorithm",
         "rsa-sha1"},
        {"emberctl", "spf", "192.0.2.1"},
        {"emberctl", "spf", "192.0.2.1", "a@example.com", "helo", "extra"},
        {"emberctl", "check-domain"},
        {"emberctl", "check-domain", "a.example", "b.example"},
    };
    for (const auto& argv : errors) {
        CAPTURE(argv.size());
        CAPTURE(argv.back());
        const auto parsed = ctl::parse_command_line(argv);
        CHECK_FALSE(parsed.invocation);
        CHECK(parsed.exit_code == ctl::kExitUsage);
        CHECK_FALSE(parsed.output.empty());
    }
}

// --- dkim keygen ---

TEST_CASE("dkim keygen writes a 0600 key whose TXT record is its public key, never overwriting") {
    daemon::test::TempDir dir;
    ctl::KeygenOptions options;
    options.domain = "Example.COM";
    options.selector = "s2026";
    options.out = dir.path + "/key.pem";
    const auto printed = ctl::dkim_keygen(options, false);
    CAPTURE(printed.err);
    REQUIRE(printed.exit_code == 0);

    struct stat st {};
    REQUIRE(::stat(options.out.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // The record printed is the one load_dkim_key derives from the file.
    auth::DkimKeyConfig config;
    config.domain = "example.com";
    config.selector = "s2026";
    config.key = options.out;
    core::Diagnostics diag;
    const auto loaded = auth::load_dkim_key(config, "test.toml", 1, diag);
    REQUIRE_MESSAGE(loaded, diag.to_string());
    CHECK(loaded->bits == 2048);
    CHECK(ctl::dkim_tag(loaded->record, "v") == "DKIM1");
    CHECK(ctl::dkim_tag(loaded->record, "k") == "rsa");
    CHECK(ctl::dkim_tag(loaded->record, "p").value_or("").size() > 300);
    CHECK(printed.out.find("publish TXT at s2026._domainkey.example.com:\n" + loaded->record +
                           "\n") != std::string::npos);
    CHECK(printed.out.find("s2026._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=") !=
          std::string::npos);
    CHECK(printed.out.find("[[dkim]]\ndomain = \"example.com\"\nselector = \"s2026\"\nkey = \"" +
                           options.out + "\"\n") != std::string::npos);

    const auto before = read_file(options.out);
    const auto again = ctl::dkim_keygen(options, false);
    CHECK(again.exit_code == 1);
    CHECK(again.out.empty());
    CHECK(again.err.find("refusing to overwrite") != std::string::npos);
    CHECK(read_file(options.out) == before);
}

TEST_CASE("dkim keygen --json gives the record, its zone-file pieces and the config entry") {
    daemon::test::TempDir dir;
    ctl::KeygenOptions options;
    options.domain = "example.com";
    options.selector = "ed";
    options.algorithm = "ed25519-sha256";
    options.out = dir.path + "/ed.pem";
    const auto printed = ctl::dkim_keygen(options, true);
    REQUIRE(printed.exit_code == 0);
    const auto result = json::parse(printed.out).as_object();
    CHECK(result.at("path").as_string() == options.out);
    CHECK(result.at("algorithm") == "ed25519-sha256");
    CHECK(result.at("bits").is_null());
    CHECK(result.at("dns_name") == "ed._domainkey.example.com");
    const std::string record(result.at("record").as_string());
    CHECK(ctl::dkim_tag(record, "k") == "ed25519");
    CHECK(result.at("record_strings").as_array().size() == 1);
    CHECK(result.at("record_strings").as_array()[0].as_string() == record);
    CHECK(std::string(result.at("config").as_string()).find("algorithm = \"ed25519-sha256\"") !=
          std::string::npos);
}

TEST_CASE("dkim keygen refuses bad domains, selectors and contradictory options") {
    daemon::test::TempDir dir;
    struct Case {
        std::string domain;
        std::string selector;
        std::string algorithm;
        std::optional<unsigned> bits;
        int exit_code;
        std::string error;
    };
    const Case cases[] = {
        {"localhost", "s1", "rsa-sha256", std::nullopt, 1, "is not a domain name"},
        {"example.com", "bad selector", "rsa-sha256", std::nullopt, 1, "is not a selector"},
        {"example.com", "s1", "ed25519-sha256", 2048, 2, "--bits applies to rsa-sha256"},
        {"example.com", "s1", "rsa-sha1", std::nullopt, 2, "--algorithm must be"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.error);
        ctl::KeygenOptions options{c.domain, c.selector, c.algorithm, c.bits, dir.path + "/k.pem"};
        const auto printed = ctl::dkim_keygen(options, false);
        CHECK(printed.exit_code == c.exit_code);
        CHECK(printed.err.find(c.error) != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(options.out));
    }
}

TEST_CASE("dkim keygen prints the key file, the record, the zone line and the config entry") {
    const auto result = json::parse(R"js({"path":"/k.pem","algorithm":"rsa-sha256","bits":2048,
        "dns_name":"s._domainkey.example.com","record":"v=DKIM1; k=rsa; p=AB",
        "zone_line":"s._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=AB\" )",
        "config":"[[dkim]]\ndomain = \"example.com\"\n"})js");
    CHECK(ctl::format_dkim_keygen(result).out ==
          "wrote the private key /k.pem (rsa-sha256, 2048 bits, mode 0600)\n"
          "\n"
          "publish TXT at s._domainkey.example.com:\n"
          "v=DKIM1; k=rsa; p=AB\n"
          "\n"
          "zone file line:\n"
          "s._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=AB\" )\n"
          "\n"
          "add to ember.toml:\n"
          "[[dkim]]\n"
          "domain = \"example.com\"\n");
}

// --- record helpers ---

TEST_CASE("our egress addresses are added to an SPF record right after its version") {
    const auto v4 = *core::IpAddress::parse("192.0.2.10");
    const auto v6 = *core::IpAddress::parse("2001:db8::1");
    struct Case {
        std::string record;
        std::vector<core::IpAddress> ips;
        std::string want;
    };
    const Case cases[] = {
        {"v=spf1 -all", {v4}, "v=spf1 ip4:192.0.2.10 -all"},
        {"v=spf1 include:_spf.example.net ~all",
         {v4, v6},
         "v=spf1 ip4:192.0.2.10 ip6:2001:db8::1 include:_spf.example.net ~all"},
        {"v=spf1 mx ip4:192.0.2.10 -all", {v4}, "v=spf1 mx ip4:192.0.2.10 -all"},
        {"v=spf1 a ip4:192.0.2.10", {v4}, "v=spf1 a ip4:192.0.2.10"},
        {"v=spf1", {v4, v4}, "v=spf1 ip4:192.0.2.10"},
        {"V=SPF1 redirect=_spf.example.net",
         {v4},
         "V=SPF1 ip4:192.0.2.10 redirect=_spf.example.net"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.record);
        CHECK(ctl::spf_record_with(c.record, c.ips) == c.want);
    }
}

TEST_CASE("DKIM record tags are read with folding whitespace removed from p=") {
    struct Case {
        std::string record;
        std::string tag;
        std::optional<std::string> want;
    };
    const Case cases[] = {
        {"v=DKIM1; k=rsa; p=MIIB AQ\tAB", "p", "MIIBAQAB"},
        {"v=DKIM1;k=ed25519;p=abc", "k", "ed25519"},
        {"v=DKIM1; p=", "p", ""},
        {"v=DKIM1; k=rsa", "p", std::nullopt},
        {" p = ab c ; ", "p", "abc"},
        {"v=DKIM1; pp=x; p=y", "p", "y"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.record);
        CAPTURE(c.tag);
        CHECK(ctl::dkim_tag(c.record, c.tag) == c.want);
    }
}

// --- spf ---

TEST_CASE("spf evaluates an address and a sender against a given DNS server") {
    test::DnsServerProcess dns(zones({txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all")}));
    REQUIRE_MESSAGE(dns.ok(), dns.error());
    const auto server = dns.endpoint().to_string();

    const auto pass = ctl::spf({server, "192.0.2.7", "user@example.com", "mta.example.com"}, false);
    CAPTURE(pass.err);
    CHECK(pass.exit_code == 0);
    CHECK(pass.out.starts_with("pass\n"));

    const auto fail = ctl::spf({server, "198.51.100.7", "user@example.com", ""}, true);
    CHECK(fail.exit_code == 0);
    const auto result = json::parse(fail.out);
    CHECK(result.at("result") == "fail");
    CHECK(result.at("mechanism") == "-all");

    const auto bad_ip = ctl::spf({server, "not-an-ip", "user@example.com", ""}, false);
    CHECK(bad_ip.exit_code == 2);
    CHECK(bad_ip.err.find("not an IP address") != std::string::npos);

    const auto bad_dns =
        ctl::spf({"dns.example.com:53", "192.0.2.7", "user@example.com", ""}, false);
    CHECK(bad_dns.exit_code == 2);
    CHECK(bad_dns.err.find("--dns") != std::string::npos);
}

TEST_CASE("a DNS server is given as HOST:PORT or as a bare address on port 53") {
    dns::ResolverConfig config;
    CHECK(ctl::set_dns_server("127.0.0.1:5353", config));
    REQUIRE(config.servers.size() == 1);
    CHECK(config.servers[0].to_string() == "127.0.0.1:5353");
    CHECK(ctl::set_dns_server("::1", config));
    CHECK(config.servers[0].port == 53);
    CHECK(ctl::set_dns_server("[2001:db8::53]:5300", config));
    CHECK_FALSE(ctl::set_dns_server("ns.example.com:53", config));
    CHECK_FALSE(ctl::set_dns_server("127.0.0.1:0", config));
    CHECK_FALSE(ctl::set_dns_server("", config));
}

// --- check-domain ---

TEST_CASE("check-domain passes when SPF, the DKIM record and DMARC are all published") {
    DomainFixture f;
    const auto printed =
        f.check({txt("example.com", kSpfOk), txt("s2026._domainkey.example.com", f.ours.record),
                 txt("_dmarc.example.com", kDmarc)});
    CAPTURE(printed.out);
    CAPTURE(printed.err);
    CHECK(printed.exit_code == 0);
    CHECK(printed.out == "OK    spf    192.0.2.10: pass (ip4:192.0.2.10)\n"
                         "OK    dkim   s2026._domainkey.example.com: matches " +
                             f.ours.path +
                             " (rsa-sha256, 2048 bits)\n"
                             "OK    dmarc  _dmarc.example.com: p=none\n"
                             "mail From example.com aligns: DKIM and SPF\n");
}

TEST_CASE("check-domain shows the DKIM record to publish when it is missing or another key") {
    DomainFixture f;
    const std::string fix = "publish TXT at s2026._domainkey.example.com: " + f.ours.record + "\n";

    const auto missing = f.check({txt("example.com", kSpfOk), txt("_dmarc.example.com", kDmarc)});
    CAPTURE(missing.out);
    CHECK(missing.exit_code == 0); // SPF still aligns
    CHECK(missing.out.find("FAIL  dkim   s2026._domainkey.example.com: no DKIM key record\n"
                           "             " +
                           fix) != std::string::npos);
    CHECK(missing.out.find("aligns: SPF") != std::string::npos);

    const auto different =
        f.check({txt("example.com", kSpfOk), txt("s2026._domainkey.example.com", f.other.record),
                 txt("_dmarc.example.com", kDmarc)});
    CAPTURE(different.out);
    CHECK(different.out.find("FAIL  dkim   s2026._domainkey.example.com: the published key is "
                             "not the public key of " +
                             f.ours.path + "\n             " + fix) != std::string::npos);

    // Without SPF as well, nothing aligns.
    const auto neither = f.check({txt("example.com", "v=spf1 -all"),
                                  txt("s2026._domainkey.example.com", f.other.record),
                                  txt("_dmarc.example.com", kDmarc)});
    CAPTURE(neither.out);
    CHECK(neither.exit_code == 1);
    CHECK(neither.out.find("mail From example.com does not align: no signing [[dkim]] key is "
                           "aligned and published; SPF does not pass for 192.0.2.10\n") !=
          std::string::npos);
}

TEST_CASE("check-domain shows the existing SPF record with our address added") {
    DomainFixture f;
    const auto printed = f.check({txt("example.com", "v=spf1 ip4:198.51.100.1 ~all"),
                                  txt("s2026._domainkey.example.com", f.ours.record),
                                  txt("_dmarc.example.com", kDmarc)});
    CAPTURE(printed.out);
    CHECK(printed.exit_code == 0); // DKIM aligns
    CHECK(printed.out.find("FAIL  spf    192.0.2.10: softfail (~all)\n"
                           "             publish TXT at example.com: v=spf1 ip4:192.0.2.10 "
                           "ip4:198.51.100.1 ~all\n"
                           "             the existing record, with the egress addresses added\n") !=
          std::string::npos);

    const auto none = f.check({txt("s2026._domainkey.example.com", f.ours.record)});
    CAPTURE(none.out);
    CHECK(none.out.find("publish TXT at example.com: v=spf1 ip4:192.0.2.10 -all\n") !=
          std::string::npos);
}

TEST_CASE("check-domain suggests a p=none DMARC record when there is none") {
    DomainFixture f;
    const auto printed = f.check(
        {txt("example.com", kSpfOk), txt("s2026._domainkey.example.com", f.ours.record)}, true);
    CAPTURE(printed.out);
    CHECK(printed.exit_code == 0); // alignment does not need a published policy
    const auto report = json::parse(printed.out).as_object();
    CHECK(report.at("aligned") == true);
    CHECK(report.at("dkim_aligned") == true);
    CHECK(report.at("spf_aligned") == true);
    CHECK(report.at("temporary") == false);
    CHECK(report.at("egress_ips") == json::array{"192.0.2.10"});
    const auto& checks = report.at("checks").as_array();
    REQUIRE(checks.size() == 3);
    const auto& dmarc = checks[2].as_object();
    CHECK(dmarc.at("check") == "dmarc");
    CHECK(dmarc.at("status") == "fail");
    CHECK(dmarc.at("fix") ==
          json::object{{"name", "_dmarc.example.com"},
                       {"type", "TXT"},
                       {"value", "v=DMARC1; p=none; rua=mailto:dmarc@example.com"}});
    CHECK(checks[0].at("ip") == "192.0.2.10");
    CHECK(checks[0].at("result") == "pass");
    CHECK(checks[1].at("selector") == "s2026");
    CHECK(checks[1].at("key").as_string() == f.ours.path);
}

TEST_CASE("check-domain exits 75 when the DNS server cannot be reached") {
    DomainFixture f;
    std::string endpoint;
    {
        test::DnsServerProcess gone(zones({}));
        REQUIRE(gone.ok());
        endpoint = gone.endpoint().to_string();
    } // stopped: its port now refuses
    ctl::CheckDomainOptions options;
    options.domain = "example.com";
    options.config = f.config;
    options.dns = endpoint;
    const auto printed = ctl::check_domain(options, false);
    CAPTURE(printed.out);
    CHECK(printed.exit_code == ctl::kExitTempFail);
    CHECK(printed.out.find("TEMP  dkim   s2026._domainkey.example.com: lookup failed") !=
          std::string::npos);
    CHECK(printed.out.find("TEMP  dmarc") != std::string::npos);
    CHECK(printed.out.find("DNS lookups failed, try again") != std::string::npos);
}

TEST_CASE("check-domain through emberctl's command line, and its usage and config errors") {
    DomainFixture f;
    REQUIRE(f.dns.reload(zones({txt("example.com", kSpfOk), txt("_dmarc.example.com", kDmarc)})));
    std::ostringstream out, err;
    const int code = ctl::run({"emberctl", "-c", f.config, "check-domain", "EXAMPLE.com.", "--dns",
                               f.dns.endpoint().to_string()},
                              out, err);
    CAPTURE(err.str());
    CHECK(code == 0);
    CHECK(out.str().find("OK    spf    192.0.2.10: pass") != std::string::npos);

    ctl::CheckDomainOptions options;
    options.domain = "localhost";
    options.config = f.config;
    CHECK(ctl::check_domain(options, false).exit_code == ctl::kExitUsage);

    options.domain = "example.com";
    options.dns = "not a server";
    CHECK(ctl::check_domain(options, false).exit_code == ctl::kExitUsage);

    std::ofstream(f.dir.path + "/bad.toml") << "[server]\nbogus = 1\n";
    options.config = f.dir.path + "/bad.toml";
    const auto bad = ctl::check_domain(options, false);
    CHECK(bad.exit_code == ctl::kExitConfig);
    CHECK(bad.err.find(f.dir.path + "/bad.toml:2:") != std::string::npos);
}

TEST_CASE("check-domain's report prints one line per check with the record to publish") {
    const auto report = json::parse(R"({"checks":[
        {"check":"spf","status":"ok","detail":"192.0.2.10: pass","fix":null,"note":""},
        {"check":"dkim","status":"fail","detail":"s._domainkey.example.com: no DKIM key record",
         "fix":{"name":"s._domainkey.example.com","type":"TXT","value":"v=DKIM1; p=AB"},
         "note":""},
        {"check":"dmarc","status":"temp","detail":"_dmarc.example.com: lookup failed","fix":null,
         "note":"try again"}],
        "verdict":"mail From example.com aligns: SPF"})");
    CHECK(ctl::format_check_domain(report).out ==
          "OK    spf    192.0.2.10: pass\n"
          "FAIL  dkim   s._domainkey.example.com: no DKIM key record\n"
          "             publish TXT at s._domainkey.example.com: v=DKIM1; p=AB\n"
          "TEMP  dmarc  _dmarc.example.com: lookup failed\n"
          "             try again\n"
          "mail From example.com aligns: SPF\n");
}

// --- classify ---

TEST_CASE("classify classifies a reply, and a bounce message from a file or standard input") {
    const auto no_stdin = [] {
        FAIL("standard input read");
        return std::string();
    };
    const auto reply =
        ctl::classify({"--reply", "550 5.1.1 <a@b.example>: User unknown"}, false, no_stdin);
    CHECK(reply.exit_code == 0);
    CHECK(reply.out.starts_with("-\tuserunknown\thard\t5.1.1\t"));

    const auto as_json = ctl::classify({"--reply", "452 4.2.2 mailbox full"}, true, no_stdin);
    CHECK(as_json.exit_code == 0);
    CHECK(json::parse(as_json.out).at("hard") == false);

    const std::string sample =
        std::string(EMBER_SOURCE_DIR) + "/tests/data/bounces/lhost-gmail-01.eml";
    const auto file = ctl::classify({sample}, false, no_stdin);
    CHECK(file.exit_code == 0);
    CHECK(file.out.starts_with("userunknown@example.jp\tuserunknown\thard\t5.1.1\t"));

    const auto piped = ctl::classify({"-"}, false, [&] { return read_file(sample); });
    CHECK(piped.exit_code == 0);
    CHECK(piped.out == file.out);

    const auto not_bounce =
        ctl::classify({std::string(EMBER_SOURCE_DIR) + "/tests/data/bounces/is-not-bounce-01.eml"},
                      false, no_stdin);
    CHECK(not_bounce.exit_code == 1);
    CHECK(not_bounce.out.empty());

    const auto usage = ctl::classify({"--bogus"}, false, no_stdin);
    CHECK(usage.exit_code == 2);
}

TEST_CASE("emberctl classify passes the words after the verb and the global --json") {
    std::ostringstream out, err;
    const int code =
        ctl::run({"emberctl", "--json", "classify", "--reply", "550 5.1.1 user unknown"}, out, err);
    CAPTURE(err.str());
    CHECK(code == 0);
    CHECK(json::parse(out.str()).at("reason") == "userunknown");
}

// --- check-domain: the VERP return path ---

namespace {

// The fixture's config plus a [feedback] section giving example.com a
// bounce domain (and VERP on or off).
void add_bounce_domain(const DomainFixture& f, const std::string& bounce, bool verp) {
    std::ofstream(f.config, std::ios::app)
        << "[feedback]\ntoken_keys = [\"k1:0123456789abcdef0123\"]\nverp = "
        << (verp ? "true" : "false") << "\nbounce_domains = { \"example.com\" = \"" << bounce
        << "\" }\n";
}

} // namespace

TEST_CASE("check-domain checks the SPF of the VERP return path and says what to publish") {
    DomainFixture f;
    add_bounce_domain(f, "bounce.example.com", true);
    const std::vector<json::object> base = {txt("example.com", kSpfOk),
                                            txt("s2026._domainkey.example.com", f.ours.record),
                                            txt("_dmarc.example.com", kDmarc)};

    const auto missing = f.check(base);
    CAPTURE(missing.out);
    CHECK(missing.exit_code == 0); // DKIM still aligns
    CHECK(missing.out.find("FAIL  spf    return path bounce.example.com, 192.0.2.10: none") !=
          std::string::npos);
    CHECK(missing.out.find("publish TXT at bounce.example.com: v=spf1 ip4:192.0.2.10 -all\n") !=
          std::string::npos);
    CHECK(missing.out.find("aligns: DKIM\n") != std::string::npos); // not SPF: VERP is on
    const auto missing_json = json::parse(f.check(base, true).out).as_object();
    CHECK(missing_json.at("return_path_domain") == "bounce.example.com");
    CHECK(missing_json.at("spf_aligned") == false);

    auto published = base;
    published.push_back(txt("bounce.example.com", "v=spf1 ip4:192.0.2.10 -all"));
    const auto ok = f.check(published);
    CAPTURE(ok.out);
    CHECK(ok.exit_code == 0);
    CHECK(ok.out.find("OK    spf    return path bounce.example.com, 192.0.2.10: pass "
                      "(ip4:192.0.2.10)\n") != std::string::npos);
    CHECK(ok.out.find("aligns: DKIM and SPF") != std::string::npos);
}

TEST_CASE("with VERP a return path outside the domain's organization never aligns SPF") {
    DomainFixture f;
    add_bounce_domain(f, "bounces.esp.test", true);
    const auto printed =
        f.check({txt("example.com", kSpfOk), txt("bounces.esp.test", "v=spf1 ip4:192.0.2.10 -all"),
                 txt("_dmarc.example.com", kDmarc)});
    CAPTURE(printed.out);
    CHECK(printed.exit_code == 1); // no DKIM record published, and SPF does not align
    CHECK(printed.out.find("the return path domain bounces.esp.test does not align with "
                           "example.com") != std::string::npos);
}

TEST_CASE("without VERP the bounce domain's SPF is shown but the domain's own decides") {
    DomainFixture f;
    add_bounce_domain(f, "bounce.example.com", false);
    const auto printed = f.check({txt("example.com", kSpfOk), txt("_dmarc.example.com", kDmarc)});
    CAPTURE(printed.out);
    CHECK(printed.exit_code == 0); // SPF of example.com aligns
    CHECK(printed.out.find("publish TXT at bounce.example.com: v=spf1 ip4:192.0.2.10 -all\n") !=
          std::string::npos);
    CHECK(printed.out.find("[feedback] verp is off") != std::string::npos);
    CHECK(printed.out.find("aligns: SPF") != std::string::npos);
}
