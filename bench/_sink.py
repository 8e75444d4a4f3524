"""A stand-in for analysisd's queue socket, in its own process so it shares no CPU time (or GIL) with the
process being measured: binds an AF_UNIX datagram socket and counts what arrives.

    python bench/_sink.py SOCKET_PATH [--keys]

Totals: `events` counts datagrams made from a log event (they carry its event id), `made` those the
finding lifecycle makes (scan_changes, resolved findings). Prints `ready` once bound, then answers each
line on stdin: `stats` → one JSON line of totals; `reset`
→ zero the totals (the keys seen so far are kept, to catch duplicates across passes); EOF → exit.
A datagram `bench:mark:<n>` is a marker: `wait <n>` answers once it arrived, so every datagram sent
before it has been counted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import threading
from collections import Counter

EVENT_HEADER = b"1:Wazuh-AWS:"
MARK = b"bench:mark:"
_KEY_RE = re.compile(rb'"log_stream":"((?:[^"\\]|\\.)*)","event_id":"([^"]*)"')


class Sink:
    def __init__(self, path: str, keys: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(path)
        self.want_keys = keys
        self.lock = threading.Lock()
        self.marks: set[int] = set()
        self.mark_seen = threading.Condition(self.lock)
        self.keys: Counter[bytes] = Counter()
        self.reset()

    def reset(self) -> None:
        self.events = self.made = self.status = self.bytes = self.digest = self.duplicates = 0

    def drain(self) -> None:
        while True:
            data = self.sock.recv(1 << 17)
            with self.lock:
                self._count(data)

    def _count(self, data: bytes) -> None:
        if data.startswith(MARK):
            self.marks.add(int(data[len(MARK) :]))
            self.mark_seen.notify_all()
            return
        if not data.startswith(EVENT_HEADER):
            self.status += 1
            return
        if b'"event_id":' in data:
            self.events += 1
        else:  # made by the finding lifecycle (scan_changes, resolved findings): no log event carries it
            self.made += 1
        self.bytes += len(data)
        # order-independent digest: two runs sent the same datagrams iff the sums match
        self.digest = (self.digest + int.from_bytes(hashlib.blake2b(data, digest_size=8).digest())) % 2**64
        if self.want_keys:
            match = _KEY_RE.search(data)
            key = b"\0".join(match.groups()) if match else data
            self.keys[key] += 1
            if self.keys[key] > 1:
                self.duplicates += 1

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "events": self.events,
                "made": self.made,
                "status": self.status,
                "bytes": self.bytes,
                "digest": self.digest,
                "duplicates": self.duplicates,
                "unique_keys": len(self.keys),
            }

    def wait_mark(self, n: int) -> None:
        with self.lock:
            self.mark_seen.wait_for(lambda: n in self.marks, timeout=60)


def main() -> None:
    path = sys.argv[1]
    sink = Sink(path, "--keys" in sys.argv[2:])
    threading.Thread(target=sink.drain, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["stats"]:
            print(json.dumps(sink.stats()), flush=True)
        elif command == ["reset"]:
            with sink.lock:
                sink.reset()
            print("ok", flush=True)
        elif command[:1] == ["wait"]:
            sink.wait_mark(int(command[1]))
            print("ok", flush=True)
    os.unlink(path)


if __name__ == "__main__":
    main()
