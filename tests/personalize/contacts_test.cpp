#include "personalize/contacts.hpp"

#include "personalize/time_text.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <future>
#include <string>

using namespace ember::personalize;
using ember::queue::Store;
using ember::queue::test::config_for;
using ember::queue::test::open_store;
using ember::queue::test::TempDir;
namespace json = boost::json;

namespace {

std::unique_ptr<ContactStore> open_contacts(Store& store, ContactsConfig config = {}) {
    std::string error;
    auto contacts = ContactStore::open(store, config, error);
    INFO("open error: ", error);
    REQUIRE(contacts != nullptr);
    return contacts;
}

// Runs one write and waits for its `done`.
template <typename Fn> ContactResult sync(Fn&& start) {
    std::promise<ContactResult> promise;
    auto future = promise.get_future();
    start([&promise](ContactResult r) { promise.set_value(std::move(r)); });
    return future.get();
}

json::object obj(const char* text) {
    return json::parse(text).as_object();
}

std::int64_t at(const std::string& rfc3339) {
    const auto t = parse_rfc3339(rfc3339);
    REQUIRE(t.has_value());
    return *t;
}

} // namespace

TEST_CASE("set merges attributes, null deletes one, and the contact survives a reopen") {
    TempDir dir;
    const auto config = config_for(dir);
    {
        auto store = open_store(config);
        auto contacts = open_contacts(*store);
        auto r = sync([&](ContactDone d) {
            contacts->set(
                " <Jane@Example.ORG> ",
                obj(R"({"first_name":"Jane","age":41,"vip":true,"likes":["tea","trail"]})"),
                std::move(d));
        });
        CHECK(r.status == ContactStatus::Ok);
        r = sync([&](ContactDone d) {
            contacts->set("jane@example.org", obj(R"({"age":null,"city":"Lyon"})"), std::move(d));
        });
        CHECK(r.status == ContactStatus::Ok);
        CHECK(contacts->size() == 1);
    }
    auto store = open_store(config);
    auto contacts = open_contacts(*store);
    const auto c = contacts->get("JANE@example.org");
    REQUIRE(c.has_value());
    CHECK(c->address == "jane@example.org");
    CHECK(c->attributes ==
          obj(R"({"first_name":"Jane","vip":true,"likes":["tea","trail"],"city":"Lyon"})"));
    CHECK_FALSE(contacts->get("nobody@example.org").has_value());
    CHECK_FALSE(contacts->get("not an address").has_value());
}

TEST_CASE("bad addresses, names, values and tags are refused before anything is written") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    struct Case {
        std::string address;
        std::string attributes;
        std::string want;
    };
    const Case cases[] = {
        {"no-at-sign", R"({"a":1})", "not an address: \"no-at-sign\""},
        {"a@b.example", R"({"First Name":"x"})",
         "attribute name \"First Name\" may hold only ASCII letters, digits and _ . : -"},
        {"a@b.example", R"({"":"x"})", "an attribute name is empty"},
        {"a@b.example", R"({"address":{"city":"x"}})",
         "address: attribute values cannot be objects"},
        {"a@b.example", R"({"l":[[1]]})", "l: list elements must be strings, numbers or booleans"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.address);
        CAPTURE(c.attributes);
        const auto r = sync([&](ContactDone d) {
            contacts->set(c.address, obj(c.attributes.c_str()), std::move(d));
        });
        CHECK(r.status == ContactStatus::Invalid);
        CHECK(r.detail == c.want);
    }
    const auto r = sync([&](ContactDone d) {
        contacts->set_tags("a@b.example", {"ok", "not ok"}, std::move(d));
    });
    CHECK(r.status == ContactStatus::Invalid);
    CHECK(r.detail == "tag \"not ok\" may hold only ASCII letters, digits and _ . : -");
    const auto big = sync([&](ContactDone d) {
        contacts->set("a@b.example", json::object{{"blob", std::string(70 * 1024, 'x')}},
                      std::move(d));
    });
    CHECK(big.status == ContactStatus::Invalid);
    CHECK(contacts->size() == 0);
}

TEST_CASE("set_tags replaces the tags and drops duplicates that differ only in case") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    CHECK(sync([&](ContactDone d) {
              contacts->set_tags("a@b.example", {"Runner", "vip", "runner"}, std::move(d));
          }).status == ContactStatus::Ok);
    CHECK(contacts->get("a@b.example")->tags == std::vector<std::string>{"Runner", "vip"});
    CHECK(sync([&](ContactDone d) {
              contacts->set_tags("a@b.example", {"swimmer"}, std::move(d));
          }).status == ContactStatus::Ok);
    CHECK(contacts->get("a@b.example")->tags == std::vector<std::string>{"swimmer"});
}

