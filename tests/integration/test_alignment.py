"""The DMARC alignment gate end to end (issue 4): the real emberd with
[auth] alignment set, a test DNS zone (tests/support/dns_server.py) with
the SPF and DKIM records below, and real SMTP clients; plus emberctl's
offline verbs `spf` and `check-domain` run as the real binary against the
same zone.

    signed.test     a [[dkim]] key (made by emberctl) and its published record
    spf.test        TXT "v=spf1 ip4:127.0.0.1 -all"   (our egress address)
    unaligned.test  TXT "v=spf1 ip4:192.0.2.1 -all"   (another address), no key
    bare.test       a [[dkim]] key that is not published, no SPF, no DMARC
                    (only where a test asks for its key)

ember's egress address is 127.0.0.1 ([delivery] source_ips); mail stays
in the queue ([delivery] hold), nothing is delivered. Every test stops the
servers it starts (ExitStack), also when it fails.
"""

import contextlib
import re
import socket
import subprocess
import tempfile
import uuid

from delivery_peers import DnsServer
from dkim_peers import keygen
from harness import EMBERCTL, Daemon, RawSmtp, check, expect_eq, queued_id

EGRESS = "127.0.0.1"


def zone(keys):
    records = [
        {"name": "spf.test", "type": "TXT", "value": f"v=spf1 ip4:{EGRESS} -all"},
        {"name": "unaligned.test", "type": "TXT", "value": "v=spf1 ip4:192.0.2.1 -all"},
        {"name": "_dmarc.signed.test", "type": "TXT", "value": "v=DMARC1; p=reject"},
    ]
    records += [k.zone_record() for k in keys if k.domain == "signed.test"]
    return {"zones": ["."], "negative_ttl": 1, "records": records}


class GateDaemon(Daemon):
    """A Daemon whose listeners may carry their own `alignment` (the
    harness writes only mode, tls, auth and auth_without_tls)."""

    def config_text(self):
        text = super().config_text()
        for l in self.listeners:
            if "alignment" in l:
                line = f'address = "127.0.0.1:{self.ports[l["name"]]}"'
                text = text.replace(line, f'{line}\nalignment = "{l["alignment"]}"')
        return text


class World:
    def __init__(self, daemon, dns, keys):
        self.d = daemon
        self.dns = dns
        self.keys = keys


def gate_sections(dns_servers, keys, dns_extra=None):
    n = {"servers": dns_servers, "timeout": "300ms", "tries": 1}
    n.update(dns_extra or {})
    return {"dns": n, "delivery": {"hold": True, "source_ips": [EGRESS]},
            "dkim": [k.config() for k in keys]}


# The gate does not care about the algorithm: Ed25519 keys are made in
# milliseconds, RSA-2048 ones take a good part of a second.
ED25519 = "ed25519-sha256"


@contextlib.contextmanager
def world(alignment="enforce", listeners=None, dns_servers=None, key_domains=("signed.test",),
          algorithm=ED25519):
    """A [[dkim]] key (emberctl keygen) for each of key_domains, the zone
    above and an emberd with [auth] alignment = `alignment`. dns_servers
    replaces the test DNS server in [dns] servers."""
    with contextlib.ExitStack() as stack:
        key_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-gate-"))
        keys = [keygen(key_dir, domain, "s1", algorithm) for domain in key_domains]
        dns = stack.enter_context(DnsServer(zone(keys)))
        sections = gate_sections(dns_servers or [dns.address()], keys)
        d = stack.enter_context(GateDaemon(listeners=listeners, sections=sections,
                                           alignment=alignment, users={}))
        try:
            yield World(d, dns, keys)
        except BaseException:
            print(f"---- DNS queries: {dns.queries()[-30:]}")
            raise


def content(from_header, to="user@dest.test"):
    return (f"From: {from_header}\r\nTo: <{to}>\r\nSubject: gate\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@client.test>\r\n\r\nHi.\r\n")


def submit(d, mail_from, from_header, listener="main", extra_headers=""):
    """(code, text) of the end-of-data reply for one message over a raw session."""
    with RawSmtp(d.port(listener)) as s:
        s.expect(220)
        s.expect(250, "EHLO client.test")
        s.expect(250, f"MAIL FROM:<{mail_from}>")
        s.expect(250, "RCPT TO:<user@dest.test>")
        s.expect(354, "DATA")
        text = content(from_header).replace("\r\n\r\n", "\r\n" + extra_headers + "\r\n", 1)
        s.send(text.replace("\r\n.", "\r\n..") + ".\r\n")
        code, reply = s.reply()
        s.cmd("QUIT")
        return code, reply


def expect_accepted(d, mail_from, from_header, listener="main"):
    code, text = submit(d, mail_from, from_header, listener)
    check(code == 250, f"From {from_header} via MAIL FROM:<{mail_from}> at {listener}: "
                       f"got {code} {text!r}, want 250")
    qid = queued_id(text)
    check(qid in d.queue_ids(), f"{qid} is in the queue")
    return qid


