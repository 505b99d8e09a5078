#include "feedback/suppression.hpp"

#include "core/log.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace ember::feedback {

using queue::CommitResult;
using queue::CommitStatus;
using queue::Store;

namespace {

constexpr std::size_t kMaxAddressSize = 254; // RFC 5321 4.5.3.1.3 path minus the brackets
constexpr std::size_t kMaxDomainSize = 253;

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool domain_char(unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c >= 0x80;
}

// ---- Record encoding ----

std::string entry_key(std::string_view address, std::string_view scope) {
    std::string key(address);
    key.push_back('\0');
    key.append(scope);
    return key;
}

std::string entry_value(const SuppressionEntry& e) {
    return "1\t" + std::string(suppression_reason_name(e.reason)) + "\t" +
           std::to_string(e.time_ms) + "\t" + e.source;
}

// An unreadable value still suppresses: the key says the address is listed.
SuppressionEntry decode_entry(std::string_view key, std::string_view value) {
    SuppressionEntry e;
    const auto nul = key.find('\0');
    e.address = std::string(key.substr(0, nul));
    e.scope = nul == std::string_view::npos ? "" : std::string(key.substr(nul + 1));
    std::string_view fields[3];
    std::string_view rest = value;
    bool ok = true;
    for (auto& field : fields) {
        const auto tab = rest.find('\t');
        ok = ok && tab != std::string_view::npos;
        field = rest.substr(0, tab);
        rest = ok ? rest.substr(tab + 1) : std::string_view{};
    }
    const auto reason = ok && fields[0] == "1" ? parse_suppression_reason(fields[1]) : std::nullopt;
    std::int64_t time_ms = 0;
    const auto [end, ec] =
        std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), time_ms);
    if (!reason || ec != std::errc() || end != fields[2].data() + fields[2].size()) {
        ember::core::log::warning("suppression.unreadable_record", "address={} scope={}",
                                  ember::core::log::q(e.address), ember::core::log::q(e.scope));
        e.reason = SuppressionReason::Manual;
        e.source = "unreadable record";
        return e;
    }
    e.reason = *reason;
    e.time_ms = time_ms;
    e.source = std::string(rest);
    return e;
}

std::string encode_history(const SoftBounceHistory& history) {
    std::string out;
    for (const auto t : history.failures_ms) {
        if (!out.empty())
            out.push_back(',');
        out += std::to_string(t);
    }
    return out;
}

// A broken record reads as no streak: the next failure starts a new one.
SoftBounceHistory decode_history(std::string_view text) {
    SoftBounceHistory history;
    while (!text.empty()) {
        const auto comma = text.find(',');
        const auto item = text.substr(0, comma);
        std::int64_t t = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), t);
        if (ec != std::errc() || end != item.data() + item.size())
            return {};
        history.failures_ms.push_back(t);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    }
    return history;
}

WriteResult from_commit(const CommitResult& r, std::size_t written) {
    if (r.status == CommitStatus::Ok)
        return {WriteStatus::Ok, "", written, false, 0};
    return {WriteStatus::StoreFailed, r.detail.empty() ? "commit failed" : r.detail, 0, false, 0};
}

WriteResult invalid(std::string detail) {
    return {WriteStatus::Invalid, std::move(detail), 0, false, 0};
}

void finish(const WriteDone& done, WriteResult result) {
    if (done)
        done(std::move(result));
}

