"""Delivery end to end (issue 3): the real emberd delivers what it queued to
real receiving MTAs (tests/support/smtp_receiver.py) on 127.0.0.x, finding
them through a real DNS server (tests/support/dns_server.py); results,
retries, DSNs, admin verbs and metrics are observed from outside only:
the receivers' files, the DNS query log, emberctl, /metrics and the log.

The zones and addresses are in delivery_peers.py. Every test starts its own
DNS server, receivers and daemon and stops them all (ExitStack), also when
it fails; waits poll with a limit, nothing sleeps to make a result true.
"""

import contextlib
import re
import signal
import smtplib
import socket
import tempfile
import threading
import uuid

from delivery_peers import (IMPLICIT, MX1, MX2, ROUTED, SECURE_MX, SENDER, SENDER_MX, TLS_MX,
                            DnsServer, delivery_sections, dsns, start_receivers)
from harness import Daemon, Failure, check, expect_eq, free_port, make_cert, queued_id, wait_until

# Short retries for the scenarios that wait for one (retry_jitter is 0 in
# delivery_sections); long ones where a retry must not happen by itself.
FAST_RETRY = {"retry_first": "1s", "retry_max": "2s"}
NO_RETRY_SOON = {"retry_first": "1h", "retry_max": "4h"}


class World:
    def __init__(self, daemon, dns, port, receivers):
        self.d = daemon
        self.dns = dns
        self.port = port
        self.rcv = receivers


@contextlib.contextmanager
def world(receivers=(MX1, SENDER_MX), specs=None, tls=None, delivery=None, dns_extra=None):
    """DNS server, receivers on `receivers` (same port P), and an emberd
    delivering to port P through that DNS server."""
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, receivers, specs, tls)
        d = stack.enter_context(Daemon(sections=delivery_sections(dns, port, delivery, dns_extra)))
        try:
            yield World(d, dns, port, rcv)
        except BaseException:
            for ip, r in rcv.items():
                print(f"---- receiver {ip}: {r.stats()}")
            print(f"---- DNS queries: {dns.queries()[-30:]}")
            raise


def content(to, subject="hello", body="Hi.\r\n", sender=SENDER, headers=""):
    """A complete message with its own Date and Message-ID, so the daemon
    adds nothing but its Received: field."""
    return (f"From: App <{sender or 'mailer-daemon@sender.test'}>\r\nTo: <{to}>\r\n"
            f"Subject: {subject}\r\nDate: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@sender.test>\r\n{headers}\r\n{body}")


def submit(d, rcpts, text=None, sender=SENDER, mail_options=(), rcpt_options=None,
           client=None):
    """Submits one message over SMTP; returns its queue id."""
    rcpt_options = rcpt_options or {}
    text = text if text is not None else content(rcpts[0])
    c = client or smtplib.SMTP("127.0.0.1", d.port(), timeout=20)
    try:
        if client is None:
            c.ehlo("client.test")
        code, reply = c.mail(sender, list(mail_options))
        expect_eq(code, 250, f"MAIL FROM:<{sender}> ({reply!r})")
        for r in rcpts:
            code, reply = c.rcpt(r, list(rcpt_options.get(r, ())))
            expect_eq(code, 250, f"RCPT TO:<{r}> ({reply!r})")
        code, reply = c.data(text)
        expect_eq(code, 250, f"end of data ({reply!r})")
        return queued_id(reply.decode())
    finally:
        if client is None:
            try:
                c.quit()
            except (OSError, smtplib.SMTPException):
                c.close()


def result_line(d, qid, result, timeout=30):
    """Waits for the scheduler's `delivery.result id=QID ... result=RESULT`."""
    return d.wait_log(rf"delivery\.result id={qid}\b[^\n]*\bresult={result}\b[^\n]*", timeout)


def result_lines(d, qid):
    return [line for line in d.log().splitlines()
            if re.search(rf"delivery\.result id={qid}\b[^\n]*\bresult=", line)]


