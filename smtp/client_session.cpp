#include "smtp/client_session.hpp"

#include "smtp/command.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
using core::Outcome;
using core::OutcomeScope;
namespace cmd = command_name;

// Content goes out in writes of about this much, each with the data_block
// deadline: small enough to notice a stalled peer, large enough for TLS
// records and few syscalls.
constexpr std::size_t kChunkBytes = 64 * 1024;
// Bytes read while waiting for one reply before the peer counts as hostile
// (a reply of endless continuation lines).
constexpr std::size_t kMaxReplyBytes = 64 * 1024;

bool is_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string upper(std::string_view text) {
    std::string out(text);
    for (auto& c : out)
        c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    return out;
}

std::string header_section(std::string_view content) {
    const auto end = content.find("\r\n\r\n");
    return std::string(content.substr(0, end));
}

std::string notify_param(std::uint8_t notify) {
    if (notify & core::kNotifyNever)
        return "NEVER";
    std::string out;
    for (const auto& [flag, name] :
         {std::pair{core::kNotifySuccess, "SUCCESS"}, std::pair{core::kNotifyFailure, "FAILURE"},
          std::pair{core::kNotifyDelay, "DELAY"}}) {
        if (notify & flag)
            out += out.empty() ? name : std::string(",") + name;
    }
    return out;
}

// ORCPT=addr-type;xtext (RFC 3461 4.2). Only ASCII originals are relayed:
// a UTF-8 original needs RFC 6533's different escaping, and ORCPT is
// informational, so it is dropped rather than mangled.
std::string orcpt_param(std::string_view orcpt) {
    const auto semi = orcpt.find(';');
    if (semi == std::string_view::npos || semi == 0 || !is_ascii(orcpt))
        return {};
    return std::string(orcpt.substr(0, semi)) + ";" + xtext_encode(orcpt.substr(semi + 1));
}

bool is_2xx(const Reply& r) {
    return r.code >= 200 && r.code < 300;
}

} // namespace

// --- Pure helpers ---

Capabilities parse_capabilities(const Reply& ehlo) {
    Capabilities caps;
    caps.esmtp = true;
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        std::string_view line = ehlo.lines[i];
        const auto space = line.find(' ');
        const std::string keyword = upper(line.substr(0, space));
        const std::string_view arg =
            space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
        if (keyword == "PIPELINING")
            caps.pipelining = true;
        else if (keyword == "8BITMIME")
            caps.eightbitmime = true;
        else if (keyword == "SMTPUTF8")
            caps.smtputf8 = true;
        else if (keyword == "DSN")
            caps.dsn = true;
        else if (keyword == "STARTTLS")
            caps.starttls = true;
        else if (keyword == "CHUNKING")
            caps.chunking = true;
        else if (keyword == "SIZE") {
            std::uint64_t limit = 0;
            const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), limit);
            if (arg.empty() || (ec == std::errc() && end == arg.data() + arg.size()))
                caps.size = limit; // a malformed SIZE argument is ignored, as if not offered
        }
    }
    return caps;
}

std::string mail_command(const core::Envelope& envelope, std::uint64_t size, bool smtputf8,
                         const Capabilities& caps) {
    std::string out = fmt::format("MAIL FROM:<{}>", envelope.mail_from);
    if (caps.size)
        out += fmt::format(" SIZE={}", size);
    // RFC 6152: BODY=8BITMIME only to servers that offer it. To others the
    // content goes as it is (Postfix would convert to quoted-printable).
    const bool eight_bit = envelope.body == core::BodyType::EightBitMime ||
                           envelope.body == core::BodyType::BinaryMime;
    if (eight_bit && caps.eightbitmime)
        out += " BODY=8BITMIME";
    if (smtputf8 && caps.smtputf8)
        out += " SMTPUTF8";
    if (caps.dsn && envelope.ret != core::DsnRet::Unspecified)
        out += envelope.ret == core::DsnRet::Full ? " RET=FULL" : " RET=HDRS";
    if (caps.dsn && !envelope.envid.empty())
        out += " ENVID=" + xtext_encode(envelope.envid);
    return out;
}

