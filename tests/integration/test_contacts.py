"""Contacts through emberctl (issue 7): set/get round trip with typed
values and tags; a CSV import whose bad row is reported as FILE:LINE while
the other rows import; an export that imports into another daemon and
exports identically; and a delivered message updating the contact's last
delivery (delivery events feed engagement).
"""

import contextlib
import os
import smtplib
import tempfile

from delivery_peers import MX1, DnsServer, delivery_sections, start_receivers, zone_doc
from harness import Daemon, check, expect_eq, free_port, queued_id, wait_until


def test_set_get_round_trip_with_types_and_tags():
    with Daemon() as d:
        d.ctl("contacts", "set", "Jane@Example.org", "first_name=Jane", "age:number=41",
              "vip:bool=yes", "likes:list=trail;road", "--tag", "runner", "--tag", "vip")
        got = d.ctl_json("contacts", "get", "jane@example.org")
        expect_eq(got["address"], "jane@example.org", "normalized address")
        expect_eq(got["attributes"], {"first_name": "Jane", "age": 41, "vip": True,
                                      "likes": ["trail", "road"]}, "attributes")
        expect_eq(got["tags"], ["runner", "vip"], "tags")
        expect_eq(got["engagement"]["tier"], "never", "tier")
        d.ctl("contacts", "set", "jane@example.org", "age=")  # empty: removes
        got = d.ctl_json("contacts", "get", "jane@example.org")
        check("age" not in got["attributes"], f"age removed: {got['attributes']}")
        text = d.ctl("contacts", "get", "jane@example.org").stdout
        check("first_name" in text and "runner" in text, f"text output: {text!r}")
        r = d.ctl("contacts", "get", "nobody@example.org", check_rc=False)
        expect_eq(r.returncode, 1, f"unknown contact ({r.stderr!r})")
        r = d.ctl("contacts", "set", "x@example.org", "age:number=old", check_rc=False)
        expect_eq(r.returncode, 2, f"bad typed value ({r.stderr!r})")


def test_import_reports_bad_rows_and_export_reimports_identically():
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ember-contacts-"))
        os.chmod(tmp, 0o755)
        csv = os.path.join(tmp, "contacts.csv")
        with open(csv, "w") as f:
            f.write("address,first_name,age:number,tags\n"
                    "ann@example.org,Ann,30,runner;vip\n"
                    "not an address,Bad,1,\n"
                    "bob@example.org,\"Bob, Jr.\",,\n"
                    "cy@example.org,Cy,notanumber,\n"
                    "dee@example.org,Dee,52,\n")
        a = stack.enter_context(Daemon())
        r = a.ctl("contacts", "import", csv, check_rc=False)
        expect_eq(r.returncode, 1, f"exit status with bad rows ({r.stderr!r})")
        check(f"{csv}:3: " in r.stderr, f"bad address row reported: {r.stderr!r}")
        check(f"{csv}:5: " in r.stderr, f"bad number row reported: {r.stderr!r}")
        check("imported 3 contacts, skipped 2" in r.stdout, f"summary: {r.stdout!r}")
        expect_eq(a.ctl_json("contacts", "get", "bob@example.org")["attributes"],
                  {"first_name": "Bob, Jr."}, "bob")
        expect_eq(a.ctl_json("contacts", "get", "ann@example.org")["tags"], ["runner", "vip"],
                  "ann's tags")

        first = os.path.join(tmp, "first.csv")
        a.ctl("contacts", "export", first)
        b = stack.enter_context(Daemon())
        b.ctl("contacts", "import", first)
        second = os.path.join(tmp, "second.csv")
        b.ctl("contacts", "export", second)
        with open(first) as f1, open(second) as f2:
            one, two = f1.read(), f2.read()
        expect_eq(two, one, "export after re-import")
        check(one.startswith("address,tags,") and "age:number" in one.splitlines()[0],
              f"typed header: {one.splitlines()[0]!r}")
        expect_eq(len(one.splitlines()), 4, "header and three contacts")


def test_delivered_message_updates_the_contacts_last_delivery():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer(zone_doc()))
        port = free_port()
        rcv = start_receivers(stack, port, [MX1])
        d = stack.enter_context(Daemon(sections=delivery_sections(dns, port)))
        rcpt = "reader@dest.test"
        content = ("From: News <app@sender.test>\r\nTo: <reader@dest.test>\r\n"
                   "Subject: news\r\nDate: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
                   "Message-ID: <c1@sender.test>\r\n\r\nHello.\r\n")
        with smtplib.SMTP("127.0.0.1", d.port(), timeout=20) as c:
            c.ehlo("client.test")
            c.mail("app@sender.test")
            c.rcpt(rcpt)
            code, reply = c.data(content)
            expect_eq(code, 250, f"end of data ({reply!r})")
            queued_id(reply.decode())
        rcv[MX1].wait_messages(1)

        def last_delivery():
            r = d.ctl("--json", "contacts", "get", rcpt, check_rc=False)
            if r.returncode != 0:
                return None
            import json
            return json.loads(r.stdout)["engagement"]["last_delivery"]
        when = wait_until(last_delivery, 20, "the contact's last delivery")
        check(when.endswith("Z"), f"RFC 3339 time: {when!r}")
