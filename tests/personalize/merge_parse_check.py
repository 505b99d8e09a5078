#!/usr/bin/python3
"""Reads the messages personalize/merge.cpp renders with an independent MIME parser.

Usage: merge_parse_check.py PATH-TO-merge_sample

Runs merge_sample into a temporary directory, parses each merged message with
Python's email package (policy=email.policy.default) and checks that it is
well-formed (CRLF lines within 998 octets, ASCII headers, merged header lines
within 78 columns, no parser defects) and that the decoded Subject, display
names and text parts are the expected merged text, attachments are unchanged
and merged parts are labelled UTF-8. The inputs and variables live in
tests/personalize/merge_sample.cpp; the expectations below describe the same
cases.

It then corrupts a correct message in several ways and requires the check to
reject each one, so a check that cannot fail fails.
"""

import email
import email.policy
import pathlib
import subprocess
import sys
import tempfile

OFFER = '50% <off> & "more"'
OFFER_HTML = "50% &lt;off&gt; &amp; &quot;more&quot;"

EXPECT = {
    "alternative": {
        "subject": f"Gr\u00fc\u00dfe J\u00f6rg, {OFFER}",
        "from": ("News Team", "news@example.com"),
        "to": ("J\u00f6rg M\u00fcller, Jr.", "x@example.org"),
        "parts": [
            ("text/plain", "base64", f"Hi J\u00f6rg,\nVIP: {OFFER}\n"),
            ("text/html", "quoted-printable",
             f"<p>Gr\u00fc\u00dfe J\u00f6rg! {OFFER_HTML}</p>"),
            ("application/octet-stream", "base64", bytes(range(32))),
        ],
    },
    "seven_bit": {
        "subject": "Hello \u65e5\u672c \u592a\u90ce",
        "parts": [
            ("text/plain", "quoted-printable",
             "Dear \u65e5\u672c \u592a\u90ce,\n- caf\u00e9\n- tea\nBye\n"),
        ],
    },
    "windows_1252": {
        "subject": "plain",
        "parts": [("text/plain", "8bit", "\u201c\u00bfQu\u00e9?\u201d \u20ac0\n")],
        "params": {"format": "flowed"},
    },
    "passthrough": {
        "subject": "no markup",
        "parts": [("text/plain", None, "plain body\n")],
        "absent": ["X-Ember-Vars"],
    },
}


class Bad(Exception):
    pass


def require(cond, what):
    if not cond:
        raise Bad(what)


def check_raw(raw, merged_headers):
    require(raw.endswith(b"\r\n"), "content does not end with CRLF")
    head = raw.split(b"\r\n\r\n", 1)[0]
    require(all(b < 0x80 for b in head), "8-bit octets in the header")
    for n, line in enumerate(raw.split(b"\r\n")[:-1], 1):
        require(b"\r" not in line and b"\n" not in line, f"line {n}: bare CR or LF")
        require(len(line) <= 998, f"line {n}: {len(line)} octets")
    field = None
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            field = line.split(b":", 1)[0].decode().lower()
        if field in merged_headers:
            require(len(line) <= 78, f"{field}: line of {len(line)} columns: {line!r}")


def leaves(msg):
    if msg.is_multipart():
        for part in msg.get_payload():
            yield from leaves(part)
    else:
        yield msg


def check_part(i, part, want):
    ctype, cte, content = want
    require(not part.defects, f"part {i}: defects {part.defects}")
    require(part.get_content_type() == ctype, f"part {i}: {part.get_content_type()}, want {ctype}")
    if cte is not None:
        got = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        require(got == cte, f"part {i}: transfer encoding {got}, want {cte}")
    if isinstance(content, bytes):
        require(part.get_payload(decode=True) == content, f"part {i}: attachment changed")
        return
    if cte is not None:
        require(part.get_content_charset() == "utf-8",
                f"part {i}: charset {part.get_content_charset()}, want utf-8")
    text = part.get_content().replace("\r\n", "\n")
    require(text == content, f"part {i}: {text!r}, want {content!r}")


def check_message(name, raw):
    want = EXPECT[name]
    check_raw(raw, {"subject", "from", "to"} if name != "passthrough" else set())
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    require(not msg.defects, f"defects {msg.defects}")
    require(str(msg["Subject"]) == want["subject"],
            f"Subject {str(msg['Subject'])!r}, want {want['subject']!r}")
    for field in ("from", "to"):
        if field in want:
            addr = msg[field].addresses[0]
            got = (addr.display_name, addr.addr_spec)
            require(got == want[field], f"{field}: {got!r}, want {want[field]!r}")
    for field in want.get("absent", []):
        require(msg[field] is None, f"{field} was not removed")
    parts = list(leaves(msg))
    require(len(parts) == len(want["parts"]), f"{len(parts)} parts, want {len(want['parts'])}")
    for i, (part, expected) in enumerate(zip(parts, want["parts"]), 1):
        check_part(i, part, expected)
    for key, value in want.get("params", {}).items():
        require(parts[0].get_param(key) == value, f"parameter {key} lost")


# Each corruption must make check_message fail on the alternative sample.
CORRUPTIONS = [
    ("html relabelled", b"Content-Type: text/html; charset=utf-8",
     b"Content-Type: text/html; charset=iso-8859-1"),
    ("attachment changed", b"AAECAwQF", b"AAECAwQG"),
    ("bare LF", b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\n"),
    ("value unescaped", b"&lt;off&gt;", b"<off>"),
    ("8-bit header", b"Subject: ", "Subject: \u00e9 ".encode()),
    ("long merged header", b"Subject: ", b"Subject: " + b"x" * 80 + b" "),
    ("boundary broken", b"--alt--", b"--alx--"),
]


def check_corruptions(raw):
    failures = []
    for what, old, new in CORRUPTIONS:
        if old not in raw:
            failures.append(f"corruption {what!r}: {old!r} not found in the sample")
            continue
        try:
            check_message("alternative", raw.replace(old, new, 1))
        except Bad:
            continue
        except Exception as e:  # a parser crash is a rejection too
            print(f"note: corruption {what!r} raised {type(e).__name__}", file=sys.stderr)
            continue
        failures.append(f"corruption {what!r} was not detected")
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    failures = []
    with tempfile.TemporaryDirectory(prefix="ember-merge-") as tmp:
        subprocess.run([sys.argv[1], tmp], check=True)
        samples = {}
        for name in EXPECT:
            error = pathlib.Path(tmp) / f"{name}.error"
            if error.exists():
                failures.append(f"{name}: {error.read_text()}")
                continue
            samples[name] = (pathlib.Path(tmp) / f"{name}.eml").read_bytes()
    for name, raw in samples.items():
        try:
            check_message(name, raw)
            print(f"ok {name}")
        except Bad as e:
            failures.append(f"{name}: {e}")
    if "alternative" in samples:
        failures += check_corruptions(samples["alternative"])
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