std::string rcpt_command(const core::RecipientSpec& recipient, const Capabilities& caps) {
    std::string out = fmt::format("RCPT TO:<{}>", recipient.address);
    if (!caps.dsn)
        return out;
    if (recipient.notify != 0)
        out += " NOTIFY=" + notify_param(recipient.notify);
    if (const auto orcpt = orcpt_param(recipient.orcpt); !orcpt.empty())
        out += " ORCPT=" + orcpt;
    return out;
}

bool needs_smtputf8(const core::Envelope& envelope,
                    const std::vector<core::RecipientSpec>& recipients, std::string_view content) {
    if (!is_ascii(envelope.mail_from))
        return true;
    for (const auto& r : recipients) {
        if (!is_ascii(r.address))
            return true;
    }
    return envelope.smtputf8 && !is_ascii(header_section(content));
}

bool DotStuffer::next(std::string& out, std::size_t max_bytes) {
    const std::size_t limit = out.size() + max_bytes;
    while (pos_ < content_.size() && out.size() < limit) {
        if (line_start_ && content_[pos_] == '.')
            out += '.';
        line_start_ = false;
        const auto eol = content_.find_first_of("\r\n", pos_);
        const auto line_end = eol == std::string_view::npos ? content_.size() : eol;
        const auto room = limit > out.size() ? limit - out.size() : 1;
        const auto take = std::min(line_end - pos_, room);
        out.append(content_.substr(pos_, take));
        pos_ += take;
        if (pos_ < line_end || eol == std::string_view::npos)
            continue; // the line goes on in the next call, or the content ended
        const bool crlf =
            content_[eol] == '\r' && eol + 1 < content_.size() && content_[eol + 1] == '\n';
        out += "\r\n";
        pos_ = eol + (crlf ? 2 : 1);
        line_start_ = true;
    }
    if (pos_ >= content_.size() && !finished_) {
        out += line_start_ ? ".\r\n" : "\r\n.\r\n";
        finished_ = true;
    }
    return !finished_;
}

// --- The session ---

struct ClientSession::Step {
    std::string_view command; // for outcomes: "in reply to ... command"
    std::string_view phase;   // Postfix's words: "lost connection ... while <phase>"
    core::Duration deadline;
};

// --- Sessions ---

void ClientSessions::abort(bool in_data_too) {
    // abort() only cancels I/O; the sessions leave the set when destroyed,
    // later, so iterating over a copy is not needed.
    for (ClientSession* session : sessions_) {
        if (in_data_too || !session->in_data())
            session->abort();
    }
}

ClientSession::ClientSession(std::unique_ptr<Transport> transport, SessionSettings settings)
    : transport_(std::move(transport)), settings_(std::move(settings)) {
    if (settings_.registry != nullptr)
        settings_.registry->sessions_.insert(this);
}

ClientSession::~ClientSession() {
    if (settings_.registry != nullptr)
        settings_.registry->sessions_.erase(this);
    close();
}

void ClientSession::abort() {
    if (aborted_)
        return;
    aborted_ = true;
    if (transport_)
        transport_->cancel(); // the pending read or write completes with operation_aborted
}

Outcome ClientSession::io_failure(const Step& step, bool timeout) const {
    if (aborted_)
        return cancelled(fmt::format("ember shut down while {} with host {}", step.phase,
                                     settings_.peer.display()));
    return connection_lost(step.command, settings_.peer, step.phase, timeout);
}

bool ClientSession::tls_active() const {
    return transport_ && transport_->tls_active();
}

std::string ClientSession::tls_description() const {
    return transport_ ? transport_->tls_description() : std::string();
}

void ClientSession::close() {
    if (transport_)
        transport_->close();
    transport_.reset();
    usable_ = false;
}

