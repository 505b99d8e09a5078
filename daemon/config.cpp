// load_config(): TOML syntax, then one table per section (daemon/config_tables.cpp),
// then the rules that span keys. Every problem is collected as
// `file:line: message`; nothing throws out of here.
//
// A rule that spans keys runs only when the keys it reads parsed cleanly:
// `tls = "startls"` is reported once, as a bad value, not again as
// "auth required without TLS" because the typo left tls at its default.
// Paths in messages are quoted as written in the file, never resolved, so
// an error reads the same wherever the file lives (and tests can pin it).

#include "daemon/config.hpp"

#include "auth/dkim_keys.hpp"
#include "auth/users.hpp"
#include "core/assert.hpp"
#include "daemon/config_tables.hpp"
#include "warmup/config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
namespace fs = std::filesystem;

// toml11 says "[error] toml::parse_key_value_pair: missing value ...\n --> file ...";
// the admin needs the first line, without the prefix and the parser function.
std::string syntax_message(std::string_view what) {
    auto line = what.substr(0, what.find('\n'));
    if (line.starts_with("[error] "))
        line.remove_prefix(8);
    if (line.starts_with("toml::")) {
        if (const auto colon = line.find(": "); colon != std::string_view::npos)
            line.remove_prefix(colon + 2);
    }
    return "syntax error: " + std::string(line);
}

std::optional<toml::value> parse_toml(const std::string& path, core::Diagnostics& diag) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        diag.add(path, 0, "cannot read the configuration: Is a directory");
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        diag.add(path, 0, std::string("cannot read the configuration: ") + std::strerror(errno));
        return std::nullopt;
    }
    try {
        return toml::parse(in, path);
    } catch (const toml::syntax_error& e) {
        diag.add(path, static_cast<std::uint32_t>(e.location().line()), syntax_message(e.what()));
    } catch (const std::exception& e) {
        diag.add(path, 0, syntax_message(e.what()));
    }
    return std::nullopt;
}

// strerror() text when `path` cannot be opened and read, else "".
std::string unreadable(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return std::strerror(errno);
    char octet = 0;
    const int error = ::read(fd, &octet, 1) < 0 ? errno : 0;
    ::close(fd);
    return error != 0 ? std::strerror(error) : "";
}

bool is_unspecified(const core::IpAddress& ip) {
    return std::all_of(ip.data(), ip.data() + ip.size(), [](std::uint8_t b) { return b == 0; });
}

bool same_host(const core::Endpoint& a, const core::Endpoint& b) {
    const auto ia = core::IpAddress::parse(a.host);
    const auto ib = core::IpAddress::parse(b.host);
    if (ia && ib)
        return *ia == *ib;
    return a.host == b.host;
}

// A wildcard (0.0.0.0 or ::) takes the port on every address of its family,
// so binding a specific address of that family on the same port fails.
bool wildcard_overlap(const core::Endpoint& a, const core::Endpoint& b) {
    const auto ia = core::IpAddress::parse(a.host);
    const auto ib = core::IpAddress::parse(b.host);
    return ia && ib && ia->is_v4() == ib->is_v4() && (is_unspecified(*ia) || is_unspecified(*ib));
}

bool is_loopback_host(const std::string& host) {
    const auto ip = core::IpAddress::parse(host);
    return ip ? ip->is_loopback() : host == "localhost";
}

std::string tls_name(smtp::TlsMode mode) {
    return mode == smtp::TlsMode::StartTls ? "starttls" : "implicit";
}

// The rules that read more than one key. Each reports at the key to change,
// and runs only when none of the keys it reads had an error of its own.
class Checker {
public:
    Checker(const toml::value& root, const Config& config, const cfg::Context& ctx)
        : root_(root), config_(config), ctx_(ctx) {
        for (const auto& d : ctx.diag.sorted()) {
            if (d.file == config.file)
                error_lines_.insert(d.line);
        }
    }