// Chunk after chunk, the next queued from the committer thread when the
// previous one committed: kv_write() only enqueues, so this never waits on
// the committer from inside it. No `this`: the list may be gone by then.
void write_chunks(Store& store, std::shared_ptr<std::vector<Store::KvWrite>> writes,
                  std::size_t from, std::size_t written, WriteDone done) {
    if (from >= writes->size())
        return finish(done, {WriteStatus::Ok, "", written, false, 0});
    const auto to = std::min(writes->size(), from + SuppressionList::kImportChunk);
    std::vector<Store::KvWrite> chunk(std::make_move_iterator(writes->begin() + from),
                                      std::make_move_iterator(writes->begin() + to));
    auto next = [&store, writes, to, before = written, after = written + (to - from),
                 done = std::move(done)](CommitResult r) mutable {
        if (r.status != CommitStatus::Ok) {
            auto result = from_commit(r, 0);
            result.written = before;
            return finish(done, std::move(result));
        }
        write_chunks(store, std::move(writes), to, after, std::move(done));
    };
    store.kv_write(std::move(chunk), std::move(next));
}

// Cursor: "address scope" of the last entry of a page; addresses and scopes
// hold no spaces (normalize_address/normalize_scope), so the split is exact.
std::string make_cursor(const SuppressionEntry& e) {
    return e.address + " " + e.scope;
}

std::string scan_start(std::string_view cursor) {
    if (cursor.empty())
        return {};
    const auto space = cursor.find(' ');
    auto key = entry_key(cursor.substr(0, space),
                         space == std::string_view::npos ? "" : cursor.substr(space + 1));
    key.push_back('\0'); // the smallest key after the cursor's
    return key;
}

bool matches(const SuppressionEntry& e, const SuppressionQuery& q,
             const std::optional<std::string>& scope) {
    return (!q.reason || e.reason == *q.reason) && (!scope || e.scope == *scope);
}

} // namespace

// ---- Names and normalization ----

std::string_view suppression_reason_name(SuppressionReason reason) {
    switch (reason) {
    case SuppressionReason::HardBounce:
        return "hard-bounce";
    case SuppressionReason::Complaint:
        return "complaint";
    case SuppressionReason::Unsubscribe:
        return "unsubscribe";
    case SuppressionReason::Manual:
        return "manual";
    case SuppressionReason::SoftBounce:
        return "soft-bounce";
    }
    return "manual";
}

std::optional<SuppressionReason> parse_suppression_reason(std::string_view name) {
    auto text = ascii_lower(trim(name));
    std::replace(text.begin(), text.end(), '_', '-');
    if (text == "bounce")
        return SuppressionReason::HardBounce;
    for (const auto r : {SuppressionReason::HardBounce, SuppressionReason::Complaint,
                         SuppressionReason::Unsubscribe, SuppressionReason::Manual,
                         SuppressionReason::SoftBounce}) {
        if (text == suppression_reason_name(r))
            return r;
    }
    return std::nullopt;
}

std::optional<std::string> normalize_address(std::string_view address) {
    auto text = trim(address);
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>')
        text = trim(text.substr(1, text.size() - 2));
    const auto at = text.rfind('@');
    if (at == std::string_view::npos || at == 0 || text.size() > kMaxAddressSize)
        return std::nullopt;
    auto domain = text.substr(at + 1);
    while (!domain.empty() && domain.back() == '.')
        domain.remove_suffix(1);
    if (domain.empty())
        return std::nullopt;
    const bool clean = std::none_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
    });
    if (!clean)
        return std::nullopt;
    return ascii_lower(text.substr(0, at + 1)) + ascii_lower(domain);
}

std::optional<std::string> normalize_scope(std::string_view domain) {
    auto text = ascii_lower(trim(domain));
    if (text.empty() || text == "*" || text == "global")
        return std::string();
    while (!text.empty() && text.back() == '.')
        text.pop_back();
    const bool valid = !text.empty() && text.size() <= kMaxDomainSize && text.front() != '.' &&
                       text.find("..") == std::string::npos &&
                       std::all_of(text.begin(), text.end(), [](char c) {
                           return domain_char(static_cast<unsigned char>(c));
                       });
    if (!valid)
        return std::nullopt;
    return text;
}

