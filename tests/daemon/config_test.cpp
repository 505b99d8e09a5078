#include "daemon/config.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace ember;
namespace fs = std::filesystem;

namespace {

const fs::path source_dir = EMBER_SOURCE_DIR;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in, "cannot open " << path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

// Diagnostics as the .expected files hold them: one `file:line: message` per
// line, sorted, the file name without its directory (the messages themselves
// never contain the checkout's location).
std::string relative_report(const core::Diagnostics& diag) {
    std::string out;
    for (auto d : diag.sorted()) {
        d.file = fs::path(d.file).filename().string();
        out += core::format(d) + "\n";
    }
    return out;
}

std::vector<fs::path> files_in(const fs::path& dir, const std::string& extension) {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() == extension)
            out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = fs::temp_directory_path() / ("ember-config-test-" + std::to_string(rd()));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::size_t replace_all(std::string& text, const std::string& from, const std::string& to) {
    std::size_t count = 0;
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos)) {
        text.replace(pos, from.size(), to);
        pos += to.size();
        ++count;
    }
    return count;
}

// etc/ember.toml with its production paths moved into `dir`, where dummy
// certificate, key and users files exist: the sample itself is what is
// tested, only the locations change (the loader has no "skip file checks").
fs::path installed_sample(const TempDir& dir) {
    auto text = read_text(source_dir / "etc/ember.toml");
    const auto root = dir.path().string();
    CHECK(replace_all(text, "\"/etc/ember/", "\"" + root + "/etc/") == 3);
    CHECK(replace_all(text, "\"/var/lib/ember\"", "\"" + root + "/data\"") == 1);
    CHECK(replace_all(text, "\"/run/ember/", "\"" + root + "/run/") == 1);
    fs::create_directories(dir.path() / "etc/tls");
    fs::copy_file(source_dir / "tests/config/good/dummy-cert.pem", dir.path() / "etc/tls/cert.pem");
    fs::copy_file(source_dir / "tests/config/good/dummy-key.pem", dir.path() / "etc/tls/key.pem");
    fs::copy_file(source_dir / "tests/config/good/users", dir.path() / "etc/users");
    auto path = dir.path() / "etc/ember.toml";
    write_text(path, text);
    return path;
}

std::optional<daemon::Config> load_clean(const fs::path& path) {
    core::Diagnostics diag;
    auto config = daemon::load_config(path.string(), diag);
    CAPTURE(path);
    CHECK(relative_report(diag) == "");
    CHECK(config.has_value());
    return config;
}

// dump -> load -> dump gives the same text: every key survives the round trip.
void check_round_trip(const daemon::Config& config, const TempDir& dir) {
    const auto first = daemon::dump_config(config);
    const auto path = dir.path() / "dumped.toml";
    write_text(path, first);
    const auto again = load_clean(path);
    REQUIRE(again);
    CHECK(daemon::dump_config(*again) == first);
    CHECK(again->listeners.size() == config.listeners.size());
    CHECK(again->server.data_dir == config.server.data_dir);
    CHECK(again->http.listen == config.http.listen);
    CHECK(again->smtp.max_message_size == config.smtp.max_message_size);
}

} // namespace

TEST_CASE("every tests/config/bad file reports exactly the errors in its .expected file") {
    const auto files = files_in(source_dir / "tests/config/bad", ".toml");
    CHECK(files.size() >= 20);
    for (const auto& file : files) {
        CAPTURE(file.filename());
        auto expected_path = file;
        expected_path.replace_extension(".expected");
        REQUIRE_MESSAGE(fs::exists(expected_path), "missing " << expected_path.filename());
        const auto want = read_text(expected_path);
        core::Diagnostics diag;
        const auto config = daemon::load_config(file.string(), diag);
        CHECK_FALSE(config.has_value());
        const auto got = relative_report(diag);
        CHECK(got == want);
    }
}

TEST_CASE("every tests/config/good file loads without errors") {
    const auto files = files_in(source_dir / "tests/config/good", ".toml");
    CHECK(files.size() >= 3);
    for (const auto& file : files)
        CHECK(load_clean(file).has_value());
}

