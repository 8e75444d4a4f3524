"""The pass logic with an injectable clock and in-process fakes (integration tests use moto and sockets):
where reading starts, what a replay may change, and what is committed when sending stops."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError
from conftest import QuietSender
from wazuh_ecr_scan import cli
from wazuh_ecr_scan.errors import AnalysisdUnavailable
from wazuh_ecr_scan.events import LogEvent, Page
from wazuh_ecr_scan.poller import COMMIT_EVERY, Poller, Source
from wazuh_ecr_scan.settings import ServiceSettings
from wazuh_ecr_scan.state import GroupKey, StateStore

DAY_MS = 86_400_000
MIDNIGHT = 20_000 * DAY_MS  # some day's 00:00 UTC
STREAM = "HIGH-v1-" + "a" * 64 + "-2024-10-05T23-49-00Z"
A = "/aws/ecr/image-scan-findings/a"
B = "/aws/ecr/image-scan-findings/b"
MIN = 60_000


class FakeReader:
    """CloudWatch as FilterLogEvents sees it: every event with timestamp >= start, in pages."""

    region = "us-east-1"

    def __init__(self, page_size: int = 10_000) -> None:
        self.events: dict[str, list[LogEvent]] = {}
        self.page_size = page_size
        self.starts: dict[str, int] = {}
        self.server_times_ms: dict[str, int] = {}  # the Date header of each group's pages

    def put(self, group: str, timestamp: int, n: int = 1) -> None:
        events = self.events.setdefault(group, [])
        events.extend(
            LogEvent(group, STREAM, f"{group}-{len(events) + i}", timestamp, '{"name": "CVE-1"}')
            for i in range(n)
        )

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        return sorted(self.events)

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        self.starts[log_group] = start_ms
        server_ms = self.server_times_ms.get(log_group)
        matching = [e for e in self.events[log_group] if e.timestamp >= start_ms]
        for i in range(0, len(matching), self.page_size):
            yield Page(matching[i : i + self.page_size], server_ms)
        yield Page([], server_ms)


class FakeSender(QuietSender):
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail_after = fail_after

    def send(self, datagram: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise AnalysisdUnavailable("gone")
        self.sent.append(datagram)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


def poller(state: StateStore, sender: FakeSender, clock: Clock, **settings) -> Poller:
    return Poller(ServiceSettings(**{"workers": 1, **settings}), state, sender, clock)


def test_a_group_first_seen_after_midnight_is_read_from_before_the_last_pass():
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    clock = Clock(MIDNIGHT - 5 * 60_000)  # 23:55
    reader.put(A, MIDNIGHT - 30 * 60_000)
    poller(state, sender, clock).run_pass([Source("default", reader)])
    assert len(sender.sent) == 1

    reader.put(B, MIDNIGHT - 10 * 60_000)  # a new repository's first scan at 23:50, its group created then
    clock.now_ms = MIDNIGHT + 5 * 60_000  # 00:05 the next day
    poller(state, sender, clock).run_pass([Source("default", reader)])
    # not from today 00:00 but from a recent pass over this account and region, less the 20-minute window
    assert reader.starts[B] <= MIDNIGHT - 10 * 60_000
    assert len(sender.sent) == 2


class FlakyReader(FakeReader):
    """Groups in `failing` answer ThrottlingException (a transient error: "skipped this pass")."""

    def __init__(self, page_size: int = 10_000) -> None:
        super().__init__(page_size)
        self.failing: set[str] = set()

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        if log_group in self.failing:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "FilterLogEvents")
        yield from super().pages(log_group, start_ms)


@pytest.mark.parametrize("workers", [1, 4])
def test_a_new_group_skipped_before_midnight_is_read_from_its_first_start_after_it(workers):
    reader, sender, state = FlakyReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, MIDNIGHT - 3 * 60 * MIN)  # both repositories' scans at 21:00
    reader.put(B, MIDNIGHT - 3 * 60 * MIN)
    reader.failing.add(B)
    clock = Clock(MIDNIGHT - 10 * MIN)  # first run 23:50
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])
    assert len(sender.sent) == 1  # B throttled: skipped this pass

    reader.failing.clear()
    clock.now_ms = MIDNIGHT + 5 * MIN  # the next pass, after midnight
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])
    assert reader.starts[B] == MIDNIGHT - DAY_MS  # the day it was first listed, not the new day
    assert len(sender.sent) == 2


def test_a_new_group_interrupted_before_midnight_resumes_from_its_first_start():
    reader, state = FakeReader(page_size=COMMIT_EVERY), StateStore(":memory:")
    reader.put(A, MIDNIGHT - 60 * MIN, n=3 * COMMIT_EVERY)
    first = FakeSender(fail_after=COMMIT_EVERY)
    with pytest.raises(AnalysisdUnavailable):
        poller(state, first, Clock(MIDNIGHT - 10 * MIN)).run_pass([Source("default", reader)])
    second = FakeSender()
    poller(state, second, Clock(MIDNIGHT + 5 * MIN)).run_pass([Source("default", reader)])
    assert len(first.sent) + len(second.sent) == 3 * COMMIT_EVERY
    assert not set(first.sent) & set(second.sent)


def test_a_new_group_listed_but_not_reached_before_a_stop_keeps_its_first_start():
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, MIDNIGHT - 3 * 60 * MIN)
    reader.put(B, MIDNIGHT - 3 * 60 * MIN)
    stop = Poller(
        ServiceSettings(workers=1),
        state,
        sender,
        Clock(MIDNIGHT - 10 * MIN),
        should_stop=lambda: bool(sender.sent),
    )
    stop.run_pass([Source("default", reader)])  # stops after group A
    assert B not in reader.starts
    poller(state, sender, Clock(MIDNIGHT + 5 * MIN)).run_pass([Source("default", reader)])
    assert len(sender.sent) == 2


@pytest.mark.parametrize("workers", [1, 4])
def test_a_new_groups_first_scan_is_not_lost_to_a_group_finished_earlier_in_the_same_pass(workers):
    """With an interval longer than the late window, A (listed first) must not move the window that B,
    new in this listing, starts from."""
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    clock = Clock(MIDNIGHT - 30 * MIN)  # 23:30
    reader.put(A, MIDNIGHT - 60 * MIN)
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])

    reader.put(B, MIDNIGHT - 20 * MIN)  # repository B's first scan, 23:40
    clock.now_ms = MIDNIGHT + 10 * MIN  # next pass 00:10
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])
    assert len(sender.sent) == 2


class SlowPassReader(FakeReader):
    """Reading group A takes 40 minutes; meanwhile repository B's group is created (after the listing)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        yield from super().pages(log_group, start_ms)
        if log_group == A and B not in self.events:
            self.put(B, self.clock.now_ms + 10 * MIN)
            self.clock.now_ms += 40 * MIN


