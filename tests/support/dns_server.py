#!/usr/bin/python3
"""Authoritative DNS server for ember's tests (UDP and TCP on one port).

Usage:
  /usr/bin/python3 dns_server.py ZONES.json [--address 127.0.0.1] [--port 0]
                   [--query-log FILE] [--reload-on-sighup]

Prints `PORT <n>` on stdout (flushed) once both sockets listen; `--port 0`
picks a free port that is free for UDP and TCP alike. Exits 0 on SIGTERM.
With --reload-on-sighup, SIGHUP rereads ZONES.json and prints `RELOADED`
(or `RELOAD-FAILED <reason>`, keeping the old zones) so a test can wait
for it. With --query-log, every query received is appended to FILE as one
line `<udp|tcp> <name> <TYPE>` (name lowercased, no trailing dot), written
before the answer is sent: a test counts its queries there.

JSON format (every key but "records" is optional):

  {
    "zones": ["example.test", {"origin": "2.0.192.in-addr.arpa", "negative_ttl": 30}],
    "negative_ttl": 60,
    "records": [
      {"name": "example.test", "type": "MX", "value": "10 mx1.example.test", "ttl": 300},
      {"name": "null.example.test", "type": "MX", "value": "0 ."},
      {"name": "mx1.example.test", "type": "A", "value": "192.0.2.1"},
      {"name": "mx1.example.test", "type": "AAAA", "value": "2001:db8::1"},
      {"name": "example.test", "type": "TXT", "value": ["v=spf1 ", "-all"]},
      {"name": "long.example.test", "type": "TXT", "value": "x... (over 255 bytes)"},
      {"name": "www.example.test", "type": "CNAME", "value": "mx1.example.test"},
      {"name": "1.2.0.192.in-addr.arpa", "type": "PTR", "value": "mx1.example.test"}
    ],
    "behaviours": [
      {"name": "broken.example.test", "behaviour": "servfail"},
      {"name": "example.test", "type": "TXT", "behaviour": "timeout"},
      {"name": "slow.example.test", "behaviour": "delay", "delay_ms": 500}
    ]
  }

- zones: origins this server is authoritative for (strings, or objects with
  their own negative_ttl). Default ["."]: authoritative for every name.
  A name under a zone with no records (and no records below it) is NXDOMAIN;
  a name that exists without records of the asked type is NOERROR/NODATA.
  Both carry the zone's SOA in the authority section, whose TTL and MINIMUM
  are the zone's negative_ttl (RFC 2308 5). A name outside every zone is
  NXDOMAIN without SOA. A zone gets a synthesized SOA unless a record of
  type SOA is given for its origin.
- records: name (absolute, trailing dot optional, case-insensitive), type
  (A, AAAA, MX, TXT, SPF, PTR, CNAME, NS, SOA), value, ttl (default 300).
  MX value "PREF HOST" ("0 ." is a null MX, RFC 7505); SOA value
  "MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM". TXT/SPF value: a string
  (split into 255-byte character-strings when longer) or a list of strings
  (one character-string each: several strings in one record). A CNAME is
  followed within the data, as an authoritative server does.
- behaviours: for a name (and optionally only one type):
  servfail (RCODE 2), refused (RCODE 5), timeout (never answers),
  malformed (a reply with the right id and question whose answer record is
  cut short: a client sees a response it cannot parse), truncate (UDP
  replies carry the TC bit and no records, so the client retries over TCP,
  where the normal answer is served), delay (answers after delay_ms).
UDP replies larger than 512 bytes (or the client's EDNS0 size) are sent
truncated with TC set, as a real server does.
"""

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSRecord

BEHAVIOURS = {"servfail", "refused", "timeout", "malformed", "truncate", "delay"}
DEFAULT_TTL = 300
DEFAULT_NEGATIVE_TTL = 60
MAX_CNAME_CHAIN = 8


def norm(name):
    name = str(name).strip().lower()
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name or "."


def is_under(name, origin):
    return origin == "." or name == origin or name.endswith("." + origin)


