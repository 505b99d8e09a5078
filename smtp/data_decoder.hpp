#pragma once
// Incremental decoders for a message body as the client sends it:
// DataDecoder for DATA (RFC 5321 4.1.1.4: dot-stuffed, ended by CRLF "." CRLF)
// and ChunkDecoder for BDAT (RFC 3030: counted chunks, no stuffing).
// Both enforce the size and line-length limits with bounded memory and
// handle bare CR and bare LF per BareNewlinePolicy.
//
// SMTP smuggling (CVE-2023-51764/51765/51766): only CR LF "." CR LF ends DATA.
// A bare LF or bare CR is never a line end for the terminator or for
// dot-unstuffing, under either policy, so "\n.\r\n", "\r\n.\n", "\r.\r\n" and
// "\n.\n" are message content (or a rejected message), never an end of data
// that lets a second, forged message follow.
//
// Sans-I/O, not thread-safe per object. Input may be split at any byte.
// Content leaves with CRLF line ends; after a problem it is discarded (the
// message will be refused) but the decoder keeps scanning so the session
// stays in step with the client.

#include "smtp/server_config.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ember::smtp {

enum class BodyProblem { None, TooBig, LineTooLong, BareNewline };
using DataProblem = BodyProblem; // the name the session code uses

struct BodyOptions {
    std::uint64_t max_size = 0;        // content octets after unstuffing; 0 = unlimited
    std::uint32_t max_line_length = 0; // octets without CRLF; 0 = unlimited
    BareNewlinePolicy bare_newlines = BareNewlinePolicy::Reject;
};

// The content buffer and the checks both decoders share. A bare newline
// counts as the CRLF it becomes under Normalize, under either policy, so
// octets() does not depend on the policy.
class BodySink {
public:
    explicit BodySink(BodyOptions options) : options_(options) {}

    void text(std::string_view bytes); // octets that are not line ends
    void line_end();                   // a real CRLF
    void bare_newline();               // a bare CR or bare LF
    // A CRLF added after the client's last octet (BDAT content that does not
    // end in one); not counted against max_size, the client did not send it.
    void close_line();

    [[nodiscard]] bool at_line_start() const { return !mid_line_; }
    [[nodiscard]] BodyProblem problem() const { return problem_; }
    [[nodiscard]] std::uint64_t octets() const { return octets_; }
    [[nodiscard]] std::string take();

private:
    void note(BodyProblem problem);
    void add_crlf();

    BodyOptions options_;
    std::string content_;
    std::uint64_t octets_ = 0;
    std::uint64_t line_length_ = 0;
    bool mid_line_ = false;
    BodyProblem problem_ = BodyProblem::None;
};

// DATA. The decoder starts at the beginning of a line (the 354 just went
// out), so ".\r\n" as the first bytes is an empty message.
class DataDecoder {
public:
    using Options = BodyOptions;
    using Problem = BodyProblem;

    explicit DataDecoder(Options options) : sink_(options) {}

    // Returns the bytes consumed: all of input, or up to and including the
    // terminating CRLF.CRLF; later (pipelined) bytes are left to the caller.
    [[nodiscard]] std::size_t feed(std::string_view input);
    [[nodiscard]] bool done() const { return state_ == State::Done; }
    // The first problem seen; None when the content is good.
    [[nodiscard]] Problem problem() const { return sink_.problem(); }
    // The unstuffed content, CRLF line ends, terminator removed, last line
    // with its CRLF. Empty after a problem. Call once, when done().
    [[nodiscard]] std::string take_content() { return sink_.take(); }
    // Unstuffed content size, including what a problem made us discard.
    [[nodiscard]] std::uint64_t octets() const { return sink_.octets(); }

private:
    enum class State { LineStart, Text, TextCr, Dot, DotCr, Done };
    void step(char c);
    void text_byte(char c);

    State state_ = State::LineStart;
    BodySink sink_;
};

// BDAT. Octets are counted by the session; this only checks and normalizes.
// A CR ending one chunk and an LF starting the next form a CRLF.
class ChunkDecoder {
public:
    using Options = BodyOptions;
    using Problem = BodyProblem;

    explicit ChunkDecoder(Options options) : sink_(options) {}

    void feed(std::string_view chunk);
    // After the LAST chunk: a CR still pending is bare; content that does not
    // end in CRLF gets one, as Postfix's cleanup does, so stored messages
    // always end with a line end whichever command carried them.
    void finish();
    [[nodiscard]] bool finished() const { return finished_; }
    [[nodiscard]] Problem problem() const { return sink_.problem(); }
    [[nodiscard]] std::string take_content() { return sink_.take(); }
    [[nodiscard]] std::uint64_t octets() const { return sink_.octets(); }

private:
    BodySink sink_;
    bool cr_pending_ = false;
    bool finished_ = false;
};

} // namespace ember::smtp
