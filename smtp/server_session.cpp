#include "smtp/server_session.hpp"

#include "core/log.hpp"
#include "smtp/command.hpp"
#include "smtp/data_decoder.hpp"
#include "smtp/message_header.hpp"
#include "smtp/received.hpp"
#include "smtp/reply.hpp"
#include "smtp/sasl.hpp"
#include "smtp/server_metrics.hpp"

#include <boost/asio/error.hpp>
#include <fmt/core.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using asio::awaitable;

constexpr std::size_t kReadChunk = 16 * 1024;

struct Transaction {
    MailFrom mail;
    std::string queue_id;
    std::vector<core::RecipientSpec> recipients;
    // CHUNKING: set by the first BDAT, collects every chunk until LAST.
    std::optional<ChunkDecoder> chunks;
    std::optional<Reply> chunk_error; // a failed BDAT poisons the rest of the transaction
};

enum class ReadStatus { Line, TooLong, Eof, Timeout, Stopped, Error };

std::string_view first_word(std::string_view s) {
    const auto space = s.find(' ');
    return space == std::string_view::npos ? s : s.substr(0, space);
}

std::string_view after_first_word(std::string_view s) {
    const auto space = s.find(' ');
    if (space == std::string_view::npos)
        return {};
    s.remove_prefix(space + 1);
    while (!s.empty() && s.front() == ' ')
        s.remove_prefix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    }
    return true;
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class Session final : public Stoppable {
public:
    Session(std::unique_ptr<Transport> io, ListenerConfig listener, ServerContext& ctx,
            core::IpAddress client)
        : io_(std::move(io)), listener_(std::move(listener)), ctx_(ctx), settings_(ctx.settings),
          client_(client), client_text_(client.to_string()),
          listener_text_(listener_.address.to_string()) {
        ctx_.sessions.add(this);
        ctx_.metrics.sessions_total.Increment();
        ctx_.metrics.sessions_active.Increment();
    }

    ~Session() override {
        ctx_.sessions.remove(this);
        ctx_.metrics.sessions_active.Decrement();
    }

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    awaitable<void> run();

    void request_stop() override {
        stop_requested_ = true;
        if (idle_)
            io_->cancel();
    }

    void force_close() override {
        broken_ = true;
        io_->close();
    }

private:
    const Limits& limits() const { return settings_->limits; }
    const std::string& hostname() const { return settings_->hostname; }

    // ---- I/O ----
    awaitable<bool> flush();
    awaitable<error_code> fill(core::Duration deadline);
    awaitable<ReadStatus> read_line(std::string& line);
    std::string_view buffered() const { return std::string_view(in_).substr(in_pos_); }

    // ---- replies ----
    void reply(int code, std::string_view enhanced, std::string_view text);
    void fail(int code, std::string_view enhanced, std::string_view text);
    void fail(const Reply& r);

    // ---- commands ----
    awaitable<void> dispatch(std::string_view line);
    void on_helo(const Command& cmd, bool esmtp);
    awaitable<void> on_starttls(const Command& cmd);
    awaitable<void> on_auth(const Command& cmd);
    void on_mail(const Command& cmd);
    void on_rcpt(const Command& cmd);
    awaitable<void> on_data(const Command& cmd);
    awaitable<void> on_bdat(const Command& cmd);
    awaitable<void> finish_message(DataProblem problem, std::string content);
    awaitable<bool> policy_refuses(const HeaderBlock& header, std::string_view content);

    // ---- helpers ----
    bool starttls_offered() const;
    bool auth_offered() const;
    bool relay_allowed() const;
    RecipientVerdict recipient_verdict(const std::string& address) const;
    awaitable<bool> start_tls();
    awaitable<std::optional<std::string>> sasl_exchange(std::string_view challenge);
    awaitable<bool> skip_octets(std::uint64_t count, ChunkDecoder* sink);
    std::string session_tls() const { return io_->tls_active() ? io_->tls_description() : ""; }
    void reset_transaction() { txn_.reset(); }
    void log_reject(std::string_view reason, const Reply& r);

    std::unique_ptr<Transport> io_;
    ListenerConfig listener_;
    ServerContext& ctx_;
    std::shared_ptr<const ServerSettings> settings_;
    core::IpAddress client_;
    std::string client_text_;
    std::string listener_text_;

    std::string in_;
    std::size_t in_pos_ = 0;
    std::string out_;

    bool greeted_ = false;
    bool esmtp_ = false;
    std::string helo_;
    std::string auth_user_;
    std::optional<Transaction> txn_;
    std::uint32_t errors_ = 0;
    std::uint32_t accepted_ = 0;
    bool closing_ = false; // answer what is queued, then end the session
    bool broken_ = false;  // the connection is unusable: nothing more is sent
    bool idle_ = false;
    bool stop_requested_ = false;
};

