"""A/B tests (issue 8) against the real emberd: POST /v1/messages with two
subject variants and a split of 25/25, a 3 s test. The cells' messages
arrive with their own subjects; the rest are held (throttled) until the
decision and then all carry the winner's subject (the control's: nobody
clicks here, and a tie goes to the control); `emberctl ab status` shows the
cells and the decision. Every daemon and peer a test starts is stopped.

A second scenario scripts the clicks: with tracking on, every reader in
cell b clicks its tracked link (GET /c/TOKEN, a browser's User-Agent), so b
wins, significantly, and the rest get only b; `emberctl report` counts the
clicks per cell. The daemon-level test (tests/daemon/ab_test.cpp) covers
the same with an injected clock.
"""

import contextlib
import email
import email.policy
import http.client
import re

from delivery_peers import MX1, SENDER_MX, DnsServer, delivery_sections, start_receivers
from harness import Daemon, check, expect_eq, free_port
from test_api import call, delivering_world, key_sections, message

PUBLIC_URL = "https://mta.test.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def _subject(raw):
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])


def _line_index(log, pattern):
    for i, line in enumerate(log.splitlines()):
        if re.search(pattern, line):
            return i
    return None


def test_cells_get_their_variant_and_the_rest_get_the_winner_after_the_decision():
    with tracking_world() as (d, rcv):
        recipients = [f"r{i:02}@dest.test" for i in range(20)]
        body = message(subject="Subject A", campaign="ab-spring", recipients=recipients,
                       html='<p>Sale</p><a href="https://shop.example/sale">Shop</a>',
                       variants=[{"name": "a"}, {"name": "b", "subject": "Subject B"}],
                       ab={"split": [25, 25], "duration": "3s", "metric": "clicks"})
        got = call(d, "POST", "/v1/messages", body)
        expect_eq(got[0], 202, f"status ({got[2]})")
        test_id = got[2]["ab_test"]
        check(re.fullmatch(r"[0-9a-f]{16}", test_id) is not None, f"test id {test_id!r}")
        cells = {m["address"]: m["cell"] for m in got[2]["messages"]}
        counts = {c: list(cells.values()).count(c) for c in ("a", "b", "rest")}
        expect_eq(counts, {"a": 5, "b": 5, "rest": 10}, "round(25% x 20) per cell")

        arrived = rcv[MX1].wait_messages(20, timeout=60)
        subjects = {meta["rcpt_tos"][0]: _subject(raw) for meta, raw in arrived}
        expect_eq(sorted(subjects), sorted(recipients), "every recipient once")
        for address, cell in cells.items():
            want = "Subject B" if cell == "b" else "Subject A"
            expect_eq(subjects[address], want, f"{address} in cell {cell}")
        for _, raw in arrived:
            check(b"X-Ember-AB" not in raw and b"{{" not in raw,
                  "the test's field and markup never leave ember")

        log = d.log()
        decided = _line_index(log, rf"ab\.decided test={test_id} .*winner=a")
        check(decided is not None, "the decision is logged, the control wins without clicks")
        for address, cell in cells.items():
            if cell != "rest":
                continue
            held = _line_index(log, rf"delivery\.result .*{re.escape(address)}.*result=throttled")
            sent = _line_index(log, rf"delivery\.result .*{re.escape(address)}.*result=delivered")
            check(held is not None, f"{address} was held for the test")
            check(sent is not None and sent > decided,
                  f"{address} delivered only after the decision")

        status = d.ctl_json("ab", "status", test_id)
        expect_eq(status["state"], "decided", "state")
        expect_eq(status["winner"], "a", "winner")
        expect_eq(status["campaign"], "ab-spring", "campaign")
        expect_eq([c["name"] for c in status["cells"]], ["a", "b"], "cells")
        expect_eq([c["recipients"] for c in status["cells"]], [5, 5], "cell sizes")
        expect_eq(status["rest"], 10, "rest")
        expect_eq(status["decision"]["significant"], False, "no evidence without clicks")
        text = d.ctl("ab", "status", test_id).stdout
        check("winner" in text and "p-value" in text and "decided" in text, text)
        listing = d.ctl("ab", "list").stdout
        check(test_id in listing, listing)


