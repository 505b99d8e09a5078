"""Personalization at dispatch end to end (issue 7, ember-hook(7)): the real
emberd merges each recipient's variables into the message, asks a Python
hook (tests/support/hook_server.py) what to do with each recipient, signs
every distinct rendering with DKIM and delivers to a receiving MTA
(tests/support/smtp_receiver.py); dkimpy verifies what arrived.

The hook server answers by the recipient's local part: skip* -> skip,
later* -> send_at 2030, variant* -> variant "b", header* -> header fields,
anything else -> vars {"greeting": "Hello <first_name or address>"}. Its
control file switches it to failing (500) or slow answers.

Every test starts its own DNS server, receiver, hook and daemon and stops
them all (ExitStack), also when it fails.
"""

import contextlib
import datetime
import json
import os
import shutil
import smtplib
import subprocess
import tempfile
import uuid

from delivery_peers import (MX1, PYTHON, SUPPORT_DIR, DnsServer, _first_line, _stop, _write_json,
                            delivery_sections, start_receivers, zone_doc)
from dkim_peers import dkimpy_verify, header_and_body, keygen, signatures
from harness import Daemon, check, expect_eq, free_port, queued_id, wait_until

DOMAIN = "sender.test"
SENDER = f"app@{DOMAIN}"
RSA = (DOMAIN, "rsa2026", "rsa-sha256")


