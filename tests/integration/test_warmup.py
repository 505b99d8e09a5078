"""Warm-up end to end (issue 5): the real emberd with a warmup.toml delivers
to a real receiving MTA (tests/support/smtp_receiver.py) found through a
real DNS server; the ramp's cap, the response rules' backoff, persistence
and reload are observed from outside only: the receiver's files, emberctl,
/metrics and the log.

The world is delivery_peers.py's (dest.test -> mx1.dest.test, 127.0.0.2;
DSNs to sender.test). The warm-up clock is moved with `emberctl warmup
advance`, which the daemon allows only with [warmup] allow_clock_advance.
Every test starts and stops its own peers and daemon; waits poll.
"""

import contextlib
import datetime
import os
import re
import shutil
import tempfile

from delivery_peers import MX1, SENDER_MX, DnsServer, delivery_sections, start_receivers
from harness import Daemon, check, expect_eq, free_port, wait_until
from test_delivery import content, result_line, submit

NO_RETRY_SOON = {"retry_first": "1h", "retry_max": "4h"}
RATE_LIMITED = ("421 4.7.28 Our system has detected an unusual rate of unsolicited mail "
                "originating from your IP address. To protect our users from spam, mail sent "
                "from your IP address has been temporarily rate limited.")


def warmup_toml(cap=3, caps=None):
    """sender.test ramps from today at `cap` a day (or the daily `caps`);
    dest.test is its own provider; a 421 4.7.28 backs the rate off (Gmail's
    rate-limit reply)."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return f"""
[schedule.tiny]
caps = {caps or [cap]}
after = "steady"

[[sender]]
domain = "sender.test"
schedule = "tiny"
start = {today}

[[provider]]
name = "dest"
domains = ["dest.test"]

[[provider]]
name = "other"