void ClientSession::fail(Outcome outcome) {
    usable_ = false;
    if (outcome.tls.empty())
        outcome.tls = tls_protocol_;
    if (outcome.code == 421 && !outcome.local)
        broken_ = true; // RFC 5321 3.8: the server closes the channel after a 421
    if (!failure_)
        failure_ = std::move(outcome);
}

void ClientSession::break_connection(Outcome outcome) {
    broken_ = true;
    fail(std::move(outcome));
}

asio::awaitable<std::optional<Reply>> ClientSession::read_reply(Step step) {
    if (aborted_)
        break_connection(io_failure(step, false));
    if (broken_ || !transport_)
        co_return std::nullopt;
    transport_->set_deadline(step.deadline);
    std::size_t waited = 0;
    std::string chunk(4096, '\0');
    while (true) {
        if (auto reply = parser_.next())
            co_return reply;
        if (parser_.has_error() || waited > kMaxReplyBytes) {
            const std::string why = parser_.has_error() ? parser_.error() : "reply too long";
            break_connection(
                protocol_error(step.command, settings_.peer, "malformed reply: " + why));
            co_return std::nullopt;
        }
        auto [ec, n] = co_await transport_->read_some(asio::buffer(chunk));
        if (ec || n == 0) {
            break_connection(io_failure(step, is_timeout(ec)));
            co_return std::nullopt;
        }
        waited += n;
        parser_.feed(std::string_view(chunk.data(), n));
    }
}

asio::awaitable<bool> ClientSession::write(std::string bytes, Step step) {
    if (aborted_)
        break_connection(io_failure(step, false));
    if (broken_ || !transport_)
        co_return false;
    transport_->set_deadline(step.deadline);
    const error_code ec = co_await transport_->write(asio::buffer(bytes));
    if (ec) {
        break_connection(io_failure(step, is_timeout(ec)));
        co_return false;
    }
    co_return true;
}

asio::awaitable<std::optional<Reply>> ClientSession::command(std::string line, Step step) {
    line += "\r\n";
    const bool written = co_await write(std::move(line), step);
    if (!written)
        co_return std::nullopt;
    std::optional<Reply> reply = co_await read_reply(step);
    co_return reply;
}

asio::awaitable<std::optional<Outcome>> ClientSession::open() {
    const auto& t = settings_.timeouts;
    const auto greeting =
        co_await read_reply({cmd::kGreeting, "receiving the initial server greeting", t.greeting});
    if (!greeting)
        co_return failure_;
    if (!is_2xx(*greeting)) {
        fail(from_reply(*greeting, cmd::kGreeting, OutcomeScope::Site, settings_.peer));
        co_return failure_;
    }
    const auto hello_failure = co_await hello();
    if (hello_failure)
        co_return hello_failure;
    const auto tls_failure = co_await start_tls();
    co_return tls_failure;
}

// EHLO, and HELO when EHLO is refused permanently (RFC 5321 4.1.4: a 5xx,
// typically 500/502 from an old server); a 4xx is the site's answer.
asio::awaitable<std::optional<Outcome>> ClientSession::hello() {
    const auto& t = settings_.timeouts;
    std::string ehlo = "EHLO " + settings_.helo_name;
    const auto reply =
        co_await command(std::move(ehlo), {cmd::kEhlo, "performing the EHLO handshake", t.ehlo});
    if (!reply)
        co_return failure_;
    if (is_2xx(*reply)) {
        caps_ = parse_capabilities(*reply);
        co_return std::nullopt;
    }
    if (!is_permanent(*reply)) {
        fail(from_reply(*reply, cmd::kEhlo, OutcomeScope::Site, settings_.peer));
        co_return failure_;
    }
    std::string helo = "HELO " + settings_.helo_name;
    const auto helo_reply =
        co_await command(std::move(helo), {cmd::kHelo, "performing the HELO handshake", t.ehlo});
    if (!helo_reply)
        co_return failure_;
    if (!is_2xx(*helo_reply)) {
        fail(from_reply(*helo_reply, cmd::kHelo, OutcomeScope::Site, settings_.peer));
        co_return failure_;
    }
    caps_ = Capabilities{};
    co_return std::nullopt;
}

