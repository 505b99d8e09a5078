#include "queue/store.hpp"

#include "core/log.hpp"
#include "queue/lmdb.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <sys/stat.h>

namespace ember::queue {
namespace log = core::log;

namespace {

constexpr std::size_t kStates = 5;
using StateCounts = std::array<std::int64_t, kStates>;

// Six queue tables plus the named key-value tables (Store::open_table).
constexpr unsigned kMaxDbs = 64;
constexpr std::size_t kMaxKvKey = 511; // LMDB's default key size limit
// 1: the layout in store.hpp; 2: recipients carry their last outcome and DSN
// state (codec version 2; version 1 records still decode); 3: `due` values
// carry the destination and a throttled flag, and the per-destination
// indexes dest_due and dest_heads exist. A store of version 1 or 2 has its
// due indexes rebuilt from the recipient records at open.
constexpr std::uint32_t kSchemaVersion = 3;
constexpr std::uint32_t kFirstDestinationSchema = 3;
constexpr std::string_view kSchemaKey = "schema_version";
// A batch stops growing past this many content bytes (a single request is
// always taken): LMDB caps one transaction's dirty pages (MDB_TXN_FULL near
// 512 MiB with 4k pages), and one huge batch would delay everyone's 250.
constexpr std::size_t kMaxBatchBytes = std::size_t{64} << 20;
// RFC 5321 4.5.3.1.2: a domain is at most 255 octets. The bound also keeps
// domains-index keys far below LMDB's 511-byte key limit.
constexpr std::size_t kMaxDomain = 255;
constexpr std::size_t kIdBytes = 8;
constexpr std::size_t kIndexBytes = 4;
constexpr std::size_t kTimeBytes = 8;
constexpr std::size_t kDueTail = kTimeBytes + kIdBytes + kIndexBytes; // time id index
// `due` value flag: the recipient waits on a Throttled outcome (Store::throttled()).
constexpr std::uint8_t kDueThrottled = 1;

// Keys are big-endian so that LMDB's memcmp order is numeric order.
void append_be(std::string& out, std::uint64_t v, std::size_t bytes) {
    for (std::size_t i = bytes; i-- > 0;)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t read_be(std::string_view in) {
    std::uint64_t v = 0;
    for (const char c : in)
        v = (v << 8) | static_cast<unsigned char>(c);
    return v;
}

std::string id_key(QueueId id) {
    std::string k;
    append_be(k, id, kIdBytes);
    return k;
}

std::string recipient_key(QueueId id, std::uint32_t index) {
    auto k = id_key(id);
    append_be(k, index, kIndexBytes);
    return k;
}

std::string due_key(std::int64_t at_ms, QueueId id, std::uint32_t index) {
    std::string k;
    append_be(k, static_cast<std::uint64_t>(std::max<std::int64_t>(at_ms, 0)), 8);
    append_be(k, id, kIdBytes);
    append_be(k, index, kIndexBytes);
    return k;
}

std::string domain_prefix(std::string_view domain) {
    std::string k(domain);
    k.push_back('\0');
    return k;
}

std::string domain_key(std::string_view domain, QueueId id, std::uint32_t index) {
    auto k = domain_prefix(domain);
    append_be(k, id, kIdBytes);
    append_be(k, index, kIndexBytes);
    return k;
}

// dest_due: domain NUL time(8) id(8) index(4). One destination's due
// recipients are contiguous and in due order.
std::string dest_due_key(std::string_view domain, std::int64_t at_ms, QueueId id,
                         std::uint32_t index) {
    auto k = domain_prefix(domain);
    k += due_key(at_ms, id, index);
    return k;
}

// dest_heads: time(8) domain, the earliest dest_due time of each destination.
std::string head_key(std::int64_t at_ms, std::string_view domain) {
    std::string k;
    append_be(k, static_cast<std::uint64_t>(std::max<std::int64_t>(at_ms, 0)), kTimeBytes);
    k += domain;
    return k;
}

// `due` value: flags(1) then the destination domain, so that a reader of the
// index never decodes a recipient record to learn where it goes. Version 1
// and 2 stores wrote "" (rebuilt at open; readers still fall back).
std::string due_value(const Recipient& r, std::string_view domain) {
    std::string v(1, static_cast<char>(r.throttled_until_ms != 0 ? kDueThrottled : 0));
    v += domain;
    return v;
}

// The domain of a dest_due key (everything before the NUL).
std::string_view dest_due_domain(std::string_view key) {
    return key.substr(0, key.find('\0'));
}

// An admin's "Example.COM" names the same destination as "example.com".
std::string lower_domain(std::string_view domain) {
    return core::address_domain("@" + std::string(domain));
}

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string_view status_name(CommitStatus s) {
    switch (s) {
    case CommitStatus::Ok:
        return "ok";
    case CommitStatus::MapFull:
        return "map_full";
    case CommitStatus::DiskFull:
        return "disk_full";
    case CommitStatus::IoError:
        return "io_error";
    case CommitStatus::ShuttingDown:
        return "shutting_down";
    }
    return "unknown";
}

// ENOSPC and EDQUOT both mean "no room on the disk" to the client: retry later.
CommitResult failure(const lmdb::Status& st, std::uint64_t batch_size) {
    auto status = CommitStatus::IoError;
    if (st.is(MDB_MAP_FULL))
        status = CommitStatus::MapFull;
    else if (st.is(ENOSPC) || st.is(EDQUOT))
        status = CommitStatus::DiskFull;
    return CommitResult{status, st.message(), batch_size};
}

CommitResult rejected(std::string why) {
    return CommitResult{CommitStatus::IoError, std::move(why), 0};
}

// Visits keys >= `from` (all keys when empty) in order until visit() returns
// false. The cursor lives only inside this call, so a write transaction may
// commit afterwards.
template <typename Visit>
lmdb::Status scan(const lmdb::Txn& txn, lmdb::Dbi dbi, std::string_view from, Visit&& visit) {
    lmdb::Cursor cursor;
    if (auto st = lmdb::Cursor::open(txn, dbi, cursor); !st.ok())
        return st;
    std::string_view key;
    std::string_view value;
    auto st = from.empty() ? cursor.get(MDB_FIRST, key, value) : cursor.seek(from, key, value);
    for (; st.ok(); st = cursor.get(MDB_NEXT, key, value)) {
        if (!visit(key, value))
            return {};
    }
    return st.is(MDB_NOTFOUND) ? lmdb::Status{} : st;
}

// Applies the write-side rules of store.hpp; the reason when the message
// must not be acknowledged.
std::optional<std::string> normalize(Message& m, std::size_t content_size, std::int64_t now) {
    if (m.id == 0)
        return "message has no queue id";
    if (m.recipients.empty()) {
        for (const auto& spec : m.envelope.recipients) {
            Recipient r;
            r.spec = spec;
            m.recipients.push_back(std::move(r));
        }
    }
    if (m.recipients.empty())
        return "message has no recipients";
    if (m.recipients.size() > std::numeric_limits<std::uint32_t>::max())
        return "too many recipients";
    m.size = content_size;
    const auto due_at = m.submission.received_at_ms > 0 ? m.submission.received_at_ms : now;
    for (auto& r : m.recipients) {
        if (core::address_domain(r.spec.address).size() > kMaxDomain)
            return fmt::format("recipient domain longer than {} octets", kMaxDomain);
        if (is_pending(r.state) && r.next_attempt_ms == 0)
            r.next_attempt_ms = due_at;
    }
    return std::nullopt;
}

} // namespace

class Store::Impl {
public:
    explicit Impl(StoreConfig config) : config_(std::move(config)) {}
    ~Impl() { shutdown(); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    [[nodiscard]] std::string open();
    void start() {
        committer_ = std::thread([this] { run(); });
    }
    // Answers everything already queued, then stops the committer. Idempotent.
    void shutdown();

    [[nodiscard]] QueueId next_id();
    void commit(Message message, std::string content, std::function<void(CommitResult)> done);

    [[nodiscard]] std::optional<Message> load(QueueId id) const;
    [[nodiscard]] std::optional<std::string> load_content(QueueId id) const;
    [[nodiscard]] std::vector<Message> list(const ListFilter& filter) const;
    [[nodiscard]] QueueSummary summary() const;
    [[nodiscard]] bool remove(QueueId id, std::string& error);
    [[nodiscard]] std::map<RecipientState, std::uint64_t> counts() const;
    [[nodiscard]] std::vector<DueRecipient> due(std::int64_t now, std::size_t limit) const;
    [[nodiscard]] std::string update_recipient(QueueId id, std::uint32_t index, Recipient rcpt);
    void update_recipients(QueueId id, std::vector<RecipientUpdate> updates, bool remove_if_final,
                           std::function<void(UpdateResult)> done);
    [[nodiscard]] std::vector<DueRecipient>
    due(std::int64_t now, std::size_t limit,
        const std::function<bool(const DueRecipient&)>* skip) const;
    [[nodiscard]] std::optional<std::int64_t> next_due_after(std::int64_t now) const;
    [[nodiscard]] std::vector<QueueId>
    find_messages(const std::function<bool(const std::vector<Recipient>&)>& match) const;
    void visit_due(std::int64_t now, const DueVisitor& visitor) const;
    [[nodiscard]] std::vector<DueRecipient> throttled() const;
    [[nodiscard]] bool due_domain(const lmdb::Txn& txn, std::string_view value,
                                  DueRecipient& d) const;

    [[nodiscard]] std::optional<TableId> open_table(const std::string& name, std::string& error);
    [[nodiscard]] std::optional<std::string> kv_get(TableId table, std::string_view key) const;
    void kv_scan(TableId table, std::string_view prefix, std::string_view from,
                 const std::function<bool(std::string_view, std::string_view)>& visit) const;
    [[nodiscard]] std::uint64_t kv_count(TableId table) const;
    void kv_write(std::vector<KvWrite> writes, std::function<void(CommitResult)> done);

private:
    struct Put {
        lmdb::Dbi dbi;
        std::string key;
        std::string value;
    };
    // A commit() call, encoded on the caller's thread so the committer only writes.
    struct Request {
        QueueId id = 0;
        std::string header;
        std::string content;
        std::vector<Put> rows; // recipients and their index entries
        StateCounts delta{};
        std::optional<CommitResult> rejected; // answered without writing
        std::function<void(CommitResult)> done;
        // update_recipients(): applied against the records stored at write
        // time, so `delta` and `removed` are filled in by the write.
        bool is_update = false;
        std::vector<RecipientUpdate> updates;
        std::vector<std::vector<Put>> update_rows; // encoded on the caller's thread
        bool remove_if_final = false;
        std::function<void(UpdateResult)> update_done;
        bool removed = false;
        std::string reject_reason; // set by a write that found nothing to apply to
        // kv_write(): generic table writes, nothing else.
        bool is_kv = false;
        std::vector<KvWrite> kv;
    };

    // The destinations whose dest_due entries a write changes, with their
    // head (earliest time) before it; settle_heads() rewrites the heads
    // that moved, in the same transaction.
    using HeadFix = std::map<std::string, std::optional<std::int64_t>, std::less<>>;

    std::string open_env();
    std::string init_databases();
    std::string check_schema(lmdb::Txn& txn, std::uint32_t& stored);
    std::string check_indexes(lmdb::Txn& txn, std::uint32_t stored);
    lmdb::Status rebuild_indexes(lmdb::Txn& txn, std::uint64_t& pending) const;
    lmdb::Status head_of(const lmdb::Txn& txn, std::string_view domain,
                         std::optional<std::int64_t>& out) const;
    lmdb::Status note_head(const lmdb::Txn& txn, HeadFix& fix, std::string_view domain) const;
    lmdb::Status settle_heads(lmdb::Txn& txn, const HeadFix& fix) const;
    lmdb::Status put_rows(lmdb::Txn& txn, const std::vector<Put>& rows, HeadFix& fix) const;
    std::string scan_existing();
    std::string fail(std::string_view what, const lmdb::Status& st) const;

    Request prepare(Message m, std::string content, std::function<void(CommitResult)> done);
    void enqueue(Request r);
    static void answer(Request& r, CommitResult result);
    void add_rows(std::vector<Put>& rows, QueueId id, std::uint32_t index, const Recipient& r);
    void run();
    std::vector<Request> take_batch();
    void write_batch(std::vector<Request>& batch);
    bool write_together(std::vector<Request>& batch, std::vector<CommitResult>& results);
    CommitResult write_alone(Request& r);
    lmdb::Status put_request(lmdb::Txn& txn, Request& r) const;
    lmdb::Status put_update(lmdb::Txn& txn, Request& r) const;
    lmdb::Status check_update(const lmdb::Txn& txn, Request& r) const;
    lmdb::Status erase_if_final(lmdb::Txn& txn, Request& r, HeadFix& fix) const;
    lmdb::Status erase_message(lmdb::Txn& txn, QueueId id, StateCounts& delta, HeadFix& fix) const;
    lmdb::Status drop_indexes(lmdb::Txn& txn, QueueId id, std::uint32_t index, const Recipient& r,
                              HeadFix& fix) const;
    void add_counts(const StateCounts& delta);
    void observe_id(QueueId id);

    bool begin_read(lmdb::Txn& txn) const;
    std::optional<Message> load_in(const lmdb::Txn& txn, QueueId id) const;
    bool load_recipients(const lmdb::Txn& txn, QueueId id, std::vector<Recipient>& out) const;
    template <typename Add>
    lmdb::Status list_pending_by_domain(const lmdb::Txn& txn, const ListFilter& f, Add&& add) const;
    template <typename Add>
    lmdb::Status list_by_recipient(const lmdb::Txn& txn, const ListFilter& f, Add&& add) const;

    StoreConfig config_;
    lmdb::Env env_;
    struct {
        lmdb::Dbi messages = 0, recipients = 0, content = 0, due = 0, domains = 0, meta = 0;
        lmdb::Dbi dest_due = 0, dest_heads = 0;
    } db_;
    std::array<std::atomic<std::int64_t>, kStates> counts_{};

    std::mutex id_mu_;
    QueueId last_id_ = 0; // guarded by id_mu_

    mutable std::mutex tables_mu_;
    std::map<std::string, lmdb::Dbi> tables_; // open_table(); guarded by tables_mu_
    bool known_table(TableId t) const;

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Request> waiting_; // guarded by mu_
    bool stopping_ = false;       // guarded by mu_
    std::thread committer_;
};

// ---- open -------------------------------------------------------------------

namespace {

// Creates missing components with 0700: the queue holds other people's mail.
std::string ensure_directory(const std::string& dir) {
    namespace fs = std::filesystem;
    if (dir.empty())
        return "queue: data_dir is empty";
    std::error_code ec;
    if (fs::is_directory(dir, ec))
        return {};
    fs::path partial;
    for (const auto& part : fs::path(dir)) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
            return fmt::format("queue: cannot create {}: {}", partial.string(),
                               std::error_code(errno, std::generic_category()).message());
    }
    if (!fs::is_directory(dir, ec))
        return fmt::format("queue: data_dir {} is not a directory", dir);
    return {};
}

} // namespace

std::string Store::Impl::fail(std::string_view what, const lmdb::Status& st) const {
    return fmt::format("queue: {}: {}: {}", config_.data_dir, what, st.message());
}

std::string Store::Impl::open() {
    if (auto e = ensure_directory(config_.data_dir); !e.empty())
        return e;
    if (auto e = open_env(); !e.empty())
        return e;
    if (auto e = init_databases(); !e.empty())
        return e;
    return scan_existing();
}

// Default flags keep LMDB's durable sync (fsync at every commit): never
// MDB_NOSYNC, MDB_NOMETASYNC or MDB_WRITEMAP|MDB_MAPASYNC. MDB_NOTLS ties
// reader slots to transactions, not threads, so reads may hop threads.
std::string Store::Impl::open_env() {
    if (auto st = lmdb::create_env(env_); !st.ok())
        return fail("mdb_env_create", st);
    if (auto st = lmdb::Status{mdb_env_set_maxdbs(env_.get(), kMaxDbs)}; !st.ok())
        return fail("mdb_env_set_maxdbs", st);
    const auto map_size = static_cast<std::size_t>(config_.map_size.bytes);
    if (auto st = lmdb::Status{mdb_env_set_mapsize(env_.get(), map_size)}; !st.ok())
        return fail("mdb_env_set_mapsize", st);
    if (auto st = lmdb::Status{mdb_env_open(env_.get(), config_.data_dir.c_str(), MDB_NOTLS, 0600)};
        !st.ok())
        return fail("mdb_env_open", st);
    // A process killed inside a read transaction leaves its reader slot
    // behind, which would pin old pages forever and grow the file.
    int stale = 0;
    if (auto st = lmdb::Status{mdb_reader_check(env_.get(), &stale)}; !st.ok())
        return fail("mdb_reader_check", st);
    if (stale > 0)
        log::warning("queue.stale_readers", "data_dir={} cleared={}", log::q(config_.data_dir),
                     stale);
    return {};
}

std::string Store::Impl::init_databases() {
    lmdb::Txn txn;
    if (auto st = lmdb::Txn::begin(env_.get(), 0, txn); !st.ok())
        return fail("begin", st);
    const std::pair<const char*, lmdb::Dbi*> dbs[] = {
        {"messages", &db_.messages}, {"recipients", &db_.recipients}, {"content", &db_.content},
        {"due", &db_.due},           {"domains", &db_.domains},       {"meta", &db_.meta},
        {"dest_due", &db_.dest_due}, {"dest_heads", &db_.dest_heads}};
    for (const auto& [name, dbi] : dbs) {
        if (auto st = txn.open_dbi(name, MDB_CREATE, *dbi); !st.ok())
            return fail(fmt::format("open database {}", name), st);
    }
    std::uint32_t stored = kSchemaVersion;
    if (auto e = check_schema(txn, stored); !e.empty())
        return e;
    if (auto e = check_indexes(txn, stored); !e.empty())
        return e;
    if (auto st = txn.commit(); !st.ok())
        return fail("commit", st);
    return {};
}

// Version 1 is the layout in store.hpp. A newer version was written by a
// newer ember whose records this one would misread: refuse, never guess.
std::string Store::Impl::check_schema(lmdb::Txn& txn, std::uint32_t& stored_version) {
    std::string_view stored;
    auto st = txn.get(db_.meta, kSchemaKey, stored);
    stored_version = kSchemaVersion;
    if (st.is(MDB_NOTFOUND)) {
        std::string v;
        append_be(v, kSchemaVersion, 4);
        st = txn.put(db_.meta, kSchemaKey, v);
        return st.ok() ? std::string() : fail("write schema version", st);
    }
    if (!st.ok())
        return fail("read schema version", st);
    if (stored.size() != 4)
        return fmt::format("queue: {}: schema version record is malformed ({} bytes)",
                           config_.data_dir, stored.size());
    const auto version = read_be(stored);
    if (version > kSchemaVersion)
        return fmt::format("queue: {}: schema version {} is newer than this ember supports ({}); "
                           "run a newer ember or use another data_dir",
                           config_.data_dir, version, kSchemaVersion);
    if (version == 0)
        return fmt::format("queue: {}: unknown schema version 0", config_.data_dir);
    stored_version = static_cast<std::uint32_t>(version);
    if (version < kSchemaVersion) {
        // Older records still decode; stamp the new version so an older
        // ember refuses this store instead of misreading new records.
        std::string v;
        append_be(v, kSchemaVersion, 4);
        st = txn.put(db_.meta, kSchemaKey, v);
        return st.ok() ? std::string() : fail("write schema version", st);
    }
    return {};
}

// The due indexes are derived data: a store from before schema 3 lacks the
// destination indexes, and any disagreement between them (one entry per
// pending recipient in each of due and dest_due, a head per destination)
// means they cannot be trusted. Either way they are rebuilt from the
// recipient records, in the open transaction, so a crash during the rebuild
// leaves the old store as it was.
std::string Store::Impl::check_indexes(lmdb::Txn& txn, std::uint32_t stored) {
    std::size_t due = 0;
    std::size_t dest_due = 0;
    std::size_t heads = 0;
    auto st = txn.entries(db_.due, due);
    if (st.ok())
        st = txn.entries(db_.dest_due, dest_due);
    if (st.ok())
        st = txn.entries(db_.dest_heads, heads);
    if (!st.ok())
        return fail("count index entries", st);
    const bool consistent = due == dest_due && (heads == 0) == (dest_due == 0) && heads <= due;
    if (stored >= kFirstDestinationSchema && consistent)
        return {};
    std::uint64_t pending = 0;
    if (st = rebuild_indexes(txn, pending); !st.ok())
        return fail("rebuild due indexes", st);
    log::info("queue.index_rebuilt", "data_dir={} schema={} pending={} reason={}",
              log::q(config_.data_dir), stored, pending,
              stored < kFirstDestinationSchema ? "upgrade" : "inconsistent");
    return {};
}

// Writes due, dest_due and dest_heads afresh from every pending recipient.
// Writing other databases while the recipients cursor is open is allowed
// in an LMDB write transaction.
lmdb::Status Store::Impl::rebuild_indexes(lmdb::Txn& txn, std::uint64_t& pending) const {
    for (const auto dbi : {db_.due, db_.dest_due, db_.dest_heads}) {
        if (auto st = lmdb::Status{mdb_drop(txn.get(), dbi, 0)}; !st.ok())
            return st;
    }
    std::map<std::string, std::int64_t, std::less<>> heads;
    lmdb::Status put;
    auto st = scan(txn, db_.recipients, {}, [&](std::string_view k, std::string_view v) {
        const auto r = decode_recipient(v);
        if (k.size() != kIdBytes + kIndexBytes || !r || !is_pending(r->state))
            return true;
        const auto id = read_be(k.substr(0, kIdBytes));
        const auto index = static_cast<std::uint32_t>(read_be(k.substr(kIdBytes)));
        const auto domain = core::address_domain(r->spec.address);
        const auto at = r->next_attempt_ms;
        put = txn.put(db_.due, due_key(at, id, index), due_value(*r, domain));
        if (put.ok())
            put = txn.put(db_.dest_due, dest_due_key(domain, at, id, index), {});
        const auto [head, fresh] = heads.try_emplace(domain, at);
        if (!fresh)
            head->second = std::min(head->second, at);
        ++pending;
        return put.ok();
    });
    if (!put.ok())
        return put;
    for (const auto& [domain, at] : heads) {
        if (st.ok())
            st = txn.put(db_.dest_heads, head_key(at, domain), {});
    }
    return st;
}

// The earliest dest_due time of `domain`; nullopt when it has none.
lmdb::Status Store::Impl::head_of(const lmdb::Txn& txn, std::string_view domain,
                                  std::optional<std::int64_t>& out) const {
    out.reset();
    lmdb::Cursor cursor;
    if (auto st = lmdb::Cursor::open(txn, db_.dest_due, cursor); !st.ok())
        return st;
    const auto prefix = domain_prefix(domain);
    std::string_view key;
    std::string_view value;
    const auto st = cursor.seek(prefix, key, value);
    if (st.is(MDB_NOTFOUND))
        return {};
    if (!st.ok())
        return st;
    if (key.starts_with(prefix) && key.size() == prefix.size() + kDueTail)
        out = static_cast<std::int64_t>(read_be(key.substr(prefix.size(), kTimeBytes)));
    return {};
}

lmdb::Status Store::Impl::note_head(const lmdb::Txn& txn, HeadFix& fix,
                                    std::string_view domain) const {
    if (fix.find(domain) != fix.end())
        return {};
    std::optional<std::int64_t> head;
    if (auto st = head_of(txn, domain, head); !st.ok())
        return st;
    fix.emplace(std::string(domain), head);
    return {};
}

lmdb::Status Store::Impl::settle_heads(lmdb::Txn& txn, const HeadFix& fix) const {
    for (const auto& [domain, before] : fix) {
        std::optional<std::int64_t> after;
        if (auto st = head_of(txn, domain, after); !st.ok())
            return st;
        if (after == before)
            continue;
        if (before) {
            const auto st = txn.del(db_.dest_heads, head_key(*before, domain));
            if (!st.ok() && !st.is(MDB_NOTFOUND))
                return st;
        }
        if (after) {
            if (auto st = txn.put(db_.dest_heads, head_key(*after, domain), {}); !st.ok())
                return st;
        }
    }
    return {};
}

// Rows from add_rows(); a dest_due row notes its destination's head first.
lmdb::Status Store::Impl::put_rows(lmdb::Txn& txn, const std::vector<Put>& rows,
                                   HeadFix& fix) const {
    for (const auto& row : rows) {
        if (row.dbi == db_.dest_due) {
            if (auto st = note_head(txn, fix, dest_due_domain(row.key)); !st.ok())
                return st;
        }
        if (auto st = txn.put(row.dbi, row.key, row.value); !st.ok())
            return st;
    }
    return {};
}

// Rebuilds the per-state counters and floors next_id() at the largest id held.
std::string Store::Impl::scan_existing() {
    lmdb::Txn txn;
    if (auto st = lmdb::Txn::begin(env_.get(), MDB_RDONLY, txn); !st.ok())
        return fail("begin read", st);
    std::uint64_t corrupt = 0;
    auto st = scan(txn, db_.recipients, {}, [&](std::string_view, std::string_view v) {
        if (const auto r = decode_recipient(v))
            counts_[static_cast<std::size_t>(r->state)].fetch_add(1, std::memory_order_relaxed);
        else
            ++corrupt;
        return true;
    });
    if (!st.ok())
        return fail("scan recipients", st);
    lmdb::Cursor cursor;
    std::string_view key;
    std::string_view value;
    if (st = lmdb::Cursor::open(txn, db_.messages, cursor); !st.ok())
        return fail("open cursor", st);
    if (st = cursor.get(MDB_LAST, key, value); st.ok() && key.size() == kIdBytes)
        last_id_ = read_be(key);
    else if (!st.ok() && !st.is(MDB_NOTFOUND))
        return fail("find last id", st);
    if (corrupt > 0)
        log::error("queue.corrupt_records", "data_dir={} recipients={}", log::q(config_.data_dir),
                   corrupt);
    log::info("queue.open", "data_dir={} map_size={} last_id={}", log::q(config_.data_dir),
              config_.map_size.bytes, format_queue_id(last_id_));
    return {};
}

void Store::Impl::shutdown() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (committer_.joinable())
        committer_.join();
}

// ---- ids --------------------------------------------------------------------

// now_ms << 16 | counter, but never <= the last id handed out or stored, so a
// clock stepping back or 65536 ids in one millisecond only borrow from the
// future. 0 is not an id: it is returned only if the id space is exhausted,
// which takes a stored id nobody minted here, and commit() refuses it.
QueueId Store::Impl::next_id() {
    const auto now = static_cast<std::uint64_t>(std::max<std::int64_t>(now_ms(), 0));
    std::lock_guard lock(id_mu_);
    if (last_id_ == std::numeric_limits<QueueId>::max()) {
        log::error("queue.ids_exhausted", "last_id={}", format_queue_id(last_id_));
        return 0;
    }
    last_id_ = std::max(now << 16, last_id_ + 1);
    return last_id_;
}

void Store::Impl::observe_id(QueueId id) {
    std::lock_guard lock(id_mu_);
    last_id_ = std::max(last_id_, id);
}

// ---- commit -----------------------------------------------------------------

void Store::Impl::add_rows(std::vector<Put>& rows, QueueId id, std::uint32_t index,
                           const Recipient& r) {
    rows.push_back(Put{db_.recipients, recipient_key(id, index), encode_recipient(r)});
    if (!is_pending(r.state))
        return;
    const auto domain = core::address_domain(r.spec.address);
    rows.push_back(Put{db_.due, due_key(r.next_attempt_ms, id, index), due_value(r, domain)});
    rows.push_back(Put{db_.domains, domain_key(domain, id, index), {}});
    rows.push_back(Put{db_.dest_due, dest_due_key(domain, r.next_attempt_ms, id, index), {}});
}

Store::Impl::Request Store::Impl::prepare(Message m, std::string content,
                                          std::function<void(CommitResult)> done) {
    Request r;
    r.done = std::move(done);
    r.id = m.id;
    if (auto why = normalize(m, content.size(), now_ms())) {
        r.rejected = rejected(std::move(*why));
        return r;
    }
    observe_id(m.id); // a caller-chosen id still floors next_id()
    r.header = encode_message_header(m);
    for (std::size_t i = 0; i < m.recipients.size(); ++i) {
        add_rows(r.rows, m.id, static_cast<std::uint32_t>(i), m.recipients[i]);
        ++r.delta[static_cast<std::size_t>(m.recipients[i].state)];
    }
    r.content = std::move(content);
    return r;
}

void Store::Impl::commit(Message message, std::string content,
                         std::function<void(CommitResult)> done) {
    enqueue(prepare(std::move(message), std::move(content), std::move(done)));
}

void Store::Impl::update_recipients(QueueId id, std::vector<RecipientUpdate> updates,
                                    bool remove_if_final, std::function<void(UpdateResult)> done) {
    Request r;
    r.id = id;
    r.is_update = true;
    r.remove_if_final = remove_if_final;
    r.update_done = std::move(done);
    const auto now = now_ms();
    for (auto& u : updates) {
        if (is_pending(u.recipient.state) && u.recipient.next_attempt_ms == 0)
            u.recipient.next_attempt_ms = now;
        if (core::address_domain(u.recipient.spec.address).size() > kMaxDomain) {
            r.rejected =
                rejected(fmt::format("recipient domain longer than {} octets", kMaxDomain));
            break;
        }
        r.update_rows.emplace_back();
        add_rows(r.update_rows.back(), id, u.index, u.recipient);
    }
    r.updates = std::move(updates);
    enqueue(std::move(r));
}

void Store::Impl::enqueue(Request r) {
    std::unique_lock lock(mu_);
    if (!stopping_) {
        waiting_.push_back(std::move(r));
        lock.unlock();
        cv_.notify_one();
        return;
    }
    lock.unlock();
    answer(r, CommitResult{CommitStatus::ShuttingDown, "queue is shutting down", 0});
}

void Store::Impl::answer(Request& r, CommitResult result) {
    if (r.update_done) {
        const bool removed = result.status == CommitStatus::Ok && r.removed;
        r.update_done(UpdateResult{result.status, std::move(result.detail), removed});
    } else if (r.done) {
        r.done(std::move(result));
    }
}

// The committer: whatever arrived while the previous transaction was being
// written and fsynced is the next batch.
void Store::Impl::run() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
        if (waiting_.empty())
            return; // stopping, and everything queued before has been answered
        auto batch = take_batch();
        lock.unlock();
        write_batch(batch);
        lock.lock();
    }
}

