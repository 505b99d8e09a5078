#pragma once
// Test doubles for the SMTP client, on Beast's in-memory test stream:
//
// - ScriptedPeer: a tiny SMTP server that follows a script of steps (send a
//   reply, expect one exact command line, expect a DATA body through
//   CRLF.CRLF, hang up). It records every read it made, so a test can
//   assert how the client's bytes arrived (e.g. MAIL+RCPT+DATA in one read
//   when pipelining). A mismatch is recorded in errors() and ends the
//   conversation by closing the stream.
// - FaultyTransport: wraps a Transport, fails its Nth read or write (as a
//   reset or as a timeout) and logs every operation's bytes, for "fail the
//   Nth operation for every N" tests.
// Single-threaded; runs on the io_context of the streams.

#include "smtp/transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <fmt/core.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ember::test {

class ScriptedPeer {
public:
    // A reply; CRLF is appended ("250-a\r\n250 b" makes a two-line reply).
    ScriptedPeer& send(std::string reply) {
        steps_.push_back({Kind::Send, std::move(reply) + "\r\n"});
        return *this;
    }
    // Raw bytes, sent as they are (garbage, a reply without CRLF, ...).
    ScriptedPeer& send_raw(std::string bytes) {
        steps_.push_back({Kind::Send, std::move(bytes)});
        return *this;
    }
    // One command line, compared exactly (without its CRLF).
    ScriptedPeer& expect(std::string line) {
        steps_.push_back({Kind::Expect, std::move(line)});
        return *this;
    }
    // Message content through CRLF "." CRLF, kept in wire form in bodies().
    ScriptedPeer& expect_data() {
        steps_.push_back({Kind::ExpectData, {}});
        return *this;
    }
    // Close the connection here.
    ScriptedPeer& hang_up() {
        steps_.push_back({Kind::HangUp, {}});
        return *this;
    }
    // The script's first n steps followed by a hang-up.
    [[nodiscard]] ScriptedPeer truncated(std::size_t n) const {
        ScriptedPeer copy;
        copy.steps_.assign(steps_.begin(), steps_.begin() + static_cast<std::ptrdiff_t>(
                                                                std::min(n, steps_.size())));
        copy.steps_.push_back({Kind::HangUp, {}});
        return copy;
    }
    [[nodiscard]] std::size_t size() const { return steps_.size(); }

    // Plays the script over `stream`, then closes it. Never throws.
    boost::asio::awaitable<void> run(boost::beast::test::stream stream) {
        stream_ = std::make_shared<boost::beast::test::stream>(std::move(stream));
        for (std::size_t i = 0; i < steps_.size(); ++i) {
            const bool ok = co_await play(i);
            if (!ok)
                break;
        }
        stream_->close();
        stream_.reset(); // a stream must not outlive its io_context
    }

    // Ends the conversation from outside (a test watchdog).
    void abort() {
        errors_.push_back("aborted by the test watchdog");
        if (stream_)
            stream_->close();
    }

    [[nodiscard]] const std::vector<std::string>& reads() const { return reads_; }
    [[nodiscard]] const std::vector<std::string>& bodies() const { return bodies_; }
    [[nodiscard]] const std::vector<std::string>& errors() const { return errors_; }
    // Everything the client sent, in order.
    [[nodiscard]] std::string received() const {
        std::string all;
        for (const auto& r : reads_)
            all += r;
        return all;
    }

private:
    enum class Kind { Send, Expect, ExpectData, HangUp };
    struct Step {
        Kind kind;
        std::string text;
    };

    boost::asio::awaitable<bool> play(std::size_t i) {
        const Step& step = steps_[i];
        if (step.kind == Kind::HangUp)
            co_return false;
        if (step.kind == Kind::Send) {
            auto [ec, n] = co_await boost::asio::async_write(
                *stream_, boost::asio::buffer(step.text),
                boost::asio::as_tuple(boost::asio::use_awaitable));
            (void)n;
            if (ec)
                errors_.push_back(fmt::format("step {}: write failed: {}", i, ec.message()));
            co_return !ec;
        }
        const std::string end = step.kind == Kind::Expect ? "\r\n" : "\r\n.\r\n";
        const bool have = co_await fill_until(end);
        if (!have) {
            errors_.push_back(fmt::format("step {}: connection closed, wanted {}", i,
                                          step.kind == Kind::Expect ? step.text : "data"));
            co_return false;
        }
        co_return take(i, step, end);
    }

