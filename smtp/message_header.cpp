#include "smtp/message_header.hpp"

#include "core/assert.hpp"
#include "smtp/address.hpp"

#include <fmt/core.h>

#include <array>
#include <utility>

namespace ember::smtp {

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

// ---- header block ---------------------------------------------------------

bool is_field_name(std::string_view name) {
    if (name.empty())
        return false;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 33 || u > 126 || c == ':')
            return false;
    }
    return true;
}

// One physical line: its content (line end removed) and where the next starts.
struct Line {
    std::size_t begin = 0;
    std::size_t end = 0; // content end, before CR LF
    std::size_t next = 0;
};

Line line_at(std::string_view text, std::size_t pos) {
    const auto nl = text.find('\n', pos);
    Line line{pos, nl == std::string_view::npos ? text.size() : nl, 0};
    line.next = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.end > line.begin && text[line.end - 1] == '\r')
        --line.end;
    return line;
}

// Builds the block field by field; a field's value is copied once, when the
// next field starts, so a header folded over many lines costs linear time.
class BlockBuilder {
public:
    explicit BlockBuilder(std::string_view message) : message_(message) {}

    HeaderBlock run() {
        std::size_t pos = 0;
        for (int number = 1; pos < message_.size(); ++number) {
            const auto line = line_at(message_, pos);
            if (line.end == line.begin) {
                close_field();
                block_.body_offset = line.next;
                return std::move(block_);
            }
            if (!take_line(line, number)) {
                close_field();
                block_.body_offset = line.begin;
                return std::move(block_);
            }
            pos = line.next;
        }
        close_field();
        block_.body_offset = message_.size();
        return std::move(block_);
    }

private:
    bool take_line(const Line& line, int number) {
        const auto text = message_.substr(line.begin, line.end - line.begin);
        if (is_wsp(text.front())) {
            if (block_.fields.empty())
                return fail(number, "folded line before the first header field");
            value_end_ = line.end;
            return true;
        }
        const auto colon = text.find(':');
        if (colon == std::string_view::npos)
            return fail(number, "header line without a colon");
        auto name = text.substr(0, colon);
        while (!name.empty() && is_wsp(name.back())) // obs-optional (RFC 5322 4.5)
            name.remove_suffix(1);
        if (!is_field_name(name))
            return fail(number, "invalid header field name");
        close_field();
        block_.fields.push_back(HeaderField{std::string(name), {}});
        value_begin_ = line.begin + colon + 1;
        value_end_ = line.end;
        open_ = true;
        return true;
    }

    void close_field() {
        if (open_)
            block_.fields.back().value = message_.substr(value_begin_, value_end_ - value_begin_);
        open_ = false;
    }

    bool fail(int number, std::string_view why) {
        block_.malformed = true;
        block_.error = fmt::format("line {}: {}", number, why);
        return false;
    }

    std::string_view message_;
    HeaderBlock block_;
    std::size_t value_begin_ = 0;
    std::size_t value_end_ = 0;
    bool open_ = false; // the last field's value is not yet copied
};

// ---- address lexer (RFC 5322 3.2) ----------------------------------------

enum class Tok { Atom, Quoted, Literal, Special, End };

struct Token {
    Tok kind = Tok::End;
    std::string_view text; // as written: quotes and brackets included
    bool space_before = false;
};

bool is_atext(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80)
        return true; // non-ASCII: RFC 6532 3.2 (validity checked up front)
    static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
    return kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

// Text allowed inside quotes, comments and literals besides their own
// delimiters: printable ASCII, WSP and UTF-8. Other controls (obs-NO-WS-CTL)
// are refused: nothing legitimate sends them and they end up in logs.
bool is_inner_text(unsigned char c) {
    return c == '\t' || (c >= 32 && c != 127);
}

class Lexer {
public:
    explicit Lexer(std::string_view text) : text_(text) {}

    // All tokens, ending with End; nullopt on unbalanced or invalid text.
    std::optional<std::vector<Token>> run() {
        std::vector<Token> out;
        while (true) {
            bool space = false;
            if (!skip_cfws(space))
                return std::nullopt;
            if (pos_ == text_.size()) {
                out.push_back({Tok::End, {}, space});
                return out;
            }
            auto token = next_token();
            if (!token)
                return std::nullopt;
            token->space_before = space;
            out.push_back(*token);
        }
    }

private:
    // FWS: WSP, or a line end followed by WSP (RFC 5322 3.2.2).
    bool skip_fold() {
        std::size_t n = 0;
        if (text_.substr(pos_, 2) == "\r\n")
            n = 2;
        else if (text_.substr(pos_, 1) == "\n")
            n = 1;
        if (n == 0 || pos_ + n >= text_.size() || !is_wsp(text_[pos_ + n]))
            return false;
        pos_ += n;
        return true;
    }

