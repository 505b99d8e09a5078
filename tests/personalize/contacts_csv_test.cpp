#include "personalize/contacts_csv.hpp"

#include "tests/queue/fixture.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <fmt/core.h>

#include <sstream>
#include <streambuf>
#include <string>

using namespace ember::personalize;
using ember::queue::test::config_for;
using ember::queue::test::open_store;
using ember::queue::test::TempDir;
namespace json = boost::json;

namespace {

std::unique_ptr<ContactStore> open_contacts(ember::queue::Store& store) {
    std::string error;
    auto contacts = ContactStore::open(store, {}, error);
    REQUIRE(contacts != nullptr);
    return contacts;
}

// A CSV file of `rows` generated rows, produced as it is read: the test
// never holds the whole file.
class GeneratedCsv : public std::streambuf {
public:
    explicit GeneratedCsv(std::uint64_t rows) : rows_(rows) {
        line_ = "email,first_name,score:number,tags\r\n";
        produced = line_.size();
        setg(line_.data(), line_.data(), line_.data() + line_.size());
    }
    std::uint64_t produced = 0; // octets handed out

protected:
    int_type underflow() override {
        if (next_ >= rows_)
            return traits_type::eof();
        line_ = fmt::format("user{}@example{}.org,Name {},{},t{};all\r\n", next_, next_ % 7, next_,
                            next_ % 100, next_ % 3);
        ++next_;
        produced += line_.size();
        setg(line_.data(), line_.data(), line_.data() + line_.size());
        return traits_type::to_int_type(line_[0]);
    }

private:
    std::uint64_t rows_;
    std::uint64_t next_ = 0;
    std::string line_;
};

ImportReport import_text(ContactStore& contacts, const std::string& text,
                         CsvImportOptions options = {}) {
    std::istringstream in(text);
    options.name = "contacts.csv";
    return import_contacts_csv(contacts, in, options);
}

std::string export_text(const ContactStore& contacts, CsvExportOptions options = {}) {
    std::string out;
    (void)export_contacts_csv(
        contacts,
        [&out](std::string_view chunk) {
            out += chunk;
            return true;
        },
        options);
    return out;
}

} // namespace

TEST_CASE("a 200,000-row import streams in bounded chunks and imports every row") {
    TempDir dir;
    auto store = open_store(config_for(dir, std::uint64_t{512} << 20));
    auto contacts = open_contacts(*store);
    constexpr std::uint64_t kRows = 200'000;
    GeneratedCsv source(kRows);
    std::istream in(&source);
    CsvImportOptions options;
    options.name = "big.csv";
    std::uint64_t calls = 0;
    ImportProgress last;
    bool monotonic = true;
    std::size_t most_pending = 0;
    options.progress = [&](const ImportProgress& p) {
        monotonic = monotonic && p.rows >= last.rows && p.bytes >= last.bytes &&
                    p.imported >= last.imported;
        last = p;
        ++calls;
        most_pending = std::max(most_pending, contacts->pending_writes());
    };
    const auto report = import_contacts_csv(*contacts, in, options);
    INFO(report.error);
    CHECK(report.ok);
    CHECK(report.error_count == 0);
    CHECK(report.totals.rows == kRows);
    CHECK(report.totals.imported == kRows);
    CHECK(report.totals.bytes == source.produced);
    CHECK(contacts->size() == kRows);
    // Bounded: 5000 rows per commit, at most two chunks waiting, so never
    // more than two chunks of records held in memory by the store.
    CHECK(report.chunks == kRows / 5000);
    CHECK(report.largest_chunk == 5000);
    CHECK(report.most_in_flight <= 2);
    CHECK(most_pending <= 2 * 5000);
    CHECK(contacts->pending_writes() == 0);
    CHECK(calls == report.chunks + 1);
    CHECK(monotonic);
    CHECK(last.imported == kRows);
    const auto c = contacts->get("user123456@example4.org");
    REQUIRE(c.has_value());
    CHECK(c->attributes.at("first_name").as_string() == "Name 123456");
    CHECK(c->attributes.at("score").as_int64() == 56);
    CHECK(c->tags == std::vector<std::string>{"t0", "all"});
}

TEST_CASE("typed columns give numbers, booleans and lists; untyped cells stay strings") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    const auto report = import_text(*contacts, "\xEF\xBB\xBF"
                                               "Address,zip,age:number,vip:bool,likes:list,"
                                               "ratio:number\n"
                                               "a@x.example,02134,41,Yes,tea; trail;,0.25\n");
    INFO(report.error);
    REQUIRE(report.ok);
    CHECK(report.totals.imported == 1);
    const auto c = contacts->get("a@x.example");
    REQUIRE(c.has_value());
    CHECK(c->attributes ==
          json::parse(R"({"zip":"02134","age":41,"vip":true,"likes":["tea","trail"],"ratio":0.25})")
              .as_object());
}

