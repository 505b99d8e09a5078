#include "queue/lmdb.hpp"

#include <cerrno>

namespace ember::queue::lmdb {

std::string Status::message() const {
    return mdb_strerror(code);
}

void EnvDeleter::operator()(MDB_env* env) const noexcept {
    mdb_env_close(env);
}

Status create_env(Env& out) {
    MDB_env* env = nullptr;
    const int rc = mdb_env_create(&env);
    if (rc == MDB_SUCCESS)
        out.reset(env);
    return Status{rc};
}

Txn& Txn::operator=(Txn&& other) noexcept {
    if (this != &other) {
        abort();
        txn_ = other.txn_;
        other.txn_ = nullptr;
    }
    return *this;
}

Status Txn::begin(MDB_env* env, unsigned flags, Txn& out) {
    MDB_txn* txn = nullptr;
    const int rc = mdb_txn_begin(env, nullptr, flags, &txn);
    if (rc == MDB_SUCCESS) {
        out.abort();
        out.txn_ = txn;
    }
    return Status{rc};
}

Status Txn::commit() {
    MDB_txn* txn = txn_;
    txn_ = nullptr;
    return Status{txn == nullptr ? EINVAL : mdb_txn_commit(txn)};
}

void Txn::abort() noexcept {
    if (txn_ != nullptr)
        mdb_txn_abort(txn_);
    txn_ = nullptr;
}

Status Txn::open_dbi(const char* name, unsigned flags, Dbi& out) {
    return Status{mdb_dbi_open(txn_, name, flags, &out)};
}

Status Txn::get(Dbi dbi, std::string_view key, std::string_view& value) const {
    MDB_val k = to_val(key);
    MDB_val v{};
    const int rc = mdb_get(txn_, dbi, &k, &v);
    if (rc == MDB_SUCCESS)
        value = to_view(v);
    return Status{rc};
}

Status Txn::put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    return Status{mdb_put(txn_, dbi, &k, &v, flags)};
}

Status Txn::del(Dbi dbi, std::string_view key) {
    MDB_val k = to_val(key);
    return Status{mdb_del(txn_, dbi, &k, nullptr)};
}

Status Txn::entries(Dbi dbi, std::size_t& out) const {
    MDB_stat st{};
    const int rc = mdb_stat(txn_, dbi, &st);
    if (rc == MDB_SUCCESS)
        out = st.ms_entries;
    return Status{rc};
}

Status Cursor::open(const Txn& txn, Dbi dbi, Cursor& out) {
    MDB_cursor* c = nullptr;
    const int rc = mdb_cursor_open(txn.get(), dbi, &c);
    if (rc == MDB_SUCCESS)
        out.cursor_.reset(c);
    return Status{rc};
}

Status Cursor::get(MDB_cursor_op op, std::string_view& key, std::string_view& value) {
    MDB_val k{};
    MDB_val v{};
    const int rc = mdb_cursor_get(cursor_.get(), &k, &v, op);
    if (rc == MDB_SUCCESS) {
        key = to_view(k);
        value = to_view(v);
    }
    return Status{rc};
}

Status Cursor::seek(std::string_view key, std::string_view& found, std::string_view& value) {
    MDB_val k = to_val(key);
    MDB_val v{};
    const int rc = mdb_cursor_get(cursor_.get(), &k, &v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS) {
        found = to_view(k);
        value = to_view(v);
    }
    return Status{rc};
}

} // namespace ember::queue::lmdb
