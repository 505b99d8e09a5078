#include "smtp/dsn.hpp"

#include "smtp/message_header.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace ember;
using namespace ember::smtp;

namespace {

constexpr std::int64_t kArrival = 1700000000;
constexpr std::int64_t kNow = kArrival + 3600;

const std::string kOriginal = "Received: from client.example.com by mta.example.com\r\n"
                              "From: Alice <alice@example.com>\r\n"
                              "To: bob@example.org\r\n"
                              "Subject: Hello\r\n"
                              "Message-ID: <m1@example.com>\r\n"
                              "\r\n"
                              "Body line 1\r\n"
                              "Body line 2\r\n";
const std::string kOriginalHeaders = kOriginal.substr(0, kOriginal.find("\r\n\r\n") + 2);

DsnRecipient remote_550() {
    DsnRecipient r;
    r.final_recipient = "bob@example.org";
    r.original_recipient = "rfc822;bob@example.org";
    r.outcome = core::Outcome{core::OutcomeKind::Failed,
                              core::OutcomeScope::Recipient,
                              550,
                              "5.1.1",
                              "no such user",
                              "RCPT TO",
                              "mx.example.org",
                              "192.0.2.1",
                              false};
    r.last_attempt_unix = kNow - 100;
    return r;
}

DsnRecipient local_null_mx() {
    DsnRecipient r;
    r.final_recipient = "carol@nullmx.example";
    r.outcome = core::Outcome{core::OutcomeKind::Failed,
                              core::OutcomeScope::Site,
                              556,
                              "5.1.10",
                              "Recipient address has null MX",
                              "dns",
                              "",
                              "",
                              true};
    r.last_attempt_unix = kNow - 50;
    return r;
}

DsnInput failure_input() {
    DsnInput in;
    in.kind = DsnKind::Failure;
    in.reporting_mta = "mta.example.com";
    in.queue_id = "4Xq7Hn2kPz";
    in.envid = "env-123";
    in.original_sender = "alice@example.com";
    in.arrival_unix = kArrival;
    in.now_unix = kNow;
    in.recipients = {remote_550(), local_null_mx()};
    in.original_message = kOriginal;
    return in;
}

// ---- a small MIME reader for the assertions ----------------------------

struct Part {
    HeaderBlock headers;
    std::string body;
};

struct Report {
    HeaderBlock headers;
    std::string boundary;
    std::vector<Part> parts;
};

std::string field(const HeaderBlock& block, std::string_view name) {
    const auto* f = find_field(block, name);
    if (f == nullptr)
        return "<absent>";
    auto value = unfold(f->value);
    while (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
    return value;
}

Part split_part(std::string_view text) {
    const auto block = parse_header_block(text);
    return Part{block, std::string(text.substr(block.body_offset))};
}

// Splits at "CRLF--boundary" delimiters (RFC 2046 5.1.1).
Report read_report(const std::string& content) {
    Report r;
    r.headers = parse_header_block(content);
    const auto type = field(r.headers, "Content-Type");
    const auto at = type.find("boundary=\"");
    REQUIRE(at != std::string::npos);
    r.boundary = type.substr(at + 10, type.find('"', at + 10) - at - 10);
    const auto delimiter = "\r\n--" + r.boundary;
    auto pos = content.find(delimiter, r.headers.body_offset);
    while (pos != std::string::npos) {
        pos += delimiter.size();
        if (content.compare(pos, 2, "--") == 0)
            break;
        const auto next = content.find(delimiter, pos);
        REQUIRE(next != std::string::npos);
        r.parts.push_back(split_part(std::string_view(content).substr(pos + 2, next - pos - 2)));
        pos = next;
    }
    return r;
}

// The delivery-status groups: per-message fields, then one per recipient.
std::vector<HeaderBlock> status_groups(const std::string& body) {
    std::vector<HeaderBlock> groups;
    std::size_t pos = 0;
    while (pos < body.size()) {
        auto end = body.find("\r\n\r\n", pos);
        end = end == std::string::npos ? body.size() : end + 2;
        groups.push_back(parse_header_block(body.substr(pos, end - pos)));
        pos = end + 2;
    }
    return groups;
}

// Every line ends in CRLF and has at most 998 octets (RFC 5322 2.1.1).
bool lines_ok(std::string_view content, std::size_t limit = 998) {
    std::size_t start = 0;
    while (start < content.size()) {
        const auto end = content.find("\r\n", start);
        if (end == std::string_view::npos)
            return false;
        const auto line = content.substr(start, end - start);
        if (line.size() > limit || line.find_first_of("\r\n") != std::string_view::npos)
            return false;
        start = end + 2;
    }
    return true;
}

// The text part as one line: each run of line ends and spaces becomes one
// space, so a phrase is found wherever the wrapping broke it.
std::string unwrapped(std::string_view text) {
    std::string out;
    for (const char c : text) {
        const bool space = c == ' ' || c == '\r' || c == '\n';
        if (!space)
            out += c;
        else if (!out.empty() && out.back() != ' ')
            out += ' ';
    }
    return out;
}

Report build(const DsnInput& in) {
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(lines_ok(dsn->content));
    return read_report(dsn->content);
}

} // namespace

TEST_CASE("a failure DSN for a remote 550 with ORCPT and a local null MX carries every field") {
    const auto in = failure_input();
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(dsn->envelope_sender.empty());
    CHECK(dsn->recipient == "alice@example.com");
    CHECK(dsn->body == core::BodyType::SevenBit);
    CHECK_FALSE(dsn->smtputf8);
    CHECK(lines_ok(dsn->content));
    const auto r = read_report(dsn->content);

    CHECK(field(r.headers, "From") == "Mail Delivery System <MAILER-DAEMON@mta.example.com>");
    CHECK(field(r.headers, "To") == "<alice@example.com>");
    CHECK(field(r.headers, "Subject") == "Undelivered Mail Returned to Sender");
    CHECK(field(r.headers, "Date") == format_rfc5322_date(kNow));
    CHECK(field(r.headers, "Message-ID") == "<4Xq7Hn2kPz.dsn.1700003600@mta.example.com>");
    CHECK(field(r.headers, "In-Reply-To") == "<m1@example.com>");
    CHECK(field(r.headers, "References") == "<m1@example.com>");
    CHECK(field(r.headers, "Auto-Submitted") == "auto-replied");
    CHECK(field(r.headers, "MIME-Version") == "1.0");
    CHECK(field(r.headers, "Content-Type") ==
          "multipart/report; report-type=delivery-status; boundary=\"" + r.boundary + "\"");
    CHECK(field(r.headers, "Content-Transfer-Encoding") == "7bit");
    REQUIRE(r.parts.size() == 3);

    CHECK(field(r.parts[0].headers, "Content-Type") == "text/plain; charset=us-ascii");
    const auto text = unwrapped(r.parts[0].body);
    CHECK(text.find("This is the mail system at host mta.example.com.") != std::string::npos);
    CHECK(text.find("could not be delivered to one or more recipients") != std::string::npos);
    CHECK(text.find("please send mail to postmaster.") != std::string::npos);
    CHECK(text.find("<bob@example.org>: " + in.recipients[0].outcome.summary()) !=
          std::string::npos);
    CHECK(text.find("<carol@nullmx.example>: " + in.recipients[1].outcome.summary()) !=
          std::string::npos);

    CHECK(field(r.parts[1].headers, "Content-Type") == "message/delivery-status");
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(field(groups[0], "Original-Envelope-Id") == "env-123");
    CHECK(field(groups[0], "Reporting-MTA") == "dns; mta.example.com");
    CHECK(field(groups[0], "Arrival-Date") == format_rfc5322_date(kArrival));
    CHECK(field(groups[0], "X-Ember-Queue-ID") == "4Xq7Hn2kPz");

    CHECK(field(groups[1], "Original-Recipient") == "rfc822; bob@example.org");
    CHECK(field(groups[1], "Final-Recipient") == "rfc822; bob@example.org");
    CHECK(field(groups[1], "Action") == "failed");
    CHECK(field(groups[1], "Status") == "5.1.1");
    CHECK(field(groups[1], "Remote-MTA") == "dns; mx.example.org");
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 550 5.1.1 no such user");
    CHECK(field(groups[1], "Last-Attempt-Date") == format_rfc5322_date(kNow - 100));
    CHECK(field(groups[1], "Will-Retry-Until") == "<absent>");

    CHECK(field(groups[2], "Original-Recipient") == "<absent>");
    CHECK(field(groups[2], "Final-Recipient") == "rfc822; carol@nullmx.example");
    CHECK(field(groups[2], "Action") == "failed");
    CHECK(field(groups[2], "Status") == "5.1.10");
    CHECK(field(groups[2], "Remote-MTA") == "<absent>");
    CHECK(field(groups[2], "Diagnostic-Code") ==
          "X-Ember; 556 5.1.10 Recipient address has null MX (dns)");
    CHECK(field(groups[2], "Last-Attempt-Date") == format_rfc5322_date(kNow - 50));

    // RET absent: headers only (our default, see dsn.hpp).
    CHECK(field(r.parts[2].headers, "Content-Type") == "text/rfc822-headers");
    CHECK(r.parts[2].body == kOriginalHeaders);
}

TEST_CASE("a delay DSN says delayed, gives Will-Retry-Until and returns headers even for FULL") {
    auto in = failure_input();
    in.kind = DsnKind::Delay;
    in.ret = core::DsnRet::Full;
    in.now_unix = kArrival + 5 * 3600;
    in.recipients = {remote_550()};
    in.recipients[0].outcome = core::Outcome{core::OutcomeKind::Deferred,
                                             core::OutcomeScope::Recipient,
                                             451,
                                             "4.7.1",
                                             "greylisted, try again later",
                                             "RCPT TO",
                                             "mx.example.org",
                                             "192.0.2.1",
                                             false};
    in.recipients[0].will_retry_until_unix = kArrival + 5 * 86400;
    const auto r = build(in);

    CHECK(field(r.headers, "Subject") == "Delayed Mail (still being retried)");
    CHECK(field(r.headers, "Message-ID") ==
          "<4Xq7Hn2kPz.delay." + std::to_string(kArrival + 5 * 3600) + "@mta.example.com>");
    REQUIRE(r.parts.size() == 3);
    const auto text = unwrapped(r.parts[0].body);
    CHECK(text.find("THIS IS A WARNING ONLY") != std::string::npos);
    CHECK(text.find("could not be delivered for more than 5 hours") != std::string::npos);
    CHECK(text.find("retried until it is 5 days old") != std::string::npos);
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 2);
    CHECK(field(groups[1], "Action") == "delayed");
    CHECK(field(groups[1], "Status") == "4.7.1");
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 451 4.7.1 greylisted, try again later");
    CHECK(field(groups[1], "Will-Retry-Until") == format_rfc5322_date(kArrival + 5 * 86400));
    CHECK(field(r.parts[2].headers, "Content-Type") == "text/rfc822-headers");
    CHECK(field(r.parts[2].headers, "Content-Description") == "Message Headers");
    CHECK(r.parts[2].body == kOriginalHeaders);
}

