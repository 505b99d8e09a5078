#include "smtp/data_decoder.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace ember::smtp;

namespace {

using Problem = BodyProblem;

const char* name(Problem p) {
    switch (p) {
    case Problem::None:
        return "none";
    case Problem::TooBig:
        return "too-big";
    case Problem::LineTooLong:
        return "line-too-long";
    case Problem::BareNewline:
        return "bare-newline";
    }
    return "?";
}

// Escapes CR and LF so a failing CHECK prints something readable.
std::string show(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '\r')
            out += "\\r";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

// Everything a DataDecoder run produced, as one comparable string.
struct DataResult {
    std::size_t consumed = 0;
    bool done = false;
    Problem problem = Problem::None;
    std::uint64_t octets = 0;
    std::string content;

    std::string str() const {
        return "consumed=" + std::to_string(consumed) + " done=" + (done ? "yes" : "no") +
               " problem=" + name(problem) + " octets=" + std::to_string(octets) +
               " content=" + show(content);
    }
};

DataResult finish(DataDecoder& d, std::size_t consumed) {
    DataResult r;
    r.consumed = consumed;
    r.done = d.done();
    r.problem = d.problem();
    r.octets = d.octets();
    r.content = d.take_content();
    return r;
}

// Feeds pieces in order, as a session would: stops once the decoder is done.
DataResult run_data(const std::vector<std::string_view>& pieces, BodyOptions options) {
    DataDecoder d(options);
    std::size_t consumed = 0;
    for (const auto piece : pieces) {
        if (d.done())
            break;
        const auto n = d.feed(piece);
        CHECK(n <= piece.size());
        if (!d.done())
            CHECK(n == piece.size()); // short only at the terminator
        consumed += n;
    }
    return finish(d, consumed);
}

DataResult run_data(std::string_view input, BodyOptions options) {
    return run_data(std::vector<std::string_view>{input}, options);
}

// One feed, two feeds cut at every i, and byte by byte must agree.
void check_data_splits(std::string_view input, BodyOptions options) {
    CAPTURE(show(input));
    const auto want = run_data(input, options).str();
    for (std::size_t i = 0; i <= input.size(); ++i) {
        CAPTURE(i);
        CHECK(run_data({input.substr(0, i), input.substr(i)}, options).str() == want);
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i)
        bytes.push_back(input.substr(i, 1));
    CHECK(run_data(bytes, options).str() == want);
}

BodyOptions reject() {
    return BodyOptions{0, 0, BareNewlinePolicy::Reject};
}
BodyOptions normalize() {
    return BodyOptions{0, 0, BareNewlinePolicy::Normalize};
}

// An independent, whole-input model of DATA decoding without limits: the
// end is the first CRLF "." CRLF (or "." CRLF at the very start); lines are
// split at real CRLFs only, unstuffed, and any CR or LF left inside a line
// is bare.
struct Model {
    bool done = false;
    std::size_t consumed = 0;
    bool bare = false;
    std::string content; // as Normalize stores it
};

Model model(std::string_view input) {
    Model m;
    std::size_t end = std::string_view::npos;
    std::string_view body;
    if (input.substr(0, 3) == ".\r\n") {
        end = 0;
        m.consumed = 3;
    } else if (const auto p = input.find("\r\n.\r\n"); p != std::string_view::npos) {
        end = p + 2;
        m.consumed = p + 5;
    }
    m.done = end != std::string_view::npos;
    body = m.done ? input.substr(0, end) : input;
    if (!m.done)
        m.consumed = input.size();
    std::size_t pos = 0;
    while (pos < body.size()) {
        const auto crlf = body.find("\r\n", pos);
        auto line =
            body.substr(pos, crlf == std::string_view::npos ? body.size() - pos : crlf - pos);
        if (!line.empty() && line.front() == '.')
            line.remove_prefix(1);
        for (const char c : line) {
            if (c == '\r' || c == '\n') {
                m.bare = true;
                m.content += "\r\n";
            } else {
                m.content += c;
            }
        }
        if (crlf == std::string_view::npos)
            break;
        m.content += "\r\n";
        pos = crlf + 2;
    }
    return m;
}

// The SMTP smuggling vectors of 2023: each is a would-be end of data that a
// lenient receiver takes, followed by a smuggled transaction.
constexpr const char* kSmuggling[] = {"\n.\r\n", "\r\n.\n", "\r.\r\n", "\n.\n",       "\r\n.\r",
                                      "\r.\r",   "\n.\r",   "\r.\n",   "\r\n.\r\r\n", "\n\r\n.\n"};

} // namespace

