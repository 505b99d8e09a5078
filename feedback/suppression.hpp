#pragma once
// The suppression list: addresses ember must not mail, kept in two
// key-value tables of the queue's LMDB environment (queue::Store):
//
//   suppression   address \0 scope -> "1\treason\ttime_ms\tsource"
//   soft_bounces  address          -> "t1,t2,..." (unix ms of the current
//                                     streak of soft failures, oldest first)
//
// scope is "" for the global entry or one sending domain. check() is two
// point reads (global, then the sending domain), synchronous: LMDB reads
// are cheap and take no lock. Writes go through the Store's group
// committer; their `done` runs once on the committer thread after the
// fsynced commit (or at once, on the caller's thread, for input refused
// before any write and for writes that turn out unnecessary). `done` must
// not block (queue/store.hpp). All methods are thread-safe.
//
// Addresses are compared case-insensitively: the whole address is
// lower-cased (ASCII), although RFC 5321 2.4 lets a local part be case
// sensitive. Mailbox providers do not distinguish case, the hosted
// services (SES, SendGrid, Mailgun) match suppressions the same way, and
// the mistake this can make is to suppress "Bob@x" along with "bob@x" -- not
// sending is the safe side. Non-ASCII (RFC 6531) octets are kept as they
// are.
//
// A later add() of the same address and scope replaces the entry (the
// latest event wins, as in the hosted services); entries never expire on
// their own. Policy parts (the soft-bounce streak) take `now` as a value.
// Does not: decide which events suppress (the daemon does, with
// scope_for()), send anything, or talk to Redis.

#include "core/diagnostics.hpp"
#include "core/units.hpp"
#include "queue/store.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

enum class SuppressionReason : std::uint8_t {
    HardBounce,
    Complaint,
    Unsubscribe,
    Manual,
    SoftBounce
};

// "hard-bounce", "complaint", "unsubscribe", "manual", "soft-bounce".
[[nodiscard]] std::string_view suppression_reason_name(SuppressionReason reason);
// Those names, case-insensitive, '_' for '-', and "bounce" for hard-bounce
// (what SES and SendGrid exports call it).
[[nodiscard]] std::optional<SuppressionReason> parse_suppression_reason(std::string_view name);

// Whether complaints and unsubscribes suppress for the sending domain they
// concerned (what the recipient asked for) or for every domain.
enum class SuppressionScope : std::uint8_t { Domain, Global };

struct SuppressionConfig {
    // The Nth soft failure within the window (with no delivery in between)
    // suppresses the address globally. 0: soft failures never suppress.
    std::uint32_t soft_bounce_limit = 5;
    core::Duration soft_bounce_window = std::chrono::hours(24 * 7);
    SuppressionScope complaint_scope = SuppressionScope::Domain;
    SuppressionScope unsubscribe_scope = SuppressionScope::Domain;
};
inline constexpr std::uint32_t kMaxSoftBounceLimit = 100;

struct SuppressionEntry {
    std::string address; // normalized
    std::string scope;   // "" global, else the sending domain (lower case)
    SuppressionReason reason = SuppressionReason::Manual;
    std::int64_t time_ms = 0; // unix ms of the event
    // What caused it, one line: "550 5.1.1 user unknown (queue 0K...)",
    // "complaint abuse via arf", "emberctl by root". Control characters
    // become spaces; cut at kMaxSourceSize octets.
    std::string source;
    friend bool operator==(const SuppressionEntry&, const SuppressionEntry&) = default;
};
inline constexpr std::size_t kMaxSourceSize = 1000;

// Trimmed, angle brackets dropped, lower-cased. nullopt when it is not an
// address ember could have mailed: empty local part or domain, no '@',
// over 254 octets (RFC 5321 4.5.3.1.3), or holding a space, a control
// character or NUL (quoted local parts with spaces are not supported).
[[nodiscard]] std::optional<std::string> normalize_address(std::string_view address);
// Lower-cased, trailing dot dropped; "" (global) for "", "*" and "global".
// nullopt when it is not a domain name (RFC 1035 letters, digits, '-',
// '_', '.'; U-labels allowed as octets >= 0x80).
[[nodiscard]] std::optional<std::string> normalize_scope(std::string_view domain);

// Where an event of `reason` for mail from `sending_domain` suppresses:
// bounces globally (the mailbox is gone for everyone), complaints and
// unsubscribes per the config, manual entries where the admin said
// (sending_domain as given).
[[nodiscard]] std::string scope_for(SuppressionReason reason, std::string_view sending_domain,
                                    const SuppressionConfig& config);

// One line of event text for SuppressionEntry::source: control characters
// become spaces, cut at kMaxSourceSize octets (not inside a UTF-8 sequence).
[[nodiscard]] std::string clean_source(std::string_view text);

// ---- The soft-bounce policy (pure) ----

struct SoftBounceHistory {
    std::vector<std::int64_t> failures_ms; // oldest first
    friend bool operator==(const SoftBounceHistory&, const SoftBounceHistory&) = default;
};

struct SoftBounceStep {
    SoftBounceHistory history; // to store; empty once it suppressed
    bool suppress = false;
};

// One more soft failure at now_ms: failures older than the window are
// forgotten, this one added; the limit-th one suppresses. A clock that
// went back is taken as is (the failure still counts).
[[nodiscard]] SoftBounceStep soft_bounce_step(SoftBounceHistory history, std::int64_t now_ms,
                                              const SuppressionConfig& config);

// ---- CSV ----