std::vector<Store::Impl::Request> Store::Impl::take_batch() {
    const std::size_t max = std::max<std::uint32_t>(config_.max_batch, 1);
    std::vector<Request> batch;
    std::size_t bytes = 0;
    while (!waiting_.empty() && batch.size() < max) {
        const auto size = waiting_.front().content.size();
        if (!batch.empty() && bytes + size > kMaxBatchBytes)
            break;
        bytes += size;
        batch.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
    }
    return batch;
}

void Store::Impl::write_batch(std::vector<Request>& batch) {
    std::vector<CommitResult> results(batch.size());
    if (batch.size() == 1 || !write_together(batch, results)) {
        for (std::size_t i = 0; i < batch.size(); ++i)
            results[i] = write_alone(batch[i]);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (results[i].status != CommitStatus::Ok)
            log::warning(batch[i].is_kv       ? "queue.kv_write_failed"
                         : batch[i].is_update ? "queue.update_failed"
                                              : "queue.commit_failed",
                         "id={} status={} detail={}", format_queue_id(batch[i].id),
                         status_name(results[i].status), log::q(results[i].detail));
        answer(batch[i], std::move(results[i]));
    }
}

// One transaction, one fsync for the whole batch. False when the batch must
// be retried one request per transaction: the map (or LMDB's per-transaction
// page budget) ran out, or a put failed, and LMDB then only allows an abort.
// Alone, the requests that fit still commit and only the others fail.
bool Store::Impl::write_together(std::vector<Request>& batch, std::vector<CommitResult>& results) {
    lmdb::Txn txn;
    if (auto st = lmdb::Txn::begin(env_.get(), 0, txn); !st.ok()) {
        for (std::size_t i = 0; i < batch.size(); ++i)
            results[i] = batch[i].rejected ? *batch[i].rejected : failure(st, 0);
        return true;
    }
    std::vector<bool> written(batch.size(), false);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].rejected) {
            results[i] = *batch[i].rejected;
            continue;
        }
        const auto st = put_request(txn, batch[i]);
        if (st.is(MDB_KEYEXIST)) { // nothing of it was written; the txn is still good
            results[i] = rejected(fmt::format("queue id {} exists", format_queue_id(batch[i].id)));
            continue;
        }
        if (st.ok() && !batch[i].reject_reason.empty()) { // likewise
            results[i] = rejected(batch[i].reject_reason);
            continue;
        }
        if (!st.ok())
            return false; // the destructor aborts
        written[i] = true;
        ++n;
    }
    const auto st = txn.commit();
    if (st.is(MDB_MAP_FULL) || st.is(MDB_TXN_FULL))
        return false;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!written[i])
            continue;
        if (st.ok())
            add_counts(batch[i].delta);
        results[i] = st.ok() ? CommitResult{CommitStatus::Ok, {}, n} : failure(st, n);
    }
    return true;
}

