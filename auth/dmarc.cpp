#include "auth/dmarc.hpp"

#include <fmt/core.h>
#include <libpsl.h>

#include <charconv>
#include <limits>
#include <set>
#include <utility>

namespace ember::auth {

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_wsp(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && is_wsp(text.back()))
        text.remove_suffix(1);
    return text;
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// Lower-cased, without the root's trailing dot.
std::string normalize_domain(std::string_view domain) {
    if (domain.ends_with('.'))
        domain.remove_suffix(1);
    return ascii_lower(domain);
}

struct Tag {
    std::string name; // lower-cased
    std::string_view value;
    bool has_equals = false;
};

// tag-list: tags separated by ';', WSP around names, '=' and values.
std::vector<Tag> split_tags(std::string_view txt) {
    std::vector<Tag> tags;
    std::size_t start = 0;
    while (start <= txt.size()) {
        const auto end = std::min(txt.find(';', start), txt.size());
        const auto part = trim(txt.substr(start, end - start));
        if (!part.empty()) {
            const auto eq = part.find('=');
            Tag tag;
            tag.name = ascii_lower(trim(part.substr(0, eq)));
            tag.has_equals = eq != std::string_view::npos;
            tag.value = tag.has_equals ? trim(part.substr(eq + 1)) : std::string_view();
            tags.push_back(std::move(tag));
        }
        start = end + 1;
    }
    return tags;
}

std::optional<DmarcPolicy> parse_policy(std::string_view value) {
    const std::string v = ascii_lower(value);
    if (v == "none")
        return DmarcPolicy::None;
    if (v == "quarantine")
        return DmarcPolicy::Quarantine;
    if (v == "reject")
        return DmarcPolicy::Reject;
    return std::nullopt;
}

std::optional<AlignmentMode> parse_mode(std::string_view value) {
    const std::string v = ascii_lower(value);
    if (v == "r")
        return AlignmentMode::Relaxed;
    if (v == "s")
        return AlignmentMode::Strict;
    return std::nullopt;
}

template <typename T> std::optional<T> parse_number(std::string_view value, T max) {
    T n{};
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc{} || ptr != value.data() + value.size() || n > max)
        return std::nullopt;
    return n;
}

bool is_scheme_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '-' || c == '.';
}

// dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (6.4). The URI
// needs a scheme (RFC 3986 3.1) and visible ASCII; "mailto:" is the only
// scheme ember would send to, but any valid URI counts for 6.6.3 step 6.
bool is_dmarc_uri(std::string_view uri) {
    const auto bang = uri.rfind('!');
    if (bang != std::string_view::npos) {
        std::string_view size = uri.substr(bang + 1);
        if (!size.empty() &&
            std::string_view("kmgtKMGT").find(size.back()) != std::string_view::npos)
            size.remove_suffix(1);
        if (!parse_number<std::uint64_t>(size, std::numeric_limits<std::uint64_t>::max()))
            return false;
        uri = uri.substr(0, bang);
    }
    const auto colon = uri.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == uri.size())
        return false;
    const char first = uri.front();
    if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z')))
        return false;
    for (std::size_t i = 0; i < colon; ++i) {
        if (!is_scheme_char(uri[i]))
            return false;
    }
    for (const char c : uri) {
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    return true;
}

std::vector<std::string> parse_uris(std::string_view value, std::string_view tag,
                                    std::vector<std::string>& warnings) {
    std::vector<std::string> uris;
    std::size_t start = 0;
    while (start <= value.size()) {
        const auto end = std::min(value.find(',', start), value.size());
        const auto uri = trim(value.substr(start, end - start));
        if (is_dmarc_uri(uri))
            uris.emplace_back(uri);
        else
            warnings.push_back(fmt::format("{}: '{}' is not a valid URI, ignored", tag, uri));
        start = end + 1;
    }
    return uris;
}

// Colon-separated keywords, each one of `allowed` (case-insensitive).
bool keyword_list(std::string_view value, std::initializer_list<std::string_view> allowed) {
    std::size_t start = 0;
    while (start <= value.size()) {
        const auto end = std::min(value.find(':', start), value.size());
        const std::string word = ascii_lower(trim(value.substr(start, end - start)));
        bool ok = false;
        for (const auto a : allowed)
            ok = ok || word == a;
        if (!ok)
            return false;
        start = end + 1;
    }
    return true;
}

struct ParseState {
    DmarcRecord record;
    bool p_valid = false;
    bool sp_invalid = false;
};

