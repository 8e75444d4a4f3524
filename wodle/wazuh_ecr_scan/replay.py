"""Recorded events instead of CloudWatch, through the same flatten/send/state path.

Accepted files (see README, "Recordings"):
- JSON Lines, one FilterLogEvents event per line plus its `logGroupName` (the multi-group recording
  format; streamed, so any size replays in constant memory);
- the JSON that `aws logs filter-log-events --log-group-name G` prints (name G with --aws_log_groups);
- the layout of the fixtures reference: `{"logGroupName": G, "logStreams": [{"logStreamName": S,
  "events": [{"timestamp": T, "message": M}]}]}`, one such object or a list of them.
Events without an `eventId` get a stable one from their place in their stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.events import LogEvent, Page

PAGE_SIZE = 1000
# Indexing needs only each line's group: a full json.loads of every line would double the replay's cost.
_GROUP_RE = re.compile(rb'^\{"logGroupName"\s*:\s*"((?:[^"\\]|\\.)*)"')


class ReplayReader:
    def __init__(self, path: str, region: str, groups: tuple[str, ...]) -> None:
        self.path = path
        self.region = region
        self._offsets: dict[str, list[int]] = {}
        self._loaded: dict[str, list[LogEvent]] = {}
        self._made_up_ids: dict[tuple[str, str], int] = {}
        if _is_json_lines(path):
            self._index_json_lines()
        else:
            self._load_document(groups)

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        present = sorted({*self._offsets, *self._loaded})
        if not names:
            return [g for g in present if g.startswith(prefix)] or present
        wanted = [n for n in names if not n.endswith("*")]
        prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
        return [g for g in present if g in wanted or (prefixes and g.startswith(prefixes))]

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        events = self._loaded.get(log_group)
        source = iter(events) if events is not None else self._read_lines(log_group)
        page: list[LogEvent] = []
        for event in source:
            if event.timestamp >= start_ms:
                page.append(event)
            if len(page) == PAGE_SIZE:
                yield Page(page)
                page = []
        yield Page(page)

    def delete_stream(self, log_group: str, log_stream: str) -> None:
        """Never called: a replay does not move the reading window, so no stream of it comes due for
        --remove-log-streams (poller._finish_group)."""
        raise NotImplementedError(f"--replay {self.path}: a recording's log streams cannot be removed")

    # -- JSON Lines ------------------------------------------------------------------------------

    def _index_json_lines(self) -> None:
        with open(self.path, "rb") as f:
            offset = 0
            for number, line in enumerate(f, 1):
                if line.strip():
                    self._offsets.setdefault(self._group_of(line, number), []).append(offset)
                offset += len(line)

    def _group_of(self, line: bytes, number: int) -> str:
        match = _GROUP_RE.match(line)
        if match and b"\\" not in match[1] and match[1].isascii():
            return match[1].decode("ascii")
        return self._parse_line(line, f"line {number}")["logGroupName"]

    def _read_lines(self, log_group: str) -> Iterator[LogEvent]:
        with open(self.path, "rb") as f:
            for offset in self._offsets.get(log_group, []):
                f.seek(offset)
                line = f.readline()
                where = f"the line at byte {offset}"
                yield self._event(log_group, self._parse_line(line, where), where)

    def _parse_line(self, line: bytes, where: str) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"--replay {self.path}: {where}: not JSON: {exc}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("logGroupName"), str):
            raise ConfigError(f"--replay {self.path}: {where}: no logGroupName")
        return record

    # -- whole documents ---------------------------------------------------------------------------

    def _load_document(self, groups: tuple[str, ...]) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                document = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--replay {self.path}: cannot read a recording: {exc}") from exc
        documents = document if isinstance(document, list) else [document]
        for item in documents:
            if isinstance(item, dict) and "logStreams" in item:
                self._load_reference_layout(item)
            elif isinstance(item, dict) and "events" in item:
                self._load_filter_output(item, groups)
            else:
                raise ConfigError(
                    f"--replay {self.path}: not a recording (expected JSON Lines, filter-log-events output "
                    "or a {logGroupName, logStreams} object)"
                )

    def _load_filter_output(self, document: dict[str, Any], groups: tuple[str, ...]) -> None:
        if len(groups) != 1 or groups[0].endswith("*"):
            raise ConfigError(
                f"--replay {self.path}: filter-log-events output does not name its group: "
                "give exactly one --aws_log_groups"
            )
        events = self._loaded.setdefault(groups[0], [])
        for n, raw in enumerate(document["events"]):
            events.append(self._event(groups[0], raw, f"events[{n}]"))

    def _load_reference_layout(self, document: dict[str, Any]) -> None:
        group = document.get("logGroupName")
        if not isinstance(group, str):
            raise ConfigError(f"--replay {self.path}: logGroupName missing")
        events = self._loaded.setdefault(group, [])
        for stream in document["logStreams"]:
            name = stream.get("logStreamName")
            for raw in stream.get("events", []):
                # A stream may appear in several objects (a recording appended to while the Lambda
                # wrote): made-up ids continue per stream, or de-duplication would drop the later ones.
                n = self._made_up_ids.get((group, name), 0)
                self._made_up_ids[(group, name)] = n + 1
                raw = {"logStreamName": name, "eventId": f"replay-{n:08d}", **raw}
                events.append(self._event(group, raw, f"{name} event {n}"))
        events.sort(key=lambda e: e.timestamp)

    def _event(self, group: str, raw: Any, where: str) -> LogEvent:
        try:
            return LogEvent(
                group,
                str(raw["logStreamName"]),
                str(raw["eventId"]),
                int(raw["timestamp"]),
                str(raw["message"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"--replay {self.path}: {where}: needs logStreamName, eventId, timestamp, message ({exc!r})"
            ) from exc


def _is_json_lines(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError as exc:
        raise ConfigError(f"--replay {path}: {exc.strerror}") from exc
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "logGroupName" in record and "message" in record
