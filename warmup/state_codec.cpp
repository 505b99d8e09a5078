// The Engine's state as versioned text, one record per line:
//
//   ember-warmup-state 1
//   domain <name> <first_day> <paused> <suspended> <suspended_at_ms> <reason> <paused providers>
//   ramp <domain> <source> <evaluated_day> <offset>
//   bucket <domain> <hour> <delivered> <deferred> <failed> <hard_bounces> <complaints>
//   key <domain> <provider> <source> <day> <sent> <cap_reached> <tat_ns> <minute>
//       <this_minute> <last_minute> <factor> <until_ms> <last_decrease_ms> <base>
//       <suspended_until_ms> <reason>
//   mx <recipient domain> <mx host>
//
// Fields are separated by one space; strings are percent-encoded (space,
// '%', control and non-ASCII octets), "-" stands for the empty string, and
// lists are comma-separated. Text rather than binary: it is small (one line
// per key, never per recipient), diffable when debugging a stuck ramp, and
// the version line guards the layout. A restore parses everything first
// and only then replaces the state, so a damaged blob changes nothing.

#include "warmup/engine.hpp"

#include <fmt/format.h>

#include <charconv>
#include <sstream>

namespace ember::warmup {
namespace {

constexpr std::string_view kHeader = "ember-warmup-state 1";
constexpr std::size_t kMaxWindowHours = 24 * 7; // the largest [guardrails] window

std::string enc(std::string_view s) {
    if (s.empty())
        return "-";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '%' || c == ',' || (c == '-' && s.size() == 1))
            out += fmt::format("%{:02X}", u);
        else
            out += c;
    }
    return out;
}

std::optional<std::string> dec(std::string_view s) {
    if (s == "-")
        return std::string();
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        unsigned value = 0;
        if (i + 2 >= s.size())
            return std::nullopt;
        const auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
        if (ec != std::errc() || p != s.data() + i + 3)
            return std::nullopt;
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

std::vector<std::string_view> split(std::string_view line, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const auto pos = line.find(sep, start);
        out.push_back(line.substr(start, pos - start));
        if (pos == std::string_view::npos)
            return out;
        start = pos + 1;
    }
}

template <typename T> bool num(std::string_view s, T& out) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool time_ms(std::string_view s, TimePoint& out) {
    std::int64_t ms = 0;
    if (!num(s, ms))
        return false;
    out = TimePoint(std::chrono::milliseconds(ms));
    return true;
}

bool flag(std::string_view s, bool& out) {
    if (s != "0" && s != "1")
        return false;
    out = s == "1";
    return true;
}

std::int64_t ms(TimePoint t) {
    return t.time_since_epoch().count();
}

struct Parsed {
    StringMap<DomainState> domains;
    std::unordered_map<Key, KeyState, KeyHash> keys;
    StringMap<std::string> mx;
};

bool parse_domain(const std::vector<std::string_view>& f, Parsed& p) {
    if (f.size() != 8)
        return false;
    const auto name = dec(f[1]);
    const auto reason = dec(f[6]);
    DomainState ds;
    if (!name || !reason || !num(f[2], ds.first_day) || !flag(f[3], ds.paused) ||
        !flag(f[4], ds.suspended) || !time_ms(f[5], ds.suspended_at))
        return false;
    ds.suspended_reason = *reason;
    if (f[7] != "-") {
        for (const auto item : split(f[7], ',')) {
            const auto provider = dec(item);
            if (!provider)
                return false;
            ds.paused_providers.insert(*provider);
        }
    }
    return p.domains.emplace(*name, std::move(ds)).second;
}

bool parse_ramp(const std::vector<std::string_view>& f, Parsed& p) {
    const auto name = f.size() == 5 ? dec(f[1]) : std::nullopt;
    const auto source = f.size() == 5 ? dec(f[2]) : std::nullopt;
    Ramp r;
    if (!name || !source || !num(f[3], r.evaluated) || !num(f[4], r.offset))
        return false;
    const auto it = p.domains.find(*name);
    return it != p.domains.end() && it->second.ramps.emplace(*source, r).second;
}

bool parse_bucket(const std::vector<std::string_view>& f, Parsed& p) {
    const auto name = f.size() == 8 ? dec(f[1]) : std::nullopt;
    Bucket b;
    auto& c = b.counts;
    if (!name || !num(f[2], b.hour) || b.hour < 0 || !num(f[3], c.delivered) ||
        !num(f[4], c.deferred) || !num(f[5], c.failed) || !num(f[6], c.hard_bounces) ||
        !num(f[7], c.complaints))
        return false;
    const auto it = p.domains.find(*name);
    if (it == p.domains.end())
        return false;
    // Buckets are stored in a ring sized by the saved window; the Engine
    // re-slots them into its own window after the parse.
    auto& ring = it->second.window;
    if (ring.hours() < kMaxWindowHours)
        ring.resize(kMaxWindowHours);
    ring.put(b);
    return true;
}

