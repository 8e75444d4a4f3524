"""Faults AWS really produces, injected by a proxy in front of moto's server: throttling, 5xx, reset
connections, partial and empty pages, a kill -9 at random points. Nothing lost, nothing twice."""

from __future__ import annotations

import collections
import random
import signal
import time

import pytest
from conftest import run_cli, start_cli
from fault_proxy import FaultProxy
from lambda_writer import make_scan, write_scan

NOW_MS = int(time.time() * 1000)


# Tiny pages make many calls; the request-rate cap (tested on its own) would only slow these tests down.
FAST = ("--max_rate", "100")


@pytest.fixture
def proxy(moto):
    with FaultProxy(moto, seed=11) as p:
        yield p


def write_scans(logs, n: int, seed: int, per_severity: dict[str, int]) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(n):
        scan = make_scan(rng, f"repo-{i % 3}", f"v{i}.0-rc.1", NOW_MS - 300_000 + i, per_severity)
        write_scan(logs, scan)
        total += scan.event_count()
    return total


def assert_exactly_once(received, total: int) -> None:
    keys = collections.Counter(received.keys())
    assert sum(keys.values()) == total, "events lost or duplicated"
    assert max(keys.values()) == 1


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda p: p.throttle("*", share=0.15), id="throttling"),
        pytest.param(lambda p: p.unavailable("*", share=0.15), id="503"),
        pytest.param(lambda p: p.unavailable("*", status=500, share=0.15), id="500"),
        pytest.param(lambda p: p.connection_reset("*", share=0.15), id="reset"),
    ],
)
def test_faults_under_retries_lose_nothing(logs, receiver, cli_args, proxy, inject):
    total = write_scans(logs, 6, seed=1, per_severity={"HIGH": 4, "LOW": 3})
    inject(proxy)
    proxy.page_split("FilterLogEvents", max_events=5, empty_pages=1)
    result = run_cli(*cli_args("--max_attempts", "6", "--retry_mode", "standard", *FAST, endpoint=proxy.url))
    assert result.returncode == 0, result.stderr
    assert proxy.fault_count() > 0  # the faults really happened
    assert_exactly_once(receiver.take(), total)
    assert "skipped this pass" not in result.stderr


def test_empty_and_partial_pages_are_followed_to_the_end(logs, receiver, cli_args, proxy):
    total = write_scans(logs, 3, seed=2, per_severity={"CRITICAL": 10, "MEDIUM": 10})
    proxy.page_split("FilterLogEvents", max_events=3, empty_pages=2, leading_empty_pages=1)
    result = run_cli(*cli_args(*FAST, endpoint=proxy.url))
    assert result.returncode == 0, result.stderr
    assert_exactly_once(receiver.take(), total)
    # every piece and every empty page was asked for: ⌈events/3⌉ pieces per group, 2 empty between pieces
    assert proxy.count("FilterLogEvents") > total // 3 * 2


def test_a_group_that_stays_throttled_is_skipped_with_a_warning_and_read_next_pass(
    logs, receiver, cli_args, proxy
):
    total = write_scans(logs, 3, seed=3, per_severity={"HIGH": 5})
    proxy.throttle("FilterLogEvents", calls=[1, 2, 3])  # every attempt for the first group...
    # ...read alone: with workers, the first three calls would belong to three groups
    first = run_cli(
        *cli_args("--max_attempts", "3", "--retry_mode", "standard", "--workers", "1", endpoint=proxy.url)
    )
    assert first.returncode == 0, first.stderr
    warnings = [
        line for line in first.stderr.splitlines() if "WARNING" in line and "skipped this pass" in line
    ]
    assert len(warnings) == 1, first.stderr
    assert "ThrottlingException on FilterLogEvents for group /aws/ecr" in warnings[0]
    got = receiver.take()
    assert any("WARNING: region us-east-1: ThrottlingException" in s for s in got.status)
    assert "skipped_groups=1" in first.stderr

    second = run_cli(*cli_args(endpoint=proxy.url))
    assert second.returncode == 0
    assert_exactly_once(got.__class__(events=got.events + receiver.take().events), total)


def test_access_denied_is_an_error_with_exit_4_unless_skip_on_error(logs, receiver, cli_args, short_dir):
    missing = "/aws/ecr/image-scan-findings/does-not-exist"
    result = run_cli(*cli_args("--aws_log_groups", missing))
    assert result.returncode == 4
    assert f"ResourceNotFoundException on FilterLogEvents for group {missing}" in result.stderr
    assert any("ERROR" in s and missing in s for s in receiver.take().status)
    assert run_cli(*cli_args("--aws_log_groups", missing, "--skip_on_error")).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_kill_9_at_random_points_resends_at_most_one_page(logs, receiver, cli_args, proxy, seed):
    page = 50
    total = write_scans(logs, 4, seed=100 + seed, per_severity={"HIGH": 200, "LOW": 150})
    proxy.page_split("FilterLogEvents", max_events=page)
    proxy.latency = 0.01
    rng = random.Random(seed)
    if seed % 2:  # odd seeds: analysisd stalls mid-page, so the kill lands inside a page
        receiver.pause_after = rng.randint(1, 3 * page)
    proc = start_cli(*cli_args(*FAST, endpoint=proxy.url))
    time.sleep(rng.uniform(0.5, 2.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    receiver.pause_after = None
    receiver.paused.clear()
    first = receiver.take()
    proxy.latency = 0.0
    assert run_cli(*cli_args(*FAST, endpoint=proxy.url)).returncode == 0
    second = receiver.take()
    keys = collections.Counter(first.keys() + second.keys())
    assert len(keys) == total  # every finding delivered after the rerun
    duplicates = sum(n - 1 for n in keys.values())
    assert duplicates <= page
    print(f"seed {seed}: killed after {len(first.events)} of {total} events; {duplicates} re-sent")
