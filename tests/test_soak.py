"""Soak: loop mode for many passes while scans keep arriving (some written across passes, as the
Lambda does for up to 15 minutes). 0 lost, 0 duplicates, memory and open files flat."""

from __future__ import annotations

import collections
import os
import random
import signal
import threading
import time

import pytest
from conftest import start_cli
from lambda_writer import make_scan, write_scan


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_soak_loop_mode(logs, receiver, moto, short_dir):
    rng = random.Random(42)
    now_ms = int(time.time() * 1000)
    expected = 0
    stop_writing = threading.Event()

    def writer() -> None:
        nonlocal expected
        n = 0
        while not stop_writing.is_set():
            scan = make_scan(
                rng,
                f"soak/repo-{n % 4}",
                f"build-{n}",
                now_ms - 600_000 + n,
                {"HIGH": rng.randint(0, 8), "LOW": rng.randint(1, 8)},
            )
            half = scan.event_count() // 2
            write_scan(logs, scan, only_first=half)
            time.sleep(0.3)  # the second half lands after the module may have read the first
            write_scan(logs, scan, skip_first=half)
            expected += scan.event_count()
            n += 1

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
    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(3)
    first_rss, first_fds = rss_kb(proc.pid), open_fds(proc.pid)
    time.sleep(12)
    stop_writing.set()
    thread.join()
    time.sleep(3)  # two more passes pick up the last scan
    last_rss, last_fds = rss_kb(proc.pid), open_fds(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]

    got = receiver.take()
    keys = collections.Counter(got.keys())
    passes = sum(1 for s in got.status if "pass done:" in s)
    print(
        f"soak: {passes} passes, {expected} events, RSS {first_rss} kB -> {last_rss} kB, "
        f"fds {first_fds} -> {last_fds}"
    )
    assert passes >= 8
    assert len(keys) == expected, "events lost"
    assert max(keys.values()) == 1, "events duplicated"
    assert last_fds <= first_fds + 1
    assert last_rss - first_rss < 15_000  # kB: flat within allocator noise
