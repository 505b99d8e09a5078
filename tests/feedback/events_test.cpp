#include "feedback/events.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

using namespace ember::feedback;
namespace json = boost::json;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/ember-events-XXXXXX";
        const char* made = ::mkdtemp(pattern);
        REQUIRE(made != nullptr);
        path = made;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

Event full_event() {
    Event e;
    e.type = EventType::Bounced;
    e.time_ms = 1'700'000'123'456;
    e.id = new_event_id();
    e.queue_id = "01HF3ZK9XQ7TR";
    e.recipient = "jane@example.net";
    e.sending_domain = "news.example.com";
    e.destination = "example.net";
    e.reason = Reason::UserUnknown;
    e.hard = true;
    e.code = 550;
    e.status = "5.1.1";
    e.remote_host = "mx1.example.net";
    e.remote_ip = "192.0.2.25";
    e.text = "5.1.1 <jane@example.net>: Recipient address rejected: \"quoted\"\tand tab";
    e.source = "smtp";
    e.tls = true;
    e.dmarc_aligned = true;
    e.bulk = false;
    e.one_click = false;
    e.campaign = "spring-sale";
    e.tags = {"newsletter", "fr"};
    e.extra["attempt"] = 3;
    e.extra["mx_preference"] = "10";
    return e;
}

json::object parse_object(const std::string& line) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    INFO("line: ", line);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_object());
    return v.as_object();
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

Event numbered(int n) {
    Event e;
    e.type = EventType::Delivered;
    e.time_ms = 1'700'000'000'000 + n;
    e.id = std::to_string(n);
    return e;
}

} // namespace

TEST_CASE("every field of an event is encoded under its documented name and reads back equal") {
    const Event e = full_event();
    const std::string line = encode_event(e);
    CHECK(line.find('\n') == std::string::npos);
    const auto o = parse_object(line);
    CHECK(o.at("id").as_string() == e.id);
    CHECK(o.at("type").as_string() == "bounced");
    CHECK(o.at("time").as_int64() == e.time_ms);
    CHECK(o.at("queue_id").as_string() == e.queue_id);
    CHECK(o.at("recipient").as_string() == e.recipient);
    CHECK(o.at("sending_domain").as_string() == e.sending_domain);
    CHECK(o.at("destination").as_string() == e.destination);
    CHECK(o.at("reason").as_string() == "userunknown");
    CHECK(o.at("hard").as_bool() == true);
    CHECK(o.at("code").as_int64() == 550);
    CHECK(o.at("status").as_string() == "5.1.1");
    CHECK(o.at("remote_host").as_string() == e.remote_host);
    CHECK(o.at("remote_ip").as_string() == e.remote_ip);
    CHECK(o.at("text").as_string() == e.text);
    CHECK(o.at("source").as_string() == "smtp");
    CHECK(o.at("tls").as_bool() == true);
    CHECK(o.at("dmarc_aligned").as_bool() == true);
    CHECK(o.at("bulk").as_bool() == false);
    CHECK(o.at("one_click").as_bool() == false);
    CHECK(o.at("campaign").as_string() == e.campaign);
    CHECK(o.at("tags").as_array().size() == 2);
    CHECK(o.at("tags").as_array()[1].as_string() == "fr");
    CHECK(o.at("extra").as_object() == e.extra);
    CHECK(o.size() == 22); // a new field must be added here and to the header's contract

    std::string error;
    const auto back = decode_event(line, error);
    INFO("decode error: ", error);
    REQUIRE(back.has_value());
    CHECK(*back == e);
}

TEST_CASE("an event with nothing known but its type and time encodes only id, type and time") {
    Event e;
    e.type = EventType::Received;
    e.time_ms = 42;
    e.id = "abc";
    const auto o = parse_object(encode_event(e));
    std::set<std::string> keys;
    for (const auto& kv : o)
        keys.insert(std::string(kv.key()));
    CHECK(keys == std::set<std::string>{"id", "type", "time"});
}

TEST_CASE("every event type has a name that reads back to it") {
    const std::vector<std::pair<EventType, std::string>> table = {
        {EventType::Received, "received"},
        {EventType::Delivered, "delivered"},
        {EventType::Deferred, "deferred"},
        {EventType::Bounced, "bounced"},
        {EventType::Expired, "expired"},
        {EventType::Complained, "complained"},
        {EventType::Unsubscribed, "unsubscribed"},
        {EventType::Suppressed, "suppressed"},
        {EventType::Opened, "opened"},
        {EventType::Clicked, "clicked"},
        {EventType::Throttled, "throttled"},
    };
    for (const auto& [type, name] : table) {
        CAPTURE(name);
        CHECK(event_type_name(type) == name);
        CHECK(parse_event_type(name) == type);
    }
    CHECK_FALSE(parse_event_type("bounce").has_value());
}