@pytest.mark.parametrize("workers", [1, 4])
def test_a_group_created_during_a_long_pass_is_read_from_before_that_pass_listed(workers):
    state, sender = StateStore(":memory:"), FakeSender()
    clock = Clock(MIDNIGHT - 60 * MIN)  # 23:00
    reader = SlowPassReader(clock)
    others = [f"/aws/ecr/image-scan-findings/c-{n}" for n in range(workers)]  # read after the slow one
    for group in (A, *others):
        reader.put(group, MIDNIGHT - 2 * 60 * MIN)
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])
    assert len(sender.sent) == 1 + workers  # B, created at 23:10, was not listed by this pass

    clock.now_ms = MIDNIGHT + 5 * MIN
    poller(state, sender, clock, workers=workers).run_pass([Source("default", reader)])
    assert len(sender.sent) == 2 + workers


def test_first_ever_pass_starts_today_and_only_logs_after_stays_a_floor():
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    clock = Clock(MIDNIGHT + 3_600_000)
    reader.put(A, MIDNIGHT - 1000)
    poller(state, sender, clock).run_pass([Source("default", reader)])
    assert reader.starts[A] == MIDNIGHT and sender.sent == []

    floor = MIDNIGHT + 3_600_000 - 5 * 60_000
    clock.now_ms += 60_000
    poller(state, sender, clock, only_logs_after_ms=floor).run_pass([Source("default", reader)])
    assert reader.starts[A] == floor  # not the window's start, 20 minutes earlier


def test_a_replay_never_moves_the_live_window():
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, 1000, n=3)
    poller(state, sender, Clock(MIDNIGHT)).run_pass([Source("default", reader, time_filtered=False)])
    assert len(sender.sent) == 3
    assert state.read_until(GroupKey("default", "us-east-1", A)) is None
    poller(state, sender, Clock(MIDNIGHT)).run_pass([Source("default", reader, time_filtered=False)])
    assert len(sender.sent) == 3  # still de-duplicated by id


def test_sending_stopped_mid_page_commits_exactly_what_was_sent():
    reader, state = FakeReader(), StateStore(":memory:")
    reader.put(A, MIDNIGHT + 1000, n=3 * COMMIT_EVERY)
    stops_at = COMMIT_EVERY + 123
    sender = FakeSender(fail_after=stops_at)
    with pytest.raises(AnalysisdUnavailable):
        poller(state, sender, Clock(MIDNIGHT + 60_000)).run_pass([Source("default", reader)])
    key = GroupKey("default", "us-east-1", A)
    assert len(state.seen_ids(key, 0)) == stops_at
    assert state.read_until(key) == MIDNIGHT + 20 * 60_000  # not complete: its first start is kept

    sender = FakeSender()
    poller(state, sender, Clock(MIDNIGHT + 120_000)).run_pass([Source("default", reader)])
    assert len(sender.sent) == 3 * COMMIT_EVERY - stops_at  # the rest, nothing twice


def test_an_event_repeated_inside_one_page_is_sent_once():
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, MIDNIGHT + 1000)
    reader.events[A].append(reader.events[A][0])
    poller(state, sender, Clock(MIDNIGHT + 60_000)).run_pass([Source("default", reader)])
    assert len(sender.sent) == 1