TEST_CASE("RET=FULL returns the whole message and RET=HDRS only its header block") {
    struct Case {
        core::DsnRet ret;
        std::string type;
        std::string body;
    };
    const std::vector<Case> cases{
        {core::DsnRet::Full, "message/rfc822", kOriginal},
        {core::DsnRet::Headers, "text/rfc822-headers", kOriginalHeaders},
        {core::DsnRet::Unspecified, "text/rfc822-headers", kOriginalHeaders},
    };
    for (const auto& c : cases) {
        CAPTURE(c.type);
        auto in = failure_input();
        in.ret = c.ret;
        const auto r = build(in);
        REQUIRE(r.parts.size() == 3);
        CHECK(field(r.parts[2].headers, "Content-Type") == c.type);
        CHECK(r.parts[2].body == c.body);
    }
}

TEST_CASE("the null sender or an empty recipient list gets no DSN") {
    auto in = failure_input();
    in.original_sender.clear();
    CHECK_FALSE(build_dsn(in).has_value());
    in = failure_input();
    in.recipients.clear();
    CHECK_FALSE(build_dsn(in).has_value());
}

TEST_CASE("hostile diagnostic text with CR LF cannot add a header line or a part") {
    auto in = failure_input();
    auto& text = in.recipients[0].outcome.text;
    text = "no such user\r\nX-Injected: yes\r\n\r\n--fake\r\nContent-Type: text/html\r\n";
    text += '\0';
    text += "\x01\x7f\tend";
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(lines_ok(dsn->content));
    CHECK(dsn->content.find("\nX-Injected") == std::string::npos);
    CHECK(dsn->content.find("\n--fake") == std::string::npos);
    CHECK(dsn->content.find("\nContent-Type: text/html") == std::string::npos);
    const auto r = read_report(dsn->content);
    REQUIRE(r.parts.size() == 3);
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    CHECK(field(groups[1], "Diagnostic-Code") ==
          "smtp; 550 5.1.1 no such user X-Injected: yes --fake Content-Type: text/html end");
    CHECK(field(groups[1], "Status") == "5.1.1");
}

