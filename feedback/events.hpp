#pragma once
// Events: one record per state change of one recipient of one message
// (received, delivered, deferred, bounced, ...), their one-line JSON
// encoding, and the event log that appends those lines to a file.
//
// The JSON encoding is a PUBLIC CONTRACT: the event log, the webhook bodies
// (feedback/webhooks.hpp) and `emberctl warmup simulate --from-events` read
// it. Field names never change meaning and are never renamed; new fields may
// be added, so readers must ignore fields they do not know. One JSON object
// per line, UTF-8 (invalid octets from the network become U+FFFD), keys in
// the order below. Fields other than id, type and time are left out when
// unknown (empty string, 0, unset flag, empty list or object).
//
//   id              string  unique, opaque (32 hex digits). Webhook delivery is
//                           at least once: receivers drop duplicates by id
//   type            string  received | delivered | deferred | bounced | expired |
//                           complained | unsubscribed | suppressed | opened |
//                           clicked | throttled
//   time            integer milliseconds since 1970-01-01T00:00:00Z
//   queue_id        string  the message's queue id (13 characters)
//   recipient       string  the recipient address (envelope forward-path)
//   sending_domain  string  the sending domain (lowercase)
//   destination     string  the recipient's domain (lowercase)
//   reason          string  bounce reason, the Sisimai vocabulary of
//                           feedback/reason.hpp ("userunknown", "mailboxfull", ...)
//   hard            bool    the address will not take mail (suppress it)
//   code            integer SMTP reply code (550)
//   status          string  enhanced status code, RFC 3463 ("5.1.1")
//   remote_host     string  the host that answered ("mx.example.net")
//   remote_ip       string  its address
//   text            string  the reply text or diagnostic (at most 4096 octets)
//   source          string  where the event was learned: smtp (our own SMTP
//                           transaction), dsn (a bounce message), arf (a
//                           feedback-loop report), http (one-click unsubscribe,
//                           tracking, API), mailto (unsubscribe mail), admin
//                           (emberctl), queue (ember itself: expiry, suppression
//                           at dispatch, warm-up hold)
//   tls             bool    the attempt's SMTP session used TLS (STARTTLS);
//                           absent when no session reached the host; the
//                           protocol ("TLSv1.3") is extra.tls_protocol
//   dmarc_aligned   bool    the From: domain was DMARC-aligned at submission
//   bulk            bool    the message belongs to a bulk stream
//   one_click       bool    it carried a signed RFC 8058 one-click List-Unsubscribe
//   campaign        string  the sender's campaign id
//   tags            array of strings, the sender's tags
//   ab_test         string  the A/B test the message belongs to (its id)
//   variant         string  the message's A/B cell: a variant's name for the
//                           test cells, "rest" for the recipients who get
//                           the winner once the test is decided
//   extra           object  anything else (click URL, user agent, attempt count)
//
// Events are plain values; encode/decode are pure and thread-safe.
//
// EventLog appends encoded events, one line each, to a file opened with
// O_APPEND. append() only queues the line (a short mutex hold, never disk
// I/O), so it is safe on the Asio event loop; a dedicated writer thread
// writes whatever is queued with one write(2) per batch. reopen() makes the
// writer close and reopen the path before its next write (SIGHUP after
// logrotate has renamed the file). The log is a record for people and
// tools, not the durable path: when the disk refuses a write the batch is
// dropped with an error line, and when more than max_pending_bytes wait
// (a stuck disk) new lines are dropped and counted; the webhook outbox
// (LMDB) is what guarantees delivery.

#include "feedback/reason.hpp"

#include <boost/json/object.hpp>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ember::feedback {

enum class EventType : std::uint8_t {
    Received,
    Delivered,
    Deferred,
    Bounced,
    Expired,
    Complained,
    Unsubscribed,
    Suppressed,
    Opened,
    Clicked,
    Throttled,
};