def dsn_lines(d, qid):
    """The daemon's `dsn.queued ... original=QID` lines."""
    return [line for line in d.log().splitlines()
            if re.search(rf"dsn\.queued [^\n]*\boriginal={qid}\b", line)]


def queue_messages(d):
    return d.ctl_json("queue", "summary")["messages"]


def wait_queue_empty(d, timeout=30):
    wait_until(lambda: queue_messages(d) == 0, timeout, "an empty queue")


def recipient(d, qid, address):
    shown = d.ctl_json("queue", "show", qid)
    for r in shown["recipients"]:
        if r["address"] == address:
            return r
    raise Failure(f"{address} not among the recipients of {qid}: {shown['recipients']}")


def wait_state(d, qid, address, state, timeout=30):
    return wait_until(lambda: (lambda r: r if r["state"] == state else None)(
        recipient(d, qid, address)), timeout, f"{address} of {qid} in state {state}")


def header_fields(block):
    """[(name, unfolded value)] of an RFC 5322 header block."""
    fields = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        if line[0] in " \t" and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + " " + line.strip())
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def only_dsn(receiver, timeout=30):
    """Waits for the one DSN at receiver and returns (meta, parsed)."""
    wait_until(lambda: dsns(receiver), timeout, f"a DSN at {receiver.ip}")
    found = dsns(receiver)
    expect_eq(len(found), 1, "DSNs received")
    return found[0]


def dsn_recipient(parsed, address):
    for r in parsed["recipients"]:
        if address in r.get("final-recipient", ""):
            return r
    raise Failure(f"no per-recipient block for {address}: {parsed['recipients']}")


# ---- 1. the happy path ----

def test_delivered_message_arrives_unchanged_but_for_our_received_and_leaves_the_queue():
    with world(receivers=(MX1, MX2, SENDER_MX)) as w:
        text = content("user@dest.test", subject="verified content",
                       body="Line one.\r\n.a line that starts with a dot\r\n\r\nLast line.\r\n")
        qid = submit(w.d, ["user@dest.test"], text)
        meta, raw = w.rcv[MX1].wait_messages(1)[0]
        expect_eq(meta["mail_from"], SENDER, "envelope sender")
        expect_eq(meta["rcpt_tos"], ["user@dest.test"], "envelope recipients")
        check(raw.endswith(text.encode()),
              f"the submitted message is the tail of what arrived:\n{raw.decode()}")
        added = header_fields(raw[:len(raw) - len(text.encode())])
        expect_eq([name for name, _ in added], ["Received"], "fields ember added")
        received = added[0][1]
        check("by mta.test.example" in received and qid in received,
              f"our Received: names our host and queue id: {received}")
        wait_until(lambda: qid not in w.d.queue_ids(), 30, f"{qid} removed from the queue")
        result_line(w.d, qid, "delivered")
        expect_eq(w.rcv[MX2].count(), 0, "messages at the preference-20 MX")
        expect_eq(w.rcv[MX1].count(), 1, "messages at the preference-10 MX")


# ---- 2. MX failover ----

def test_preferred_mx_refusing_connections_fails_over_to_the_next_mx():
    # No listener at 127.0.0.2 (mx1, preference 10): connection refused.
    with world(receivers=(MX2, SENDER_MX)) as w:
        qid = submit(w.d, ["user@dest.test"])
        meta, _ = w.rcv[MX2].wait_messages(1)[0]
        expect_eq(meta["rcpt_tos"], ["user@dest.test"], "recipients at mx2")
        line = result_line(w.d, qid, "delivered").group(0)
        check(MX2 in line, f"the result names mx2 as relay: {line}")


def test_preferred_mx_answering_421_greeting_fails_over_to_the_next_mx():
    with world(receivers=(MX1, MX2, SENDER_MX),
               specs={MX1: {"greeting": "421 4.3.2 try later"}}) as w:
        qid = submit(w.d, ["user@dest.test"])
        meta, _ = w.rcv[MX2].wait_messages(1)[0]
        expect_eq(meta["rcpt_tos"], ["user@dest.test"], "recipients at mx2")
        check(w.rcv[MX1].stats().get("greetings_refused", 0) >= 1, "mx1 was tried first")
        expect_eq(w.rcv[MX1].count(), 0, "messages at mx1")
        result_line(w.d, qid, "delivered")