TEST_CASE("a long diagnostic text is folded at spaces and unfolds to the original") {
    std::string text;
    for (int i = 0; i < 150; ++i)
        text += "word" + std::to_string(i) + " ";
    text.pop_back();
    auto in = failure_input();
    in.recipients[0].outcome.text = text;
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(lines_ok(dsn->content, 78));
    const auto r = read_report(dsn->content);
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    const auto* diag = find_field(groups[1], "Diagnostic-Code");
    REQUIRE(diag != nullptr);
    CHECK(diag->value.find("\r\n ") != std::string::npos); // it was folded
    CHECK(field(groups[1], "Diagnostic-Code") == "smtp; 550 5.1.1 " + text);
}

TEST_CASE("an unbroken 5000-octet diagnostic word leaves no line over 998 octets") {
    auto in = failure_input();
    in.recipients[0].outcome.text = std::string(5000, 'x');
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(lines_ok(dsn->content));
    const auto r = read_report(dsn->content);
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 3);
    auto diag = field(groups[1], "Diagnostic-Code");
    std::erase(diag, ' ');
    CHECK(diag == "smtp;5505.1.1" + std::string(5000, 'x'));
}

TEST_CASE("the boundary never occurs in the returned message") {
    auto in = failure_input();
    in.ret = core::DsnRet::Full;
    const auto first = build(in);
    // The same message again, now holding the boundary the first DSN used
    // and the first suffixed one.
    const std::string hostile = kOriginal + "--" + first.boundary + "\r\n--" + first.boundary +
                                ".0=\r\n--" + first.boundary + "--\r\n";
    in.original_message = hostile;
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    const auto second = read_report(dsn->content);
    CAPTURE(second.boundary);
    CHECK(second.boundary != first.boundary);
    CHECK(second.boundary.size() <= 70);
    CHECK(hostile.find(second.boundary) == std::string::npos);
    REQUIRE(second.parts.size() == 3);
    CHECK(second.parts[2].body == hostile);
}

