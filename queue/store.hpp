#pragma once
// The durable queue: an LMDB environment under [server] data_dir.
//
// Databases (keys are big-endian so LMDB's byte order is numeric order):
//   messages   id(8)                   -> Message header (envelope, submission, size)
//   recipients id(8) index(4)          -> Recipient
//   content    id(8)                   -> the message bytes as accepted
//   due        time_ms(8) id(8) idx(4) -> "" for every pending recipient, by next attempt
//   domains    domain \0 id(8) idx(4)  -> "" for every pending recipient, by destination
//   meta       name                    -> schema version
//
// Durability: commit() completes only after mdb_txn_commit() returned 0 with
// the environment's default fsync. Commits from all sessions are grouped: a
// single committer thread takes every request that is waiting, writes them
// in one transaction and fsyncs once, so throughput is not one fsync per
// message (group commit). A full map or a full disk fails the requests of
// that batch with a temporary error and never crashes.
//
// Threads: commit() may be called from any thread; `done` runs on the
// committer thread. Reads (load, list, summary) open their own read
// transactions (MDB_NOTLS) and may run on any thread.

#include "core/units.hpp"
#include "queue/record.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace ember::queue {

struct StoreConfig {
    std::string data_dir = "/var/lib/ember";
    core::ByteSize map_size{std::uint64_t{4} << 30}; // LMDB map: the queue's size cap
    // Most requests written in one group-commit transaction.
    std::uint32_t max_batch = 1024;
};

enum class CommitStatus { Ok, MapFull, DiskFull, IoError, ShuttingDown };

struct CommitResult {
    CommitStatus status = CommitStatus::Ok;
    std::string detail; // LMDB / OS error text when status != Ok
    std::uint64_t batch_size = 0; // how many requests shared the transaction
};

struct QueueSummary {
    // state -> count, and destination domain -> state -> count
    std::map<RecipientState, std::uint64_t> by_state;
    std::map<std::string, std::map<RecipientState, std::uint64_t>> by_domain;
    std::uint64_t messages = 0;
};

struct ListFilter {
    std::optional<std::string> domain;
    std::optional<RecipientState> state;
    std::size_t limit = 100;
};

class Store {
public:
    // Opens (creating if needed) the environment; nullptr and `error` set on failure.
    [[nodiscard]] static std::unique_ptr<Store> open(const StoreConfig& config, std::string& error);
    ~Store(); // drains waiting commits, then stops the committer thread
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // A fresh id, unique in this store and larger than every id it holds.
    [[nodiscard]] QueueId next_id();

    // Thread-safe; `done` runs once, on the committer thread, after the
    // transaction holding the message (and its recipients) committed or failed.
    void commit(Message message, std::string content, std::function<void(CommitResult)> done);

    [[nodiscard]] std::optional<Message> load(QueueId id) const;
    [[nodiscard]] std::optional<std::string> load_content(QueueId id) const;
    // Messages in id order that have at least one recipient matching the filter.
    [[nodiscard]] std::vector<Message> list(const ListFilter& filter) const;
    [[nodiscard]] QueueSummary summary() const;
    // Removes the message, its content, recipients and index entries; false if absent.
    [[nodiscard]] bool remove(QueueId id, std::string& error);

    // Recipients per state, kept up to date by commit/remove (for metrics).
    [[nodiscard]] std::map<RecipientState, std::uint64_t> counts() const;

    class Impl;

private:
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ember::queue
