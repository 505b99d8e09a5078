#include "daemon/contacts_verbs.hpp"

#include "core/log.hpp"
#include "daemon/admin_verbs.hpp"
#include "daemon/feedback_async.hpp"
#include "personalize/contacts_csv.hpp"
#include "personalize/time_text.hpp"

#include <boost/json/array.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <istream>
#include <streambuf>
#include <vector>

namespace ember::daemon {

namespace json = boost::json;
namespace log = core::log;

namespace {

constexpr std::size_t kReportedErrors = 100;
constexpr std::size_t kReadBlock = 256 * 1024;

// A file read in blocks that end at a line end, so a cancelled import stops
// between rows (a quoted field spanning lines is the one exception: that
// row is then reported as unterminated).
class LineFileBuf final : public std::streambuf {
public:
    LineFileBuf(int fd, const std::atomic<bool>& cancel)
        : fd_(fd), cancel_(cancel), buf_(kReadBlock) {}
    ~LineFileBuf() override { ::close(fd_); }
    LineFileBuf(const LineFileBuf&) = delete;
    LineFileBuf& operator=(const LineFileBuf&) = delete;
    [[nodiscard]] int read_error() const { return read_error_; }

protected:
    int_type underflow() override {
        if (gptr() < egptr())
            return traits_type::to_int_type(*gptr());
        if (cancel_.load())
            return traits_type::eof();
        std::memmove(buf_.data(), buf_.data() + cut_, filled_ - cut_);
        filled_ -= cut_;
        cut_ = 0;
        fill();
        if (filled_ == 0)
            return traits_type::eof();
        cut_ = filled_;
        if (!eof_) {
            const auto* last = static_cast<const char*>(memrchr(buf_.data(), '\n', filled_));
            if (last != nullptr)
                cut_ = static_cast<std::size_t>(last - buf_.data()) + 1;
        }
        setg(buf_.data(), buf_.data(), buf_.data() + cut_);
        return traits_type::to_int_type(*gptr());
    }

private:
    // Reads until the buffer holds a line end, is full, or the file ends.
    void fill() {
        while (!eof_ && filled_ < buf_.size()) {
            const auto n = ::read(fd_, buf_.data() + filled_, buf_.size() - filled_);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                eof_ = true;
                read_error_ = n < 0 ? errno : 0;
                return;
            }
            const auto* fresh = buf_.data() + filled_;
            filled_ += static_cast<std::size_t>(n);
            if (std::memchr(fresh, '\n', static_cast<std::size_t>(n)) != nullptr)
                return;
        }
    }