TEST_CASE("an expired recipient fails with the status of its last temporary error") {
    auto in = failure_input();
    in.now_unix = kArrival + 5 * 86400;
    in.recipients = {remote_550()};
    in.recipients[0].outcome.kind = core::OutcomeKind::Deferred;
    in.recipients[0].outcome.code = 421;
    in.recipients[0].outcome.enhanced = "4.4.2";
    in.recipients[0].outcome.text = "too busy";
    const auto r = build(in);
    REQUIRE(r.parts.size() == 3);
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 2);
    CHECK(field(groups[1], "Action") == "failed");
    CHECK(field(groups[1], "Status") == "4.4.2");
    CHECK(unwrapped(r.parts[0].body).find("gave up after 5 days in the queue") !=
          std::string::npos);
}

TEST_CASE("a missing or malformed enhanced code becomes X.0.0 of the reply's class") {
    struct Case {
        int code;
        std::string enhanced;
        core::OutcomeKind kind;
        std::string want;
    };
    const std::vector<Case> cases{
        {550, "", core::OutcomeKind::Failed, "5.0.0"},
        {451, "garbage", core::OutcomeKind::Deferred, "4.0.0"},
        {550, "5.7.26", core::OutcomeKind::Failed, "5.7.26"},
        {550, "5.1234.1", core::OutcomeKind::Failed, "5.0.0"},
        {550, "3.1.1", core::OutcomeKind::Failed, "5.0.0"},
        {0, "", core::OutcomeKind::Failed, "5.0.0"},
        {0, "", core::OutcomeKind::Deferred, "4.0.0"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.code);
        CAPTURE(c.enhanced);
        auto in = failure_input();
        in.recipients = {remote_550()};
        in.recipients[0].outcome.code = c.code;
        in.recipients[0].outcome.enhanced = c.enhanced;
        in.recipients[0].outcome.kind = c.kind;
        const auto r = build(in);
        REQUIRE(r.parts.size() == 3);
        const auto groups = status_groups(r.parts[1].body);
        REQUIRE(groups.size() == 2);
        CHECK(field(groups[1], "Status") == c.want);
    }
}

