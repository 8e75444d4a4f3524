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


def test_access_denied_is_an_error_with_exit_4_unless_skip_on_error(logs, receiver, cli_args, proxy):
    total = write_scans(logs, 3, seed=4, per_severity={"HIGH": 2, "LOW": 1})  # repo-0, repo-1, repo-2
    denied = "/aws/ecr/image-scan-findings/repo-0"  # the first group read with one worker
    one_by_one = ("--workers", "1")
    proxy.access_denied("FilterLogEvents", calls=[1])  # an IAM policy without logs:FilterLogEvents on it
    result = run_cli(*cli_args(*one_by_one, endpoint=proxy.url))
    assert result.returncode == 4, result.stderr
    error = f"ERROR: region us-east-1: AccessDeniedException on FilterLogEvents for group {denied}: User: "
    assert error in result.stderr
    got = receiver.take()
    assert [s for s in got.status if "AccessDeniedException" in s] == [
        next(line for line in result.stderr.splitlines() if error in line).split(" ", 2)[2]
    ]  # the same line reaches analysisd
    groups = collections.Counter(e["aws"]["log_info"]["log_group"] for e in got.events)
    assert denied not in groups and sum(groups.values()) == total * 2 // 3  # the other groups were read

    proxy.access_denied("FilterLogEvents", calls=[1])
    skipped = run_cli(*cli_args(*one_by_one, "--skip_on_error", endpoint=proxy.url))
    assert skipped.returncode == 0 and error in skipped.stderr
    later = receiver.take()
    assert any("AccessDeniedException" in s for s in later.status)

    allowed = run_cli(*cli_args(*one_by_one, endpoint=proxy.url))  # the policy was fixed
    assert allowed.returncode == 0, allowed.stderr
    assert_exactly_once(got.__class__(events=got.events + later.events + receiver.take().events), total)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stalled", "after"),
    [
        pytest.param(True, 1, id="analysisd-stalled-after-1"),
        pytest.param(True, 77, id="analysisd-stalled-mid-page-2"),
        pytest.param(True, 150, id="analysisd-stalled-at-page-3-end"),
        pytest.param(False, 120, id="running-after-120"),
        pytest.param(False, 700, id="running-after-700"),
    ],
)
def test_kill_9_at_any_point_resends_only_the_uncommitted_page(
    logs, receiver, cli_args, proxy, stalled, after
):
    """SIGKILL once `after` datagrams reached analysisd, either while analysisd stalls there (the module is
    blocked mid-page) or while it keeps reading: the rerun delivers everything, and re-sends only the tail
    of what the killed run sent, at most one page."""
    page = 50
    total = write_scans(logs, 4, seed=100 + after, per_severity={"HIGH": 200, "LOW": 150})
    proxy.page_split("FilterLogEvents", max_events=page)
    proxy.latency = 0.01
    if stalled:
        receiver.pause_after = after
    proc = start_cli(*cli_args(*FAST, endpoint=proxy.url))
    if stalled:
        assert receiver.paused.wait(60), "analysisd never stalled"
    else:
        receiver.wait_until(lambda r: len(r.raw) >= after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    receiver.pause_after = None
    receiver.paused.clear()
    first = receiver.take().keys()  # in the order sent
    proxy.latency = 0.0
    assert run_cli(*cli_args(*FAST, endpoint=proxy.url)).returncode == 0
    second = receiver.take().keys()
    assert len(set(first) | set(second)) == total, "events lost"
    assert len(first) == len(set(first)) and len(second) == len(set(second)), "sent twice in one run"
    resent = set(first) & set(second)
    assert len(resent) <= page
    assert resent == set(first[len(first) - len(resent) :])  # only the last, uncommitted events
    print(f"killed after {len(first)} of {total} events; {len(resent)} re-sent")
