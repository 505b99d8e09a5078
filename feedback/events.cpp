#include "feedback/events.hpp"

#include "core/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/core.h>
#include <openssl/rand.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <unistd.h>
#include <utility>

namespace ember::feedback {

namespace json = boost::json;
namespace log = core::log;

namespace {

constexpr std::array<std::string_view, 11> kTypeNames = {
    "received",     "delivered",  "deferred", "bounced", "expired",  "complained",
    "unsubscribed", "suppressed", "opened",   "clicked", "throttled"};

constexpr std::size_t kMaxText = 4096;

// Length of the valid UTF-8 sequence at text[i], or 0 (RFC 3629 section 4:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(text[k]);
    };
    const unsigned char c = byte(i);
    if (c < 0x80)
        return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (i + n > text.size())
        return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi)
        return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF)
            return 0;
    return n;
}

// Cuts at most `limit` octets without splitting a UTF-8 sequence.
std::string truncate_utf8(std::string text, std::size_t limit) {
    if (text.size() <= limit)
        return text;
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        --cut;
    text.resize(cut);
    return text;
}

void put_string(json::object& o, std::string_view key, std::string_view value) {
    if (!value.empty())
        o[key] = sanitize_utf8(value);
}

void put_flag(json::object& o, std::string_view key, const std::optional<bool>& value) {
    if (value)
        o[key] = *value;
}

std::string get_string(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::optional<bool> get_flag(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_bool() ? std::optional<bool>(v->get_bool()) : std::nullopt;
}

std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr)
        return std::nullopt;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(v->get_uint64());
    return std::nullopt;
}

void read_optional_fields(const json::object& o, Event& e) {
    e.id = get_string(o, "id");
    e.queue_id = get_string(o, "queue_id");
    e.recipient = get_string(o, "recipient");
    e.sending_domain = get_string(o, "sending_domain");
    e.destination = get_string(o, "destination");
    if (const auto reason = get_string(o, "reason"); !reason.empty())
        e.reason = parse_reason(reason);
    e.hard = get_flag(o, "hard");
    if (const auto code = get_int(o, "code"); code && *code > 0 && *code < 1000)
        e.code = static_cast<int>(*code);
    e.status = get_string(o, "status");
    e.remote_host = get_string(o, "remote_host");
    e.remote_ip = get_string(o, "remote_ip");
    e.text = get_string(o, "text");
    e.source = get_string(o, "source");
    e.tls = get_flag(o, "tls");
    e.dmarc_aligned = get_flag(o, "dmarc_aligned");
    e.bulk = get_flag(o, "bulk");
    e.one_click = get_flag(o, "one_click");
    e.campaign = get_string(o, "campaign");
    if (const auto* tags = o.if_contains("tags"); tags != nullptr && tags->is_array())
        for (const auto& tag : tags->get_array())
            if (tag.is_string())
                e.tags.emplace_back(tag.get_string());
    e.ab_test = get_string(o, "ab_test");
    e.variant = get_string(o, "variant");
    if (const auto* extra = o.if_contains("extra"); extra != nullptr && extra->is_object())
        e.extra = extra->get_object();
}

} // namespace

std::string_view event_type_name(EventType type) {
    return kTypeNames.at(static_cast<std::size_t>(type));
}

std::optional<EventType> parse_event_type(std::string_view name) {
    for (std::size_t i = 0; i < kTypeNames.size(); ++i)
        if (kTypeNames[i] == name)
            return static_cast<EventType>(i);
    return std::nullopt;
}

std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = utf8_length(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER
            ++i;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    return out;
}

std::string new_event_id() {
    std::array<unsigned char, 16> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
        // OpenSSL's DRBG failing is near impossible; an id need not be secret,
        // only unique, so fall back to the standard library's generator.
        static thread_local std::mt19937_64 fallback{std::random_device{}()};
        for (auto& b : bytes)
            b = static_cast<unsigned char>(fallback());
    }
    std::string out;
    out.reserve(32);
    for (const unsigned char b : bytes)
        out += fmt::format("{:02x}", b);
    return out;
}

std::string encode_event(const Event& e) {
    json::object o;
    o["id"] = e.id;
    o["type"] = event_type_name(e.type);
    o["time"] = e.time_ms;
    put_string(o, "queue_id", e.queue_id);
    put_string(o, "recipient", e.recipient);
    put_string(o, "sending_domain", e.sending_domain);
    put_string(o, "destination", e.destination);
    if (e.reason)
        o["reason"] = reason_name(*e.reason);
    put_flag(o, "hard", e.hard);
    if (e.code != 0)
        o["code"] = e.code;
    put_string(o, "status", e.status);
    put_string(o, "remote_host", e.remote_host);
    put_string(o, "remote_ip", e.remote_ip);
    if (!e.text.empty())
        o["text"] = truncate_utf8(sanitize_utf8(e.text), kMaxText);
    put_string(o, "source", e.source);
    put_flag(o, "tls", e.tls);
    put_flag(o, "dmarc_aligned", e.dmarc_aligned);
    put_flag(o, "bulk", e.bulk);
    put_flag(o, "one_click", e.one_click);
    put_string(o, "campaign", e.campaign);
    if (!e.tags.empty()) {
        json::array tags;
        for (const auto& tag : e.tags)
            tags.emplace_back(sanitize_utf8(tag));
        o["tags"] = std::move(tags);
    }
    put_string(o, "ab_test", e.ab_test);
    put_string(o, "variant", e.variant);
    if (!e.extra.empty())
        o["extra"] = e.extra;
    return json::serialize(o);
}

