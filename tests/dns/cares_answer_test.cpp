#include "dns/cares_answer.hpp"

#include "tests/dns/wire.hpp"

#include <ares.h> // the status codes c-ares hands the interpreter

#include <doctest/doctest.h>

namespace ember::dns {
namespace {

using namespace test;

TEST_CASE("MX records come back with preferences, hosts and the smallest TTL") {
    const auto m = Message("example.test", kMx)
                       .answer("example.test", kMx, 300, mx_rdata(10, "MX1.example.test"))
                       .answer("example.test", kMx, 120, mx_rdata(20, "mx2.example.test"))
                       .bytes();
    const auto a = interpret_reply(RecordType::Mx, ARES_SUCCESS, m);
    CHECK(a.status == Status::Ok);
    CHECK(a.ttl == 120u);
    const auto mx = unwrap<MxRecord>(a);
    REQUIRE(mx.records.size() == 2);
    CHECK(mx.records[0] == MxRecord{10, "mx1.example.test"});
    CHECK(mx.records[1] == MxRecord{20, "mx2.example.test"});
}

TEST_CASE("a null MX comes back as an empty host") {
    const auto m =
        Message("null.example.test", kMx).answer("null.example.test", kMx, 300, mx_rdata(0, "."));
    const auto mx = unwrap<MxRecord>(interpret_reply(RecordType::Mx, ARES_SUCCESS, m.bytes()));
    REQUIRE(mx.records.size() == 1);
    CHECK(mx.records[0] == MxRecord{0, ""});
}

TEST_CASE("the strings of one TXT record are concatenated, records kept apart (RFC 7208 3.3)") {
    const auto m =
        Message("example.test", kTxt)
            .answer("example.test", kTxt, 300, txt_rdata({"v=spf1 ", "ip4:192.0.2.0/24", " -all"}))
            .answer("example.test", kTxt, 300, txt_rdata({"other"}))
            .bytes();
    const auto txt = unwrap<std::string>(interpret_reply(RecordType::Txt, ARES_SUCCESS, m));
    REQUIRE(txt.records.size() == 2);
    CHECK(txt.records[0] == "v=spf1 ip4:192.0.2.0/24 -all");
    CHECK(txt.records[1] == "other");
}

TEST_CASE("A answers carry each address and c-ares's TTL") {
    const auto m = Message("mx.example.test", kA)
                       .answer("mx.example.test", kA, 300, Bytes{192, 0, 2, 1})
                       .answer("mx.example.test", kA, 200, Bytes{192, 0, 2, 2})
                       .bytes();
    const auto a = unwrap<core::IpAddress>(interpret_reply(RecordType::A, ARES_SUCCESS, m));
    CHECK(a.status == Status::Ok);
    CHECK(a.ttl == 200u);
    REQUIRE(a.records.size() == 2);
    CHECK(a.records[1].to_string() == "192.0.2.2");
}

TEST_CASE("PTR answers list every target") {
    const auto m = Message("1.2.0.192.in-addr.arpa", kPtr)
                       .answer("1.2.0.192.in-addr.arpa", kPtr, 600, name_rdata("a.example.test"))
                       .answer("1.2.0.192.in-addr.arpa", kPtr, 600, name_rdata("b.example.test"))
                       .bytes();
    const auto p = unwrap<std::string>(interpret_reply(RecordType::Ptr, ARES_SUCCESS, m));
    CHECK(p.ttl == 600u);
    CHECK(p.records == std::vector<std::string>{"a.example.test", "b.example.test"});
}

TEST_CASE("NXDOMAIN is NxDomain with the SOA's negative TTL") {
    const auto m = Message("nope.example.test", kMx, 3)
                       .authority("example.test", kSoa, 3600, soa_rdata(60))
                       .bytes();
    const auto a = interpret_reply(RecordType::Mx, ARES_ENOTFOUND, m);
    CHECK(a.status == Status::NxDomain);
    CHECK(a.ttl == 60u);
}

TEST_CASE("an empty NOERROR answer is NoData, not NXDOMAIN") {
    const auto m =
        Message("example.test", kAaaa).authority("example.test", kSoa, 30, soa_rdata(60)).bytes();
    const auto a = interpret_reply(RecordType::Aaaa, ARES_ENODATA, m);
    CHECK(a.status == Status::NoData);
    CHECK(a.ttl == 30u);
}

TEST_CASE("an answer holding only a CNAME is NoData for the asked type") {
    const auto m = Message("www.example.test", kMx)
                       .answer("www.example.test", kCname, 300, name_rdata("example.test"))
                       .bytes();
    CHECK(interpret_reply(RecordType::Mx, ARES_SUCCESS, m).status == Status::NoData);
}

TEST_CASE("a negative answer without SOA has TTL 0, so it is not cached") {
    const auto m = Message("nope.invalid", kA, 3).bytes();
    const auto a = interpret_reply(RecordType::A, ARES_ENOTFOUND, m);
    CHECK(a.status == Status::NxDomain);
    CHECK(a.ttl == 0u);
}

TEST_CASE("a record cut short is Malformed, for every type") {
    for (const RecordType type :
         {RecordType::A, RecordType::Aaaa, RecordType::Mx, RecordType::Txt, RecordType::Ptr}) {
        CAPTURE(record_type_name(type));
        auto m = Message("example.test", static_cast<std::uint16_t>(type)).bytes();
        m[7] = 1; // ANCOUNT 1, then half a record
        const Bytes half = {0xc0, 0x0c, 0, static_cast<std::uint8_t>(type), 0, 1, 0, 0, 1,
                            0,    0,    64};
        m.insert(m.end(), half.begin(), half.end());
        CHECK(interpret_reply(type, ARES_SUCCESS, m).status == Status::Malformed);
    }
}

TEST_CASE("c-ares failure codes map to precise statuses") {
    struct Case {
        int ares;
        Status want;
    };
    for (const Case c :
         {Case{ARES_ESERVFAIL, Status::ServFail}, Case{ARES_EREFUSED, Status::ServFail},
          Case{ARES_EFORMERR, Status::ServFail}, Case{ARES_ENOTIMP, Status::ServFail},
          Case{ARES_ETIMEOUT, Status::Timeout}, Case{ARES_ECONNREFUSED, Status::ServFail},
          Case{ARES_EDESTRUCTION, Status::Timeout}, Case{ARES_ECANCELLED, Status::Timeout},
          Case{ARES_EBADRESP, Status::Malformed}, Case{ARES_EBADNAME, Status::NxDomain},
          Case{ARES_ENOTFOUND, Status::NxDomain}, Case{ARES_ENODATA, Status::NoData}}) {
        CAPTURE(c.ares);
        const auto got = interpret_reply(RecordType::A, c.ares, {});
        CHECK(status_name(got.status) == status_name(c.want));
        CHECK(got.records.empty());
    }
}

TEST_CASE("a success whose message cannot be read is Malformed") {
    const Bytes garbage = {0x12, 0x34, 0x84};
    CHECK(interpret_reply(RecordType::Mx, ARES_SUCCESS, garbage).status == Status::Malformed);
}

} // namespace
} // namespace ember::dns