// ---------------------------------------------------------------- I/O

awaitable<bool> Session::flush() {
    if (out_.empty() || broken_)
        co_return !broken_;
    io_->set_deadline(limits().command_timeout);
    const auto ec = co_await io_->write(asio::buffer(out_));
    out_.clear();
    if (ec) {
        broken_ = true;
        co_return false;
    }
    co_return true;
}

awaitable<error_code> Session::fill(core::Duration deadline) {
    if (in_pos_ > 0 && in_pos_ * 2 >= in_.size()) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
    }
    const auto old = in_.size();
    in_.resize(old + kReadChunk);
    io_->set_deadline(deadline);
    auto [ec, n] = co_await io_->read_some(asio::buffer(in_.data() + old, kReadChunk));
    in_.resize(old + (ec ? 0 : n));
    co_return ec;
}

awaitable<ReadStatus> Session::read_line(std::string& line) {
    bool too_long = false;
    for (;;) {
        const auto rest = buffered();
        const auto lf = rest.find('\n');
        if (lf != std::string_view::npos) {
            in_pos_ += lf + 1;
            if (too_long || lf + 1 > kMaxCommandLine)
                co_return ReadStatus::TooLong;
            line.assign(rest.substr(0, lf));
            if (!line.empty() && line.back() == '\r')
                line.pop_back();
            co_return ReadStatus::Line;
        }
        if (rest.size() > kMaxCommandLine) {
            // Keep memory bounded: drop what we have and look for the line end.
            too_long = true;
            in_pos_ = in_.size();
        }
        const bool flushed = co_await flush();
        if (!flushed)
            co_return ReadStatus::Error;
        if (stop_requested_)
            co_return ReadStatus::Stopped;
        idle_ = true;
        const auto ec = co_await fill(limits().command_timeout);
        idle_ = false;
        if (!ec)
            continue;
        if (is_timeout(ec))
            co_return ReadStatus::Timeout;
        if (ec == asio::error::operation_aborted && stop_requested_ && !broken_)
            co_return ReadStatus::Stopped;
        co_return ec == asio::error::eof ? ReadStatus::Eof : ReadStatus::Error;
    }
}

// ---------------------------------------------------------------- replies

void Session::reply(int code, std::string_view enhanced, std::string_view text) {
    out_ += format_reply(make_reply(code, enhanced, text));
}

void Session::fail(int code, std::string_view enhanced, std::string_view text) {
    reply(code, enhanced, text);
    ++errors_;
}

void Session::fail(const Reply& r) {
    out_ += format_reply(r);
    ++errors_;
}

void Session::log_reject(std::string_view reason, const Reply& r) {
    log::info("smtp.rejected", "client={} id={} reason={} reply={}", client_text_,
              txn_ ? txn_->queue_id : "-", reason, log::q(format_reply(r)));
}

// ---------------------------------------------------------------- session loop

