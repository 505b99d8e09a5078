#include "feedback/webhooks.hpp"

#include "tests/feedback/webhook_receiver.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <doctest/doctest.h>
#include <fmt/core.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>

using namespace ember::feedback;
using ember::queue::test::config_for;
using ember::queue::test::open_store;
using ember::queue::test::TempDir;
using test::WebhookReceiver;
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "whsec_0123456789";

std::int64_t real_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A port nothing listens on (yet): bound once by the kernel, then released.
std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();
}

template <typename Pred> [[nodiscard]] bool run_until(asio::io_context& io, Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        if (io.stopped())
            io.restart();
        if (io.run_for(10ms) == 0)
            std::this_thread::sleep_for(2ms);
    }
    return true;
}

WebhookEndpointConfig endpoint(std::uint16_t port, std::string scheme = "http") {
    WebhookEndpointConfig ep;
    ep.url = fmt::format("{}://127.0.0.1:{}/hooks/ember?token=t0k3n", scheme, port);
    ep.secret = kSecret;
    ep.batch_size = 3;
    ep.max_delay = 50ms;
    ep.timeout = 5s;
    return ep;
}

WebhookConfig config_with(std::vector<WebhookEndpointConfig> endpoints) {
    WebhookConfig c;
    c.endpoints = std::move(endpoints);
    c.retry_initial = 20ms;
    c.retry_max = 200ms;
    return c;
}

Event numbered(int n, std::int64_t time_ms = real_now_ms()) {
    Event e;
    e.type = EventType::Delivered;
    e.time_ms = time_ms;
    e.id = fmt::format("event-{:03}", n);
    e.recipient = fmt::format("user{}@example.net", n);
    e.sending_domain = "news.example.com";
    return e;
}

// Publishes and waits until the events are durable.
void publish_sync(asio::io_context& io, WebhookOutbox& outbox, std::vector<Event> events) {
    auto stored = std::make_shared<std::atomic<int>>(0);
    outbox.publish(std::move(events), [stored](bool ok) { *stored = ok ? 1 : -1; });
    REQUIRE(run_until(io, [&] { return *stored != 0; }));
    REQUIRE(*stored == 1);
}

std::vector<Event> range(int from, int to, std::int64_t time_ms = real_now_ms()) {
    std::vector<Event> out;
    for (int i = from; i < to; ++i)
        out.push_back(numbered(i, time_ms));
    return out;
}

std::vector<std::string> ids(const std::vector<int>& numbers) {
    std::vector<std::string> out;
    for (const int n : numbers)
        out.push_back(fmt::format("event-{:03}", n));
    return out;
}

std::vector<std::string> ids(int from, int to) {
    std::vector<int> numbers;
    for (int i = from; i < to; ++i)
        numbers.push_back(i);
    return ids(numbers);
}

// Event ids of the acknowledged (2xx) posts, in arrival order.
std::vector<std::string> acknowledged(const std::string& log) {
    std::vector<std::string> out;
    for (const auto& post : WebhookReceiver::posts(log))
        if (post.status == 200)
            for (const auto& e : post.events)
                out.emplace_back(e.at("id").as_string());
    return out;
}

std::size_t posts_with_status(const std::string& log, int status) {
    std::size_t n = 0;
    for (const auto& post : WebhookReceiver::posts(log))
        n += post.status == status ? 1 : 0;
    return n;
}

struct Harness {
    TempDir dir;
    std::unique_ptr<ember::queue::Store> store = open_store(config_for(dir));
    asio::io_context io;
    std::shared_ptr<WebhookOutbox> outbox;

    void open(WebhookConfig config, WebhookOutbox::Clock clock = {}) {
        std::string error;
        outbox = WebhookOutbox::create(std::move(config), *store, io.get_executor(), error,
                                       std::move(clock));
        INFO("create error: ", error);
        REQUIRE(outbox != nullptr);
        outbox->start();
    }
    void close() {
        outbox->stop();
        REQUIRE(run_until(io, [this] { return outbox->idle(); }));
        outbox.reset();
    }
    ~Harness() {
        if (outbox)
            close();
    }
    [[nodiscard]] std::string log(const std::string& name) const { return dir.path + "/" + name; }
};

} // namespace

