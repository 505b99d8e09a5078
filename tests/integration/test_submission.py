"""Submission end to end: real clients (smtplib, swaks) against the real
daemon, with TLS and AUTH, and what ends up in the queue."""

import base64
import concurrent.futures
import smtplib
import ssl

from harness import (PASSWORD, Daemon, Failure, RawSmtp, check, expect_eq, message, queued_id,
                     swaks)

STARTTLS_AUTH = [{"name": "main", "mode": "submission", "tls": "starttls", "auth": "required"}]
IMPLICIT_AUTH = [{"name": "main", "mode": "submission", "tls": "implicit", "auth": "required"}]


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def show(d, queue_id):
    return d.ctl_json("queue", "show", queue_id)


def header_text(shown):
    return "\n".join(f"{h['name']}: {h['value']}" for h in shown["headers"])


def test_smtplib_message_from_trusted_network_is_queued_with_its_recipients():
    with Daemon() as d:
        with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
            c.ehlo("client.test")
            refused = c.sendmail("app@sender.example", ["a@one.example", "b@two.example"],
                                 message(to="a@one.example"))
            expect_eq(refused, {}, "refused recipients")
        line = d.wait_log(r"smtp\.accepted id=([0-9A-Z]{13})")
        queue_id = line.group(1)
        shown = show(d, queue_id)
        expect_eq(shown["envelope"]["mail_from"], "app@sender.example", "envelope sender")
        expect_eq(sorted(r["address"] for r in shown["recipients"]),
                  ["a@one.example", "b@two.example"], "recipients")
        check(all(r["state"] == "queued" for r in shown["recipients"]), "recipients queued")
        headers = header_text(shown)
        check("Received: from client.test ([127.0.0.1])" in headers, f"Received: in {headers}")
        check(f"with ESMTP id {queue_id}" in headers, "queue id in Received:")
        check("Message-ID: <" in headers and "Date: " in headers, "Message-ID and Date added")


def test_swaks_starttls_auth_plain_is_accepted_and_traced():
    with Daemon(listeners=STARTTLS_AUTH, trusted=[]) as d:
        r = swaks("--server", f"127.0.0.1:{d.port()}", "--tls", "--auth", "PLAIN",
                  "--auth-user", "alice", "--auth-password", PASSWORD,
                  "--from", "app@sender.example", "--to", "user@dest.example")
        check(r.returncode == 0, f"swaks failed ({r.returncode}): {r.stdout}{r.stderr}")
        queue_id = queued_id(r.stdout + r.stderr)
        headers = header_text(show(d, queue_id))
        check("(using TLSv1." in headers, f"TLS version in Received:\n{headers}")
        check("(Authenticated sender: alice)" in headers, "AUTH user in Received:")
        check("with ESMTPSA id" in headers, "ESMTPSA protocol keyword")


def test_swaks_starttls_auth_login_is_accepted():
    with Daemon(listeners=STARTTLS_AUTH, trusted=[]) as d:
        r = swaks("--server", f"127.0.0.1:{d.port()}", "--tls", "--auth", "LOGIN",
                  "--auth-user", "alice", "--auth-password", PASSWORD,
                  "--from", "app@sender.example", "--to", "user@dest.example")
        check(r.returncode == 0, f"swaks failed ({r.returncode}): {r.stdout}{r.stderr}")
        queued_id(r.stdout + r.stderr)


def test_implicit_tls_listener_accepts_authenticated_submission():
    with Daemon(listeners=IMPLICIT_AUTH, trusted=[]) as d:
        r = swaks("--server", f"127.0.0.1:{d.port()}", "--tlsc", "--auth", "PLAIN",
                  "--auth-user", "alice", "--auth-password", PASSWORD,
                  "--from", "app@sender.example", "--to", "user@dest.example")
        check(r.returncode == 0, f"swaks failed ({r.returncode}): {r.stdout}{r.stderr}")
        queued_id(r.stdout + r.stderr)