TEST_CASE("an envid that is not printable ASCII is written in its xtext form") {
    struct Case {
        std::string envid;
        std::string want;
    };
    const std::vector<Case> cases{
        {"QQ314159", "QQ314159"},
        {"a+b=c", "a+b=c"},
        {"bad\r\nX-Injected: 1", "bad+0D+0AX-Injected:+201"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.envid);
        auto in = failure_input();
        in.envid = c.envid;
        const auto r = build(in);
        REQUIRE(r.parts.size() == 3);
        CHECK(field(status_groups(r.parts[1].body)[0], "Original-Envelope-Id") == c.want);
    }
}

TEST_CASE("an SMTPUTF8 address makes a global report with utf-8 addresses") {
    auto in = failure_input();
    in.original_sender = "jürgen@example.com";
    in.recipients = {remote_550()};
    in.recipients[0].final_recipient = "用户@example.net";
    in.recipients[0].original_recipient = "utf-8;用户@example.net";
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(dsn->smtputf8);
    CHECK(dsn->body == core::BodyType::EightBitMime);
    const auto r = read_report(dsn->content);
    CHECK(field(r.headers, "To") == "<jürgen@example.com>");
    CHECK(field(r.headers, "Content-Type").find("report-type=global-delivery-status;") !=
          std::string::npos);
    CHECK(field(r.headers, "Content-Transfer-Encoding") == "8bit");
    REQUIRE(r.parts.size() == 3);
    CHECK(field(r.parts[0].headers, "Content-Type") == "text/plain; charset=utf-8");
    CHECK(field(r.parts[1].headers, "Content-Type") == "message/global-delivery-status");
    const auto groups = status_groups(r.parts[1].body);
    REQUIRE(groups.size() == 2);
    CHECK(field(groups[1], "Final-Recipient") == "utf-8; 用户@example.net");
    CHECK(field(groups[1], "Original-Recipient") == "utf-8; 用户@example.net");
}

