#!/usr/bin/python3
"""A scriptable personalization hook for tests of ember's hook client
(personalize/hook.hpp), speaking the contract of ember-hook(7).

    hook_server.py --control FILE --stats FILE [--port N | --unix PATH]

Prints "PORT <n>" (TCP; --port 0 picks a free port) or "READY" (unix
socket) on stdout once listening; exits on SIGTERM. HTTP/1.1 with
keep-alive, one thread per connection.

Answers every POST with one answer per recipient, chosen by the local part
of its address:
    skip...     {"skip": {"reason": "not interested"}}
    later...    {"send_at": "2030-01-02T03:04:05Z"}
    unixtime... {"send_at": 1900000000}
    variant...  {"variant": "b"}
    header...   {"headers": {"X-Campaign-Variant": "b", "From": "evil@example.net"}}
    anything    {"vars": {"greeting": "Hello <attributes.first_name or address>",
                          "tier": <engagement.tier>}}

FILE given with --control (JSON, re-read on every request, so a test can
change it between calls) sets the behaviour:
    {"mode": "ok" | "500" | "garbage" | "empty" | "close" | "drop-idle",
     "delay": 0.0}
  500: status 500; garbage: 200 with a body that is not JSON; empty: 204;
  close: answer with "Connection: close"; drop-idle: answer as if keeping
  the connection alive, then close it (a stale pooled connection);
  delay: seconds to sleep before answering (timeouts, concurrency).

FILE given with --stats is rewritten before every answer:
    {"requests": n, "connections": n, "max_concurrent": n, "last_request": {...}}
"""

import argparse
import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"requests": 0, "connections": 0, "max_concurrent": 0, "last_request": None}
IN_FLIGHT = [0]
ARGS = None


def write_stats():
    tmp = ARGS.stats + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, ARGS.stats)


def read_control():
    try:
        with open(ARGS.control) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def answer_for(recipient):
    address = recipient.get("address", "")
    local = address.split("@")[0].lower()
    out = {"address": address}
    if local.startswith("skip"):
        out["skip"] = {"reason": "not interested"}
    elif local.startswith("later"):
        out["send_at"] = "2030-01-02T03:04:05Z"
    elif local.startswith("unixtime"):
        out["send_at"] = 1900000000
    elif local.startswith("variant"):
        out["variant"] = "b"
    elif local.startswith("header"):
        out["headers"] = {"X-Campaign-Variant": "b", "From": "evil@example.net"}
    else:
        name = recipient.get("attributes", {}).get("first_name") or address
        tier = recipient.get("engagement", {}).get("tier", "")
        out["vars"] = {"greeting": "Hello " + name, "tier": tier}
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            STATE["connections"] += 1
            write_stats()

    def log_message(self, *args):
        pass

    def address_string(self):
        return "local"

    def reply(self, status, body, close=False):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if status != 204:
            self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        control = read_control()
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        with LOCK:
            IN_FLIGHT[0] += 1
            STATE["requests"] += 1
            STATE["max_concurrent"] = max(STATE["max_concurrent"], IN_FLIGHT[0])
            STATE["last_request"] = request
            write_stats()
        try:
            delay = float(control.get("delay", 0))
            if delay > 0:
                time.sleep(delay)
            mode = control.get("mode", "ok")
            if mode == "500":
                self.reply(500, b'{"error": "boom"}')
            elif mode == "garbage":
                self.reply(200, b"this is not json")
            elif mode == "empty":
                self.reply(204, b"")
            else:
                recipients = (request or {}).get("recipients", [])
                body = json.dumps({"recipients": [answer_for(r) for r in recipients]})
                self.reply(200, body.encode(), close=(mode == "close"))
                if mode == "drop-idle":
                    self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with LOCK:
                IN_FLIGHT[0] -= 1


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--unix")
    ARGS = parser.parse_args()
    with LOCK:
        write_stats()
    if ARGS.unix:
        server = UnixServer(ARGS.unix, Handler)
        print("READY", flush=True)
    else:
        server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
        server.daemon_threads = True
        print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