TEST_CASE("a webhook down, then failing, then answering gets every event once, in order, "
          "signed") {
    Harness h;
    const auto port = free_port();
    h.open(config_with({endpoint(port)}));
    publish_sync(h.io, *h.outbox, range(0, 10));
    CHECK(h.outbox->stored() == 10);
    // Nobody listens: connection refused, retried with backoff.
    REQUIRE(run_until(h.io, [&] { return h.outbox->status()[0].failures >= 2; }));
    CHECK(h.outbox->status()[0].pending == 10);
    CHECK(h.outbox->status()[0].last_error.find("connect") != std::string::npos);

    WebhookReceiver receiver({port, h.log("posts.log"), kSecret, 2, "", ""});
    REQUIRE_MESSAGE(receiver.ok(), receiver.error());
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("posts.log")).size() >= 10; }));
    CHECK(acknowledged(h.log("posts.log")) == ids(0, 10));
    CHECK(posts_with_status(h.log("posts.log"), 500) == 2);
    for (const auto& post : WebhookReceiver::posts(h.log("posts.log"))) {
        CHECK(post.sig_ok);
        CHECK(post.content_type == "application/json");
        CHECK(post.events.size() <= 3);
    }
    // Acknowledged by the only URL: deleted from the table.
    REQUIRE(run_until(h.io, [&] { return h.outbox->stored() == 0; }));
    const auto status = h.outbox->status()[0];
    CHECK(status.pending == 0);
    CHECK(status.delivered == 10);
    CHECK(status.last_error.empty());
    CHECK(status.url == fmt::format("http://127.0.0.1:{}/hooks/ember", port)); // no token
}

TEST_CASE("events stored but not acknowledged survive a restart of the outbox over the same "
          "store, and acknowledged ones are not sent again") {
    Harness h;
    const auto port = free_port();
    const auto log = h.log("posts.log");
    {
        WebhookReceiver receiver({port, log, kSecret, 0, "", ""});
        REQUIRE(receiver.ok());
        h.open(config_with({endpoint(port)}));
        publish_sync(h.io, *h.outbox, range(0, 4));
        REQUIRE(run_until(h.io, [&] { return acknowledged(log).size() >= 4; }));
        // Stop the receiver only once its last answer came back, else the
        // batch is (rightly) sent again after the restart.
        REQUIRE(run_until(h.io, [&] { return h.outbox->status()[0].pending == 0; }));
    } // the receiver goes down
    publish_sync(h.io, *h.outbox, range(4, 9));
    REQUIRE(run_until(h.io, [&] { return h.outbox->status()[0].failures >= 1; }));
    h.close();
    std::string error;
    const auto table = h.store->open_table("webhooks", error);
    REQUIRE(table.has_value());
    CHECK(h.store->kv_count(*table) >= 5); // 5 events, the cursor, the next seq

    WebhookReceiver receiver({port, log, kSecret, 0, "", ""});
    REQUIRE(receiver.ok());
    h.open(config_with({endpoint(port)}));
    CHECK(h.outbox->status()[0].pending == 5);
    publish_sync(h.io, *h.outbox, range(9, 11));
    REQUIRE(run_until(h.io, [&] { return acknowledged(log).size() >= 11; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->stored() == 0; }));
    CHECK(acknowledged(log) == ids(0, 11));
}

TEST_CASE("an event leaves the table only when every URL acknowledged it; a down URL does not "
          "hold up the others") {
    Harness h;
    const auto up_port = free_port();
    WebhookReceiver up({up_port, h.log("up.log"), kSecret, 0, "", ""});
    REQUIRE(up.ok());
    const auto down_port = free_port();
    h.open(config_with({endpoint(up_port), endpoint(down_port)}));
    publish_sync(h.io, *h.outbox, range(0, 5));
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("up.log")).size() >= 5; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->status()[1].failures >= 2; }));
    // The receiver records a post before it answers: wait for the answer.
    REQUIRE(run_until(h.io, [&] { return h.outbox->status()[0].pending == 0; }));
    CHECK(h.outbox->stored() == 5);
    CHECK(h.outbox->status()[1].pending == 5);

    WebhookReceiver down({down_port, h.log("down.log"), kSecret, 0, "", ""});
    REQUIRE(down.ok());
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("down.log")).size() >= 5; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->stored() == 0; }));
    CHECK(acknowledged(h.log("up.log")) == ids(0, 5));
    CHECK(acknowledged(h.log("down.log")) == ids(0, 5));
}