    void run() {
        hostname();
        listeners();
        tls();
        auth();
        limits();
        http();
        delivery();
        dkim();
        warmup();
    }

private:
    // Where to report about `key` of a section (of its index-th table for
    // [[listener]]): the key's value; the table itself when the key is absent,
    // `key` is "" or the section is not a table; nullptr when the section is
    // absent (the error is then about the whole file).
    const toml::value* at(const std::string& section, const std::string& key,
                          std::size_t index = 0) const {
        const auto& top = root_.as_table();
        const auto s = top.find(section);
        if (s == top.end())
            return nullptr;
        const toml::value* table = &s->second;
        if (table->is_array()) {
            if (index >= table->as_array().size())
                return nullptr;
            table = &table->as_array()[index];
        }
        if (key.empty() || !table->is_table())
            return table;
        const auto k = table->as_table().find(key);
        return k == table->as_table().end() ? table : &k->second;
    }

    // False when the key (or, absent, its table) already has an error.
    bool ok(const std::string& section, const std::string& key, std::size_t index = 0) const {
        const auto* v = at(section, key, index);
        return v == nullptr ||
               !error_lines_.contains(static_cast<std::uint32_t>(v->location().line()));
    }

    void error(const toml::value* where, std::string message) const {
        if (where)
            ctx_.error(*where, std::move(message));
        else
            ctx_.diag.add(config_.file, 0, std::move(message));
    }

    // The path as the admin wrote it: messages must not depend on where the
    // file happens to live.
    std::string written(const std::string& section, const std::string& key) const {
        const auto* v = at(section, key);
        return v && v->is_string() ? v->as_string().str : std::string();
    }

    std::uint32_t line_of(const std::string& section, std::size_t index) const {
        const auto* v = at(section, "", index);
        return v ? static_cast<std::uint32_t>(v->location().line()) : 0;
    }

    void hostname();
    void listeners();
    void listener_pair(std::size_t i, std::size_t j);
    void tls();
    void tls_file(const std::string& key, const std::string& path);
    void auth();
    void auth_listener(std::size_t i);
    void limits();
    void http();
    void delivery();
    void dkim();
    void warmup();

    const toml::value& root_;
    const Config& config_;
    const cfg::Context& ctx_;
    std::set<std::uint32_t> error_lines_; // lines of the config file that have errors
};

// "" means the machine's name, resolved in load_into(); it must be usable too.
void Checker::hostname() {
    const auto& name = config_.server.hostname;
    if (ok("server", "hostname") && !valid_hostname(name))
        error(at("server", "hostname"), "the machine's host name " + cfg::quote(name) +
                                            " is not a usable domain name; set [server] hostname");
}

void Checker::listeners() {
    if (config_.listeners.empty() && ok("listener", "")) {
        error(nullptr, "no [[listener]]: at least one is needed (e.g. address = "
                       "\"127.0.0.1:2525\")");
        return;
    }
    for (std::size_t j = 1; j < config_.listeners.size(); ++j) {
        for (std::size_t i = 0; i < j; ++i)
            listener_pair(i, j);
    }
}

void Checker::listener_pair(std::size_t i, std::size_t j) {
    if (!ok("listener", "address", i) || !ok("listener", "address", j))
        return;
    const auto& a = config_.listeners[i].address;
    const auto& b = config_.listeners[j].address;
    if (a.port != b.port)
        return;
    const auto where = std::to_string(line_of("listener", i));
    if (same_host(a, b)) {
        error(at("listener", "address", j),
              "address " + b.to_string() + " is already used by the [[listener]] on line " + where);
    } else if (wildcard_overlap(a, b)) {
        error(at("listener", "address", j),
              "address " + b.to_string() + " overlaps " + a.to_string() +
                  " of the [[listener]] on line " + where +
                  " (a wildcard address takes the port on every address)");
    }
}

void Checker::tls() {
    const bool have_files = !config_.tls.cert.empty() && !config_.tls.key.empty();
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
        const auto mode = config_.listeners[i].tls;
        if (have_files || mode == smtp::TlsMode::None || !ok("listener", "tls", i) ||
            !ok("tls", "cert") || !ok("tls", "key"))
            continue;
        error(at("listener", "tls", i),
              "tls = \"" + tls_name(mode) + "\" needs [tls] cert and key");
        break; // one fix in [tls] serves every listener
    }
    tls_file("cert", config_.tls.cert);
    tls_file("key", config_.tls.key);
}

// Only readability: whether it is a usable certificate and key is checked
// where the TLS context is built.
void Checker::tls_file(const std::string& key, const std::string& path) {
    if (path.empty() || !ok("tls", key))
        return;
    if (const auto why = unreadable(path); !why.empty())
        error(at("tls", key),
              "cannot read " + key + " " + cfg::quote(written("tls", key)) + ": " + why);
}

