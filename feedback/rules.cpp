#include "feedback/rules.hpp"

#include "core/assert.hpp"
#include "core/config_table.hpp"

#include <re2/re2.h>
#include <re2/set.h>
#include <toml.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <utility>

namespace ember::feedback {

struct Rules::Compiled {
    std::vector<std::unique_ptr<re2::RE2>> regexes; // per rule; null without a pattern
    std::vector<int> set_index;                     // per rule; -1 without a pattern
    std::unique_ptr<re2::RE2::Set> set;             // null when it could not be built
};

namespace {

namespace cfg = core::config;

constexpr std::array<std::pair<Command, std::string_view>, 7> kCommandNames{{
    {Command::Connect, "CONN"},
    {Command::Ehlo, "EHLO"},
    {Command::StartTls, "STARTTLS"},
    {Command::Auth, "AUTH"},
    {Command::Mail, "MAIL"},
    {Command::Rcpt, "RCPT"},
    {Command::Data, "DATA"},
}};

std::string upper(std::string_view text) {
    std::string out(text);
    for (auto& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

re2::RE2::Options regex_options() {
    re2::RE2::Options options;
    options.set_case_sensitive(false);
    options.set_log_errors(false);
    options.set_encoding(re2::RE2::Options::EncodingUTF8);
    return options;
}

// Length of the valid UTF-8 sequence at text[i], or 0 when it is not one.
std::size_t utf8_length(std::string_view text, std::size_t i) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    if (lead >= 0xC2 && lead <= 0xDF)
        n = 2;
    else if (lead >= 0xE0 && lead <= 0xEF)
        n = 3;
    else if (lead >= 0xF0 && lead <= 0xF4)
        n = 4;
    if (n == 0 || i + n > text.size())
        return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

bool valid_status_pattern(std::string_view pattern) {
    static const re2::RE2 re(R"(([245xX])(\.[0-9]{1,3}(\.[0-9]{1,3})?)?)");
    return re2::RE2::FullMatch(pattern, re);
}

bool valid_code_prefix(std::string_view code) {
    if (code.empty() || code.size() > 3 || (code[0] != '2' && code[0] != '4' && code[0] != '5'))
        return false;
    return std::all_of(code.begin(), code.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// One [[rule]] table into `out`; false (after reporting) when it is unusable.
using NamedPatterns = std::map<std::string, std::string, std::less<>>;

class RuleReader {
public:
    RuleReader(const toml::value& table, const cfg::Context& ctx, std::string origin,
               const NamedPatterns& named)
        : table_(table), ctx_(ctx), named_(named) {
        rule_.origin = std::move(origin);
    }

    bool read(Rule& out) {
        if (!table_.is_table()) {
            ctx_.error(table_, "[[rule]] must be a table");
            return false;
        }
        cfg::check_unknown_keys(table_, "[[rule]]",
                                {"reason", "pattern", "use", "status", "code", "command", "hard"},
                                ctx_);
        bool ok = read_reason();
        ok = read_pattern() && ok;
        ok = read_status_and_code() && ok;
        ok = read_commands() && ok;
        ok = read_hard() && ok;
        if (ok && rule_.pattern.empty() && rule_.status.empty() && rule_.code.empty()) {
            ctx_.error(table_, "a rule needs at least one of pattern, status, code");
            ok = false;
        }
        if (ok)
            out = std::move(rule_);
        return ok;
    }

private:
    const toml::value* find(const char* key) const {
        const auto& t = table_.as_table();
        const auto it = t.find(key);
        return it == t.end() ? nullptr : &it->second;
    }

    bool read_reason() {
        const auto* v = find("reason");
        if (v == nullptr) {
            ctx_.error(table_, "a rule needs a reason");
            return false;
        }
        std::string name;
        if (!cfg::read_string(*v, name, ctx_))
            return false;
        const auto reason = parse_reason(name);
        if (!reason) {
            ctx_.error(*v, "unknown reason \"" + name + "\"");
            return false;
        }
        rule_.reason = *reason;
        return true;
    }

    bool read_pattern() {
        const auto* v = find("pattern");
        const auto* use = find("use");
        if (v != nullptr && use != nullptr) {
            ctx_.error(*use, "a rule has either pattern or use, not both");
            return false;
        }
        if (use != nullptr)
            return read_use(*use);
        if (v == nullptr)
            return true;
        if (!cfg::read_string(*v, rule_.pattern, ctx_))
            return false;
        const re2::RE2 re(rule_.pattern, regex_options());
        if (!re.ok()) {
            ctx_.error(*v, "bad pattern: " + re.error());
            return false;
        }
        return true;
    }

    // use = "name": the pattern of that name in the file's [patterns] table.
    bool read_use(const toml::value& v) {
        std::string name;
        if (!cfg::read_string(v, name, ctx_))
            return false;
        const auto it = named_.find(name);
        if (it == named_.end()) {
            ctx_.error(v, "no pattern named \"" + name + "\" in [patterns]");
            return false;
        }
        rule_.pattern = it->second;
        return true;
    }

    bool read_status_and_code() {
        bool ok = true;
        if (const auto* v = find("status"); v != nullptr) {
            ok = cfg::read_string(*v, rule_.status, ctx_);
            if (ok && !valid_status_pattern(rule_.status)) {
                ctx_.error(*v, "bad status \"" + rule_.status + "\": want 5, x.7 or 5.1.1");
                ok = false;
            }
        }
        if (const auto* v = find("code"); v != nullptr) {
            const bool read = cfg::read_string(*v, rule_.code, ctx_);
            if (read && !valid_code_prefix(rule_.code)) {
                ctx_.error(*v,
                           "bad code \"" + rule_.code + "\": want 1 to 3 digits, as 5, 55, 550");
                ok = false;
            }
            ok = ok && read;
        }
        return ok;
    }

    bool read_commands() {
        const auto* v = find("command");
        if (v == nullptr)
            return true;
        std::vector<std::string> names;
        if (v->is_string())
            names.push_back(v->as_string());
        else if (!cfg::read_string_list(*v, names, ctx_))
            return false;
        for (const auto& name : names) {
            const auto command = parse_command(name);
            if (command == Command::Unknown) {
                ctx_.error(*v, "unknown command \"" + name +
                                   "\": want CONN, EHLO, STARTTLS, AUTH, MAIL, RCPT or DATA");
                return false;
            }
            rule_.commands.push_back(command);
        }
        return true;
    }

    bool read_hard() {
        const auto* v = find("hard");
        if (v == nullptr)
            return true;
        bool hard = false;
        if (!cfg::read_bool(*v, hard, ctx_))
            return false;
        rule_.hard = hard;
        return true;
    }

    const toml::value& table_;
    const cfg::Context& ctx_;
    const NamedPatterns& named_;
    Rule rule_;
};

// [patterns]: name = "regex", shared by several rules through `use`.
NamedPatterns read_named_patterns(const toml::value& doc, const cfg::Context& ctx) {
    NamedPatterns named;
    const auto& top = doc.as_table();
    const auto it = top.find("patterns");
    if (it == top.end())
        return named;
    if (!it->second.is_table()) {
        ctx.error(it->second, "[patterns] must be a table of name = \"regex\"");
        return named;
    }
    for (const auto& [name, value] : it->second.as_table()) {
        std::string pattern;
        if (!cfg::read_string(value, pattern, ctx))
            continue;
        const re2::RE2 re(pattern, regex_options());
        if (!re.ok()) {
            ctx.error(value, "bad pattern " + name + ": " + re.error());
            continue;
        }
        named.emplace(name, std::move(pattern));
    }
    return named;
}

std::optional<toml::value> parse_document(std::string_view text, const std::string& name,
                                          core::Diagnostics& diag) {
    std::istringstream in{std::string(text)};
    try {
        return toml::parse(in, name);
    } catch (const toml::syntax_error& e) {
        std::string what = e.what();
        what = what.substr(0, what.find('\n'));
        if (what.starts_with("[error] "))
            what.erase(0, 8);
        diag.add(name, static_cast<std::uint32_t>(e.location().line()), "syntax error: " + what);
    } catch (const std::exception& e) {
        diag.add(name, 0, std::string("syntax error: ") + e.what());
    }
    return std::nullopt;
}

std::vector<Rule> read_rules(const toml::value& doc, const std::string& name,
                             core::Diagnostics& diag) {
    const cfg::Context ctx{diag, {}};
    std::vector<Rule> rules;
    cfg::check_unknown_keys(doc, "the rules file", {"rule", "patterns"}, ctx);
    const auto named = read_named_patterns(doc, ctx);
    const auto& top = doc.as_table();
    const auto it = top.find("rule");
    if (it == top.end())
        return rules;
    if (!it->second.is_array()) {
        ctx.error(it->second, "rule must be an array of tables: [[rule]]");
        return rules;
    }
    for (const auto& table : it->second.as_array()) {
        const auto origin = name + ":" + std::to_string(table.location().line());
        Rule rule;
        if (RuleReader(table, ctx, origin, named).read(rule))
            rules.push_back(std::move(rule));
    }
    return rules;
}

bool text_ok(const std::vector<bool>& set_hits, bool set_used, std::string_view text,
             const re2::RE2* regex, int set_index) {
    if (regex == nullptr)
        return true;
    if (set_used)
        return set_hits[static_cast<std::size_t>(set_index)];
    return re2::RE2::PartialMatch(text, *regex);
}

bool conditions_hold(const Rule& rule, const ReplyFacts& facts) {
    if (!rule.status.empty() && !status_matches(rule.status, facts.status))
        return false;
    if (!rule.code.empty()) {
        if (facts.code < 200 || facts.code > 599)
            return false;
        if (!std::to_string(facts.code).starts_with(rule.code))
            return false;
    }
    if (!rule.commands.empty() &&
        std::find(rule.commands.begin(), rule.commands.end(), facts.command) == rule.commands.end())
        return false;
    return true;
}

} // namespace

std::string_view command_name(Command command) {
    for (const auto& [c, name] : kCommandNames) {
        if (c == command)
            return name;
    }
    return "";
}

Command parse_command(std::string_view text) {
    const auto word = upper(text);
    for (const auto& [c, name] : kCommandNames) {
        if (word == name)
            return c;
    }
    if (word.starts_with("RCPT"))
        return Command::Rcpt;
    if (word.starts_with("MAIL"))
        return Command::Mail;
    if (word == "HELO" || word == "LHLO")
        return Command::Ehlo;
    if (word.starts_with("DATA") || word == "END OF DATA" || word.starts_with("BDAT") ||
        word == "END OF MESSAGE")
        return Command::Data;
    if (word == "CONNECT" || word == "GREETING" || word == "BANNER" ||
        word == "INITIAL CONNECTION" || word == "CONNECTION")
        return Command::Connect;
    return Command::Unknown;
}

Rules::Rules() : compiled_(std::make_unique<Compiled>()) {}
Rules::~Rules() = default;
Rules::Rules(Rules&&) noexcept = default;
Rules& Rules::operator=(Rules&&) noexcept = default;

const Rules& Rules::builtin() {
    static const Rules rules = [] {
        core::Diagnostics diag;
        auto parsed = parse(builtin_text(), "bounce-rules.toml", diag);
        // The shipped file is tested; an error in it is a build defect.
        EMBER_ASSERT(diag.empty());
        return parsed;
    }();
    return rules;
}

Rules Rules::parse(std::string_view toml_text, const std::string& name, core::Diagnostics& diag) {
    Rules out;
    if (const auto doc = parse_document(toml_text, name, diag))
        out.rules_ = read_rules(*doc, name, diag);
    out.compile();
    return out;
}

Rules Rules::load(const std::vector<std::string>& paths, core::Diagnostics& diag,
                  bool with_builtin) {
    Rules out;
    if (with_builtin)
        out = parse(builtin_text(), "bounce-rules.toml", diag);
    for (const auto& path : paths) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            diag.add(path, 0, "cannot read the rules file");
            continue;
        }
        const std::string text{std::istreambuf_iterator<char>(in), {}};
        out.prepend(parse(text, path, diag));
    }
    return out;
}

void Rules::prepend(Rules&& other) {
    std::vector<Rule> merged = std::move(other.rules_);
    merged.insert(merged.end(), std::make_move_iterator(rules_.begin()),
                  std::make_move_iterator(rules_.end()));
    rules_ = std::move(merged);
    compile();
}

void Rules::compile() {
    auto compiled = std::make_unique<Compiled>();
    auto set = std::make_unique<re2::RE2::Set>(regex_options(), re2::RE2::UNANCHORED);
    bool set_ok = true;
    for (const auto& rule : rules_) {
        if (rule.pattern.empty()) {
            compiled->regexes.push_back(nullptr);
            compiled->set_index.push_back(-1);
            continue;
        }
        compiled->regexes.push_back(std::make_unique<re2::RE2>(rule.pattern, regex_options()));
        std::string error;
        const int index = set_ok ? set->Add(rule.pattern, &error) : -1;
        set_ok = set_ok && index >= 0;
        compiled->set_index.push_back(index);
    }
    // Without the set (it cannot be built past RE2's memory budget) every
    // pattern is tried on its own: slower, same answers.
    if (set_ok && set->Compile())
        compiled->set = std::move(set);
    compiled_ = std::move(compiled);
}

const Rule* Rules::match(const ReplyFacts& facts) const {
    std::vector<bool> hits;
    bool set_used = false;
    if (compiled_->set) {
        std::vector<int> matched;
        re2::RE2::Set::ErrorInfo info{};
        const bool any = compiled_->set->Match(facts.text, &matched, &info);
        if (any || info.kind == re2::RE2::Set::kNoError) {
            hits.assign(rules_.size(), false);
            for (const int m : matched)
                hits[static_cast<std::size_t>(m)] = true;
            set_used = true;
        }
    }
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        if (!conditions_hold(rules_[i], facts))
            continue;
        if (text_ok(hits, set_used, facts.text, compiled_->regexes[i].get(),
                    compiled_->set_index[i]))
            return &rules_[i];
    }
    return nullptr;
}

std::string normalize_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (is_space(c)) {
            pending_space = !out.empty();
            ++i;
            continue;
        }
        if (pending_space)
            out += ' ';
        pending_space = false;
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x80) {
            out += byte < 0x20 || byte == 0x7F ? '?' : c;
            ++i;
            continue;
        }
        const auto n = utf8_length(text, i);
        out.append(n == 0 ? std::string_view("?") : text.substr(i, n));
        i += n == 0 ? 1 : n;
    }
    return out;
}

bool status_matches(std::string_view pattern, std::string_view status) {
    if (pattern.empty())
        return true;
    std::size_t p = 0;
    std::size_t s = 0;
    for (int component = 0; p < pattern.size(); ++component) {
        const auto p_end = std::min(pattern.find('.', p), pattern.size());
        const auto s_end = std::min(status.find('.', s), status.size());
        if (s >= status.size())
            return false;
        const auto want = pattern.substr(p, p_end - p);
        const auto have = status.substr(s, s_end - s);
        const bool wildcard = component == 0 && (want == "x" || want == "X");
        if (!wildcard && want != have)
            return false;
        p = p_end + 1;
        s = s_end + 1;
    }
    return true;
}

} // namespace ember::feedback
