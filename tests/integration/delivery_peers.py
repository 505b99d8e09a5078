"""Peers for the delivery scenarios (test_delivery.py): a test DNS server with
the zones below and scriptable receiving MTAs on 127.0.0.x, all started as
context managers so every test stops what it starts, also when it fails.

The world every delivery test sees (one DNS server, zone "." so every name
without records is NXDOMAIN):

    dest.test       MX 10 mx1.dest.test (127.0.0.2), MX 20 mx2.dest.test (127.0.0.3)
    other.test      MX 10 mx1.dest.test              (a second domain, same hosts)
    sender.test     MX 10 mx.sender.test (127.0.0.4)  (where DSNs to app@sender.test go)
    routed.test     no records at all                 (reached through [delivery] routes only)
    nullmx.test     MX 0 .                            (RFC 7505 null MX)
    implicit.test   A 127.0.0.6, no MX                (RFC 5321 5.1 implicit MX)
    secure.test     MX 10 mx.secure.test (127.0.0.7)  (tls_policy "required", no STARTTLS)
    tls.test        MX 10 mx.tls.test (127.0.0.8)     (a receiver that offers STARTTLS)
    slowdns.test    every query times out
    nxdomain.test   NXDOMAIN

Receivers all listen on the same port P, which is the daemon's [delivery]
port, so the MX lookup decides which one a message reaches.
"""

import email
import email.policy
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading

from harness import Failure, check, free_port, wait_until

SUPPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support")
PYTHON = "/usr/bin/python3"

MX1 = "127.0.0.2"
MX2 = "127.0.0.3"
SENDER_MX = "127.0.0.4"
ROUTED = "127.0.0.5"
IMPLICIT = "127.0.0.6"
SECURE_MX = "127.0.0.7"
TLS_MX = "127.0.0.8"

SENDER = "app@sender.test"


def zone_doc():
    """The JSON zone file dns_server.py serves (see the module docstring)."""
    records = [
        {"name": "dest.test", "type": "MX", "value": "10 mx1.dest.test"},
        {"name": "dest.test", "type": "MX", "value": "20 mx2.dest.test"},
        {"name": "mx1.dest.test", "type": "A", "value": MX1},
        {"name": "mx2.dest.test", "type": "A", "value": MX2},
        {"name": "other.test", "type": "MX", "value": "10 mx1.dest.test"},
        {"name": "sender.test", "type": "MX", "value": "10 mx.sender.test"},
        {"name": "mx.sender.test", "type": "A", "value": SENDER_MX},
        {"name": "nullmx.test", "type": "MX", "value": "0 ."},
        {"name": "implicit.test", "type": "A", "value": IMPLICIT},
        {"name": "secure.test", "type": "MX", "value": "10 mx.secure.test"},
        {"name": "mx.secure.test", "type": "A", "value": SECURE_MX},
        {"name": "tls.test", "type": "MX", "value": "10 mx.tls.test"},
        {"name": "mx.tls.test", "type": "A", "value": TLS_MX},
    ]
    behaviours = [{"name": "slowdns.test", "behaviour": "timeout"}]
    return {"zones": ["."], "negative_ttl": 1, "records": records, "behaviours": behaviours}


def _first_line(proc, timeout, what):
    """The first stdout line of proc, or Failure when it does not come."""
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise Failure(f"{what} printed nothing within {timeout}s") from None
    if not line:
        # stdout closed: the peer is exiting; give it a moment so its stderr
        # (the reason) can be read whole.
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        raise Failure(f"{what} exited ({proc.returncode}) before it was ready: {err}")
    return line.strip()


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)  # readers never see half a file


def _start_peer(peer, args, what, ready):
    """Starts peer.proc from args and returns its first output line, which
    ready(line) must accept; on any failure the peer is stopped again."""
    peer.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(peer.proc, 90, what)
        check(ready(line), f"{what} said {line!r}")
        return line
    except BaseException:
        peer.__exit__(None, None, None)
        raise


class DnsServer:
    """tests/support/dns_server.py with the zones of zone_doc() (or `doc`),
    on 127.0.0.1 at a free port, logging every query."""

    def __init__(self, doc=None):
        self.dir = tempfile.mkdtemp(prefix="ember-dns-")
        self.zone_path = os.path.join(self.dir, "zones.json")
        self.query_log = os.path.join(self.dir, "queries.log")
        _write_json(self.zone_path, doc if doc is not None else zone_doc())
        self.proc = None
        self.port = None

    def __enter__(self):
        line = _start_peer(self, [PYTHON, os.path.join(SUPPORT_DIR, "dns_server.py"),
                                  self.zone_path, "--port", "0", "--query-log", self.query_log],
                           "dns_server.py", lambda first: first.startswith("PORT "))
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc):
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def address(self):
        return f"127.0.0.1:{self.port}"

    def queries(self):
        """[(proto, name, type)] in the order received."""
        try:
            with open(self.query_log) as f:
                return [tuple(line.split()) for line in f if line.strip()]
        except FileNotFoundError:
            return []


