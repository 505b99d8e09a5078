#include "daemon/contacts_verbs.hpp"

#include "daemon/ctl_contacts.hpp"
#include "personalize/time_text.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

using namespace ember;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::int64_t kNow = 1'772'445'600'000; // 2026-03-02T10:00:00Z

asio::awaitable<void> into(std::optional<daemon::AdminResult>* out,
                           asio::awaitable<daemon::AdminResult> task) {
    out->emplace(co_await std::move(task));
}

// AdminResult has no default constructor, which use_future needs.
daemon::AdminResult run(asio::awaitable<daemon::AdminResult> task) {
    asio::io_context io;
    std::optional<daemon::AdminResult> out;
    asio::co_spawn(io, into(&out, std::move(task)), [](const std::exception_ptr& e) {
        if (e)
            std::rethrow_exception(e);
    });
    io.run();
    REQUIRE(out.has_value());
    return std::move(*out);
}

struct Contacts {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store = queue::test::open_store(queue::test::config_for(dir));
    std::unique_ptr<personalize::ContactStore> contacts;
    Contacts() {
        std::string error;
        contacts = personalize::ContactStore::open(*store, {}, error);
        REQUIRE(contacts != nullptr);
    }
};

const json::object& object_of(const daemon::AdminResult& r) {
    INFO("error: ", r.error());
    REQUIRE(r.ok());
    REQUIRE(r.result().is_object());
    return r.result().get_object();
}

// Polls a job until it ends (bounded: a stuck job fails the test).
json::object wait_job(const daemon::ContactJobs& jobs, std::uint64_t id) {
    for (int i = 0; i < 3000; ++i) {
        const auto status = daemon::contacts_job(jobs, json::object{{"job", id}});
        const auto& o = object_of(status);
        if (!o.at("running").as_bool())
            return o;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("the job did not end");
    return {};
}

std::uint64_t job_id(const daemon::AdminResult& r) {
    return object_of(r).at("job").to_number<std::uint64_t>();
}

} // namespace

TEST_CASE("contacts.set merges attributes and tags and contacts.get reads them back") {
    Contacts c;
    auto set = run(daemon::contacts_set(
        c.contacts.get(),
        json::parse(R"({"address":"Jane@Example.org","attributes":{"first_name":"Jane","age":41},
                        "add_tags":["runner"]})")
            .as_object(),
        kNow));
    CHECK(object_of(set).at("address") == "jane@example.org");
    set = run(daemon::contacts_set(
        c.contacts.get(),
        json::parse(R"({"address":"jane@example.org","attributes":{"age":null,"vip":true}})")
            .as_object(),
        kNow));
    const auto got =
        daemon::contacts_get(*c.contacts, json::object{{"address", "JANE@example.org"}}, kNow);
    const auto& o = object_of(got);
    CHECK(json::serialize(o.at("attributes")) == R"({"first_name":"Jane","vip":true})");
    CHECK(json::serialize(o.at("tags")) == R"(["runner"])");
    CHECK(o.at("engagement").as_object().at("tier") == "never");
}

TEST_CASE("contacts verbs refuse bad input without writing") {
    Contacts c;
    struct Case {
        const char* args;
        const char* contains;
    };
    const std::vector<Case> cases{
        {R"({"address":"not-an-address"})", "not an address"},
        {R"({"address":"a@b.example","attributes":{"bad name":1}})", "bad name"},
        {R"({"address":"a@b.example","attributes":{"x":{"nested":1}}})", ""},
        {R"({"address":"a@b.example","attributes":[1]})", "must be an object"},
        {R"({"address":"a@b.example","colour":"red"})", "colour"},
    };
    for (const auto& k : cases) {
        const std::string args = k.args;
        CAPTURE(args);
        const auto r =
            run(daemon::contacts_set(c.contacts.get(), json::parse(k.args).as_object(), kNow));
        CHECK_FALSE(r.ok());
        CAPTURE(r.error());
        CHECK(r.error().find(k.contains) != std::string::npos);
    }
    CHECK(c.contacts->size() == 0);
    CHECK_FALSE(
        daemon::contacts_get(*c.contacts, json::object{{"address", "a@b.example"}}, kNow).ok());
}

TEST_CASE("contacts.event records engagement at the given time; contacts.delete removes") {
    Contacts c;
    const auto r = run(daemon::contacts_event(c.contacts.get(),
                                              json::object{{"address", "a@b.example"},
                                                           {"kind", "open"},
                                                           {"at", "2026-03-01T09:15:00Z"},
                                                           {"domain", "sender.example"}},
                                              kNow));
    CHECK(object_of(r).at("time") == "2026-03-01T09:15:00Z");
    const auto got =
        daemon::contacts_get(*c.contacts, json::object{{"address", "a@b.example"}}, kNow);
    CHECK(object_of(got).at("engagement").as_object().at("last_open") == "2026-03-01T09:15:00Z");
    CHECK(personalize::histogram_total(c.contacts->domain_histogram("sender.example")) == 1);

    CHECK_FALSE(run(daemon::contacts_event(
                        c.contacts.get(),
                        json::object{{"address", "a@b.example"}, {"kind", "bounce"}}, kNow))
                    .ok());
    CHECK(run(daemon::contacts_delete(c.contacts.get(), json::object{{"address", "a@b.example"}}))
              .ok());
    CHECK_FALSE(
        run(daemon::contacts_delete(c.contacts.get(), json::object{{"address", "a@b.example"}}))
            .ok());
}

