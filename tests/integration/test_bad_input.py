"""Bad input gets a clear reply and loses nothing: each scenario sends
something malformed or hostile to the real daemon, checks the exact reply,
and checks the queue holds exactly what was acknowledged."""

import base64
import os
import random
import socket

from harness import (PASSWORD, Daemon, RawSmtp, check, expect_eq, message, queued_id,
                     wait_until)


def session(d, name="main"):
    c = RawSmtp(d.port(name))
    c.expect(220)
    c.expect(250, "EHLO client.test")
    return c


def queued(d):
    return d.ctl_json("queue", "summary")["messages"]


def test_command_line_over_the_limit_gets_500_and_the_session_goes_on():
    with Daemon() as d:
        with session(d) as c:
            c.expect(500, "NOOP " + "x" * 5000, contains="5.5.2")
            c.expect(250, "NOOP")
            c.expect(250, "MAIL FROM:<app@sender.example>")


def test_data_line_over_998_octets_is_refused_with_500_line_too_long():
    with Daemon() as d:
        with session(d) as c:
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            c.expect(354, "DATA")
            c.expect(500, message(body="y" * 1200 + "\r\n") + ".", contains="5.5.2")
            # The session is usable afterwards.
            c.expect(250, "MAIL FROM:<app@sender.example>")
        expect_eq(queued(d), 0, "nothing queued")


def test_bare_lf_smuggling_attempt_does_not_end_data_and_is_refused():
    with Daemon() as d:
        with session(d) as c:
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            c.expect(354, "DATA")
            # A smuggled second message behind "<LF>.<LF>" and "<CR><LF>.<LF>":
            # neither may end the data; only the final <CR><LF>.<CR><LF> does.
            smuggled = (message() + "\n.\nMAIL FROM:<evil@spoof.example>\nRCPT TO:<x@dest.example>\n"
                        "DATA\nFrom: ceo@bank.example\n\nsend money\n.\r\n.\n")
            c.send(smuggled + "\r\n.\r\n")
            text = c.expect(550, contains="5.5.2")
            check("bare" in text, f"reply names the problem: {text}")
            c.expect(250, "NOOP")
        expect_eq(queued(d), 0, "no message queued, smuggled or not")
        check("evil@spoof.example" not in d.log(), "smuggled MAIL never ran")


def test_bare_newlines_are_normalized_when_configured():
    with Daemon(smtp={"bare_newlines": "normalize"}) as d:
        with session(d) as c:
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            c.expect(354, "DATA")
            c.send("From: <a@sender.example>\nSubject: lf\n\nline one\n.\nstill data\r\n.\r\n")
            queue_id = queued_id(c.expect(250))
        shown = d.ctl_json("queue", "show", queue_id)
        names = [h["name"] for h in shown["headers"]]
        check("Subject" in names, f"normalized headers parsed: {names}")


def test_oversize_message_is_refused_at_mail_and_at_end_of_data():
    with Daemon(smtp={"max_message_size": "64k"}) as d:
        with session(d) as c:
            c.expect(552, "MAIL FROM:<app@sender.example> SIZE=100000", contains="5.3.4")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            c.expect(354, "DATA")
            body = ("z" * 76 + "\r\n") * 1200  # ~94 KB
            c.expect(552, message(body=body) + ".", contains="5.3.4")
            c.expect(250, "NOOP")
        expect_eq(queued(d), 0, "nothing queued")


def test_too_many_recipients_get_452_and_the_rest_is_delivered_later():
    with Daemon(smtp={"max_recipients": 3}) as d:
        with session(d) as c:
            c.expect(250, "MAIL FROM:<app@sender.example>")
            for i in range(3):
                c.expect(250, f"RCPT TO:<u{i}@dest.example>")
            c.expect(452, "RCPT TO:<u3@dest.example>", contains="4.5.3")
            c.expect(354, "DATA")
            queue_id = queued_id(c.expect(250, message() + "."))
        expect_eq(len(d.ctl_json("queue", "show", queue_id)["recipients"]), 3, "recipients kept")


def test_wrong_auth_gets_535_then_454_once_over_the_failure_limit():
    listeners = [{"name": "main", "mode": "submission", "tls": "none", "auth": "required",
                  "auth_without_tls": True}]
    with Daemon(listeners=listeners, trusted=[], smtp={"auth_max_failures": 3}) as d:
        bad = base64.b64encode(b"\0alice\0wrong").decode()
        good = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        for _ in range(3):
            with session(d) as c:
                c.expect(535, "AUTH PLAIN " + bad, contains="5.7.8")
        with session(d) as c:
            c.expect(454, "AUTH PLAIN " + good, contains="4.7.0")
        check("secret" not in d.log() and PASSWORD not in d.log(), "passwords never logged")


