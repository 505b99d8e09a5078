"""The HTTP injection API (issue 8, ember-api(7)) against the real emberd:
every endpoint and every 4xx path, key scopes, and a message accepted with
202 arriving at a real receiving MTA (tests/support/smtp_receiver.py) found
through the test DNS server. Python's urllib is the client; every daemon and
peer a test starts is stopped when it ends.
"""

import base64
import contextlib
import email
import email.policy
import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request

from delivery_peers import MX1, SENDER_MX, DnsServer, delivery_sections, start_receivers
from harness import Daemon, check, expect_eq, free_port, wait_until

TOKEN = "ek_test-token-for-the-sender-test-domain-000"
OTHER_TOKEN = "ek_test-token-for-other-example-domain-0000"
FROM = "Shop <news@sender.test>"


def key_sections(extra=None):
    keys = [{"name": "app", "hash": hashlib.sha256(TOKEN.encode()).hexdigest(),
             "domains": ["sender.test"]},
            {"name": "other", "hash": hashlib.sha256(OTHER_TOKEN.encode()).hexdigest(),
             "domains": ["other.example"]}]
    sections = {"api_key": keys}
    sections.update(extra or {})
    return sections


def call(d, method, path, body=None, token=TOKEN, content_type="application/json", raw=None):
    """(status, headers, parsed JSON body or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{d.http_port}{path}", data=data,
                                 method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None and content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, headers, text = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, text = e.code, e.headers, e.read()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text.decode(errors="replace")
    return status, headers, parsed


def message(**over):
    m = {"from": FROM, "subject": "Hello", "text": "Hi there.",
         "recipients": [{"address": "ann@dest.test"}]}
    m.update(over)
    return m


def expect_error(got, status, field=None):
    code, _, body = got
    expect_eq(code, status, f"status ({body})")
    check(isinstance(body, dict) and "error" in body, f"a JSON error body: {body!r}")
    if field is not None:
        expect_eq(body["error"].get("field"), field, "error field")


# ---- the API is off without keys ----

def test_without_an_api_key_every_v1_path_is_404():
    with Daemon() as d:
        expect_error(call(d, "POST", "/v1/messages", message()), 404)
        expect_error(call(d, "GET", "/v1/openapi.json", token=None), 404)
        expect_error(call(d, "GET", "/v1/suppressions"), 404)


# ---- keys ----

def test_a_missing_or_unknown_key_is_401_with_a_bearer_challenge():
    with Daemon(sections=key_sections()) as d:
        for token in (None, "ek_wrong", TOKEN + "x"):
            got = call(d, "POST", "/v1/messages", message(), token=token)
            expect_error(got, 401)
            challenge = got[1].get("WWW-Authenticate", "")
            check(challenge.startswith("Bearer "), f"challenge {challenge!r}")
        check(TOKEN not in d.log(), "the token never appears in the log")


def test_a_key_may_send_only_from_its_domains():
    with Daemon(sections=key_sections()) as d:
        got = call(d, "POST", "/v1/messages", message(), token=OTHER_TOKEN)
        expect_error(got, 403, "from")
        got = call(d, "POST", "/v1/messages", message(**{"from": "x@other.example"}),
                   token=OTHER_TOKEN)
        expect_eq(got[0], 202, f"the other key's own domain ({got[2]})")
        qid = got[2]["messages"][0]["id"]
        # A key sees only messages of its domains.
        expect_error(call(d, "GET", f"/v1/messages/{qid}"), 404)
        expect_eq(call(d, "GET", f"/v1/messages/{qid}", token=OTHER_TOKEN)[0], 200, "own message")


# ---- POST /v1/messages: the 4xx paths ----

def test_every_malformed_request_is_a_4xx_naming_the_field():
    with Daemon(sections=key_sections(), smtp={"max_message_size": "64K"}) as d:
        cases = [
            (message(recipients=[]), 400, "recipients"),
            (message(recipients=[{"address": "ok@dest.test"}, {"address": "bad@"}]), 400,
             "recipients[1].address"),
            (message(**{"from": "nobody"}), 400, "from"),
            (message(text=None, html=None), 400, "text"),
            (message(headers={"Subject": "twice"}), 400, "headers.Subject"),
            (message(attachments=[{"content": "%%%"}]), 400, "attachments[0].content"),
            (message(tags=["not ok"]), 400, "tags[0]"),
            (message(send_within="someday"), 400, "send_within"),
            (message(unknown=1), 400, "unknown"),
        ]
        for body, status, field in cases:
            body = {k: v for k, v in body.items() if v is not None}
            expect_error(call(d, "POST", "/v1/messages", body), status, field)
        expect_error(call(d, "POST", "/v1/messages", raw=b"{not json"), 400)
        expect_error(call(d, "POST", "/v1/messages", message(), content_type="text/plain"), 415)
        big = message(text="x" * 70000)
        expect_error(call(d, "POST", "/v1/messages", big), 413)
        expect_eq(d.queue_ids(), [], "nothing queued by refused requests")


def test_over_the_queue_high_water_mark_is_429_with_retry_after():
    port = free_port()
    http = {"listen": f"127.0.0.1:{port}", "queue_high_water": 2}
    with Daemon(http=False, sections=key_sections({"http": http})) as d:
        d.http_port = port
        two = message(recipients=["a@dest.test", "b@dest.test"])
        expect_eq(call(d, "POST", "/v1/messages", two)[0], 202, "up to the mark")
        got = call(d, "POST", "/v1/messages", message())
        expect_error(got, 429)
        check(got[1].get("Retry-After"), "Retry-After is set")


def test_a_suppressed_recipient_is_refused_and_the_others_queued():
    sections = key_sections({"feedback": {"suppression_at_rcpt": "reject"}})
    with Daemon(sections=sections) as d:
        d.ctl("suppress", "add", "gone@dest.test")
        got = call(d, "POST", "/v1/messages",
                   message(recipients=["ann@dest.test", "gone@dest.test"]))
        expect_eq(got[0], 202, f"status ({got[2]})")
        results = got[2]["messages"]
        expect_eq([r["status"] for r in results], ["queued", "refused"], "per-recipient status")
        check("550" in results[1]["error"], f"the RCPT reply is named: {results[1]}")
        expect_eq(len(d.queue_ids()), 1, "queued messages")
        got = call(d, "POST", "/v1/messages", message(recipients=["gone@dest.test"]))
        expect_error(got, 422, "recipients")


# ---- GET /v1/messages/{id} ----

def test_get_message_shows_each_recipient_state():
    with Daemon(sections=key_sections()) as d:
        got = call(d, "POST", "/v1/messages", message(recipients=["a@dest.test", "b@dest.test"]))
        expect_eq(got[0], 202, f"status ({got[2]})")
        ids = [m["id"] for m in got[2]["messages"]]
        expect_eq(len(set(ids)), 2, "one message id per recipient")
        check(set(ids) <= set(d.queue_ids()), "the ids are queue ids")
        code, _, body = call(d, "GET", f"/v1/messages/{ids[1]}")
        expect_eq(code, 200, "status")
        expect_eq(body["from"], "news@sender.test", "envelope sender")
        expect_eq([(r["address"], r["state"]) for r in body["recipients"]],
                  [("b@dest.test", "queued")], "recipients")
        expect_error(call(d, "GET", "/v1/messages/0000000000000"), 404, "id")
        expect_error(call(d, "GET", "/v1/messages/not-an-id"), 404, "id")


def test_send_within_plans_each_recipients_first_attempt_from_its_opens():
    import datetime
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    with Daemon(sections=key_sections()) as d:
        now = datetime.datetime.now(datetime.timezone.utc)
        slot = (now + datetime.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        for week in range(1, 7):  # opens at that hour of the week in past weeks
            at = slot + datetime.timedelta(minutes=10) - datetime.timedelta(weeks=week)
            d.ctl("contacts", "event", "reader@dest.test", "open", "--at", at.strftime(fmt),
                  "--domain", "sender.test")
        got = call(d, "POST", "/v1/messages",
                   message(recipients=["reader@dest.test", "newbie@dest.test"],
                           send_within="24h"))
        expect_eq(got[0], 202, f"status ({got[2]})")
        planned = {}
        for m in got[2]["messages"]:
            shown = d.ctl_json("queue", "show", m["id"])
            names = [h["name"].lower() for h in shown["headers"]]
            check("x-ember-send-within" not in names, f"the field is stripped: {names}")
            for r in shown["recipients"]:
                planned[r["address"]] = r["next_attempt"]
        expect_eq(planned["reader@dest.test"], slot.strftime(fmt), "the reader's hour")
        newbie = datetime.datetime.strptime(planned["newbie@dest.test"], fmt).replace(
            tzinfo=datetime.timezone.utc)
        check(newbie <= now + datetime.timedelta(minutes=1),
              f"no history goes now ({planned['newbie@dest.test']})")


# ---- suppressions ----

def test_suppressions_are_listed_in_pages_and_deleted():
    with Daemon(sections=key_sections()) as d:
        for a in ("a@dest.test", "b@dest.test", "c@dest.test"):
            d.ctl("suppress", "add", a)
        code, _, page = call(d, "GET", "/v1/suppressions?limit=2")
        expect_eq(code, 200, "status")
        expect_eq([e["address"] for e in page["suppressions"]], ["a@dest.test", "b@dest.test"],
                  "first page")
        cursor = urllib.parse.quote(page["next_cursor"])
        code, _, page = call(d, "GET", f"/v1/suppressions?limit=2&cursor={cursor}")
        expect_eq([e["address"] for e in page["suppressions"]], ["c@dest.test"], "second page")
        check("next_cursor" not in page, "the last page has no cursor")
        expect_error(call(d, "GET", "/v1/suppressions?limit=0"), 400, "limit")
        expect_error(call(d, "GET", "/v1/suppressions?reason=bogus"), 400, "reason")
        code, _, _ = call(d, "DELETE", "/v1/suppressions/b%40dest.test")
        expect_eq(code, 204, "delete")
        expect_error(call(d, "DELETE", "/v1/suppressions/b@dest.test"), 404, "address")
        expect_error(call(d, "DELETE", "/v1/suppressions/not-an-address"), 400, "address")
        _, _, page = call(d, "GET", "/v1/suppressions")
        expect_eq([e["address"] for e in page["suppressions"]], ["a@dest.test", "c@dest.test"],
                  "after the delete")


# ---- contacts ----

def test_contacts_are_put_read_and_deleted():
    with Daemon(sections=key_sections()) as d:
        path = "/v1/contacts/Ann%40Dest.test"
        code, _, _ = call(d, "PUT", path, {"attributes": {"first_name": "Ann", "plan": "pro"},
                                           "tags": ["vip"]})
        expect_eq(code, 204, "put")
        code, _, _ = call(d, "PUT", path, {"attributes": {"plan": None}})
        expect_eq(code, 204, "second put")
        code, _, body = call(d, "GET", "/v1/contacts/ann@dest.test")
        expect_eq(code, 200, "get")
        expect_eq(body["attributes"], {"first_name": "Ann"}, "attributes merged, null removed")
        expect_eq(body["tags"], ["vip"], "tags")
        expect_error(call(d, "PUT", path, {"colour": "red"}), 400, "colour")
        expect_error(call(d, "PUT", path, {"tags": []}, content_type="text/plain"), 415)
        expect_eq(call(d, "DELETE", path)[0], 204, "delete")
        expect_error(call(d, "GET", path), 404, "address")
        expect_error(call(d, "DELETE", path), 404, "address")


# ---- the OpenAPI document ----

def test_the_openapi_document_is_served_without_a_key_and_names_every_route():
    with Daemon(sections=key_sections()) as d:
        code, headers, doc = call(d, "GET", "/v1/openapi.json", token=None)
        expect_eq(code, 200, "status")
        check(doc["openapi"].startswith("3."), "OpenAPI 3")
        for path in ("/v1/messages", "/v1/messages/{id}", "/v1/suppressions",
                     "/v1/suppressions/{address}", "/v1/contacts/{address}"):
            check(path in doc["paths"], f"{path} documented")


# ---- end to end ----

@contextlib.contextmanager
def delivering_world():
    with contextlib.ExitStack() as stack:
        dns = stack.enter_context(DnsServer())
        port = free_port()
        rcv = start_receivers(stack, port, (MX1, SENDER_MX))
        sections = key_sections(delivery_sections(dns, port))
        d = stack.enter_context(Daemon(sections=sections))
        yield d, rcv


def test_an_accepted_message_arrives_once_per_recipient_with_its_own_to_and_vars():
    with delivering_world() as (d, rcv):
        body = message(
            subject="Hi {{ name }}",
            text="Hello {{ name }}, your code is {{ code }}.",
            html="<p>Hello {{ name }}</p>",
            vars={"code": "SPRING"},
            campaign="spring-sale", tags=["promo"],
            attachments=[{"filename": "note.txt", "content_type": "text/plain",
                          "content": base64.b64encode(b"attached bytes").decode()}],
            recipients=[{"address": "ann@dest.test", "name": "Ann", "vars": {"name": "Ann"}},
                        {"address": "bob@dest.test", "vars": {"name": "Bob", "code": "B2"}}])
        got = call(d, "POST", "/v1/messages", body)
        expect_eq(got[0], 202, f"status ({got[2]})")
        ids = {m["address"]: m["id"] for m in got[2]["messages"]}
        arrived = rcv[MX1].wait_messages(2)
        by_rcpt = {}
        for meta, raw in arrived:
            by_rcpt[meta["rcpt_tos"][0]] = email.message_from_bytes(raw, policy=email.policy.default)
        expect_eq(sorted(by_rcpt), ["ann@dest.test", "bob@dest.test"], "one message each")
        ann = by_rcpt["ann@dest.test"]
        expect_eq(str(ann["To"]), "Ann <ann@dest.test>", "Ann's To:")
        expect_eq(str(by_rcpt["bob@dest.test"]["To"]), "bob@dest.test", "Bob's To:")
        check(ids["ann@dest.test"] in str(ann["Received"]), "Received: names the queue id")
        check(ann["X-Ember-Vars"] is None and ann["X-Ember-Campaign"] is None,
              "ember's own fields are removed at dispatch")
        expect_eq(ann.get_content_type(), "multipart/mixed", "with an attachment")
        text = ann.get_body(("plain",)).get_content()
        expect_eq(text.strip(), "Hello Ann, your code is SPRING.", "Ann's text, merged")
        bob_text = by_rcpt["bob@dest.test"].get_body(("plain",)).get_content()
        expect_eq(bob_text.strip(), "Hello Bob, your code is B2.", "Bob's own vars win")
        expect_eq(str(ann["Subject"]), "Hi Ann", "merged subject")
        attachments = list(ann.iter_attachments())
        expect_eq([a.get_filename() for a in attachments], ["note.txt"], "attachments")
        expect_eq(attachments[0].get_content(), "attached bytes", "attachment bytes")


# ---- HTTPS on the listener ([http] tls) ----

def test_with_http_tls_the_api_is_served_over_https_only():
    import http.client
    import ssl
    port = free_port()
    listener = {"listen": f"127.0.0.1:{port}", "tls": True}
    with Daemon(http=False, tls=True, sections=key_sections({"http": listener})) as d:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
        body = json.dumps(message(recipients=["a@dest.test"]))
        conn.request("POST", "/v1/messages", body=body,
                     headers={"Authorization": f"Bearer {TOKEN}",
                              "Content-Type": "application/json"})
        reply = conn.getresponse()
        answer = json.loads(reply.read())
        expect_eq(reply.status, 202, f"status over HTTPS ({answer})")
        check(conn.sock.version() in ("TLSv1.2", "TLSv1.3"), "a TLS session")
        conn.close()
        # A plain HTTP request to the HTTPS listener is not served.
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        served = True
        try:
            plain.request("GET", "/healthz")
            served = plain.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            served = False
        plain.close()
        check(not served, "plain HTTP is refused on an HTTPS listener")

