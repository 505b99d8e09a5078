#include "auth/spf_record.hpp"

#include "auth/spf_macro.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace ember::auth {

namespace {

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lower(a) == lower(b);
}

bool prefix_match(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
    const unsigned full = prefix / 8;
    if (std::memcmp(a, b, full) != 0)
        return false;
    const unsigned bits = prefix % 8;
    if (bits == 0)
        return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
    return (a[full] & mask) == (b[full] & mask);
}

// ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), ip6-cidr-length = "/" ("0"
// / %x31-39 0*2DIGIT): no leading zeros, at most `max`.
std::optional<unsigned> parse_cidr_digits(std::string_view digits, unsigned max) {
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
        return std::nullopt;
    unsigned value = 0;
    for (const char c : digits) {
        if (!is_digit(c))
            return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > max)
        return std::nullopt;
    return value;
}

bool all_digits(std::string_view text) {
    if (text.empty())
        return false;
    for (const char c : text) {
        if (!is_digit(c))
            return false;
    }
    return true;
}

// qnum = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
std::optional<SpfNetwork> parse_ip4_network(std::string_view text) {
    SpfNetwork n;
    std::size_t start = 0;
    for (int i = 0; i < 4; ++i) {
        const auto end = i < 3 ? text.find('.', start) : text.size();
        if (end == std::string_view::npos)
            return std::nullopt;
        const auto octet = parse_cidr_digits(text.substr(start, end - start), 255);
        if (!octet)
            return std::nullopt;
        n.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(*octet);
        start = end + 1;
    }
    n.v4 = true;
    n.prefix = 32;
    return n;
}

std::optional<SpfNetwork> parse_ip6_network(std::string_view text) {
    if (text.empty() || text.size() > 45)
        return std::nullopt;
    const std::string s(text);
    SpfNetwork n;
    if (inet_pton(AF_INET6, s.c_str(), n.bytes.data()) != 1)
        return std::nullopt;
    n.v4 = false;
    n.prefix = 128;
    return n;
}

// ip4 / ip6: ":" network [ "/" cidr ]; rest starts after the name.
bool parse_ip_mechanism(std::string_view rest, SpfMechanism& m, std::string& error) {
    const bool v4 = m.kind == SpfMechanismKind::Ip4;
    if (!rest.starts_with(':')) {
        error = "needs an address";
        return false;
    }
    rest.remove_prefix(1);
    const auto slash = rest.find('/');
    const auto network =
        v4 ? parse_ip4_network(rest.substr(0, slash)) : parse_ip6_network(rest.substr(0, slash));
    if (!network) {
        error = "invalid address";
        return false;
    }
    m.network = *network;
    if (slash != std::string_view::npos) {
        const auto prefix = parse_cidr_digits(rest.substr(slash + 1), v4 ? 32 : 128);
        if (!prefix) {
            error = "invalid CIDR length";
            return false;
        }
        m.network.prefix = *prefix;
    }
    return true;
}

// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ], taken off
// the end of `rest`. Digits after the last '/' are always meant as a CIDR
// length, so a bad one ("/33", "/032") is an error, not part of the name.
bool strip_dual_cidr(std::string_view& rest, SpfMechanism& m, std::string& error) {
    auto slash = rest.rfind('/');
    if (slash == std::string_view::npos || !all_digits(rest.substr(slash + 1)))
        return true;
    if (slash > 0 && rest[slash - 1] == '/') {
        const auto v6 = parse_cidr_digits(rest.substr(slash + 1), 128);
        if (!v6) {
            error = "invalid IPv6 CIDR length";
            return false;
        }
        m.cidr6 = *v6;
        rest = rest.substr(0, slash - 1);
        slash = rest.rfind('/');
        if (slash == std::string_view::npos || !all_digits(rest.substr(slash + 1)))
            return true;
    }
    const auto v4 = parse_cidr_digits(rest.substr(slash + 1), 32);
    if (!v4) {
        error = "invalid IPv4 CIDR length";
        return false;
    }
    m.cidr4 = *v4;
    rest = rest.substr(0, slash);
    return true;
}

// What may follow each mechanism name: all takes nothing; include and exists
// need ":" domain-spec; a, mx and ptr may have ":" domain-spec; a and mx a
// dual CIDR length.
bool parse_mechanism_argument(std::string_view rest, SpfMechanism& m, std::string& error) {
    using K = SpfMechanismKind;
    if (m.kind == K::All) {
        if (!rest.empty())
            error = "all takes no argument";
        return rest.empty();
    }
    if (m.kind == K::Ip4 || m.kind == K::Ip6)
        return parse_ip_mechanism(rest, m, error);
    if ((m.kind == K::A || m.kind == K::Mx) && !strip_dual_cidr(rest, m, error))
        return false;
    const bool required = m.kind == K::Include || m.kind == K::Exists;
    if (rest.empty() && !required)
        return true;
    if (!rest.starts_with(':') || !is_domain_spec(rest.substr(1))) {
        error = rest.starts_with(':') || required ? "invalid domain-spec" : "invalid argument";
        return false;
    }
    m.domain_spec = std::string(rest.substr(1));
    return true;
}