std::optional<Event> decode_event(std::string_view line, std::string& error) {
    boost::system::error_code ec;
    const json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    const auto& o = v.get_object();
    const auto type = parse_event_type(get_string(o, "type"));
    if (!type) {
        error = "no known type";
        return std::nullopt;
    }
    const auto time = get_int(o, "time");
    if (!time) {
        error = "no integer time";
        return std::nullopt;
    }
    Event e;
    e.type = *type;
    e.time_ms = *time;
    read_optional_fields(o, e);
    return e;
}

// ---- EventLog ----

namespace {

int open_append(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        error = fmt::format("{}: {}", path, std::strerror(errno));
    return fd;
}

} // namespace

std::unique_ptr<EventLog> EventLog::open(const EventLogConfig& config, std::string& error) {
    if (config.path.empty()) {
        error = "no event log path";
        return nullptr;
    }
    const int fd = open_append(config.path, error);
    if (fd < 0)
        return nullptr;
    return std::unique_ptr<EventLog>(new EventLog(config.path, fd, config.max_pending_bytes));
}

EventLog::EventLog(std::string path, int fd, std::size_t max_pending)
    : path_(std::move(path)), max_pending_(max_pending), fd_(fd), writer_([this] { run(); }) {}

EventLog::~EventLog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    ::close(fd_);
}

void EventLog::append(const Event& event) {
    append_line(encode_event(event));
}

void EventLog::append_line(std::string_view json_line) {
    bool log_drop = false;
    {
        std::lock_guard lock(mutex_);
        ++appended_seq_;
        if (pending_.size() + json_line.size() + 1 > max_pending_) {
            ++stats_.dropped;
            ++done_seq_;
            log_drop = !overflowing_;
            overflowing_ = true;
        } else {
            overflowing_ = false;
            pending_ += json_line;
            pending_ += '\n';
            ++pending_lines_;
        }
    }
    if (log_drop)
        log::error("events.log_dropped", "path={} pending_bytes={} why={}", log::q(path_),
                   max_pending_, log::q("the writer is behind; dropping lines"));
    else
        wake_.notify_one();
}

void EventLog::reopen() {
    {
        std::lock_guard lock(mutex_);
        reopen_requested_ = true;
    }
    wake_.notify_one();
}

void EventLog::flush() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = appended_seq_;
    wake_.notify_one();
    written_cv_.wait(lock, [&] { return done_seq_ >= target; });
}

EventLog::Stats EventLog::stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
}

void EventLog::run() {
    std::string batch;
    for (;;) {
        bool reopen = false;
        std::uint64_t lines = 0;
        bool stop = false;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || reopen_requested_ || !pending_.empty(); });
            batch.swap(pending_);
            pending_.clear();
            lines = pending_lines_;
            pending_lines_ = 0;
            reopen = std::exchange(reopen_requested_, false);
            stop = stopping_ && batch.empty() && !reopen;
        }
        if (stop)
            return;
        if (reopen)
            do_reopen();
        if (!batch.empty())
            write_batch(batch, lines);
    }
}

void EventLog::write_batch(std::string& batch, std::uint64_t lines) {
    std::string_view rest = batch;
    int error = 0;
    while (!rest.empty()) {
        const ssize_t n = ::write(fd_, rest.data(), rest.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error = n < 0 ? errno : EIO;
            break;
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    batch.clear();
    if (error != 0 && !failing_)
        log::error("events.log_write_failed", "path={} error={} lines={}", log::q(path_),
                   log::q(std::strerror(error)), lines);
    else if (error == 0 && failing_)
        log::info("events.log_write_recovered", "path={}", log::q(path_));
    failing_ = error != 0;
    {
        std::lock_guard lock(mutex_);
        // A short write leaves a partial line; count the batch as dropped so
        // the numbers never claim more than what surely reached the file.
        (error == 0 ? stats_.written : stats_.dropped) += lines;
        done_seq_ += lines;
    }
    written_cv_.notify_all();
}

void EventLog::do_reopen() {
    std::string error;
    const int fd = open_append(path_, error);
    if (fd < 0) {
        log::error("events.log_reopen_failed", "error={} action={}", log::q(error),
                   log::q("still writing to the old file"));
        return;
    }
    ::close(fd_);
    fd_ = fd;
    {
        std::lock_guard lock(mutex_);
        ++stats_.reopens;
    }
    log::info("events.log_reopened", "path={}", log::q(path_));
}

} // namespace ember::feedback
