// ember-merge-bench: template merge throughput on one core (issue 7).
//
//   ember-merge-bench [--recipients N] [--runs R]
//
// One bulk message (multipart/alternative: a quoted-printable HTML part and
// a base64 text part, ~6 KB, plus a Subject) with three variables per
// recipient (first_name, last_name, unsubscribe token), compiled once and
// rendered for N recipients (default 10,000) whose values come from a
// contact-attribute layer; no hook. Next to it, the pass-through: the same
// message copied once per recipient (the most an unpersonalized relay does
// per delivery; it can share one buffer). Times are CPU seconds of this
// thread (CLOCK_THREAD_CPUTIME_ID), best of R runs (default 5). Prints one TSV line per
// measurement: what, messages/s, output bytes/s, microseconds per message; then the ratio.

#include "personalize/merge.hpp"

#include <boost/json/object.hpp>
#include <fmt/core.h>

#include <time.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

using namespace ember::personalize;

namespace {

// CPU time of this thread, with nanosecond resolution (getrusage's is a
// scheduler tick, too coarse for one run).
double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Keeps the compiler from eliding a copy nobody reads.
void keep(const std::string& s) {
    asm volatile("" : : "r"(s.data()) : "memory");
}

std::string base64(std::string_view text) {
    std::string out;
    encode_base64(text, out);
    return out;
}

std::string quoted_printable(std::string_view text) {
    std::string out;
    encode_quoted_printable(text, out);
    return out;
}

std::string html_body() {
    std::string html = "<!DOCTYPE html>\r\n<html><body style=\"font-family:sans-serif\">\r\n"
                       "<h1>Hello {{ first_name | default: \"there\" }} {{ last_name }}!</h1>\r\n";
    for (int i = 0; i < 24; ++i)
        html += fmt::format("<p class=\"item\">Item {}: this week's caf\u00e9 news, with a link "
                            "to <a href=\"https://example.com/a/{}\">the article</a>.</p>\r\n",
                            i, i);
    html += "<p><a href=\"https://example.com/u/{{ token }}\">Unsubscribe</a></p>\r\n"
            "</body></html>\r\n";
    return html;
}

std::string text_body() {
    std::string text = "Hello {{ first_name | default: \"there\" }} {{ last_name }}!\r\n\r\n";
    for (int i = 0; i < 24; ++i)
        text +=
            fmt::format("Item {}: this week's caf\u00e9 news: https://example.com/a/{}\r\n", i, i);
    text += "\r\nUnsubscribe: https://example.com/u/{{ token }}\r\n";
    return text;
}

std::string message() {
    return "From: News <news@example.com>\r\n"
           "To: reader@example.org\r\n"
           "Subject: {{ first_name | default: \"Friend\" }}, this week at example.com\r\n"
           "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           "Message-ID: <20240101000000.1234567890@example.com>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
           "\r\n"
           "--b1\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: base64\r\n"
           "\r\n" +
           base64(text_body()) +
           "\r\n--b1\r\n"
           "Content-Type: text/html; charset=utf-8\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n"
           "\r\n" +
           quoted_printable(html_body()) + "\r\n--b1--\r\n";
}

struct Result {
    double seconds = 0;
    std::size_t bytes = 0;
};

Result best_of(int runs, const std::function<std::size_t()>& work) {
    Result best{1e300, 0};
    for (int r = 0; r < runs; ++r) {
        const auto t0 = cpu_seconds();
        const auto bytes = work();
        const auto t = cpu_seconds() - t0;
        if (t < best.seconds)
            best = {t, bytes};
    }
    return best;
}

void print(std::string_view what, std::size_t n, const Result& r) {
    const double s = r.seconds > 0 ? r.seconds : 1e-9;
    fmt::print("{}\t{:.0f} msg/s\t{:.1f} MB/s\t{:.2f} us/msg\n", what, static_cast<double>(n) / s,
               static_cast<double>(r.bytes) / s / 1e6, s * 1e6 / static_cast<double>(n));
}

} // namespace

int main(int argc, char** argv) {
    std::size_t recipients = 10'000;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (flag == "--recipients")
            recipients = std::strtoul(argv[i + 1], nullptr, 10);
        else if (flag == "--runs")
            runs = std::atoi(argv[i + 1]);
    }
    const auto raw = message();
    auto compiled = CompiledMessage::compile(raw);
    if (auto* e = std::get_if<MergeError>(&compiled)) {
        std::cerr << "compile: " << e->enhanced << " " << e->text << "\n";
        return 1;
    }
    const auto& m = std::get<CompiledMessage>(compiled);
    std::vector<boost::json::object> contacts(recipients);
    for (std::size_t i = 0; i < recipients; ++i) {
        contacts[i]["first_name"] = i % 7 == 0 ? "J\u00f6rg" : "Ann";
        contacts[i]["last_name"] = fmt::format("Lee-{}", i);
        contacts[i]["token"] = fmt::format("{:016x}", i * 0x9E3779B97F4A7C15ULL);
    }
    fmt::print("message\t{} bytes\t{} recipients\t3 variables each\n", raw.size(), recipients);

    const auto compile_time = best_of(runs, [&] {
        std::size_t n = 0;
        for (int i = 0; i < 100; ++i)
            n += std::get<CompiledMessage>(CompiledMessage::compile(raw)).content().size();
        return n;
    });
    fmt::print("compile\t{:.1f} us/message\n", compile_time.seconds * 1e6 / 100);

    const auto copies = best_of(runs, [&] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < recipients; ++i) {
            const std::string copy(m.content()); // what a pass-through hands each delivery
            keep(copy);
            n += copy.size();
        }
        return n;
    });
    print("pass-through copy", recipients, copies);

    const auto merges = best_of(runs, [&] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < recipients; ++i) {
            Variables vars;
            vars.add(contacts[i]);
            const auto out = m.render(vars);
            keep(std::get<std::string>(out));
            n += std::get<std::string>(out).size();
        }
        return n;
    });
    print("personalized render", recipients, merges);

    const auto keys = best_of(runs, [&] {
        std::size_t n = 0;
        for (std::size_t i = 0; i < recipients; ++i) {
            Variables vars;
            vars.add(contacts[i]);
            n += m.render_key(vars).size();
        }
        return n;
    });
    print("render_key", recipients, keys);
    fmt::print("ratio\t{:.4f} (personalized render / pass-through copy, msg/s)\n",
               copies.seconds / (merges.seconds > 0 ? merges.seconds : 1e-9));
    return 0;
}