TEST_CASE("etc/local.toml loads as it is, with paths relative to etc/") {
    const auto config = load_clean(source_dir / "etc/local.toml");
    REQUIRE(config);
    const auto etc = fs::absolute(source_dir / "etc");
    CHECK(config->server.data_dir == (etc / "../build/local/data").lexically_normal().string());
    CHECK(config->queue.data_dir == config->server.data_dir);
    CHECK(config->admin.socket == (etc / "../build/local/admin.sock").lexically_normal().string());
    REQUIRE(config->listeners.size() == 1);
    CHECK(config->listeners[0].address.to_string() == "127.0.0.1:2525");
    CHECK(config->listeners[0].tls == smtp::TlsMode::None);
    CHECK(config->listeners[0].auth == smtp::AuthPolicy::None);
    REQUIRE(config->http.listen.has_value());
    CHECK(config->http.listen->to_string() == "127.0.0.1:8025");
    CHECK(config->server.log_level == core::log::Level::Info);
}

TEST_CASE("a config without hostname gets the machine's host name") {
    std::array<char, 256> name{};
    REQUIRE(::gethostname(name.data(), name.size() - 1) == 0);
    const auto config = load_clean(source_dir / "tests/config/good/minimal.toml");
    REQUIRE(config);
    CHECK(config->server.hostname == std::string(name.data()));
}

TEST_CASE("etc/ember.toml loads once its certificate, key and users files exist") {
    TempDir dir;
    const auto config = load_clean(installed_sample(dir));
    REQUIRE(config);
    REQUIRE(config->listeners.size() == 3);
    CHECK(config->listeners[0].address.to_string() == "0.0.0.0:587");
    CHECK(config->listeners[0].tls == smtp::TlsMode::StartTls);
    CHECK(config->listeners[0].auth == smtp::AuthPolicy::Required);
    CHECK(config->listeners[1].address.to_string() == "0.0.0.0:465");
    CHECK(config->listeners[1].tls == smtp::TlsMode::Implicit);
    CHECK(config->listeners[2].address.to_string() == "127.0.0.1:2525");
    CHECK(config->listeners[2].auth == smtp::AuthPolicy::None);
    CHECK(config->server.hostname == "mta.example.com");
}

TEST_CASE("the commented-out keys of etc/ember.toml show their real defaults") {
    const auto docs = daemon::documented_keys();
    std::istringstream in(read_text(source_dir / "etc/ember.toml"));
    std::string line;
    std::string section;
    int checked = 0;
    while (std::getline(in, line)) {
        if (line.starts_with("[[") || line.starts_with("["))
            section = line.substr(line.find_first_not_of('['),
                                  line.find(']') - line.find_first_not_of('['));
        const auto eq = line.find(" = ");
        if (!line.starts_with("# ") || eq == std::string::npos)
            continue;
        const auto key = line.substr(2, eq - 2);
        const auto value = line.substr(eq + 3);
        const auto doc = std::find_if(docs.begin(), docs.end(), [&](const daemon::KeyDoc& d) {
            return d.section == section && d.key == key;
        });
        if (doc == docs.end())
            continue;
        CAPTURE(line);
        CHECK(value == doc->default_value);
        ++checked;
    }
    CHECK(checked >= 10);
}

TEST_CASE("dump_config output loads back to the same configuration") {
    TempDir dir;
    SUBCASE("etc/local.toml") {
        const auto config = load_clean(source_dir / "etc/local.toml");
        REQUIRE(config);
        check_round_trip(*config, dir);
    }
    SUBCASE("every key set (tests/config/good/full.toml)") {
        const auto config = load_clean(source_dir / "tests/config/good/full.toml");
        REQUIRE(config);
        check_round_trip(*config, dir);
    }
    SUBCASE("etc/ember.toml") {
        TempDir sample_dir;
        const auto config = load_clean(installed_sample(sample_dir));
        REQUIRE(config);
        check_round_trip(*config, dir);
    }
}