    bool take(std::size_t i, const Step& step, const std::string& end) {
        // An empty body is just ".\r\n": the terminator's leading CRLF is the
        // end of the DATA command line itself.
        const bool empty_body = step.kind == Kind::ExpectData && input_.rfind(".\r\n", 0) == 0;
        const std::size_t at = empty_body ? 0 : input_.find(end);
        const std::size_t len = empty_body ? 3 : at + end.size();
        std::string got = input_.substr(0, step.kind == Kind::Expect ? at : len);
        input_.erase(0, len);
        if (step.kind == Kind::ExpectData) {
            bodies_.push_back(std::move(got));
            return true;
        }
        if (got == step.text)
            return true;
        errors_.push_back(fmt::format("step {}: got {:?}, want {:?}", i, got, step.text));
        return false;
    }

    boost::asio::awaitable<bool> fill_until(const std::string& end) {
        while (input_.find(end) == std::string::npos &&
               !(end.size() > 2 && input_.rfind(".\r\n", 0) == 0)) {
            std::string chunk(65536, '\0');
            auto [ec, n] = co_await stream_->async_read_some(
                boost::asio::buffer(chunk), boost::asio::as_tuple(boost::asio::use_awaitable));
            if (ec || n == 0)
                co_return false;
            chunk.resize(n);
            reads_.push_back(chunk);
            input_ += chunk;
        }
        co_return true;
    }

    std::vector<Step> steps_;
    std::shared_ptr<boost::beast::test::stream> stream_; // shared: scripts are copyable
    std::string input_;
    std::vector<std::string> reads_;
    std::vector<std::string> bodies_;
    std::vector<std::string> errors_;
};

// A peer that greets ("220 mx.test ESMTP"), expects "EHLO <client>" and
// answers with the given keywords, one per line ("PIPELINING\nSIZE 100").
inline ScriptedPeer greeted_peer(const std::string& keywords,
                                 const std::string& client = "client.test") {
    ScriptedPeer peer;
    peer.send("220 mx.test ESMTP").expect("EHLO " + client);
    std::string reply = keywords.empty() ? "250 mx.test" : "250-mx.test";
    std::string rest = keywords;
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const std::string keyword = rest.substr(0, nl);
        rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
        reply += "\r\n250" + std::string(rest.empty() ? " " : "-") + keyword;
    }
    peer.send(reply);
    return peer;
}

// Every operation a FaultyTransport saw: "r:" + bytes read, "w:" + bytes
// written, "x:" for the one it failed, "d:" + milliseconds for each deadline set.
struct OperationLog {
    std::vector<std::string> entries;
};

class FaultyTransport final : public smtp::Transport {
public:
    enum class Fault { Reset, Timeout };

    FaultyTransport(std::unique_ptr<smtp::Transport> inner, std::size_t fail_at, Fault fault,
                    std::shared_ptr<OperationLog> log)
        : inner_(std::move(inner)), fail_at_(fail_at), fault_(fault), log_(std::move(log)) {}

    void set_deadline(core::Duration d) override {
        log_->entries.push_back("d:" + std::to_string(d.count()));
        inner_->set_deadline(d);
    }

    boost::asio::awaitable<std::pair<smtp::error_code, std::size_t>>
    read_some(boost::asio::mutable_buffer buffer) override {
        if (++count_ == fail_at_)
            co_return std::pair{failure(), std::size_t{0}};
        auto result = co_await inner_->read_some(buffer);
        log_->entries.push_back(
            "r:" + std::string(static_cast<const char*>(buffer.data()), result.second));
        co_return result;
    }

    boost::asio::awaitable<smtp::error_code> write(boost::asio::const_buffer buffer) override {
        if (++count_ == fail_at_)
            co_return failure();
        log_->entries.push_back(
            "w:" + std::string(static_cast<const char*>(buffer.data()), buffer.size()));
        auto ec = co_await inner_->write(buffer);
        co_return ec;
    }

    boost::asio::awaitable<smtp::error_code>
    start_tls(std::shared_ptr<boost::asio::ssl::context> context) override {
        auto ec = co_await inner_->start_tls(std::move(context));
        co_return ec;
    }
    bool tls_active() const override { return inner_->tls_active(); }
    std::string tls_description() const override { return inner_->tls_description(); }
    void cancel() override { inner_->cancel(); }
    void close() override { inner_->close(); }

private:
    smtp::error_code failure() {
        log_->entries.emplace_back("x:");
        inner_->close(); // the peer sees the connection go away too
        return fault_ == Fault::Timeout ? smtp::error_code(boost::asio::error::timed_out)
                                        : smtp::error_code(boost::asio::error::connection_reset);
    }

    std::unique_ptr<smtp::Transport> inner_;
    std::size_t fail_at_;
    Fault fault_;
    std::shared_ptr<OperationLog> log_;
    std::size_t count_ = 0;
};

} // namespace ember::test