CommitResult Store::Impl::write_alone(Request& r) {
    if (r.rejected)
        return *r.rejected;
    lmdb::Txn txn;
    if (auto st = lmdb::Txn::begin(env_.get(), 0, txn); !st.ok())
        return failure(st, 0);
    if (auto st = put_request(txn, r); !st.ok())
        return st.is(MDB_KEYEXIST)
                   ? rejected(fmt::format("queue id {} exists", format_queue_id(r.id)))
                   : failure(st, 1);
    if (!r.reject_reason.empty())
        return rejected(r.reject_reason);
    if (auto st = txn.commit(); !st.ok())
        return failure(st, 1);
    add_counts(r.delta);
    return CommitResult{CommitStatus::Ok, {}, 1};
}

// The message row goes first with MDB_NOOVERWRITE: a duplicate id fails
// before anything of the request is written, and never replaces a message.
lmdb::Status Store::Impl::put_request(lmdb::Txn& txn, Request& r) const {
    if (r.is_update)
        return put_update(txn, r);
    if (r.is_kv) {
        for (const auto& w : r.kv) {
            const auto st = w.value ? txn.put(w.table, w.key, *w.value) : txn.del(w.table, w.key);
            if (!st.ok() && !st.is(MDB_NOTFOUND))
                return st;
        }
        return {};
    }
    const auto key = id_key(r.id);
    if (auto st = txn.put(db_.messages, key, r.header, MDB_NOOVERWRITE); !st.ok())
        return st;
    if (auto st = txn.put(db_.content, key, r.content); !st.ok())
        return st;
    HeadFix fix;
    if (auto st = put_rows(txn, r.rows, fix); !st.ok())
        return st;
    return settle_heads(txn, fix);
}

