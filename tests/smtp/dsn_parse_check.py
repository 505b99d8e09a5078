#!/usr/bin/python3
"""Reads the DSNs smtp/dsn.cpp builds with an independent MIME parser.

Usage: dsn_parse_check.py PATH-TO-dsn_sample

Runs dsn_sample into a temporary directory, parses each DSN with Python's
email package (policy=email.policy.default) and checks the RFC 6522 / RFC 3464
structure: multipart/report with the right report-type, three parts in order
(text/plain, the delivery-status, the returned message or headers), the
delivery-status part as per-message and per-recipient field groups with the
expected Final-Recipient, Action and Status. The inputs live in
tests/smtp/dsn_sample.cpp; the expectations below describe the same cases.

It then corrupts a correct DSN in several ways and requires the check to
reject each one, so a check that cannot fail fails.
"""

import email
import email.policy
import pathlib
import subprocess
import sys
import tempfile

ABSENT = object()

BOB = {
    "Original-Recipient": "rfc822; bob@example.org",
    "Final-Recipient": "rfc822; bob@example.org",
    "Action": "failed",
    "Status": "5.1.1",
    "Remote-MTA": "dns; mx.example.org",
    "Diagnostic-Code": "smtp; 550 5.1.1 no such user",
}
CAROL = {
    "Original-Recipient": ABSENT,
    "Final-Recipient": "rfc822; carol@nullmx.example",
    "Action": "failed",
    "Status": "5.1.10",
    "Remote-MTA": ABSENT,
    "Will-Retry-Until": ABSENT,
}
UTF8_ADDR = "utf-8; \u7528\u6237@example.net"

EXPECT = {
    "failure": {
        "subject": "Undelivered Mail Returned to Sender",
        "report_type": "delivery-status",
        "returned": "text/rfc822-headers",
        "recipients": [BOB, CAROL],
    },
    "full": {
        "subject": "Undelivered Mail Returned to Sender",
        "report_type": "delivery-status",
        "returned": "message/rfc822",
        "recipients": [{"Final-Recipient": "rfc822; bob@example.org", "Action": "failed",
                        "Status": "5.2.2", "Diagnostic-Code": "smtp; 552 5.2.2 mailbox full"}],
    },
    "delay": {
        "subject": "Delayed Mail (still being retried)",
        "report_type": "delivery-status",
        "returned": "text/rfc822-headers",  # a delay DSN never returns the body
        "recipients": [{"Final-Recipient": "rfc822; bob@example.org", "Action": "delayed",
                        "Status": "4.7.1", "Will-Retry-Until": "Sun, 19 Nov 2023 22:13:20 +0000"}],
    },
    "hostile": {
        "subject": "Undelivered Mail Returned to Sender",
        "report_type": "delivery-status",
        "returned": "message/rfc822",
        "recipients": [{"Final-Recipient": "rfc822; bob@example.org", "Action": "failed",
                        "Status": "5.2.2", "X-Injected": ABSENT}],
        "diagnostic_prefix": "smtp; 552 5.2.2 no X-Injected: yes --4Xq7Hn2kPz filler0 filler1",
        "diagnostic_suffix": "filler98 filler99",
    },
    "utf8": {
        "subject": "Undelivered Mail Returned to Sender",
        "report_type": "global-delivery-status",
        "returned": "text/rfc822-headers",
        "recipients": [{"Original-Recipient": UTF8_ADDR, "Final-Recipient": UTF8_ADDR,
                        "Action": "failed", "Status": "5.1.1"}],
    },
}


class Bad(Exception):
    pass


def require(cond, what):
    if not cond:
        raise Bad(what)


def parse(raw):
    if all(b < 0x80 for b in raw):
        return email.message_from_bytes(raw, policy=email.policy.default)
    # RFC 6532 UTF-8 header fields: the bytes parser would turn them into
    # surrogate escapes, so parse the text.
    return email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)


