"""Reading CloudWatch Logs: group discovery and the events of one group since a time, page by page.

FilterLogEvents over the whole group costs one call per page whatever the number of streams, so an
idle pass is one call per group. Pages may be partial or empty while more data exists: the group is
finished only when no nextToken comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from wazuh_ecr_scan.events import LogEvent, Page


class Reader(Protocol):
    """Where a pass's events come from: CloudWatch Logs, or a recording (replay.py)."""

    region: str

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]: ...

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]: ...

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        """--remove-log-streams: the poller calls it for streams whose events were all read."""
        ...


class CloudWatchReader:
    def __init__(self, client: Any, region: str) -> None:
        self.client = client
        self.region = region

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        """Exact names as given; an entry ending in '*' is a prefix; none at all: discover by `prefix`."""
        exact = [name for name in names if not name.endswith("*")]
        prefixes = [name[:-1] for name in names if name.endswith("*")] or ([] if names else [prefix])
        found = set(exact)
        for each in prefixes:
            found.update(self._discover(each))
        return sorted(found)

    def _discover(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("describe_log_groups")
        kwargs = {"logGroupNamePrefix": prefix} if prefix else {}
        return [
            group["logGroupName"]
            for page in paginator.paginate(**kwargs)
            for group in page.get("logGroups", [])
        ]

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        """botocore's paginator: it follows nextToken through partial and empty pages, and raises
        PaginationError when AWS hands back the token it was given (a loop that would never end)."""
        paginator = self.client.get_paginator("filter_log_events")
        for response in paginator.paginate(logGroupName=log_group, startTime=max(start_ms, 0)):
            events = [
                LogEvent(log_group, e["logStreamName"], e["eventId"], e["timestamp"], e["message"])
                for e in response.get("events", [])
            ]
            yield Page(events, _server_time_ms(response))

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        self.client.delete_log_stream(logGroupName=log_group, logStreamName=log_stream)


def _server_time_ms(response: dict[str, Any]) -> int | None:
    """AWS's clock when it answered (the Date header), or None when there is no usable one."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    # Whole seconds, and the answer was dated after the request: one second less is safe.
    try:
        return int(parsedate_to_datetime(date).timestamp() - 1) * 1000
    except (TypeError, ValueError, IndexError):
        return None