TEST_CASE("an ASCII report turns non-ASCII octets of a remote reply into '?'") {
    auto in = failure_input();
    in.recipients[0].outcome.text = "Benutzer unbekannt: M\xc3\xbcller";
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(dsn->body == core::BodyType::SevenBit);
    const auto r = read_report(dsn->content);
    CHECK(field(status_groups(r.parts[1].body)[1], "Diagnostic-Code") ==
          "smtp; 550 5.1.1 Benutzer unbekannt: M??ller");
}

TEST_CASE("a message with UTF-8 header fields comes back as message/global-headers") {
    const std::string message = "From: J\xc3\xbcrgen <j@example.com>\r\nSubject: Gr\xc3\xbc\xc3\x9f"
                                "e\r\n\r\nbody\r\n";
    auto in = failure_input();
    in.original_message = message;
    auto r = build(in);
    REQUIRE(r.parts.size() == 3);
    CHECK(field(r.parts[2].headers, "Content-Type") == "message/global-headers");
    CHECK(field(r.parts[2].headers, "Content-Transfer-Encoding") == "8bit");
    CHECK(field(r.parts[1].headers, "Content-Type") == "message/delivery-status");

    in.ret = core::DsnRet::Full;
    r = build(in);
    REQUIRE(r.parts.size() == 3);
    CHECK(field(r.parts[2].headers, "Content-Type") == "message/global");
    CHECK(r.parts[2].body == message);
}

TEST_CASE("an 8-bit body under RET=FULL is message/rfc822 with 8bit transfer encoding") {
    const std::string message = "From: a@example.com\r\n\r\nGr\xc3\xbc\xc3\x9f"
                                "e\r\n";
    auto in = failure_input();
    in.original_message = message;
    in.ret = core::DsnRet::Full;
    const auto dsn = build_dsn(in);
    REQUIRE(dsn.has_value());
    CHECK(dsn->body == core::BodyType::EightBitMime);
    CHECK_FALSE(dsn->smtputf8);
    const auto r = read_report(dsn->content);
    REQUIRE(r.parts.size() == 3);
    CHECK(field(r.parts[2].headers, "Content-Type") == "message/rfc822");
    CHECK(field(r.parts[2].headers, "Content-Transfer-Encoding") == "8bit");
}

TEST_CASE("a message too large or with lines SMTP cannot carry comes back as headers only") {
    struct Case {
        std::string name;
        std::string message;
        std::uint64_t limit;
        std::string note;
    };
    const std::string base = "From: a@example.com\r\nSubject: s\r\n\r\n";
    const std::vector<Case> cases{
        {"too large", base + std::string(500, 'x') + "\r\n", 200, "larger than 200 octets"},
        {"long line", base + std::string(999, 'x') + "\r\n", 1 << 20, "over 998 octets"},
        {"bare LF", base + "a\nb\r\n", 1 << 20, "bare CR or LF"},
        {"bare CR", base + "a\rb\r\n", 1 << 20, "bare CR or LF"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto in = failure_input();
        in.ret = core::DsnRet::Full;
        in.original_message = c.message;
        in.max_returned_size = c.limit;
        const auto r = build(in);
        REQUIRE(r.parts.size() == 3);
        CHECK(field(r.parts[2].headers, "Content-Type") == "text/rfc822-headers");
        CHECK(r.parts[2].body == "From: a@example.com\r\nSubject: s\r\n");
        const auto text = unwrapped(r.parts[0].body);
        CHECK(text.find(c.note) != std::string::npos);
        CHECK(text.find("Its header is attached below") != std::string::npos);
    }
}

TEST_CASE("a header block SMTP cannot carry is left out and the report says so") {
    auto in = failure_input();
    const std::string message = "Subject: " + std::string(1200, 'x') + "\r\n\r\nbody\r\n";
    in.original_message = message;
    const auto r = build(in);
    REQUIRE(r.parts.size() == 2);
    CHECK(unwrapped(r.parts[0].body).find("header of your message is not returned") !=
          std::string::npos);
}
