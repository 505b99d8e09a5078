// libFuzzer entry point for the SMTP command parsers: parse_command, then
// MAIL FROM / RCPT TO argument parsing with and without SMTPUTF8. Besides
// "no crash, no sanitizer report", it checks invariants: an accepted address
// is a valid mailbox, an error is a well-formed reply, xtext round-trips.
// Plain C++: built with clang -fsanitize=fuzzer later; nothing here needs it.

#include "smtp/address.hpp"
#include "smtp/command.hpp"
#include "smtp/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void require(bool condition) {
    if (!condition)
        std::abort();
}

void check_reply(const ember::smtp::Reply& r) {
    require(r.code >= 500 && r.code <= 599);
    const auto wire = ember::smtp::format_reply(r);
    require(wire.size() >= 5 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
    require(wire.find('\n') == wire.size() - 1); // one line, nothing injected
}

void fuzz_mail(std::string_view args) {
    const auto result = ember::smtp::parse_mail_from(args);
    if (const auto* r = std::get_if<ember::smtp::Reply>(&result)) {
        check_reply(*r);
        return;
    }
    const auto& mail = std::get<ember::smtp::MailFrom>(result);
    require(mail.address.empty() || ember::smtp::is_valid_mailbox(mail.address, mail.smtputf8));
}

void fuzz_rcpt(std::string_view args, bool smtputf8) {
    const auto result = ember::smtp::parse_rcpt_to(args, ember::smtp::ParseOptions{smtputf8});
    if (const auto* r = std::get_if<ember::smtp::Reply>(&result)) {
        check_reply(*r);
        return;
    }
    const auto& rcpt = std::get<ember::smtp::RcptTo>(result);
    require(rcpt.postmaster_only || ember::smtp::is_valid_mailbox(rcpt.spec.address, smtputf8));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto cmd = ember::smtp::parse_command(input);
    if (cmd.verb == ember::smtp::Verb::Mail)
        fuzz_mail(cmd.args);
    if (cmd.verb == ember::smtp::Verb::Rcpt) {
        fuzz_rcpt(cmd.args, false);
        fuzz_rcpt(cmd.args, true);
    }
    // The raw input as arguments too, so the fuzzer need not find the verb.
    fuzz_mail(input);
    fuzz_rcpt(input, true);
    const auto decoded = ember::smtp::xtext_decode(ember::smtp::xtext_encode(input));
    require(decoded && *decoded == input);
    return 0;
}