// RFC 3207. Opportunistic: a refusal leaves the session in plaintext, as
// Postfix's "may" level does; a failed handshake ends it (the agent may
// reconnect without TLS). Required: anything short of TLS defers.
asio::awaitable<std::optional<Outcome>> ClientSession::start_tls() {
    const bool required = settings_.tls == TlsPolicy::Required;
    if (settings_.tls == TlsPolicy::None)
        co_return std::nullopt;
    if (!caps_.starttls || !settings_.tls_context) {
        if (!required)
            co_return std::nullopt;
        fail(tls_unavailable(settings_.peer, settings_.tls_context
                                                 ? fmt::format("was not offered by host {}",
                                                               settings_.peer.display())
                                                 : std::string("our TLS engine is unavailable")));
        co_return failure_;
    }
    std::string starttls = "STARTTLS";
    const auto reply =
        co_await command(std::move(starttls), {cmd::kStartTls, "receiving the STARTTLS response",
                                               settings_.timeouts.starttls});
    if (!reply)
        co_return failure_;
    if (reply->code == 421) {
        fail(from_reply(*reply, cmd::kStartTls, OutcomeScope::Site, settings_.peer));
        co_return failure_;
    }
    if (reply->code != 220) {
        if (!required && !is_positive(*reply))
            co_return std::nullopt;
        fail(tls_unavailable(settings_.peer,
                             fmt::format("host {} refused to start TLS: {}",
                                         settings_.peer.display(), reply_summary(*reply))));
        co_return failure_;
    }
    const auto failure = co_await handshake();
    if (failure)
        co_return failure;
    caps_ = Capabilities{};
    const auto again = co_await hello(); // RFC 3207 4.2: forget what was said in plaintext
    co_return again;
}

asio::awaitable<std::optional<Outcome>> ClientSession::handshake() {
    // Bytes after the 220 arrived in plaintext and would be read as if they
    // came over TLS (CVE-2011-0411, the client side).
    const bool injected = parser_.has_pending_input();
    if (injected) {
        break_connection(
            protocol_error(cmd::kStartTls, settings_.peer,
                           "plaintext sent after the 220 to STARTTLS (response injection)"));
        co_return failure_;
    }
    transport_->set_deadline(settings_.timeouts.starttls);
    const error_code ec = co_await transport_->start_tls(settings_.tls_context);
    if (ec) {
        tls_handshake_failed_ = !aborted_;
        break_connection(aborted_ ? io_failure({cmd::kStartTls, "performing the TLS handshake",
                                                settings_.timeouts.starttls},
                                               false)
                                  : tls_failed(settings_.peer, ec.message()));
        co_return failure_;
    }
    // "TLSv1.3 TLS_AES_256_GCM_SHA384": the protocol is the first word.
    const std::string description = transport_->tls_description();
    tls_protocol_ = description.substr(0, description.find(' '));
    co_return std::nullopt;
}

std::optional<Outcome> ClientSession::precheck(const Transaction& t) const {
    const std::uint64_t size = t.content ? t.content->size() : 0;
    if (caps_.size && *caps_.size > 0 && size > *caps_.size)
        return message_too_big(settings_.peer, size, *caps_.size);
    const std::string_view content = t.content ? std::string_view(*t.content) : std::string_view();
    if (!caps_.smtputf8 && needs_smtputf8(t.envelope, t.recipients, content))
        return smtputf8_unsupported(settings_.peer);
    return std::nullopt;
}

// --- Transactions ---