def test_auth_is_offered_only_after_starttls():
    with Daemon(listeners=STARTTLS_AUTH, trusted=[]) as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            ehlo = c.expect(250, "EHLO client.test")
            check("STARTTLS" in ehlo and "AUTH" not in ehlo, f"plaintext EHLO: {ehlo}")
            c.expect(538, "AUTH PLAIN " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
            c.expect(530, "MAIL FROM:<app@sender.example>")
            c.expect(220, "STARTTLS")
            c.starttls()
            ehlo = c.expect(250, "EHLO client.test")
            check("AUTH PLAIN LOGIN" in ehlo and "STARTTLS" not in ehlo, f"TLS EHLO: {ehlo}")


def test_smtplib_pipelined_transaction_gets_every_reply_in_order():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            ehlo = c.expect(250, "EHLO client.test")
            check("PIPELINING" in ehlo, "PIPELINING advertised")
            c.send("MAIL FROM:<app@sender.example>\r\nRCPT TO:<a@dest.example>\r\n"
                   "RCPT TO:<b@dest.example>\r\nDATA\r\n")
            for want in (250, 250, 250, 354):
                code, text = c.reply()
                expect_eq(code, want, f"pipelined reply ({text})")
            c.send(message() + ".\r\nMAIL FROM:<app@sender.example>\r\nRCPT TO:<c@dest.example>\r\n"
                   "DATA\r\n")
            code, text = c.reply()
            expect_eq(code, 250, f"end of data ({text})")
            queued_id(text)
            for want in (250, 250, 354):
                code, text = c.reply()
                expect_eq(code, want, f"second transaction ({text})")
            c.send(message() + ".\r\nQUIT\r\n")
            queued_id(c.expect(250))
            c.expect(221)
        # smtplib pipelines nothing by itself, but must interoperate as well.
        with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as s:
            expect_eq(s.sendmail("app@sender.example", ["x@dest.example"], message()), {}, "smtplib")


def test_two_hundred_concurrent_sessions_are_all_queued():
    with Daemon(smtp={"max_connections_per_ip": 300, "max_connections": 400}) as d:
        def submit(i):
            with smtplib.SMTP("127.0.0.1", d.port(), timeout=60) as c:
                c.sendmail("app@sender.example", [f"user{i}@dest.example"],
                           message(subject=f"n{i}"))
            return i

        with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
            done = list(pool.map(submit, range(200)))
        expect_eq(len(done), 200, "sessions completed")
        summary = d.ctl_json("queue", "summary")
        expect_eq(summary["messages"], 200, "messages in queue")


def test_dsn_parameters_are_stored_per_recipient():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            ehlo = c.expect(250, "EHLO client.test")
            check("DSN" in ehlo, "DSN advertised")
            c.expect(250, "MAIL FROM:<app@sender.example> RET=HDRS ENVID=batch+2B42")
            c.expect(250, "RCPT TO:<a@dest.example> NOTIFY=SUCCESS,FAILURE "
                          "ORCPT=rfc822;a+40dest.example")
            c.expect(250, "RCPT TO:<b@dest.example> NOTIFY=NEVER")
            c.expect(354, "DATA")
            queue_id = queued_id(c.expect(250, message() + "."))
        shown = show(d, queue_id)
        expect_eq(shown["envelope"]["ret"], "hdrs", "RET")
        expect_eq(shown["envelope"]["envid"], "batch+42", "ENVID (xtext decoded)")
        by_addr = {r["address"]: r for r in shown["recipients"]}
        expect_eq(sorted(by_addr["a@dest.example"]["notify"]), ["failure", "success"], "NOTIFY a")
        expect_eq(by_addr["a@dest.example"]["orcpt"], "rfc822;a@dest.example", "ORCPT a")
        expect_eq(by_addr["b@dest.example"]["notify"], ["never"], "NOTIFY b")


def test_bdat_chunks_make_one_message():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            check("CHUNKING" in c.expect(250, "EHLO client.test"), "CHUNKING advertised")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            body = message(body="first part\r\n").encode()
            half = len(body) // 2
            c.send(f"BDAT {half}\r\n".encode() + body[:half])
            c.expect(250, contains=f"{half} octets")
            rest = body[half:]
            c.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)
            queue_id = queued_id(c.expect(250))
        shown = show(d, queue_id)
        check("Subject: hello" in header_text(shown), "headers of the chunked message")


def test_smtputf8_addresses_need_the_smtputf8_parameter():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            check("SMTPUTF8" in c.expect(250, "EHLO client.test"), "SMTPUTF8 advertised")
            c.expect(553, "MAIL FROM:<josé@sender.example>")
            c.expect(250, "MAIL FROM:<josé@sender.example> SMTPUTF8")
            c.expect(250, "RCPT TO:<usuário@exemplo.example>")
            c.expect(354, "DATA")
            queue_id = queued_id(c.expect(250, message(sender="josé@sender.example") + "."))
        shown = show(d, queue_id)
        expect_eq(shown["envelope"]["smtputf8"], True, "SMTPUTF8 stored")
        check("with UTF8SMTP id" in header_text(shown), "UTF8SMTP protocol keyword")


def test_missing_or_duplicate_from_header_is_refused():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(250, "EHLO client.test")
            for content in ("To: <a@dest.example>\r\nSubject: x\r\n\r\nbody\r\n",
                            "From: <a@x.example>\r\nFrom: <b@x.example>\r\n\r\nbody\r\n",
                            "From: not an address\r\n\r\nbody\r\n"):
                c.expect(250, "MAIL FROM:<app@sender.example>")
                c.expect(250, "RCPT TO:<a@dest.example>")
                c.expect(354, "DATA")
                c.expect(550, content + ".", contains="5.6.0")
        expect_eq(d.ctl_json("queue", "summary")["messages"], 0, "nothing queued")