// "address,reason,scope,time,source"; time as RFC 3339 UTC with
// milliseconds, scope "global" or the domain, RFC 4180 quoting, LF line ends.
inline constexpr std::string_view kCsvHeader = "address,reason,scope,time,source";
[[nodiscard]] std::string csv_line(const SuppressionEntry& entry);

struct CsvImport {
    std::vector<SuppressionEntry> entries;
    core::Diagnostics errors; // "<name>:<line>: message", bad rows skipped
    std::size_t rows = 0;     // data rows read (good and bad)
};

// RFC 4180 with CRLF or LF. A first row naming columns (address or email,
// reason, scope, time, source; any order) is a header; without one the
// columns are in kCsvHeader order. Only address is required: reason
// defaults to manual, scope to global, time to now_ms, source to "import"
// when the row has no source field (an empty one stays empty).
// time is unix milliseconds, an RFC 3339 date-time, or a YYYY-MM-DD date.
[[nodiscard]] CsvImport parse_suppression_csv(std::string_view text, std::int64_t now_ms,
                                              const std::string& name = "import");

// ---- The list ----

enum class WriteStatus : std::uint8_t {
    Ok,
    Invalid,     // refused before writing: not an address, bad scope, key too long
    StoreFailed, // the commit failed (map or disk full, I/O error, shutting down)
};

struct WriteResult {
    WriteStatus status = WriteStatus::Ok;
    std::string detail;         // why, when not Ok
    std::size_t written = 0;    // entries written (add_all: how many of them)
    bool suppressed = false;    // record_soft_failure: this failure suppressed the address
    std::uint32_t failures = 0; // record_soft_failure: failures in the streak now
};
using WriteDone = std::function<void(WriteResult)>;

struct SuppressionQuery {
    std::optional<SuppressionReason> reason;
    std::optional<std::string> scope; // "" or "global": global entries only; a domain: its entries
    std::string cursor;               // from a previous page's next_cursor; "" for the first page
    std::size_t limit = 100;          // at most kMaxPageSize
};
inline constexpr std::size_t kMaxPageSize = 10000;

struct SuppressionPage {
    std::vector<SuppressionEntry> entries; // address order, then scope ("" first)
    std::string next_cursor;               // "" when this is the last page
};

class SuppressionList {
public:
    // Opens (creates) the two tables; nullptr and `error` set on failure.
    [[nodiscard]] static std::unique_ptr<SuppressionList>
    open(queue::Store& store, SuppressionConfig config, std::string& error);

    // Upserts one entry (address and scope normalized).
    void add(SuppressionEntry entry, WriteDone done);
    // Upserts many in chunks of kImportChunk per transaction (an import
    // does not hold one huge transaction); stops at the first failed chunk.
    // `written` counts what is durable.
    void add_all(std::vector<SuppressionEntry> entries, WriteDone done);
    // Removes the entry of that scope ("" global); Ok when it was absent too.
    // Removing the global entry also forgets the soft-bounce streak.
    void remove(std::string_view address, std::string_view scope, WriteDone done);
    // Removes every scope's entry and the soft-bounce streak.
    void remove_everywhere(std::string_view address, WriteDone done);

    // The global entry, else the sending domain's; nullopt when neither (or
    // the address is not valid). An unreadable record still suppresses
    // (reason manual, source "unreadable record").
    [[nodiscard]] std::optional<SuppressionEntry> check(std::string_view address,
                                                        std::string_view sending_domain) const;
    // Every scope's entry for the address.
    [[nodiscard]] std::vector<SuppressionEntry> entries_for(std::string_view address) const;

    [[nodiscard]] SuppressionPage list(const SuppressionQuery& query) const;
    // Header, then one csv_line per entry matching `query` (cursor and limit
    // ignored), each handed to `write` with its '\n'.
    void export_csv(const SuppressionQuery& query,
                    const std::function<void(std::string_view)>& write) const;
    // Every reason, zeros included. Reads the whole table: for metrics
    // scrapes and the admin tool, not the hot path.
    [[nodiscard]] std::map<SuppressionReason, std::uint64_t> count_by_reason() const;
    [[nodiscard]] std::uint64_t size() const;

    // A soft failure of mail to the address (call once per message that
    // finally failed with a soft reason, or per asynchronous soft bounce:
    // not per deferral, or one slow message would suppress its recipient).
    // The limit-th failure within the window suppresses globally (reason
    // soft-bounce, `source` kept) unless a global entry exists already.
    void record_soft_failure(std::string_view address, std::int64_t now_ms, std::string source,
                             WriteDone done);
    // A delivery ends the streak. Writes only when there is a streak.
    void record_delivery(std::string_view address, WriteDone done = {});
    [[nodiscard]] SoftBounceHistory soft_history(std::string_view address) const;

    static constexpr std::size_t kImportChunk = 5000;

private:
    SuppressionList(queue::Store& store, SuppressionConfig config, queue::Store::TableId entries,
                    queue::Store::TableId soft);
    // Both run with pending_->mu held.
    [[nodiscard]] SoftBounceHistory pending_or_stored(const std::string& address) const;
    void write_soft(const std::string& address, std::vector<queue::Store::KvWrite> writes,
                    SoftBounceHistory history, WriteResult result, WriteDone done);

    queue::Store& store_;
    SuppressionConfig config_;
    queue::Store::TableId entries_;
    queue::Store::TableId soft_;
    // Soft-bounce streaks written but not yet committed, so that two
    // failures recorded back to back count twice (read-modify-write over an
    // asynchronous commit). Shared with the completion callbacks, which may
    // run after this object is gone (the Store outlives it and drains).
    struct Pending;
    std::shared_ptr<Pending> pending_;
};

} // namespace ember::feedback