def status_groups(part):
    """The delivery-status field groups as messages (headers only)."""
    payload = part.get_payload()
    require(isinstance(payload, list) and payload, "delivery-status part has no field groups")
    if part.get_content_type() == "message/delivery-status":
        return payload  # the email package splits the groups itself
    # message/global-delivery-status is parsed like any message/*: the first
    # group is the headers, the others the body.
    first = payload[0]
    body = first.get_payload()
    require(isinstance(body, str), "global delivery-status body is not text")
    blocks = [b for b in body.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return [first] + [email.message_from_string(b + "\n", policy=email.policy.default)
                      for b in blocks]


def check_fields(group, want, where):
    for name, value in want.items():
        got = group.get(name)
        if value is ABSENT:
            require(got is None, f"{where}: {name} should be absent, got {got!r}")
        else:
            require(got is not None and str(got) == value,
                    f"{where}: {name} is {got!r}, want {value!r}")


def check_raw(raw):
    require(raw.endswith(b"\r\n"), "content does not end with CRLF")
    for n, line in enumerate(raw.split(b"\r\n")[:-1], 1):
        require(b"\r" not in line and b"\n" not in line, f"line {n}: bare CR or LF")
        require(len(line) <= 998, f"line {n}: {len(line)} octets")


def check_returned(part, want_type):
    require(part.get_content_type() == want_type,
            f"third part is {part.get_content_type()}, want {want_type}")
    if want_type == "message/rfc822":
        inner = part.get_payload()[0]
        require(str(inner["Subject"]) == "Quarterly report", "returned message lost its Subject")
        require("The numbers are in." in inner.get_content(), "returned message lost its body")
    else:
        text = part.get_content() if want_type.startswith("text/") else part.as_string()
        require("Subject: Quarterly report" in text, "returned headers lack the Subject")
        require("The numbers are in." not in text, "headers-only part carries the body")


def check_dsn(name, raw):
    want = EXPECT[name]
    check_raw(raw)
    msg = parse(raw)
    require(not msg.defects, f"message defects: {msg.defects}")
    require(msg.get_content_type() == "multipart/report",
            f"content type {msg.get_content_type()}")
    require(msg.get_param("report-type") == want["report_type"],
            f"report-type {msg.get_param('report-type')!r}")
    require(str(msg["Subject"]) == want["subject"], f"Subject {msg['Subject']!r}")
    require(msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mta.example.com", "From")
    require(str(msg["Auto-Submitted"]) == "auto-replied", "Auto-Submitted")
    require(msg["X-Injected"] is None, "an injected top-level header")
    parts = msg.get_payload()
    require(isinstance(parts, list) and len(parts) == 3, f"{len(parts)} parts, want 3")
    for i, part in enumerate(parts):
        require(not part.defects, f"part {i + 1} defects: {part.defects}")
    require(parts[0].get_content_type() == "text/plain", "first part is not text/plain")
    require("This is the mail system at host mta.example.com." in parts[0].get_content(),
            "first part lacks the explanation")
    status_type = ("message/global-delivery-status" if want["report_type"].startswith("global")
                   else "message/delivery-status")
    require(parts[1].get_content_type() == status_type,
            f"second part is {parts[1].get_content_type()}, want {status_type}")
    groups = status_groups(parts[1])
    require(len(groups) == 1 + len(want["recipients"]),
            f"{len(groups)} field groups, want {1 + len(want['recipients'])}")
    check_fields(groups[0], {"Reporting-MTA": "dns; mta.example.com",
                             "Original-Envelope-Id": "env-123", "Final-Recipient": ABSENT},
                 "per-message fields")
    for i, (group, fields) in enumerate(zip(groups[1:], want["recipients"]), 1):
        check_fields(group, fields, f"recipient {i}")
        require(group.get("Reporting-MTA") is None, f"recipient {i}: per-message field leaked")
    if "diagnostic_prefix" in want:
        diag = str(groups[1]["Diagnostic-Code"])
        require(diag.startswith(want["diagnostic_prefix"]), f"Diagnostic-Code {diag[:80]!r}")
        require(diag.endswith(want["diagnostic_suffix"]), f"Diagnostic-Code ends {diag[-40:]!r}")
    check_returned(parts[2], want["returned"])


# Each corruption must make check_dsn fail on the failure sample.
CORRUPTIONS = [
    ("wrong report-type", b"report-type=delivery-status", b"report-type=disposition-notification"),
    ("status part as text", b"Content-Type: message/delivery-status",
     b"Content-Type: text/plain"),
    ("wrong action", b"Action: failed", b"Action: delivered"),
    ("wrong status", b"Status: 5.1.10", b"Status: 5.1.1"),
    ("groups merged", b"\r\n\r\nFinal-Recipient: rfc822; carol", b"\r\nFinal-Recipient: rfc822; carol"),
    ("returned part retyped", b"Content-Type: text/rfc822-headers",
     b"Content-Type: application/octet-stream"),
    ("header injected", b"Action: failed", b"Action: failed\r\nX-Injected: yes\r\n\r\nAction: x"),
]


def check_corruptions(raw):
    failures = []
    for what, old, new in CORRUPTIONS:
        if old not in raw:
            failures.append(f"corruption {what!r}: {old!r} not found in the sample")
            continue
        try:
            check_dsn("failure", raw.replace(old, new, 1))
        except Bad:
            continue
        failures.append(f"corruption {what!r} was not detected")
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    failures = []
    with tempfile.TemporaryDirectory(prefix="ember-dsn-") as tmp:
        subprocess.run([sys.argv[1], tmp], check=True)
        samples = {name: (pathlib.Path(tmp) / f"{name}.eml").read_bytes() for name in EXPECT}
    for name, raw in samples.items():
        try:
            check_dsn(name, raw)
            print(f"ok {name}")
        except Bad as e:
            failures.append(f"{name}: {e}")
    failures += check_corruptions(samples["failure"])
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