void bad_value(ParseState& state, const Tag& tag) {
    state.record.warnings.push_back(
        fmt::format("{}={}: invalid value, the default applies", tag.name, tag.value));
}

void apply_tag(ParseState& state, const Tag& tag) {
    DmarcRecord& r = state.record;
    if (tag.name == "p") {
        const auto p = parse_policy(tag.value);
        state.p_valid = p.has_value();
        r.policy = p.value_or(DmarcPolicy::None);
    } else if (tag.name == "sp") {
        r.subdomain_policy = parse_policy(tag.value);
        state.sp_invalid = !r.subdomain_policy;
    } else if (tag.name == "adkim" || tag.name == "aspf") {
        const auto mode = parse_mode(tag.value);
        if (!mode)
            bad_value(state, tag);
        (tag.name == "adkim" ? r.dkim : r.spf) = mode.value_or(AlignmentMode::Relaxed);
    } else if (tag.name == "pct") {
        const auto pct = parse_number<unsigned>(tag.value, 100);
        if (!pct)
            bad_value(state, tag);
        r.percent = pct.value_or(100);
    } else if (tag.name == "rua" || tag.name == "ruf") {
        (tag.name == "rua" ? r.aggregate_uris : r.failure_uris) =
            parse_uris(tag.value, tag.name, r.warnings);
    } else if (tag.name == "fo") {
        const bool ok = keyword_list(tag.value, {"0", "1", "d", "s"});
        if (!ok)
            bad_value(state, tag);
        r.failure_options = ok ? ascii_lower(tag.value) : "0";
    } else if (tag.name == "rf") {
        const bool ok = keyword_list(tag.value, {"afrf"});
        if (!ok)
            bad_value(state, tag);
        r.report_format = ok ? ascii_lower(tag.value) : "afrf";
    } else if (tag.name == "ri") {
        const auto ri = parse_number<std::uint32_t>(tag.value, 0xffffffffu);
        if (!ri)
            bad_value(state, tag);
        r.report_interval = ri.value_or(86400);
    } // 6.3: unknown tags MUST be ignored.
}

bool plausible_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 253 || domain.front() == '.' ||
        domain.find("..") != std::string_view::npos)
        return false;
    for (const char c : domain) { // UTF-8 (U-labels) is fine; controls and spaces are not
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f || c == '[' || c == ']')
            return false;
    }
    return true;
}

} // namespace

std::string_view dmarc_policy_name(DmarcPolicy policy) {
    switch (policy) {
    case DmarcPolicy::None:
        return "none";
    case DmarcPolicy::Quarantine:
        return "quarantine";
    case DmarcPolicy::Reject:
        return "reject";
    }
    return "none";
}

bool is_dmarc_record(std::string_view txt) {
    const auto semicolon = txt.find(';');
    const auto first = trim(txt.substr(0, semicolon));
    const auto eq = first.find('=');
    if (eq == std::string_view::npos)
        return false;
    const auto name = trim(first.substr(0, eq));
    return (name == "v" || name == "V") && trim(first.substr(eq + 1)) == "DMARC1";
}

DmarcParse parse_dmarc_record(std::string_view txt) {
    DmarcParse out;
    if (!is_dmarc_record(txt)) {
        out.error = "not a DMARC record (it must start with v=DMARC1)";
        return out;
    }
    const auto tags = split_tags(txt);
    ParseState state;
    std::set<std::string> seen{"v"};
    for (std::size_t i = 1; i < tags.size(); ++i) {
        const Tag& tag = tags[i];
        if (!tag.has_equals || tag.name.empty()) {
            state.record.warnings.push_back(fmt::format("'{}' is not a tag, ignored", tag.name));
            continue;
        }
        if (!seen.insert(tag.name).second) {
            state.record.warnings.push_back(fmt::format("{}= repeated, ignored", tag.name));
            continue;
        }
        apply_tag(state, tag);
    }
    if (!state.p_valid || state.sp_invalid) {
        const std::string what = !state.p_valid ? "p= is missing or invalid" : "sp= is invalid";
        if (state.record.aggregate_uris.empty()) {
            out.error = what;
            return out;
        }
        // 6.6.3 step 6: act as if the record were "v=DMARC1; p=none".
        state.record.policy = DmarcPolicy::None;
        state.record.subdomain_policy.reset();
        state.record.policy_from_rua = true;
        state.record.warnings.push_back(what + ", read as p=none because rua= is valid");
    }
    out.record = std::move(state.record);
    return out;
}

PublicSuffixList::PublicSuffixList(psl_ctx_st* owned, const psl_ctx_st* view)
    : owned_(owned), view_(view) {}