asio::awaitable<TransactionResult> ClientSession::send(Transaction t) {
    TransactionResult result = co_await transact(std::move(t), false);
    co_return result;
}

asio::awaitable<TransactionResult> ClientSession::send_reused(Transaction t) {
    TransactionResult result = co_await transact(std::move(t), true);
    co_return result;
}

TransactionResult ClientSession::reset_failure(std::size_t recipients) {
    if (!failure_) // unreachable: every failed RSET path records why
        fail(protocol_error(cmd::kRset, settings_.peer, "RSET failed"));
    TransactionResult out;
    out.reset_failed = true;
    out.outcomes.assign(recipients, *failure_);
    return out;
}

asio::awaitable<TransactionResult> ClientSession::transact(Transaction t, bool reset_first) {
    EnvelopeReplies replies;
    replies.outcomes.resize(t.recipients.size());
    replies.accepted.resize(t.recipients.size());
    if (!usable_ || t.recipients.empty())
        co_return finish(std::move(replies));
    if (const auto refused = precheck(t)) {
        std::fill(replies.outcomes.begin(), replies.outcomes.end(), *refused);
        co_return finish(std::move(replies));
    }
    if (reset_first && !caps_.pipelining) {
        const bool alive = co_await reset();
        if (!alive)
            co_return reset_failure(t.recipients.size());
    }
    ++transactions_;
    const std::string_view content = t.content ? std::string_view(*t.content) : std::string_view();
    const bool smtputf8 = caps_.smtputf8 && (t.envelope.smtputf8 ||
                                             needs_smtputf8(t.envelope, t.recipients, content));
    std::string mail = mail_command(t.envelope, content.size(), smtputf8, caps_);
    std::vector<std::string> rcpts;
    for (const auto& r : t.recipients)
        rcpts.push_back(rcpt_command(r, caps_));
    if (caps_.pipelining) {
        replies = co_await pipelined(std::move(mail), std::move(rcpts), reset_first);
    } else {
        replies = co_await stepwise(std::move(mail), std::move(rcpts));
    }
    if (replies.reset_failed) {
        --transactions_; // it never started
        co_return reset_failure(t.recipients.size());
    }
    replies = co_await finish_data(t.content, std::move(replies));
    co_return finish(std::move(replies));
}

// RFC 2920 3.1: MAIL, every RCPT and DATA go in one write ("DATA" last in
// the group), after RSET on a reused connection; the replies come back in
// order and every one is read, even after a refusal, to stay in step with
// the server. A failed RSET ends the connection without reading further:
// what the server made of the rest of the group no longer matters, and a
// 354 it may have sent is answered by the close (the server discards a
// message that never got its final ".").
asio::awaitable<ClientSession::EnvelopeReplies>
ClientSession::pipelined(std::string mail, std::vector<std::string> rcpts, bool reset_first) {
    const auto& t = settings_.timeouts;
    EnvelopeReplies replies;
    replies.outcomes.resize(rcpts.size());
    replies.accepted.resize(rcpts.size());
    std::string batch = reset_first ? "RSET\r\n" : "";
    batch += mail + "\r\n";
    for (const auto& r : rcpts)
        batch += r + "\r\n";
    batch += "DATA\r\n";
    const Step first = reset_first ? Step{cmd::kRset, "sending RSET", t.rset}
                                   : Step{cmd::kMail, "sending MAIL FROM", t.mail};
    const bool written = co_await write(std::move(batch), first);
    if (!written) {
        replies.reset_failed = reset_first;
        co_return replies;
    }
    if (reset_first) {
        const auto rset_reply = co_await read_reply(first);
        replies.reset_failed = !rset_reply || !is_2xx(*rset_reply);
        if (rset_reply && !is_2xx(*rset_reply))
            break_connection(
                from_reply(*rset_reply, cmd::kRset, OutcomeScope::Site, settings_.peer));
        if (replies.reset_failed)
            co_return replies;
    }
    const auto mail_reply = co_await read_reply({cmd::kMail, "sending MAIL FROM", t.mail});
    if (!mail_reply)
        co_return replies;
    take_mail_reply(replies, *mail_reply);
    for (std::size_t i = 0; i < rcpts.size() && usable_; ++i) {
        const auto reply = co_await read_reply({cmd::kRcpt, "sending RCPT TO", t.rcpt});
        if (!reply)
            co_return replies;
        take_rcpt_reply(replies, i, *reply);
    }
    if (usable_)
        replies.data_reply = co_await read_reply({cmd::kData, "sending DATA", t.data});
    co_return replies;
}

