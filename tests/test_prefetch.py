"""Reading ahead in a worker pool: the same events, state and errors as a sequential pass, delivery in
the main thread, bounded pages in flight; and through the real CLI against moto, --workers 4 == --workers 1.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import QuietSender, run_cli
from fault_proxy import FaultProxy
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan.errors import CredentialsError
from wazuh_ecr_scan.events import LogEvent, Page
from wazuh_ecr_scan.poller import Poller, Source
from wazuh_ecr_scan.prefetch import Prefetcher
from wazuh_ecr_scan.settings import ServiceSettings
from wazuh_ecr_scan.state import StateStore

PREFIX = "/aws/ecr/image-scan-findings/"
T0 = 1_749_261_733_844


def aws_error(code: str, operation: str = "FilterLogEvents") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "test"}}, operation)


# -- Prefetcher alone ---------------------------------------------------------------------------------


def test_jobs_and_pages_come_back_in_order_whatever_the_workers_timing() -> None:
    rng = random.Random(1)
    delays = {(j, p): rng.random() / 500 for j in range(12) for p in range(5)}

    def pages(job: int) -> Iterator[tuple[int, int]]:
        for p in range(5):
            time.sleep(delays[job, p])
            yield job, p

    with Prefetcher(4) as prefetch:
        got = [
            (job, list(stream or ()))
            for job, stream in prefetch.ordered(range(12), lambda j: lambda: pages(j))
        ]
    assert got == [(j, [(j, p) for p in range(5)]) for j in range(12)]


def test_pages_in_flight_stay_bounded() -> None:
    workers, depth = 3, 1
    fetched = consumed = peak = 0
    lock = threading.Lock()

    def pages(job: int) -> Iterator[int]:
        nonlocal fetched, peak
        for p in range(20):
            with lock:
                fetched += 1
                peak = max(peak, fetched - consumed)
            yield p

    with Prefetcher(workers, depth) as prefetch:
        for _, stream in prefetch.ordered(range(6), lambda j: lambda: pages(j)):
            for _ in stream or ():
                time.sleep(0.001)  # a slow consumer: the workers run ahead as far as they may
                with lock:
                    consumed += 1
    assert consumed == 120
    # each stream: at most `depth` pages fetched and not yet taken; plus the consumer's current page
    assert peak <= workers * depth + 1


def test_a_worker_error_surfaces_after_the_pages_before_it_as_the_same_exception() -> None:
    boom = aws_error("ThrottlingException")

    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise boom

    received: list[int] = []
    with Prefetcher(2) as prefetch:
        for _, stream in prefetch.ordered(["only"], lambda _: pages):
            with pytest.raises(ClientError) as caught:
                for page in stream or ():
                    received.append(page)
    assert received == [1, 2] and caught.value is boom


def test_leaving_early_stops_the_workers_before_their_next_fetch() -> None:
    fetched: list[int] = []

    def endless(job: int) -> Iterator[int]:
        n = 0
        while True:
            fetched.append(job)
            n += 1
            yield n

    with Prefetcher(3) as prefetch:
        for _, stream in prefetch.ordered(range(10), lambda j: lambda: endless(j)):
            next(iter(stream or ()))
            break
    settled = len(fetched)
    time.sleep(0.2)
    assert len(fetched) == settled  # close() joined the workers: nothing fetches any more
    assert set(fetched) <= {0, 1, 2}  # only the window was ever started
    assert not [t for t in threading.enumerate() if t.name.startswith("wazuh-ecr-scan-read")]


def test_a_job_without_pages_keeps_its_place() -> None:
    with Prefetcher(2) as prefetch:
        got = [
            (job, stream is None)
            for job, stream in prefetch.ordered("abc", lambda j: None if j == "b" else lambda: iter([j]))
        ]
        assert got == [("a", False), ("b", True), ("c", False)]


# -- Poller: --workers 4 against --workers 1 ----------------------------------------------------------


class FakeReader:
    """Groups with fixed pages; a page index may raise instead; records the threads that called it."""

    def __init__(
        self,
        region: str,
        pages: dict[str, list[list[LogEvent]]],
        fail_at: dict[str, tuple[int, Exception]] | None = None,
        listing_error: Exception | None = None,
    ) -> None:
        self.region = region
        self._pages = pages
        self.fail_at = fail_at or {}
        self._listing_error = listing_error
        self.threads: set[str] = set()
        self.starts: dict[str, int] = {}

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        self.threads.add(threading.current_thread().name)
        if self._listing_error is not None:
            raise self._listing_error
        return sorted(self._pages)

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        self.threads.add(threading.current_thread().name)
        self.starts[log_group] = start_ms
        for index, page in enumerate(self._pages[log_group]):
            failing = self.fail_at.get(log_group)
            if failing is not None and failing[0] == index:
                raise failing[1]
            time.sleep(0.001)
            yield Page([e for e in page if e.timestamp >= start_ms])


class ListSender(QuietSender):
    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.threads: set[str] = set()

    def send(self, datagram: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        self.datagrams.append(datagram)


def lambda_pages(repository: str, seed: int, page_size: int) -> list[list[LogEvent]]:
    rng = random.Random(seed)
    events: list[LogEvent] = []
    for n in range(3):
        scan = make_scan(rng, repository, f"v{n}", T0 + n * 1000, {"HIGH": 4, "LOW": 3, "MEDIUM": 2})
        for stream, messages in scan.streams():
            for message in messages:
                event_id = f"{len(events):056d}"
                events.append(LogEvent(scan.log_group, stream, event_id, scan.lambda_start_ms, message))
    return [events[i : i + page_size] for i in range(0, len(events), page_size)] + [[]]


def sources_for_test() -> list[Source]:
    east = {PREFIX + f"repo-{n}": lambda_pages(f"repo-{n}", n, page_size=7) for n in range(6)}
    west = {PREFIX + f"west-{n}": lambda_pages(f"west-{n}", 10 + n, page_size=5) for n in range(3)}
    return [
        Source(
            "acct", FakeReader("us-east-1", east, {PREFIX + "repo-2": (3, aws_error("ThrottlingException"))})
        ),
        Source(
            "acct", FakeReader("us-east-2", {}, listing_error=aws_error("AccessDenied", "DescribeLogGroups"))
        ),
        Source(
            "acct",
            FakeReader("eu-west-1", west, {PREFIX + "west-1": (0, aws_error("AccessDeniedException"))}),
        ),
    ]


SETTINGS = {"only_logs_after_ms": 0, "late_window_s": 1200}


def run_pass(workers: int, sources: list[Source], stop_after: int | None = None) -> dict[str, Any]:
    state = StateStore(":memory:")
    sender = ListSender()
    poller = Poller(
        ServiceSettings(workers=workers, **SETTINGS),
        state,
        sender,
        clock=lambda: T0 / 1000 + 60,
        should_stop=lambda: stop_after is not None and len(sender.datagrams) >= stop_after,
    )
    stats = poller.run_pass(sources)
    result = {
        "datagrams": sender.datagrams,
        "next": next_pass(state),
        "per_group": [
            (g.region, g.log_group, g.findings, g.summaries, g.pages, g.skipped) for g in stats.groups
        ],
        "errors": (stats.errors, stats.warnings),
        "sender_threads": sender.threads,
    }
    state.close()
    return result


def next_pass(state: StateStore) -> dict[str, Any]:
    """What the state left behind means: where a later sequential pass, with nothing failing, starts
    each group and what it sends."""
    sources = [Source(s.account, FakeReader(s.reader.region, s.reader._pages)) for s in sources_for_test()]
    sender = ListSender()
    Poller(ServiceSettings(workers=1, **SETTINGS), state, sender, clock=lambda: T0 / 1000 + 120).run_pass(
        sources
    )
    starts = {group: start for source in sources for group, start in source.reader.starts.items()}
    return {"starts": starts, "datagrams": sender.datagrams}


def by_group(datagrams: list[bytes]) -> dict[str, list[bytes]]:
    groups: dict[str, list[bytes]] = {}
    for datagram in datagrams:
        group = json.loads(datagram.split(b":", 2)[2])["aws"]["log_info"]["log_group"]
        groups.setdefault(group, []).append(datagram)
    return groups


def test_workers_deliver_exactly_what_a_sequential_pass_delivers() -> None:
    one = run_pass(1, sources_for_test())
    four_sources = sources_for_test()
    four = run_pass(4, four_sources)
    assert by_group(four["datagrams"]) == by_group(one["datagrams"])  # each group: same events, same order
    assert sorted(four["datagrams"]) == sorted(one["datagrams"]) and len(one["datagrams"]) > 200
    for key in ("next", "errors"):
        assert four[key] == one[key], key
    # what was sent is not sent again; the throttled and refused groups are read again from their start,
    # the others from this pass's listing time less the late-write window
    assert not set(one["next"]["datagrams"]) & set(one["datagrams"])
    unfinished = {PREFIX + "repo-2", PREFIX + "west-1"}
    assert {g for g, start in one["next"]["starts"].items() if start == 0} == unfinished
    assert {s for g, s in one["next"]["starts"].items() if g not in unfinished} == {T0 + 60_000 - 1_200_000}
    assert sorted(four["per_group"]) == sorted(one["per_group"])
    assert one["errors"] == (2, 1)  # listing AccessDenied + west-1 AccessDenied; repo-2 throttled
    assert [g[5] for g in one["per_group"]].count("skipped: ThrottlingException") == 1
    # regions are taken in turn, so the pool (and each region's rate cap) works on several at once
    assert [g[0] for g in four["per_group"][:4]] == ["us-east-1", "eu-west-1"] * 2
    # fetching ran in the pool, delivery stayed in the main thread
    assert four["sender_threads"] == {threading.main_thread().name}
    fetch_threads = set().union(*(s.reader.threads for s in four_sources))
    assert fetch_threads and all(name.startswith("wazuh-ecr-scan-read") for name in fetch_threads)


def test_one_region_is_delivered_in_the_sequential_order() -> None:
    one = run_pass(1, sources_for_test()[:1])
    four = run_pass(4, sources_for_test()[:1])
    assert four["datagrams"] == one["datagrams"] and four["per_group"] == one["per_group"]


def test_stopping_mid_group_stops_between_pages_as_sequentially() -> None:
    one = run_pass(1, sources_for_test(), stop_after=10)
    four = run_pass(4, sources_for_test(), stop_after=10)
    assert four["datagrams"] == one["datagrams"] and len(one["datagrams"]) == 14  # 10 reached mid-page 2
    # No group finished: the next pass reads every group from its first start (only_logs_after 0) and
    # sends exactly what the stopped one did not.
    assert four["next"] == one["next"]
    assert set(one["next"]["starts"].values()) == {0}
    assert not set(one["next"]["datagrams"]) & set(one["datagrams"])


@pytest.mark.parametrize("workers", [1, 4])
def test_credentials_rejected_for_a_group_ends_the_pass(workers: int) -> None:
    sources = sources_for_test()
    sources[0].reader.fail_at[PREFIX + "repo-3"] = (1, aws_error("UnrecognizedClientException"))
    with pytest.raises(CredentialsError, match="region us-east-1: AWS rejected the credentials"):
        run_pass(workers, sources)


# -- the real CLI against moto ------------------------------------------------------------------------


@pytest.fixture
def split_proxy(moto: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto, seed=3) as proxy:
        proxy.page_split("FilterLogEvents", max_events=9, empty_pages=1)
        yield proxy


def test_cli_with_four_workers_sends_what_one_worker_sends(logs, receiver, cli_args, short_dir, split_proxy):
    now = int(time.time() * 1000)
    rng = random.Random(11)
    for n in range(5):
        write_scan(logs, make_scan(rng, f"team/repo-{n}", "v1", now - 60_000, {"HIGH": 6, "LOW": 5}))
    received = {}
    for workers in ("1", "4"):
        state = str(short_dir / f"state-{workers}.db")
        args = cli_args(
            "--workers", workers, "--max_rate", "100", "--state_db", state, endpoint=split_proxy.url
        )
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        received[workers] = receiver.take().events
        assert run_cli(*args).returncode == 0  # rerun: nothing new
        assert receiver.take().events == []
        calls = dict(re.findall(r"(\w+)=(\d+)", re.search(r"API calls: (.*)", result.stderr)[1]))
        assert calls["DescribeLogGroups"] == "1"
    assert received["4"] == received["1"] and len(received["1"]) == 5 * 12
