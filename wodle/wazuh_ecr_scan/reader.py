"""Reading CloudWatch Logs: group discovery and the events of one group since a time, page by page.

FilterLogEvents over the whole group costs one call per page whatever the number of streams, so an
idle pass is one call per group. Pages may be partial or empty while more data exists: the group is
finished only when no nextToken comes back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from wazuh_ecr_scan.flatten import LogEvent


class Reader(Protocol):
    region: str

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]: ...

    def pages(self, log_group: str, start_ms: int) -> Iterator[list[LogEvent]]: ...


class CloudWatchReader:
    def __init__(self, client: Any, region: str) -> None:
        self.client = client
        self.region = region
        # AWS's clock (the Date header) at each group's first page: the reading window is AWS's, and a
        # host clock running ahead would otherwise move it past late writes.
        self.server_times_ms: dict[str, int] = {}

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

    def pages(self, log_group: str, start_ms: int) -> Iterator[list[LogEvent]]:
        request: dict[str, Any] = {"logGroupName": log_group, "startTime": max(start_ms, 0)}
        self.server_times_ms.pop(log_group, None)
        while True:
            response = self.client.filter_log_events(**request)
            if "nextToken" not in request:
                self._note_server_time(log_group, response)
            yield [
                LogEvent(log_group, e["logStreamName"], e["eventId"], e["timestamp"], e["message"])
                for e in response.get("events", [])
            ]
            token = response.get("nextToken")
            if not token:
                return
            request["nextToken"] = token

    def _note_server_time(self, log_group: str, response: dict[str, Any]) -> None:
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        # No usable Date header: the host's clock is used. Whole seconds, and the answer was dated after
        # the request: one second less is safe.
        with contextlib.suppress(TypeError, ValueError, IndexError):
            self.server_times_ms[log_group] = int(parsedate_to_datetime(date).timestamp() - 1) * 1000

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        self.client.delete_log_stream(logGroupName=log_group, logStreamName=log_stream)
