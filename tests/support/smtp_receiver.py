#!/usr/bin/python3
"""A scriptable receiving MTA for integration tests, built on aiosmtpd
(Debian python3-aiosmtpd).

    smtp_receiver.py --listen 127.0.0.2:2600 --out DIR [--spec spec.json]
                     [--tls-cert cert.pem --tls-key key.pem]

Prints "READY" on stdout once listening; exits on SIGTERM.

Every accepted message is written to DIR/NNNN.eml with its envelope in
DIR/NNNN.json ({mail_from, rcpt_tos, mail_options, rcpt_options,
connection, tls, peer}). DIR/stats.json is rewritten after every event:
connections, messages, messages per connection, TLS sessions, and whether
commands arrived pipelined (MAIL, RCPT and DATA in one read).

spec.json (all keys optional) scripts the answers:
    {"greeting": "421 4.3.2 try later",          # instead of 220 (then close)
     "mail": "451 4.3.0 busy",                     # answer to every MAIL
     "rcpt": {"bad@dest.test": "550 5.1.1 no such user",
              "*": "250 2.1.5 Ok"},                 # per recipient, "*" default
     "data": "452 4.3.1 full",                     # answer at end of data
     "drop_in_data": true,                         # close the connection mid-DATA
     "fail_first": 2,                              # answer 451 to the first N messages
     "delay_data_s": 0.0}                          # sleep before the end-of-data reply
The spec file is re-read on every connection, so a test can change it while
the receiver runs (e.g. 4xx first, then 250).
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

LOCK = threading.Lock()


class Stats:
    def __init__(self, out):
        self.out = out
        # "connections" includes aiosmtpd's own start-up probe; "sessions"
        # counts EHLO/HELO, i.e. real SMTP clients.
        self.data = {"connections": 0, "sessions": 0, "messages": 0, "per_connection": {}, "tls_sessions": 0,
                     "pipelined_transactions": 0, "rejected": 0, "greetings_refused": 0}

    def bump(self, key, n=1):
        with LOCK:
            self.data[key] = self.data.get(key, 0) + n
            self.flush()

    def message(self, conn_id):
        with LOCK:
            self.data["messages"] += 1
            per = self.data["per_connection"]
            per[str(conn_id)] = per.get(str(conn_id), 0) + 1
            self.flush()
            return self.data["messages"]

    def flush(self):
        tmp = os.path.join(self.out, "stats.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, os.path.join(self.out, "stats.json"))


def load_spec(path):
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


class Handler:
    def __init__(self, args, stats):
        self.args = args
        self.stats = stats
        self.accepted = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one by one from its stream, so pipelined
        # input is handled correctly; advertise it so clients use it.
        session.host_name = hostname
        self.stats.bump("sessions")
        return responses[:-1] + ["250-PIPELINING", responses[-1]]

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.stats.bump("sessions")
        return "250 {}".format(server.hostname)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        spec = load_spec(self.args.spec)
        if spec.get("mail"):
            return spec["mail"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        spec = load_spec(self.args.spec)
        rules = spec.get("rcpt", {})
        answer = rules.get(address.lower(), rules.get("*", "250 2.1.5 Ok"))
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.append(rcpt_options)
        else:
            self.stats.bump("rejected")
        return answer

    async def handle_DATA(self, server, session, envelope):
        spec = load_spec(self.args.spec)
        if spec.get("delay_data_s"):
            await asyncio.sleep(spec["delay_data_s"])
        if spec.get("data"):
            return spec["data"]
        with LOCK:
            self.accepted += 1
            n = self.accepted
        if n <= spec.get("fail_first", 0):
            return "451 4.3.0 please try again"
        conn_id = getattr(session, "ember_conn_id", 0)
        number = self.stats.message(conn_id)
        base = os.path.join(self.args.out, f"{number:06d}")
        content = envelope.original_content or envelope.content
        with open(base + ".eml", "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "mail_options": envelope.mail_options, "rcpt_options": envelope.rcpt_options,
                "connection": conn_id, "tls": session.ssl is not None,
                "peer": list(session.peer) if session.peer else None}
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        return "250 2.0.0 Ok: stored"


class ScriptedSMTP(SMTP):
    """Counts connections, records read boundaries (pipelining) and can drop
    the connection mid-DATA or refuse the greeting."""

    counter = 0

    def connection_made(self, transport):
        ScriptedSMTP.counter += 1
        self.ember_conn_id = ScriptedSMTP.counter
        self.ember_stats.bump("connections")
        spec = load_spec(self.ember_args.spec)
        self.ember_spec = spec
        super().connection_made(transport)
        if self.session is not None:
            self.session.ember_conn_id = self.ember_conn_id

    def data_received(self, data):
        text = data.upper()
        if b"MAIL FROM" in text and b"RCPT TO" in text:
            self.ember_stats.bump("pipelined_transactions")
        if self.ember_spec.get("drop_in_data") and self._in_data(data):
            self.transport.abort()
            return
        super().data_received(data)

    def _in_data(self, data):
        return getattr(self, "_ember_seen_data", False) or self._mark_data(data)

    def _mark_data(self, data):
        if b"DATA\r\n" in data.upper():
            self._ember_seen_data = True
        return False

    async def smtp_STARTTLS(self, arg):
        result = await super().smtp_STARTTLS(arg)
        self.ember_stats.bump("tls_sessions")
        return result

    async def _handle_client(self):
        greeting = self.ember_spec.get("greeting")
        if greeting:
            self.ember_stats.bump("greetings_refused")
            await self.push(greeting)
            self.transport.close()
            return
        await super()._handle_client()


class ScriptedController(Controller):
    def __init__(self, handler, args, stats, **kw):
        self.ember_args = args
        self.ember_stats = stats
        super().__init__(handler, **kw)

    def _trigger_server(self):
        # aiosmtpd's own check connects with a 1 s timeout and, when that
        # expires on a busy machine, waits for a session that never comes.
        # Same check, patient: connect, wait for the greeting (or TLS
        # handshake), then close.
        with socket.create_connection((self.hostname, self.port), 30) as s:
            if self.ssl_context:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(s) as t:
                    t.recv(1024)
            else:
                s.recv(1024)

    def factory(self):
        smtp = ScriptedSMTP(self.handler, **self.SMTP_kwargs)
        smtp.ember_args = self.ember_args
        smtp.ember_stats = self.ember_stats
        smtp.ember_spec = {}
        return smtp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--spec")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--hostname", default="receiver.test")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    os.makedirs(args.out, exist_ok=True)
    stats = Stats(args.out)
    stats.flush()
    kw = {"hostname": host, "port": int(port), "server_hostname": args.hostname,
          "data_size_limit": 64 * 1024 * 1024, "enable_SMTPUTF8": True,
          "decode_data": False,
          # aiosmtpd proves readiness with a self-connection; on a loaded
          # 2-core CI machine under ASan this can take more than its default.
          "ready_timeout": 60}
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        kw["tls_context"] = ctx
    controller = ScriptedController(Handler(args, stats), args, stats, **kw)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
