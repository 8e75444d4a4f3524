"""The pass logic with an injectable clock and in-process fakes (integration tests use moto and sockets):
where reading starts, what a replay may change, and what is committed when sending stops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wazuh_ecr_scan.config import Settings
from wazuh_ecr_scan.errors import AnalysisdUnavailable
from wazuh_ecr_scan.flatten import LogEvent
from wazuh_ecr_scan.poller import COMMIT_EVERY, Poller, Source
from wazuh_ecr_scan.state import GroupKey, StateStore

DAY_MS = 86_400_000
MIDNIGHT = 20_000 * DAY_MS  # some day's 00:00 UTC
STREAM = "HIGH-v1-" + "a" * 64 + "-2024-10-05T23-49-00Z"
A = "/aws/ecr/image-scan-findings/a"
B = "/aws/ecr/image-scan-findings/b"


class FakeReader:
    """CloudWatch as FilterLogEvents sees it: every event with timestamp >= start, in pages."""

    region = "us-east-1"

    def __init__(self, page_size: int = 10_000) -> None:
        self.events: dict[str, list[LogEvent]] = {}
        self.page_size = page_size
        self.starts: dict[str, int] = {}

    def put(self, group: str, timestamp: int, n: int = 1) -> None:
        events = self.events.setdefault(group, [])
        events.extend(
            LogEvent(group, STREAM, f"{group}-{len(events) + i}", timestamp, '{"name": "CVE-1"}')
            for i in range(n)
        )

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        return sorted(self.events)

    def pages(self, log_group: str, start_ms: int) -> Iterator[list[LogEvent]]:
        self.starts[log_group] = start_ms
        matching = [e for e in self.events[log_group] if e.timestamp >= start_ms]
        for i in range(0, len(matching), self.page_size):
            yield matching[i : i + self.page_size]
        yield []


class FakeSender:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail_after = fail_after

    def send(self, datagram: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise AnalysisdUnavailable("gone")
        self.sent.append(datagram)

    def send_status(self, line: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


def poller(state: StateStore, sender: FakeSender, clock: Clock, **settings) -> Poller:
    return Poller(Settings(workers=1, **settings), state, sender, clock)


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
    assert state.read_until(key) is None  # the group's pass did not complete

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
