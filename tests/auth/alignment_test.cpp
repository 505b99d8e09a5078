#include "auth/alignment.hpp"

#include "tests/auth/zone_resolver.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

using namespace ember;
using auth::AlignmentPolicy;
using auth::AlignmentStatus;
using auth::test::run;
using auth::test::ZoneResolver;

namespace {

core::IpAddress ip(const char* text) {
    return *core::IpAddress::parse(text);
}

// example.com sends with bounces from bounce.example.com through 192.0.2.10.
auth::AlignmentRequest request() {
    auth::AlignmentRequest r;
    r.from_domains = {"example.com"};
    r.mail_from = "bounces@bounce.example.com";
    r.helo = "mta.example.net";
    r.egress_ips = {ip("192.0.2.10")};
    return r;
}

auth::AlignmentVerdict check(ZoneResolver& zone, auth::AlignmentRequest r) {
    return run(auth::check_alignment(&zone, auth::PublicSuffixList::system(), std::move(r)));
}

// Captures what the code under test writes to stderr (log lines).
class StderrCapture {
public:
    StderrCapture() : file_(std::tmpfile()), saved_(dup(2)) {
        REQUIRE(file_ != nullptr);
        std::fflush(stderr);
        dup2(fileno(file_), 2);
    }
    ~StderrCapture() {
        restore();
        std::fclose(file_);
    }
    std::string text() {
        restore();
        std::rewind(file_);
        std::string out;
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0)
            out.append(buf, n);
        return out;
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;

private:
    void restore() {
        if (saved_ >= 0) {
            std::fflush(stderr);
            dup2(saved_, 2);
            close(saved_);
            saved_ = -1;
        }
    }
    std::FILE* file_;
    int saved_;
};

} // namespace

TEST_CASE("a DKIM key for exactly the From domain passes without any DNS lookup") {
    ZoneResolver zone;
    auto r = request();
    r.dkim_domains = {"other.example", "Example.COM"};
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Pass);
    CHECK(v.dkim_aligned);
    CHECK(zone.asked.empty());
}

TEST_CASE("a DKIM key for the organizational domain aligns when adkim is relaxed") {
    ZoneResolver zone;
    auto r = request();
    r.from_domains = {"news.example.com"};
    r.dkim_domains = {"example.com"};
    CHECK(check(zone, r).status == AlignmentStatus::Pass);
    zone.txt("_dmarc.news.example.com", "v=DMARC1; p=reject; adkim=s");
    const auto strict = check(zone, r);
    CHECK(strict.status == AlignmentStatus::Fail);
    CHECK_FALSE(strict.dkim_aligned);
    CHECK(strict.reply.text.find("adkim=s") != std::string::npos);
}

TEST_CASE("SPF passing on an aligned envelope sender for every egress address passes") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    auto r = request();
    r.egress_ips = {ip("192.0.2.10"), ip("192.0.2.11")};
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Pass);
    CHECK(v.spf_aligned);
    CHECK_FALSE(v.dkim_aligned);
    CHECK(v.missing.empty());
}

TEST_CASE("an unaligned From is refused with 550 5.7.26 naming what is missing") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 ip4:198.51.100.1 -all");
    const auto v = check(zone, request());
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.code == 550);
    CHECK(v.reply.enhanced == "5.7.26");
    CHECK(v.reply.text ==
          "From domain example.com would fail DMARC: no DKIM key configured for example.com, "
          "and SPF for bounce.example.com does not list 192.0.2.10 (add ip4:192.0.2.10 to the "
          "SPF record of bounce.example.com or add a [[dkim]] key for example.com)");
    CHECK(v.missing.size() == 2);
}

TEST_CASE("a sender domain without SPF record is told what record to publish") {
    ZoneResolver zone;
    auto r = request();
    r.egress_ips = {ip("192.0.2.10"), ip("2001:db8::10")};
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("bounce.example.com publishes no SPF record") != std::string::npos);
    CHECK(v.reply.text.find("publish \"v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all\" for "
                            "bounce.example.com") != std::string::npos);
}

TEST_CASE("SPF that lists only some egress addresses names the others") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 ip4:192.0.2.10 ~all");
    auto r = request();
    r.egress_ips = {ip("192.0.2.10"), ip("192.0.2.11"), ip("2001:db8::11")};
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("does not list 192.0.2.11, 2001:db8::11 (add ip4:192.0.2.11 "
                            "ip6:2001:db8::11 to the SPF record") != std::string::npos);
}

