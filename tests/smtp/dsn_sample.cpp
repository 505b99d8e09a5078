// dsn_sample DIR: writes a few DSNs built by smtp/dsn.hpp to DIR/<name>.eml
// so tests/smtp/dsn_parse_check.py can read them with an independent MIME
// parser (Python's email package). The inputs here and the expectations in
// the Python check describe the same cases; change them together.

#include "smtp/dsn.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

using namespace ember;

namespace {

constexpr std::int64_t kArrival = 1700000000;

const std::string kOriginal = "From: Alice <alice@example.com>\r\n"
                              "To: bob@example.org, carol@nullmx.example\r\n"
                              "Subject: Quarterly report\r\n"
                              "Message-ID: <m1@example.com>\r\n"
                              "\r\n"
                              "The numbers are in.\r\n";

core::Outcome remote(core::OutcomeKind kind, int code, std::string enhanced, std::string text) {
    return core::Outcome{kind,
                         core::OutcomeScope::Recipient,
                         code,
                         std::move(enhanced),
                         std::move(text),
                         "RCPT TO",
                         "mx.example.org",
                         "192.0.2.1",
                         false};
}

smtp::DsnInput base(smtp::DsnKind kind, core::DsnRet ret) {
    smtp::DsnInput in;
    in.kind = kind;
    in.reporting_mta = "mta.example.com";
    in.queue_id = "4Xq7Hn2kPz";
    in.envid = "env-123";
    in.ret = ret;
    in.original_sender = "alice@example.com";
    in.arrival_unix = kArrival;
    in.now_unix = kArrival + 3 * 3600;
    in.original_message = kOriginal;
    return in;
}

smtp::DsnInput failure() {
    auto in = base(smtp::DsnKind::Failure, core::DsnRet::Headers);
    smtp::DsnRecipient bob{"bob@example.org", "rfc822;bob@example.org",
                           remote(core::OutcomeKind::Failed, 550, "5.1.1", "no such user"),
                           kArrival + 60, 0};
    smtp::DsnRecipient carol{"carol@nullmx.example", "",
                             core::Outcome{core::OutcomeKind::Failed, core::OutcomeScope::Site, 556,
                                           "5.1.10", "Recipient address has null MX", "dns", "", "",
                                           true},
                             kArrival + 60, 0};
    in.recipients = {bob, carol};
    return in;
}

smtp::DsnInput full() {
    auto in = base(smtp::DsnKind::Failure, core::DsnRet::Full);
    in.recipients = {{"bob@example.org", "",
                      remote(core::OutcomeKind::Failed, 552, "5.2.2", "mailbox full"),
                      kArrival + 60, 0}};
    return in;
}

smtp::DsnInput delay() {
    auto in = base(smtp::DsnKind::Delay, core::DsnRet::Full);
    in.recipients = {{"bob@example.org", "",
                      remote(core::OutcomeKind::Deferred, 451, "4.7.1", "greylisted"),
                      kArrival + 3 * 3600 - 60, kArrival + 5 * 86400}};
    return in;
}

smtp::DsnInput hostile() {
    auto in = full();
    std::string text = "no\r\nX-Injected: yes\r\n\r\n--4Xq7Hn2kPz\r\n";
    for (int i = 0; i < 100; ++i)
        text += " filler" + std::to_string(i);
    in.recipients[0].outcome.text = text;
    return in;
}

smtp::DsnInput utf8() {
    auto in = failure();
    in.recipients.resize(1);
    in.recipients[0].final_recipient = "\xe7\x94\xa8\xe6\x88\xb7@example.net";
    in.recipients[0].original_recipient = "utf-8;\xe7\x94\xa8\xe6\x88\xb7@example.net";
    return in;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: dsn_sample DIR\n");
        return 2;
    }
    const std::vector<std::pair<std::string, smtp::DsnInput>> samples{
        {"failure", failure()}, {"full", full()}, {"delay", delay()},
        {"hostile", hostile()}, {"utf8", utf8()},
    };
    for (const auto& [name, input] : samples) {
        const auto dsn = smtp::build_dsn(input);
        if (!dsn) {
            std::fprintf(stderr, "dsn_sample: no DSN for %s\n", name.c_str());
            return 1;
        }
        std::ofstream out(std::string(argv[1]) + "/" + name + ".eml", std::ios::binary);
        out << dsn->content;
        if (!out) {
            std::fprintf(stderr, "dsn_sample: cannot write %s\n", name.c_str());
            return 1;
        }
    }
    return 0;
}
