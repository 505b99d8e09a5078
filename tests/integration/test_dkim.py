"""DKIM signing end to end (issue 4): keys made by the real `emberctl dkim
keygen` and published in a test DNS zone; the real emberd signs at dispatch
and delivers to a receiving MTA (tests/support/smtp_receiver.py); what the
receiver got must verify with two independent verifiers, dkimpy and
opendkim-testmsg, both fetching the public key from the test DNS server
(dkim_peers.py says how).

Every test starts its own DNS server, receiver and daemon and stops them
all (ExitStack), also when it fails. The alignment gate stays off here:
these scenarios are about the signatures (test_alignment.py is the gate).
"""

import contextlib
import smtplib
import tempfile
import uuid

from delivery_peers import MX1, DnsServer, delivery_sections, start_receivers, zone_doc
from dkim_peers import expect_rejected, expect_verified, header_and_body, keygen, signatures
from harness import Daemon, check, expect_eq, free_port, queued_id

DOMAIN = "sender.test"
SENDER = f"app@{DOMAIN}"
RCPT = "user@dest.test"


class World:
    def __init__(self, daemon, dns, receiver, keys):
        self.d = daemon
        self.dns = dns
        self.rcv = receiver
        self.keys = keys


@contextlib.contextmanager
def world(key_specs, smtp=None):
    """Keys made with emberctl for key_specs [(domain, selector, algorithm)],
    published in the zone and configured as [[dkim]] in that order; a
    receiver at dest.test's MX; an emberd delivering there."""
    with contextlib.ExitStack() as stack:
        key_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-dkim-"))
        keys = [keygen(key_dir, *spec) for spec in key_specs]
        doc = zone_doc()
        doc["records"] += [k.zone_record() for k in keys]
        dns = stack.enter_context(DnsServer(doc))
        port = free_port()
        rcv = start_receivers(stack, port, [MX1])[MX1]
        sections = delivery_sections(dns, port)
        sections["dkim"] = [k.config() for k in keys]
        d = stack.enter_context(Daemon(sections=sections, smtp=smtp, users={}))
        try:
            yield World(d, dns, rcv, keys)
        except BaseException:
            print(f"---- receiver: {rcv.stats()}")
            print(f"---- DNS queries: {dns.queries()[-30:]}")
            raise


def message(subject="signed", body=b"Hi.\r\n", from_addr=SENDER, to=RCPT, headers=b""):
    """A complete message (bytes) with its own Date and Message-ID."""
    head = (f"From: App <{from_addr}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\n").encode()
    return head + headers + b"\r\n" + body


def send(w, content, sender=SENDER, rcpts=(RCPT,), mail_options=()):
    """Submits content over SMTP; returns the message as the receiver got it."""
    with smtplib.SMTP("127.0.0.1", w.d.port(), timeout=30) as c:
        c.ehlo("client.test")
        code, reply = c.mail(sender, list(mail_options))
        expect_eq(code, 250, f"MAIL FROM ({reply!r})")
        for r in rcpts:
            code, reply = c.rcpt(r)
            expect_eq(code, 250, f"RCPT TO:<{r}> ({reply!r})")
        code, reply = c.data(content)
        expect_eq(code, 250, f"end of data ({reply!r})")
        queued_id(reply.decode())
    _, raw = w.rcv.wait_messages(1)[0]
    return raw


def expect_content_kept(raw, content):
    """What was submitted arrives intact below ember's own fields."""
    check(raw.endswith(content), f"the submitted message is the tail of what arrived:\n"
                                 f"{raw[:3000]!r}")


RSA = (DOMAIN, "rsa2026", "rsa-sha256")
ED = (DOMAIN, "ed2026", "ed25519-sha256")
BOTH = [RSA, ED]
WANT_BOTH = [(DOMAIN, "rsa2026", "rsa-sha256"), (DOMAIN, "ed2026", "ed25519-sha256")]


def deliver_and_verify(content, key_specs=BOTH, want=WANT_BOTH, mail_options=(),
                       sender=SENDER, rcpts=(RCPT,), smtp=None):
    with world(key_specs, smtp=smtp) as w:
        raw = send(w, content, sender=sender, rcpts=rcpts, mail_options=mail_options)
        expect_verified(raw, w.dns.port, want)
        expect_content_kept(raw, content)
        return raw


# ---- algorithms ----

def test_an_rsa_2048_signed_message_verifies_with_dkimpy_and_opendkim():
    raw = deliver_and_verify(message(), [RSA], [WANT_BOTH[0]])
    sig = signatures(raw)[0]
    # 2048 bits: a 256-octet signature is 344 base64 characters.
    expect_eq(len(sig["b"]), 344, "length of b= (base64 of a 2048-bit RSA signature)")
    expect_eq(sig["h"].lower().split(":").count("from"), 2, f"From in h={sig['h']} (over-signed)")


def test_an_ed25519_signed_message_verifies_with_dkimpy_and_opendkim():
    deliver_and_verify(message(), [ED], [WANT_BOTH[1]])


def test_a_dual_signed_message_carries_rsa_and_ed25519_signatures_that_both_verify():
    raw = deliver_and_verify(message(subject="dual"))
    a, b = signatures(raw)
    expect_eq(a["bh"], b["bh"], "both signatures hash the same body")