class Receiver:
    """tests/support/smtp_receiver.py on ip:port with a JSON spec the test can
    change while it runs (set_spec); tls=(cert, key) offers STARTTLS."""

    def __init__(self, ip, port, spec=None, tls=None, hostname=None):
        self.ip = ip
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="ember-rcv-")
        self.out = os.path.join(self.dir, "out")
        self.spec_path = os.path.join(self.dir, "spec.json")
        self.tls = tls
        self.hostname = hostname or f"rcv-{ip}.test"
        self.proc = None
        self.set_spec(spec or {})

    def __enter__(self):
        args = [PYTHON, os.path.join(SUPPORT_DIR, "smtp_receiver.py"),
                "--listen", f"{self.ip}:{self.port}", "--out", self.out,
                "--spec", self.spec_path, "--hostname", self.hostname]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        _start_peer(self, args, f"smtp_receiver.py on {self.ip}:{self.port}",
                    lambda first: first == "READY")
        return self

    def __exit__(self, *exc):
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def set_spec(self, spec):
        _write_json(self.spec_path, spec)

    def stats(self):
        try:
            with open(os.path.join(self.out, "stats.json")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def count(self):
        return self.stats().get("messages", 0)

    def messages(self):
        """[(meta dict, raw bytes)] of every accepted message, in order."""
        if not os.path.isdir(self.out):
            return []
        result = []
        for name in sorted(os.listdir(self.out)):
            if not name.endswith(".json") or name == "stats.json":
                continue
            base = os.path.join(self.out, name[:-5])
            try:
                with open(base + ".json") as f:
                    meta = json.load(f)
                with open(base + ".eml", "rb") as f:
                    raw = f.read()
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # being written: .eml comes first, then .json
            result.append((meta, raw))
        return result

    def wait_messages(self, n, timeout=30):
        """The first n messages once at least n arrived."""
        wait_until(lambda: len(self.messages()) >= n, timeout,
                   f"{n} message(s) at {self.ip} (have {len(self.messages())})")
        return self.messages()


def start_receivers(stack, port, ips, specs=None, tls=None):
    """One Receiver per ip (entered on the ExitStack); {ip: Receiver}."""
    specs = specs or {}
    tls = tls or {}
    return {ip: stack.enter_context(Receiver(ip, port, specs.get(ip), tls.get(ip)))
            for ip in ips}


def delivery_sections(dns, port, delivery=None, dns_extra=None):
    """The [dns] and [delivery] sections for Daemon(sections=...): short
    timeouts so a broken peer costs seconds, not minutes."""
    d = {"port": port, "connect_timeout": "5s", "greeting_timeout": "10s",
         "ehlo_timeout": "10s", "starttls_timeout": "10s", "mail_timeout": "10s",
         "rcpt_timeout": "10s", "data_timeout": "10s", "data_block_timeout": "10s",
         "dot_timeout": "20s", "rset_timeout": "5s", "quit_timeout": "5s",
         "retry_jitter": 0}
    d.update(delivery or {})
    n = {"servers": [dns.address()], "timeout": "1s", "tries": 1}
    n.update(dns_extra or {})
    return {"dns": n, "delivery": d}


def new_port():
    return free_port()


# ---- DSNs ----

def parse_dsn(raw):
    """An RFC 3464 DSN as {message: Message, per_message: {field: value},
    recipients: [{field: value}], returned_type, returned_text}. Field names
    are lowercased. Raises Failure when raw is not a multipart/report."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    check(msg.get_content_type() == "multipart/report",
          f"DSN content type {msg.get_content_type()!r}:\n{raw[:2000]!r}")
    check(msg.get_param("report-type") in ("delivery-status", "global-delivery-status"),
          f"report-type {msg.get_param('report-type')!r}")
    parts = list(msg.iter_parts())
    check(len(parts) >= 2, f"DSN has {len(parts)} parts")
    status = parts[1]
    check(status.get_content_type() in ("message/delivery-status",
                                        "message/global-delivery-status"),
          f"second part is {status.get_content_type()!r}")
    blocks = _status_blocks(status)
    check(len(blocks) >= 2, f"delivery-status has {len(blocks)} blocks: {blocks}")
    returned_type, returned_text = None, None
    if len(parts) >= 3:
        returned_type = parts[2].get_content_type()
        payload = parts[2].get_payload()
        if isinstance(payload, list):  # message/rfc822 parsed into a Message
            returned_text = "".join(p.as_string() for p in payload)
        else:
            returned_text = parts[2].get_payload(decode=True).decode("utf-8", "replace")
    return {"message": msg, "text": parts[0].get_content(), "per_message": blocks[0],
            "recipients": blocks[1:], "returned_type": returned_type,
            "returned_text": returned_text}


def _status_blocks(part):
    """The per-message and per-recipient field blocks of a delivery-status
    part, parsed by hand from its text (RFC 3464 2.1: header-like blocks
    separated by blank lines, continuation lines folded)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # Python parses message/delivery-status into one Message per block,
        # message/global-delivery-status into one Message holding the rest
        # as its body: back to text, either way.
        text = "\n".join(m.as_string() for m in payload)
    else:
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
    blocks, current, last = [], {}, None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            last = name.strip().lower()
            current[last] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def dsns(receiver):
    """[(meta, parsed DSN)] of the messages at receiver sent from <>."""
    return [(meta, parse_dsn(raw)) for meta, raw in receiver.messages()
            if meta["mail_from"] in ("", "<>")]