# ---- 3. temporary failure, then success ----

def test_a_451_at_end_of_data_defers_and_the_retry_delivers():
    # Only mx1 listens, so the first attempt cannot succeed at mx2 instead.
    with world(specs={MX1: {"fail_first": 1}}, delivery=FAST_RETRY) as w:
        qid = submit(w.d, ["user@dest.test"])
        deferred = result_line(w.d, qid, "deferred").group(0)
        check("attempts=1" in deferred and "451" in deferred,
              f"first attempt deferred with the 451: {deferred}")
        w.rcv[MX1].wait_messages(1)
        delivered = result_line(w.d, qid, "delivered").group(0)
        check(re.search(r"attempts=[2-9]", delivered), f"delivered on a retry: {delivered}")
        wait_queue_empty(w.d)
        expect_eq(w.rcv[MX1].count(), 1, "messages delivered")


# ---- 4.-6. failures and DSNs ----

def test_a_550_to_rcpt_sends_a_headers_only_dsn_from_the_null_sender():
    marker = "BODY-MARKER-" + uuid.uuid4().hex
    spec = {"rcpt": {"bad@dest.test": "550 5.1.1 <bad@dest.test>: no such user here"}}
    with world(specs={MX1: spec}) as w:
        text = content("bad@dest.test", subject="will bounce", body=f"{marker}\r\n")
        qid = submit(w.d, ["bad@dest.test"], text)
        meta, dsn = only_dsn(w.rcv[SENDER_MX])
        expect_eq(meta["rcpt_tos"], [SENDER], "DSN goes to the envelope sender")
        r = dsn_recipient(dsn, "bad@dest.test")
        expect_eq(r.get("action"), "failed", "Action")
        expect_eq(r.get("status"), "5.1.1", "Status")
        check(r.get("final-recipient", "").lower().startswith("rfc822;"), f"Final-Recipient {r}")
        diagnostic = r.get("diagnostic-code", "")
        check("550" in diagnostic and "no such user here" in diagnostic,
              f"Diagnostic-Code carries the remote reply: {diagnostic!r}")
        check("mx1.dest.test" in r.get("remote-mta", ""), f"Remote-MTA names mx1: {r}")
        check("mta.test.example" in dsn["per_message"].get("reporting-mta", ""),
              f"Reporting-MTA: {dsn['per_message']}")
        expect_eq(dsn["returned_type"], "text/rfc822-headers", "returned part (RET absent)")
        check("Subject: will bounce" in (dsn["returned_text"] or ""), "original headers returned")
        _, raw = w.rcv[SENDER_MX].messages()[0]
        check(marker.encode() not in raw, "the original body is not returned")
        result_line(w.d, qid, "failed")
        expect_eq(len(dsn_lines(w.d, qid)), 1, "dsn.queued lines for the message")
        wait_queue_empty(w.d)
        expect_eq(w.rcv[MX1].count(), 0, "messages accepted at mx1")


def expect_immediate_dsn(w, address, status):
    qid = submit(w.d, [address])
    _, dsn = only_dsn(w.rcv[SENDER_MX])
    r = dsn_recipient(dsn, address)
    expect_eq(r.get("action"), "failed", "Action")
    expect_eq(r.get("status"), status, "Status")
    line = result_line(w.d, qid, "failed").group(0)
    check("attempts=1" in line and "relay=none" in line,
          f"failed on the first attempt, no host contacted: {line}")
    expect_eq(len(result_lines(w.d, qid)), 1, "result lines (no retry)")
    wait_queue_empty(w.d)


def test_a_null_mx_domain_fails_at_once_with_5_1_10_without_connecting():
    with world() as w:
        expect_immediate_dsn(w, "user@nullmx.test", "5.1.10")
        check(not any(q[1] == "" or q[1] == "." for q in w.dns.queries()),
              "no address lookup for the null MX target")