awaitable<void> Session::run() {
    log::info("smtp.connect", "client={} listener={}", client_text_, listener_text_);
    std::string end_reason = "quit";
    if (listener_.tls == TlsMode::Implicit) {
        const bool secured = co_await start_tls();
        if (!secured) {
            end_reason = "tls_failed";
            broken_ = true;
        }
    }
    if (!broken_)
        reply(220, "", hostname() + " ESMTP ember");
    while (!broken_ && !closing_) {
        std::string line;
        const auto status = co_await read_line(line);
        if (status == ReadStatus::Line) {
            co_await dispatch(line);
        } else if (status == ReadStatus::TooLong) {
            fail(500, "5.5.2", "Line too long");
        } else if (status == ReadStatus::Timeout) {
            reply(421, "4.4.2", hostname() + " Error: timeout exceeded");
            end_reason = "timeout";
            break;
        } else if (status == ReadStatus::Stopped) {
            reply(421, "4.3.2", hostname() + " Service shutting down, try again later");
            end_reason = "shutdown";
            break;
        } else {
            end_reason = status == ReadStatus::Eof ? "eof" : "error";
            break;
        }
        if (errors_ >= limits().max_errors && !broken_) {
            reply(421, "4.7.0", hostname() + " Error: too many errors");
            end_reason = "too_many_errors";
            break;
        }
    }
    co_await flush();
    io_->close();
    log::info("smtp.disconnect", "client={} reason={} accepted={} errors={}", client_text_,
              end_reason, accepted_, errors_);
}

awaitable<void> Session::dispatch(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) {
        fail(500, "5.5.2", "Error: NUL character in command");
        co_return;
    }
    const Command cmd = parse_command(line);
    switch (cmd.verb) {
    case Verb::Helo:
        on_helo(cmd, false);
        break;
    case Verb::Ehlo:
        on_helo(cmd, true);
        break;
    case Verb::StartTls:
        co_await on_starttls(cmd);
        break;
    case Verb::Auth:
        co_await on_auth(cmd);
        break;
    case Verb::Mail:
        on_mail(cmd);
        break;
    case Verb::Rcpt:
        on_rcpt(cmd);
        break;
    case Verb::Data:
        co_await on_data(cmd);
        break;
    case Verb::Bdat:
        co_await on_bdat(cmd);
        break;
    case Verb::Rset:
        reset_transaction();
        reply(250, "2.0.0", "Ok");
        break;
    case Verb::Noop:
        reply(250, "2.0.0", "Ok");
        break;
    case Verb::Quit:
        reply(221, "2.0.0", "Bye");
        closing_ = true;
        break;
    case Verb::Vrfy:
        reply(252, "2.5.2", "Cannot VRFY user; try RCPT to attempt delivery");
        break;
    case Verb::Expn:
        fail(502, "5.5.1", "EXPN not available");
        break;
    case Verb::Help:
        reply(214, "2.0.0", "See RFC 5321");
        break;
    case Verb::Unknown:
        if (cmd.http_like) {
            // An HTTP proxy abuse attempt (Postfix's smtpd_forbidden_commands).
            log::warning("smtp.http_command", "client={}", client_text_);
            reply(421, "4.7.0", hostname() + " This is an SMTP server; closing");
            closing_ = true;
            break;
        }
        fail(500, "5.5.2", "Error: command not recognized");
        break;
    }
}

// ---------------------------------------------------------------- HELO, STARTTLS, AUTH

bool Session::starttls_offered() const {
    return listener_.tls == TlsMode::StartTls && !io_->tls_active() && settings_->tls != nullptr;
}

bool Session::auth_offered() const {
    return listener_.auth != AuthPolicy::None && ctx_.auth.has_users() &&
           (io_->tls_active() || listener_.auth_without_tls);
}

RecipientVerdict Session::recipient_verdict(const std::string& address) const {
    if (ctx_.recipients == nullptr)
        return {};
    RecipientCheck check;
    check.client_ip = client_;
    check.auth_user = auth_user_;
    check.mode = listener_.mode;
    check.relay_allowed = relay_allowed();
    check.mail_from = txn_->mail.address;
    check.recipient = address;
    return ctx_.recipients->check_recipient(check);
}

bool Session::relay_allowed() const {
    return !auth_user_.empty() || core::any_contains(settings_->trusted_networks, client_);
}