def test_a_parent_domain_key_signs_mail_from_a_subdomain():
    # [[dkim]] for sender.test signs From: news.sender.test with d=sender.test
    # (relaxed DMARC alignment, RFC 7489 3.1.1).
    deliver_and_verify(message(from_addr=f"news@news.{DOMAIN}"), [RSA], [WANT_BOTH[0]])


# ---- content ----

def test_an_8bit_body_is_signed_as_sent():
    body = "Grüße aus Köln, ½ € — ça va?\r\nØre og ærlig.\r\n".encode("utf-8") + b"\xe9t\xe9\r\n"
    headers = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n")
    deliver_and_verify(message(body=body, headers=headers), mail_options=["BODY=8BITMIME"])


def test_an_smtputf8_message_with_utf8_addresses_and_headers_is_signed():
    rcpt = "jöran@dest.test"
    content = ("From: Jörg Müller <app@sender.test>\r\n"
               f"To: Jöran <{rcpt}>\r\n"
               "Subject: Grüße — 日本語の件名\r\n"
               "Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
               f"Message-ID: <{uuid.uuid4().hex}@sender.test>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n"
               "Hallo Jöran, schöne Grüße.\r\n").encode("utf-8")
    deliver_and_verify(content, rcpts=(rcpt,), mail_options=["SMTPUTF8", "BODY=8BITMIME"])


def test_long_folded_header_fields_are_signed():
    words = " ".join(f"word{i}" for i in range(80))
    subject = "A very long subject " + words.replace(" word40 ", "\r\n\tword40 ")
    refs = "\r\n ".join(f"<{uuid.uuid4().hex}@{DOMAIN}>" for i in range(30))
    to = ",\r\n    ".join(f"Person {i} <user{i}@dest.test>" for i in range(12))
    content = (f"From: App <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
               f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\n"
               f"References: {refs}\r\n"
               f"X-Long: {'x' * 900}\r\n\r\nBody.\r\n").encode()
    deliver_and_verify(content)


def test_lines_starting_with_dots_are_signed_unstuffed():
    body = b".\r\n..\r\n.leading dot\r\n...three\r\nmiddle\r\n.\r\n. \r\nend\r\n"
    raw = deliver_and_verify(message(body=body))
    _, got = header_and_body(raw)
    expect_eq(got, body, "the body as received (dot-stuffing undone)")


def test_an_empty_body_is_signed():
    raw = deliver_and_verify(message(body=b""))
    _, got = header_and_body(raw)
    check(got in (b"", b"\r\n"), f"the body arrived empty: {got!r}")


def test_a_one_megabyte_body_is_signed():
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&()*+,-/\r\n"
    body = line * (1024 * 1024 // len(line) + 1)
    check(len(body) > 1024 * 1024, "the body is over 1 MiB")
    deliver_and_verify(message(subject="big", body=body), smtp={"max_message_size": "10M"})


# ---- over-signing (RFC 6376 8.15) ----

# What each verifier shows: libopendkim (opendkim-testmsg sets
# DKIM_LIBFLAGS_STRICTHDRS) refuses a message with a second From or Subject
# field before it looks at any signature (RFC 5322 3.6 allows one):
# "dkim_chunk(): Syntax error". dkimpy counts one From more than h= names
# when it verifies (its bug #644046 defence), so an added From fails there
# even without over-signing; an added Subject fails in dkimpy only because
# ember over-signs it. List-Unsubscribe, which may repeat, shows the
# over-signing to both verifiers. The From case checks h= itself too.
SECOND_FIELD_REFUSED = ("bad signature", "syntax error")


def tamper_checks(field, opendkim_errors=("bad signature",)):
    """A copy of `field` added on top breaks every signature; the same
    message with an unsigned field added instead still verifies (so it is
    the over-signing that catches the copy, not any change at all)."""
    with world(BOTH) as w:
        raw = send(w, message(subject="original subject"))
        expect_verified(raw, w.dns.port, WANT_BOTH)
        expect_verified(b"X-Added-Later: harmless\r\n" + raw, w.dns.port, WANT_BOTH)
        # Each signature on its own breaks (not only the pair).
        expect_rejected(field + raw, w.dns.port, opendkim_errors)
        return raw


def test_a_from_field_added_after_signing_breaks_the_signatures():
    raw = tamper_checks(b"From: Your Bank <security@bank.example>\r\n", SECOND_FIELD_REFUSED)
    for t in signatures(raw):
        named = t["h"].lower().split(":").count("from")
        check(named == 2, f"h= of the {t['a']} signature names From {named} times, want 2 "
                          f"(one From field, over-signed): {t['h']}")


def test_a_subject_field_added_after_signing_breaks_the_signatures():
    tamper_checks(b"Subject: URGENT: verify your account\r\n", SECOND_FIELD_REFUSED)


def test_a_list_unsubscribe_field_added_after_signing_breaks_the_signatures():
    # The message has none: h= still names it once, so one added later does
    # not pass as signed (a forged unsubscribe target).
    raw = tamper_checks(b"List-Unsubscribe: <https://attacker.example/u>\r\n")
    for t in signatures(raw):
        check("list-unsubscribe" in t["h"].lower().split(":"),
              f"List-Unsubscribe is in h= of the {t['a']} signature: {t['h']}")


def test_a_changed_body_breaks_the_signatures():
    with world(BOTH) as w:
        raw = send(w, message(body=b"Pay 10 EUR.\r\n"))
        expect_verified(raw, w.dns.port, WANT_BOTH)
        expect_rejected(raw.replace(b"Pay 10 EUR.", b"Pay 99 EUR."), w.dns.port)
