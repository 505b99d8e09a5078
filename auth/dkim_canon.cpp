#include "auth/dkim_canon.hpp"

#include "auth/dkim_crypto.hpp"

namespace ember::auth::dkim {
namespace {

constexpr std::string_view kCrlf = "\r\n";

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim_wsp_right(std::string_view s) {
    while (!s.empty() && is_wsp(s.back()))
        s.remove_suffix(1);
    return s;
}

// Appends `text` with every run of WSP (and every CRLF inside it, which
// relaxed unfolding deletes) turned into one SP, leading and trailing WSP
// dropped.
void append_compressed_value(std::string_view text, std::string& out) {
    bool pending_space = false;
    bool any = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
            ++i; // unfold: the CRLF goes, the WSP after it stays
            continue;
        }
        if (is_wsp(c)) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            out.push_back(' ');
        pending_space = false;
        any = true;
        out.push_back(c);
    }
}

// Where the canonical bytes go: a string (tests) or a SHA-256 (signing).
class Output {
public:
    virtual ~Output() = default;
    virtual void write(std::string_view bytes) = 0;
};

class StringOutput final : public Output {
public:
    void write(std::string_view bytes) override { text.append(bytes); }
    std::string text;
};

// Batches small writes so a 5 MB body costs a few hundred digest updates.
class HashOutput final : public Output {
public:
    HashOutput() { buffer_.reserve(kBatch); }
    void write(std::string_view bytes) override {
        if (buffer_.size() + bytes.size() > kBatch)
            flush();
        if (bytes.size() >= kBatch)
            hasher_.update(bytes);
        else
            buffer_.append(bytes);
    }
    Sha256 finish() {
        flush();
        return hasher_.finish();
    }

private:
    static constexpr std::size_t kBatch = 16 * 1024;
    void flush() {
        hasher_.update(buffer_);
        buffer_.clear();
    }
    Sha256Hasher hasher_;
    std::string buffer_;
};

// 3.4.3: the body up to its last non-empty line, then one CRLF; an empty
// body is one CRLF. Trailing "empty lines" are exactly CRLF pairs.
void simple_body(std::string_view body, Output& out) {
    while (body.size() >= 2 && body.substr(body.size() - 2) == kCrlf)
        body.remove_suffix(2);
    out.write(body);
    out.write(kCrlf);
}

// True when relaxed canonicalization leaves the line as it is: no HTAB, no
// SP followed by WSP, no SP at the end. Most lines of real mail are.
bool relaxed_clean(std::string_view line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\t')
            return false;
        if (line[i] == ' ' && (i + 1 == line.size() || is_wsp(line[i + 1])))
            return false;
    }
    return true;
}

void append_relaxed_line(std::string_view content, std::string& line) {
    line.clear();
    bool in_wsp = false;
    for (const char c : content) {
        if (is_wsp(c)) {
            if (!in_wsp)
                line.push_back(' ');
            in_wsp = true;
            continue;
        }
        in_wsp = false;
        line.push_back(c);
    }
    line.append(kCrlf);
}

// 3.4.4: per line, WSP runs become one SP and trailing WSP goes; empty lines
// at the end are ignored; a non-empty body ends with CRLF; an empty one is "".
void relaxed_body(std::string_view body, Output& out) {
    std::size_t pending_empty = 0;
    std::string line;
    while (!body.empty()) {
        const auto end = body.find(kCrlf);
        const bool has_crlf = end != std::string_view::npos;
        const auto raw = body.substr(0, end);
        const auto whole = body.substr(0, has_crlf ? end + 2 : body.size());
        body.remove_prefix(whole.size());
        const auto content = trim_wsp_right(raw);
        if (content.empty()) {
            ++pending_empty;
            continue;
        }
        for (; pending_empty > 0; --pending_empty)
            out.write(kCrlf);
        if (has_crlf && relaxed_clean(raw)) {
            out.write(whole); // already canonical: no copy into `line`
            continue;
        }
        append_relaxed_line(content, line);
        out.write(line);
    }
}

void canonical_body(DkimCanon canon, std::string_view body, Output& out) {
    if (canon == DkimCanon::Simple)
        simple_body(body, out);
    else
        relaxed_body(body, out);
}

} // namespace

SplitMessage split_message(std::string_view message) {
    SplitMessage split;
    std::size_t pos = 0;
    while (pos < message.size()) {
        const auto eol = message.find(kCrlf, pos);
        const auto line_end = eol == std::string_view::npos ? message.size() : eol;
        if (line_end == pos) { // the empty line: the body follows
            split.body = message.substr(pos + 2);
            return split;
        }
        const bool continuation = is_wsp(message[pos]) && !split.headers.empty();
        if (continuation) {
            auto& last = split.headers.back();
            last.raw = std::string_view(
                last.raw.data(),
                static_cast<std::size_t>(message.data() + line_end - last.raw.data()));
        } else {
            const auto field = message.substr(pos, line_end - pos);
            const auto colon = field.find(':');
            const auto name =
                colon == std::string_view::npos ? std::string_view{} : field.substr(0, colon);
            split.headers.push_back({trim_wsp_right(name), field});
        }
        pos = eol == std::string_view::npos ? message.size() : eol + 2;
    }
    return split;
}

void canonicalize_header(DkimCanon canon, std::string_view raw_field, std::string& out) {
    if (canon == DkimCanon::Simple) {
        out.append(raw_field);
        return;
    }
    const auto colon = raw_field.find(':');
    const auto name = trim_wsp_right(raw_field.substr(0, colon));
    for (const char c : name)
        out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    if (colon == std::string_view::npos)
        return;
    out.push_back(':');
    append_compressed_value(raw_field.substr(colon + 1), out);
}

std::string canonicalize_body(DkimCanon canon, std::string_view body) {
    StringOutput out;
    canonical_body(canon, body, out);
    return std::move(out.text);
}

Sha256 body_hash(DkimCanon canon, std::string_view body) {
    HashOutput out;
    canonical_body(canon, body, out);
    return out.finish();
}

} // namespace ember::auth::dkim
