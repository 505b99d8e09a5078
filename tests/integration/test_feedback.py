"""Bounces, complaints and unsubscribes end to end (issue 6): the real emberd
with a submission and an inbound listener delivers through a test DNS
server to scriptable receivers (delivery_peers.py), with VERP return paths,
List-Unsubscribe for sender.test, a DKIM key for sender.test, an event log
and, in one scenario, a webhook. What the world sends back (SMTP refusals,
DSNs to the VERP address, ARF reports, one-click POSTs) must end in the
event log, in the suppression list (`emberctl suppress check`) and in what
the next message does. Observed from outside only: the receivers' files,
the event log, emberctl, HTTP.

Every test starts its own DNS server, receivers and daemon and stops them
(ExitStack), also when it fails; waits poll with a limit.
"""

import contextlib
import json
import os
import re
import smtplib
import subprocess
import tempfile
import uuid

from delivery_peers import (MX1, PYTHON, SENDER, SENDER_MX, DnsServer, delivery_sections, dsns,
                            start_receivers, zone_doc)
from dkim_peers import dkimpy_verify, keygen, signatures
from harness import SOURCE_DIR, Daemon, check, expect_eq, free_port, queued_id, wait_until

TOKEN_KEY = "k1:feedback-test-secret-0123456789"
BOUNCE_DOMAIN = "bounce.test"
FBL = f"fbl@{BOUNCE_DOMAIN}"
PUBLIC_URL = "https://mta.test.example"
WEBHOOK_SECRET = "webhook-secret-0123456789"
LISTENERS = [{"name": "main", "mode": "submission", "tls": "none", "auth": "none"},
             {"name": "inbound", "mode": "inbound", "tls": "none", "auth": "none"}]