std::string scope_for(SuppressionReason reason, std::string_view sending_domain,
                      const SuppressionConfig& config) {
    bool per_domain = false;
    switch (reason) {
    case SuppressionReason::HardBounce:
    case SuppressionReason::SoftBounce:
        per_domain = false;
        break;
    case SuppressionReason::Complaint:
        per_domain = config.complaint_scope == SuppressionScope::Domain;
        break;
    case SuppressionReason::Unsubscribe:
        per_domain = config.unsubscribe_scope == SuppressionScope::Domain;
        break;
    case SuppressionReason::Manual:
        per_domain = true;
        break;
    }
    if (!per_domain)
        return "";
    // A sending domain that is not a domain suppresses everywhere: not
    // sending is the safe side.
    return normalize_scope(sending_domain).value_or("");
}

std::string clean_source(std::string_view text) {
    std::string out(text.substr(0, std::min(text.size(), kMaxSourceSize)));
    if (text.size() > kMaxSourceSize) {
        // Do not cut a UTF-8 sequence in half: drop its continuation bytes
        // and its lead byte.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80)
            out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0)
            out.pop_back();
    }
    for (auto& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f)
            c = ' ';
    }
    return out;
}

// ---- Soft-bounce policy ----

SoftBounceStep soft_bounce_step(SoftBounceHistory history, std::int64_t now_ms,
                                const SuppressionConfig& config) {
    if (config.soft_bounce_limit == 0)
        return {};
    const auto window = config.soft_bounce_window.count();
    auto& times = history.failures_ms;
    std::erase_if(times, [&](std::int64_t t) { return t < now_ms - window; });
    times.push_back(now_ms);
    if (times.size() >= std::min(config.soft_bounce_limit, kMaxSoftBounceLimit))
        return {{}, true};
    return {std::move(history), false};
}

// ---- SuppressionList ----

struct SuppressionList::Pending {
    // Recursive: a Store that is shutting down answers kv_write() on the
    // calling thread, inside record_soft_failure()'s critical section.
    std::recursive_mutex mu;
    struct Item {
        SoftBounceHistory history;
        std::uint64_t generation = 0;
    };
    std::map<std::string, Item> items;
    std::uint64_t generation = 0;
};

SuppressionList::SuppressionList(Store& store, SuppressionConfig config, Store::TableId entries,
                                 Store::TableId soft)
    : store_(store), config_(config), entries_(entries), soft_(soft),
      pending_(std::make_shared<Pending>()) {}

std::unique_ptr<SuppressionList> SuppressionList::open(Store& store, SuppressionConfig config,
                                                       std::string& error) {
    const auto entries = store.open_table("suppression", error);
    if (!entries)
        return nullptr;
    const auto soft = store.open_table("soft_bounces", error);
    if (!soft)
        return nullptr;
    return std::unique_ptr<SuppressionList>(new SuppressionList(store, config, *entries, *soft));
}

void SuppressionList::add(SuppressionEntry entry, WriteDone done) {
    std::vector<SuppressionEntry> one;
    one.push_back(std::move(entry));
    add_all(std::move(one), std::move(done));
}

void SuppressionList::add_all(std::vector<SuppressionEntry> entries, WriteDone done) {
    auto writes = std::make_shared<std::vector<Store::KvWrite>>();
    writes->reserve(entries.size());
    for (auto& e : entries) {
        const auto address = normalize_address(e.address);
        const auto scope = normalize_scope(e.scope);
        if (!address)
            return finish(done, invalid("not an address: " + e.address));
        if (!scope)
            return finish(done, invalid("not a domain: " + e.scope));
        e.address = *address;
        e.scope = *scope;
        e.source = clean_source(e.source);
        writes->push_back({entries_, entry_key(e.address, e.scope), entry_value(e)});
    }
    write_chunks(store_, std::move(writes), 0, 0, std::move(done));
}

