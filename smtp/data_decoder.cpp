#include "smtp/data_decoder.hpp"

#include "core/assert.hpp"

#include <algorithm>
#include <limits>

namespace ember::smtp {

void BodySink::note(BodyProblem problem) {
    if (problem_ != BodyProblem::None)
        return;
    problem_ = problem;
    // The message will be refused: free what was stored and store no more,
    // so a client cannot make us hold more than the limit.
    std::string().swap(content_);
}

void BodySink::text(std::string_view bytes) {
    if (bytes.empty())
        return;
    // How many more octets each limit lets through. A run that crosses both
    // reports the one crossed first, as byte-by-byte input would, so the
    // problem does not depend on how the input was split.
    constexpr auto kUnlimited = std::numeric_limits<std::uint64_t>::max();
    const auto room = [](std::uint64_t limit, std::uint64_t used) {
        return limit == 0 ? kUnlimited : (limit > used ? limit - used : 0);
    };
    const auto line_room = room(options_.max_line_length, line_length_);
    const auto size_room = room(options_.max_size, octets_);
    const bool line_over = bytes.size() > line_room;
    const bool size_over = bytes.size() > size_room;
    if (size_over && (!line_over || size_room < line_room))
        note(BodyProblem::TooBig);
    if (line_over)
        note(BodyProblem::LineTooLong);
    if (size_over)
        note(BodyProblem::TooBig);
    mid_line_ = true;
    line_length_ += bytes.size();
    octets_ += bytes.size();
    if (problem_ == BodyProblem::None)
        content_.append(bytes);
}

void BodySink::add_crlf() {
    mid_line_ = false;
    line_length_ = 0;
    octets_ += 2;
    if (problem_ == BodyProblem::None)
        content_ += "\r\n";
}

void BodySink::line_end() {
    if (options_.max_size != 0 && octets_ + 2 > options_.max_size)
        note(BodyProblem::TooBig);
    add_crlf();
}

void BodySink::bare_newline() {
    if (options_.bare_newlines == BareNewlinePolicy::Reject)
        note(BodyProblem::BareNewline);
    line_end();
}

void BodySink::close_line() {
    add_crlf();
}

std::string BodySink::take() {
    return std::move(content_);
}

std::size_t DataDecoder::feed(std::string_view input) {
    std::size_t i = 0;
    while (i < input.size() && state_ != State::Done) {
        if (state_ == State::Text) {
            // Fast path: everything up to the next CR or LF is plain text.
            const auto end = std::min(input.find_first_of("\r\n", i), input.size());
            if (end > i) {
                sink_.text(input.substr(i, end - i));
                i = end;
                continue;
            }
        }
        step(input[i++]);
    }
    return i;
}

void DataDecoder::text_byte(char c) {
    if (c == '\r') {
        state_ = State::TextCr;
        return;
    }
    if (c == '\n')
        sink_.bare_newline(); // a bare LF; the next octet is not at a line start
    else
        sink_.text(std::string_view(&c, 1));
    state_ = State::Text;
}

void DataDecoder::step(char c) {
    switch (state_) {
    case State::LineStart:
        if (c == '.')
            state_ = State::Dot;
        else
            text_byte(c);
        return;
    case State::Text:
        text_byte(c);
        return;
    case State::TextCr:
        if (c == '\n') {
            sink_.line_end();
            state_ = State::LineStart;
            return;
        }
        sink_.bare_newline(); // the CR was bare; c starts no line
        text_byte(c);
        return;
    case State::Dot:
        if (c == '\r') {
            state_ = State::DotCr;
            return;
        }
        text_byte(c); // RFC 5321 4.5.2: the line's first dot is removed
        return;
    case State::DotCr:
        if (c == '\n') {
            state_ = State::Done; // CRLF "." CRLF
            return;
        }
        sink_.bare_newline(); // "." CR x: a stuffed dot and a bare CR
        text_byte(c);
        return;
    case State::Done:
        break;
    }
    EMBER_ASSERT(false);
}

void ChunkDecoder::feed(std::string_view chunk) {
    EMBER_ASSERT(!finished_);
    std::size_t i = 0;
    while (i < chunk.size()) {
        if (!cr_pending_) {
            const auto end = std::min(chunk.find_first_of("\r\n", i), chunk.size());
            if (end > i) {
                sink_.text(chunk.substr(i, end - i));
                i = end;
                continue;
            }
        }
        const char c = chunk[i++];
        if (c == '\n' && cr_pending_) {
            sink_.line_end();
            cr_pending_ = false;
            continue;
        }
        if (cr_pending_)
            sink_.bare_newline(); // a CR followed by anything but LF
        cr_pending_ = c == '\r';
        if (c == '\n')
            sink_.bare_newline();
        else if (c != '\r')
            sink_.text(std::string_view(&c, 1));
    }
}

void ChunkDecoder::finish() {
    EMBER_ASSERT(!finished_);
    finished_ = true;
    if (cr_pending_)
        sink_.bare_newline();
    cr_pending_ = false;
    if (!sink_.at_line_start())
        sink_.close_line();
}

} // namespace ember::smtp