asio::awaitable<ClientSession::EnvelopeReplies>
ClientSession::stepwise(std::string mail, std::vector<std::string> rcpts) {
    const auto& t = settings_.timeouts;
    EnvelopeReplies replies;
    replies.outcomes.resize(rcpts.size());
    replies.accepted.resize(rcpts.size());
    const auto mail_reply =
        co_await command(std::move(mail), {cmd::kMail, "sending MAIL FROM", t.mail});
    if (!mail_reply)
        co_return replies;
    take_mail_reply(replies, *mail_reply);
    for (std::size_t i = 0; i < rcpts.size() && replies.mail_accepted && usable_; ++i) {
        const auto reply =
            co_await command(std::move(rcpts[i]), {cmd::kRcpt, "sending RCPT TO", t.rcpt});
        if (!reply)
            co_return replies;
        take_rcpt_reply(replies, i, *reply);
    }
    const bool any =
        std::find(replies.accepted.begin(), replies.accepted.end(), true) != replies.accepted.end();
    if (any && usable_) {
        std::string data = "DATA";
        replies.data_reply =
            co_await command(std::move(data), {cmd::kData, "sending DATA", t.data});
    }
    co_return replies;
}

void ClientSession::take_mail_reply(EnvelopeReplies& replies, const Reply& reply) {
    if (is_2xx(reply)) {
        replies.mail_accepted = true;
        return;
    }
    if (!is_transient(reply) && !is_permanent(reply)) {
        break_connection(protocol_error(cmd::kMail, settings_.peer,
                                        "unexpected reply to MAIL FROM: " + reply_summary(reply)));
        return;
    }
    const Outcome refused = from_reply(reply, cmd::kMail, OutcomeScope::Message, settings_.peer);
    std::fill(replies.outcomes.begin(), replies.outcomes.end(), refused);
    if (reply.code == 421)
        fail(refused);
}

void ClientSession::take_rcpt_reply(EnvelopeReplies& replies, std::size_t i, const Reply& reply) {
    if (!replies.mail_accepted) {
        if (reply.code == 421)
            fail(from_reply(reply, cmd::kRcpt, OutcomeScope::Site, settings_.peer));
        return; // the answer to MAIL already decided every recipient
    }
    if (is_2xx(reply)) {
        replies.accepted[i] = true;
        return;
    }
    if (!is_transient(reply) && !is_permanent(reply)) {
        break_connection(protocol_error(cmd::kRcpt, settings_.peer,
                                        "unexpected reply to RCPT TO: " + reply_summary(reply)));
        return;
    }
    replies.outcomes[i] = from_reply(reply, cmd::kRcpt, OutcomeScope::Recipient, settings_.peer);
    if (reply.code == 421)
        fail(*replies.outcomes[i]);
}

// The answer to DATA (when it is not 354) or to the final "." for every
// accepted recipient.
void ClientSession::take_final_reply(EnvelopeReplies& replies, const Reply& reply,
                                     std::string_view command) {
    const bool data_refusal = command == cmd::kData;
    if (is_positive(reply) && data_refusal) {
        break_connection(protocol_error(command, settings_.peer,
                                        "unexpected reply to DATA: " + reply_summary(reply)));
        return;
    }
    if (!is_2xx(reply) && !is_transient(reply) && !is_permanent(reply)) {
        break_connection(protocol_error(
            command, settings_.peer, "unexpected reply to end of data: " + reply_summary(reply)));
        return;
    }
    const Outcome outcome = from_reply(reply, command, OutcomeScope::Message, settings_.peer);
    for (std::size_t i = 0; i < replies.accepted.size(); ++i) {
        if (replies.accepted[i])
            replies.outcomes[i] = outcome;
    }
    if (reply.code == 421)
        fail(outcome);
}