def txt_strings(value):
    if isinstance(value, list):
        return [s.encode() if isinstance(s, str) else bytes(s) for s in value]
    data = value.encode()
    return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]


def make_rdata(rtype, value):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        pref, host = value.split()
        return MX(host, int(pref))
    if rtype in ("TXT", "SPF"):
        return TXT(txt_strings(value))
    if rtype == "PTR":
        return PTR(value)
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "NS":
        return NS(value)
    if rtype == "SOA":
        mname, rname, *times = value.split()
        return SOA(mname, rname, [int(t) for t in times])
    raise ValueError(f"unsupported record type {rtype!r}")


class Zones:
    """The parsed JSON: records by name, zone origins, behaviours."""

    def __init__(self, doc):
        self.negative_ttl = int(doc.get("negative_ttl", DEFAULT_NEGATIVE_TTL))
        self.zones = {}
        for zone in doc.get("zones", ["."]):
            if isinstance(zone, str):
                zone = {"origin": zone}
            self.zones[norm(zone["origin"])] = int(zone.get("negative_ttl", self.negative_ttl))
        self.records = {}  # name -> [RR]
        for rec in doc.get("records", []):
            self._add(rec)
        self.behaviours = {}  # (name, TYPE or None) -> behaviour object
        for b in doc.get("behaviours", []):
            if b["behaviour"] not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {b['behaviour']!r}")
            key = (norm(b["name"]), b.get("type", "").upper() or None)
            self.behaviours[key] = b

    def _add(self, rec):
        name = norm(rec["name"])
        rtype = rec["type"].upper()
        rdata = make_rdata(rtype, rec["value"])
        rr = RR(name + ".", getattr(QTYPE, rtype), rdata=rdata,
                ttl=int(rec.get("ttl", DEFAULT_TTL)))
        self.records.setdefault(name, []).append(rr)

    def behaviour(self, name, qtype):
        return self.behaviours.get((name, qtype)) or self.behaviours.get((name, None))

    def zone_of(self, name):
        best = None
        for origin in self.zones:
            if is_under(name, origin) and (best is None or len(origin) > len(best)):
                best = origin
        return best

    def soa(self, origin):
        for rr in self.records.get(origin, []):
            if rr.rtype == QTYPE.SOA:
                return rr
        ttl = self.zones[origin]
        host = "" if origin == "." else origin + "."
        rdata = SOA("ns." + host, "hostmaster." + host, [1, 3600, 600, 86400, ttl])
        return RR(origin + "." if origin != "." else ".", QTYPE.SOA, rdata=rdata, ttl=ttl)

    def exists(self, name):
        if name in self.records:
            return True
        return any(other.endswith("." + name) for other in self.records)

    def answer(self, name, qtype):
        """Returns (rcode, answer RRs, authority RRs)."""
        answers = []
        for _ in range(MAX_CNAME_CHAIN):
            origin = self.zone_of(name)
            if origin is None:
                return (RCODE.NXDOMAIN if not answers else RCODE.NOERROR), answers, []
            rrs = list(self.records.get(name, []))
            if name == origin and not any(rr.rtype == QTYPE.SOA for rr in rrs):
                rrs.append(self.soa(origin))  # the synthesized apex SOA answers too
            matching = [rr for rr in rrs if qtype == "ANY" or QTYPE[rr.rtype] == qtype]
            if matching:
                return RCODE.NOERROR, answers + matching, []
            cnames = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
            if cnames and qtype != "CNAME":
                answers.append(cnames[0])
                name = norm(cnames[0].rdata.label)
                continue
            if self.exists(name):
                return RCODE.NOERROR, answers, [self.soa(origin)]
            return RCODE.NXDOMAIN, answers, [self.soa(origin)]
        return RCODE.SERVFAIL, [], []


def load_zones(path):
    with open(path, encoding="utf-8") as f:
        return Zones(json.load(f))


