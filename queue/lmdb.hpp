#pragma once
// RAII over liblmdb, for queue/store.cpp only: the one place outside lmdb.cpp
// that sees <lmdb.h>. An environment is a unique_ptr that closes it; a Txn
// aborts in its destructor unless committed; a Cursor closes itself.
// Errors are values (Status holds the LMDB or errno code), never exceptions.
//
// Rules LMDB imposes and these wrappers do not hide:
//   - a write Txn belongs to the thread that began it; read Txns may move
//     between threads because the environment is opened with MDB_NOTLS;
//   - destroy a Cursor before its Txn ends (LMDB frees write-txn cursors at
//     commit/abort, so closing one afterwards would be a double free);
//   - views returned by get() and Cursor::get() point into the map and are
//     valid only until the Txn ends or writes to that database.

#include <lmdb.h>

#include <memory>
#include <string>
#include <string_view>

namespace ember::queue::lmdb {

// An LMDB return code: MDB_SUCCESS, an MDB_* error or an errno value.
struct [[nodiscard]] Status {
    int code = MDB_SUCCESS;
    [[nodiscard]] bool ok() const { return code == MDB_SUCCESS; }
    [[nodiscard]] bool is(int c) const { return code == c; }
    [[nodiscard]] std::string message() const; // mdb_strerror(), errno text included
};

struct EnvDeleter {
    void operator()(MDB_env* env) const noexcept;
};
using Env = std::unique_ptr<MDB_env, EnvDeleter>;
Status create_env(Env& out);

using Dbi = MDB_dbi;

[[nodiscard]] inline MDB_val to_val(std::string_view s) {
    // LMDB never writes through a key or data pointer passed to it.
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
[[nodiscard]] inline std::string_view to_view(const MDB_val& v) {
    return {static_cast<const char*>(v.mv_data), v.mv_size};
}

class Txn {
public:
    Txn() = default;
    Txn(Txn&& other) noexcept : txn_(other.txn_) { other.txn_ = nullptr; }
    Txn& operator=(Txn&& other) noexcept;
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    ~Txn() { abort(); }

    // flags: 0 for a write transaction, MDB_RDONLY for a read one.
    static Status begin(MDB_env* env, unsigned flags, Txn& out);
    // Ends the transaction either way (LMDB frees it even when commit fails).
    Status commit();
    void abort() noexcept;

    [[nodiscard]] MDB_txn* get() const { return txn_; }
    Status open_dbi(const char* name, unsigned flags, Dbi& out);
    Status get(Dbi dbi, std::string_view key, std::string_view& value) const;
    Status put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
    // MDB_NOTFOUND when the key is absent.
    Status del(Dbi dbi, std::string_view key);
    Status entries(Dbi dbi, std::size_t& out) const;

private:
    MDB_txn* txn_ = nullptr;
};

class Cursor {
public:
    static Status open(const Txn& txn, Dbi dbi, Cursor& out);
    // MDB_FIRST, MDB_NEXT, MDB_LAST, ...; MDB_NOTFOUND past either end.
    Status get(MDB_cursor_op op, std::string_view& key, std::string_view& value);
    // The first key >= `key` (MDB_SET_RANGE).
    Status seek(std::string_view key, std::string_view& found, std::string_view& value);

private:
    struct Deleter {
        void operator()(MDB_cursor* c) const noexcept { mdb_cursor_close(c); }
    };
    std::unique_ptr<MDB_cursor, Deleter> cursor_;
};

} // namespace ember::queue::lmdb