void SuppressionList::remove(std::string_view address, std::string_view scope, WriteDone done) {
    const auto addr = normalize_address(address);
    const auto dom = normalize_scope(scope);
    if (!addr || !dom)
        return finish(done, invalid(!addr ? "not an address" : "not a domain"));
    std::vector<Store::KvWrite> writes{{entries_, entry_key(*addr, *dom), std::nullopt}};
    if (!dom->empty()) {
        store_.kv_write(std::move(writes), [done = std::move(done)](CommitResult r) {
            finish(done, from_commit(r, 1));
        });
        return;
    }
    const std::lock_guard lock(pending_->mu);
    writes.push_back({soft_, *addr, std::nullopt});
    write_soft(*addr, std::move(writes), SoftBounceHistory{}, {WriteStatus::Ok, "", 1, false, 0},
               std::move(done));
}

void SuppressionList::remove_everywhere(std::string_view address, WriteDone done) {
    const auto addr = normalize_address(address);
    if (!addr)
        return finish(done, invalid("not an address"));
    std::vector<Store::KvWrite> writes;
    store_.kv_scan(entries_, *addr + std::string(1, '\0'), {},
                   [&](std::string_view key, std::string_view) {
                       writes.push_back({entries_, std::string(key), std::nullopt});
                       return true;
                   });
    const auto n = writes.size();
    const std::lock_guard lock(pending_->mu);
    writes.push_back({soft_, *addr, std::nullopt});
    write_soft(*addr, std::move(writes), SoftBounceHistory{}, {WriteStatus::Ok, "", n, false, 0},
               std::move(done));
}

std::optional<SuppressionEntry> SuppressionList::check(std::string_view address,
                                                       std::string_view sending_domain) const {
    const auto addr = normalize_address(address);
    if (!addr)
        return std::nullopt;
    const auto global_key = entry_key(*addr, "");
    if (const auto v = store_.kv_get(entries_, global_key))
        return decode_entry(global_key, *v);
    const auto dom = normalize_scope(sending_domain);
    if (!dom || dom->empty())
        return std::nullopt;
    const auto key = entry_key(*addr, *dom);
    if (const auto v = store_.kv_get(entries_, key))
        return decode_entry(key, *v);
    return std::nullopt;
}

std::vector<SuppressionEntry> SuppressionList::entries_for(std::string_view address) const {
    std::vector<SuppressionEntry> out;
    const auto addr = normalize_address(address);
    if (!addr)
        return out;
    store_.kv_scan(entries_, *addr + std::string(1, '\0'), {},
                   [&](std::string_view key, std::string_view value) {
                       out.push_back(decode_entry(key, value));
                       return true;
                   });
    return out;
}

SuppressionPage SuppressionList::list(const SuppressionQuery& query) const {
    SuppressionPage page;
    const auto limit = std::clamp<std::size_t>(query.limit, 1, kMaxPageSize);
    const auto scope = query.scope ? normalize_scope(*query.scope) : std::nullopt;
    if (query.scope && !scope)
        return page; // a scope that is not a domain matches nothing
    store_.kv_scan(entries_, {}, scan_start(query.cursor),
                   [&](std::string_view key, std::string_view value) {
                       auto e = decode_entry(key, value);
                       if (!matches(e, query, scope))
                           return true;
                       if (page.entries.size() == limit) {
                           page.next_cursor = make_cursor(page.entries.back());
                           return false;
                       }
                       page.entries.push_back(std::move(e));
                       return true;
                   });
    return page;
}

void SuppressionList::export_csv(const SuppressionQuery& query,
                                 const std::function<void(std::string_view)>& write) const {
    write(std::string(kCsvHeader) + "\n");
    const auto scope = query.scope ? normalize_scope(*query.scope) : std::nullopt;
    if (query.scope && !scope)
        return;
    store_.kv_scan(entries_, {}, {}, [&](std::string_view key, std::string_view value) {
        const auto e = decode_entry(key, value);
        if (matches(e, query, scope))
            write(csv_line(e) + "\n");
        return true;
    });
}