asio::awaitable<ClientSession::EnvelopeReplies>
ClientSession::finish_data(std::shared_ptr<const std::string> content, EnvelopeReplies replies) {
    const bool any =
        std::find(replies.accepted.begin(), replies.accepted.end(), true) != replies.accepted.end();
    const bool go_ahead = replies.data_reply && replies.data_reply->code == 354;
    bool finished = false;
    if (usable_ && any && go_ahead) {
        in_data_ = true;
        const bool sent = co_await send_content(std::move(content));
        if (sent) {
            const auto reply = co_await read_reply(
                {cmd::kEndOfData, "sending end of data -- message may be sent more than once",
                 settings_.timeouts.dot});
            if (reply)
                take_final_reply(replies, *reply, cmd::kEndOfData);
            finished = reply.has_value();
        }
        in_data_ = false;
    } else if (usable_ && any && replies.data_reply) {
        take_final_reply(replies, *replies.data_reply, cmd::kData);
    } else if (usable_ && go_ahead) {
        // RFC 2920 3.1: a server that said 354 after refusing every
        // recipient gets an empty message, which it must then refuse.
        std::string dot = ".";
        const auto ignored = co_await command(
            std::move(dot), {cmd::kEndOfData, "sending end of data", settings_.timeouts.dot});
        (void)ignored;
    }
    if (usable_ && !finished) {
        const bool reset_ok = co_await reset(); // leave the connection clean for the next one
        (void)reset_ok;
    }
    co_return replies;
}

asio::awaitable<bool> ClientSession::send_content(std::shared_ptr<const std::string> content) {
    DotStuffer stuffer(content ? std::string_view(*content) : std::string_view());
    const Step step{cmd::kEndOfData, "sending message body", settings_.timeouts.data_block};
    while (!stuffer.done()) {
        std::string chunk;
        chunk.reserve(kChunkBytes + 8);
        (void)stuffer.next(chunk, kChunkBytes);
        const bool written = co_await write(std::move(chunk), step);
        if (!written)
            co_return false;
    }
    co_return true;
}

TransactionResult ClientSession::finish(EnvelopeReplies replies) const {
    TransactionResult out;
    out.mail_accepted = replies.mail_accepted;
    for (auto& outcome : replies.outcomes) {
        if (outcome)
            out.outcomes.push_back(std::move(*outcome));
        else if (failure_)
            out.outcomes.push_back(*failure_);
        else // unreachable unless a path above forgot one; never report delivered
            out.outcomes.push_back(
                protocol_error(cmd::kEndOfData, settings_.peer, "transaction did not finish"));
        out.outcomes.back().tls = tls_protocol_;
    }
    return out;
}

asio::awaitable<bool> ClientSession::reset() {
    std::string rset = "RSET";
    const auto reply =
        co_await command(std::move(rset), {cmd::kRset, "sending RSET", settings_.timeouts.rset});
    if (!reply)
        co_return false;
    if (!is_2xx(*reply)) {
        fail(from_reply(*reply, cmd::kRset, OutcomeScope::Site, settings_.peer));
        co_return false;
    }
    co_return true;
}

asio::awaitable<void> ClientSession::quit() {
    if (!broken_ && transport_) {
        std::string quit = "QUIT";
        const auto reply = co_await command(std::move(quit),
                                            {cmd::kQuit, "sending QUIT", settings_.timeouts.quit});
        (void)reply;
    }
    close();
}

} // namespace ember::smtp