TEST_CASE("a URL added later starts with new events; a URL removed from the config loses its "
          "backlog") {
    Harness h;
    const auto a = free_port();
    const auto b = free_port();
    h.open(config_with({endpoint(a)}));
    publish_sync(h.io, *h.outbox, range(0, 3)); // a is down: kept for it
    h.close();

    WebhookReceiver receiver_b({b, h.log("b.log"), kSecret, 0, "", ""});
    REQUIRE(receiver_b.ok());
    h.open(config_with({endpoint(b)})); // a removed, b added
    publish_sync(h.io, *h.outbox, range(3, 5));
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("b.log")).size() >= 2; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->stored() == 0; }));
    CHECK(acknowledged(h.log("b.log")) == ids(3, 5));
}

TEST_CASE("events older than max_age are dropped for a URL that has not taken them") {
    Harness h;
    const auto port = free_port();
    WebhookReceiver receiver({port, h.log("posts.log"), kSecret, 0, "", ""});
    REQUIRE(receiver.ok());
    const std::int64_t now = real_now_ms();
    auto config = config_with({endpoint(port)});
    config.max_age = std::chrono::hours(24 * 7);
    h.open(config, [now] { return now; });
    auto events = range(0, 4, now - 8 * 24 * 3'600'000LL); // 8 days old
    for (auto& e : range(4, 6, now - 1000))
        events.push_back(e);
    publish_sync(h.io, *h.outbox, std::move(events));
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("posts.log")).size() >= 2; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->stored() == 0; }));
    CHECK(acknowledged(h.log("posts.log")) == ids(4, 6));
    CHECK(h.outbox->status()[0].dropped == 4);
}

TEST_CASE("a partial batch waits for max_delay, a full one goes at once") {
    Harness h;
    const auto port = free_port();
    WebhookReceiver receiver({port, h.log("posts.log"), kSecret, 0, "", ""});
    REQUIRE(receiver.ok());
    auto ep = endpoint(port);
    ep.batch_size = 4;
    ep.max_delay = 400ms;
    const std::int64_t now = real_now_ms();
    auto clock_ms = std::make_shared<std::atomic<std::int64_t>>(now);
    h.open(config_with({ep}), [clock_ms] { return clock_ms->load(); });
    publish_sync(h.io, *h.outbox, range(0, 2, now));
    // The clock stands still: the two events are not due.
    const auto until = std::chrono::steady_clock::now() + 300ms;
    (void)run_until(h.io, [&] { return std::chrono::steady_clock::now() > until; });
    CHECK(WebhookReceiver::posts(h.log("posts.log")).empty());
    publish_sync(h.io, *h.outbox, range(2, 4, now)); // the batch is full
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("posts.log")).size() >= 4; }));
    CHECK(WebhookReceiver::posts(h.log("posts.log")).size() == 1);
    publish_sync(h.io, *h.outbox, range(4, 5, now));
    *clock_ms = now + 401; // max_delay passed
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("posts.log")).size() >= 5; }));
    CHECK(acknowledged(h.log("posts.log")) == ids(0, 5));
}

TEST_CASE("https endpoints are verified: a trusted certificate works, an unknown one is refused") {
    Harness h;
    const std::string cert = h.log("cert.pem");
    const std::string key = h.log("key.pem");
    const std::string command = fmt::format(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {} -out {} -days 2 -subj /CN=webhook "
        "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
        key, cert);
    REQUIRE(std::system(command.c_str()) == 0);
    const auto trusted_port = free_port();
    WebhookReceiver trusted({trusted_port, h.log("trusted.log"), kSecret, 0, cert, key});
    REQUIRE_MESSAGE(trusted.ok(), trusted.error());
    const auto unknown_port = free_port();
    WebhookReceiver unknown({unknown_port, h.log("unknown.log"), kSecret, 0, cert, key});
    REQUIRE(unknown.ok());

    auto good = endpoint(trusted_port, "https");
    good.ca_file = cert;
    auto bad = endpoint(unknown_port, "https"); // the system store does not know it
    h.open(config_with({good, bad}));
    publish_sync(h.io, *h.outbox, range(0, 2));
    REQUIRE(run_until(h.io, [&] { return acknowledged(h.log("trusted.log")).size() >= 2; }));
    REQUIRE(run_until(h.io, [&] { return h.outbox->status()[1].failures >= 2; }));
    CHECK(WebhookReceiver::posts(h.log("unknown.log")).empty());
    CHECK(h.outbox->status()[1].last_error.find("tls") != std::string::npos);
    CHECK(h.outbox->stored() == 2);
}

