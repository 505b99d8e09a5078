#include "daemon/admin_verbs.hpp"

#include "daemon/ctl_client.hpp"
#include "tests/daemon/control_support.hpp"

#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

using namespace ember;
using namespace std::chrono_literals;
namespace json = boost::json;
using daemon::AdminResult;
using queue::RecipientState;

namespace {

constexpr std::int64_t kReceived = 1'772'366'405'000; // 2026-03-01T12:00:05Z

struct QueueFixture {
    daemon::test::TempDir dir;
    std::unique_ptr<queue::Store> store;

    QueueFixture() {
        queue::StoreConfig config;
        config.data_dir = dir.path + "/queue";
        config.map_size = core::ByteSize{std::uint64_t{64} << 20};
        std::string error;
        store = queue::Store::open(config, error);
        REQUIRE_MESSAGE(store, error);
    }

    // Commits a message with one recipient per (address, state) and returns its id.
    std::string add(std::string sender,
                    std::vector<std::pair<std::string, RecipientState>> recipients,
                    std::string content = "Subject: hi\r\n\r\nbody\r\n") {
        queue::Message m;
        m.id = store->next_id();
        m.envelope.mail_from = std::move(sender);
        m.submission.client_ip = "192.0.2.7";
        m.submission.helo = "app.example";
        m.submission.received_at_ms = kReceived;
        for (auto& [address, state] : recipients) {
            queue::Recipient r;
            r.spec.address = address;
            r.state = state;
            m.recipients.push_back(r);
        }
        std::promise<queue::CommitResult> done;
        store->commit(m, std::move(content),
                      [&done](queue::CommitResult r) { done.set_value(std::move(r)); });
        const auto result = done.get_future().get();
        REQUIRE_MESSAGE(result.status == queue::CommitStatus::Ok, result.detail);
        return queue::format_queue_id(m.id);
    }
};

json::object ok_result(const AdminResult& reply) {
    INFO("error: ", reply.error());
    REQUIRE(reply.ok());
    REQUIRE(reply.result().is_object());
    return reply.result().get_object();
}

std::vector<std::string> listed_ids(const AdminResult& reply) {
    std::vector<std::string> ids;
    const auto result = ok_result(reply);
    for (const auto& m : result.at("messages").as_array())
        ids.emplace_back(m.at("id").as_string());
    return ids;
}

} // namespace

TEST_CASE("queue.summary counts recipients per state and per destination, busiest first") {
    QueueFixture q;
    q.add("a@example.org", {{"x@small.example", RecipientState::Queued}});
    q.add("a@example.org",
          {{"y@big.example", RecipientState::Queued}, {"z@big.example", RecipientState::Deferred}});

    const auto summary = ok_result(daemon::queue_summary(*q.store, {}));
    CAPTURE(json::serialize(summary));
    CHECK(summary.at("messages") == 2);
    CHECK(summary.at("recipients").at("queued") == 2);
    CHECK(summary.at("recipients").at("deferred") == 1);
    CHECK(summary.at("recipients").at("failed") == 0);
    CHECK(summary.at("recipients").at("total") == 3);
    const auto& domains = summary.at("domains").as_array();
    REQUIRE(domains.size() == 2);
    CHECK(domains[0].at("domain") == "big.example");
    CHECK(domains[0].at("total") == 2);
    CHECK(domains[0].at("deferred") == 1);
    CHECK(domains[1].at("domain") == "small.example");

    CHECK_FALSE(daemon::queue_summary(*q.store, json::object{{"x", 1}}).ok());
}

