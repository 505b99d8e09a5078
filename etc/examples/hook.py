#!/usr/bin/python3
"""An example personalization hook for ember (see ember-hook(7)).

ember calls the hook at dispatch time, once per batch of recipients of a
message, with an HTTP/1.1 POST of JSON, and waits at most hook_timeout
(200 ms by default) for the answer. Run this file as it is to try it:

    /usr/bin/python3 hook.py --listen 127.0.0.1:9000
    /usr/bin/python3 hook.py --unix /run/ember/hook.sock

and point ember at it in /etc/ember/ember.toml:

    [personalize]
    hook = "http://127.0.0.1:9000/hook"     # or "unix:/run/ember/hook.sock"

Only the Python standard library is used. Replace decide() with your own
rules (or a call to your model); keep it fast: ember sends without the
hook's changes (or defers, with on_error = "defer") when the answer is late.

THE REQUEST (one batch; ember may add fields, so ignore those you do not know):

    {
      "version": 1,
      "message_id": "0K3F2A1B0C9D8",       # ember's queue id
      "campaign": "spring-sale",           # the sender's campaign id ("" if none)
      "tags": ["newsletter"],              # the sender's tags for the message
      "from": "news@example.com",
      "subject": "Hi {{ first_name }}",    # as submitted, decoded to UTF-8
      "variables": ["first_name", "offer"],# names the message's templates read
      "recipients": [
        {
          "address": "jane@example.org",
          "attributes": {"first_name": "Jane", "lifecycle_stage": "customer"},
          "tags": ["runner"],
          "engagement": {
            "tier": "hot",                 # hot | warm | cold | never
            "score": 312,                  # 0..399, higher = more engaged
            "last_delivery": "2026-03-01T09:00:00Z",   # null: never
            "last_open": "2026-03-01T09:12:00Z",
            "last_click": null,
            "delivered_30d": 4, "opens_30d": 3, "clicks_30d": 1,
            "delivered_90d": 9, "opens_90d": 5, "clicks_90d": 2,
            "history": 17,                 # opens + clicks in the hour histogram
            "best_hour_of_week": 33        # 0 = Monday 00:00 UTC; null: no history
          }
        }
      ]
    }

THE ANSWER (HTTP 200 and JSON; or 204 No Content: change nothing):

    {
      "recipients": [
        {
          "address": "jane@example.org",   # which recipient (case ignored)
          "vars": {"offer": "20%"},        # merge variables; they win over the
                                           # message's and the contact's
          "headers": {"X-Offer": "b"},     # header fields to set or replace
          "variant": "b",                  # a named content variant
          "send_at": "2026-03-02T09:00:00Z",  # or unix seconds: 1772442000
          "skip": {"reason": "not interested"}  # do not send (logged as an event)
        }
      ]
    }

Every field of an answer is optional, and a recipient left out of the answer
is sent as it is. A field ember cannot use is ignored (and logged); the rest
of that answer still applies. Header fields ember owns (From, To, Cc, Date,
Message-ID, DKIM-Signature, Content-*, List-Unsubscribe, X-Ember-*, ...)
cannot be set. Anything but 200 or 204, a body that is not such a JSON
object, or an answer later than hook_timeout fails the whole batch: ember
then follows on_error ("send-default" or "defer"), and after
hook_breaker_failures failures in a row it stops calling the hook for
hook_breaker_cooldown.
"""

import argparse
import datetime
import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def next_hour_of_week(hour_of_week, now):
    """The start of the next hour (UTC) that is hour_of_week (0 = Monday
    00:00), or now when the current hour is that hour. A send_at in the
    past means "now" to ember."""
    start = now.replace(minute=0, second=0, microsecond=0)
    for hours in range(0, 168):
        t = start + datetime.timedelta(hours=hours)
        if t.weekday() * 24 + t.hour == hour_of_week:
            return max(t, now)
    return now


def decide(message, recipient, now):
    """The answer for one recipient: your rules go here."""
    attributes = recipient.get("attributes", {})
    engagement = recipient.get("engagement", {})
    tier = engagement.get("tier", "never")
    answer = {"address": recipient["address"]}

    # Do not send promotions to people who stopped reading long ago: a
    # skip is not a bounce and does not hurt the sender's reputation.
    if tier == "cold" and "promo" in message.get("tags", []):
        answer["skip"] = {"reason": "cold contact, promotional mail"}
        return answer

    # Variables for the template: {{ greeting }}, {{ offer }}.
    name = attributes.get("first_name") or "there"
    answer["vars"] = {
        "greeting": "Hi " + name,
        "offer": "20%" if tier == "hot" else "10%",
    }

    # Content variant by engagement (the message defines variants "a" and "b").
    answer["variant"] = "a" if tier in ("hot", "warm") else "b"

    # Schedule at the contact's best hour within the next week. (ember does
    # this itself for messages sent with X-Ember-Send-Within; this shows how
    # a hook can decide instead.)
    best = engagement.get("best_hour_of_week")
    if best is not None and tier in ("hot", "warm"):
        when = next_hour_of_week(best, now)
        answer["send_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")

    # A header the campaign's analytics can read.
    answer["headers"] = {"X-Campaign-Segment": tier}
    return answer


class Hook(BaseHTTPRequestHandler):
    # HTTP/1.1: ember keeps connections open and sends many requests on each.
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        try:
            message = json.loads(self.rfile.read(length))
        except ValueError:
            return self.reply(400, {"error": "not JSON"})
        now = datetime.datetime.now(datetime.timezone.utc)
        answers = [decide(message, r, now) for r in message.get("recipients", [])]
        self.reply(200, {"recipients": answers})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):
        return str(self.client_address or "unix")


class UnixHookServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description="an example ember personalization hook")
    parser.add_argument("--listen", default="127.0.0.1:9000", help="host:port")
    parser.add_argument("--unix", help="listen on this unix socket instead")
    args = parser.parse_args()
    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        server = UnixHookServer(args.unix, Hook)
    else:
        host, port = args.listen.rsplit(":", 1)
        server = ThreadingHTTPServer((host, int(port)), Hook)
        server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
