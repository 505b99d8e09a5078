#pragma once
// Helpers shared by the queue tests: a temporary directory removed on scope
// exit, a synchronous commit, and sample messages. Test-only.

#include "queue/store.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

namespace ember::queue::test {

struct TempDir {
    std::string path;
    TempDir() {
        char pattern[] = "/tmp/ember-queue-XXXXXX";
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

inline StoreConfig config_for(const TempDir& dir,
                              std::uint64_t map_size = std::uint64_t{64} << 20) {
    StoreConfig c;
    c.data_dir = dir.path + "/queue"; // a missing subdirectory: open() creates it
    c.map_size = core::ByteSize{map_size};
    return c;
}

inline std::unique_ptr<Store> open_store(const StoreConfig& config) {
    std::string error;
    auto store = Store::open(config, error);
    INFO("open error: ", error);
    REQUIRE(store != nullptr);
    return store;
}

inline CommitResult commit_sync(Store& store, Message m, std::string content) {
    std::promise<CommitResult> promise;
    auto future = promise.get_future();
    store.commit(std::move(m), std::move(content),
                 [&promise](CommitResult r) { promise.set_value(std::move(r)); });
    return future.get();
}

inline Recipient recipient(std::string address, RecipientState state = RecipientState::Queued,
                           std::int64_t next_attempt_ms = 0) {
    Recipient r;
    r.spec.address = std::move(address);
    r.state = state;
    r.next_attempt_ms = next_attempt_ms;
    return r;
}

inline Message message(QueueId id, std::vector<Recipient> recipients = {recipient("a@example.com")},
                       std::int64_t received_at_ms = 1'700'000'000'000) {
    Message m;
    m.id = id;
    m.envelope.mail_from = "sender@example.org";
    m.submission.client_ip = "192.0.2.1";
    m.submission.received_at_ms = received_at_ms;
    m.recipients = std::move(recipients);
    return m;
}

// GCC warns about designated initializers that skip members; this names them all.
inline ListFilter filter(std::optional<std::string> domain = std::nullopt,
                         std::optional<RecipientState> state = std::nullopt,
                         std::size_t limit = 100) {
    ListFilter f;
    f.domain = std::move(domain);
    f.state = state;
    f.limit = limit;
    return f;
}

inline std::string content_for(QueueId id) {
    return "Subject: test\r\n\r\nbody of " + format_queue_id(id) + "\r\n";
}

} // namespace ember::queue::test
