"""Send-time optimisation at submission (issue 7): X-Ember-Send-Within is
stripped before the message is stored, and each recipient's first attempt
is the hour in the window when that contact most often opened (from
`emberctl contacts event` history); a contact without history goes now.
Delivery is held ([delivery] hold), so the queue shows what was planned.
"""

import datetime
import smtplib

from harness import Daemon, check, expect_eq, queued_id

SENDER = "app@sender.example"
READER = "reader@dest.example"
NEWBIE = "newbie@dest.example"


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def submit(d, within):
    content = (f"From: App <{SENDER}>\r\nTo: <{READER}>\r\nSubject: weekly\r\n"
               f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\nMessage-ID: <sto@sender.example>\r\n"
               f"X-Ember-Send-Within: {within}\r\n\r\nHi.\r\n")
    with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
        c.ehlo("client.example")
        c.mail(SENDER)
        for r in (READER, NEWBIE):
            code, reply = c.rcpt(r)
            expect_eq(code, 250, f"RCPT TO:<{r}> ({reply!r})")
        code, reply = c.data(content)
        expect_eq(code, 250, f"end of data ({reply!r})")
        return queued_id(reply.decode())


def test_contact_with_opens_an_hour_ahead_is_scheduled_then_and_no_history_goes_now():
    with Daemon() as d:
        now = datetime.datetime.now(datetime.timezone.utc)
        slot = (now + datetime.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        for week in range(1, 7):  # six opens at that hour of the week, in past weeks
            at = slot + datetime.timedelta(minutes=10) - datetime.timedelta(weeks=week)
            d.ctl("contacts", "event", READER, "open", "--at", rfc3339(at),
                  "--domain", "sender.example")
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        qid = submit(d, "24h")
        shown = d.ctl_json("queue", "show", qid)
        got = {r["address"]: r["next_attempt"] for r in shown["recipients"]}
        expect_eq(got[READER], rfc3339(slot), "the reader's first attempt")
        newbie_at = parse(got[NEWBIE])
        check(before - datetime.timedelta(seconds=1) <= newbie_at
              <= before + datetime.timedelta(minutes=1),
              f"the newbie goes now ({got[NEWBIE]}, submitted {rfc3339(before)})")
        names = [h["name"].lower() for h in shown["headers"]]
        check("x-ember-send-within" not in names, f"X-Ember-Send-Within stripped: {names}")
        d.wait_log(r"sto\.scheduled .*rcpt=\"?reader@dest\.example.* source=contact")
        d.wait_log(r"sto\.scheduled .*rcpt=\"?newbie@dest\.example.* source=now")
