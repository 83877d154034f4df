#!/usr/bin/env python3
"""One API call's round trip on the daemon's Unix socket, for scripts/bench-api.

    bench_api_client.py PROTO SOCKET CALLS WARMUP

PROTO is "json" (the newline-delimited JSON protocol: one request line, one
reply line) or "http" (the Docker Engine API: HTTP/1.1 keep-alive, replies
framed by Content-Length). One connection for the whole run; WARMUP calls of
each kind first, then CALLS `node ls` back to back, then CALLS
`container inspect c1`, each timed from the first byte written to the last
byte of the reply read. Every reply is checked (an error reply fails the run).
Prints one JSON object: per kind, the latencies' p50, p99, mean, min and max
in microseconds.
"""
import json
import socket
import statistics
import sys
import time

CALLS = {
    "json": {
        "node_ls": b'{"Cluster":"NodeLs"}\n',
        "container_inspect": b'{"ContainerInspect":{"name":"c1"}}\n',
    },
    "http": {
        "node_ls": b"GET /v1.41/nodes HTTP/1.1\r\nHost: docker\r\n\r\n",
        "container_inspect": b"GET /v1.41/containers/c1/json HTTP/1.1\r\nHost: docker\r\n\r\n",
    },
}


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = bytearray()

    def fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise SystemExit("the daemon closed the connection")
        self.buf += chunk

    def until(self, sep):
        """Bytes up to and including sep."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            start = max(0, len(self.buf) - len(sep) + 1)
            self.fill()

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def json_call(self, req):
        self.sock.sendall(req)
        return self.until(b"\n")

    def http_call(self, req):
        self.sock.sendall(req)
        head = self.until(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                raise SystemExit(f"the daemon closes the connection: {head!r}")
        if length is None:
            raise SystemExit(f"a reply without Content-Length: {head!r}")
        body = self.exactly(length)
        return status[1], body


def check(proto, kind, reply):
    if proto == "json":
        value = json.loads(reply)
        if "Ok" not in value:
            raise SystemExit(f"{kind}: error reply {reply[:300]!r}")
    else:
        status, body = reply
        if status != b"200":
            raise SystemExit(f"{kind}: HTTP {status.decode()} {body[:300]!r}")
        json.loads(body)


def main():
    proto, path, calls, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = Conn(path)
    call = conn.json_call if proto == "json" else conn.http_call
    reqs = CALLS[proto]
    for kind, req in reqs.items():
        for _ in range(warmup):
            check(proto, kind, call(req))
    out = {}
    clock = time.perf_counter_ns
    for kind, req in reqs.items():
        lat = []
        replies = []
        for _ in range(calls):
            t0 = clock()
            reply = call(req)
            lat.append(clock() - t0)
            replies.append(reply)
        # Checked after the timed loop, so parsing is not in the figures.
        for reply in replies:
            check(proto, kind, reply)
        lat.sort()
        us = [x / 1000 for x in lat]
        out[kind] = {
            "n": len(us),
            "p50": statistics.median(us),
            "p99": us[-(-99 * len(us) // 100) - 1],  # nearest rank
            "mean": statistics.fmean(us),
            "min": us[0],
            "max": us[-1],
            "reply_bytes": len(replies[0]) if proto == "json" else len(replies[0][1]),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
