"""The daemon as a service: --check, reload (good and bad), SIGTERM drain,
metrics, and emberctl against the live admin socket."""

import re
import signal
import smtplib
import subprocess

from harness import (EMBERD, Daemon, RawSmtp, check, expect_eq, message, queued_id, wait_until)


def submit(d, to="user@dest.example"):
    with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
        c.ehlo("client.test")
        c.mail("app@sender.example")
        c.rcpt(to)
        code, text = c.data(message(to=to))
        expect_eq(code, 250, "submission")
        return queued_id(text.decode())


def test_check_flag_accepts_a_good_config_and_reports_every_error_of_a_bad_one():
    d = Daemon()
    r = subprocess.run([EMBERD, "-c", d.config_path, "--check"], capture_output=True, text=True)
    expect_eq(r.returncode, 0, f"--check on a good config ({r.stderr})")
    d.write_config(d.config_text().replace('shutdown_grace = "10s"', 'shutdown_grace = "10 s"')
                   + "\n[smtp]\nmax_recipients = 0\nbogus = 1\n")
    r = subprocess.run([EMBERD, "-c", d.config_path, "--check"], capture_output=True, text=True)
    expect_eq(r.returncode, 78, "EX_CONFIG on errors")
    lines = [l for l in r.stderr.splitlines() if re.match(r"^\S+:\d+: ", l)]
    check(len(lines) >= 2, f"every error as file:line: message\n{r.stderr}")
    check(any("ember.toml:" in l for l in lines), r.stderr)


def test_reload_with_a_broken_config_keeps_the_old_one():
    with Daemon(smtp={"max_recipients": 5}) as d:
        good = d.config_text()
        d.write_config(good + "\n[nonsense\n")
        d.mark_log()
        r = d.ctl("reload", check_rc=False)
        expect_eq(r.returncode, 1, f"emberctl reload reports the failure ({r.stdout}{r.stderr})")
        check(re.search(r"ember\.toml:\d+: ", r.stdout + r.stderr), "file:line error shown")
        d.wait_log(r"config\.reload_failed")
        # SIGHUP takes the same path.
        d.mark_log()
        d.signal(signal.SIGHUP)
        d.wait_log(r"config\.reload_failed")
        check(d.alive(), "daemon still running")
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(250, "EHLO client.test")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            for i in range(5):
                c.expect(250, f"RCPT TO:<u{i}@dest.example>")
            c.expect(452, "RCPT TO:<u5@dest.example>")  # old limit in force
        # A good config with a new limit applies to new sessions.
        d.write_config(good.replace("max_recipients = 5", "max_recipients = 6"))
        d.mark_log()
        d.ctl("reload")
        d.wait_log(r"config\.reloaded")
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(250, "EHLO client.test")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            for i in range(6):
                c.expect(250, f"RCPT TO:<u{i}@dest.example>")


def test_sigterm_lets_a_session_in_data_finish_and_tells_idle_ones_to_leave():
    with Daemon() as d:
        idle = RawSmtp(d.port())
        idle.expect(220)
        busy = RawSmtp(d.port())
        busy.expect(220)
        busy.expect(250, "EHLO client.test")
        busy.expect(250, "MAIL FROM:<app@sender.example>")
        busy.expect(250, "RCPT TO:<user@dest.example>")
        busy.expect(354, "DATA")
        busy.send("From: <app@sender.example>\r\nSubject: in flight\r\n\r\nfirst half\r\n")
        d.signal(signal.SIGTERM)
        code, text = idle.reply()
        expect_eq(code, 421, f"idle session told to leave ({text})")
        busy.send("second half\r\n.\r\n")
        code, text = busy.reply()
        expect_eq(code, 250, f"message in DATA completes ({text})")
        queue_id = queued_id(text)
        code, text = busy.reply()
        expect_eq(code, 421, f"then the busy session is told to leave ({text})")
        expect_eq(d.proc.wait(30), 0, "clean exit")
        d.proc = None
        d.start()
        check(queue_id in d.queue_ids(), "the drained message is in the queue")


def test_metrics_count_sessions_messages_and_commit_latency():
    with Daemon() as d:
        submit(d)
        with RawSmtp(d.port()) as c:
            c.expect(220)
            c.expect(250, "EHLO client.test")
            c.expect(250, "MAIL FROM:<app@sender.example>")
            c.expect(250, "RCPT TO:<a@dest.example>")
            c.expect(354, "DATA")
            c.expect(550, "Subject: no from\r\n\r\nbody\r\n.")
        text = d.metrics()
        check(re.search(r"^ember_smtp_messages_accepted_total 1(\.0)?$", text, re.M), text)
        check(re.search(r'^ember_smtp_messages_rejected_total\{reason="headers"\} 1', text, re.M),
              "rejections by reason")
        check(re.search(r"^ember_queue_commit_seconds_count 1", text, re.M), "commit histogram")
        check(re.search(r'^ember_queue_recipients\{state="queued"\} 1', text, re.M), "queue size")
        check(re.search(r"^ember_smtp_sessions_total [2-9]", text, re.M), "sessions counted")


def test_emberctl_status_summary_list_show_and_delete():
    with Daemon() as d:
        a = submit(d, "one@alpha.example")
        b = submit(d, "two@beta.example")
        status = d.ctl_json("status")
        expect_eq(status["hostname"], "mta.test.example", "status hostname")
        expect_eq(status["queue"]["queued"], 2, "status queue counts")
        summary = d.ctl_json("queue", "summary")
        expect_eq(summary["messages"], 2, "summary messages")
        listed = d.ctl_json("queue", "list", "--domain", "beta.example")
        expect_eq([m["id"] for m in listed["messages"]], [b], "list --domain")
        table = d.ctl("queue", "summary").stdout
        check("alpha.example" in table and "beta.example" in table, f"summary table:\n{table}")
        shown = d.ctl("queue", "show", a).stdout
        check("one@alpha.example" in shown and "Subject" in shown, f"show:\n{shown}")
        d.ctl("queue", "delete", a)
        expect_eq(d.queue_ids(), [b], "after delete")
        r = d.ctl("queue", "show", a, check_rc=False)
        expect_eq(r.returncode, 1, "show of a deleted id fails")
        r = d.ctl("queue", "show", "not-an-id", check_rc=False)
        expect_eq(r.returncode, 1, "malformed id")


def test_emberctl_without_a_daemon_says_it_cannot_connect():
    d = Daemon()
    r = d.ctl("status", check_rc=False)
    expect_eq(r.returncode, 69, f"EX_UNAVAILABLE ({r.stderr})")
    check(d.socket_path in r.stderr, "names the socket")