TEST_CASE("DATA content is unstuffed, ends at CRLF.CRLF and keeps the last CRLF") {
    struct Case {
        std::string input;
        std::string content;
        std::size_t consumed;
    };
    const Case cases[] = {
        {".\r\n", "", 3},
        {"\r\n.\r\n", "\r\n", 5},
        {"abc\r\n.\r\n", "abc\r\n", 8},
        {"Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", 23},
        {"..\r\n.\r\n", ".\r\n", 7},
        {"..abc\r\n.\r\n", ".abc\r\n", 10},
        {".abc\r\n.\r\n", "abc\r\n", 9},
        {"...\r\n.\r\n", "..\r\n", 8},
        {"a\r\n..\r\n.\r\n", "a\r\n.\r\n", 10},
        {"a.b\r\n.\r\n", "a.b\r\n", 8},
        {"a\r\n .\r\n.\r\n", "a\r\n .\r\n", 10},
        {"abc\r\n.\r\nQUIT\r\n", "abc\r\n", 8},
        {".\r\nMAIL FROM:<a@b>\r\n", "", 3},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.input));
        for (const auto& options : {reject(), normalize()}) {
            const auto r = run_data(c.input, options);
            CHECK(r.done);
            CHECK(r.problem == Problem::None);
            CHECK(show(r.content) == show(c.content));
            CHECK(r.consumed == c.consumed);
            CHECK(r.octets == c.content.size());
            check_data_splits(c.input, options);
        }
    }
}

TEST_CASE("DATA without its terminator is not done and consumes everything") {
    for (const char* input : {"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", ".", ".\r",
                              "abc\r\n..\r\n", "abc\r\n.x\r\n"}) {
        CAPTURE(show(input));
        const auto r = run_data(input, reject());
        CHECK_FALSE(r.done);
        CHECK(r.consumed == std::string_view(input).size());
    }
}

TEST_CASE("smuggled end-of-data sequences never end DATA") {
    for (const char* vector : kSmuggling) {
        const std::string input = std::string("Subject: a\r\n\r\nhello") + vector +
                                  "MAIL FROM:<forged@example.com>\r\nDATA\r\n";
        CAPTURE(show(input));
        const auto rejected = run_data(input, reject());
        CHECK_FALSE(rejected.done);
        CHECK(rejected.consumed == input.size());
        CHECK(rejected.problem == Problem::BareNewline);
        CHECK(rejected.content.empty());
        const auto normalized = run_data(input, normalize());
        CHECK_FALSE(normalized.done);
        CHECK(normalized.consumed == input.size());
        CHECK(normalized.problem == Problem::None);
        check_data_splits(input, reject());
        check_data_splits(input, normalize());
    }
}

TEST_CASE("a message with a smuggling attempt ends at the real terminator, whole") {
    const std::string input = "hello\n.\r\nMAIL FROM:<forged@example.com>\r\n.\r\nQUIT\r\n";
    const auto normalized = run_data(input, normalize());
    CHECK(normalized.done);
    CHECK(normalized.problem == Problem::None);
    CHECK(show(normalized.content) == show("hello\r\n.\r\nMAIL FROM:<forged@example.com>\r\n"));
    CHECK(normalized.consumed == input.size() - 6);
    const auto rejected = run_data(input, reject());
    CHECK(rejected.done);
    CHECK(rejected.problem == Problem::BareNewline);
    CHECK(rejected.content.empty());
    CHECK(rejected.consumed == input.size() - 6);
    CHECK(rejected.octets == normalized.octets);
}