TEST_CASE("documented defaults are the dump of the default structs") {
    const auto docs = daemon::documented_keys();
    const auto find = [&](const std::string& section, const std::string& key) {
        const auto it = std::find_if(docs.begin(), docs.end(), [&](const daemon::KeyDoc& d) {
            return d.section == section && d.key == key;
        });
        REQUIRE_MESSAGE(it != docs.end(), section << "." << key);
        return *it;
    };
    CHECK(find("auth", "trusted_networks").default_value == "[\"127.0.0.0/8\", \"::1/128\"]");
    CHECK(find("smtp", "max_message_size").default_value == "\"25M\"");
    CHECK(find("server", "shutdown_grace").default_value == "\"30s\"");
    CHECK(find("http", "listen").default_value == "\"\"");
    CHECK(find("listener", "address").required);
    CHECK(find("listener", "address").default_value.empty());
    CHECK_FALSE(find("listener", "tls").required);
    // queue.data_dir is [server] data_dir, not a key of its own.
    CHECK(std::none_of(docs.begin(), docs.end(), [](const daemon::KeyDoc& d) {
        return d.section == "queue" && d.key == "data_dir";
    }));
}

TEST_CASE("man/ember.toml.5 documents every key with its type and default") {
    const auto man = read_text(source_dir / "man/ember.toml.5");
    for (const auto& doc : daemon::documented_keys()) {
        CAPTURE(doc.section);
        CAPTURE(doc.key);
        const bool array = doc.section == "listener" || doc.section == "dkim" ||
                           doc.section == "webhook" || doc.section == "api_key";
        const auto title = array ? "[[" + doc.section + "]]" : "[" + doc.section + "]";
        const auto section = man.find("\n.Ss " + title + "\n");
        REQUIRE_MESSAGE(section != std::string::npos, "no .Ss " << title);
        auto section_end = man.find("\n.S", section + 1);
        const auto item = man.find("\n.It Ic " + doc.key + " Ns = Ns Ar ", section);
        REQUIRE_MESSAGE(item < section_end, "no .It Ic " << doc.key << " under " << title);
        const auto item_end = std::min(man.find("\n.It ", item + 1), man.find("\n.El", item + 1));
        const auto text = man.substr(item, item_end + 1 - item); // with its last newline
        CAPTURE(text);
        if (doc.required)
            CHECK(text.find("\nRequired.") != std::string::npos);
        else
            CHECK(text.find("\nDefault: " + doc.default_value + "\n") != std::string::npos);
    }
}

TEST_CASE("a missing configuration file is one error naming it") {
    core::Diagnostics diag;
    const auto path = (source_dir / "tests/config/no-such-file.toml").string();
    CHECK_FALSE(daemon::load_config(path, diag).has_value());
    CHECK(diag.to_string() ==
          path + ": cannot read the configuration: No such file or directory\n");
}

TEST_CASE("damaged configurations give errors, never an exception or a crash") {
    const auto original = read_text(source_dir / "tests/config/good/full.toml");
    TempDir dir;
    const auto path = dir.path() / "full.toml";
    for (const auto* name : {"dummy-cert.pem", "dummy-key.pem", "users"})
        fs::copy_file(source_dir / "tests/config/good" / name, dir.path() / name);
    std::mt19937 rng(20260101); // seeded: every run damages the file the same way
    const std::string alphabet = "[]{}\"'=#.,:-_ \n0aZ\\\x01\xff";
    int rejected = 0;
    for (int round = 0; round < 300; ++round) {
        auto text = original;
        for (int edits = 1 + static_cast<int>(rng() % 4); edits > 0; --edits) {
            const auto pos = rng() % text.size();
            text[pos] = alphabet[rng() % alphabet.size()];
        }
        write_text(path, text);
        core::Diagnostics diag;
        CAPTURE(text);
        std::optional<daemon::Config> config;
        CHECK_NOTHROW(config = daemon::load_config(path.string(), diag));
        CHECK(config.has_value() == diag.empty());
        rejected += config ? 0 : 1;
    }
    CHECK(rejected > 0);
}