bool parse_key(const std::vector<std::string_view>& f, Parsed& p) {
    if (f.size() != 17)
        return false;
    const auto domain = dec(f[1]);
    const auto provider = dec(f[2]);
    const auto source = dec(f[3]);
    const auto reason = dec(f[16]);
    KeyState ks;
    auto& b = ks.backoff;
    if (!domain || !provider || !source || !reason || !num(f[4], ks.day) || !num(f[5], ks.sent) ||
        !flag(f[6], ks.cap_reached) || !num(f[7], ks.pacer.tat_ns) || !num(f[8], ks.minute) ||
        !num(f[9], ks.this_minute) || !num(f[10], ks.last_minute) || !num(f[11], b.factor) ||
        !time_ms(f[12], b.until) || !time_ms(f[13], b.last_decrease) ||
        !num(f[14], b.base_per_second) || !time_ms(f[15], ks.suspended_until))
        return false;
    if (!(b.factor > 0 && b.factor <= 1.0) || b.base_per_second < 0)
        return false;
    ks.suspended_reason = *reason;
    return p.keys.emplace(Key{*domain, *provider, *source}, std::move(ks)).second;
}

bool parse_line(std::string_view line, Parsed& p) {
    const auto f = split(line, ' ');
    if (f[0] == "domain")
        return parse_domain(f, p);
    if (f[0] == "ramp")
        return parse_ramp(f, p);
    if (f[0] == "bucket")
        return parse_bucket(f, p);
    if (f[0] == "key")
        return parse_key(f, p);
    if (f[0] == "mx" && f.size() == 3) {
        const auto domain = dec(f[1]);
        const auto host = dec(f[2]);
        return domain && host && p.mx.emplace(*domain, *host).second;
    }
    return false;
}

} // namespace

std::string Engine::serialize_state() const {
    std::string out(kHeader);
    out += '\n';
    for (const auto& [name, ds] : domains_) {
        std::string paused;
        for (const auto& p : ds.paused_providers)
            paused += (paused.empty() ? "" : ",") + enc(p);
        out += fmt::format("domain {} {} {:d} {:d} {} {} {}\n", enc(name), ds.first_day, ds.paused,
                           ds.suspended, ms(ds.suspended_at), enc(ds.suspended_reason),
                           paused.empty() ? "-" : paused);
        for (const auto& [source, r] : ds.ramps)
            out += fmt::format("ramp {} {} {} {}\n", enc(name), enc(source), r.evaluated, r.offset);
        for (const auto& b : ds.window.buckets()) {
            if (b.hour < 0)
                continue;
            const auto& c = b.counts;
            out += fmt::format("bucket {} {} {} {} {} {} {}\n", enc(name), b.hour, c.delivered,
                               c.deferred, c.failed, c.hard_bounces, c.complaints);
        }
    }
    for (const auto& [k, ks] : keys_) {
        const auto& b = ks.backoff;
        out += fmt::format("key {} {} {} {} {} {:d} {} {} {} {} {} {} {} {} {} {}\n",
                           enc(k.sending_domain), enc(k.provider), enc(k.source), ks.day, ks.sent,
                           ks.cap_reached, ks.pacer.tat_ns, ks.minute, ks.this_minute,
                           ks.last_minute, b.factor, ms(b.until), ms(b.last_decrease),
                           b.base_per_second, ms(ks.suspended_until), enc(ks.suspended_reason));
    }
    for (const auto& [domain, host] : learned_mx_)
        out += fmt::format("mx {} {}\n", enc(domain), enc(host));
    return out;
}

bool Engine::restore_state(std::string_view text) {
    std::istringstream in{std::string(text)};
    std::string line;
    if (!std::getline(in, line) || line != kHeader)
        return false;
    Parsed p;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        if (!parse_line(line, p))
            return false;
    }
    for (auto& [name, ds] : p.domains) {
        ds.window.resize(static_cast<std::size_t>(
            std::chrono::duration_cast<std::chrono::hours>(guardrails_of(name).window).count()));
    }
    domains_ = std::move(p.domains);
    keys_ = std::move(p.keys);
    learned_mx_ = std::move(p.mx);
    provider_cache_.clear();
    // A saved provider that the config no longer has is dropped, as on reload.
    std::erase_if(keys_, [this](const auto& entry) {
        return provider_index_.count(entry.first.provider) == 0;
    });
    return true;
}

} // namespace ember::warmup