TEST_CASE("queue.list filters by destination and state and reports truncation") {
    QueueFixture q;
    const auto first = q.add("a@example.org", {{"x@one.example", RecipientState::Queued}});
    const auto second = q.add("b@example.org", {{"y@two.example", RecipientState::Deferred}});
    const auto third = q.add("c@example.org", {{"z@one.example", RecipientState::Deferred},
                                               {"w@two.example", RecipientState::Queued}});

    struct Case {
        json::object args;
        std::vector<std::string> ids;
    };
    const Case cases[] = {
        {{}, {first, second, third}},
        {{{"domain", "one.example"}}, {first, third}},
        {{{"domain", "ONE.example"}}, {first, third}},
        {{{"state", "deferred"}}, {second, third}},
        {{{"domain", "two.example"}, {"state", "queued"}}, {third}},
        {{{"domain", "none.example"}}, {}},
        {{{"limit", 2}}, {first, second}},
    };
    for (const auto& c : cases) {
        CAPTURE(json::serialize(c.args));
        const auto reply = daemon::queue_list(*q.store, c.args);
        CHECK(listed_ids(reply) == c.ids);
    }
    CHECK(ok_result(daemon::queue_list(*q.store, {{"limit", 2}})).at("truncated") == true);
    CHECK(ok_result(daemon::queue_list(*q.store, {{"limit", 3}})).at("truncated") == false);

    const auto entry = ok_result(daemon::queue_list(*q.store, {})).at("messages").at(2);
    CHECK(entry.at("mail_from") == "c@example.org");
    CHECK(entry.at("received_at") == "2026-03-01T12:00:05Z");
    CHECK(entry.at("recipients").at(1).at("address") == "w@two.example");
    CHECK(entry.at("recipients").at(1).at("state") == "queued");
}

TEST_CASE("queue.list refuses bad arguments instead of widening the query") {
    QueueFixture q;
    const json::object bad[] = {
        {{"state", "lost"}}, {{"limit", 0}},  {{"limit", 10001}}, {{"limit", "5"}},
        {{"limit", 1.5}},    {{"domain", 3}}, {{"domian", "x"}},
    };
    for (const auto& args : bad) {
        CAPTURE(json::serialize(args));
        const auto reply = daemon::queue_list(*q.store, args);
        CHECK_FALSE(reply.ok());
        CHECK_FALSE(reply.error().empty());
    }
}

TEST_CASE("queue.show returns envelope, submission, recipients and the header fields") {
    QueueFixture q;
    const std::string content = "From: A <a@example.org>\r\n"
                                "Subject: folded\r\n"
                                " subject\r\n"
                                "X-Bytes: caf\xe9\r\n"
                                "\r\n"
                                "Not-A-Header: body\r\n";
    const auto id = q.add("a@example.org", {{"x@one.example", RecipientState::Deferred}}, content);

    const auto show = ok_result(daemon::queue_show(*q.store, {{"id", id}}));
    CAPTURE(json::serialize(show));
    CHECK(show.at("id").as_string() == id);
    CHECK(show.at("size") == content.size());
    CHECK(show.at("envelope").at("mail_from") == "a@example.org");
    CHECK(show.at("submission").at("client_ip") == "192.0.2.7");
    CHECK(show.at("submission").at("received_at") == "2026-03-01T12:00:05Z");
    const auto& recipient = show.at("recipients").at(0);
    CHECK(recipient.at("address") == "x@one.example");
    CHECK(recipient.at("state") == "deferred");
    CHECK(recipient.at("attempts") == 0);
    const auto& headers = show.at("headers").as_array();
    REQUIRE(headers.size() == 3);
    CHECK(headers[0].at("name") == "From");
    CHECK(headers[1].at("value") == "folded subject");
    CHECK(headers[2].at("value") == "caf\xEF\xBF\xBD"); // invalid UTF-8 replaced
    CHECK(show.at("headers_truncated") == false);
}

TEST_CASE("queue.show and queue.delete name what is wrong with the id") {
    QueueFixture q;
    const auto absent = queue::format_queue_id(12345);
    struct Case {
        json::object args;
        std::string error;
    };
    const Case cases[] = {
        {{}, "missing argument \"id\""},
        {{{"id", 5}}, "must be a string"},
        {{{"id", "not-an-id"}}, "invalid queue id"},
        {{{"id", absent}}, "no such message: " + absent},
        {{{"id", absent}, {"force", true}}, "unknown argument \"force\""},
    };
    for (const auto& c : cases) {
        CAPTURE(json::serialize(c.args));
        for (const auto& reply :
             {daemon::queue_show(*q.store, c.args), daemon::queue_delete(*q.store, c.args)}) {
            CHECK_FALSE(reply.ok());
            CAPTURE(reply.error());
            CHECK(reply.error().find(c.error) != std::string::npos);
        }
    }
}