TEST_CASE("bad rows are reported as name:line: message and skipped; the rest imports") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    const std::string text = "email,note,n:number,tags\n"           // 1
                             "good1@x.example,\"two\nlines\",1,\n"  // 2-3
                             "not-an-address,x,1,\n"                // 4
                             "good2@x.example,x,one,\n"             // 5
                             "good3@x.example,x\n"                  // 6
                             "\n"                                   // 7: blank, ignored
                             "good4@x.example,\"a\"b,1,\n"          // 8
                             "good5@x.example,x,2,bad tag\n"        // 9
                             "good6@x.example,\"x,y\",3,a;b\n"      // 10
                             "good7@x.example,\"never closed,4,\n"; // 11
    const auto report = import_text(*contacts, text);
    INFO(report.error);
    REQUIRE(report.ok);
    CHECK(report.errors == std::vector<std::string>{
                               "contacts.csv:4: not an address: \"not-an-address\"",
                               "contacts.csv:5: n: \"one\" is not a number",
                               "contacts.csv:6: 2 fields, the header has 4",
                               "contacts.csv:8: text after the closing quote of a field",
                               "contacts.csv:9: tag \"bad tag\" may hold only ASCII letters, "
                               "digits and _ . : -",
                               "contacts.csv:11: a quoted field never ends",
                           });
    CHECK(report.error_count == 6);
    CHECK(report.totals.rows == 8);
    CHECK(report.totals.imported == 2);
    CHECK(report.totals.skipped == 6);
    CHECK(contacts->get("good1@x.example")->attributes.at("note").as_string() == "two\nlines");
    CHECK(contacts->get("good6@x.example")->attributes.at("note").as_string() == "x,y");
    CHECK(contacts->get("good6@x.example")->tags == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a bad header stops the import before any write") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    struct Case {
        std::string text;
        std::string want;
    };
    const Case cases[] = {
        {"name,city\na,b\n", "contacts.csv:1: no address or email column"},
        {"\n\nemail,address\n", "contacts.csv:3: two address columns (address or email)"},
        {"email,city,city\n", "contacts.csv:1: column 3: \"city\" appears twice"},
        {"email,City Name\n",
         "contacts.csv:1: column 2: attribute name \"City Name\" may hold only ASCII letters, "
         "digits and _ . : -"},
        {"", "contacts.csv: no header row"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto report = import_text(*contacts, c.text);
        CHECK_FALSE(report.ok);
        CHECK(report.error == c.want);
    }
    CHECK(contacts->size() == 0);
}

TEST_CASE("an empty cell keeps the attribute unless empty_deletes is set") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    REQUIRE(import_text(*contacts, "email,a,b,tags\nx@y.example,1,2,keep\n").ok);
    REQUIRE(import_text(*contacts, "email,a,b,tags\nx@y.example,,3,more\n").ok);
    auto c = contacts->get("x@y.example");
    CHECK(c->attributes == json::parse(R"({"a":"1","b":"3"})").as_object());
    CHECK(c->tags == std::vector<std::string>{"keep", "more"});
    CsvImportOptions options;
    options.empty_deletes = true;
    REQUIRE(import_text(*contacts, "email,a,b\nx@y.example,,4\n", options).ok);
    c = contacts->get("x@y.example");
    CHECK(c->attributes == json::parse(R"({"b":"4"})").as_object());
}

TEST_CASE("export writes typed columns that import back to the same contacts") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto contacts = open_contacts(*store);
    REQUIRE(import_text(*contacts, "email,first_name,age:number,vip:bool,likes:list,tags\n"
                                   "b@x.example,\"Bob, Jr.\",30,false,tea,runner;vip\n"
                                   "a@x.example,Ann,41.5,true,tea;cake,\n"
                                   "c@x.example,,,,,\n")
                .ok);
    const auto text = export_text(*contacts);
    CHECK(text == "address,tags,age:number,first_name,likes:list,vip:bool\n"
                  "a@x.example,,41.5,Ann,tea;cake,true\n"
                  "b@x.example,runner;vip,30,\"Bob, Jr.\",tea,false\n"
                  "c@x.example,,,,,\n");
    TempDir dir2;
    auto store2 = open_store(config_for(dir2));
    auto copy = open_contacts(*store2);
    REQUIRE(import_text(*copy, text).ok);
    for (const char* a : {"a@x.example", "b@x.example", "c@x.example"}) {
        CAPTURE(a);
        CHECK(copy->get(a) == contacts->get(a));
    }
    CsvExportOptions only;
    only.columns = {"first_name"};
    CHECK(export_text(*contacts, only) == "address,tags,first_name\n"
                                          "a@x.example,,Ann\n"
                                          "b@x.example,runner;vip,\"Bob, Jr.\"\n"
                                          "c@x.example,,\n");
}

TEST_CASE("fields are quoted only when they must be") {
    CHECK(csv_field("plain") == "plain");
    CHECK(csv_field("a,b") == "\"a,b\"");
    CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
    CHECK(csv_field(" padded") == "\" padded\"");
    CHECK(csv_field("two\nlines") == "\"two\nlines\"");
}