// Every recipient must exist and decode before anything is written, so a
// request that cannot apply leaves the shared transaction untouched.
lmdb::Status Store::Impl::check_update(const lmdb::Txn& txn, Request& r) const {
    for (const auto& u : r.updates) {
        std::string_view v;
        const auto st = txn.get(db_.recipients, recipient_key(r.id, u.index), v);
        if (st.is(MDB_NOTFOUND)) {
            r.reject_reason =
                fmt::format("queue id {} has no recipient {}", format_queue_id(r.id), u.index);
            return {};
        }
        if (!st.ok())
            return st;
        if (!decode_recipient(v)) {
            r.reject_reason =
                fmt::format("queue id {} recipient {} is corrupt", format_queue_id(r.id), u.index);
            return {};
        }
    }
    return {};
}

// Each update reads the record as stored now (an earlier update of the same
// request may have rewritten it) to move exactly its index entries.
lmdb::Status Store::Impl::put_update(lmdb::Txn& txn, Request& r) const {
    r.delta = {};
    r.removed = false;
    r.reject_reason.clear();
    if (auto st = check_update(txn, r); !st.ok() || !r.reject_reason.empty())
        return st;
    HeadFix fix;
    for (std::size_t i = 0; i < r.updates.size(); ++i) {
        const auto index = r.updates[i].index;
        std::string_view v;
        if (auto st = txn.get(db_.recipients, recipient_key(r.id, index), v); !st.ok())
            return st;
        const auto old = decode_recipient(v); // decoded before the write invalidates `v`
        if (!old)
            return lmdb::Status{MDB_CORRUPTED};
        if (auto st = drop_indexes(txn, r.id, index, *old, fix); !st.ok())
            return st;
        if (auto st = put_rows(txn, r.update_rows[i], fix); !st.ok())
            return st;
        --r.delta[static_cast<std::size_t>(old->state)];
        ++r.delta[static_cast<std::size_t>(r.updates[i].recipient.state)];
    }
    if (r.remove_if_final) {
        if (auto st = erase_if_final(txn, r, fix); !st.ok())
            return st;
    }
    return settle_heads(txn, fix);
}