TEST_CASE("bare CR and bare LF are stored as CRLF under Normalize, without unstuffing") {
    struct Case {
        const char* input;
        const char* content;
    };
    const Case cases[] = {
        {"a\nb\r\n.\r\n", "a\r\nb\r\n"},
        {"a\rb\r\n.\r\n", "a\r\nb\r\n"},
        {"a\r\rb\r\n.\r\n", "a\r\n\r\nb\r\n"},
        {"a\r\r\n.\r\n", "a\r\n\r\n"},
        {"a\n\n\r\n.\r\n", "a\r\n\r\n\r\n"},
        {"\n.\r\n.\r\n", "\r\n.\r\n"},        // the dot after a bare LF is content
        {"a\n..b\r\n.\r\n", "a\r\n..b\r\n"},  // and is not unstuffed
        {".\n\r\n.\r\n", "\r\n\r\n"},         // a stuffed dot, then a bare LF
        {".\rx\r\n.\r\n", "\r\nx\r\n"},       // a stuffed dot, then a bare CR
        {"\r\n.\r\r\n.\r\n", "\r\n\r\n\r\n"}, // "." CR CR LF: bare CR, then a line end
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.input));
        const auto r = run_data(c.input, normalize());
        CHECK(r.done);
        CHECK(r.problem == Problem::None);
        CHECK(show(r.content) == show(c.content));
        const auto rejected = run_data(c.input, reject());
        CHECK(rejected.done);
        CHECK(rejected.problem == Problem::BareNewline);
        CHECK(rejected.content.empty());
        check_data_splits(c.input, normalize());
        check_data_splits(c.input, reject());
    }
}

TEST_CASE("a message over max_size is TooBig, stored no further, and still read to its end") {
    const BodyOptions options{10, 0, BareNewlinePolicy::Reject};
    const auto exact = run_data("12345678\r\n.\r\n", options); // 10 octets
    CHECK(exact.problem == Problem::None);
    CHECK(exact.content == "12345678\r\n");
    const auto over = run_data("123456789\r\n.\r\n", options);
    CHECK(over.done);
    CHECK(over.problem == Problem::TooBig);
    CHECK(over.content.empty());
    CHECK(over.octets == 11);
    const std::string big = std::string(100000, 'x') + "\r\n.\r\nNOOP\r\n";
    const auto r = run_data(big, options);
    CHECK(r.done);
    CHECK(r.consumed == big.size() - 6);
    CHECK(r.problem == Problem::TooBig);
    CHECK(r.octets == 100002);
    check_data_splits("12345\r\n6789\r\n.\r\n", options);
    check_data_splits("12345678\r\n.\r\n", options);
}

TEST_CASE("a line over max_line_length is LineTooLong; the limit counts unstuffed octets") {
    const BodyOptions options{0, 5, BareNewlinePolicy::Reject};
    struct Case {
        const char* input;
        Problem problem;
    };
    const Case cases[] = {
        {"12345\r\n.\r\n", Problem::None},
        {"123456\r\n.\r\n", Problem::LineTooLong},
        {"..2345\r\n.\r\n", Problem::None},
        {"12345\r\n12345\r\n.\r\n", Problem::None},
        {"12345\r\n123456\r\n.\r\n", Problem::LineTooLong},
        {"123456", Problem::LineTooLong},
        {"12\n345\r\n.\r\n", Problem::BareNewline},
        {"1234567\n\r\n.\r\n", Problem::LineTooLong}, // the first problem wins
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.input));
        CHECK(name(run_data(c.input, options).problem) == std::string(name(c.problem)));
        check_data_splits(c.input, options);
    }
    const BodyOptions normalizing{0, 5, BareNewlinePolicy::Normalize};
    // A normalized bare LF splits the stored line, so it restarts the count.
    CHECK(run_data("1234\n5678\r\n.\r\n", normalizing).problem == Problem::None);
    CHECK(run_data("123\n456789\r\n.\r\n", normalizing).problem == Problem::LineTooLong);
}

