#!/usr/bin/python3
"""A webhook receiver for ember's tests: records every POST it gets.

Usage:
  /usr/bin/python3 webhook_receiver.py --log FILE --secret SECRET
                   [--port 0] [--fail-first N] [--cert PEM --key PEM]

Prints `PORT <n>` on stdout (flushed) once it listens on 127.0.0.1; exits
0 on SIGTERM. The first N POSTs are answered 500, the rest 200. Every POST
is appended to FILE as one JSON line, written before the answer:

  {"status": 200, "sig_ok": true, "events": [...the body's JSON array...]}

sig_ok checks X-Ember-Signature (t=UNIX,v1=HEX) with Python's own hmac
module, independently of ember's code: HMAC-SHA256(secret, t + "." + body)
and t within 300 seconds of now. With --cert/--key it serves HTTPS.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import signal
import ssl
import sys
import time


def signature_ok(header, secret, body):
    items = [part.split("=", 1) for part in (header or "").split(",") if "=" in part]
    t = [v for k, v in items if k == "t"]
    v1 = [v for k, v in items if k == "v1"]
    if len(t) != 1 or not t[0].isdigit() or abs(int(t[0]) - time.time()) > 300:
        return False
    want = hmac.new(secret.encode(), t[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, sig) for sig in v1)


def make_handler(args, state):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state["posts"] += 1
            status = 500 if state["posts"] <= args.fail_first else 200
            try:
                events = json.loads(body)
            except ValueError:
                events = None
            record = {
                "status": status,
                "sig_ok": signature_ok(self.headers.get("X-Ember-Signature"), args.secret, body),
                "content_type": self.headers.get("Content-Type"),
                "events": events,
            }
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *unused):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *unused: sys.exit(0))
    server = http.server.HTTPServer(("127.0.0.1", args.port), make_handler(args, {"posts": 0}))
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