class Server:
    def __init__(self, zones_path, query_log):
        self.zones_path = zones_path
        self.zones = load_zones(zones_path)
        self.log_lock = threading.Lock()
        self.query_log = open(query_log, "a", encoding="utf-8") if query_log else None

    def log_query(self, proto, name, qtype):
        if self.query_log is None:
            return
        with self.log_lock:
            self.query_log.write(f"{proto} {name} {qtype}\n")
            self.query_log.flush()

    def reload(self):
        try:
            self.zones = load_zones(self.zones_path)
            print("RELOADED", flush=True)
        except (OSError, ValueError, KeyError) as e:
            print(f"RELOAD-FAILED {e}", flush=True)

    def handle(self, data, proto):
        """Returns (reply bytes or None, delay seconds)."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - garbage from the network is dropped
            return None, 0
        if not request.questions:
            return None, 0
        zones = self.zones
        name = norm(request.q.qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        self.log_query(proto, name, qtype)
        reply = request.reply()
        b = zones.behaviour(name, qtype)
        kind = b["behaviour"] if b else None
        if kind == "timeout":
            return None, 0
        if kind in ("servfail", "refused"):
            reply.header.rcode = RCODE.SERVFAIL if kind == "servfail" else RCODE.REFUSED
            return reply.pack(), 0
        if kind == "malformed":
            return malformed(reply), 0
        if kind == "truncate" and proto == "udp":
            return truncated(reply), 0
        rcode, answers, authority = zones.answer(name, qtype)
        reply.header.rcode = rcode
        for rr in answers:
            reply.add_answer(rr)
        for rr in authority:
            reply.add_auth(rr)
        packed = reply.pack()
        if proto == "udp" and len(packed) > udp_limit(request):
            packed = truncated(request.reply())
        delay = b.get("delay_ms", 0) / 1000.0 if kind == "delay" else 0
        return packed, delay


def udp_limit(request):
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, rr.rclass)
    return 512


def truncated(reply):
    """The question kept (clients match it), no records, TC set."""
    reply.rr, reply.auth, reply.ar = [], [], []
    reply.header.tc = 1
    return reply.pack()


def malformed(reply):
    """Right id and question, ANCOUNT 1, then an MX record cut short."""
    packed = bytearray(reply.pack())
    packed[6:8] = struct.pack("!H", 1)
    packed += b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x01\x2c\x00\x40\x00\x0a"
    return bytes(packed)


def serve_udp(server, sock):
    while True:
        data, peer = sock.recvfrom(65535)
        reply, delay = server.handle(data, "udp")
        if reply is None:
            continue
        if delay:
            threading.Timer(delay, sock.sendto, (reply, peer)).start()
        else:
            sock.sendto(reply, peer)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_connection(server, conn):
    with conn:
        while True:
            head = recv_exact(conn, 2)
            if head is None:
                return
            data = recv_exact(conn, struct.unpack("!H", head)[0])
            if data is None:
                return
            reply, delay = server.handle(data, "tcp")
            if reply is None:
                continue  # "timeout": keep the connection, never answer
            if delay:
                threading.Event().wait(delay)
            conn.sendall(struct.pack("!H", len(reply)) + reply)


def serve_tcp(server, sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_tcp_connection, args=(server, conn), daemon=True).start()


def bind_pair(address, port):
    """UDP and TCP sockets on the same port (a free one when port is 0)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for _ in range(50):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((address, port))
        chosen = udp.getsockname()[1]
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((address, chosen))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(64)
        return udp, tcp, chosen
    raise OSError("no port free for both UDP and TCP")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zones")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--query-log")
    parser.add_argument("--reload-on-sighup", action="store_true")
    args = parser.parse_args()

    server = Server(args.zones, args.query_log)
    udp, tcp, port = bind_pair(args.address, args.port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.reload_on_sighup:
        signal.signal(signal.SIGHUP, lambda *_: server.reload())
    else:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    threading.Thread(target=serve_udp, args=(server, udp), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(server, tcp), daemon=True).start()
    print(f"PORT {port}", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