TEST_CASE("the first problem seen is the one reported") {
    const BodyOptions options{8, 3, BareNewlinePolicy::Reject};
    CHECK(run_data("a\nbcdefghijk\r\n.\r\n", options).problem == Problem::BareNewline);
    CHECK(run_data("abcd\nefghijk\r\n.\r\n", options).problem == Problem::LineTooLong);
    const BodyOptions size_first{3, 5, BareNewlinePolicy::Reject};
    CHECK(run_data("ab\r\ncdefgh\n\r\n.\r\n", size_first).problem == Problem::TooBig);
    // One run of text crossing both limits: the limit crossed first wins,
    // however the input was split.
    const BodyOptions both{8, 10, BareNewlinePolicy::Reject};
    CHECK(run_data("abc\r\n1234567890123\r\n.\r\n", both).problem == Problem::TooBig);
    check_data_splits("abc\r\n1234567890123\r\n.\r\n", both);
    const BodyOptions line_first{12, 3, BareNewlinePolicy::Reject};
    CHECK(run_data("abcdefghijklmnop\r\n.\r\n", line_first).problem == Problem::LineTooLong);
    check_data_splits("abcdefghijklmnop\r\n.\r\n", line_first);
}

TEST_CASE("the decoder agrees with a whole-input model on random inputs, split anywhere") {
    std::mt19937 rng(20231218); // fixed seed: reproducible
    const std::string alphabet = "a.\r\n";
    for (int round = 0; round < 3000; ++round) {
        std::string input;
        const auto length = rng() % 24;
        for (unsigned i = 0; i < length; ++i)
            input += alphabet[rng() % alphabet.size()];
        CAPTURE(show(input));
        const auto want = model(input);
        const auto cut = input.empty() ? 0 : rng() % (input.size() + 1);
        const auto normalized =
            run_data({std::string_view(input).substr(0, cut), std::string_view(input).substr(cut)},
                     normalize());
        CHECK(normalized.done == want.done);
        CHECK(normalized.consumed == want.consumed);
        const auto rejected = run_data(input, reject());
        CHECK(rejected.done == want.done);
        if (!want.done)
            continue; // an unfinished input may end in a CR or dot still pending
        CHECK(show(normalized.content) == show(want.content));
        CHECK(normalized.octets == want.content.size());
        CHECK((rejected.problem == Problem::BareNewline) == want.bare);
    }
}

TEST_CASE("every split of tricky DATA inputs gives the same result") {
    const char* const inputs[] = {
        "a\r\n.\r\n",
        "\r\n.\r\n",
        "..\r\n.\r\n",
        "a\r\r\n.\r\nrest",
        "a\r\n.\r\r\n.\r\n",
        "a\n\r\n.\r\n",
        "x\r\n.\rMAIL\r\n.\r\n",
        ".\r.\r\n.\r\n",
        "line one\r\n..dots\r\n.\r\nRSET\r\n",
        "\r\r\r\n\n\n.\r\n.\r\n",
    };
    for (const char* input : inputs) {
        for (const auto& options :
             {reject(), normalize(), BodyOptions{6, 4, BareNewlinePolicy::Normalize}})
            check_data_splits(input, options);
    }
}

// ---- BDAT -------------------------------------------------------------------