def test_garbage_bytes_get_errors_then_421_and_the_daemon_lives_on():
    with Daemon(smtp={"max_errors": 5}) as d:
        rng = random.Random(1234)
        with RawSmtp(d.port()) as c:
            c.expect(220)
            for _ in range(4):
                junk = bytes(rng.randrange(0, 256) for _ in range(200)).replace(b"\n", b"")
                c.send(junk + b"\r\n")
                code, _ = c.reply()
                check(code in (500, 501), f"garbage answered with {code}")
            c.send(b"\x00\xff\xfe\r\n")
            code, text = c.reply()
            check(code == 500, f"NUL/garbage: {code} {text}")
            code, text = c.reply()
            expect_eq(code, 421, f"too many errors ({text})")
            check(c.closed_by_server(), "server closed the connection")
        # HTTP proxy abuse is dropped at once.
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(421, "POST / HTTP/1.1")
            check(c.closed_by_server(), "server closed the HTTP-like session")
        with session(d) as c:
            c.expect(250, "NOOP")


def test_client_dropping_the_connection_mid_data_leaves_nothing_queued():
    with Daemon() as d:
        c = session(d)
        c.expect(250, "MAIL FROM:<app@sender.example>")
        c.expect(250, "RCPT TO:<a@dest.example>")
        c.expect(354, "DATA")
        c.send("From: <a@sender.example>\r\nSubject: cut\r\n\r\nhalf a mess")
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
        d.wait_log(r"smtp\.lost_in_data")
        expect_eq(queued(d), 0, "nothing queued")
        with session(d) as c2:
            c2.expect(250, "MAIL FROM:<app@sender.example>")


def test_commands_out_of_sequence_get_503():
    with Daemon() as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(503, "MAIL FROM:<app@sender.example>")
            c.expect(250, "EHLO client.test")
            c.expect(503, "RCPT TO:<a@dest.example>")
            c.expect(503, "DATA")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(503, "MAIL FROM:<app@sender.example>")
            c.expect(554, "DATA")
            c.expect(501, "RCPT TO:a@dest.example")
            c.expect(250, "RSET")
            c.expect(501, "MAIL")
            c.expect(501, "MAIL TO:<a@dest.example>")


def test_connections_over_the_per_ip_limit_get_421():
    with Daemon(smtp={"max_connections_per_ip": 2}) as d:
        first = session(d)
        second = session(d)
        with RawSmtp(d.port()) as third:
            code, text = third.reply()
            expect_eq(code, 421, f"third connection ({text})")
            check("4.7.0" in text, text)
        first.close()
        second.close()
        wait_until(lambda: _connect_ok(d), what="a slot frees up after clients leave")


def _connect_ok(d):
    with RawSmtp(d.port()) as c:
        code, _ = c.reply()
        return code == 220


def test_idle_client_is_dropped_with_421_after_the_command_timeout():
    with Daemon(smtp={"command_timeout": "1s"}) as d:
        with RawSmtp(d.port()) as c:
            c.expect(220)
            code, text = c.reply()  # blocks until the server gives up on us
            expect_eq(code, 421, f"timeout reply ({text})")
            check("4.4.2" in text, text)


def test_storage_full_gets_452_and_acknowledged_mail_stays():
    with Daemon(queue={"map_size": "1M"}) as d:
        acked = []
        refused = 0
        body = os.urandom(150_000).hex()  # 300 KB of text
        lines = "\r\n".join(body[i:i + 76] for i in range(0, len(body), 76)) + "\r\n"
        for _ in range(6):
            with session(d) as c:
                c.expect(250, "MAIL FROM:<app@sender.example>")
                c.expect(250, "RCPT TO:<a@dest.example>")
                c.expect(354, "DATA")
                code, text = c.cmd(message(body=lines) + ".")
                if code == 250:
                    acked.append(queued_id(text))
                else:
                    expect_eq(code, 452, f"full map ({text})")
                    check("4.3.1" in text, text)
                    refused += 1
        check(refused > 0, "the 1M map filled up")
        check(len(acked) > 0, "something fit before it filled")
        expect_eq(sorted(d.queue_ids()), sorted(acked), "acknowledged messages are all there")
        check(d.alive(), "daemon survived a full map")