TEST_CASE("the signature is HMAC-SHA256 over t.body, hex, and verification needs all of it") {
    const std::string body = R"([{"id":"1"}])";
    // Computed independently with Python's hmac module.
    CHECK(webhook_signature("whsec_test", 1'700'000'000, body) ==
          "t=1700000000,v1=cd99e3b20a2a255d5b08486d8d90c0d6cb44679aba9d5ea20b14c786351a29c9");
    const auto header = webhook_signature(kSecret, 1'700'000'000, body);
    CHECK(verify_webhook_signature(header, kSecret, body, 1'700'000'100));
    CHECK_FALSE(verify_webhook_signature(header, "other secret", body, 1'700'000'100));
    CHECK_FALSE(verify_webhook_signature(header, kSecret, body + " ", 1'700'000'100));
    CHECK_FALSE(verify_webhook_signature(header, kSecret, body, 1'700'000'301)); // too old
    CHECK_FALSE(verify_webhook_signature("v1=abc", kSecret, body, 1'700'000'000));
    const auto v1 = header.substr(header.find("v1="));
    CHECK(verify_webhook_signature("t=1700000000,v1=00ff," + v1, kSecret, body, 1'700'000'000));
}

TEST_CASE("backoff doubles from the first delay to the cap, with up to half of it as jitter") {
    const std::vector<std::pair<std::uint32_t, std::int64_t>> table = {
        {1, 1000}, {2, 2000}, {3, 4000}, {4, 8000}, {10, 512'000}, {11, 600'000}, {40, 600'000}};
    for (const auto& [attempt, base] : table) {
        CAPTURE(attempt);
        CHECK(webhook_backoff(attempt, 1s, 10min, 1.0).count() == base);
        CHECK(webhook_backoff(attempt, 1s, 10min, 0.0).count() == base / 2);
        const auto mid = webhook_backoff(attempt, 1s, 10min, 0.5).count();
        CHECK(mid > base / 2);
        CHECK(mid < base);
    }
}

TEST_CASE("webhook URLs parse into what the request needs, and bad ones are refused") {
    struct Good {
        std::string url;
        bool tls;
        std::string host, port, target, host_header;
    };
    const std::vector<Good> good = {
        {"https://hooks.example.com/in?k=v", true, "hooks.example.com", "443", "/in?k=v",
         "hooks.example.com"},
        {"http://hooks.example.com:8080", false, "hooks.example.com", "8080", "/",
         "hooks.example.com:8080"},
        {"http://[::1]:9000/x", false, "::1", "9000", "/x", "[::1]:9000"},
        {"HTTPS://Hooks.Example.com:443/", true, "hooks.example.com", "443", "/",
         "hooks.example.com"},
    };
    for (const auto& g : good) {
        CAPTURE(g.url);
        std::string error;
        const auto t = parse_webhook_url(g.url, error);
        INFO(error);
        REQUIRE(t.has_value());
        CHECK(t->tls == g.tls);
        CHECK(t->host == g.host);
        CHECK(t->port == g.port);
        CHECK(t->target == g.target);
        CHECK(t->host_header == g.host_header);
    }
    for (const std::string bad : {"ftp://hooks.example.com/", "https://user:pw@hooks.example.com/",
                                  "not a url", "https:///path", "/relative"}) {
        CAPTURE(bad);
        std::string error;
        CHECK_FALSE(parse_webhook_url(bad, error).has_value());
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("a bad webhook config is refused with every problem named") {
    WebhookEndpointConfig ep;
    ep.url = "http://127.0.0.1:1/";
    ep.secret = "";
    ep.batch_size = 0;
    auto config = config_with({ep, ep});
    config.retry_max = 1ms;
    const auto problems = check_webhook_config(config);
    const std::vector<std::string> want = {
        "webhook[0].secret: required (it keys X-Ember-Signature)",
        "webhook[0].batch_size: must be 1..10000",
        "webhook[1].secret: required (it keys X-Ember-Signature)",
        "webhook[1].batch_size: must be 1..10000",
        "webhook[1].url: listed twice",
        "retry_max: must not be below retry_initial",
    };
    CHECK(problems == want);
    TempDir dir;
    auto store = open_store(config_for(dir));
    asio::io_context io;
    std::string error;
    CHECK(WebhookOutbox::create(config, *store, io.get_executor(), error) == nullptr);
    CHECK(error.find("webhook[0].secret") != std::string::npos);
}

TEST_CASE("with no URL configured, publishing stores nothing and succeeds") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    asio::io_context io;
    std::string error;
    auto outbox = WebhookOutbox::create(config_with({}), *store, io.get_executor(), error);
    REQUIRE(outbox != nullptr);
    bool stored = false;
    outbox->publish(numbered(1), [&](bool ok) { stored = ok; });
    CHECK(stored);
    CHECK(outbox->stored() == 0);
}