TEST_CASE("queue.delete removes the message and its recipients") {
    QueueFixture q;
    const auto keep = q.add("a@example.org", {{"x@one.example", RecipientState::Queued}});
    const auto gone = q.add("b@example.org", {{"y@one.example", RecipientState::Queued}});

    const auto deleted = ok_result(daemon::queue_delete(*q.store, {{"id", gone}}));
    CHECK(deleted.at("deleted").as_string() == gone);
    CHECK(listed_ids(daemon::queue_list(*q.store, {})) == std::vector<std::string>{keep});
    CHECK_FALSE(daemon::queue_show(*q.store, {{"id", gone}}).ok());
    CHECK_FALSE(daemon::queue_delete(*q.store, {{"id", gone}}).ok());
    CHECK(ok_result(daemon::queue_summary(*q.store, {})).at("recipients").at("total") == 1);
}

TEST_CASE("the queue verbs answer over the admin socket") {
    QueueFixture q;
    const auto id = q.add("a@example.org", {{"x@one.example", RecipientState::Queued}});
    const auto path = q.dir.path + "/admin.sock";
    daemon::test::AdminThread admin(path);
    daemon::add_queue_verbs(admin.server(), *q.store);
    admin.start();
    CHECK(admin.server().verbs() ==
          std::vector<std::string>{"queue.delete", "queue.list", "queue.show", "queue.summary"});

    auto list = daemon::ctl::call_admin(path, "queue.list", {{"domain", "one.example"}}, 5s);
    REQUIRE(list.status == daemon::ctl::AdminCall::Status::Ok);
    CHECK(list.result.at("messages").at(0).at("id").as_string() == id);
    auto show = daemon::ctl::call_admin(path, "queue.show", {{"id", "bogus"}}, 5s);
    CHECK(show.status == daemon::ctl::AdminCall::Status::DaemonError);
}

TEST_CASE("the header section stops at the empty line, a non-field line, or the field cap") {
    struct Case {
        std::string content;
        std::size_t fields;
        bool truncated;
    };
    const Case cases[] = {
        {"A: 1\r\nB: 2\r\n\r\nC: 3\r\n", 2, false},
        {"A: 1\nB: 2\n\nC: 3\n", 2, false},
        {"A: 1\r\nno colon here\r\nB: 2\r\n", 1, false},
        {" folded first\r\nA: 1\r\n", 0, false},
        {"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n", 3, true},
        {"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 3, false},
        {"", 0, false},
        {"A: no end of line", 1, false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.content);
        const auto section = daemon::parse_header_section(c.content, 3);
        CHECK(section.fields.size() == c.fields);
        CHECK(section.truncated == c.truncated);
    }
    const auto folded = daemon::parse_header_section("Subject : a\r\n\tb \r\n c\r\n\r\n");
    REQUIRE(folded.fields.size() == 1);
    CHECK(folded.fields[0].name == "Subject");
    CHECK(folded.fields[0].value == "a\tb  c");
}

TEST_CASE("invalid UTF-8 is replaced and valid UTF-8 kept") {
    struct Case {
        std::string in;
        std::string want;
    };
    const Case cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xf0\x9f\x93\xa7", "\xf0\x9f\x93\xa7"},
        {"\xff", "\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 // overlong '/'
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, // a surrogate
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},                 // truncated
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(daemon::valid_utf8(c.in) == c.want);
    }
}

TEST_CASE("timestamps are RFC 3339 UTC seconds, empty for zero") {
    CHECK(daemon::format_timestamp(kReceived) == "2026-03-01T12:00:05Z");
    CHECK(daemon::format_timestamp(kReceived + 999) == "2026-03-01T12:00:05Z");
    CHECK(daemon::format_timestamp(0).empty());
}
