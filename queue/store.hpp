#pragma once
// The durable queue: an LMDB environment under [server] data_dir.
//
// Databases (keys are big-endian so LMDB's byte order is numeric order):
//   messages   id(8)                   -> Message header (envelope, submission, size)
//   recipients id(8) index(4)          -> Recipient
//   content    id(8)                   -> the message bytes as accepted
//   due        time_ms(8) id(8) idx(4) -> flags(1) domain, for every pending recipient,
//                                         by next attempt (flags: throttled)
//   domains    domain \0 id(8) idx(4)  -> "" for every pending recipient, by destination
//   dest_due   domain \0 time_ms(8) id(8) idx(4) -> "": every pending recipient, by
//                                         destination then next attempt
//   dest_heads time_ms(8) domain        -> "": each destination's earliest dest_due time
//   meta       name                    -> schema version
//
// The destination indexes (schema 3) are what the scheduler's pass reads
// (visit_due): a destination at its connection limit is passed over with
// one check, however large its due backlog, and no recipient record is
// decoded to learn where it goes. Every write keeps due, dest_due and
// dest_heads in step in the same transaction. A store written by an older
// ember (schema 1 or 2), or one whose index counts disagree, has these three
// rebuilt from the recipient records at open, in one transaction.
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
//
// Additions to the first sketch (see queue/README.md):
//   - commit() after the destructor began answers ShuttingDown at once, on
//     the caller's thread (there is no committer left to run `done`);
//   - `done` must not throw, and must not block for long: the next batch
//     waits for it (waiting inside it for another commit deadlocks);
//   - on write, recipients[] are the truth: envelope.recipients is ignored
//     (if recipients[] is empty it is built from envelope.recipients, all
//     Queued), size is set to content.size(), and a pending recipient with
//     next_attempt_ms == 0 is stored due at received_at_ms (or the commit
//     time when that is 0 too). load() fills envelope.recipients from
//     recipients[]. A message with id 0 or no recipients at all fails with
//     IoError (it could never be delivered, so it must not be acknowledged);
//   - due() and update_recipient() for the scheduler.
//
// Additions for the scheduler (queue/scheduler.hpp):
//   - update_recipients() rewrites several recipients of one message (and,
//     when asked, removes the message once none is pending) through the
//     same committer as commit(): outcomes of many deliveries share one
//     transaction and one fsync. Requests are written in the order they
//     were queued, commits and updates alike, so a commit() queued before
//     an update is durable no later than that update (the scheduler relies
//     on this to have a DSN on disk before the failure it reports);
//   - due() with a skip predicate, next_due_after() and find_messages().
//   - visit_due() (per-destination due order, for the scheduler's pass) and
//     throttled() (recipients waiting on a Throttled outcome).

#include "core/units.hpp"
#include "queue/record.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
    std::string detail;           // LMDB / OS error text when status != Ok
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

// A pending recipient whose next attempt is due, from the `due` index.
struct DueRecipient {
    QueueId id = 0;
    std::uint32_t index = 0; // position in Message::recipients
    std::string domain;      // lowercased destination domain
    std::int64_t next_attempt_ms = 0;
    friend bool operator==(const DueRecipient&, const DueRecipient&) = default;
};

// What visit_due() does next. From DueVisitor::destination: Continue reads
// the destination's due recipients, Pass skips them unread. From
// DueVisitor::recipient: Continue goes to the next one, Pass leaves this
// destination. Stop ends the visit from either.
enum class DueStep : std::uint8_t { Continue, Pass, Stop };

// Callbacks of visit_due(). The views point into the store's memory map and
// are valid only during the call.
struct DueVisitor {
    // Each destination whose earliest pending recipient is due by now_ms,
    // in order of that earliest time (then domain).
    std::function<DueStep(std::string_view domain)> destination;
    // Each due recipient of a destination `destination` answered Continue
    // for, in due order (time, id, index).
    std::function<DueStep(std::string_view domain, QueueId id, std::uint32_t index,
                          std::int64_t due_ms)>
        recipient;
};