lmdb::Status Store::Impl::erase_if_final(lmdb::Txn& txn, Request& r, HeadFix& fix) const {
    const auto prefix = id_key(r.id);
    bool final = true;
    auto st = scan(txn, db_.recipients, prefix, [&](std::string_view k, std::string_view v) {
        if (!k.starts_with(prefix))
            return false;
        const auto rcpt = decode_recipient(v);
        final = rcpt && !is_pending(rcpt->state);
        return final;
    });
    if (!st.ok() || !final)
        return st;
    st = erase_message(txn, r.id, r.delta, fix);
    r.removed = st.ok();
    return st;
}

void Store::Impl::add_counts(const StateCounts& delta) {
    for (std::size_t i = 0; i < kStates; ++i)
        counts_[i].fetch_add(delta[i], std::memory_order_relaxed);
}

// ---- reads ------------------------------------------------------------------

bool Store::Impl::begin_read(lmdb::Txn& txn) const {
    const auto st = lmdb::Txn::begin(env_.get(), MDB_RDONLY, txn);
    if (!st.ok())
        log::error("queue.read_failed", "data_dir={} error={}", log::q(config_.data_dir),
                   log::q(st.message()));
    return st.ok();
}

bool Store::Impl::load_recipients(const lmdb::Txn& txn, QueueId id,
                                  std::vector<Recipient>& out) const {
    const auto prefix = id_key(id);
    bool intact = true;
    const auto st = scan(txn, db_.recipients, prefix, [&](std::string_view k, std::string_view v) {
        if (!k.starts_with(prefix))
            return false;
        auto r = decode_recipient(v);
        // Indexes are dense from 0: a gap or an undecodable row is corruption.
        intact =
            r && k.size() == kIdBytes + kIndexBytes && read_be(k.substr(kIdBytes)) == out.size();
        if (intact)
            out.push_back(std::move(*r));
        return intact;
    });
    return st.ok() && intact;
}