class World:
    def __init__(self, daemon, dns, receivers, http_port, key):
        self.d = daemon
        self.dns = dns
        self.rcv = receivers
        self.http_port = http_port
        self.key = key

    def events(self, type_=None, recipient=None):
        path = os.path.join(self.d.dir, "events.log")
        try:
            with open(path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [e for e in lines if (type_ is None or e["type"] == type_)
                and (recipient is None or e.get("recipient") == recipient)]

    def wait_event(self, type_, recipient, timeout=30):
        return wait_until(lambda: self.events(type_, recipient), timeout,
                          f"a {type_} event for {recipient} (have {self.events()})")[-1]

    def check_suppression(self, address, domain=None):
        args = ["suppress", "check", address] + (["--domain", domain] if domain else [])
        return self.d.ctl_json(*args)


@contextlib.contextmanager
def world(specs=None, webhook_port=None):
    """DNS (with sender.test's DKIM key), receivers at dest.test's MX and
    sender.test's MX, and an emberd with VERP, unsubscribe headers for
    sender.test, an inbound listener and an event log."""
    with contextlib.ExitStack() as stack:
        key_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-fb-"))
        key = keygen(key_dir, "sender.test", "fb1")
        doc = zone_doc()
        doc["records"].append(key.zone_record())
        dns = stack.enter_context(DnsServer(doc))
        port = free_port()
        rcv = start_receivers(stack, port, [MX1, SENDER_MX], specs)
        http_port = free_port()
        sections = delivery_sections(dns, port, {"retry_first": "1h", "retry_max": "4h"})
        sections["dkim"] = [key.config()]
        sections["http"] = {"listen": f"127.0.0.1:{http_port}", "public_url": PUBLIC_URL}
        sections["feedback"] = {"token_keys": [TOKEN_KEY], "verp": True,
                                "bounce_domain": BOUNCE_DOMAIN, "report_addresses": [FBL],
                                "unsubscribe_domains": ["sender.test"],
                                "unsubscribe_mailto_domain": BOUNCE_DOMAIN}
        sections["events"] = {"log": "events.log", "webhook_retry_initial": "200ms",
                              "webhook_retry_max": "1s"}
        if webhook_port:
            sections["webhook"] = [{"url": f"http://127.0.0.1:{webhook_port}/hook",
                                    "secret": WEBHOOK_SECRET, "batch_size": 3,
                                    "max_delay": "100ms", "timeout": "5s"}]
        d = stack.enter_context(Daemon(listeners=LISTENERS, sections=sections, users={},
                                       http=False))
        try:
            yield World(d, dns, rcv, http_port, key)
        except BaseException:
            for ip, r in rcv.items():
                print(f"---- receiver {ip}: {r.stats()}")
            print(f"---- events: {World(d, dns, rcv, http_port, key).events()}")
            raise


def content(to, subject="news", sender=SENDER):
    return (f"From: News <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@sender.test>\r\n\r\nHello.\r\n")


def submit(w, to):
    """Submits one message to `to`; returns its queue id."""
    with smtplib.SMTP("127.0.0.1", w.d.port("main"), timeout=20) as c:
        c.ehlo("client.test")
        code, reply = c.mail(SENDER)
        expect_eq(code, 250, f"MAIL FROM ({reply!r})")
        code, reply = c.rcpt(to)
        expect_eq(code, 250, f"RCPT TO:<{to}> ({reply!r})")
        code, reply = c.data(content(to))
        expect_eq(code, 250, f"end of data ({reply!r})")
        return queued_id(reply.decode())


def delivered(w, to, n=1):
    """The n-th message the dest.test receiver got for `to`: (meta, raw)."""
    def got():
        mine = [(m, raw) for m, raw in w.rcv[MX1].messages() if to in m["rcpt_tos"]]
        return mine if len(mine) >= n else None
    return wait_until(got, 30, f"{n} message(s) for {to} at {MX1}")[n - 1]


def header(raw, name):
    """The unfolded value of the first header field `name` of raw bytes."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    m = re.search(rf"^{re.escape(name)}:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head,
                  re.M | re.I)
    return re.sub(r"\r\n[ \t]+", " ", m.group(1)).strip() if m else None


def send_inbound(w, mail_from, rcpt, message):
    """Sends to the inbound listener; returns (rcpt code, rcpt text, data code)."""
    with smtplib.SMTP("127.0.0.1", w.d.port("inbound"), timeout=20) as c:
        c.ehlo("mx1.dest.test")
        code, reply = c.mail(mail_from)
        expect_eq(code, 250, f"MAIL FROM:<{mail_from}> ({reply!r})")
        rcode, rtext = c.rcpt(rcpt)
        if rcode != 250:
            return rcode, rtext.decode(), None
        dcode, dtext = c.data(message)
        return rcode, rtext.decode(), dcode


def dsn_for(verp, recipient, original):
    head = original.split(b"\r\n\r\n", 1)[0].decode()
    return (f"From: MAILER-DAEMON@mx1.dest.test\r\nTo: <{verp}>\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n"
            f"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered."
            f"\r\n\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx1.dest.test\r\n\r\nFinal-Recipient: rfc822; {recipient}\r\n"
            f"Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <{recipient}>:"
            f" Recipient address rejected: User unknown in virtual mailbox table\r\n\r\n"
            f"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n{head}\r\n\r\n--b1--\r\n")


def arf_for(verp, recipient, original):
    return (f"From: <fbl@dest.test>\r\nTo: <{FBL}>\r\nSubject: complaint about a message\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n"
            f"\r\n--b2\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            f"\r\n--b2\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: abuse\r\nUser-Agent: TestFBL/1.0\r\nVersion: 1\r\n"
            f"Original-Mail-From: <{verp}>\r\nOriginal-Rcpt-To: <{recipient}>\r\n"
            f"Source-IP: 127.0.0.1\r\n\r\n--b2\r\nContent-Type: message/rfc822\r\n\r\n"
            f"Return-Path: <{verp}>\r\n".encode() + original + b"\r\n--b2--\r\n")


def expect_suppressed(w, address, reason, domain=None):
    got = w.check_suppression(address, domain)
    check(got["suppressed"], f"{address} is not suppressed: {got}")
    expect_eq(got["entry"]["reason"], reason, f"suppression reason of {address}")
    return got["entry"]


def expect_next_message_suppressed(w, address, before):
    """A new message to `address` is settled as suppressed, never sent."""
    w.rcv[MX1].set_spec({})  # the receiver would take it now
    qid = submit(w, address)
    e = wait_until(lambda: [e for e in w.events("suppressed", address)
                            if e.get("queue_id") == qid], 30, f"a suppressed event for {qid}")[0]
    expect_eq(e["source"], "queue", "source of the suppressed event")
    w.d.wait_log(rf"delivery\.result id={qid}\b[^\n]*result=suppressed")
    expect_eq(len([m for m, _ in w.rcv[MX1].messages() if address in m["rcpt_tos"]]), before,
              f"messages delivered to {address}")


def test_rejected_recipient_bounces_suppresses_and_next_is_suppressed():
    gone = "gone@dest.test"
    with world(specs={MX1: {"rcpt": {gone: "550 5.1.1 <gone@dest.test>: no such user"}}}) as w:
        submit(w, gone)
        e = w.wait_event("bounced", gone)
        expect_eq((e["reason"], e["hard"], e["code"], e["source"]), ("userunknown", True, 550, "smtp"),
                  "bounced event (reason, hard, code, source)")
        expect_eq(e["sending_domain"], "sender.test", "sending domain")
        wait_until(lambda: w.check_suppression(gone)["suppressed"], 20, "the suppression")
        entry = expect_suppressed(w, gone, "hard-bounce")
        expect_eq(entry["scope"], "global", "scope of a hard bounce")
        wait_until(lambda: dsns(w.rcv[SENDER_MX]), 30, "the failure DSN to the sender")
        expect_next_message_suppressed(w, gone, 0)
        expect_eq(len(dsns(w.rcv[SENDER_MX])), 1, "DSNs (a suppressed recipient gets none)")


def test_out_of_band_dsn_to_the_verp_address_suppresses():
    late = "late@dest.test"
    with world() as w:
        submit(w, late)
        meta, raw = delivered(w, late)
        verp = meta["mail_from"]
        check(re.fullmatch(rf"bounces\+[a-z2-7]+@{BOUNCE_DOMAIN}", verp),
              f"envelope sender {verp!r} is a VERP address")
        rcode, rtext, dcode = send_inbound(w, "", verp, dsn_for(verp, late, raw))
        expect_eq((rcode, dcode), (250, 250), f"RCPT and DATA of the DSN ({rtext})")
        e = w.wait_event("bounced", late)
        expect_eq((e["source"], e["reason"], e["hard"]), ("dsn", "userunknown", True),
                  "bounced event from the DSN")
        expect_eq(e["extra"]["verified"], True, "the VERP token named this recipient")
        expect_suppressed(w, late, "hard-bounce")
        expect_next_message_suppressed(w, late, 1)


def test_forged_or_tampered_bounce_address_is_refused_at_rcpt():
    with world() as w:
        submit(w, "someone@dest.test")
        meta, raw = delivered(w, "someone@dest.test")
        verp = meta["mail_from"]
        local, domain = verp.split("@")
        token = local.split("+", 1)[1]
        flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
        for forged in (f"bounces+{flipped}@{domain}", f"bounces+{'a' * 45}@{domain}",
                       f"bounces+x@{domain}"):
            rcode, rtext, _ = send_inbound(w, "", forged, dsn_for(forged, "x@dest.test", raw))
            expect_eq(rcode, 550, f"RCPT TO:<{forged}> ({rtext})")
            check("5.1.1" in rtext, f"RCPT reply {rtext!r} carries 5.1.1")
        # Also on the submission listener, for our bounce domain.
        with smtplib.SMTP("127.0.0.1", w.d.port("main"), timeout=20) as c:
            c.ehlo("client.test")
            c.mail("")
            code, text = c.rcpt(f"bounces+{flipped}@{domain}")
            expect_eq(code, 550, f"forged VERP on the submission listener ({text!r})")
        # The genuine one is taken.
        rcode, rtext, _ = send_inbound(w, "", verp, dsn_for(verp, "someone@dest.test", raw))
        expect_eq(rcode, 250, f"RCPT TO the genuine VERP address ({rtext})")
        expect_eq(w.events("bounced", "x@dest.test"), [], "no event from a forged bounce")


def test_arf_complaint_is_counted_and_suppresses():
    fan = "fan@dest.test"
    with world() as w:
        submit(w, fan)
        meta, raw = delivered(w, fan)
        check(header(raw, "X-Ember-ID"), "the delivered message carries X-Ember-ID")
        rcode, rtext, dcode = send_inbound(w, "fbl@dest.test", FBL,
                                           arf_for(meta["mail_from"], fan, raw))
        expect_eq((rcode, dcode), (250, 250), f"RCPT and DATA of the ARF report ({rtext})")
        e = w.wait_event("complained", fan)
        expect_eq((e["source"], e["extra"]["feedback_type"], e["sending_domain"]),
                  ("arf", "abuse", "sender.test"), "complained event")
        entry = expect_suppressed(w, fan, "complaint", "sender.test")
        expect_eq(entry["scope"], "sender.test", "a complaint suppresses for its sending domain")
        card = w.d.ctl_json("compliance", "sender.test")["domains"][0]
        expect_eq(card["counts"]["complaints"], 1, "complaints counted for sender.test")
        expect_eq(card["counts"]["delivered"], 1, "deliveries counted for sender.test")
        rule = [r for r in card["rules"] if r["rule"] == "complaint_rate_limit"][0]
        expect_eq(rule["result"], "fail", "one complaint in one delivery is over 0.3 %")
        expect_next_message_suppressed(w, fan, 1)


def test_one_click_unsubscribe_suppresses_and_tampered_token_is_404():
    reader = "reader@dest.test"
    with world() as w:
        submit(w, reader)
        _, raw = delivered(w, reader)
        lu = header(raw, "List-Unsubscribe")
        check(lu, f"List-Unsubscribe in the delivered message:\n{raw[:1500]!r}")
        expect_eq(header(raw, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click",
                  "List-Unsubscribe-Post")
        m = re.search(rf"<{re.escape(PUBLIC_URL)}/u/([A-Za-z0-9_-]+)>", lu)
        check(m, f"an https unsubscribe URL in {lu!r}")
        check("<mailto:unsubscribe+" in lu and f"@{BOUNCE_DOMAIN}>" in lu,
              f"a mailto unsubscribe address in {lu!r}")
        token = m.group(1)
        base = f"http://127.0.0.1:{w.http_port}/u/"

        def curl(*args):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args],
                               capture_output=True, text=True, timeout=30)
            return int(r.stdout or "0")

        flipped = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        expect_eq(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", base + flipped), 404,
                  "POST with a tampered token")
        expect_eq(w.d.ctl_json("suppress", "list")["entries"], [],
                  "the suppression list after a tampered token")
        expect_eq(curl(base + token), 200, "GET of the unsubscribe page")
        expect_eq(w.check_suppression(reader, "sender.test")["suppressed"], False,
                  "a GET unsubscribes nobody")
        expect_eq(curl("-X", "POST", "-d", "List-Unsubscribe=One-Click", base + token), 200,
                  "one-click POST")
        entry = expect_suppressed(w, reader, "unsubscribe", "sender.test")
        expect_eq(entry["scope"], "sender.test", "an unsubscribe is for its sending domain")
        e = w.wait_event("unsubscribed", reader)
        expect_eq((e["source"], e["sending_domain"]), ("http", "sender.test"),
                  "unsubscribed event")
        expect_next_message_suppressed(w, reader, 1)


def test_list_unsubscribe_is_inside_a_valid_dkim_signature():
    reader = "signed@dest.test"
    with world() as w:
        submit(w, reader)
        _, raw = delivered(w, reader)
        sigs = signatures(raw)
        expect_eq(len(sigs), 1, "DKIM signatures")
        signed = sigs[0]["h"].lower().split(":")
        for name in ("list-unsubscribe", "list-unsubscribe-post", "from"):
            check(name in signed, f"h= lists {name}: {sigs[0]['h']}")
        ok, log = dkimpy_verify(raw, w.dns.port, 0)
        check(ok, f"dkimpy verifies the signature:\n{log}\n{raw[:3000]!r}")
        check(header(raw, "List-Unsubscribe"), "List-Unsubscribe is present")
        # Over-signed (RFC 6376 8.15): a List-Unsubscribe added later breaks it.
        expect_eq(signed.count("list-unsubscribe"), 2, "list-unsubscribe in h= (over-signed)")


def test_webhook_gets_every_event_once_after_an_outage():
    hook_port = free_port()
    with world(webhook_port=hook_port) as w, tempfile.TemporaryDirectory() as tmp:
        for rcpt in ("w1@dest.test", "w2@dest.test"):
            submit(w, rcpt)
            delivered(w, rcpt)
        wait_until(lambda: len(w.events("delivered")) == 2, 30, "two delivered events")
        w.d.wait_log(r"webhook\.[a-z_]*(fail|error|retry)", timeout=30)  # it is down
        log = os.path.join(tmp, "hook.jsonl")
        proc = subprocess.Popen([PYTHON, os.path.join(SOURCE_DIR, "tests/feedback/webhook_receiver.py"),
                                 "--port", str(hook_port), "--log", log,
                                 "--secret", WEBHOOK_SECRET],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            check(proc.stdout.readline().startswith("PORT"), "the webhook receiver started")
            want = {e["id"] for e in w.events()}

            def received():
                try:
                    with open(log) as f:
                        posts = [json.loads(line) for line in f if line.strip()]
                except FileNotFoundError:
                    return None
                ids = [e["id"] for p in posts for e in (p["events"] or [])]
                return (posts, ids) if want <= set(ids) else None

            posts, ids = wait_until(received, 60, f"every one of {len(want)} events at the webhook")
            check(all(p["sig_ok"] for p in posts), f"every POST is signed: {posts}")
            expect_eq(sorted(ids), sorted(set(ids)), "each event delivered once")
            check(len(want) >= 4, f"received and delivered events for both messages: {want}")
        finally:
            proc.terminate()
            proc.wait(10)