def expect_refused(d, mail_from, from_header, code_want, enhanced, listener="main"):
    before = d.queue_ids()
    code, text = submit(d, mail_from, from_header, listener)
    check(code == code_want and text.startswith(enhanced),
          f"From {from_header} at {listener}: got {code} {text!r}, want {code_want} {enhanced}")
    expect_eq(d.queue_ids(), before, "queue after the refusal")
    return text


def events(d, name):
    return [line for line in d.log().splitlines() if re.search(rf"\b{re.escape(name)}\b", line)]


# ---- enforce ----

def test_enforce_refuses_an_unaligned_from_with_550_5_7_26_naming_what_is_missing():
    with world() as w:
        text = expect_refused(w.d, "app@unaligned.test", "<app@unaligned.test>", 550, "5.7.26")
        for clause in ("unaligned.test", "no DKIM key", "does not list 127.0.0.1"):
            check(clause in text, f"the reply names {clause!r}: {text!r}")
        line = w.d.wait_log(r"alignment\.unaligned [^\n]*action=refused[^\n]*").group(0)
        check("unaligned.test" in line, f"the event names the From domain: {line}")


def test_enforce_refuses_a_from_domain_without_key_or_spf_record_and_says_so():
    with world() as w:
        text = expect_refused(w.d, "app@nothing.test", "<app@nothing.test>", 550, "5.7.26")
        check("no DKIM key configured for nothing.test" in text and
              "publishes no SPF record" in text, f"the reply says what is missing: {text!r}")


def test_enforce_accepts_a_from_domain_with_a_configured_and_published_dkim_key():
    with world() as w:
        expect_accepted(w.d, "app@signed.test", "App <app@signed.test>")
        # A subdomain From aligns with the parent's key (relaxed, RFC 7489 3.1.1).
        expect_accepted(w.d, "app@signed.test", "<news@news.signed.test>")
        expect_eq(events(w.d, "alignment.unaligned"), [], "alignment.unaligned events")


def test_enforce_accepts_a_from_domain_whose_spf_lists_our_address():
    with world() as w:
        expect_accepted(w.d, "bounces@spf.test", "<app@spf.test>")
        check(any(q[1] == "spf.test" and q[2] == "TXT" for q in w.dns.queries()),
              f"the SPF record was looked up: {w.dns.queries()}")
        # The same From with an envelope sender elsewhere does not align.
        text = expect_refused(w.d, "app@unaligned.test", "<app@spf.test>", 550, "5.7.26")
        check("does not align with spf.test" in text, f"the reply says why: {text!r}")


# ---- warn, per-listener override ----

def test_warn_accepts_an_unaligned_from_and_logs_an_event():
    with world(alignment="warn") as w:
        qid = expect_accepted(w.d, "app@unaligned.test", "<app@unaligned.test>")
        line = w.d.wait_log(rf"alignment\.unaligned [^\n]*\bid={qid}\b[^\n]*").group(0)
        for part in ("action=accepted", "policy=warn", "unaligned.test", "no DKIM key"):
            check(part in line, f"the event carries {part!r}: {line}")


def test_a_listener_override_applies_its_own_policy():
    listeners = [{"name": "main", "mode": "submission", "tls": "none", "auth": "none"},
                 {"name": "lenient", "mode": "submission", "tls": "none", "auth": "none",
                  "alignment": "warn"},
                 {"name": "unchecked", "mode": "submission", "tls": "none", "auth": "none",
                  "alignment": "off"}]
    with world(alignment="enforce", listeners=listeners) as w:
        expect_refused(w.d, "app@unaligned.test", "<app@unaligned.test>", 550, "5.7.26")
        expect_accepted(w.d, "app@unaligned.test", "<app@unaligned.test>", "lenient")
        w.d.wait_log(r"alignment\.unaligned [^\n]*action=accepted[^\n]*policy=warn")
        before = events(w.d, "alignment.unaligned")
        expect_eq(len(before), 2, f"alignment.unaligned events so far: {before}")
        qid = expect_accepted(w.d, "app@unaligned.test", "<app@unaligned.test>", "unchecked")
        w.d.wait_log(rf"smtp\.accepted id={qid}\b")
        expect_eq(events(w.d, "alignment.unaligned"), before, "events after the off listener")
    listeners = [{"name": "main", "mode": "submission", "tls": "none", "auth": "none"},
                 {"name": "strict", "mode": "submission", "tls": "none", "auth": "none",
                  "alignment": "enforce"}]
    with world(alignment="warn", listeners=listeners) as w:
        expect_accepted(w.d, "app@unaligned.test", "<app@unaligned.test>")
        expect_refused(w.d, "app@unaligned.test", "<app@unaligned.test>", 550, "5.7.26",
                       "strict")


