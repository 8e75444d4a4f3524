"""What a reader hands the poller: CloudWatch Logs events, a page of them at a time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogEvent:
    """One event as CloudWatch Logs returns it (FilterLogEvents shape)."""

    log_group: str
    log_stream: str
    event_id: str
    timestamp: int
    message: str


@dataclass(frozen=True)
class Page:
    """One page of a group's events, with AWS's clock (the answer's Date header) when it came from AWS.

    The poller takes the reading window's end from the group's first page: a host clock running ahead
    would otherwise move the window past late writes. None (a replay, no usable header): the host's clock."""

    events: list[LogEvent]
    server_time_ms: int | None = None
