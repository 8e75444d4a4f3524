"""A request-rate cap per region and AWS operation, applied to every HTTP attempt, retries included.

AWS's quotas for the read APIs are per account and Region (FilterLogEvents 5-25 requests/s,
DescribeLogGroups about 10/s) and shared with every other reader of the account: a pass fanned out over a
worker pool must stay under them instead of relying on throttling and backoff.

The cap hooks botocore's `before-send` event, which fires once per HTTP attempt (after signing, right
before the request goes out), so a retried call waits for a token like any other request.
"""

from __future__ import annotations

import collections
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

# AWS counts requests when they arrive, and arrivals bunch up by a few ms (connection set-up, thread
# scheduling): a spent token waits this much more than its window, so bunching cannot push one second
# over the cap on AWS's side either.
JITTER_MARGIN_S = 0.05


class TokenBucket:
    """`floor(rate)` tokens (at least one); a spent token comes back one window after it was spent, the
    window being one second (1/rate seconds below 1 request/s) plus JITTER_MARGIN_S.

    So any window of that length holds at most that many grants: never more than `rate` requests in any
    one second, while an idle bucket still lets a short burst of `floor(rate)` go out at once.
    Thread-safe; `clock` and `sleep` are injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.tokens = max(1, math.floor(rate))
        self.window = max(1.0, 1.0 / rate) + JITTER_MARGIN_S
        self.granted = 0
        self._clock = clock
        self._sleep = sleep
        self._spent: collections.deque[float] = collections.deque(maxlen=self.tokens)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a token is free, take it, and return the time (clock's) it was granted."""
        while True:
            with self._lock:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._spent.append(now)
                    self.granted += 1
                    return now
            self._sleep(wait)

    def _wait_needed(self, now: float) -> float:
        if len(self._spent) < self.tokens:
            return 0.0
        return self._spent[0] + self.window - now


class RateLimiter:
    """One TokenBucket per (region, operation), created on first use."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, region: str, operation: str) -> TokenBucket:
        key = (region, operation)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self._clock, self._sleep)
            return bucket

    def buckets(self) -> dict[tuple[str, str], TokenBucket]:
        with self._lock:
            return dict(self._buckets)

    def attach(self, client: Any) -> None:
        """Cap every HTTP attempt `client` makes, under the client's region."""
        handler = functools.partial(self._before_send, client.meta.region_name or "")
        client.meta.events.register("before-send", handler)

    def _before_send(self, region: str, event_name: str = "", **_: Any) -> None:
        # event_name is before-send.<service>.<Operation>. Returning None lets botocore send the request.
        self.bucket(region, event_name.rsplit(".", 1)[-1]).acquire()


@functools.cache
def shared(rate: float) -> RateLimiter:
    """The process-wide limiter for `rate`: clients are rebuilt every pass, the budget must not be."""
    return RateLimiter(rate)