    bool skip_cfws(bool& space) {
        while (pos_ < text_.size()) {
            if (is_wsp(text_[pos_])) {
                ++pos_;
            } else if (text_[pos_] == '(') {
                if (!skip_comment())
                    return false;
            } else if (!skip_fold()) {
                return true;
            }
            space = true;
        }
        return true;
    }

    bool skip_comment() {
        int depth = 0;
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == '(') {
                ++depth;
            } else if (c == ')') {
                if (--depth == 0) {
                    ++pos_;
                    return true;
                }
            } else if (c == '\\') {
                if (!skip_quoted_pair())
                    return false;
                continue;
            } else if (skip_fold()) {
                continue;
            } else if (!is_inner_text(static_cast<unsigned char>(c))) {
                return false;
            }
            ++pos_;
        }
        return false;
    }

    bool skip_quoted_pair() {
        if (pos_ + 1 >= text_.size() || !is_inner_text(static_cast<unsigned char>(text_[pos_ + 1])))
            return false;
        pos_ += 2;
        return true;
    }

    // Through the closing delimiter; quoted-pairs and folds allowed inside.
    std::optional<Token> delimited(Tok kind, char close, std::string_view forbidden) {
        const auto begin = pos_++;
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == close) {
                ++pos_;
                return Token{kind, text_.substr(begin, pos_ - begin)};
            }
            if (c == '\\') {
                if (!skip_quoted_pair())
                    return std::nullopt;
            } else if (skip_fold()) {
                continue;
            } else if (forbidden.find(c) != std::string_view::npos ||
                       !is_inner_text(static_cast<unsigned char>(c))) {
                return std::nullopt;
            } else {
                ++pos_;
            }
        }
        return std::nullopt;
    }

    // RFC 2047 2: "=?" charset "?" encoding "?" encoded-text "?=", taken whole
    // so the specials some encoders leave in encoded-text do not split it.
    std::size_t encoded_word_length() const {
        const auto rest = text_.substr(pos_);
        if (rest.substr(0, 2) != "=?")
            return 0;
        const auto q1 = rest.find('?', 2);
        const auto q2 = q1 == std::string_view::npos ? q1 : rest.find('?', q1 + 1);
        const auto end = q2 == std::string_view::npos ? q2 : rest.find("?=", q2 + 1);
        if (end == std::string_view::npos || end > 75)
            return 0; // RFC 2047 2: an encoded-word is at most 75 characters
        for (const char c : rest.substr(0, end)) {
            const auto u = static_cast<unsigned char>(c);
            if (u <= 32 || u >= 127)
                return 0;
        }
        return end + 2;
    }

    std::optional<Token> next_token() {
        const char c = text_[pos_];
        if (c == '"')
            return delimited(Tok::Quoted, '"', "");
        if (c == '[')
            return delimited(Tok::Literal, ']', "[");
        if (std::string_view("<>@,;:.").find(c) != std::string_view::npos)
            return Token{Tok::Special, text_.substr(pos_++, 1)};
        const auto begin = pos_;
        pos_ += encoded_word_length();
        while (pos_ < text_.size() && is_atext(static_cast<unsigned char>(text_[pos_])))
            ++pos_;
        if (pos_ == begin)
            return std::nullopt; // ')', ']', '\\' or a control character
        return Token{Tok::Atom, text_.substr(begin, pos_ - begin)};
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

// ---- address parser (RFC 5322 3.4, obs- forms of 4.4) ----------------------

bool is_word(const Token& t) {
    return t.kind == Tok::Atom || t.kind == Tok::Quoted;
}

// The content of a quoted-string: quotes, quoted-pair backslashes and fold
// line ends removed.
std::string unquote(std::string_view quoted) {
    std::string out;
    for (std::size_t i = 1; i + 1 < quoted.size(); ++i) {
        if (quoted[i] == '\\')
            ++i;
        if (quoted[i] != '\r' && quoted[i] != '\n')
            out += quoted[i];
    }
    return out;
}

class AddressParser {
public:
    explicit AddressParser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

    std::optional<std::vector<Mailbox>> list(bool allow_groups) {
        std::vector<Mailbox> out;
        bool any = false;
        while (true) {
            while (special(','))
                ++pos_; // obs-addr-list: empty elements
            if (peek().kind == Tok::End)
                break;
            if (!address(out, allow_groups))
                return std::nullopt;
            any = true;
            if (!special(',') && peek().kind != Tok::End)
                return std::nullopt;
        }
        if (!any)
            return std::nullopt;
        return out;
    }

private:
    const Token& peek() const { return tokens_[pos_]; }
    bool special(char c) const { return peek().kind == Tok::Special && peek().text.front() == c; }
    bool expect(char c) {
        if (!special(c))
            return false;
        ++pos_;
        return true;
    }

    // A run of words and dots: a display-name or a local part, decided by
    // what follows it.
    std::pair<std::size_t, std::size_t> words() {
        const auto begin = pos_;
        while (is_word(peek()) || special('.'))
            ++pos_;
        return {begin, pos_};
    }

    bool address(std::vector<Mailbox>& out, bool allow_groups) {
        if (special('<'))
            return angle_addr(out, {});
        const auto run = words();
        if (special('@')) {
            Mailbox m;
            if (!local_part(run, m.local_part) || !at_domain(m.domain))
                return false;
            out.push_back(std::move(m));
            return true;
        }
        std::string name;
        if (!display_name(run, name))
            return false;
        if (special('<'))
            return angle_addr(out, std::move(name));
        if (allow_groups && expect(':'))
            return group_rest(out);
        return false;
    }

    // group-list after "name:", through ";" (RFC 5322 3.4: may be empty).
    bool group_rest(std::vector<Mailbox>& out) {
        while (true) {
            while (special(','))
                ++pos_;
            if (expect(';'))
                return true;
            if (peek().kind == Tok::End || !address(out, false))
                return false;
            if (!special(',') && !special(';'))
                return false;
        }
    }

    bool angle_addr(std::vector<Mailbox>& out, std::string name) {
        ++pos_; // '<'
        if (special('@') && !skip_obs_route())
            return false;
        Mailbox m;
        m.display_name = std::move(name);
        if (!local_part(words(), m.local_part) || !at_domain(m.domain) || !expect('>'))
            return false;
        out.push_back(std::move(m));
        return true;
    }

    // obs-route = obs-domain-list ":" (RFC 5322 4.4), accepted and dropped.
    bool skip_obs_route() {
        std::string ignored;
        while (special('@') || special(',')) {
            if (special(',')) {
                ++pos_;
            } else if (!at_domain(ignored)) {
                return false;
            }
        }
        return expect(':');
    }

    // word *("." word): dot-atom, quoted-string or obs-local-part.
    bool local_part(std::pair<std::size_t, std::size_t> run, std::string& out) const {
        if (run.first == run.second)
            return false;
        for (auto i = run.first; i < run.second; ++i) {
            const bool want_word = (i - run.first) % 2 == 0;
            if (is_word(tokens_[i]) != want_word)
                return false;
            out += unfold(tokens_[i].text); // a quoted-string may hold a fold
        }
        return is_word(tokens_[run.second - 1]);
    }

    // phrase / obs-phrase: a word, then words and dots, joined as written.
    bool display_name(std::pair<std::size_t, std::size_t> run, std::string& out) const {
        if (run.first == run.second || !is_word(tokens_[run.first]))
            return false;
        for (auto i = run.first; i < run.second; ++i) {
            const auto& t = tokens_[i];
            if (i > run.first && t.space_before)
                out += ' ';
            out += t.kind == Tok::Quoted ? unquote(t.text) : std::string(t.text);
        }
        return true;
    }

    // "@" then a dot-atom (obs-domain) or a domain literal.
    bool at_domain(std::string& out) {
        if (!expect('@'))
            return false;
        if (peek().kind == Tok::Literal) {
            out = unfold(tokens_[pos_++].text);
            return true;
        }
        while (true) {
            if (peek().kind != Tok::Atom)
                return false;
            out += tokens_[pos_++].text;
            if (!special('.'))
                return true;
            out += '.';
            ++pos_;
        }
    }

    std::vector<Token> tokens_;
    std::size_t pos_ = 0;
};

std::optional<std::vector<Mailbox>> parse_list(std::string_view text, bool allow_groups) {
    if (!is_valid_utf8(text))
        return std::nullopt;
    auto tokens = Lexer(text).run();
    if (!tokens)
        return std::nullopt;
    return AddressParser(std::move(*tokens)).list(allow_groups);
}

// ---- submission checks (RFC 5322 3.6) -------------------------------------

// The fields of the 3.6 table with a maximum of one (Resent- blocks and
// trace fields may repeat; From is handled apart).
constexpr std::array<std::string_view, 10> kAtMostOnce{
    "Date", "Sender",     "Reply-To",    "To",         "Cc",
    "Bcc",  "Message-ID", "In-Reply-To", "References", "Subject"};

HeaderCheck refuse(std::string_view why) {
    HeaderCheck check;
    check.reply = make_reply(550, "5.6.0", fmt::format("Bad message header: {}", why));
    return check;
}

std::size_t count_fields(const HeaderBlock& block, std::string_view name) {
    std::size_t n = 0;
    const auto lower = ascii_lower(name);
    for (const auto& f : block.fields)
        n += ascii_lower(f.name) == lower ? 1 : 0;
    return n;
}

bool is_blank(std::string_view value) {
    for (const char c : value) {
        if (!is_wsp(c) && c != '\r' && c != '\n')
            return false;
    }
    return true;
}

// The address fields other than From: the problem, or "" when all parse.
std::string address_field_problem(const HeaderBlock& block) {
    if (const auto* sender = find_field(block, "Sender")) {
        const auto list = parse_mailbox_list(sender->value);
        if (!list || list->size() != 1) // RFC 5322 3.6.2: one mailbox
            return "unparseable Sender: header";
    }
    for (const std::string_view name : {"Reply-To", "To", "Cc", "Bcc"}) {
        const auto* field = find_field(block, name);
        // RFC 5322 3.6.3: Bcc alone may be empty.
        if (field == nullptr || (name == "Bcc" && is_blank(field->value)))
            continue;
        if (!parse_address_list(field->value))
            return fmt::format("unparseable {}: header", name);
    }
    return {};
}

// Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil inverse).
struct CivilDate {
    std::int64_t year;
    unsigned month;
    unsigned day;
};

CivilDate civil_from_days(std::int64_t z) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned day = doy - (153 * mp + 2) / 5 + 1;
    const unsigned month = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

} // namespace