std::optional<Message> Store::Impl::load_in(const lmdb::Txn& txn, QueueId id) const {
    std::string_view bytes;
    if (!txn.get(db_.messages, id_key(id), bytes).ok())
        return std::nullopt;
    auto m = decode_message_header(bytes);
    if (!m || m->id != id || !load_recipients(txn, id, m->recipients)) {
        log::error("queue.corrupt_message", "id={}", format_queue_id(id));
        return std::nullopt;
    }
    for (const auto& r : m->recipients)
        m->envelope.recipients.push_back(r.spec);
    return m;
}

std::optional<Message> Store::Impl::load(QueueId id) const {
    lmdb::Txn txn;
    if (!begin_read(txn))
        return std::nullopt;
    return load_in(txn, id);
}

std::optional<std::string> Store::Impl::load_content(QueueId id) const {
    lmdb::Txn txn;
    std::string_view v;
    if (!begin_read(txn) || !txn.get(db_.content, id_key(id), v).ok())
        return std::nullopt;
    return std::string(v);
}

// The domains index holds exactly the pending recipients, so it answers
// "pending for domain D" without reading any other recipient.
template <typename Add>
lmdb::Status Store::Impl::list_pending_by_domain(const lmdb::Txn& txn, const ListFilter& f,
                                                 Add&& add) const {
    const auto prefix = domain_prefix(lower_domain(*f.domain));
    QueueId added = 0;
    return scan(txn, db_.domains, prefix, [&](std::string_view k, std::string_view) {
        if (!k.starts_with(prefix))
            return false;
        if (k.size() != prefix.size() + kIdBytes + kIndexBytes)
            return true;
        const auto id = read_be(k.substr(prefix.size(), kIdBytes));
        const auto index = static_cast<std::uint32_t>(read_be(k.substr(prefix.size() + kIdBytes)));
        std::string_view v;
        if (id == added || !txn.get(db_.recipients, recipient_key(id, index), v).ok())
            return true;
        const auto r = decode_recipient(v);
        if (!r || r->state != *f.state)
            return true;
        added = id;
        return add(id);
    });
}

// Recipients are keyed by (id, index): a scan visits them in id order.
template <typename Add>
lmdb::Status Store::Impl::list_by_recipient(const lmdb::Txn& txn, const ListFilter& f,
                                            Add&& add) const {
    const auto domain = f.domain ? std::optional(lower_domain(*f.domain)) : std::nullopt;
    QueueId added = 0;
    return scan(txn, db_.recipients, {}, [&](std::string_view k, std::string_view v) {
        const auto id = read_be(k.substr(0, kIdBytes));
        if (id == added)
            return true;
        const auto r = decode_recipient(v);
        if (!r || (f.state && r->state != *f.state) ||
            (domain && core::address_domain(r->spec.address) != *domain))
            return true;
        added = id;
        return add(id);
    });
}

// Unfiltered and domain+pending-state lists walk an index; the rest scan
// recipients (an admin's query; it stops at `limit` matches).
std::vector<Message> Store::Impl::list(const ListFilter& f) const {
    std::vector<Message> out;
    lmdb::Txn txn;
    if (f.limit == 0 || !begin_read(txn))
        return out;
    auto add = [&](QueueId id) {
        if (auto m = load_in(txn, id))
            out.push_back(std::move(*m));
        return out.size() < f.limit;
    };
    lmdb::Status st;
    if (!f.domain && !f.state)
        st = scan(txn, db_.messages, {},
                  [&](std::string_view k, std::string_view) { return add(read_be(k)); });
    else if (f.domain && f.state && is_pending(*f.state))
        st = list_pending_by_domain(txn, f, add);
    else
        st = list_by_recipient(txn, f, add);
    if (!st.ok())
        log::error("queue.list_failed", "error={}", log::q(st.message()));
    return out;
}

QueueSummary Store::Impl::summary() const {
    QueueSummary s;
    for (std::size_t i = 0; i < kStates; ++i)
        s.by_state[static_cast<RecipientState>(i)] = 0;
    lmdb::Txn txn;
    std::size_t messages = 0;
    if (!begin_read(txn) || !txn.entries(db_.messages, messages).ok())
        return s;
    s.messages = messages;
    const auto st = scan(txn, db_.recipients, {}, [&](std::string_view, std::string_view v) {
        if (const auto r = decode_recipient(v)) {
            ++s.by_state[r->state];
            ++s.by_domain[core::address_domain(r->spec.address)][r->state];
        }
        return true;
    });
    if (!st.ok())
        log::error("queue.summary_failed", "error={}", log::q(st.message()));
    return s;
}

std::map<RecipientState, std::uint64_t> Store::Impl::counts() const {
    std::map<RecipientState, std::uint64_t> out;
    for (std::size_t i = 0; i < kStates; ++i) {
        const auto n = counts_[i].load(std::memory_order_relaxed);
        out[static_cast<RecipientState>(i)] = n > 0 ? static_cast<std::uint64_t>(n) : 0;
    }
    return out;
}

std::vector<DueRecipient>
Store::Impl::due(std::int64_t now, std::size_t limit,
                 const std::function<bool(const DueRecipient&)>* skip) const {
    std::vector<DueRecipient> out;
    lmdb::Txn txn;
    if (limit == 0 || !begin_read(txn))
        return out;
    const auto st = scan(txn, db_.due, {}, [&](std::string_view k, std::string_view v) {
        if (k.size() != kDueTail)
            return true;
        const auto at = static_cast<std::int64_t>(read_be(k.substr(0, 8)));
        if (at > now)
            return false;
        const auto id = read_be(k.substr(8, kIdBytes));
        const auto index = static_cast<std::uint32_t>(read_be(k.substr(8 + kIdBytes)));
        DueRecipient d{id, index, {}, at};
        if (!due_domain(txn, v, d)) {
            log::error("queue.corrupt_due_entry", "id={} index={}", format_queue_id(id), index);
            return true;
        }
        if (skip != nullptr && (*skip)(d))
            return true;
        out.push_back(std::move(d));
        return out.size() < limit;
    });
    if (!st.ok())
        log::error("queue.due_failed", "error={}", log::q(st.message()));
    return out;
}

// The domain from a `due` value; a value without one (written before schema
// 3 and somehow not rebuilt) costs a record decode.
bool Store::Impl::due_domain(const lmdb::Txn& txn, std::string_view value, DueRecipient& d) const {
    if (value.size() > 1) {
        d.domain.assign(value.substr(1));
        return true;
    }
    std::string_view v;
    if (!txn.get(db_.recipients, recipient_key(d.id, d.index), v).ok())
        return false;
    const auto r = decode_recipient(v);
    if (r)
        d.domain = core::address_domain(r->spec.address);
    return r.has_value();
}

