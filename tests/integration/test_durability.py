"""The durability contract: 250 only after the commit, nothing lost to
kill -9, nothing duplicated by a restart."""

import smtplib
import threading
import time

from harness import Daemon, check, expect_eq, message, queued_id, wait_until


def submitter(port, acked, errors, stop):
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
                c.ehlo("client.test")
                for _ in range(5):
                    c.mail("app@sender.example")
                    c.rcpt("user@dest.example")
                    code, text = c.data(message())
                    if code == 250:
                        acked.append(queued_id(text.decode()))
        except (OSError, smtplib.SMTPException) as e:
            errors.append(repr(e))
            time.sleep(0.01)


def test_kill9_during_concurrent_submissions_loses_no_acknowledged_message():
    d = Daemon()
    with d:
        acked, errors, stop = [], [], threading.Event()
        threads = [threading.Thread(target=submitter, args=(d.port(), acked, errors, stop),
                                    daemon=True) for _ in range(16)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(acked) >= 300, timeout=120,
                       what=f"300 acknowledged messages (errors: {errors[:3]})")
            d.kill9()
        finally:
            stop.set()
        for t in threads:
            t.join(30)
        snapshot = list(acked)
        d.start()
        ids = d.queue_ids()
        missing = set(snapshot) - set(ids)
        expect_eq(sorted(missing), [], "acknowledged ids missing after kill -9")
        expect_eq(len(ids), len(set(ids)), "no id twice")
        # Every recovered message loads cleanly.
        for queue_id in snapshot[:20] + snapshot[-20:]:
            shown = d.ctl_json("queue", "show", queue_id)
            expect_eq(shown["id"], queue_id, "loadable")
        check(len(ids) >= len(snapshot), "committed-but-unacknowledged messages may exist too")


def test_restart_keeps_the_queue_and_issues_fresh_ids():
    d = Daemon()
    with d:
        with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
            c.ehlo("client.test")
            c.mail("app@sender.example")
            c.rcpt("user@dest.example")
            code, text = c.data(message())
            expect_eq(code, 250, "first message")
            first = queued_id(text.decode())
        expect_eq(d.stop(), 0, "clean exit on SIGTERM")
        d.start()
        with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
            c.ehlo("client.test")
            c.mail("app@sender.example")
            c.rcpt("user@dest.example")
            code, text = c.data(message())
            second = queued_id(text.decode())
        expect_eq(sorted(d.queue_ids()), sorted([first, second]), "both messages after restart")
        check(second > first, f"ids grow across restarts: {first} then {second}")