std::map<SuppressionReason, std::uint64_t> SuppressionList::count_by_reason() const {
    std::map<SuppressionReason, std::uint64_t> counts;
    for (const auto r :
         {SuppressionReason::HardBounce, SuppressionReason::Complaint,
          SuppressionReason::Unsubscribe, SuppressionReason::Manual, SuppressionReason::SoftBounce})
        counts[r] = 0;
    store_.kv_scan(entries_, {}, {}, [&](std::string_view key, std::string_view value) {
        ++counts[decode_entry(key, value).reason];
        return true;
    });
    return counts;
}

std::uint64_t SuppressionList::size() const {
    return store_.kv_count(entries_);
}

// ---- Soft bounces ----

SoftBounceHistory SuppressionList::pending_or_stored(const std::string& address) const {
    if (const auto it = pending_->items.find(address); it != pending_->items.end())
        return it->second.history;
    const auto stored = store_.kv_get(soft_, address);
    return stored ? decode_history(*stored) : SoftBounceHistory{};
}

SoftBounceHistory SuppressionList::soft_history(std::string_view address) const {
    const auto addr = normalize_address(address);
    if (!addr)
        return {};
    const std::lock_guard lock(pending_->mu);
    return pending_or_stored(*addr);
}

// Caller holds pending_->mu: the read that computed `history` and this
// enqueue are one step, so concurrent updates of one address are written
// in the order they were computed.
void SuppressionList::write_soft(const std::string& address, std::vector<Store::KvWrite> writes,
                                 SoftBounceHistory history, WriteResult result, WriteDone done) {
    const auto generation = ++pending_->generation;
    pending_->items[address] = {std::move(history), generation};
    store_.kv_write(std::move(writes), [pending = pending_, address, generation,
                                        result = std::move(result),
                                        done = std::move(done)](CommitResult r) mutable {
        {
            const std::lock_guard lock(pending->mu);
            const auto it = pending->items.find(address);
            if (it != pending->items.end() && it->second.generation == generation)
                pending->items.erase(it); // committed (or failed): the store is the truth again
        }
        if (r.status != CommitStatus::Ok)
            result = from_commit(r, 0);
        finish(done, std::move(result));
    });
}

void SuppressionList::record_soft_failure(std::string_view address, std::int64_t now_ms,
                                          std::string source, WriteDone done) {
    const auto addr = normalize_address(address);
    if (!addr)
        return finish(done, invalid("not an address"));
    const std::lock_guard lock(pending_->mu);
    auto step = soft_bounce_step(pending_or_stored(*addr), now_ms, config_);
    WriteResult result{WriteStatus::Ok, "", 0, false,
                       static_cast<std::uint32_t>(step.history.failures_ms.size())};
    std::vector<Store::KvWrite> writes;
    if (step.suppress) {
        result.failures = std::min(config_.soft_bounce_limit, kMaxSoftBounceLimit);
        writes.push_back({soft_, *addr, std::nullopt});
        if (!store_.kv_get(entries_, entry_key(*addr, ""))) {
            SuppressionEntry e{*addr, "", SuppressionReason::SoftBounce, now_ms,
                               clean_source(source)};
            writes.push_back({entries_, entry_key(e.address, e.scope), entry_value(e)});
            result.suppressed = true;
            result.written = 1;
        }
    } else {
        writes.push_back({soft_, *addr, encode_history(step.history)});
    }
    write_soft(*addr, std::move(writes), std::move(step.history), std::move(result),
               std::move(done));
}

void SuppressionList::record_delivery(std::string_view address, WriteDone done) {
    const auto addr = normalize_address(address);
    if (!addr)
        return finish(done, invalid("not an address"));
    const std::lock_guard lock(pending_->mu);
    if (pending_or_stored(*addr).failures_ms.empty())
        return finish(done, {});
    write_soft(*addr, {{soft_, *addr, std::nullopt}}, SoftBounceHistory{}, {}, std::move(done));
}

} // namespace ember::feedback