def test_variants_are_refused_with_the_field_named():
    with delivering_world() as (d, _):
        # Without tracking nobody's clicks are counted: the test could only
        # ever pick the control.
        got = call(d, "POST", "/v1/messages",
                   message(html="<p>Hi</p>", variants=[{"name": "a"}, {"name": "b",
                                                                    "subject": "B"}],
                           ab={"split": [10, 10], "duration": "1h", "metric": "clicks"}))
        expect_eq(got[0], 400, f"status ({got[2]})")
        expect_eq(got[2]["error"]["field"], "ab.metric", "an untracked metric")
        got = call(d, "POST", "/v1/messages",
                   message(variants=[{"name": "a"}, {"name": "b", "subject": "B"}]))
        expect_eq(got[0], 400, f"status ({got[2]})")
        expect_eq(got[2]["error"]["field"], "ab", "ab is required with variants")
        got = call(d, "POST", "/v1/messages",
                   message(variants=[{"name": "a"}, {"name": "a"}],
                           ab={"split": [10, 10], "duration": "1h", "metric": "clicks"}))
        expect_eq(got[2]["error"]["field"], "variants[1].name", "duplicate name")
        r = d.ctl("ab", "status", "0000000000000000", check_rc=False)
        expect_eq(r.returncode, 1, "an unknown test is an error")


# ---- scripted clicks through the tracking links ----

@contextlib.contextmanager
def tracking_world():
    """delivering_world() with tracking on for sender.test and no click window
    (a scripted click seconds after delivery would be a scanner's otherwise)."""
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, (MX1, SENDER_MX))
        http_port = free_port()
        sections = key_sections(delivery_sections(dns, port))
        sections["http"] = {"listen": f"127.0.0.1:{http_port}", "public_url": PUBLIC_URL}
        sections["feedback"] = {"token_keys": ["k1:ab-click-test-secret-0123456789"]}
        sections["tracking"] = {"domains": ["sender.test"], "machine_click_window": "0s"}
        d = stack.enter_context(Daemon(sections=sections, http=False))
        d.http_port = http_port
        yield d, rcv


def _click_paths(raw):
    message_ = email.message_from_bytes(raw, policy=email.policy.default)
    html = message_.get_body(preferencelist=("html",)).get_content()
    return re.findall(re.escape(PUBLIC_URL) + r"(/c/[A-Za-z0-9_-]+)", html)


def _browser_get(d, path):
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=20)
    try:
        c.request("GET", path, headers={"User-Agent": BROWSER})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_the_variant_with_more_clicks_wins_and_the_rest_get_only_that_variant():
    with tracking_world() as (d, rcv):
        recipients = [f"r{i:02}@dest.test" for i in range(20)]
        body = message(subject="Subject A", campaign="ab-clicks", recipients=recipients,
                       text=None, html='<p>Sale</p><a href="https://shop.example/sale">Shop</a>',
                       variants=[{"name": "a"}, {"name": "b", "subject": "Subject B"}],
                       ab={"split": [25, 25], "duration": "30s", "metric": "clicks"})
        del body["text"]
        got = call(d, "POST", "/v1/messages", body)
        expect_eq(got[0], 202, f"status ({got[2]})")
        test_id = got[2]["ab_test"]
        cells = {m["address"]: m["cell"] for m in got[2]["messages"]}

        # The two test cells arrive first; every b reader clicks, nobody in a.
        arrived = rcv[MX1].wait_messages(10, timeout=60)
        clicked = 0
        for meta, raw in arrived:
            address = meta["rcpt_tos"][0]
            check(cells[address] != "rest", f"{address} (rest) came before the decision")
            expect_eq(_subject(raw), "Subject B" if cells[address] == "b" else "Subject A",
                      f"{address}'s subject")
            links = _click_paths(raw)
            expect_eq(len(links), 1, f"one tracked link for {address}")
            if cells[address] == "b":
                expect_eq(_browser_get(d, links[0]), 302, "the click redirects")
                clicked += 1
        expect_eq(clicked, 5, "clicks scripted on cell b")

        # After the decision the rest arrive, all with the winner's subject.
        arrived = rcv[MX1].wait_messages(20, timeout=120)
        for meta, raw in arrived:
            address = meta["rcpt_tos"][0]
            if cells[address] == "rest":
                expect_eq(_subject(raw), "Subject B", f"{address} (rest) gets only b")
        status = d.ctl_json("ab", "status", test_id)
        expect_eq(status["winner"], "b", "the variant with more clicks wins")
        expect_eq(status["decision"]["significant"], True, "5/5 against 0/5 is significant")
        report = d.ctl_json("report", "--campaign", "ab-clicks")
        rows = {v["variant"]: v for v in report["campaigns"][0]["variants"]}
        expect_eq(rows["b"]["unique_clicks"], 5, "the report counts b's clicks")
        expect_eq(rows["a"]["unique_clicks"], 0, "and none for a")