void Checker::auth() {
    for (std::size_t i = 0; i < config_.listeners.size(); ++i)
        auth_listener(i);
    const auto& users = config_.auth.users_file;
    if (users.empty() || !ok("auth", "users_file"))
        return;
    if (const auto why = unreadable(users); !why.empty()) {
        error(at("auth", "users_file"),
              "cannot read users_file " + cfg::quote(written("auth", "users_file")) + ": " + why);
        return;
    }
    // Its own errors point into the users file, at the line to fix.
    (void)auth::UsersFile::load(users, ctx_.diag);
}

void Checker::auth_listener(std::size_t i) {
    const auto& l = config_.listeners[i];
    if (l.auth_without_tls && ok("listener", "auth_without_tls", i) &&
        ok("listener", "address", i) && !is_loopback_host(l.address.host)) {
        error(at("listener", "auth_without_tls", i),
              "auth_without_tls = true is only allowed on a loopback address (127.0.0.0/8, ::1), "
              "not " +
                  l.address.to_string());
    }
    if (l.auth != smtp::AuthPolicy::Required || !ok("listener", "auth", i))
        return;
    if (config_.auth.users_file.empty() && ok("auth", "users_file"))
        error(at("listener", "auth", i), "auth = \"required\" needs [auth] users_file");
    // RFC 4954 4 leaves it to the server; our policy: passwords only under TLS.
    if (l.tls == smtp::TlsMode::None && !l.auth_without_tls && ok("listener", "tls", i) &&
        ok("listener", "auth_without_tls", i))
        error(at("listener", "auth", i),
              "auth = \"required\" with tls = \"none\": AUTH is only offered under TLS "
              "(use tls = \"starttls\" or \"implicit\", or auth_without_tls = true on a loopback "
              "listener)");
}

void Checker::limits() {
    const auto& s = config_.smtp;
    if (s.max_connections_per_ip <= s.max_connections || !ok("smtp", "max_connections") ||
        !ok("smtp", "max_connections_per_ip"))
        return;
    const auto* per_ip = at("smtp", "max_connections_per_ip");
    const bool written_per_ip = per_ip && !per_ip->is_table();
    error(written_per_ip ? per_ip : at("smtp", "max_connections"),
          "max_connections_per_ip (" + std::to_string(s.max_connections_per_ip) +
              ") is larger than max_connections (" + std::to_string(s.max_connections) + ")");
}

void Checker::http() {
    const auto& listen = config_.http.listen;
    if (!listen || !ok("http", "listen"))
        return;
    for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
        const auto& address = config_.listeners[i].address;
        if (ok("listener", "address", i) && address.port == listen->port &&
            same_host(address, *listen)) {
            error(at("http", "listen"), "listen " + listen->to_string() +
                                            " is already used by the [[listener]] on line " +
                                            std::to_string(line_of("listener", i)));
        }
    }
}

void Checker::delivery() {
    const auto& c = config_.delivery.client;
    if (c.max_connections_per_destination > c.max_connections &&
        ok("delivery", "max_connections") && ok("delivery", "max_connections_per_destination"))
        error(at("delivery", "max_connections_per_destination"),
              "max_connections_per_destination (" +
                  std::to_string(c.max_connections_per_destination) +
                  ") is larger than max_connections (" + std::to_string(c.max_connections) + ")");
    const auto& r = config_.delivery.scheduler.retry;
    if (r.max < r.first && ok("delivery", "retry_max") && ok("delivery", "retry_first"))
        error(at("delivery", "retry_max"), "retry_max (" + core::format_duration(r.max) +
                                               ") is shorter than retry_first (" +
                                               core::format_duration(r.first) + ")");
}

// Keys must load now, at start and at reload, not at the first message.
void Checker::dkim() {
    if (config_.dkim.empty() || !ctx_.diag.empty())
        return;
    (void)auth::load_dkim_keys(config_.dkim, config_.file, ctx_.diag);
}

void Checker::warmup() {
    if (config_.warmup.file.empty() || !ok("warmup", "file"))
        return;
    (void)warmup::load_config(config_.warmup.file, ctx_.diag);
}