PublicSuffixList::~PublicSuffixList() {
    if (owned_ != nullptr)
        psl_free(owned_);
}

std::shared_ptr<const PublicSuffixList> PublicSuffixList::system() {
    static const std::shared_ptr<const PublicSuffixList> list = [] {
        psl_ctx_t* latest = psl_latest(nullptr);
        if (latest != nullptr)
            return std::shared_ptr<const PublicSuffixList>(new PublicSuffixList(latest, latest));
        return std::shared_ptr<const PublicSuffixList>(
            new PublicSuffixList(nullptr, psl_builtin()));
    }();
    return list;
}

std::shared_ptr<const PublicSuffixList> PublicSuffixList::load(const std::string& path,
                                                               std::string& error) {
    psl_ctx_t* ctx = psl_load_file(path.c_str());
    if (ctx == nullptr) {
        error = path + ": cannot load the public suffix list";
        return nullptr;
    }
    return std::shared_ptr<const PublicSuffixList>(new PublicSuffixList(ctx, ctx));
}

std::optional<std::string> PublicSuffixList::registrable_domain(std::string_view domain) const {
    if (domain.ends_with('.'))
        domain.remove_suffix(1);
    if (view_ == nullptr || !plausible_domain(domain))
        return std::nullopt;
    std::string name = ascii_lower(domain);
    char* utf8_lower = nullptr; // U-labels: libpsl wants lower-case UTF-8
    if (psl_str_to_utf8lower(name.c_str(), "utf-8", nullptr, &utf8_lower) == PSL_SUCCESS &&
        utf8_lower != nullptr) {
        name = utf8_lower;
        psl_free_string(utf8_lower);
    }
    const char* registrable = psl_registrable_domain(view_, name.c_str());
    if (registrable == nullptr)
        return std::nullopt;
    return std::string(registrable);
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
    auto registrable = registrable_domain(domain);
    return registrable ? std::move(*registrable) : normalize_domain(domain);
}

bool domains_aligned(std::string_view a, std::string_view b, AlignmentMode mode,
                     const PublicSuffixList& psl) {
    const std::string x = normalize_domain(a);
    const std::string y = normalize_domain(b);
    if (x.empty() || y.empty())
        return false;
    if (x == y)
        return true;
    if (mode == AlignmentMode::Strict)
        return false;
    const auto ox = psl.registrable_domain(x);
    const auto oy = psl.registrable_domain(y);
    return ox && oy && *ox == *oy;
}

DmarcPolicy DmarcLookup::applied_policy() const {
    if (record_domain != from_domain && record.subdomain_policy)
        return *record.subdomain_policy;
    return record.policy;
}

boost::asio::awaitable<DmarcLookup>
discover_dmarc(dns::Resolver* resolver, const PublicSuffixList* psl, std::string from_domain) {
    DmarcLookup out;
    out.from_domain = normalize_domain(from_domain);
    out.organizational_domain = psl->organizational_domain(out.from_domain);
    if (!plausible_domain(out.from_domain)) {
        out.problem = fmt::format("'{}' is not a domain name", from_domain);
        co_return out;
    }
    std::vector<std::string> names{out.from_domain};
    if (out.organizational_domain != out.from_domain)
        names.push_back(out.organizational_domain);
    for (const std::string& name : names) {
        const std::string query = "_dmarc." + name;
        const auto answer = co_await resolver->txt(query);
        if (dns::is_temporary(answer.status)) {
            out.status = DmarcLookup::Status::TempError;
            out.problem = fmt::format("DNS error looking up TXT {}", query);
            co_return out;
        }
        std::vector<std::string_view> records;
        for (const auto& txt : answer.records) {
            if (is_dmarc_record(txt))
                records.emplace_back(txt);
        }
        if (records.empty())
            continue;
        out.record_domain = name;
        if (records.size() > 1) {
            out.problem = fmt::format("{} publishes {} DMARC records", query, records.size());
            co_return out;
        }
        DmarcParse parsed = parse_dmarc_record(records.front());
        if (!parsed.record) {
            out.problem = fmt::format("the DMARC record at {} is invalid: {}", query, parsed.error);
            co_return out;
        }
        out.status = DmarcLookup::Status::Found;
        out.record = std::move(*parsed.record);
        co_return out;
    }
    out.problem = names.size() > 1
                      ? fmt::format("no DMARC record at _dmarc.{} or _dmarc.{}", names[0], names[1])
                      : fmt::format("no DMARC record at _dmarc.{}", names[0]);
    co_return out;
}

} // namespace ember::auth
