"""No open relay, ever: on every listener mode and TLS mode, a client that is
neither authenticated nor in a trusted network gets 554 5.7.1 at RCPT, and
nothing is queued. An authenticated client (where AUTH exists) and a trusted
network may relay."""

import base64

from harness import PASSWORD, Daemon, RawSmtp, check, expect_eq, message, queued_id


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def open_session_on(d, name, tls):
    c = RawSmtp(d.port(name), tls=(tls == "implicit"))
    c.expect(220)
    c.expect(250, "EHLO client.test")
    if tls == "starttls":
        c.expect(220, "STARTTLS")
        c.starttls()
        c.expect(250, "EHLO client.test")
    return c


def relay_denied_on_every_listener(mode, tls):
    listeners = [{"name": "open", "mode": mode, "tls": tls, "auth": "none"},
                 {"name": "optional", "mode": mode, "tls": tls, "auth": "optional",
                  "auth_without_tls": tls == "none"},
                 {"name": "required", "mode": mode, "tls": tls, "auth": "required",
                  "auth_without_tls": tls == "none"}]
    with Daemon(listeners=listeners, trusted=[]) as d:
        for name in ("open", "optional"):
            with open_session_on(d, name, tls) as c:
                c.expect(250, "MAIL FROM:<spammer@evil.example>")
                c.expect(554, "RCPT TO:<victim@elsewhere.example>", contains="5.7.1")
                # RFC 5321 3.3: "no valid recipients" (554) once every RCPT was refused.
                c.expect(554, "DATA", contains="5.5.1")
        with open_session_on(d, "required", tls) as c:
            c.expect(530, "MAIL FROM:<spammer@evil.example>", contains="5.7.0")
            c.expect(503, "RCPT TO:<victim@elsewhere.example>")
        # Authenticated clients relay on the listeners that offer AUTH.
        for name in ("optional", "required"):
            with open_session_on(d, name, tls) as c:
                c.expect(235, "AUTH PLAIN " + plain("alice", PASSWORD))
                c.expect(250, "MAIL FROM:<app@sender.example>")
                c.expect(250, "RCPT TO:<user@elsewhere.example>")
                c.expect(354, "DATA")
                queued_id(c.expect(250, message() + "."))
        expect_eq(d.ctl_json("queue", "summary")["messages"], 2,
                  "only authenticated messages are queued")
    # A trusted network relays without AUTH where AUTH is not required.
    with Daemon(listeners=listeners[:2], trusted=["127.0.0.0/8"]) as d:
        for name in ("open", "optional"):
            with open_session_on(d, name, tls) as c:
                c.expect(250, "MAIL FROM:<app@sender.example>")
                c.expect(250, "RCPT TO:<user@elsewhere.example>")


def test_submission_plaintext_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("submission", "none")


def test_submission_starttls_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("submission", "starttls")


def test_submission_implicit_tls_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("submission", "implicit")


def test_inbound_plaintext_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("inbound", "none")


def test_inbound_starttls_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("inbound", "starttls")


def test_inbound_implicit_tls_listener_is_not_an_open_relay():
    relay_denied_on_every_listener("inbound", "implicit")