HeaderBlock parse_header_block(std::string_view message) {
    return BlockBuilder(message).run();
}

std::string unfold(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\n' || (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n'))
            continue;
        out += value[i];
    }
    return out;
}

const HeaderField* find_field(const HeaderBlock& block, std::string_view name) {
    const auto lower = ascii_lower(name);
    for (const auto& f : block.fields) {
        if (ascii_lower(f.name) == lower)
            return &f;
    }
    return nullptr;
}

std::optional<std::vector<Mailbox>> parse_address_list(std::string_view text) {
    return parse_list(text, true);
}

std::optional<std::vector<Mailbox>> parse_mailbox_list(std::string_view text) {
    return parse_list(text, false);
}

HeaderCheck check_submission_headers(const HeaderBlock& block) {
    if (block.malformed)
        return refuse(block.error);
    const auto froms = count_fields(block, "From");
    if (froms == 0)
        return refuse("no From: header");
    if (froms > 1)
        return refuse("more than one From: header");
    for (const auto name : kAtMostOnce) {
        if (count_fields(block, name) > 1)
            return refuse(fmt::format("duplicate {}: header", name));
    }
    const auto from = parse_mailbox_list(find_field(block, "From")->value);
    if (!from)
        return refuse("unparseable From: header");
    if (from->size() > 1 && find_field(block, "Sender") == nullptr) // RFC 5322 3.6.2
        return refuse("From: header has several mailboxes but there is no Sender: header");
    if (const auto why = address_field_problem(block); !why.empty())
        return refuse(why);
    HeaderCheck check;
    check.ok = true;
    check.has_message_id = find_field(block, "Message-ID") != nullptr;
    check.has_date = find_field(block, "Date") != nullptr;
    return check;
}