TEST_CASE("a broken SPF record is named as such") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 ip4:192.0.2.10 -all moo");
    const auto v = check(zone, request());
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("the SPF record of bounce.example.com is broken") != std::string::npos);
}

TEST_CASE("an envelope sender in another organization does not align") {
    ZoneResolver zone;
    zone.txt("esp.example.net", "v=spf1 ip4:192.0.2.10 -all");
    auto r = request();
    r.mail_from = "b@esp.example.net";
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("the envelope sender domain esp.example.net does not align with "
                            "example.com") != std::string::npos);
    CHECK(zone.count("TXT esp.example.net") == 0);
}

TEST_CASE("aspf=s requires the envelope sender domain to be exactly the From domain") {
    ZoneResolver zone;
    zone.txt("_dmarc.example.com", "v=DMARC1; p=none; aspf=s");
    zone.txt("bounce.example.com", "v=spf1 ip4:192.0.2.10 -all");
    const auto v = check(zone, request());
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("(aspf=s)") != std::string::npos);
}

TEST_CASE("a null sender is checked with the HELO name") {
    ZoneResolver zone;
    zone.txt("mta.example.com", "v=spf1 ip4:192.0.2.10 -all");
    auto r = request();
    r.mail_from = "";
    r.helo = "mta.example.com";
    CHECK(check(zone, r).status == AlignmentStatus::Pass);
    CHECK(zone.count("TXT mta.example.com") == 1);
    r.helo = "mta.example.net";
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("the HELO name mta.example.net") != std::string::npos);
}

TEST_CASE("no known egress address cannot pass SPF") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 +all");
    auto r = request();
    r.egress_ips.clear();
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("set [delivery] source_ips") != std::string::npos);
}

TEST_CASE("a message needs exactly one From: address with a domain name") {
    ZoneResolver zone;
    auto r = request();
    r.dkim_domains = {"example.com"};
    r.from_domains = {"example.com", "example.com"};
    const auto two = check(zone, r);
    CHECK(two.status == AlignmentStatus::Fail);
    CHECK(two.reply.code == 550);
    CHECK(two.reply.enhanced == "5.7.26");
    CHECK(two.reply.text.find("2 From: addresses") != std::string::npos);
    r.from_domains = {};
    CHECK(check(zone, r).status == AlignmentStatus::Fail);
    r.from_domains = {"[192.0.2.1]"};
    CHECK(check(zone, r).status == AlignmentStatus::Fail);
    CHECK(zone.asked.empty());
}

TEST_CASE("a DNS timeout gives 451 4.4.3, never a permanent refusal") {
    ZoneResolver dmarc_down;
    dmarc_down.timeout("_dmarc.example.com");
    const auto v = check(dmarc_down, request());
    CHECK(v.status == AlignmentStatus::TempError);
    CHECK(v.reply.code == 451);
    CHECK(v.reply.enhanced == "4.4.3");
    CHECK(v.reply.text.find("example.com") != std::string::npos);

    ZoneResolver spf_down;
    spf_down.timeout("bounce.example.com");
    const auto s = check(spf_down, request());
    CHECK(s.status == AlignmentStatus::TempError);
    CHECK(s.reply.code == 451);
    CHECK(s.reply.enhanced == "4.4.3");
}

TEST_CASE("a definite SPF failure on one address outweighs a timeout on another") {
    ZoneResolver zone;
    zone.txt("bounce.example.com",
             "v=spf1 ip4:192.0.2.10 -ip4:203.0.113.0/24 a:slow.example.com -all");
    zone.timeout("slow.example.com");
    auto r = request();
    // 192.0.2.10 passes; 192.0.2.99 reaches the slow lookup: temporary.
    r.egress_ips = {ip("192.0.2.10"), ip("192.0.2.99")};
    CHECK(check(zone, r).status == AlignmentStatus::TempError);
    // 203.0.113.1 fails for good before the slow lookup: permanent.
    r.egress_ips = {ip("203.0.113.1"), ip("192.0.2.99")};
    const auto v = check(zone, r);
    CHECK(v.status == AlignmentStatus::Fail);
    CHECK(v.reply.text.find("does not list 203.0.113.1 (") != std::string::npos);
}

TEST_CASE("the gate refuses under enforce and logs the event") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 -all");
    StderrCapture capture;
    const auto d = run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(),
                                            AlignmentPolicy::Enforce, request(), "queue_id=Q1"));
    const std::string log = capture.text();
    CHECK_FALSE(d.accept);
    CHECK(d.reply.code == 550);
    CHECK(d.reply.enhanced == "5.7.26");
    CHECK(log.find("alignment.unaligned") != std::string::npos);
    CHECK(log.find("queue_id=Q1 action=refused policy=enforce from_domain=example.com") !=
          std::string::npos);
}