def test_a_nonexistent_domain_fails_at_once_with_5_1_2():
    # smtp/outcome.hpp: domain_not_found() is Failed 5.1.2 (NXDOMAIN).
    with world() as w:
        expect_immediate_dsn(w, "user@nxdomain.test", "5.1.2")


def test_a_domain_without_mx_is_delivered_to_its_address_record():
    with world(receivers=(IMPLICIT, SENDER_MX)) as w:
        qid = submit(w.d, ["user@implicit.test"])
        meta, _ = w.rcv[IMPLICIT].wait_messages(1)[0]
        expect_eq(meta["rcpt_tos"], ["user@implicit.test"], "recipients at the implicit MX")
        result_line(w.d, qid, "delivered")


def test_a_dns_timeout_defers_with_4_4_3_and_returns_nothing():
    with world(delivery=NO_RETRY_SOON) as w:
        qid = submit(w.d, ["user@slowdns.test"])
        result_line(w.d, qid, "deferred")
        r = wait_state(w.d, qid, "user@slowdns.test", "deferred")
        check("4.4.3" in r["last_reply"], f"last reply names the DNS failure: {r}")
        expect_eq(w.rcv[SENDER_MX].count(), 0, "DSNs for a temporary DNS failure")


# ---- 7. expiry ----

def test_a_recipient_deferred_past_max_retry_time_is_returned_with_a_dsn():
    spec = {"data": "451 4.3.0 mailbox busy, try again later"}
    with world(specs={MX1: spec}, delivery=dict(FAST_RETRY, max_retry_time="6s")) as w:
        qid = submit(w.d, ["user@dest.test"])
        _, dsn = only_dsn(w.rcv[SENDER_MX], timeout=60)
        r = dsn_recipient(dsn, "user@dest.test")
        expect_eq(r.get("action"), "failed", "Action")
        check(r.get("status", "").startswith("4."), f"Status stays 4.x.x: {r}")
        check(len(result_lines(w.d, qid)) >= 2, f"retried before it expired: "
              f"{result_lines(w.d, qid)}")
        wait_queue_empty(w.d)
        check(qid not in w.d.queue_ids(), "the expired message left the queue")
        expect_eq(w.rcv[MX1].count(), 0, "messages accepted at mx1")


# ---- 8. when no DSN goes out ----

def test_notify_never_suppresses_the_failure_dsn():
    spec = {"rcpt": {"bad@dest.test": "550 5.1.1 no such user"}}
    with world(specs={MX1: spec}) as w:
        qid = submit(w.d, ["bad@dest.test"], rcpt_options={"bad@dest.test": ["NOTIFY=NEVER"]})
        result_line(w.d, qid, "failed")
        # A DSN is committed before the records that report it, and the
        # message is removed only after those: once the queue is empty, any
        # DSN would have been delivered already.
        wait_queue_empty(w.d)
        expect_eq(w.rcv[SENDER_MX].count(), 0, "DSNs despite NOTIFY=NEVER")
        expect_eq(dsn_lines(w.d, qid), [], "DSNs queued despite NOTIFY=NEVER")


def test_mail_from_the_null_sender_that_fails_is_not_bounced():
    spec = {"rcpt": {"bad@dest.test": "550 5.1.1 no such user"}}
    with world(specs={MX1: spec}) as w:
        qid = submit(w.d, ["bad@dest.test"], content("bad@dest.test", sender=""), sender="")
        result_line(w.d, qid, "failed")
        wait_queue_empty(w.d)
        for ip, r in w.rcv.items():
            expect_eq(r.count(), 0, f"messages at {ip} (a bounce of a bounce)")
        expect_eq(dsn_lines(w.d, qid), [], "DSNs queued for mail from <>")


# ---- 9., 10., 13. the SMTP client's efficiency ----

