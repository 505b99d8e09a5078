"""Personalization checks at submission (issue 7): a malformed template or a
bad X-Ember-Vars / X-Ember-Send-Within field is refused in the client's own
SMTP transaction with 550 5.6.0 naming the problem (line and column for
templates), and nothing is queued; a valid template is accepted.
"""

import smtplib

from harness import Daemon, check, expect_eq, queued_id

SENDER = "app@sender.example"
RCPT = "user@dest.example"


def message(extra_headers="", body="Hi.\r\n"):
    return (f"From: App <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: hello\r\n"
            f"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\nMessage-ID: <x@sender.example>\r\n"
            f"{extra_headers}\r\n{body}")


def submit(d, content):
    """(code, reply text) of the end of DATA."""
    with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
        c.ehlo("client.example")
        code, reply = c.mail(SENDER)
        expect_eq(code, 250, f"MAIL FROM ({reply!r})")
        code, reply = c.rcpt(RCPT)
        expect_eq(code, 250, f"RCPT TO ({reply!r})")
        code, reply = c.data(content)
        return code, reply.decode()


def expect_refused(d, content, *fragments):
    code, reply = submit(d, content)
    expect_eq(code, 550, f"end of data ({reply!r})")
    check(reply.startswith("5.6.0 "), f"enhanced status 5.6.0 in {reply!r}")
    for f in fragments:
        check(f in reply, f"{f!r} in {reply!r}")


def test_malformed_template_is_refused_with_line_and_column_and_not_queued():
    with Daemon() as d:
        expect_refused(d, message(body="Hello,\r\nHi {{ first_name\r\n"), "line 2, column 4")
        expect_refused(d, message(body="{{#vip}}\r\nVIP only\r\n"), "line 1")
        expect_eq(d.queue_ids(), [], "queue after the refusals")
        d.wait_log(r"personalize\.refused")


def test_bad_x_ember_vars_and_send_within_are_refused_and_not_queued():
    with Daemon() as d:
        expect_refused(d, message("X-Ember-Vars: {not json\r\n"), "X-Ember-Vars")
        expect_refused(d, message("X-Ember-Vars: [1, 2]\r\n"), "X-Ember-Vars")
        expect_refused(d, message('X-Ember-Vars: {"a": 1}\r\nX-Ember-Vars: {"b": 2}\r\n'),
                       "X-Ember-Vars")
        expect_refused(d, message("X-Ember-Send-Within: tomorrow\r\n"), "X-Ember-Send-Within")
        expect_eq(d.queue_ids(), [], "queue after the refusals")


def test_valid_template_and_vars_are_accepted():
    with Daemon() as d:
        code, reply = submit(d, message('X-Ember-Vars: {"offer": "50%"}\r\n',
                                        "Hi {{ first_name | default: \"there\" }}, "
                                        "{{ offer }} off.\r\n"))
        expect_eq(code, 250, f"end of data ({reply!r})")
        expect_eq(d.queue_ids(), [queued_id(reply)], "queued")
