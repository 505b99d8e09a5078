// dkim_sign_sample OUTDIR: signs sample messages the way ember signs mail,
// for dkim_verify.py to check with verifiers ember does not share code with
// (dkimpy and opendkim-testmsg). It generates its keys with dkim_keygen and
// writes into OUTDIR:
//   records.tsv    DNS name <TAB> TXT record, one key per line
//   NAME.SIGNER.eml  a signed message (CRLF), one per sample and signer
//   manifest.tsv   file <TAB> signer <TAB> number of signatures
// The samples cover 8-bit and SMTPUTF8 text, long folded headers, lines that
// start with dots, an empty body and a 5 MB body.

#include "auth/dkim_keygen.hpp"
#include "auth/dkim_keys.hpp"
#include "auth/dkim_signer.hpp"

#include <ctime>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace ember::auth;

namespace {

struct Sample {
    std::string name;
    std::string from_domain;
    std::string message;
};

std::string headers(const std::string& from, const std::string& subject,
                    const std::string& extra = "") {
    return "From: " + from + "\r\nTo: reader@example.org\r\nSubject: " + subject +
           "\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <sample@example.com>\r\n"
           "MIME-Version: 1.0\r\n" +
           extra + "\r\n";
}

std::string long_headers() {
    std::string refs = "References:";
    for (int i = 0; i < 40; ++i)
        refs += "\r\n\t<thread-" + std::to_string(i) + ".1234567890@lists.example.com>";
    std::string cc = "Cc: ";
    for (int i = 0; i < 30; ++i)
        cc += (i ? ",\r\n  " : "") + std::string("Person ") + std::to_string(i) + " <p" +
              std::to_string(i) + "@example.org>";
    return refs + "\r\n" + cc + "\r\nX-Long: " + std::string(900, 'x') + "\r\n";
}

std::vector<Sample> samples() {
    const std::string utf8 = "Gr\xc3\xbc\xc3\x9f"
                             "e aus K\xc3\xb6ln \xe2\x82\xac \xf0\x9f\x93\xa7";
    std::string large;
    for (int i = 0; large.size() < 5 * 1024 * 1024; ++i)
        large += "Line " + std::to_string(i) + " of a very large body,  with  spaces \t\r\n";
    return {
        {"plain", "example.com",
         headers("News <news@example.com>", "Plain text") + "Hello,\r\n\r\nThe news.\r\n"},
        {"utf8-body", "example.com",
         headers("news@example.com", "8-bit body",
                 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n") +
             utf8 + "\r\n" + utf8 + "  \r\n"},
        {"smtputf8", "example.com",
         headers("J\xc3\xb6ran <j\xc3\xb6ran@example.com>", utf8,
                 "Content-Type: text/plain; charset=utf-8\r\n") +
             utf8 + "\r\n"},
        {"long-headers", "example.com",
         headers("news@example.com",
                 "A subject that goes on and on past the seventy-eight column mark,\r\n"
                 "\tfolded once,\r\n  and folded twice",
                 long_headers()) +
             "body\r\n"},
        {"dots", "example.com",
         headers("news@example.com", "Dots") + ".\r\n..\r\n.hidden\r\n...three\r\nend\r\n"},
        {"empty-body", "example.com", headers("news@example.com", "Empty")},
        {"whitespace", "example.com",
         headers("news@example.com", "Whitespace") + "a  b\t\tc   \r\n\t\r\n  \r\n\r\n\r\n"},
        {"subdomain", "news.example.com",
         headers("news@news.example.com", "Signed by the parent domain") + "Hi\r\n"},
        {"large", "example.com", headers("news@example.com", "Large") + large},
    };
}

bool write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary);
    out << data;
    return static_cast<bool>(out);
}

std::optional<DkimKey> make_key(const std::string& dir, const std::string& selector,
                                DkimAlgorithm algorithm) {
    DkimKeyConfig config;
    config.domain = "example.com";
    config.selector = selector;
    config.algorithm = algorithm;
    config.key = dir + "/" + selector + ".pem";
    std::string error;
    if (!generate_dkim_key({config.domain, selector, algorithm, 2048, config.key}, error)) {
        std::cerr << "dkim_sign_sample: " << error << "\n";
        return std::nullopt;
    }
    ember::core::Diagnostics diag;
    auto key = load_dkim_key(config, "sample", 0, diag);
    if (!key)
        std::cerr << "dkim_sign_sample: " << diag.to_string();
    return key;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: dkim_sign_sample OUTDIR\n";
        return 2;
    }
    const std::string dir = argv[1];
    auto rsa = make_key(dir, "rsa", DkimAlgorithm::RsaSha256);
    auto ed = make_key(dir, "ed", DkimAlgorithm::Ed25519Sha256);
    if (!rsa || !ed)
        return 1;
    DkimKey simple = *rsa;
    simple.config.canonicalization = {DkimCanon::Simple, DkimCanon::Simple};
    DkimKey expiring = *ed;
    expiring.config.expire_after = std::chrono::hours(1);
    const std::vector<std::pair<std::string, DkimSigner>> signers{
        {"rsa", DkimSigner({*rsa})},          {"ed25519", DkimSigner({*ed})},
        {"dual", DkimSigner({*rsa, *ed})},    {"simple", DkimSigner({simple})},
        {"expiring", DkimSigner({expiring})},
    };
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::string manifest;
    for (const auto& sample : samples()) {
        for (const auto& [name, signer] : signers) {
            const auto sigs = signer.sign(sample.message, sample.from_domain, now);
            const auto file = sample.name + "." + name + ".eml";
            if (sigs.empty() || !write_file(dir + "/" + file, sigs + sample.message))
                return 1;
            manifest += file + "\t" + name + "\t" +
                        std::to_string(signer.keys_for(sample.from_domain, now).size()) + "\n";
        }
    }
    const auto records =
        rsa->dns_name() + "\t" + rsa->record + "\n" + ed->dns_name() + "\t" + ed->record + "\n";
    return write_file(dir + "/records.tsv", records) && write_file(dir + "/manifest.tsv", manifest)
               ? 0
               : 1;
}