void Session::on_helo(const Command& cmd, bool esmtp) {
    if (cmd.args.empty()) {
        fail(501, "5.5.4", esmtp ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        return;
    }
    reset_transaction();
    greeted_ = true;
    esmtp_ = esmtp;
    helo_ = std::string(first_word(cmd.args));
    if (!esmtp) {
        reply(250, "", hostname());
        return;
    }
    std::string text = hostname() + "\nPIPELINING\nSIZE " +
                       std::to_string(limits().max_message_size.bytes) +
                       "\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nDSN\nCHUNKING";
    if (starttls_offered())
        text += "\nSTARTTLS";
    if (auth_offered())
        text += "\nAUTH PLAIN LOGIN";
    // EHLO's reply carries no enhanced status code (RFC 2034 3).
    reply(250, "", text);
}

awaitable<bool> Session::start_tls() {
    if (settings_->tls == nullptr) {
        log::error("smtp.tls", "client={} error=\"no TLS certificate configured\"", client_text_);
        co_return false;
    }
    io_->set_deadline(limits().command_timeout);
    const auto ec = co_await io_->start_tls(settings_->tls);
    if (ec) {
        ctx_.metrics.tls_handshakes.Add({{"result", "failed"}}).Increment();
        log::info("smtp.tls.failed", "client={} error={}", client_text_, log::q(ec.message()));
        co_return false;
    }
    ctx_.metrics.tls_handshakes.Add({{"result", "ok"}}).Increment();
    log::info("smtp.tls", "client={} tls={}", client_text_, log::q(io_->tls_description()));
    co_return true;
}

awaitable<void> Session::on_starttls(const Command& cmd) {
    if (io_->tls_active()) {
        fail(503, "5.5.1", "Error: TLS already active");
        co_return;
    }
    if (!starttls_offered()) {
        fail(502, "5.5.1", "Error: command not implemented");
        co_return;
    }
    if (!cmd.args.empty()) {
        fail(501, "5.5.4", "Syntax: STARTTLS");
        co_return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    const bool flushed = co_await flush();
    if (!flushed)
        co_return;
    const std::size_t injected = buffered().size();
    if (injected > 0) {
        // Plaintext pipelined after STARTTLS must never be read as if it came
        // over TLS (CVE-2011-0411): drop it.
        log::warning("smtp.starttls_injection", "client={} dropped={}", client_text_, injected);
        in_.clear();
        in_pos_ = 0;
    }
    const bool secured = co_await start_tls();
    if (!secured) {
        broken_ = true;
        co_return;
    }
    // RFC 3207 4.2: forget everything learned before TLS.
    greeted_ = false;
    esmtp_ = false;
    helo_.clear();
    auth_user_.clear();
    reset_transaction();
}

awaitable<std::optional<std::string>> Session::sasl_exchange(std::string_view challenge) {
    // RFC 4954 4: continue-req = "334" SP [base64] CRLF; the space is required
    // even when the challenge is empty.
    out_ += "334 ";
    out_ += challenge;
    out_ += "\r\n";
    std::string line;
    const auto status = co_await read_line(line);
    if (status != ReadStatus::Line) {
        if (status == ReadStatus::TooLong)
            fail(500, "5.5.6", "Authentication exchange line is too long");
        else
            broken_ = status != ReadStatus::Stopped;
        co_return std::nullopt;
    }
    if (line == "*") {
        fail(501, "5.0.0", "Authentication cancelled");
        co_return std::nullopt;
    }
    co_return line;
}

awaitable<void> Session::on_auth(const Command& cmd) {
    if (!greeted_ || !esmtp_) {
        fail(503, "5.5.1", "Error: send EHLO first");
        co_return;
    }
    if (!auth_offered()) {
        const bool needs_tls =
            listener_.auth != AuthPolicy::None && ctx_.auth.has_users() && !io_->tls_active();
        if (needs_tls)
            fail(538, "5.7.11", "Encryption required for requested authentication mechanism");
        else
            fail(503, "5.5.1", "Error: authentication not enabled");
        co_return;
    }
    if (!auth_user_.empty()) {
        fail(503, "5.5.1", "Error: already authenticated");
        co_return;
    }
    if (txn_) {
        fail(503, "5.5.1", "Error: MAIL transaction in progress");
        co_return;
    }
    if (ctx_.auth.blocked(client_)) {
        ctx_.metrics.auth_attempts.Add({{"result", "rate_limited"}}).Increment();
        fail(454, "4.7.0", "Too many failed authentication attempts; try again later");
        co_return;
    }
    const auto mechanism = first_word(cmd.args);
    std::string initial(after_first_word(cmd.args));
    std::string user;
    std::string password;
    if (iequals(mechanism, "PLAIN")) {
        if (initial.empty()) {
            auto response = co_await sasl_exchange("");
            if (!response)
                co_return;
            initial = *response;
        }
        const auto creds = decode_plain(initial == "=" ? "" : initial);
        if (!creds) {
            fail(501, "5.5.2", "Error: malformed AUTH PLAIN response");
            co_return;
        }
        if (!creds->authzid.empty() && creds->authzid != creds->authcid) {
            // Acting on behalf of another user is not supported.
            ctx_.auth.record_failure(client_);
            fail(535, "5.7.8", "Authentication credentials invalid");
            co_return;
        }
        user = creds->authcid;
        password = creds->password;
    } else if (iequals(mechanism, "LOGIN")) {
        std::optional<std::string> encoded_user;
        if (!initial.empty())
            encoded_user = initial;
        else
            encoded_user = co_await sasl_exchange("VXNlcm5hbWU6"); // "Username:"
        if (!encoded_user)
            co_return;
        const auto encoded_password = co_await sasl_exchange("UGFzc3dvcmQ6"); // "Password:"
        if (!encoded_password)
            co_return;
        const auto u = base64_decode(*encoded_user);
        const auto p = base64_decode(*encoded_password);
        if (!u || !p || u->empty()) {
            fail(501, "5.5.2", "Error: malformed AUTH LOGIN response");
            co_return;
        }
        user = *u;
        password = *p;
    } else {
        fail(504, "5.5.4", "Error: unsupported authentication mechanism");
        co_return;
    }
    const bool ok = co_await ctx_.auth.verify(user, std::move(password));
    if (!ok) {
        ctx_.auth.record_failure(client_);
        ctx_.metrics.auth_attempts.Add({{"result", "failed"}}).Increment();
        log::info("smtp.auth.failed", "client={} user={} mechanism={}", client_text_, log::q(user),
                  log::q(mechanism));
        fail(535, "5.7.8", "Authentication credentials invalid");
        co_return;
    }
    auth_user_ = user;
    ctx_.metrics.auth_attempts.Add({{"result", "ok"}}).Increment();
    log::info("smtp.auth", "client={} user={}", client_text_, log::q(user));
    reply(235, "2.7.0", "Authentication successful");
}

// ---------------------------------------------------------------- MAIL, RCPT

void Session::on_mail(const Command& cmd) {
    if (!greeted_) {
        fail(503, "5.5.1", "Error: send HELO/EHLO first");
        return;
    }
    if (txn_) {
        fail(503, "5.5.1", "Error: nested MAIL command");
        return;
    }
    if (listener_.auth == AuthPolicy::Required && auth_user_.empty()) {
        fail(530, "5.7.0", "Authentication required");
        return;
    }
    auto parsed = parse_mail_from(cmd.args);
    if (auto* error = std::get_if<Reply>(&parsed)) {
        fail(*error);
        return;
    }
    auto& mail = std::get<MailFrom>(parsed);
    if (!esmtp_ && (mail.smtputf8 || mail.size || mail.body != core::BodyType::Unspecified ||
                    mail.ret != core::DsnRet::Unspecified || !mail.envid.empty())) {
        fail(555, "5.5.4", "Error: MAIL parameters need EHLO");
        return;
    }
    if (mail.size && *mail.size > limits().max_message_size.bytes) {
        ctx_.metrics.message_rejected("size");
        fail(552, "5.3.4", "Message size exceeds fixed maximum message size");
        return;
    }
    txn_.emplace();
    txn_->queue_id = ctx_.sink.new_queue_id();
    txn_->mail = std::move(mail);
    reply(250, "2.1.0", "Ok");
}

void Session::on_rcpt(const Command& cmd) {
    if (!txn_) {
        fail(503, "5.5.1", "Error: need MAIL command");
        return;
    }
    auto parsed = parse_rcpt_to(cmd.args, ParseOptions{txn_->mail.smtputf8});
    if (auto* error = std::get_if<Reply>(&parsed)) {
        ctx_.metrics.recipient_rejected("syntax");
        fail(*error);
        return;
    }
    auto& rcpt = std::get<RcptTo>(parsed);
    const auto verdict = recipient_verdict(rcpt.spec.address);
    if (verdict.kind == RecipientVerdict::Kind::Refuse) {
        ctx_.metrics.recipient_rejected("policy");
        log::info("smtp.rcpt_refused", "client={} rcpt={} reply={}", client_text_,
                  log::q(rcpt.spec.address), log::q(verdict.reply.text));
        fail(verdict.reply.code, verdict.reply.enhanced, verdict.reply.text);
        return;
    }
    // Our own feedback addresses are taken from anyone on every listener;
    // everything else is relaying, which needs AUTH or a trusted network on
    // every listener mode. No open relay, ever.
    const bool local = verdict.kind == RecipientVerdict::Kind::Local;
    if (!local && !relay_allowed()) {
        ctx_.metrics.recipient_rejected("relay");
        log::info("smtp.relay_denied", "client={} rcpt={}", client_text_,
                  log::q(rcpt.spec.address));
        fail(554, "5.7.1", "<" + rcpt.spec.address + ">: Relay access denied");
        return;
    }
    if (txn_->recipients.size() >= limits().max_recipients) {
        // RFC 5321 4.5.3.1.10: temporary, so the client sends the rest later.
        ctx_.metrics.recipient_rejected("too_many");
        reply(452, "4.5.3", "Error: too many recipients");
        return;
    }
    txn_->recipients.push_back(std::move(rcpt.spec));
    reply(250, "2.1.5", "Ok");
}

// ---------------------------------------------------------------- DATA, BDAT

awaitable<void> Session::on_data(const Command& cmd) {
    if (!cmd.args.empty()) {
        fail(501, "5.5.4", "Syntax: DATA");
        co_return;
    }
    if (!txn_) {
        fail(503, "5.5.1", "Error: need MAIL command");
        co_return;
    }
    if (txn_->recipients.empty()) {
        fail(554, "5.5.1", "Error: no valid recipients");
        co_return;
    }
    if (txn_->chunks) {
        fail(503, "5.5.1", "Error: DATA after BDAT");
        co_return;
    }
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
    DataDecoder decoder(
        {limits().max_message_size.bytes, limits().max_line_length, limits().bare_newlines});
    for (;;) {
        in_pos_ += decoder.feed(buffered());
        if (decoder.done())
            break;
        const bool flushed = co_await flush();
        if (!flushed)
            co_return;
        const auto ec = co_await fill(limits().data_timeout);
        if (is_timeout(ec)) {
            reply(421, "4.4.2", hostname() + " Error: timeout exceeded");
            closing_ = true;
            co_await flush();
            co_return;
        }
        if (ec) {
            // The client went away mid-DATA: nothing was acknowledged, nothing is queued.
            log::info("smtp.lost_in_data", "client={} id={} received={}", client_text_,
                      txn_->queue_id, decoder.octets());
            broken_ = true;
            co_return;
        }
    }
    co_await finish_message(decoder.problem(), decoder.take_content());
}

awaitable<bool> Session::skip_octets(std::uint64_t count, ChunkDecoder* sink) {
    while (count > 0) {
        if (buffered().empty()) {
            const bool flushed = co_await flush();
            if (!flushed)
                co_return false;
            const auto ec = co_await fill(limits().data_timeout);
            if (ec) {
                if (is_timeout(ec)) {
                    reply(421, "4.4.2", hostname() + " Error: timeout exceeded");
                    co_await flush();
                }
                broken_ = true;
                co_return false;
            }
            continue;
        }
        const auto take = std::min<std::uint64_t>(count, buffered().size());
        if (sink != nullptr)
            sink->feed(buffered().substr(0, take));
        in_pos_ += take;
        count -= take;
    }
    co_return true;
}

awaitable<void> Session::on_bdat(const Command& cmd) {
    const auto size_text = first_word(cmd.args);
    const auto last_text = after_first_word(cmd.args);
    std::uint64_t size = 0;
    const auto [ptr, ec] =
        std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
    const bool last = iequals(last_text, "LAST");
    if (size_text.empty() || ec != std::errc{} || ptr != size_text.data() + size_text.size() ||
        (!last && !last_text.empty())) {
        // Without a valid size the chunk cannot be skipped: the rest of the
        // input is unframed, so the session ends (RFC 3030 4).
        reply(501, "5.5.4", "Syntax: BDAT size [LAST]");
        closing_ = true;
        co_return;
    }
    // Whatever happens, the chunk's octets are read so framing is kept.
    ChunkDecoder* sink = nullptr;
    std::optional<Reply> refuse;
    if (!txn_)
        refuse = make_reply(503, "5.5.1", "Error: need MAIL command");
    else if (txn_->recipients.empty())
        refuse = make_reply(554, "5.5.1", "Error: no valid recipients");
    else if (txn_->chunk_error)
        refuse = *txn_->chunk_error;
    if (!refuse) {
        if (!txn_->chunks)
            txn_->chunks.emplace(DataDecoder::Options{
                limits().max_message_size.bytes, limits().max_line_length, limits().bare_newlines});
        sink = &*txn_->chunks;
    }
    const bool consumed = co_await skip_octets(size, sink);
    if (!consumed)
        co_return;
    if (refuse) {
        fail(*refuse);
        if (last && txn_ && txn_->chunk_error)
            reset_transaction();
        co_return;
    }
    if (txn_->chunks->problem() == DataProblem::TooBig) {
        // Refuse at once: no point in receiving the rest (RFC 3030 4).
        txn_->chunk_error =
            make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
        ctx_.metrics.message_rejected("size");
        fail(*txn_->chunk_error);
        if (last)
            reset_transaction();
        co_return;
    }
    if (!last) {
        reply(250, "2.0.0", std::to_string(size) + " octets received");
        co_return;
    }
    txn_->chunks->finish();
    const auto problem = txn_->chunks->problem();
    auto content = txn_->chunks->take_content();
    co_await finish_message(problem, std::move(content));
}

// The daemon's content policy (the DMARC alignment gate) sees the message
// after the header checks and before the commit: a refusal costs no disk.
awaitable<bool> Session::policy_refuses(const HeaderBlock& header, std::string_view content) {
    if (ctx_.policy == nullptr)
        co_return false;
    ContentCheck input;
    input.info =
        SessionInfo{client_, helo_, auth_user_, session_tls(), listener_text_, listener_.mode};
    input.listener = listener_;
    input.queue_id = txn_->queue_id;
    input.envelope.mail_from = txn_->mail.address;
    input.envelope.recipients = txn_->recipients;
    input.from_domains = from_domains(header);
    input.content = content; // lives in finish_message's frame until this returns
    const auto verdict = co_await ctx_.policy->check(std::move(input));
    if (verdict.accept)
        co_return false;
    const auto r = make_reply(verdict.code, verdict.enhanced, verdict.text);
    ctx_.metrics.message_rejected(verdict.code >= 500 ? "policy" : "policy_temporary");
    log_reject("policy", r);
    fail(r);
    co_return true;
}

awaitable<void> Session::finish_message(DataProblem problem, std::string content) {
    if (problem != DataProblem::None) {
        Reply r;
        std::string reason;
        switch (problem) {
        case DataProblem::TooBig:
            r = make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
            reason = "size";
            break;
        case DataProblem::LineTooLong:
            // RFC 5321 4.5.3.1.6 and its suggested reply text.
            r = make_reply(500, "5.5.2", "Line too long");
            reason = "line_length";
            break;
        default:
            // SMTP smuggling defence; Postfix answers the same way.
            r = make_reply(550, "5.5.2",
                           "Error: bare <CR> or <LF> received; lines must end with <CR><LF>");
            reason = "bare_newline";
            break;
        }
        ctx_.metrics.message_rejected(reason);
        log_reject(reason, r);
        fail(r);
        reset_transaction();
        co_return;
    }
    std::string prefix;
    if (listener_.mode == ListenerMode::Submission) {
        // Submissions must be well formed (RFC 5322 3.6); inbound mail (DSNs,
        // FBL reports) is taken as it comes so broken bouncers still count.
        const auto header = parse_header_block(content);
        const auto check = check_submission_headers(header);
        if (!check.ok) {
            ctx_.metrics.message_rejected("headers");
            log_reject("headers", check.reply);
            fail(check.reply);
            reset_transaction();
            co_return;
        }
        const bool refused = co_await policy_refuses(header, content);
        if (refused) {
            reset_transaction();
            co_return;
        }
        if (!check.has_message_id)
            prefix += build_message_id(txn_->queue_id, hostname());
        if (!check.has_date)
            prefix += "Date: " + format_rfc5322_date(unix_now()) + "\r\n";
    }
    ReceivedFields trace;
    trace.helo = helo_;
    trace.client_ip = client_text_;
    trace.hostname = hostname();
    trace.esmtp = esmtp_;
    trace.tls = session_tls();
    trace.auth_user = auth_user_;
    trace.smtputf8 = txn_->mail.smtputf8;
    trace.queue_id = txn_->queue_id;
    if (txn_->recipients.size() == 1)
        trace.recipient = txn_->recipients.front().address;
    trace.unix_seconds = unix_now();

    AcceptedMessage message;
    message.queue_id = txn_->queue_id;
    message.envelope.mail_from = txn_->mail.address;
    message.envelope.body = txn_->mail.body;
    message.envelope.smtputf8 = txn_->mail.smtputf8;
    message.envelope.ret = txn_->mail.ret;
    message.envelope.envid = txn_->mail.envid;
    message.envelope.recipients = txn_->recipients;
    message.info =
        SessionInfo{client_, helo_, auth_user_, trace.tls, listener_text_, listener_.mode};
    message.content = build_received(trace) + prefix;
    message.content.append(content);
    content = std::string();

    const auto size = message.content.size();
    const auto nrcpt = message.envelope.recipients.size();
    const auto from = message.envelope.mail_from;
    const auto started = std::chrono::steady_clock::now();
    const auto status = co_await ctx_.sink.commit(std::move(message));
    ctx_.metrics.commit_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    switch (status) {
    case SinkStatus::Ok:
        ++accepted_;
        ctx_.metrics.messages_accepted.Increment();
        ctx_.metrics.recipients_accepted.Increment(static_cast<double>(nrcpt));
        ctx_.metrics.bytes_accepted.Increment(static_cast<double>(size));
        log::info("smtp.accepted", "id={} client={} from=<{}> nrcpt={} size={} auth={} tls={}",
                  txn_->queue_id, client_text_, log::q(from), nrcpt, size,
                  auth_user_.empty() ? "-" : log::q(auth_user_),
                  trace.tls.empty() ? "-" : log::q(trace.tls));
        reply(250, "2.0.0", "Ok: queued as " + txn_->queue_id);
        break;
    case SinkStatus::StorageFull:
        ctx_.metrics.message_rejected("storage_full");
        log_reject("storage_full", make_reply(452, "4.3.1", "Insufficient system storage"));
        reply(452, "4.3.1", "Insufficient system storage");
        break;
    case SinkStatus::LocalError:
        ctx_.metrics.message_rejected("local_error");
        log_reject("local_error", make_reply(451, "4.3.0", "Local error in processing"));
        reply(451, "4.3.0", "Local error in processing");
        break;
    case SinkStatus::ShuttingDown:
        ctx_.metrics.message_rejected("shutdown");
        reply(421, "4.3.2", hostname() + " Service shutting down, try again later");
        closing_ = true;
        break;
    }
    reset_transaction();
}

} // namespace

awaitable<void> serve_session(std::unique_ptr<Transport> transport, ListenerConfig listener,
                              ServerContext& ctx, core::IpAddress client) {
    Session session(std::move(transport), std::move(listener), ctx, client);
    co_await session.run();
}

} // namespace ember::smtp