TEST_CASE("events recorded back to back all count before and after their commits") {
    TempDir dir;
    const auto config = config_for(dir);
    const auto t0 = at("2026-03-02T09:10:00Z");
    {
        auto store = open_store(config);
        auto contacts = open_contacts(*store);
        std::vector<std::future<ContactResult>> results;
        std::vector<std::shared_ptr<std::promise<ContactResult>>> promises;
        for (int i = 0; i < 20; ++i) {
            auto p = std::make_shared<std::promise<ContactResult>>();
            results.push_back(p->get_future());
            const auto kind = i % 2 == 0 ? EngagementKind::Open : EngagementKind::Click;
            contacts->record_event("Reader@example.org", kind, t0 + i * 1000, "News.Example.COM.",
                                   [p](ContactResult r) { p->set_value(std::move(r)); });
            promises.push_back(std::move(p));
        }
        // Read-your-writes while commits may still be in flight.
        CHECK(histogram_total(contacts->get("reader@example.org")->engagement.hours) == 20);
        for (auto& f : results)
            CHECK(f.get().status == ContactStatus::Ok);
        CHECK(contacts->pending_writes() == 0);
    }
    auto store = open_store(config);
    auto contacts = open_contacts(*store);
    const auto c = contacts->get("reader@example.org");
    REQUIRE(c.has_value());
    const auto counts = counts_within(c->engagement, t0, 30);
    CHECK(counts.opens == 10);
    CHECK(counts.clicks == 10);
    CHECK(c->engagement.hours[9] == 20);
    CHECK(c->engagement.last_click_ms == t0 + 19 * 1000);
    const auto domain = contacts->domain_histogram("news.example.com");
    CHECK(domain[9] == 20);
    CHECK(histogram_total(contacts->domain_histogram("other.example")) == 0);
}

TEST_CASE("priority reads the contact's engagement; an unknown address scores as new") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    const auto now = at("2026-03-02T12:00:00Z");
    CHECK(contacts->priority("nobody@x.example", now) == 150);
    REQUIRE(sync([&](ContactDone d) {
                contacts->record_event("x@y.example", EngagementKind::Click,
                                       at("2026-03-01T09:00:00Z"), {}, std::move(d));
            }).status == ContactStatus::Ok);
    CHECK(contacts->priority("X@y.example", now) == 302);
}

TEST_CASE("deliveries do not count in the domain's histogram") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    const auto r = sync([&](ContactDone d) {
        contacts->record_event("x@y.example", EngagementKind::Delivered, at("2026-03-02T09:10:00Z"),
                               "news.example.com", std::move(d));
    });
    CHECK(r.status == ContactStatus::Ok);
    CHECK(contacts->get("x@y.example")->engagement.last_delivery_ms == at("2026-03-02T09:10:00Z"));
    CHECK(histogram_total(contacts->domain_histogram("news.example.com")) == 0);
}

TEST_CASE("with create_on_event off, events for unknown addresses are not recorded") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    ContactsConfig config;
    config.create_on_event = false;
    auto contacts = open_contacts(*store, config);
    auto r = sync([&](ContactDone d) {
        contacts->record_event("x@y.example", EngagementKind::Open, at("2026-03-02T09:10:00Z"), {},
                               std::move(d));
    });
    CHECK(r.status == ContactStatus::NotFound);
    CHECK(contacts->size() == 0);
    REQUIRE(sync([&](ContactDone d) {
                contacts->set("x@y.example", obj(R"({"a":1})"), std::move(d));
            }).status == ContactStatus::Ok);
    r = sync([&](ContactDone d) {
        contacts->record_event("x@y.example", EngagementKind::Open, at("2026-03-02T09:10:00Z"), {},
                               std::move(d));
    });
    CHECK(r.status == ContactStatus::Ok);
    CHECK(contacts->get("x@y.example")->attributes == obj(R"({"a":1})"));
    r = sync([&](ContactDone d) {
        contacts->record_event("x@y.example", EngagementKind::Open, 0, {}, std::move(d));
    });
    CHECK(r.status == ContactStatus::Invalid);
}

TEST_CASE("remove deletes a contact; removing an unknown one says so") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    REQUIRE(sync([&](ContactDone d) {
                contacts->set("x@y.example", obj(R"({"a":1})"), std::move(d));
            }).status == ContactStatus::Ok);
    CHECK(sync([&](ContactDone d) { contacts->remove("X@y.example", std::move(d)); }).status ==
          ContactStatus::Ok);
    CHECK_FALSE(contacts->get("x@y.example").has_value());
    CHECK(sync([&](ContactDone d) { contacts->remove("x@y.example", std::move(d)); }).status ==
          ContactStatus::NotFound);
}

TEST_CASE("apply writes a batch in one commit and returns the rows it refused") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    std::vector<ContactPatch> patches(3);
    patches[0].address = "a@x.example";
    patches[0].attributes = obj(R"({"n":1})");
    patches[1].address = "broken";
    patches[2].address = "A@x.example"; // same contact: builds on the first patch
    patches[2].add_tags = {"vip"};
    std::promise<ContactResult> promise;
    const auto errors =
        contacts->apply(std::move(patches), [&](ContactResult r) { promise.set_value(r); });
    CHECK(promise.get_future().get().status == ContactStatus::Ok);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].first == 1);
    const auto c = contacts->get("a@x.example");
    REQUIRE(c.has_value());
    CHECK(c->attributes == obj(R"({"n":1})"));
    CHECK(c->tags == std::vector<std::string>{"vip"});
}

TEST_CASE("records round-trip through their JSON form and bad ones read as absent") {
    Contact c;
    c.address = "a@x.example";
    c.attributes = obj(R"({"n":1.5,"s":"x"})");
    c.tags = {"t1"};
    c.engagement = record_engagement({}, EngagementKind::Click, at("2026-03-02T09:10:00Z"));
    const auto encoded = encode_contact(c);
    CHECK(decode_contact("a@x.example", encoded) == c);
    CHECK_FALSE(decode_contact("a", "not json").has_value());
    CHECK_FALSE(decode_contact("a", R"({"a":[]})").has_value());
    CHECK_FALSE(decode_contact("a", R"({"e":{"h":[[200,1]]}})").has_value());
    const auto j = contact_json(c, at("2026-03-03T00:00:00Z"));
    CHECK(j.at("address").as_string() == "a@x.example");
    CHECK(j.at("engagement").at("tier").as_string() == "hot");
}