TEST_CASE("the gate accepts an unaligned From under warn and logs an event") {
    ZoneResolver zone;
    zone.txt("bounce.example.com", "v=spf1 -all");
    StderrCapture capture;
    const auto d = run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(),
                                            AlignmentPolicy::Warn, request(), ""));
    const std::string log = capture.text();
    CHECK(d.accept);
    CHECK(d.reply.code == 0);
    CHECK(d.verdict.status == AlignmentStatus::Fail);
    CHECK(log.find("alignment.unaligned action=accepted policy=warn") != std::string::npos);
}

TEST_CASE("the gate defers on a DNS timeout under enforce and accepts under warn") {
    ZoneResolver zone;
    zone.timeout("_dmarc.example.com");
    StderrCapture quiet;
    const auto enforce = run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(),
                                                  AlignmentPolicy::Enforce, request(), ""));
    CHECK(quiet.text().find("alignment.temperror action=refused") != std::string::npos);
    CHECK_FALSE(enforce.accept);
    CHECK(enforce.reply.code == 451);
    CHECK(enforce.reply.enhanced == "4.4.3");
    StderrCapture capture;
    const auto warn = run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(),
                                               AlignmentPolicy::Warn, request(), ""));
    CHECK(warn.accept);
    CHECK(capture.text().find("alignment.temperror") != std::string::npos);
}

TEST_CASE("the gate does nothing when off") {
    ZoneResolver zone;
    const auto d = run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(),
                                            AlignmentPolicy::Off, request(), ""));
    CHECK(d.accept);
    CHECK(zone.asked.empty());
}

TEST_CASE("a passing message is accepted silently under every policy") {
    ZoneResolver zone;
    auto r = request();
    r.dkim_domains = {"example.com"};
    for (const auto policy : {AlignmentPolicy::Enforce, AlignmentPolicy::Warn}) {
        StderrCapture capture;
        const auto d =
            run(auth::alignment_gate(&zone, auth::PublicSuffixList::system(), policy, r, ""));
        CHECK(d.accept);
        CHECK(capture.text().empty());
    }
}

TEST_CASE("policies parse by name and a listener may override the default") {
    CHECK(auth::parse_alignment_policy("enforce") == AlignmentPolicy::Enforce);
    CHECK(auth::parse_alignment_policy("warn") == AlignmentPolicy::Warn);
    CHECK(auth::parse_alignment_policy("off") == AlignmentPolicy::Off);
    CHECK_FALSE(auth::parse_alignment_policy("Enforce").has_value());
    CHECK(auth::alignment_policy_name(AlignmentPolicy::Warn) == "warn");
    const auth::AlignmentConfig config;
    CHECK(config.policy == AlignmentPolicy::Enforce);
    CHECK(auth::effective_policy(config, std::nullopt) == AlignmentPolicy::Enforce);
    CHECK(auth::effective_policy(config, AlignmentPolicy::Warn) == AlignmentPolicy::Warn);
}

TEST_CASE("the decision is pure: the same facts give the same verdict") {
    auth::AlignmentFacts facts;
    facts.dmarc.status = auth::DmarcLookup::Status::None;
    auth::SpfOutcome pass;
    pass.result = auth::SpfResult::Pass;
    auth::SpfOutcome fail;
    fail.result = auth::SpfResult::Fail;
    const auto& psl = *auth::PublicSuffixList::system();
    facts.spf = {pass};
    CHECK(auth::decide_alignment(request(), facts, psl).status == AlignmentStatus::Pass);
    facts.spf = {fail};
    CHECK(auth::decide_alignment(request(), facts, psl).status == AlignmentStatus::Fail);
    facts.spf = {};
    CHECK(auth::decide_alignment(request(), facts, psl).status == AlignmentStatus::TempError);
}

TEST_CASE("host_egress_addresses lists no loopback or private address") {
    for (const auto& address : auth::host_egress_addresses()) {
        CAPTURE(address.to_string());
        CHECK_FALSE(address.is_loopback());
        CHECK_FALSE(core::Cidr::parse("10.0.0.0/8")->contains(address));
        CHECK_FALSE(core::Cidr::parse("192.168.0.0/16")->contains(address));
        CHECK_FALSE(core::Cidr::parse("fe80::/10")->contains(address));
    }
}
