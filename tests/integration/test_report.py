"""Campaign reports end to end (issue 8): the real emberd delivers a message
with X-Ember-Campaign through a test DNS server to a scriptable receiver
(aiosmtpd, delivery_peers.py) that refuses one recipient with 550 5.1.1;
`emberctl report` must then show the campaign's deliveries and the hard
bounce by reason, as JSON and as the table for people, and the counters
must survive a restart (they are saved at stop). Observed from outside
only: emberctl and the receiver's files.

Every test starts its own DNS server, receivers and daemon and stops them
(ExitStack), also when it fails; waits poll with a limit.
"""

import contextlib
import smtplib
import uuid

from delivery_peers import MX1, SENDER, SENDER_MX, DnsServer, delivery_sections, start_receivers
from harness import Daemon, check, expect_eq, free_port, wait_until

CAMPAIGN = "spring-sale"
GONE = "gone@dest.test"
SPEC = {MX1: {"rcpt": {GONE: "550 5.1.1 <gone@dest.test>: no such user"}}}


@contextlib.contextmanager
def world():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, [MX1, SENDER_MX], SPEC)
        sections = delivery_sections(dns, port, {"retry_first": "1h", "retry_max": "4h"})
        d = stack.enter_context(Daemon(sections=sections))
        try:
            yield d, rcv
        except BaseException:
            for ip, r in rcv.items():
                print(f"---- receiver {ip}: {r.stats()}")
            print(f"---- report: {d.ctl('--json', 'report', check_rc=False).stdout}")
            raise


def submit(d, rcpts):
    text = (f"From: News <{SENDER}>\r\nTo: <{rcpts[0]}>\r\nSubject: spring\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@sender.test>\r\n"
            f"X-Ember-Campaign: {CAMPAIGN}\r\nX-Ember-Tags: news, spring\r\n\r\nHello.\r\n")
    with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
        c.ehlo("client.test")
        code, reply = c.mail(SENDER)
        expect_eq(code, 250, f"MAIL FROM ({reply!r})")
        for r in rcpts:
            code, reply = c.rcpt(r)
            expect_eq(code, 250, f"RCPT TO:<{r}> ({reply!r})")
        code, reply = c.data(text)
        expect_eq(code, 250, f"end of data ({reply!r})")


def campaign_report(d):
    doc = d.ctl_json("report", "--campaign", CAMPAIGN)
    campaigns = doc["campaigns"]
    return campaigns[0] if campaigns else None


def wait_settled(d):
    """The report once both deliveries and the bounce are counted."""
    def settled():
        c = campaign_report(d)
        return c if c and c["delivered"] == 2 and c["bounced"] == 1 else None
    return wait_until(settled, 30, "2 delivered and 1 bounced in the report")


def test_report_shows_deliveries_and_bounce_reason():
    with world() as (d, rcv):
        submit(d, ["a@dest.test", "b@dest.test", GONE])
        c = wait_settled(d)
        expect_eq(c["campaign"], CAMPAIGN, "campaign")
        expect_eq(c["hard_bounces"], 1, "hard bounces")
        expect_eq(c["bounce_reasons"], {"userunknown": 1}, "bounce reasons")
        check(abs(c["rates"]["bounce"] - 1 / 3) < 1e-9, f"bounce rate {c['rates']}")
        expect_eq(c["rates"]["open"], 0.0, "open rate (no opens yet)")
        check("variants" not in c, "no A/B variants")
        # The campaign fields are ember's, not the recipient's.
        for _, raw in rcv[MX1].wait_messages(1):
            check(b"X-Ember-Campaign" not in raw, "X-Ember-Campaign stripped")

        text = d.ctl("report", "--since", "1d").stdout
        check(f"campaign {CAMPAIGN}\n" in text, f"the campaign's block:\n{text}")
        check("delivered:    2\n" in text, f"delivered line:\n{text}")
        check("bounced:      1 (33.33 %): userunknown 1; 1 hard, 0 soft\n" in text,
              f"bounced line:\n{text}")

        empty = d.ctl("report", "--campaign", "other").stdout
        expect_eq(empty, "no campaign events\n", "another campaign")
        bad = d.ctl("report", "--since", "soon", check_rc=False)
        expect_eq(bad.returncode, 2, f"a bad --since is a usage error ({bad.stderr})")


def test_report_counters_survive_a_restart():
    with world() as (d, _):
        submit(d, ["a@dest.test", "b@dest.test", GONE])
        wait_settled(d)
        expect_eq(d.stop(), 0, "clean exit on SIGTERM")
        d.start()
        c = campaign_report(d)
        check(c is not None, "the campaign is still reported after the restart")
        expect_eq((c["delivered"], c["bounced"]), (2, 1), "counts after the restart")
        expect_eq(c["bounce_reasons"], {"userunknown": 1}, "bounce reasons after the restart")