    int fd_;
    const std::atomic<bool>& cancel_;
    std::vector<char> buf_;
    std::size_t filled_ = 0; // octets in buf_
    std::size_t cut_ = 0;    // octets handed to the reader
    bool eof_ = false;
    int read_error_ = 0;
};

std::string errno_text(int error) {
    return std::strerror(error); // NOLINT(concurrency-mt-unsafe): glibc's is thread-safe
}

std::int64_t system_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::optional<std::string> address_arg(const json::object& args, std::string& error) {
    const auto text = string_arg(args, "address", error, true);
    if (!error.empty())
        return std::nullopt;
    if (!text) {
        error = R"(missing argument "address")";
        return std::nullopt;
    }
    auto address = personalize::normalize_contact_address(*text);
    if (!address)
        error = fmt::format("not an address: \"{}\"", valid_utf8(*text));
    return address;
}

// A JSON array of strings; `error` when it is something else.
std::vector<std::string> strings_arg(const json::value& value, std::string_view name,
                                     std::string& error) {
    std::vector<std::string> out;
    if (value.is_string()) {
        out.emplace_back(value.get_string());
        return out;
    }
    if (!value.is_array()) {
        error = fmt::format("\"{}\" must be a list of strings", name);
        return out;
    }
    for (const auto& v : value.get_array()) {
        if (!v.is_string()) {
            error = fmt::format("\"{}\" must be a list of strings", name);
            return {};
        }
        out.emplace_back(v.get_string());
    }
    return out;
}

std::optional<personalize::ContactPatch> patch_from_args(const json::object& args,
                                                         std::string& error) {
    error = unknown_argument(args, {"address", "attributes", "add_tags", "tags"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    if (!error.empty())
        return std::nullopt;
    personalize::ContactPatch patch;
    patch.address = *address;
    if (const auto* a = args.if_contains("attributes")) {
        if (!a->is_object()) {
            error = R"("attributes" must be an object)";
            return std::nullopt;
        }
        patch.attributes = a->get_object();
    }
    if (const auto* t = args.if_contains("add_tags"))
        patch.add_tags = strings_arg(*t, "add_tags", error);
    if (const auto* t = args.if_contains("tags"); t && error.empty())
        patch.tags = strings_arg(*t, "tags", error);
    if (!error.empty())
        return std::nullopt;
    return patch;
}

// A file name for the error lines: the one the operator typed, if given.
std::string display_name(const json::object& args, const std::string& path) {
    std::string ignored;
    return string_arg(args, "name", ignored).value_or(path);
}

} // namespace

// ---- jobs ---------------------------------------------------------------------

struct ContactJobs::Job {
    std::uint64_t id = 0;
    bool import = true;
    std::string path;
    std::string name;
    int fd = -1; // the opened file, handed to the thread
    bool empty_deletes = false;
    std::uint64_t size = 0;
    std::atomic<bool> cancel{false};
    mutable std::mutex mutex; // guards what follows
    bool running = true;
    bool ok = true;
    std::string error;
    personalize::ImportProgress progress;
    std::vector<std::string> errors;
    std::uint64_t error_count = 0;
};

namespace {

void run_import(personalize::ContactStore& contacts, ContactJobs::Job& job) {
    LineFileBuf buf(job.fd, job.cancel);
    std::istream in(&buf);
    personalize::CsvImportOptions options;
    options.name = job.name;
    options.max_errors = kReportedErrors;
    options.empty_deletes = job.empty_deletes;
    options.progress = [&job](const personalize::ImportProgress& p) {
        const std::lock_guard lock(job.mutex);
        job.progress = p;
    };
    auto report = personalize::import_contacts_csv(contacts, in, options);
    const std::lock_guard lock(job.mutex);
    job.progress = report.totals;
    job.ok = report.ok && buf.read_error() == 0 && !job.cancel.load();
    job.error = report.error;
    if (buf.read_error() != 0)
        job.error = fmt::format("{}: read error: {}", job.name, errno_text(buf.read_error()));
    else if (job.cancel.load() && job.error.empty())
        job.error = "cancelled: the daemon is stopping (rows before this point were imported)";
    job.errors = std::move(report.errors);
    job.error_count = report.error_count;
}

void run_export(const personalize::ContactStore& contacts, ContactJobs::Job& job) {
    std::FILE* out = fdopen(job.fd, "w");
    if (out == nullptr) {
        ::close(job.fd);
        const std::lock_guard lock(job.mutex);
        job.ok = false;
        job.error = errno_text(errno);
        return;
    }
    std::uint64_t bytes = 0;
    const auto rows = personalize::export_contacts_csv(contacts, [&](std::string_view text) {
        if (job.cancel.load() || std::fwrite(text.data(), 1, text.size(), out) != text.size())
            return false;
        bytes += text.size();
        if (bytes % (1 << 20) < text.size()) { // about every MiB
            const std::lock_guard lock(job.mutex);
            job.progress.bytes = bytes;
        }
        return true;
    });
    const bool written = std::fflush(out) == 0 && fsync(fileno(out)) == 0;
    const int write_errno = errno;
    const bool closed = std::fclose(out) == 0;
    const auto part = job.path + ".part";
    const bool ok =
        written && closed && !job.cancel.load() && std::rename(part.c_str(), job.path.c_str()) == 0;
    const std::lock_guard lock(job.mutex);
    job.progress.rows = rows;
    job.progress.bytes = bytes;
    job.ok = ok;
    if (!ok) {
        job.error = job.cancel.load() ? "cancelled: the daemon is stopping"
                                      : fmt::format("{}: {}", job.name, errno_text(write_errno));
        (void)std::remove(part.c_str());
    }
}

} // namespace

ContactJobs::ContactJobs(personalize::ContactStore& contacts) : contacts_(contacts) {}

ContactJobs::~ContactJobs() {
    cancel();
    if (thread_.joinable())
        thread_.join();
}

void ContactJobs::cancel() {
    const std::lock_guard lock(mutex_);
    if (current_)
        current_->cancel = true;
}

void ContactJobs::reap() {
    if (thread_.joinable())
        thread_.join();
}

std::variant<std::uint64_t, std::string> ContactJobs::begin(std::shared_ptr<Job> job) {
    std::unique_lock lock(mutex_);
    if (current_) {
        const std::lock_guard job_lock(current_->mutex);
        if (current_->running) {
            ::close(job->fd);
            return fmt::format("contacts job {} ({}) is still running", current_->id,
                               current_->import ? "import" : "export");
        }
    }
    reap();
    job->id = next_id_++;
    current_ = job;
    thread_ = std::thread([this, job] {
        if (job->import)
            run_import(contacts_, *job);
        else
            run_export(contacts_, *job);
        const std::lock_guard done(job->mutex);
        job->running = false;
        log::info(job->import ? "contacts.imported" : "contacts.exported",
                  "job={} file={} ok={} rows={} imported={} skipped={} error={}", job->id,
                  log::q(job->path), job->ok, job->progress.rows, job->progress.imported,
                  job->progress.skipped, log::q(job->error));
    });
    log::info("contacts.job_started", "job={} kind={} file={}", job->id,
              job->import ? "import" : "export", log::q(job->path));
    return job->id;
}

std::variant<std::uint64_t, std::string>
ContactJobs::start_import(std::string path, bool empty_deletes, std::string name) {
    auto job = std::make_shared<Job>();
    job->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (job->fd < 0)
        return fmt::format("cannot read {}: {} (the daemon reads the file itself: it must be "
                           "readable by the daemon's user)",
                           path, errno_text(errno));
    struct stat st {};
    if (::fstat(job->fd, &st) == 0)
        job->size = static_cast<std::uint64_t>(st.st_size);
    job->import = true;
    job->path = std::move(path);
    job->name = name.empty() ? job->path : std::move(name);
    job->empty_deletes = empty_deletes;
    return begin(std::move(job));
}

std::variant<std::uint64_t, std::string> ContactJobs::start_export(std::string path) {
    auto job = std::make_shared<Job>();
    const auto part = path + ".part";
    job->fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (job->fd < 0)
        return fmt::format("cannot write {}: {} (the daemon writes the file itself: its "
                           "directory must be writable by the daemon's user)",
                           part, errno_text(errno));
    job->import = false;
    job->path = std::move(path);
    job->name = job->path;
    return begin(std::move(job));
}

json::value ContactJobs::status(std::uint64_t id) const {
    std::shared_ptr<Job> job;
    {
        const std::lock_guard lock(mutex_);
        job = current_;
    }
    if (!job || job->id != id)
        return nullptr;
    const std::lock_guard lock(job->mutex);
    json::array errors;
    for (const auto& e : job->errors)
        errors.emplace_back(valid_utf8(e));
    return json::object{{"job", job->id},
                        {"kind", job->import ? "import" : "export"},
                        {"path", valid_utf8(job->path)},
                        {"running", job->running},
                        {"ok", job->ok},
                        {"error", valid_utf8(job->error)},
                        {"rows", job->progress.rows},
                        {"imported", job->progress.imported},
                        {"skipped", job->progress.skipped},
                        {"bytes", job->progress.bytes},
                        {"size", job->size},
                        {"errors", std::move(errors)},
                        {"error_count", job->error_count}};
}

// ---- verbs ----------------------------------------------------------------------

AdminResult contacts_get(const personalize::ContactStore& contacts, const json::object& args,
                         std::int64_t now_ms) {
    std::string error = unknown_argument(args, {"address"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto contact = contacts.get(*address);
    if (!contact)
        return AdminResult::failure(fmt::format("no contact {}", valid_utf8(*address)));
    return personalize::contact_json(*contact, now_ms);
}

boost::asio::awaitable<AdminResult> contacts_set(personalize::ContactStore* contacts,
                                                 json::object args, std::int64_t now_ms) {
    std::string error;
    auto patch = patch_from_args(args, error);
    if (!patch)
        co_return AdminResult::failure(std::move(error));
    const auto address = patch->address;
    auto refused = std::make_shared<personalize::PatchErrors>();
    auto start = [contacts, refused, p = std::move(*patch)](personalize::ContactDone done) mutable {
        std::vector<personalize::ContactPatch> patches;
        patches.push_back(std::move(p));
        *refused = contacts->apply(std::move(patches), std::move(done));
    };
    const auto r = co_await await_callback<personalize::ContactResult>(std::move(start));
    if (!refused->empty())
        co_return AdminResult::failure(valid_utf8(refused->front().second));
    if (r.status != personalize::ContactStatus::Ok)
        co_return AdminResult::failure(r.detail.empty() ? "the write failed" : r.detail);
    log::info("contacts.set", "rcpt={} via=admin", log::q(address));
    co_return contacts_get(*contacts, json::object{{"address", address}}, now_ms);
}

boost::asio::awaitable<AdminResult> contacts_delete(personalize::ContactStore* contacts,
                                                    json::object args) {
    std::string error = unknown_argument(args, {"address"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    if (!error.empty())
        co_return AdminResult::failure(std::move(error));
    auto start = [contacts, a = *address](personalize::ContactDone done) mutable {
        contacts->remove(a, std::move(done));
    };
    const auto r = co_await await_callback<personalize::ContactResult>(std::move(start));
    if (r.status == personalize::ContactStatus::NotFound)
        co_return AdminResult::failure(fmt::format("no contact {}", valid_utf8(*address)));
    if (r.status != personalize::ContactStatus::Ok)
        co_return AdminResult::failure(r.detail.empty() ? "the write failed" : r.detail);
    log::info("contacts.deleted", "rcpt={} via=admin", log::q(*address));
    co_return json::object{{"deleted", *address}};
}

boost::asio::awaitable<AdminResult> contacts_event(personalize::ContactStore* contacts,
                                                   json::object args, std::int64_t now_ms) {
    std::string error = unknown_argument(args, {"address", "kind", "at", "domain"});
    const auto address = error.empty() ? address_arg(args, error) : std::nullopt;
    const auto kind_text = error.empty() ? string_arg(args, "kind", error, true) : std::nullopt;
    const auto at = error.empty() ? string_arg(args, "at", error, true) : std::nullopt;
    const auto domain = error.empty() ? string_arg(args, "domain", error) : std::nullopt;
    if (error.empty() && !kind_text)
        error = R"(missing argument "kind" (delivered, open, click))";
    const auto kind = error.empty() ? personalize::parse_engagement_kind(*kind_text) : std::nullopt;
    if (error.empty() && !kind)
        error =
            fmt::format("unknown event \"{}\" (delivered, open, click)", valid_utf8(*kind_text));
    const auto time = at ? personalize::parse_rfc3339(*at) : std::optional<std::int64_t>(now_ms);
    if (error.empty() && !time)
        error = fmt::format("not an RFC 3339 time: \"{}\"", valid_utf8(*at));
    if (!error.empty())
        co_return AdminResult::failure(std::move(error));
    auto start = [contacts, a = *address, k = *kind, t = *time,
                  d = domain.value_or("")](personalize::ContactDone done) mutable {
        contacts->record_event(a, k, t, d, std::move(done));
    };
    const auto r = co_await await_callback<personalize::ContactResult>(std::move(start));
    if (r.status != personalize::ContactStatus::Ok)
        co_return AdminResult::failure(r.detail.empty() ? "the write failed" : r.detail);
    co_return json::object{{"address", *address},
                           {"event", personalize::engagement_kind_name(*kind)},
                           {"time", personalize::format_rfc3339(*time)}};
}

namespace {

template <typename Start>
AdminResult start_job(const json::object& args, std::initializer_list<std::string_view> known,
                      Start start) {
    std::string error = unknown_argument(args, known);
    const auto path = error.empty() ? string_arg(args, "path", error, true) : std::nullopt;
    if (error.empty() && !path)
        error = R"(missing argument "path")";
    if (error.empty() && !path->starts_with('/'))
        error = fmt::format("\"{}\" is not an absolute path", valid_utf8(*path));
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    auto started = start(*path);
    if (auto* why = std::get_if<std::string>(&started))
        return AdminResult::failure(std::move(*why));
    return json::object{{"job", std::get<std::uint64_t>(started)}};
}

} // namespace

AdminResult contacts_import(ContactJobs& jobs, const json::object& args) {
    const auto* flag = args.if_contains("empty_deletes");
    if (flag && !flag->is_bool())
        return AdminResult::failure(R"("empty_deletes" must be true or false)");
    const bool empty_deletes = flag && flag->get_bool();
    return start_job(args, {"path", "empty_deletes", "name"}, [&](const std::string& path) {
        return jobs.start_import(path, empty_deletes, display_name(args, path));
    });
}

AdminResult contacts_export(ContactJobs& jobs, const json::object& args) {
    return start_job(args, {"path"},
                     [&](const std::string& path) { return jobs.start_export(path); });
}

AdminResult contacts_job(const ContactJobs& jobs, const json::object& args) {
    std::string error = unknown_argument(args, {"job"});
    const auto* id = args.if_contains("job");
    if (error.empty() && (id == nullptr || !(id->is_int64() || id->is_uint64())))
        error = R"("job" must be a job number)";
    if (!error.empty())
        return AdminResult::failure(std::move(error));
    const auto n = id->is_int64() ? static_cast<std::uint64_t>(id->get_int64()) : id->get_uint64();
    auto status = jobs.status(n);
    if (status.is_null())
        return AdminResult::failure(fmt::format("no contacts job {}", n));
    return AdminResult::success(std::move(status));
}

void add_contacts_verbs(AdminServer& server, personalize::ContactStore& contacts, ContactJobs& jobs,
                        UnixClock clock) {
    auto now = clock ? std::move(clock) : UnixClock(system_now_ms);
    auto* store = &contacts;
    server.add_verb("contacts.get", SyncAdminHandler([store, now](const json::object& args) {
                        return contacts_get(*store, args, now());
                    }));
    server.add_verb("contacts.set", AdminHandler([store, now](json::object args) {
                        return contacts_set(store, std::move(args), now());
                    }));
    server.add_verb("contacts.delete", AdminHandler([store](json::object args) {
                        return contacts_delete(store, std::move(args));
                    }));
    server.add_verb("contacts.event", AdminHandler([store, now](json::object args) {
                        return contacts_event(store, std::move(args), now());
                    }));
    auto* j = &jobs;
    server.add_verb("contacts.import", SyncAdminHandler([j](const json::object& args) {
                        return contacts_import(*j, args);
                    }));
    server.add_verb("contacts.export", SyncAdminHandler([j](const json::object& args) {
                        return contacts_export(*j, args);
                    }));
    server.add_verb("contacts.job", SyncAdminHandler([j](const json::object& args) {
                        return contacts_job(*j, args);
                    }));
}

} // namespace ember::daemon