namespace {

struct ChunkResult {
    Problem problem = Problem::None;
    std::uint64_t octets = 0;
    std::string content;
    std::string str() const {
        return std::string("problem=") + name(problem) + " octets=" + std::to_string(octets) +
               " content=" + show(content);
    }
};

ChunkResult run_chunks(const std::vector<std::string_view>& chunks, BodyOptions options) {
    ChunkDecoder d(options);
    for (const auto chunk : chunks)
        d.feed(chunk);
    CHECK_FALSE(d.finished());
    d.finish();
    CHECK(d.finished());
    return {d.problem(), d.octets(), d.take_content()};
}

void check_chunk_splits(std::string_view input, BodyOptions options) {
    CAPTURE(show(input));
    const auto want = run_chunks({input}, options).str();
    for (std::size_t i = 0; i <= input.size(); ++i) {
        CAPTURE(i);
        CHECK(run_chunks({input.substr(0, i), input.substr(i)}, options).str() == want);
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i)
        bytes.push_back(input.substr(i, 1));
    CHECK(run_chunks(bytes, options).str() == want);
}

} // namespace

TEST_CASE("BDAT content is taken as is: no dot handling, no terminator") {
    struct Case {
        const char* input;
        const char* content;
    };
    const Case cases[] = {
        {"", ""},
        {"abc\r\n", "abc\r\n"},
        {".\r\n", ".\r\n"},
        {"a\r\n.\r\nb\r\n", "a\r\n.\r\nb\r\n"},
        {"..x\r\n", "..x\r\n"},
        {"no final line end", "no final line end\r\n"},
        {"a\r\nb", "a\r\nb\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.input));
        const auto r = run_chunks({c.input}, reject());
        CHECK(r.problem == Problem::None);
        CHECK(show(r.content) == show(c.content));
        check_chunk_splits(c.input, reject());
        check_chunk_splits(c.input, normalize());
    }
}

TEST_CASE("a CR ending one BDAT chunk and an LF starting the next are one CRLF") {
    const auto r = run_chunks({"abc\r", "\ndef\r\n"}, reject());
    CHECK(r.problem == Problem::None);
    CHECK(r.content == "abc\r\ndef\r\n");
    CHECK(run_chunks({"abc\r", "", "\n"}, reject()).content == "abc\r\n");
}

TEST_CASE("bare newlines in BDAT follow the policy") {
    struct Case {
        const char* input;
        const char* normalized;
    };
    const Case cases[] = {
        {"a\nb\r\n", "a\r\nb\r\n"}, {"a\rb\r\n", "a\r\nb\r\n"},
        {"a\r\r\n", "a\r\n\r\n"},   {"a\r", "a\r\n"}, // a CR still pending at LAST is bare
        {"\n.\r\n", "\r\n.\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.input));
        const auto n = run_chunks({c.input}, normalize());
        CHECK(n.problem == Problem::None);
        CHECK(show(n.content) == show(c.normalized));
        const auto r = run_chunks({c.input}, reject());
        CHECK(r.problem == Problem::BareNewline);
        CHECK(r.content.empty());
        check_chunk_splits(c.input, normalize());
        check_chunk_splits(c.input, reject());
    }
}

TEST_CASE("BDAT size and line limits match DATA's") {
    const BodyOptions options{10, 4, BareNewlinePolicy::Reject};
    CHECK(run_chunks({"1234\r\n12\r\n"}, options).problem == Problem::None);
    CHECK(run_chunks({"12345\r\n"}, options).problem == Problem::LineTooLong);
    CHECK(run_chunks({"1234\r\n1234\r\n"}, options).problem == Problem::TooBig);
    // The CRLF added after a last line without one is not the client's.
    const auto closing = run_chunks({"1234\r\n1234"}, options);
    CHECK(closing.problem == Problem::None);
    CHECK(closing.content == "1234\r\n1234\r\n");
    CHECK(closing.octets == 12);
    for (const char* input : {"1234\r\n12\r\n", "12345\r\n", "1234\r\n1234\r\n", "12\r\r\n"})
        check_chunk_splits(input, options);
}