class Hook:
    """tests/support/hook_server.py on a free port; control() changes its
    behaviour, stats() reads what it counted."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ember-hook-")
        self.control_path = os.path.join(self.dir, "control.json")
        self.stats_path = os.path.join(self.dir, "stats.json")
        self.proc = None
        self.port = None
        self.control(mode="ok")

    def __enter__(self):
        self.proc = subprocess.Popen(
            [PYTHON, os.path.join(SUPPORT_DIR, "hook_server.py"), "--control", self.control_path,
             "--stats", self.stats_path, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = _first_line(self.proc, 30, "hook_server.py")
            check(line.startswith("PORT "), f"hook_server.py said {line!r}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def control(self, **doc):
        _write_json(self.control_path, doc)

    def stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def requests(self):
        return self.stats().get("requests", 0)


class World:
    def __init__(self, daemon, dns, receiver, hook):
        self.d = daemon
        self.dns = dns
        self.rcv = receiver
        self.hook = hook


@contextlib.contextmanager
def world(personalize=None, hook=False, delivery=None):
    """An RSA key for sender.test in the zone, a receiver at dest.test's MX,
    a hook server when `hook`, and an emberd with [personalize] (plus the
    hook's URL) delivering there."""
    with contextlib.ExitStack() as stack:
        key_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-pz-"))
        key = keygen(key_dir, *RSA)
        doc = zone_doc()
        doc["records"].append(key.zone_record())
        dns = stack.enter_context(DnsServer(doc))
        port = free_port()
        rcv = start_receivers(stack, port, [MX1])[MX1]
        h = stack.enter_context(Hook()) if hook else None
        sections = delivery_sections(dns, port, delivery)
        sections["dkim"] = [key.config()]
        p = dict(personalize or {})
        if h:
            p["hook"] = h.url()
        if p:
            sections["personalize"] = p
        d = stack.enter_context(Daemon(sections=sections, users={}))
        try:
            yield World(d, dns, rcv, h)
        except BaseException:
            print(f"---- receiver: {rcv.stats()}")
            if h:
                print(f"---- hook: {h.stats()}")
            raise


def expect_verified(raw, dns_port, want):
    """raw carries exactly the signatures `want` and dkimpy verifies each
    (opendkim-testmsg needs test_dkim.py's resolver shim; dkimpy is enough
    to show that each rendering was signed after the merge)."""
    sigs = signatures(raw)
    expect_eq([(t.get("d"), t.get("s"), t.get("a")) for t in sigs], want,
              "DKIM-Signature fields (d, s, a)")
    for i in range(len(sigs)):
        ok, log = dkimpy_verify(raw, dns_port, i)
        check(ok, f"dkimpy: signature {i} does not verify:\n{log}\n{raw[:3000]!r}")


def message(body, headers="", subject="Your offer"):
    return (f"From: News <{SENDER}>\r\nTo: customers@dest.test\r\nSubject: {subject}\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{DOMAIN}>\r\n{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}").encode()


def submit(w, content, rcpts):
    """Submits over SMTP; returns the queue id."""
    with smtplib.SMTP("127.0.0.1", w.d.port(), timeout=30) as c:
        c.ehlo("client.test")
        code, reply = c.mail(SENDER)
        expect_eq(code, 250, f"MAIL FROM ({reply!r})")
        for r in rcpts:
            code, reply = c.rcpt(r)
            expect_eq(code, 250, f"RCPT TO:<{r}> ({reply!r})")
        code, reply = c.data(content)
        expect_eq(code, 250, f"end of data ({reply!r})")
        return queued_id(reply.decode())


def by_recipient(messages):
    """{recipient: raw} of the receiver's messages (one recipient each)."""
    out = {}
    for meta, raw in messages:
        for r in meta["rcpt_tos"]:
            out[r] = raw
    return out


def body_of(raw):
    return header_and_body(raw)[1].decode("utf-8", "replace")


def recipient_states(w, qid):
    return {r["address"]: r for r in w.d.ctl_json("queue", "show", qid)["recipients"]}


def set_contact(w, address, **attributes):
    """The contact's attributes through emberctl (daemon/contacts verbs)."""
    for k, v in attributes.items():
        w.d.ctl("contacts", "set", address, f"{k}={v}")


# ---- merge ----

def test_a_personalized_message_to_three_recipients_arrives_as_three_signed_bodies():
    with world() as w:
        set_contact(w, "jane@dest.test", first_name="Jane", city="Lyon")
        set_contact(w, "bob@dest.test", first_name="Bob", city="Oslo")
        rcpts = ["jane@dest.test", "bob@dest.test", "new@dest.test"]
        body = ("Hi {{ first_name | default: \"there\" }},\r\n"
                "{{ offer }} off in {{ city | default: \"your city\" }}.\r\n")
        headers = 'X-Ember-Vars: {"offer": "20%"}\r\n'
        submit(w, message(body, headers, subject="{{ first_name | default: 'Hi' }}, an offer"),
               rcpts)
        got = by_recipient(w.rcv.wait_messages(3))
        expect_eq(sorted(got), sorted(rcpts), "one message per recipient")
        want = {"jane@dest.test": "Hi Jane,\r\n20% off in Lyon.\r\n",
                "bob@dest.test": "Hi Bob,\r\n20% off in Oslo.\r\n",
                "new@dest.test": "Hi there,\r\n20% off in your city.\r\n"}
        for rcpt, raw in got.items():
            expect_eq(body_of(raw), want[rcpt], f"body for {rcpt}")
            check(b"X-Ember-Vars" not in raw, f"X-Ember-Vars removed for {rcpt}")
            expect_verified(raw, w.dns.port, [RSA])
        check(b"Subject: Jane, an offer\r\n" in got["jane@dest.test"], "merged Subject")


def test_a_message_without_markup_is_delivered_byte_for_byte_in_one_transaction():
    with world() as w:
        content = message("Hello everyone.\r\n")
        submit(w, content, ["a@dest.test", "b@dest.test"])
        (meta, raw), = w.rcv.wait_messages(1)
        expect_eq(sorted(meta["rcpt_tos"]), ["a@dest.test", "b@dest.test"], "one transaction")
        check(raw.endswith(content), "the submitted bytes arrive below ember's fields")
        expect_verified(raw, w.dns.port, [RSA])


# ---- hook ----

def test_the_hooks_answers_apply_variables_skip_send_at_variant_and_headers():
    with world(hook=True) as w:
        set_contact(w, "plain@dest.test", first_name="Pat")
        body = ("{{ greeting | default: \"Hi\" }}!\r\n"
                "{{#tag:variant:b}}Variant B.{{/tag:variant:b}}"
                "{{^tag:variant:b}}Default.{{/tag:variant:b}}\r\n")
        rcpts = ["plain@dest.test", "skip@dest.test", "later@dest.test", "variant@dest.test",
                 "header@dest.test"]
        qid = submit(w, message(body, "X-Ember-Campaign: spring\r\nX-Ember-Tags: promo\r\n"),
                     rcpts)
        got = by_recipient(w.rcv.wait_messages(3))
        expect_eq(sorted(got), ["header@dest.test", "plain@dest.test", "variant@dest.test"],
                  "delivered now")
        expect_eq(body_of(got["plain@dest.test"]), "Hello Pat!\r\nDefault.\r\n", "hook vars")
        expect_eq(body_of(got["variant@dest.test"]), "Hi!\r\nVariant B.\r\n", "variant b")
        header = got["header@dest.test"]
        check(b"X-Campaign-Variant: b\r\n" in header, "the hook's header field was set")
        check(b"evil@example.net" not in header, "From cannot be set by the hook")
        for rcpt, raw in got.items():
            check(b"X-Ember-Campaign" not in raw and b"X-Ember-Tags" not in raw,
                  f"X-Ember-* removed for {rcpt}")
            expect_verified(raw, w.dns.port, [RSA])
        request = w.hook.stats()["last_request"]
        expect_eq(request["campaign"], "spring", "campaign sent to the hook")
        expect_eq(request["tags"], ["promo"], "tags sent to the hook")
        states = recipient_states(w, qid)
        expect_eq(states["skip@dest.test"]["state"], "suppressed", "skip: settled, not sent")
        check(states["later@dest.test"]["state"] == "queued",
              f"send_at: still queued ({states['later@dest.test']})")
        expect_eq(states["later@dest.test"]["attempts"], 0, "send_at is not an attempt")
        # 2030 is past the queue's lifetime: held until the message expires.
        held_until = datetime.datetime.fromisoformat(
            states["later@dest.test"]["next_attempt"].replace("Z", "+00:00"))
        now = datetime.datetime.now(datetime.timezone.utc)
        check(held_until > now + datetime.timedelta(days=1), f"held for later: {held_until}")
        check(held_until < now + datetime.timedelta(days=6), f"not past expiry: {held_until}")
        check("dsn.queued" not in w.d.log(), "a skip sends no DSN")
        expect_eq(len(w.rcv.messages()), 3, "nothing else arrived")


# ---- failures ----

def test_a_hook_answering_500_with_send_default_delivers_without_its_changes():
    with world(hook=True) as w:
        w.hook.control(mode="500")
        submit(w, message("{{ greeting | default: \"Hi\" }}!\r\n"), ["plain@dest.test"])
        (_, raw), = w.rcv.wait_messages(1)
        expect_eq(body_of(raw), "Hi!\r\n", "unpersonalized by the hook")
        expect_verified(raw, w.dns.port, [RSA])
        check(w.hook.requests() >= 1, "the hook was asked")


def test_a_hook_timeout_with_send_default_delivers_without_its_changes():
    with world(personalize={"hook_timeout": "100ms"}, hook=True) as w:
        w.hook.control(mode="ok", delay=1.0)
        submit(w, message("{{ greeting | default: \"Hi\" }}!\r\n"), ["plain@dest.test"])
        (_, raw), = w.rcv.wait_messages(1)
        expect_eq(body_of(raw), "Hi!\r\n", "unpersonalized by the hook")
        w.d.wait_log(r"hook\.failed .*timeout")


def test_a_failing_hook_with_on_error_defer_keeps_the_recipient_queued():
    with world(personalize={"on_error": "defer"}, hook=True) as w:
        w.hook.control(mode="500")
        qid = submit(w, message("{{ greeting | default: \"Hi\" }}!\r\n"), ["plain@dest.test"])

        def deferred():
            r = recipient_states(w, qid)["plain@dest.test"]
            return r["state"] == "deferred" and "4.3.0" in r["last_reply"] and r
        r = wait_until(deferred, 20, "the recipient deferred by the hook failure")
        check("personalization hook" in r["last_reply"], f"last reply: {r['last_reply']}")
        expect_eq(w.rcv.count(), 0, "nothing delivered")


def test_the_circuit_opens_after_repeated_failures_and_closes_after_the_cool_down():
    cfg = {"hook_breaker_failures": 2, "hook_breaker_cooldown": "3s"}
    with world(personalize=cfg, hook=True) as w:
        w.hook.control(mode="500")
        body = "{{ greeting | default: \"Hi\" }}!\r\n"
        for i in range(2):
            submit(w, message(body), [f"fail{i}@dest.test"])
        w.rcv.wait_messages(2)
        w.d.wait_log(r"hook\.circuit_open")
        asked = w.hook.requests()
        expect_eq(asked, 2, "one request per failed batch")
        # While open, batches are not sent: the message goes at once (send-default).
        submit(w, message(body), ["open@dest.test"])
        w.rcv.wait_messages(3)
        expect_eq(w.hook.requests(), asked, "the hook is not called while the circuit is open")
        # Healthy again: after the cool-down a probe goes through and closes it.
        w.hook.control(mode="ok")
        seen = [3]

        def personalized_again():
            n = seen[0]
            submit(w, message(body), [f"probe{n}@dest.test"])
            got = w.rcv.wait_messages(n + 1)
            seen[0] = n + 1
            return any(body_of(raw).startswith("Hello ") for _, raw in got)
        wait_until(personalized_again, 30, "a personalized delivery after the cool-down")
        w.d.wait_log(r"hook\.circuit_closed")