def test_ten_messages_to_one_destination_share_connections():
    with world(delivery={"max_connections_per_destination": 2}) as w:
        with smtplib.SMTP("127.0.0.1", w.d.port(), timeout=20) as c:
            c.ehlo("client.test")
            for i in range(10):
                submit(w.d, [f"user{i}@dest.test"], content(f"user{i}@dest.test", f"n{i}"),
                       client=c)
        w.rcv[MX1].wait_messages(10)
        stats = w.rcv[MX1].stats()
        per = stats["per_connection"]
        check(stats["sessions"] < 10 and max(per.values()) > 1,
              f"fewer sessions than messages, several messages on one connection: {stats}")


def test_the_client_pipelines_mail_rcpt_and_data():
    with world() as w:
        submit(w.d, ["a@dest.test", "b@dest.test"])
        w.rcv[MX1].wait_messages(1)
        stats = w.rcv[MX1].stats()
        check(stats["pipelined_transactions"] > 0, f"MAIL and RCPT in one read: {stats}")


def test_three_recipients_of_one_domain_go_in_one_transaction():
    rcpts = ["a@dest.test", "b@dest.test", "c@dest.test"]
    with world() as w:
        qid = submit(w.d, rcpts)
        meta, _ = w.rcv[MX1].wait_messages(1)[0]
        expect_eq(sorted(meta["rcpt_tos"]), rcpts, "recipients of the one transaction")
        wait_queue_empty(w.d)
        expect_eq(w.rcv[MX1].count(), 1, "messages at mx1")
        expect_eq(len(result_lines(w.d, qid)), 3, "one result line per recipient")


# ---- 11. TLS ----

def test_starttls_is_used_when_the_receiver_offers_it():
    with tempfile.TemporaryDirectory(prefix="ember-cert-") as certs:
        cert = make_cert(certs)
        with world(receivers=(TLS_MX, SENDER_MX), tls={TLS_MX: cert}) as w:
            qid = submit(w.d, ["user@tls.test"])
            meta, _ = w.rcv[TLS_MX].wait_messages(1)[0]
            expect_eq(meta["tls"], True, "message received over TLS")
            check(w.rcv[TLS_MX].stats()["tls_sessions"] >= 1, "STARTTLS counted")
            result_line(w.d, qid, "delivered")


def test_required_tls_without_starttls_defers_with_4_7_and_never_sends_in_clear():
    policy = {"tls_policy": {"*": "opportunistic", "secure.test": "required"}}
    with world(receivers=(SECURE_MX, SENDER_MX), delivery=dict(NO_RETRY_SOON, **policy)) as w:
        qid = submit(w.d, ["user@secure.test"])
        line = result_line(w.d, qid, "deferred").group(0)
        r = wait_state(w.d, qid, "user@secure.test", "deferred")
        check("4.7." in r["last_reply"], f"deferred for want of TLS (4.7.x): {r} / {line}")
        expect_eq(w.rcv[SECURE_MX].count(), 0, "messages sent in clear")
        check(w.rcv[SECURE_MX].stats()["sessions"] >= 1, "the host was contacted")


# ---- 12. routes ----

def test_a_route_bypasses_dns_and_delivers_to_the_smarthost():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, [ROUTED, SENDER_MX])
        sections = delivery_sections(dns, port, {"routes": {"routed.test": f"{ROUTED}:{port}"}})
        d = stack.enter_context(Daemon(sections=sections))
        qid = submit(d, ["user@routed.test"])
        meta, _ = rcv[ROUTED].wait_messages(1)[0]
        expect_eq(meta["rcpt_tos"], ["user@routed.test"], "recipients at the smarthost")
        result_line(d, qid, "delivered")
        asked = [q for q in dns.queries() if q[1].endswith("routed.test")]
        expect_eq(asked, [], "DNS queries for the routed domain")


# ---- 14., 15. losing nothing ----

def test_a_connection_dropped_mid_data_defers_and_the_retry_delivers_once():
    with world(specs={MX1: {"drop_in_data": True}}, delivery=FAST_RETRY) as w:
        qid = submit(w.d, ["user@dest.test"])
        result_line(w.d, qid, "deferred")
        expect_eq(w.rcv[MX1].count(), 0, "messages accepted while dropping")
        w.rcv[MX1].set_spec({})
        w.rcv[MX1].wait_messages(1)
        result_line(w.d, qid, "delivered")
        wait_queue_empty(w.d)
        expect_eq(w.rcv[MX1].count(), 1, "messages delivered")