TEST_CASE("an import job reports bad rows as name:line and imports the rest; export re-imports") {
    Contacts c;
    const auto csv = c.dir.path + "/in.csv";
    std::ofstream(csv) << "address,first_name,age:number,tags\n"
                          "jane@example.org,Jane,41,runner;vip\n"
                          "not an address,X,1,\n"
                          "bob@example.org,Bob,,\n";
    daemon::ContactJobs jobs(*c.contacts);
    auto status = wait_job(jobs, job_id(daemon::contacts_import(
                                     jobs, json::object{{"path", csv}, {"name", "in.csv"}})));
    CHECK(status.at("ok").as_bool());
    CHECK(status.at("imported").to_number<int>() == 2);
    CHECK(status.at("skipped").to_number<int>() == 1);
    REQUIRE(status.at("errors").as_array().size() == 1);
    CHECK(status.at("errors").as_array()[0].as_string().starts_with("in.csv:3: "));

    const auto out = c.dir.path + "/out.csv";
    status = wait_job(jobs, job_id(daemon::contacts_export(jobs, json::object{{"path", out}})));
    CHECK(status.at("ok").as_bool());
    CHECK(status.at("rows").to_number<int>() == 2);

    Contacts again;
    daemon::ContactJobs jobs2(*again.contacts);
    status = wait_job(jobs2, job_id(daemon::contacts_import(jobs2, json::object{{"path", out}})));
    CHECK(status.at("imported").to_number<int>() == 2);
    for (const char* a : {"jane@example.org", "bob@example.org"}) {
        CAPTURE(a);
        const auto x = c.contacts->get(a);
        const auto y = again.contacts->get(a);
        REQUIRE(x.has_value());
        REQUIRE(y.has_value());
        CHECK(x->attributes == y->attributes);
        CHECK(x->tags == y->tags);
    }
}

TEST_CASE("import and export jobs refuse what they cannot open, and run one at a time") {
    Contacts c;
    daemon::ContactJobs jobs(*c.contacts);
    auto r = daemon::contacts_import(jobs, json::object{{"path", c.dir.path + "/missing.csv"}});
    CHECK_FALSE(r.ok());
    CHECK(r.error().find("cannot read") != std::string::npos);
    r = daemon::contacts_import(jobs, json::object{{"path", "relative.csv"}});
    CHECK_FALSE(r.ok());
    r = daemon::contacts_export(jobs, json::object{{"path", c.dir.path + "/no/such/dir.csv"}});
    CHECK_FALSE(r.ok());
    CHECK_FALSE(daemon::contacts_job(jobs, json::object{{"job", 99}}).ok());
}

TEST_CASE("emberctl contacts set reads typed NAME=VALUE assignments") {
    struct Case {
        const char* text;
        const char* json; // "" : an error
    };
    const std::vector<Case> cases{
        {"first_name=Jane", R"("Jane")"},
        {"zip=02134", R"("02134")"},
        {"age:number=41", "41"},
        {"score:number=-2", "-2"},
        {"vip:bool=yes", "true"},
        {"vip:bool=0", "false"},
        {"likes:list=a;b;;c", R"(["a","b","c"])"},
        {"first_name=", "null"},
        {"url=https://x.example/?a=b", R"("https://x.example/?a=b")"},
        {"age:number=old", ""},
        {"vip:bool=maybe", ""},
        {"=x", ""},
        {"noequals", ""},
    };
    for (const auto& k : cases) {
        const std::string text = k.text;
        CAPTURE(text);
        const auto parsed = daemon::ctl::parse_assignment(text);
        if (*k.json == '\0') {
            CHECK(std::holds_alternative<std::string>(parsed));
            continue;
        }
        REQUIRE(std::holds_alternative<daemon::ctl::Assignment>(parsed));
        CHECK(json::serialize(std::get<daemon::ctl::Assignment>(parsed).value) ==
              std::string(k.json));
    }
    const auto decimal = daemon::ctl::parse_assignment("score:number=1.5");
    REQUIRE(std::holds_alternative<daemon::ctl::Assignment>(decimal));
    CHECK(std::get<daemon::ctl::Assignment>(decimal).value.as_double() == doctest::Approx(1.5));
    std::string error;
    const auto request = daemon::ctl::contacts_set_request(
        json::object{{"address", "a@b.example"},
                     {"assignments", json::array{"n=1", "m:number=2"}},
                     {"tag", "vip"}},
        error);
    CHECK(error.empty());
    CHECK(json::serialize(request) ==
          R"({"address":"a@b.example","attributes":{"n":"1","m":2},"add_tags":["vip"]})");
}

TEST_CASE("emberctl polls a contacts job and exits 1 when rows were bad") {
    int polls = 0;
    daemon::ctl::AdminCaller call = [&polls](const std::string& verb, const json::object&) {
        daemon::ctl::AdminCall answer;
        if (verb == "contacts.import") {
            answer.result = json::object{{"job", 7}};
            return answer;
        }
        ++polls;
        answer.result = json::object{{"job", 7},
                                     {"kind", "import"},
                                     {"running", polls < 3},
                                     {"ok", true},
                                     {"rows", 3},
                                     {"imported", 2},
                                     {"skipped", 1},
                                     {"size", 10},
                                     {"bytes", 10},
                                     {"error_count", 1},
                                     {"errors", json::array{"in.csv:3: not an address"}}};
        return answer;
    };
    std::ostringstream out, err;
    const int rc = daemon::ctl::run_contacts_job("contacts.import", json::object{{"path", "/x"}},
                                                 false, call, out, err, [] {});
    CHECK(rc == 1);
    CHECK(polls == 3);
    CHECK(out.str() == "imported 2 contacts, skipped 1 bad rows (3 rows read)\n");
    CHECK(err.str().find("in.csv:3: not an address\n") != std::string::npos);
}