TEST_CASE("invalid UTF-8 from the network becomes U+FFFD and the line stays valid JSON") {
    const std::vector<std::pair<std::string, std::string>> table = {
        {"caf\xc3\xa9", "caf\xc3\xa9"},                               // valid two-octet sequence
        {"bad \xff end", "bad \xef\xbf\xbd end"},                     // never valid in UTF-8
        {"over \xc0\xaf long", "over \xef\xbf\xbd\xef\xbf\xbd long"}, // overlong '/'
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"cut \xe2\x82", "cut \xef\xbf\xbd\xef\xbf\xbd"}, // truncated euro sign
        {"emoji \xf0\x9f\x93\xa7", "emoji \xf0\x9f\x93\xa7"},
    };
    for (const auto& [in, want] : table) {
        CAPTURE(in);
        CHECK(sanitize_utf8(in) == want);
        Event e = numbered(1);
        e.text = in;
        const auto o = parse_object(encode_event(e));
        CHECK(o.at("text").as_string() == want);
    }
}

TEST_CASE("a reply text over 4096 octets is cut without splitting a character") {
    Event e = numbered(1);
    e.text = "x" + std::string(3000, 'a');
    for (int i = 0; i < 600; ++i)
        e.text += "\xc3\xa9"; // 1200 more octets of two-octet characters
    const auto o = parse_object(encode_event(e));
    const std::string text(o.at("text").as_string());
    CHECK(text.size() <= 4096);
    CHECK(text.size() >= 4095);
    CHECK(sanitize_utf8(text) == text);
    CHECK(e.text.starts_with(text));
}

TEST_CASE("lines that are not events are refused with a reason, unknown fields are ignored") {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {R"({"type":"bounce","time":1})", "no known type"},
        {R"({"type":"bounced"})", "no integer time"},
        {R"({"type":"bounced","time":"yesterday"})", "no integer time"},
    };
    for (const auto& [line, why] : bad) {
        CAPTURE(line);
        std::string error;
        CHECK_FALSE(decode_event(line, error).has_value());
        CHECK(error == why);
    }
    std::string error;
    const auto e = decode_event(
        R"({"type":"complained","time":5,"future_field":{"x":1},"recipient":"a@b.example"})",
        error);
    REQUIRE(e.has_value());
    CHECK(e->type == EventType::Complained);
    CHECK(e->time_ms == 5);
    CHECK(e->recipient == "a@b.example");
}

TEST_CASE("event ids are 32 hex digits and do not repeat") {
    std::set<std::string> ids;
    for (int i = 0; i < 1000; ++i) {
        const auto id = new_event_id();
        CHECK(id.size() == 32);
        CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        ids.insert(id);
    }
    CHECK(ids.size() == 1000);
}

TEST_CASE("the event log appends one line per event from several threads") {
    TempDir dir;
    std::string error;
    auto log = EventLog::open({dir.path + "/events.log"}, error);
    INFO(error);
    REQUIRE(log != nullptr);
    auto writer = [&log](int from) {
        for (int i = from; i < from + 500; ++i)
            log->append(numbered(i));
    };
    std::thread a(writer, 0);
    std::thread b(writer, 500);
    a.join();
    b.join();
    log->flush();
    const auto lines = read_lines(dir.path + "/events.log");
    REQUIRE(lines.size() == 1000);
    std::set<std::string> ids;
    for (const auto& line : lines) {
        std::string why;
        const auto e = decode_event(line, why);
        REQUIRE(e.has_value());
        ids.insert(e->id);
    }
    CHECK(ids.size() == 1000);
    CHECK(log->stats().written == 1000);
    CHECK(log->stats().dropped == 0);
}

TEST_CASE("after logrotate renames the log, reopen() moves writing to a new file at the path") {
    TempDir dir;
    const std::string path = dir.path + "/events.log";
    std::string error;
    auto log = EventLog::open({path}, error);
    REQUIRE(log != nullptr);
    log->append(numbered(1));
    log->flush();
    std::filesystem::rename(path, path + ".1");
    log->append(numbered(2)); // still the old file: nobody said SIGHUP yet
    log->flush();
    log->reopen();
    log->append(numbered(3));
    log->flush();
    const auto old_lines = read_lines(path + ".1");
    const auto new_lines = read_lines(path);
    REQUIRE(old_lines.size() == 2);
    REQUIRE(new_lines.size() == 1);
    std::string why;
    CHECK(decode_event(old_lines[1], why)->id == "2");
    CHECK(decode_event(new_lines[0], why)->id == "3");
    CHECK(log->stats().reopens == 1);
}

TEST_CASE("a log whose directory does not exist is refused at open, naming the path") {
    TempDir dir;
    std::string error;
    const std::string path = dir.path + "/missing/events.log";
    CHECK(EventLog::open({path}, error) == nullptr);
    CHECK(error.find(path) != std::string::npos);
    CHECK(error.find("No such file") != std::string::npos);
}

TEST_CASE("lines beyond the pending limit are dropped and counted, never block the caller") {
    TempDir dir;
    std::string error;
    auto log = EventLog::open({dir.path + "/events.log", 16}, error);
    REQUIRE(log != nullptr);
    for (int i = 0; i < 10; ++i)
        log->append(numbered(i)); // every line is longer than 16 octets
    log->flush();
    CHECK(log->stats().dropped == 10);
    CHECK(log->stats().written == 0);
    CHECK(read_lines(dir.path + "/events.log").empty());
}