# ---- DNS failure ----

@contextlib.contextmanager
def silent_dns():
    """A UDP (and TCP) port on 127.0.0.1 that takes queries and never answers."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.bind(("127.0.0.1", port))
        tcp.listen(8)
        yield f"127.0.0.1:{port}"
    finally:
        tcp.close()
        udp.close()


def test_a_dns_server_that_does_not_answer_gives_451_4_4_3():
    with silent_dns() as server, world(dns_servers=[server]) as w:
        text = expect_refused(w.d, "app@unaligned.test", "<app@unaligned.test>", 451, "4.4.3")
        check("try again" in text, f"the reply says it is temporary: {text!r}")
        w.d.wait_log(r"alignment\.temperror [^\n]*action=refused")
        # A From domain with its own key needs no DNS: still accepted.
        expect_accepted(w.d, "app@signed.test", "<app@signed.test>")


# ---- the author ----

def test_a_message_with_two_from_addresses_is_refused():
    with world() as w:
        code, text = submit(w.d, "app@signed.test", "<app@signed.test>, <other@signed.test>",
                            extra_headers="Sender: <app@signed.test>\r\n")
        check(code == 550 and text.startswith("5.7.26") and "2 From: addresses" in text,
              f"got {code} {text!r}, want 550 5.7.26 naming the two From: addresses")
        # Two From: fields do not reach the gate: the header check refuses
        # them first (RFC 5322 3.6 allows one).
        code, text = submit(w.d, "app@signed.test", "<app@signed.test>\r\nFrom: <b@signed.test>")
        check(code == 550 and "From" in text, f"two From: fields: got {code} {text!r}, want 550")
        expect_eq(w.d.queue_ids(), [], "queue")


# ---- emberctl spf ----

def emberctl(*args, timeout=30):
    return subprocess.run([EMBERCTL, *args], capture_output=True, text=True, timeout=timeout)


def test_emberctl_spf_prints_the_result_on_its_first_line():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer(zone([])))
        for sender, want in (("a@spf.test", "pass"), ("a@unaligned.test", "fail"),
                             ("a@nothing.test", "none")):
            r = emberctl("spf", "--dns", dns.address(), EGRESS, sender)
            expect_eq(r.returncode, 0, f"exit status for {sender} ({r.stderr})")
            first = r.stdout.splitlines()[0] if r.stdout else ""
            expect_eq(first, want, f"first line for {sender} (output {r.stdout!r})")


# ---- emberctl check-domain ----

def check_domain(w, domain):
    return emberctl("-c", w.d.config_path, "check-domain", domain)


def test_emberctl_check_domain_exits_0_when_the_domain_aligns():
    # RSA here: its record is over 255 octets, so DNS serves it as several
    # strings that check-domain must join before comparing keys.
    with world(algorithm="rsa-sha256") as w:
        for domain in ("signed.test", "spf.test"):
            r = check_domain(w, domain)
            check(r.returncode == 0 and f"mail From {domain} aligns" in r.stdout,
                  f"check-domain {domain}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        r = check_domain(w, "signed.test")
        check(re.search(r"^OK\s+dkim\s+s1\._domainkey\.signed\.test: matches", r.stdout, re.M),
              f"the published key matches ours:\n{r.stdout}")


def test_emberctl_check_domain_prints_the_records_to_publish_and_fails_when_not_aligned():
    with world(key_domains=("signed.test", "bare.test")) as w:
        r = check_domain(w, "bare.test")
        check(r.returncode not in (0, 2, 78), f"exit {r.returncode} for an unaligned domain:"
                                              f"\n{r.stdout}{r.stderr}")
        expect_eq(r.returncode, 1, f"exit status ({r.stdout}{r.stderr})")
        key = next(k for k in w.keys if k.domain == "bare.test")
        want = {
            "s1._domainkey.bare.test": key.record,
            "bare.test": f"v=spf1 ip4:{EGRESS} -all",
        }
        published = dict(re.findall(r"publish TXT at (\S+): (.+)", r.stdout))
        for name, value in want.items():
            expect_eq(published.get(name), value, f"record to publish at {name}")
        check(published.get("_dmarc.bare.test", "").startswith("v=DMARC1;"),
              f"a DMARC record to publish: {published}")
        check("mail From bare.test does not align" in r.stdout, f"the verdict:\n{r.stdout}")
        # unaligned.test: SPF does not list us, and the fix adds us to it.
        r = check_domain(w, "unaligned.test")
        expect_eq(r.returncode, 1, f"exit status ({r.stdout}{r.stderr})")
        published = dict(re.findall(r"publish TXT at (\S+): (.+)", r.stdout))
        expect_eq(published.get("unaligned.test"), f"v=spf1 ip4:{EGRESS} ip4:192.0.2.1 -all",
                  "the SPF record to publish")