// One recipient's new record, by its index in Message::recipients.
struct RecipientUpdate {
    std::uint32_t index = 0;
    Recipient recipient;
    friend bool operator==(const RecipientUpdate&, const RecipientUpdate&) = default;
};

struct UpdateResult {
    CommitStatus status = CommitStatus::Ok;
    std::string detail;   // why, when status != Ok
    bool removed = false; // remove_if_final was asked and no recipient was pending any more
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

    // Pending recipients with next attempt <= now_ms, earliest first, at most `limit`.
    [[nodiscard]] std::vector<DueRecipient> due(std::int64_t now_ms, std::size_t limit) const;
    // Rewrites one recipient and moves its due/domains index entries (dropped
    // when it is no longer pending), in its own synchronous transaction.
    // Empty on success, else the reason (unknown recipient, LMDB error).
    [[nodiscard]] std::string update_recipient(QueueId id, std::uint32_t index,
                                               const Recipient& recipient);

    // Thread-safe, asynchronous, group-committed: writes `updates` (in order;
    // a pending record with next_attempt_ms == 0 is due at write time) and
    // moves their index entries in one transaction with whatever else is
    // waiting. With remove_if_final, a message none of whose recipients is
    // pending after the updates is deleted in that same transaction. `done`
    // runs once on the committer thread. An unknown message or recipient
    // fails the request (IoError) without writing any of it.
    void update_recipients(QueueId id, std::vector<RecipientUpdate> updates, bool remove_if_final,
                           std::function<void(UpdateResult)> done);
    // due(now_ms, limit), leaving out the entries `skip` returns true for;
    // those do not count toward `limit` (the scheduler skips recipients in
    // flight, which would otherwise hide the ones behind them).
    [[nodiscard]] std::vector<DueRecipient>
    due(std::int64_t now_ms, std::size_t limit,
        const std::function<bool(const DueRecipient&)>& skip) const;
    // The earliest next attempt later than now_ms; nullopt when none is.
    [[nodiscard]] std::optional<std::int64_t> next_due_after(std::int64_t now_ms) const;
    // The scheduler's read: due recipients by destination (see DueVisitor),
    // in one read transaction, on the caller's thread. Cost: one step per
    // due destination plus one per recipient visited; no record is decoded
    // and nothing is allocated per recipient.
    void visit_due(std::int64_t now_ms, const DueVisitor& visitor) const;
    // Pending recipients whose latest outcome is Throttled
    // (Recipient::throttled_until_ms != 0), whenever due, in due order. One
    // scan of the due index, no record decoded: for admin actions.
    [[nodiscard]] std::vector<DueRecipient> throttled() const;
    // Ids, in order, of messages whose recipients (all of them, by index)
    // satisfy `match`. Reads every recipient record: for start-up recovery
    // and admin queries, not for a hot path.
    [[nodiscard]] std::vector<QueueId>
    find_messages(const std::function<bool(const std::vector<Recipient>&)>& match) const;

    // ---- Key-value tables ----
    // Named tables in the same LMDB environment for the libraries that keep
    // state beside the queue (suppression list, contacts, warm-up counters,
    // the event outbox). open_table() creates the table if needed; call it
    // at start-up. Writes go through the group committer like commit():
    // `done` runs on the committer thread after the fsynced commit.
    using TableId = std::uint32_t;
    struct KvWrite {
        TableId table = 0;
        std::string key;                  // 1..511 octets (LMDB's key limit)
        std::optional<std::string> value; // nullopt erases the key (absent: no error)
    };
    [[nodiscard]] std::optional<TableId> open_table(const std::string& name, std::string& error);
    [[nodiscard]] std::optional<std::string> kv_get(TableId table, std::string_view key) const;
    // Entries whose key starts with `prefix`, from the first key >= `from`
    // (or the prefix), in key order, while visit() returns true.
    void
    kv_scan(TableId table, std::string_view prefix, std::string_view from,
            const std::function<bool(std::string_view key, std::string_view value)>& visit) const;
    [[nodiscard]] std::uint64_t kv_count(TableId table) const;
    void kv_write(std::vector<KvWrite> writes, std::function<void(CommitResult)> done);

    class Impl;

private:
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ember::queue