def subjects(receiver):
    out = []
    for _, raw in receiver.messages():
        for name, value in header_fields(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"):
            if name.lower() == "subject":
                out.append(value)
    return out


def test_kill9_during_delivery_loses_no_acknowledged_message():
    n, per_destination = 50, 4
    delivery = dict(FAST_RETRY, max_connections_per_destination=per_destination)
    with world(specs={MX1: {"delay_data_s": 0.2}}, delivery=delivery) as w:
        with smtplib.SMTP("127.0.0.1", w.d.port(), timeout=20) as c:
            c.ehlo("client.test")
            for i in range(n):
                submit(w.d, [f"user{i}@dest.test"], content(f"user{i}@dest.test", f"kill-{i}"),
                       client=c)
        w.rcv[MX1].wait_messages(5)
        w.d.kill9()
        at_kill = w.rcv[MX1].count()
        check(at_kill < n, f"killed mid-delivery ({at_kill} of {n} delivered)")
        w.d.start()
        want = {f"kill-{i}" for i in range(n)}
        wait_until(lambda: want <= set(subjects(w.rcv[MX1])), 60,
                   "every acknowledged message at the receiver")
        wait_queue_empty(w.d)
        got = subjects(w.rcv[MX1])
        duplicates = len(got) - len(set(got))
        check(duplicates <= per_destination,
              f"{duplicates} duplicates, more than the {per_destination} transactions in flight")


# ---- 16. admin verbs ----

def test_emberctl_queue_retry_by_id_domain_and_all_sends_deferred_mail_now():
    with world(specs={MX1: {"data": "451 4.3.0 busy"}}, delivery=NO_RETRY_SOON) as w:
        a = submit(w.d, ["a@dest.test"])
        b = submit(w.d, ["b@dest.test"])
        c = submit(w.d, ["c@other.test"])
        for qid, addr in ((a, "a@dest.test"), (b, "b@dest.test"), (c, "c@other.test")):
            wait_state(w.d, qid, addr, "deferred")
        w.rcv[MX1].set_spec({})

        def arrived():
            return sorted(r for meta, _ in w.rcv[MX1].messages() for r in meta["rcpt_tos"])

        w.d.ctl("queue", "retry", a)
        wait_until(lambda: arrived() == ["a@dest.test"], 30, "a@ after queue retry ID")
        expect_eq(recipient(w.d, b, "b@dest.test")["state"], "deferred", "b@ after retry of a")
        w.d.ctl("queue", "retry", "--domain", "dest.test")
        wait_until(lambda: arrived() == ["a@dest.test", "b@dest.test"], 30,
                   "b@ after queue retry --domain dest.test")
        expect_eq(recipient(w.d, c, "c@other.test")["state"], "deferred",
                  "c@other.test after retry of dest.test")
        w.d.ctl("queue", "retry", "--all")
        wait_until(lambda: arrived() == ["a@dest.test", "b@dest.test", "c@other.test"], 30,
                   "c@ after queue retry --all")
        wait_queue_empty(w.d)


def find_domain(listing, domain):
    rows = listing.get("domains", listing) if isinstance(listing, dict) else listing
    for row in rows:
        if isinstance(row, dict) and row.get("domain") == domain:
            return row
    raise Failure(f"{domain} not in emberctl domains: {listing}")


def test_emberctl_domains_shows_the_deferral_and_queue_bounce_returns_the_message():
    with world(specs={MX1: {"data": "451 4.3.0 mailbox busy"}}, delivery=NO_RETRY_SOON) as w:
        qid = submit(w.d, ["user@dest.test"])
        wait_state(w.d, qid, "user@dest.test", "deferred")
        row = find_domain(w.d.ctl_json("domains"), "dest.test")
        expect_eq(row.get("deferred"), 1, f"deferred count in {row}")
        expect_eq(row.get("queued"), 0, f"queued count in {row}")
        expect_eq(row.get("in_flight"), 0, f"in-flight count in {row}")
        check(any("mailbox busy" in str(v) for v in row.values()), f"last reply in {row}")
        check("dest.test" in w.d.ctl("domains").stdout, "the human-readable listing")
        w.d.ctl("queue", "bounce", qid)
        _, dsn = only_dsn(w.rcv[SENDER_MX])
        r = dsn_recipient(dsn, "user@dest.test")
        expect_eq(r.get("action"), "failed", "Action")
        check(r.get("status", "").startswith("5."), f"a permanent Status: {r}")
        wait_queue_empty(w.d)
        expect_eq(w.rcv[MX1].count(), 0, "messages at mx1")


# ---- 17. no polling ----

def test_new_mail_is_delivered_at_once_without_waiting_for_a_retry_interval():
    # With retries an hour apart, only a wake-up on commit delivers these
    # within the limit (the scheduler's longest sleep is five minutes).
    with world(delivery=NO_RETRY_SOON) as w:
        for i in range(2):
            qid = submit(w.d, [f"user{i}@dest.test"])
            w.rcv[MX1].wait_messages(i + 1, timeout=30)
            result_line(w.d, qid, "delivered", timeout=30)


# ---- 18. metrics ----

def metric_values(text, name):
    """[(labels text, value)] of every sample of `name`."""
    out = []
    for line in text.splitlines():
        m = re.match(rf"{name}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m:
            out.append((m.group(1) or "", float(m.group(2))))
    return out


def test_metrics_count_delivered_attempts_and_connections():
    with world() as w:
        qid = submit(w.d, ["user@dest.test"])
        result_line(w.d, qid, "delivered")

        def delivered():
            samples = metric_values(w.d.metrics(), "ember_delivery_attempts_total")
            return sum(v for labels, v in samples if 'result="delivered"' in labels)

        wait_until(lambda: delivered() > 0, 20, "a delivered attempt in /metrics")
        text = w.d.metrics()
        check(metric_values(text, "ember_delivery_connections_active"),
              "ember_delivery_connections_active gauge")
        sessions = metric_values(text, "ember_delivery_connections_total")
        check(sum(v for _, v in sessions) >= 1, f"sessions counted: {sessions}")


# ---- 19. shutdown ----

class Tarpit:
    """Accepts TCP connections on ip:port and never says a word (no
    greeting), like a tarpitting receiver; holds them until stopped."""

    def __init__(self, ip, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by __exit__
            self.held.append(conn)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)
        for conn in self.held:
            conn.close()
        return False


def test_sigterm_cuts_off_a_session_waiting_for_a_greeting_and_keeps_the_recipient():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        tarpit = stack.enter_context(Tarpit(MX1, port))  # other.test's only MX
        sections = delivery_sections(dns, port, {"greeting_timeout": "120s"})
        d = stack.enter_context(Daemon(sections=sections))
        qid = submit(d, ["user@other.test"])
        wait_until(lambda: tarpit.held, 20, "the daemon connected to the tarpit")
        d.mark_log()
        d.signal(signal.SIGTERM)
        # Exits long before greeting_timeout (120s): no timing beyond that.
        expect_eq(d.proc.wait(100), 0, "clean exit while a session waits for a greeting")
        d.proc = None
        log = d.log()
        check(re.search(r"delivery\.abort ", log), f"the session was cut off:\n{log[-3000:]}")
        check(not re.search(r"delivery\.result [^\n]*status=(deferred|failed)", log),
              "the cut-off attempt is neither a deferral nor a failure")
        # Restarted with delivery held, the recipient is still queued, with
        # no attempt spent, and due at once.
        d.sections["delivery"]["hold"] = True
        d.write_config()
        d.start()
        check(qid in d.queue_ids(), "the message is still queued")
        r = recipient(d, qid, "user@other.test")
        expect_eq(r["state"], "queued", f"recipient state ({r})")
        expect_eq(r["attempts"], 0, f"attempts spent by the cut-off session ({r})")