std::string format_rfc5322_date(std::int64_t unix_seconds, int utc_offset_minutes) {
    EMBER_ASSERT(utc_offset_minutes > -1440 && utc_offset_minutes < 1440);
    static constexpr std::array<std::string_view, 7> kDays{"Sun", "Mon", "Tue", "Wed",
                                                           "Thu", "Fri", "Sat"};
    static constexpr std::array<std::string_view, 12> kMonths{
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::int64_t local = unix_seconds + std::int64_t{utc_offset_minutes} * 60;
    const std::int64_t days = floor_div(local, 86400);
    const std::int64_t secs = local - days * 86400;
    const auto date = civil_from_days(days);
    const auto weekday = static_cast<std::size_t>(((days % 7) + 11) % 7); // 1970-01-01: Thu
    const int offset = utc_offset_minutes < 0 ? -utc_offset_minutes : utc_offset_minutes;
    return fmt::format("{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}", kDays[weekday], date.day,
                       kMonths[date.month - 1], date.year, secs / 3600, secs / 60 % 60, secs % 60,
                       utc_offset_minutes < 0 ? '-' : '+', offset / 60, offset % 60);
}

std::vector<std::string> from_domains(const HeaderBlock& header) {
    std::vector<std::string> out;
    for (const auto& field : header.fields) {
        if (ascii_lower(field.name) != "from")
            continue;
        const auto mailboxes = parse_mailbox_list(unfold(field.value));
        if (!mailboxes)
            continue;
        for (const auto& m : *mailboxes) {
            std::string domain = m.domain;
            for (auto& c : domain) {
                if (c >= 'A' && c <= 'Z')
                    c = static_cast<char>(c - 'A' + 'a');
            }
            out.push_back(std::move(domain));
        }
    }
    return out;
}

} // namespace ember::smtp
