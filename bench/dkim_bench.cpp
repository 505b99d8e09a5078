// ember-dkim-bench: DKIM signing throughput on one core, for bench/dkim-bench.
//
//   ember-dkim-bench [--seconds S] [--opendkim]
//
// Generates an RSA-2048 and an Ed25519 key in a temp dir, then signs 2 KB
// and 50 KB messages with DkimSigner (relaxed/relaxed, the default header
// list) in a loop on this thread for S seconds of user CPU time each
// (default 3; `openssl speed` measures the same way). With
// --opendkim it also measures libopendkim's own signing of the same
// messages, which parses the PEM key for every message. Prints one TSV line
// per measurement: implementation, algorithm, message bytes, messages/s.

#include "auth/dkim_keygen.hpp"
#include "auth/dkim_keys.hpp"
#include "auth/dkim_opendkim.hpp"
#include "auth/dkim_signer.hpp"

#include <fmt/core.h>

#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <string_view>

using namespace ember::auth;
namespace fs = std::filesystem;

namespace {

// A bulk message of exactly `size` bytes: the usual headers, then lines of
// text (78 columns) up to the size.
std::string message_of(std::size_t size) {
    std::string m = "From: News <news@example.com>\r\n"
                    "To: reader@example.org\r\n"
                    "Subject: This week at example.com: the news you asked for\r\n"
                    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                    "Message-ID: <20240101000000.1234567890@example.com>\r\n"
                    "MIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "List-Unsubscribe: <https://example.com/u/0123456789abcdef>\r\n"
                    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                    "Feedback-ID: 42:newsletter:example\r\n"
                    "\r\n";
    const std::string line = std::string(76, 'x') + "\r\n";
    while (m.size() + line.size() <= size)
        m += line;
    const auto rest = size - m.size(); // < one line
    m += rest >= 2 ? std::string(rest - 2, 'y') + "\r\n" : std::string(rest, 'y');
    return m;
}

// User CPU seconds of this thread. `openssl speed` divides by user CPU time
// too (unless -elapsed), so both rates mean "per core" even when other work
// shares the machine.
double user_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec) / 1e6;
}

// Calls `sign` until it has used `seconds` of CPU; returns calls per second.
double rate(double seconds, const std::function<void()>& sign) {
    sign(); // warm-up: first-use costs (method fetches, page faults)
    const double start = user_seconds();
    std::uint64_t n = 0;
    double used = 0;
    while (used < seconds) {
        for (int i = 0; i < 8; ++i)
            sign();
        n += 8;
        used = user_seconds() - start;
    }
    return static_cast<double>(n) / used;
}

std::optional<DkimKey> make_key(const fs::path& dir, DkimAlgorithm algorithm) {
    DkimKeyConfig config;
    config.domain = "example.com";
    config.selector = algorithm == DkimAlgorithm::RsaSha256 ? "rsa" : "ed";
    config.algorithm = algorithm;
    config.key = (dir / (config.selector + ".pem")).string();
    std::string error;
    if (!generate_dkim_key({config.domain, config.selector, algorithm, 2048, config.key}, error)) {
        std::cerr << "ember-dkim-bench: " << error << "\n";
        return std::nullopt;
    }
    ember::core::Diagnostics diag;
    auto key = load_dkim_key(config, "bench", 0, diag);
    if (!key)
        std::cerr << "ember-dkim-bench: " << diag.to_string();
    return key;
}

int run(double seconds, bool opendkim_too, const fs::path& dir) {
    OpenDkim opendkim;
    for (const auto algorithm : {DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256}) {
        const auto key = make_key(dir, algorithm);
        if (!key)
            return 1;
        const DkimSigner signer({*key});
        const auto name =
            algorithm == DkimAlgorithm::RsaSha256 ? "rsa-2048" : std::string_view("ed25519");
        for (const std::size_t size : {2048, 51200}) {
            const auto message = message_of(size);
            std::size_t sink = 0;
            const double ember = rate(seconds, [&] {
                sink += signer.sign(message, "example.com", 1'700'000'000).size();
            });
            fmt::print("ember\t{}\t{}\t{:.0f}\n", name, size, ember);
            if (!opendkim_too)
                continue;
            std::string error;
            const double theirs = rate(seconds, [&] {
                sink += opendkim.sign(*key, message, 1'700'000'000, error).value_or("").size();
            });
            fmt::print("libopendkim\t{}\t{}\t{:.0f}\n", name, size, theirs);
            if (sink == 0)
                return 1;
        }
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 3;
    bool opendkim_too = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--seconds" && i + 1 < argc) {
            seconds = std::atof(argv[++i]);
        } else if (arg == "--opendkim") {
            opendkim_too = true;
        } else {
            std::cerr << "usage: ember-dkim-bench [--seconds S] [--opendkim]\n";
            return 2;
        }
    }
    const auto dir =
        fs::temp_directory_path() / fmt::format("ember-dkim-bench-{}", std::random_device{}());
    fs::create_directories(dir);
    const int status = run(seconds > 0 ? seconds : 3, opendkim_too, dir);
    std::error_code ec;
    fs::remove_all(dir, ec);
    return status;
}