// "; it belongs in [server]" when some section has `key`, else "".
std::string home_of(const std::string& key) {
    for (const auto& s : sections()) {
        for (const auto& doc : s.docs()) {
            if (doc.key == key)
                return "; it belongs in " + section_title(s);
        }
    }
    return "";
}

// Sections and top-level keys no table knows.
void check_unknown_sections(const toml::value& root, const cfg::Context& ctx) {
    std::vector<std::string> names;
    for (const auto& s : sections())
        names.push_back(s.name);
    for (const auto& [key, value] : root.as_table()) {
        if (std::find(names.begin(), names.end(), key) != names.end())
            continue;
        const bool is_section =
            value.is_table() ||
            (value.is_array() && !value.as_array().empty() && value.as_array().front().is_table());
        if (is_section) {
            std::string message = "unknown section [" + key + "]";
            // Section names are short: within edit distance 2, "dns" would
            // suggest "tls". A typo rarely hits the first letter, so require it.
            if (const auto hint = cfg::did_you_mean(key, names);
                !hint.empty() && hint.front() == key.front())
                message += "; did you mean [" + hint + "]?";
            ctx.error(value, std::move(message));
            continue;
        }
        ctx.error(value, "key '" + key + "' is outside any section" + home_of(key));
    }
}

// Parses every known section present in the file.
void parse_sections(const toml::value& root, Config& config, const cfg::Context& ctx) {
    const auto& top = root.as_table();
    for (const auto& s : sections()) {
        const auto it = top.find(s.name);
        if (it == top.end())
            continue;
        if (!s.array) {
            s.parse(it->second, config, ctx);
        } else if (!it->second.is_array()) {
            ctx.error(it->second, s.name + " must be written as " + section_title(s) + " tables");
        } else {
            for (const auto& element : it->second.as_array())
                s.parse(element, config, ctx);
        }
    }
}

// "" means the machine's name: resolved here so EHLO, Received: and
// --dump-config all show the same name.
std::string machine_hostname() {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0)
        return "";
    return name.data();
}

void load_into(const toml::value& root, Config& config, core::Diagnostics& diag) {
    std::error_code ec;
    const auto absolute = fs::absolute(config.file, ec);
    const cfg::Context ctx{diag, (ec ? fs::path(config.file) : absolute).parent_path()};
    check_unknown_sections(root, ctx);
    parse_sections(root, config, ctx);
    config.queue.data_dir = config.server.data_dir;
    if (config.server.hostname.empty())
        config.server.hostname = machine_hostname();
    // A job holds one connection: the scheduler's limits are the client's.
    auto& delivery = config.delivery;
    delivery.client.helo_name =
        delivery.helo_name.empty() ? config.server.hostname : delivery.helo_name;
    delivery.scheduler.max_jobs = delivery.client.max_connections;
    delivery.scheduler.max_jobs_per_destination = delivery.client.max_connections_per_destination;
    Checker(root, config, ctx).run();
}

} // namespace

std::vector<core::Cidr> loopback_networks() {
    std::vector<core::Cidr> out;
    for (const auto* text : {"127.0.0.0/8", "::1/128"}) {
        const auto net = core::Cidr::parse(text);
        EMBER_ASSERT(net.has_value());
        out.push_back(*net);
    }
    return out;
}

std::optional<Config> load_config(const std::string& path, core::Diagnostics& diag) {
    core::Diagnostics found;
    Config config;
    config.file = path;
    try {
        if (const auto root = parse_toml(path, found))
            load_into(*root, config, found);
    } catch (const std::exception& e) {
        // A toml11 accessor throwing is a loader bug, but never a crash.
        found.add(path, 0, std::string("internal error while loading: ") + e.what());
    }
    diag.append(found);
    if (!found.empty())
        return std::nullopt;
    return config;
}

std::string dump_config(const Config& config) {
    std::string out = "# emberd --dump-config: every key with its effective value\n";
    for (const auto& s : sections()) {
        const auto text = s.dump(config);
        if (!text.empty())
            out += "\n" + text;
    }
    return out;
}

std::vector<KeyDoc> documented_keys() {
    std::vector<KeyDoc> out;
    for (const auto& s : sections()) {
        const auto docs = s.docs();
        out.insert(out.end(), docs.begin(), docs.end());
    }
    return out;
}

} // namespace ember::daemon
