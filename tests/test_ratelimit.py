"""The request-rate cap: never more than max_rate requests in any second, per region and operation,
retries included. Unit tests on a fake clock; one run through the fault proxy counts what reached the wire."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.retries.standard
import pytest
from botocore.exceptions import ClientError
from fault_proxy import FaultProxy
from moto_server import logs_client
from wazuh_ecr_scan import ratelimit
from wazuh_ecr_scan.aws import CallCounter
from wazuh_ecr_scan.aws import logs_client as module_logs_client
from wazuh_ecr_scan.ratelimit import JITTER_MARGIN_S, RateLimiter, TokenBucket
from wazuh_ecr_scan.settings import ServiceSettings


class FakeClock:
    """Time moves only when someone sleeps; safe to share between threads."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def max_in_window(times: list[float], window: float) -> int:
    """The most grants that fall in any half-open window [t, t + window)."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best


@pytest.mark.parametrize(("rate", "per_second"), [(4.0, 4), (1.0, 1), (2.5, 2), (25.0, 25)])
def test_no_second_holds_more_than_the_rate(rate: float, per_second: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock, clock.sleep)
    grants = [bucket.acquire() for _ in range(60)]
    assert max_in_window(grants, 1.0) == per_second  # the cap is reached, never passed
    assert grants[:per_second] == [1000.0] * per_second  # an idle bucket lets a burst go at once
    assert bucket.granted == 60


def test_below_one_request_per_second_spaces_requests_out() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock, clock.sleep)
    grants = [bucket.acquire() for _ in range(5)]
    assert [b - a for a, b in itertools.pairwise(grants)] == pytest.approx([2.0 + JITTER_MARGIN_S] * 4)


def test_a_token_comes_back_one_second_after_it_was_spent() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock, clock.sleep)
    bucket.acquire()
    clock.sleep(0.4)
    bucket.acquire()
    margin = JITTER_MARGIN_S
    assert bucket.acquire() == pytest.approx(1001.0 + margin)  # the first token, back at t0 + 1 s + margin
    assert bucket.acquire() == pytest.approx(
        1001.4 + margin
    )  # the second, at its own spend time + 1 s + margin


def test_threads_sharing_a_bucket_never_pass_the_cap() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock, clock.sleep)
    grants: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            granted = bucket.acquire()
            with lock:
                grants.append(granted)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(grants) == 200 and bucket.granted == 200
    assert max_in_window(grants, 1.0) <= 5


def test_buckets_are_per_region_and_operation() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock, clock.sleep)
    for region, operation in [("us-east-1", "FilterLogEvents"), ("us-east-1", "DescribeLogGroups")] * 2 + [
        ("eu-west-1", "FilterLogEvents")
    ]:
        limiter.bucket(region, operation).acquire()
    counts = {key: bucket.granted for key, bucket in limiter.buckets().items()}
    assert counts == {
        ("us-east-1", "FilterLogEvents"): 2,
        ("us-east-1", "DescribeLogGroups"): 2,
        ("eu-west-1", "FilterLogEvents"): 1,
    }
    # the second call of each us-east-1 operation waited, and in parallel: one window in all
    assert clock.now == pytest.approx(1001.0 + JITTER_MARGIN_S)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


# -- on the wire ------------------------------------------------------------------------------------


@pytest.fixture
def proxy(moto: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto, seed=6) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry at once: a retry then competes for the next token straight away."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda *_: 0.0)


def test_every_attempt_waits_for_a_token_retries_included(proxy: FaultProxy, logs: Any, no_backoff) -> None:
    group = "/aws/ecr/image-scan-findings/rate"
    logs.create_log_group(logGroupName=group)
    proxy.reset_counts()
    proxy.throttle("FilterLogEvents", share=0.4)
    client = logs_client(proxy.url, retries={"mode": "standard", "max_attempts": 6})
    limiter = RateLimiter(8)
    limiter.attach(client)
    bucket = limiter.bucket("us-east-1", "FilterLogEvents")
    grants: list[float] = []
    acquire = bucket.acquire

    def recorded() -> float:
        grants.append(acquire())
        return grants[-1]

    bucket.acquire = recorded  # type: ignore[method-assign]

    def reader() -> None:
        for _ in range(5):
            # a call whose every attempt was throttled still sent each attempt through the cap
            with contextlib.suppress(ClientError):
                client.filter_log_events(logGroupName=group)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    sent = [r.started for r in proxy.requests if r.operation == "FilterLogEvents"]
    assert proxy.fault_count("FilterLogEvents", "throttle") > 0  # retries did happen
    assert len(sent) == len(grants) == bucket.granted > 20  # every attempt on the wire took a token
    assert max_in_window(grants, 1.0) == 8
    # Arrival times at the proxy lag the grants by a variable few ms (loopback, threads, the GIL); the
    # bucket's margin covers that, and a loaded machine more: compare with a slightly shorter second.
    assert max_in_window(sent, 0.9) <= 8


def test_module_clients_share_one_cap_per_rate(proxy: FaultProxy, logs: Any) -> None:
    settings = ServiceSettings(service_endpoint=proxy.url, max_rate=37.0)
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    counter = CallCounter()
    for _ in range(2):  # two clients of one rate (two service blocks, or two regions)
        module_logs_client(settings, session, "us-east-1", counter).describe_log_groups()
    bucket = ratelimit.shared(37.0).bucket("us-east-1", "DescribeLogGroups")
    assert bucket.granted == proxy.count("DescribeLogGroups") == 2
