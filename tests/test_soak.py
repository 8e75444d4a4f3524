"""Soak: loop mode for many passes while scans keep arriving, each written in two halves on either side
of a pass (as the Lambda does for up to 15 minutes). 0 lost, 0 duplicates, and what is bounded by design
stays flat: open files and threads. Memory is a benchmark figure (printed here, measured in bench/)."""

from __future__ import annotations

import collections
import os
import random
import signal
import time

import pytest
from conftest import start_cli
from lambda_writer import make_scan, write_scan

ROUNDS = 4  # each round writes the second halves of the last round's scans and the first halves of new ones
PER_ROUND = 3


def new_scan(rng: random.Random, now_ms: int, n: int):
    per_severity = {"HIGH": rng.randint(0, 8), "LOW": rng.randint(1, 8)}
    return make_scan(rng, f"soak/repo-{n % 4}", f"build-{n}", now_ms - 600_000 + n, per_severity)


def rss_kb(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def threads(pid: int) -> int:
    return _status_field(pid, "Threads")


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def passes_done(received) -> int:
    return sum(1 for s in received.status if "pass done:" in s)


@pytest.mark.slow
def test_soak_loop_mode(logs, receiver, moto, short_dir):
    rng = random.Random(42)
    now_ms = int(time.time() * 1000)
    proc = start_cli(
        "--interval",
        "1s",
        "--service_endpoint",
        moto,
        "--sts_endpoint",
        moto,
        "--socket",
        receiver.path,
        "--state_db",
        str(short_dir / "state.db"),
        "--only_logs_after",
        "2020-JAN-01",
    )
    try:
        receiver.wait_until(lambda r: passes_done(r) >= 1)
        first_fds, first_threads, first_rss = open_fds(proc.pid), threads(proc.pid), rss_kb(proc.pid)
        scans = [new_scan(rng, now_ms, n) for n in range(ROUNDS * PER_ROUND)]
        rounds = [scans[i : i + PER_ROUND] for i in range(0, len(scans), PER_ROUND)]
        previous: list = []
        for batch in [*rounds, []]:
            for scan in previous:
                write_scan(logs, scan, skip_first=scan.event_count() // 2)
            for scan in batch:
                write_scan(logs, scan, only_first=scan.event_count() // 2)
            done = passes_done(receiver.settle())
            receiver.wait_until(lambda r, done=done: passes_done(r) >= done + 2)  # a whole pass in between
            previous = batch
        expected = sum(scan.event_count() for scan in scans)
        receiver.wait_until(lambda r: len(r.events) >= expected)
        last_fds, last_threads, last_rss = open_fds(proc.pid), threads(proc.pid), rss_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]

    got = receiver.take()
    keys = collections.Counter(got.keys())
    print(
        f"soak: {passes_done(got)} passes, {expected} events, RSS {first_rss} kB -> {last_rss} kB, "
        f"fds {first_fds} -> {last_fds}, threads {first_threads} -> {last_threads}"
    )
    assert len(keys) == expected, "events lost"
    assert max(keys.values()) == 1, "events duplicated"
    assert last_fds <= first_fds
    assert last_threads <= first_threads