// "received", "delivered", ...: the JSON `type` value.
[[nodiscard]] std::string_view event_type_name(EventType type);
[[nodiscard]] std::optional<EventType> parse_event_type(std::string_view name);

struct Event {
    EventType type = EventType::Delivered;
    std::int64_t time_ms = 0;
    std::string id;        // new_event_id(); the publisher sets it once for log and webhooks
    std::string queue_id;  // queue::format_queue_id(), "" when unknown
    std::string recipient; // "" when unknown
    std::string sending_domain;
    std::string destination;
    std::optional<Reason> reason;
    std::optional<bool> hard;
    int code = 0; // 0: no reply code
    std::string status;
    std::string remote_host;
    std::string remote_ip;
    std::string text;
    std::string source;
    std::optional<bool> tls;
    std::optional<bool> dmarc_aligned;
    std::optional<bool> bulk;
    std::optional<bool> one_click;
    std::string campaign;
    std::vector<std::string> tags;
    std::string ab_test;
    std::string variant;
    boost::json::object extra;

    friend bool operator==(const Event&, const Event&) = default;
};

// 32 lowercase hex digits from OpenSSL's CSPRNG.
[[nodiscard]] std::string new_event_id();

// The one-line JSON object described above, without a trailing newline.
[[nodiscard]] std::string encode_event(const Event& event);

// Reads one line back (unknown fields are ignored, as the contract asks of
// every reader). nullopt and `error` set when it is not an event: not a
// JSON object, no known type, no integer time.
[[nodiscard]] std::optional<Event> decode_event(std::string_view line, std::string& error);

// Replaces invalid UTF-8 sequences with U+FFFD.
[[nodiscard]] std::string sanitize_utf8(std::string_view text);

struct EventLogConfig {
    std::string path;                                      // "" disables the log
    std::size_t max_pending_bytes = std::size_t{64} << 20; // then new lines are dropped
};

class EventLog {
public:
    struct Stats {
        std::uint64_t written = 0; // lines handed to write(2) successfully
        std::uint64_t dropped = 0; // lines lost to a full queue or a failed write
        std::uint64_t reopens = 0;
    };

    // Opens (creating, mode 0640) the file at start-up, on the caller's
    // thread; nullptr and `error` ("path: Permission denied") on failure.
    [[nodiscard]] static std::unique_ptr<EventLog> open(const EventLogConfig& config,
                                                        std::string& error);
    ~EventLog(); // writes what is queued, then stops the writer thread
    EventLog(const EventLog&) = delete;
    EventLog& operator=(const EventLog&) = delete;

    // Thread-safe, never blocks on the disk.
    void append(const Event& event);
    void append_line(std::string_view json_line); // one encoded event, no newline
    // Thread-safe: the writer reopens the path before its next write. If the
    // reopen fails it logs the error and keeps writing to the old file.
    void reopen();
    // Blocks until every line appended before the call has been written (or
    // dropped). For shutdown and tests: not on the event loop.
    void flush();
    [[nodiscard]] Stats stats() const;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    EventLog(std::string path, int fd, std::size_t max_pending);
    void run();
    void write_batch(std::string& batch, std::uint64_t lines);
    void do_reopen();

    const std::string path_;
    const std::size_t max_pending_;
    int fd_;               // touched only by the writer thread after construction
    bool failing_ = false; // writer thread: a write error was logged, not yet recovered

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable written_cv_;
    std::string pending_;             // guarded by mutex_
    std::uint64_t pending_lines_ = 0; // guarded by mutex_
    std::uint64_t appended_seq_ = 0;  // lines accepted or dropped, guarded
    std::uint64_t done_seq_ = 0;      // lines written or dropped, guarded
    bool reopen_requested_ = false;   // guarded
    bool stopping_ = false;           // guarded
    bool overflowing_ = false;        // guarded: a drop was logged, not yet recovered
    Stats stats_;                     // guarded
    std::thread writer_;              // last: starts after everything above exists
};

} // namespace ember::feedback