std::optional<SpfMechanismKind> mechanism_kind(std::string_view name) {
    using K = SpfMechanismKind;
    const std::string n = lower(name);
    if (n == "all")
        return K::All;
    if (n == "include")
        return K::Include;
    if (n == "a")
        return K::A;
    if (n == "mx")
        return K::Mx;
    if (n == "ptr")
        return K::Ptr;
    if (n == "ip4")
        return K::Ip4;
    if (n == "ip6")
        return K::Ip6;
    if (n == "exists")
        return K::Exists;
    return std::nullopt;
}

bool parse_directive(std::string_view term, SpfRecord& record, std::string& error) {
    SpfMechanism m;
    m.text = std::string(term);
    std::string_view rest = term;
    switch (rest.empty() ? '\0' : rest.front()) {
    case '+':
        m.qualifier = SpfQualifier::Pass;
        rest.remove_prefix(1);
        break;
    case '-':
        m.qualifier = SpfQualifier::Fail;
        rest.remove_prefix(1);
        break;
    case '~':
        m.qualifier = SpfQualifier::SoftFail;
        rest.remove_prefix(1);
        break;
    case '?':
        m.qualifier = SpfQualifier::Neutral;
        rest.remove_prefix(1);
        break;
    default:
        break;
    }
    std::size_t name_end = 0;
    while (name_end < rest.size() && (is_alpha(rest[name_end]) || is_digit(rest[name_end])))
        ++name_end;
    const auto kind = mechanism_kind(rest.substr(0, name_end));
    const auto after = rest.substr(name_end);
    if (!kind || !(after.empty() || after.front() == ':' || after.front() == '/')) {
        error = "unknown mechanism";
        return false;
    }
    m.kind = *kind;
    if (!parse_mechanism_argument(after, m, error))
        return false;
    record.mechanisms.push_back(std::move(m));
    return true;
}

bool parse_modifier(std::string_view name, std::string_view value, SpfRecord& record,
                    std::string& error) {
    const bool redirect = iequals(name, "redirect");
    if (redirect || iequals(name, "exp")) {
        auto& slot = redirect ? record.redirect : record.explanation;
        if (slot) {
            error = "appears twice"; // 6: redirect and exp at most once each
            return false;
        }
        if (!is_domain_spec(value)) {
            error = "invalid domain-spec";
            return false;
        }
        slot = std::string(value);
        return true;
    }
    // unknown-modifier = name "=" macro-string: ignored, but checked (A).
    if (!is_macro_string(value, MacroUse::Modifier)) {
        error = "invalid macro-string";
        return false;
    }
    return true;
}

// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ), then "=": a modifier.
std::size_t modifier_name_length(std::string_view term) {
    if (term.empty() || !is_alpha(term.front()))
        return 0;
    std::size_t i = 1;
    while (i < term.size() && (is_alpha(term[i]) || is_digit(term[i]) || term[i] == '-' ||
                               term[i] == '_' || term[i] == '.'))
        ++i;
    return i < term.size() && term[i] == '=' ? i : 0;
}

bool parse_term(std::string_view term, SpfRecord& record, std::string& error) {
    const std::size_t name_length = modifier_name_length(term);
    if (name_length != 0) {
        return parse_modifier(term.substr(0, name_length), term.substr(name_length + 1), record,
                              error);
    }
    return parse_directive(term, record, error);
}

} // namespace

bool SpfNetwork::contains(const core::IpAddress& address) const {
    if (address.is_v4() != v4)
        return false;
    return prefix_match(address.data(), bytes.data(), prefix);
}

bool same_network(const core::IpAddress& address, const core::IpAddress& base, unsigned prefix) {
    if (address.is_v4() != base.is_v4())
        return false;
    return prefix_match(address.data(), base.data(), prefix);
}

bool is_spf_record(std::string_view txt) {
    constexpr std::string_view kVersion = "v=spf1";
    if (txt.size() < kVersion.size() || !iequals(txt.substr(0, kVersion.size()), kVersion))
        return false;
    return txt.size() == kVersion.size() || txt[kVersion.size()] == ' ';
}

SpfParse parse_spf_record(std::string_view txt) {
    SpfParse result;
    for (const char c : txt) {
        if (c != ' ' && (c < 0x21 || c > 0x7e)) {
            result.error = "the record holds a character that is not printable ASCII";
            return result;
        }
    }
    SpfRecord record;
    std::size_t pos = 6; // after "v=spf1"
    while (pos < txt.size()) {
        if (txt[pos] == ' ') {
            ++pos;
            continue;
        }
        const auto end = std::min(txt.find(' ', pos), txt.size());
        const auto term = txt.substr(pos, end - pos);
        std::string error;
        if (!parse_term(term, record, error)) {
            result.error = "'" + std::string(term) + "': " + error;
            return result;
        }
        pos = end;
    }
    result.record = std::move(record);
    return result;
}

} // namespace ember::auth