// Destinations in head order, each one's recipients in due order: a busy
// destination costs one call however long its backlog, and nothing here
// decodes a record or allocates per recipient.
void Store::Impl::visit_due(std::int64_t now, const DueVisitor& visitor) const {
    lmdb::Txn txn;
    lmdb::Cursor heads;
    lmdb::Cursor entries;
    if (!begin_read(txn) || !lmdb::Cursor::open(txn, db_.dest_heads, heads).ok() ||
        !lmdb::Cursor::open(txn, db_.dest_due, entries).ok())
        return;
    std::string_view hk;
    std::string_view hv;
    std::string prefix;
    for (auto st = heads.get(MDB_FIRST, hk, hv); st.ok(); st = heads.get(MDB_NEXT, hk, hv)) {
        if (hk.size() < kTimeBytes)
            continue;
        if (static_cast<std::int64_t>(read_be(hk.substr(0, kTimeBytes))) > now)
            return;
        const auto domain = hk.substr(kTimeBytes);
        const auto step = visitor.destination(domain);
        if (step == DueStep::Stop)
            return;
        if (step == DueStep::Pass)
            continue;
        prefix.assign(domain);
        prefix.push_back('\0');
        std::string_view k;
        std::string_view v;
        for (auto e = entries.seek(prefix, k, v); e.ok(); e = entries.get(MDB_NEXT, k, v)) {
            if (!k.starts_with(prefix) || k.size() != prefix.size() + kDueTail)
                break;
            const auto tail = k.substr(prefix.size());
            const auto at = static_cast<std::int64_t>(read_be(tail.substr(0, kTimeBytes)));
            if (at > now)
                break;
            const auto id = read_be(tail.substr(kTimeBytes, kIdBytes));
            const auto index =
                static_cast<std::uint32_t>(read_be(tail.substr(kTimeBytes + kIdBytes)));
            const auto next = visitor.recipient(domain, id, index, at);
            if (next == DueStep::Stop)
                return;
            if (next == DueStep::Pass)
                break;
        }
    }
}

// The due index's throttled flag answers this without decoding a record.
std::vector<DueRecipient> Store::Impl::throttled() const {
    std::vector<DueRecipient> out;
    lmdb::Txn txn;
    if (!begin_read(txn))
        return out;
    const auto st = scan(txn, db_.due, {}, [&](std::string_view k, std::string_view v) {
        if (k.size() != kDueTail || v.empty() ||
            (static_cast<std::uint8_t>(v[0]) & kDueThrottled) == 0)
            return true;
        DueRecipient d{read_be(k.substr(kTimeBytes, kIdBytes)),
                       static_cast<std::uint32_t>(read_be(k.substr(kTimeBytes + kIdBytes))),
                       std::string(v.substr(1)),
                       static_cast<std::int64_t>(read_be(k.substr(0, kTimeBytes)))};
        out.push_back(std::move(d));
        return true;
    });
    if (!st.ok())
        log::error("queue.due_failed", "error={}", log::q(st.message()));
    return out;
}

std::optional<std::int64_t> Store::Impl::next_due_after(std::int64_t now) const {
    lmdb::Txn txn;
    lmdb::Cursor cursor;
    if (now == std::numeric_limits<std::int64_t>::max() || !begin_read(txn) ||
        !lmdb::Cursor::open(txn, db_.due, cursor).ok())
        return std::nullopt;
    std::string_view key;
    std::string_view value;
    if (!cursor.seek(due_key(now + 1, 0, 0), key, value).ok() || key.size() < 8)
        return std::nullopt;
    return static_cast<std::int64_t>(read_be(key.substr(0, 8)));
}

// Recipient keys are id(8) index(4): one scan meets each message's
// recipients together and in index order.
std::vector<QueueId>
Store::Impl::find_messages(const std::function<bool(const std::vector<Recipient>&)>& match) const {
    std::vector<QueueId> out;
    lmdb::Txn txn;
    if (!begin_read(txn))
        return out;
    std::vector<Recipient> current;
    QueueId id = 0;
    bool intact = true;
    auto flush = [&] {
        if (!current.empty() && intact && match(current))
            out.push_back(id);
        current.clear();
        intact = true;
    };
    const auto st = scan(txn, db_.recipients, {}, [&](std::string_view k, std::string_view v) {
        if (k.size() != kIdBytes + kIndexBytes)
            return true;
        if (const auto key_id = read_be(k.substr(0, kIdBytes)); key_id != id) {
            flush();
            id = key_id;
        }
        auto r = decode_recipient(v);
        intact = intact && r && read_be(k.substr(kIdBytes)) == current.size();
        if (intact)
            current.push_back(std::move(*r));
        return true;
    });
    flush();
    if (!st.ok())
        log::error("queue.find_failed", "error={}", log::q(st.message()));
    return out;
}

// ---- remove and update ------------------------------------------------------

lmdb::Status Store::Impl::drop_indexes(lmdb::Txn& txn, QueueId id, std::uint32_t index,
                                       const Recipient& r, HeadFix& fix) const {
    if (!is_pending(r.state))
        return {};
    const auto domain = core::address_domain(r.spec.address);
    auto st = note_head(txn, fix, domain);
    if (st.ok())
        st = txn.del(db_.due, due_key(r.next_attempt_ms, id, index));
    if (st.is(MDB_NOTFOUND) || st.ok())
        st = txn.del(db_.domains, domain_key(domain, id, index));
    if (st.is(MDB_NOTFOUND) || st.ok())
        st = txn.del(db_.dest_due, dest_due_key(domain, r.next_attempt_ms, id, index));
    return st.is(MDB_NOTFOUND) ? lmdb::Status{} : st;
}

// Deletes the message row, its content, recipients and their index entries.
lmdb::Status Store::Impl::erase_message(lmdb::Txn& txn, QueueId id, StateCounts& delta,
                                        HeadFix& fix) const {
    // Collect first: the scan's cursor must be closed before rows are deleted.
    std::vector<std::pair<std::string, std::optional<Recipient>>> rows;
    const auto prefix = id_key(id);
    auto st = scan(txn, db_.recipients, prefix, [&](std::string_view k, std::string_view v) {
        if (k.starts_with(prefix))
            rows.emplace_back(std::string(k), decode_recipient(v));
        return k.starts_with(prefix);
    });
    for (std::size_t i = 0; st.ok() && i < rows.size(); ++i) {
        const auto& [key, r] = rows[i];
        if (r) {
            --delta[static_cast<std::size_t>(r->state)];
            st = drop_indexes(txn, id, static_cast<std::uint32_t>(read_be(key.substr(kIdBytes))),
                              *r, fix);
        }
        if (st.ok())
            st = txn.del(db_.recipients, key);
    }
    if (st.ok() && (st = txn.del(db_.content, prefix)).is(MDB_NOTFOUND))
        st = {};
    if (st.ok() && (st = txn.del(db_.messages, prefix)).is(MDB_NOTFOUND))
        st = {};
    return st;
}

bool Store::Impl::remove(QueueId id, std::string& error) {
    error.clear();
    lmdb::Txn txn;
    std::string_view header;
    auto st = lmdb::Txn::begin(env_.get(), 0, txn);
    if (st.ok())
        st = txn.get(db_.messages, id_key(id), header);
    if (st.is(MDB_NOTFOUND))
        return false;
    StateCounts delta{};
    HeadFix fix;
    if (st.ok())
        st = erase_message(txn, id, delta, fix);
    if (st.ok())
        st = settle_heads(txn, fix);
    if (st.ok())
        st = txn.commit();
    if (!st.ok()) {
        error = fail(fmt::format("remove {}", format_queue_id(id)), st);
        return false;
    }
    add_counts(delta);
    return true;
}

