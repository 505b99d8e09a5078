"""Open and click tracking end to end (issue 8): the real emberd, with
[tracking] domains = ["sender.test"], delivers an HTML message through a
test DNS server to a receiver; the message it got carries per-recipient
PUBLIC_URL/c/TOKEN links and a PUBLIC_URL/o/TOKEN pixel, still DKIM-signed.
Then the daemon's HTTP listener is asked for them: a click redirects (302,
no redirect followed) exactly to the original URL, a tampered token is
404, an open with Apple Mail Privacy Protection's bare "Mozilla/5.0" is a
machine open and a browser's is the unique human open. Observed from
outside only: the receiver's files, HTTP answers and the event log.

Every test starts its own DNS server, receiver and daemon and stops them
(ExitStack), also when it fails; waits poll with a limit.
"""

import contextlib
import http.client
import json
import os
import quopri
import re
import smtplib
import tempfile
import uuid

from delivery_peers import MX1, SENDER, DnsServer, delivery_sections, start_receivers, zone_doc
from dkim_peers import dkimpy_verify, keygen
from harness import Daemon, check, expect_eq, free_port, queued_id, wait_until

TOKEN_KEY = "k1:tracking-test-secret-0123456789"
PUBLIC_URL = "https://mta.test.example"
TARGET = "https://shop.example/p?a=1&b=2"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


class World:
    def __init__(self, daemon, dns, receivers, http_port):
        self.d = daemon
        self.dns = dns
        self.rcv = receivers
        self.http_port = http_port

    def events(self, type_=None):
        try:
            with open(os.path.join(self.d.dir, "events.log")) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [e for e in lines if type_ is None or e["type"] == type_]

    def get(self, path, user_agent, method="GET"):
        """(status, headers) of one request to the HTTP listener; no redirect followed."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=20)
        try:
            c.request(method, path, headers={"User-Agent": user_agent})
            r = c.getresponse()
            r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()


@contextlib.contextmanager
def world():
    with contextlib.ExitStack() as stack:
        key_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-trk-"))
        key = keygen(key_dir, "sender.test", "trk1")
        doc = zone_doc()
        doc["records"].append(key.zone_record())
        dns = stack.enter_context(DnsServer(doc))
        port = free_port()
        rcv = start_receivers(stack, port, [MX1])
        http_port = free_port()
        sections = delivery_sections(dns, port)
        sections["dkim"] = [key.config()]
        sections["http"] = {"listen": f"127.0.0.1:{http_port}", "public_url": PUBLIC_URL}
        sections["feedback"] = {"token_keys": [TOKEN_KEY]}
        sections["events"] = {"log": "events.log"}
        sections["tracking"] = {"domains": ["sender.test"]}
        d = stack.enter_context(Daemon(sections=sections, users={}, http=False))
        w = World(d, dns, rcv, http_port)
        try:
            yield w
        except BaseException:
            print(f"---- receiver: {rcv[MX1].stats()}")
            print(f"---- events: {w.events()}")
            raise


def html_message(to):
    html = ("<html><body><p>Spring sale</p>"
            "<a href=\"https://shop.example/p?a=1&amp;b=2\">Shop</a> "
            "<a href=\"mailto:help@sender.test\">help</a></body></html>\r\n")
    return (f"From: News <{SENDER}>\r\nTo: <{to}>\r\nSubject: sale\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@sender.test>\r\n"
            f"X-Ember-Campaign: spring\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Spring sale: {TARGET}\r\n"
            f"--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + quopri.encodestring(html.encode()).decode()  # keeps the CRLF line ends
            + "--b1--\r\n")


def send(w, to):
    with smtplib.SMTP("127.0.0.1", w.d.port("main"), timeout=20) as c:
        c.ehlo("client.test")
        c.mail(SENDER)
        code, reply = c.rcpt(to)
        expect_eq(code, 250, f"RCPT TO:<{to}> ({reply!r})")
        code, reply = c.data(html_message(to))
        expect_eq(code, 250, f"end of data ({reply!r})")
        return queued_id(reply.decode())


def received(w, to):
    def got():
        mine = [raw for m, raw in w.rcv[MX1].messages() if to in m["rcpt_tos"]]
        return mine or None
    return wait_until(got, 30, f"a message for {to} at {MX1}")[0]


def tracking_paths(raw, kind):
    text = quopri.decodestring(raw).decode("utf-8", "replace")
    return re.findall(re.escape(PUBLIC_URL) + f"(/{kind}/[A-Za-z0-9_-]+)", text)


def test_click_redirects_to_the_signed_url_and_opens_are_told_machine_from_human():
    rcpt = "reader@dest.test"
    with world() as w:
        qid = send(w, rcpt)
        raw = received(w, rcpt)
        clicks = tracking_paths(raw, "c")
        opens = tracking_paths(raw, "o")
        expect_eq(len(clicks), 1, f"tracked links in {raw!r}")
        expect_eq(len(opens), 1, f"open pixels in {raw!r}")
        check(b'href="mailto:help@sender.test"' in quopri.decodestring(raw),
              "the mailto: link is left alone")
        check(f"Spring sale: {TARGET}".encode() in raw, "the text part is left alone")
        check(b"X-Ember-Campaign" not in raw, "X-Ember-Campaign is removed")
        ok, log = dkimpy_verify(raw, w.dns.port, 0)
        check(ok, f"the tracked message verifies (dkimpy: {log})")

        status, headers = w.get(clicks[0], BROWSER)
        expect_eq(status, 302, "the click's status")
        expect_eq(headers.get("location"), TARGET, "the redirect target")
        check("no-store" in headers.get("cache-control", ""), f"no-store: {headers}")
        token = clicks[0]
        tampered = token[:-20] + ("A" if token[-20] != "A" else "B") + token[-19:]
        for bad in (tampered, "/c/not-a-token", "/c/" + opens[0][3:]):
            status, headers = w.get(bad, BROWSER)
            expect_eq(status, 404, f"the status for {bad}")
            check("location" not in headers, f"no redirect for {bad}: {headers}")

        status, headers = w.get(opens[0], "Mozilla/5.0")
        expect_eq(status, 200, "the pixel's status")
        expect_eq(headers.get("content-type"), "image/gif", "the pixel's type")
        w.get(opens[0], BROWSER)
        w.get(opens[0], BROWSER)
        got = wait_until(lambda: len(w.events("opened")) >= 3 and w.events("opened"), 20,
                         "three opened events")
        mpp, human, again = got[:3]
        for e in got + w.events("clicked"):
            expect_eq(e["queue_id"], qid, "the event's queue id")
            expect_eq(e["recipient"], rcpt, "the event's recipient")
            expect_eq(e["campaign"], "spring", "the event's campaign")
            expect_eq(e["source"], "http", "the event's source")
        expect_eq(mpp["extra"]["machine"], True, "Apple's proxy open is a machine's")
        expect_eq(mpp["extra"]["machine_reason"], "apple-mpp", "its reason")
        expect_eq(mpp["extra"]["unique"], False, "a machine open is never unique")
        expect_eq(human["extra"]["machine"], False, "the browser's open is a person's")
        expect_eq(human["extra"]["unique"], True, "the first human open is unique")
        expect_eq(again["extra"]["unique"], False, "the second is not")
        click = w.events("clicked")
        expect_eq(len(click), 1, "one clicked event (404s are none)")
        expect_eq(click[0]["extra"]["url"], TARGET, "the clicked URL")