[[rule]]
code = "421"
enhanced = "4\\\\.7\\\\.28"
action = "backoff"
factor = 0.5
duration = "1h"
"""


class World:
    def __init__(self, daemon, receivers, warmup_path):
        self.d = daemon
        self.rcv = receivers
        self.warmup_path = warmup_path


@contextlib.contextmanager
def world(specs=None, allow_clock_advance=True, cap=3):
    with contextlib.ExitStack() as stack:
        scratch = tempfile.mkdtemp(prefix="ember-warmup-")
        stack.callback(shutil.rmtree, scratch, True)
        path = os.path.join(scratch, "warmup.toml")
        with open(path, "w") as f:
            f.write(warmup_toml(cap))
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, (MX1, SENDER_MX), specs)
        sections = delivery_sections(dns, port, NO_RETRY_SOON)
        sections["warmup"] = {"file": path, "save_interval": "1s",
                              "allow_clock_advance": allow_clock_advance}
        d = stack.enter_context(Daemon(sections=sections))
        try:
            yield World(d, rcv, path)
        except BaseException:
            for ip, r in rcv.items():
                print(f"---- receiver {ip}: {r.stats()}")
            raise


def dest_row(d):
    """sender.test/dest in `emberctl warmup status --json`."""
    status = d.ctl_json("warmup", "status", "sender.test")
    for row in status["keys"]:
        if row["sending_domain"] == "sender.test" and row["provider"] == "dest":
            return row
    raise AssertionError(f"no sender.test/dest key in {status}")


def metric(d, name, labels=""):
    """The value of one series in /metrics, or None."""
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", d.metrics(), re.M)
    return float(m.group(1)) if m else None


def recipient_of(d, qid):
    shown = d.ctl_json("queue", "show", qid)
    expect_eq(len(shown["recipients"]), 1, f"recipients of {qid}")
    return shown["recipients"][0]


def submit_each(d, count, first=0):
    return [submit(d, [f"user{i}@dest.test"], content(f"user{i}@dest.test", f"n{i}"))
            for i in range(first, first + count)]


def test_a_421_4_7_28_rate_limit_reply_backs_the_domain_off_visibly():
    with world(specs={MX1: {"rcpt": {"*": RATE_LIMITED}}}) as w:
        qid = submit(w.d, ["user@dest.test"])
        result_line(w.d, qid, "deferred")
        w.d.wait_log(r"warmup\.backoff_started key=sender\.test/dest\b")
        row = dest_row(w.d)
        check(row["rate_factor"] < 1.0, f"rate cut by the rule: {row}")
        check(row["backoff_until"] is not None, f"backoff has an end: {row}")
        check(row["state"].startswith("backoff"), f"state names the backoff: {row}")
        text = w.d.ctl("warmup", "status").stdout
        check(re.search(r"sender\.test\s+dest\s.*backoff", text), f"status table:\n{text}")
        labels = '{domain="sender.test",provider="dest",source=""}'
        expect_eq(metric(w.d, "ember_warmup_backoff", labels), 1.0, "backoff gauge")
        expect_eq(metric(w.d, "ember_warmup_events_total", '{type="backoff_started"}'), 1.0,
                  "backoff_started events")
        check(metric(w.d, "ember_warmup_rate_factor", labels) < 1.0, "rate factor gauge")
        # The deferral is an ordinary attempt: retried by the queue, not failed.
        r = recipient_of(w.d, qid)
        expect_eq(r["state"], "deferred", "state of the rate-limited recipient")


def test_mail_over_the_daily_cap_stays_queued_untouched_and_goes_out_the_next_day():
    with world() as w:
        qids = submit_each(w.d, 5)
        w.rcv[MX1].wait_messages(3)
        wait_until(lambda: (metric(w.d, "ember_warmup_throttled_total", '{reason="cap"}') or 0)
                   >= 2, 30, "two recipients held by the cap")
        expect_eq(w.rcv[MX1].count(), 3, "messages sent on day 1")
        row = dest_row(w.d)
        expect_eq((row["sent_today"], row["cap"], row["ramp_day"]), (3, 3, 1), "day 1 counters")
        held = [q for q in qids if q in w.d.queue_ids()]
        expect_eq(len(held), 2, "messages still queued")
        for qid in held:
            r = recipient_of(w.d, qid)
            expect_eq((r["state"], r["attempts"]), ("queued", 0),
                      f"{qid} waits untouched (not failed, no attempt spent)")
            check(r["next_attempt"] is not None, f"{qid} has a next attempt: {r}")
        expect_eq(w.rcv[SENDER_MX].count(), 0, "DSNs for held mail")

        advanced = w.d.ctl_json("warmup", "advance", "1")
        check(advanced["rescheduled"] >= 2, f"held mail rescheduled: {advanced}")
        w.rcv[MX1].wait_messages(5)
        wait_until(lambda: not any(q in w.d.queue_ids() for q in held), 30, "held mail sent")
        row = dest_row(w.d)
        expect_eq((row["sent_today"], row["ramp_day"]), (2, 2), "day 2 counters")
        for qid in held:
            check(re.search(r"attempts=1\b", result_line(w.d, qid, "delivered").group(0)),
                  f"{qid} delivered on its first attempt")


def test_the_warm_up_clock_cannot_be_moved_unless_the_config_allows_it():
    with world(allow_clock_advance=False) as w:
        r = w.d.ctl("warmup", "advance", "1", check_rc=False)
        expect_eq(r.returncode, 1, "exit status of a refused advance")
        check("allow_clock_advance" in r.stderr, f"the refusal names the key: {r.stderr}")
        expect_eq(w.d.ctl_json("warmup", "status")["clock_offset_s"], 0, "clock offset")


def test_warm_up_counters_survive_a_restart():
    with world() as w:
        submit_each(w.d, 3)
        w.rcv[MX1].wait_messages(3)
        wait_until(lambda: dest_row(w.d)["sent_today"] == 3, 30, "three sent")
        w.d.stop()  # SIGTERM: the state is saved at shutdown
        w.d.start()
        expect_eq(dest_row(w.d)["sent_today"], 3, "sent today after the restart")
        qid = submit_each(w.d, 1, first=3)[0]
        wait_until(lambda: (metric(w.d, "ember_warmup_throttled_total", '{reason="cap"}') or 0)
                   >= 1, 30, "the fourth held by the restored cap")
        expect_eq(recipient_of(w.d, qid)["state"], "queued", "the fourth waits")
        expect_eq(w.rcv[MX1].count(), 3, "messages sent")


def test_a_bad_warmup_toml_on_reload_is_refused_with_its_line_and_the_old_one_stays():
    with world() as w:
        submit_each(w.d, 2)
        w.rcv[MX1].wait_messages(2)
        wait_until(lambda: dest_row(w.d)["sent_today"] == 2, 30, "two sent")
        with open(w.warmup_path, "a") as f:
            f.write("\n[[provider]]\nname = \"Bad Name\"\n")
        r = w.d.ctl("reload", check_rc=False)
        expect_eq(r.returncode, 1, "exit status of a refused reload")
        check(re.search(re.escape(w.warmup_path) + r":\d+: ", r.stderr),
              f"the error names the file and line: {r.stderr}")
        expect_eq(dest_row(w.d)["cap"], 3, "the old cap stays")
        # A good file applies the new cap and keeps today's count.
        with open(w.warmup_path, "w") as f:
            f.write(warmup_toml(cap=10))
        w.d.ctl("reload")
        row = dest_row(w.d)
        expect_eq((row["cap"], row["sent_today"]), (10, 2), "new cap, same count")


def test_mail_held_by_a_pause_goes_out_promptly_after_resume():
    # A paused domain's recipients wait with next_attempt = now + 5 min (the
    # engine's recheck); resume releases them at once, so the receiver has
    # the message well inside that recheck (wait_messages' 30 s bound).
    with world() as w:
        w.d.ctl("warmup", "pause", "sender.test")
        qid = submit_each(w.d, 1)[0]
        wait_until(lambda: (metric(w.d, "ember_warmup_throttled_total", '{reason="paused"}') or 0)
                   >= 1, 30, "the recipient held by the pause")
        r = recipient_of(w.d, qid)
        expect_eq((r["state"], r["attempts"]), ("queued", 0), "held untouched")
        expect_eq(w.rcv[MX1].count(), 0, "messages sent while paused")
        resumed = w.d.ctl_json("warmup", "resume", "sender.test")
        check(resumed["released"] >= 1, f"held mail released: {resumed}")
        w.rcv[MX1].wait_messages(1)
        wait_until(lambda: qid not in w.d.queue_ids(), 30, "the held message sent")
        check(re.search(r"attempts=1\b", result_line(w.d, qid, "delivered").group(0)),
              f"{qid} delivered on its first attempt")


def test_mail_held_by_the_cap_goes_out_promptly_after_set_day_raises_it():
    with world() as w:
        with open(w.warmup_path, "w") as f:
            f.write(warmup_toml(caps=[1, 5]))
        w.d.ctl("reload")
        qids = submit_each(w.d, 2)
        w.rcv[MX1].wait_messages(1)
        wait_until(lambda: (metric(w.d, "ember_warmup_throttled_total", '{reason="cap"}') or 0)
                   >= 1, 30, "the second held by day 1's cap")
        expect_eq(w.rcv[MX1].count(), 1, "messages sent on day 1")
        changed = w.d.ctl_json("warmup", "set-day", "sender.test", "2")
        check(changed["released"] >= 1, f"held mail released: {changed}")
        w.rcv[MX1].wait_messages(2)
        wait_until(lambda: not any(q in w.d.queue_ids() for q in qids), 30, "both sent")