std::string Store::Impl::update_recipient(QueueId id, std::uint32_t index, Recipient rcpt) {
    if (is_pending(rcpt.state) && rcpt.next_attempt_ms == 0)
        rcpt.next_attempt_ms = now_ms();
    if (core::address_domain(rcpt.spec.address).size() > kMaxDomain)
        return fmt::format("recipient domain longer than {} octets", kMaxDomain);
    const auto what = fmt::format("update {}#{}", format_queue_id(id), index);
    lmdb::Txn txn;
    if (auto st = lmdb::Txn::begin(env_.get(), 0, txn); !st.ok())
        return fail(what, st);
    std::string_view stored;
    if (auto st = txn.get(db_.recipients, recipient_key(id, index), stored); !st.ok())
        return st.is(MDB_NOTFOUND)
                   ? fmt::format("queue id {} has no recipient {}", format_queue_id(id), index)
                   : fail(what, st);
    const auto old = decode_recipient(stored);
    if (!old)
        return fmt::format("queue id {} recipient {} is corrupt", format_queue_id(id), index);
    std::vector<Put> rows;
    add_rows(rows, id, index, rcpt);
    HeadFix fix;
    auto st = drop_indexes(txn, id, index, *old, fix);
    if (st.ok())
        st = put_rows(txn, rows, fix);
    if (st.ok())
        st = settle_heads(txn, fix);
    if (st.ok())
        st = txn.commit();
    if (!st.ok())
        return fail(what, st);
    StateCounts delta{};
    --delta[static_cast<std::size_t>(old->state)];
    ++delta[static_cast<std::size_t>(rcpt.state)];
    add_counts(delta);
    return {};
}

// ---- Store ------------------------------------------------------------------

std::unique_ptr<Store> Store::open(const StoreConfig& config, std::string& error) {
    auto impl = std::make_unique<Impl>(config);
    if (auto e = impl->open(); !e.empty()) {
        error = std::move(e);
        return nullptr;
    }
    impl->start();
    return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
// Drains in the destructor's body, while the Store is still whole, so a
// `done` that calls commit() during the drain gets ShuttingDown, not a
// half-destroyed object.
Store::~Store() {
    impl_->shutdown();
}

QueueId Store::next_id() {
    return impl_->next_id();
}

void Store::commit(Message message, std::string content, std::function<void(CommitResult)> done) {
    impl_->commit(std::move(message), std::move(content), std::move(done));
}

std::optional<Message> Store::load(QueueId id) const {
    return impl_->load(id);
}

std::optional<std::string> Store::load_content(QueueId id) const {
    return impl_->load_content(id);
}

std::vector<Message> Store::list(const ListFilter& filter) const {
    return impl_->list(filter);
}

QueueSummary Store::summary() const {
    return impl_->summary();
}

bool Store::remove(QueueId id, std::string& error) {
    return impl_->remove(id, error);
}

std::map<RecipientState, std::uint64_t> Store::counts() const {
    return impl_->counts();
}

std::vector<DueRecipient> Store::due(std::int64_t now_ms, std::size_t limit) const {
    return impl_->due(now_ms, limit, nullptr);
}

std::vector<DueRecipient> Store::due(std::int64_t now_ms, std::size_t limit,
                                     const std::function<bool(const DueRecipient&)>& skip) const {
    return impl_->due(now_ms, limit, skip ? &skip : nullptr);
}

std::optional<std::int64_t> Store::next_due_after(std::int64_t now_ms) const {
    return impl_->next_due_after(now_ms);
}

void Store::visit_due(std::int64_t now_ms, const DueVisitor& visitor) const {
    impl_->visit_due(now_ms, visitor);
}

std::vector<DueRecipient> Store::throttled() const {
    return impl_->throttled();
}

std::vector<QueueId>
Store::find_messages(const std::function<bool(const std::vector<Recipient>&)>& match) const {
    return impl_->find_messages(match);
}

void Store::update_recipients(QueueId id, std::vector<RecipientUpdate> updates,
                              bool remove_if_final, std::function<void(UpdateResult)> done) {
    impl_->update_recipients(id, std::move(updates), remove_if_final, std::move(done));
}

std::string Store::update_recipient(QueueId id, std::uint32_t index, const Recipient& recipient) {
    return impl_->update_recipient(id, index, recipient);
}

// ---- key-value tables ----

bool Store::Impl::known_table(TableId t) const {
    const std::lock_guard lock(tables_mu_);
    for (const auto& [name, dbi] : tables_) {
        if (dbi == t)
            return true;
    }
    return false;
}

std::optional<Store::TableId> Store::Impl::open_table(const std::string& name, std::string& error) {
    if (name.empty() || name.size() > 64 || name.find(':') != std::string::npos) {
        error = "table name must be 1..64 characters without ':'";
        return std::nullopt;
    }
    const std::lock_guard lock(tables_mu_);
    if (const auto it = tables_.find(name); it != tables_.end())
        return it->second;
    // A write transaction of its own: mdb_txn_begin waits for the committer's.
    lmdb::Txn txn;
    lmdb::Dbi dbi = 0;
    const std::string db_name = "kv:" + name;
    auto st = lmdb::Txn::begin(env_.get(), 0, txn);
    if (st.ok())
        st = txn.open_dbi(db_name.c_str(), MDB_CREATE, dbi);
    if (st.ok())
        st = txn.commit();
    if (!st.ok()) {
        error = fmt::format("queue: cannot open table {}: {}", name, st.message());
        return std::nullopt;
    }
    tables_.emplace(name, dbi);
    return dbi;
}

std::optional<std::string> Store::Impl::kv_get(TableId table, std::string_view key) const {
    if (!known_table(table) || key.empty() || key.size() > kMaxKvKey)
        return std::nullopt;
    lmdb::Txn txn;
    if (!lmdb::Txn::begin(env_.get(), MDB_RDONLY, txn).ok())
        return std::nullopt;
    std::string_view value;
    if (!txn.get(table, key, value).ok())
        return std::nullopt;
    return std::string(value);
}

void Store::Impl::kv_scan(
    TableId table, std::string_view prefix, std::string_view from,
    const std::function<bool(std::string_view, std::string_view)>& visit) const {
    if (!known_table(table))
        return;
    lmdb::Txn txn;
    if (!lmdb::Txn::begin(env_.get(), MDB_RDONLY, txn).ok())
        return;
    lmdb::Cursor cursor;
    if (!lmdb::Cursor::open(txn, table, cursor).ok())
        return;
    const std::string start =
        from.empty() || from < prefix ? std::string(prefix) : std::string(from);
    std::string_view key;
    std::string_view value;
    auto st = start.empty() ? cursor.get(MDB_FIRST, key, value) : cursor.seek(start, key, value);
    while (st.ok() && key.starts_with(prefix)) {
        if (!visit(key, value))
            return;
        st = cursor.get(MDB_NEXT, key, value);
    }
}

std::uint64_t Store::Impl::kv_count(TableId table) const {
    if (!known_table(table))
        return 0;
    lmdb::Txn txn;
    if (!lmdb::Txn::begin(env_.get(), MDB_RDONLY, txn).ok())
        return 0;
    std::size_t n = 0;
    return txn.entries(table, n).ok() ? n : 0;
}

void Store::Impl::kv_write(std::vector<KvWrite> writes, std::function<void(CommitResult)> done) {
    Request r;
    r.is_kv = true;
    r.done = std::move(done);
    for (const auto& w : writes) {
        if (!known_table(w.table) || w.key.empty() || w.key.size() > kMaxKvKey) {
            r.rejected = rejected("key-value write to an unknown table or with a bad key");
            break;
        }
    }
    r.kv = std::move(writes);
    enqueue(std::move(r));
}

std::optional<Store::TableId> Store::open_table(const std::string& name, std::string& error) {
    return impl_->open_table(name, error);
}

std::optional<std::string> Store::kv_get(TableId table, std::string_view key) const {
    return impl_->kv_get(table, key);
}

void Store::kv_scan(TableId table, std::string_view prefix, std::string_view from,
                    const std::function<bool(std::string_view, std::string_view)>& visit) const {
    impl_->kv_scan(table, prefix, from, visit);
}

std::uint64_t Store::kv_count(TableId table) const {
    return impl_->kv_count(table);
}

void Store::kv_write(std::vector<KvWrite> writes, std::function<void(CommitResult)> done) {
    impl_->kv_write(std::move(writes), std::move(done));
}

} // namespace ember::queue