def test_a_host_clock_running_ahead_of_aws_does_not_move_the_window(caplog):
    reader, sender, state = FakeReader(), FakeSender(), StateStore(":memory:")
    aws_now = MIDNIGHT + 3_600_000
    reader.put(A, aws_now - 60_000)
    reader.server_times_ms = {A: aws_now}
    clock = Clock(aws_now + 3_600_000)  # this host is an hour ahead
    poller(state, sender, clock).run_pass([Source("default", reader)])
    assert state.read_until(GroupKey("default", "us-east-1", A)) == aws_now
    assert "clock is 3600 s ahead of AWS's" in caplog.text

    reader.put(A, aws_now - 60_000)  # a late write of the same scan, same timestamp
    poller(state, sender, clock).run_pass([Source("default", reader)])
    assert len(sender.sent) == 2  # an hour-ahead window would have started after it


class VanishedStreamReader(FakeReader):
    """DeleteLogStream as CloudWatch answers it for a stream already gone (by hand, by a retention policy)."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[str] = []

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        self.deletes.append(log_stream)
        raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "DeleteLogStream")


def test_remove_log_streams_forgets_a_stream_that_is_already_gone(caplog):
    reader, sender, state = VanishedStreamReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, MIDNIGHT + 1000)
    clock = Clock(MIDNIGHT + 60 * MIN)
    for _ in range(3):
        poller(state, sender, clock, remove_log_streams=True).run_pass([Source("default", reader)])
        clock.now_ms += 5 * MIN
    assert reader.deletes == [STREAM]  # tried once, not on every pass
    assert state.streams_done_before(GroupKey("default", "us-east-1", A), clock.now_ms) == []
    assert "cannot remove log stream" not in caplog.text


class DeletingReader(FakeReader):
    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[str] = []

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        self.deletes.append(log_stream)


class SlowReadReader(FakeReader):
    """A long read: each later page is dated an hour after the group's first."""

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        for n, page in enumerate(super().pages(log_group, start_ms)):
            yield replace(page, server_time_ms=page.server_time_ms + n * 60 * MIN)


def test_aws_time_comes_from_the_groups_first_page_not_a_later_one():
    """The window ends where AWS's clock stood when the read began: late writes during a long read are
    read again by the next pass."""
    reader, sender, state = SlowReadReader(page_size=1), FakeSender(), StateStore(":memory:")
    aws_now = MIDNIGHT + 3_600_000
    reader.put(A, aws_now - 60_000, n=3)
    reader.server_times_ms = {A: aws_now}
    poller(state, sender, Clock(aws_now + 7 * 60 * MIN)).run_pass([Source("default", reader)])
    assert state.read_until(GroupKey("default", "us-east-1", A)) == aws_now


def test_a_reader_shown_on_the_progress_line_keeps_aws_time_and_stream_removal(monkeypatch):
    """The terminal progress line wraps the reader: both the Date of its pages and its stream deletion
    must still reach the poller."""
    monkeypatch.setattr(cli.PROGRESS, "enabled", True)
    monkeypatch.setattr(cli.PROGRESS, "stream", io.StringIO())
    reader, sender, state = DeletingReader(), FakeSender(), StateStore(":memory:")
    aws_now = MIDNIGHT + 3_600_000
    reader.put(A, aws_now - 60_000)
    reader.server_times_ms = {A: aws_now}
    wrapped = cli._wrap(reader, ServiceSettings())
    assert wrapped is not reader
    clock = Clock(aws_now + 3_600_000)
    poller(state, sender, clock, remove_log_streams=True).run_pass([Source("default", wrapped)])
    assert state.read_until(GroupKey("default", "us-east-1", A)) == aws_now
    assert reader.deletes == []  # its scan may still be writing

    reader.server_times_ms = {A: aws_now + 60 * MIN}
    clock.now_ms += 60 * MIN
    poller(state, sender, clock, remove_log_streams=True).run_pass([Source("default", wrapped)])
    assert reader.deletes == [STREAM]


class DeletedGroupReader(FakeReader):
    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        if log_group == B:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "FilterLogEvents")
        yield from super().pages(log_group, start_ms)


def test_a_discovered_group_deleted_before_its_read_is_a_warning_a_named_one_an_error(caplog):
    reader, sender, state = DeletedGroupReader(), FakeSender(), StateStore(":memory:")
    reader.put(A, MIDNIGHT + 1000)
    reader.put(B, MIDNIGHT + 1000)
    clock = Clock(MIDNIGHT + 60 * MIN)
    stats = poller(state, sender, clock).run_pass([Source("default", reader)])
    assert (stats.errors, stats.warnings, len(sender.sent)) == (0, 1, 1)
    assert f"log group {B} was deleted after it was listed; skipped" in caplog.text
    stats = poller(state, sender, clock, log_groups=(A, B)).run_pass([Source("default", reader)])
    assert (stats.errors, stats.warnings) == (1, 0)
