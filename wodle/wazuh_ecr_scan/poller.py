"""One pass: discover → read → flatten → send → commit, for every group of every source.

Which events a pass reads: from the start of the last complete pass less the late-write window (the
Lambda stamps every event of a scan with its start time and writes for up to 15 minutes), or from
--only_logs_after when the group has no state. Events re-read inside that window are skipped by
(stream, eventId), so a rerun re-sends nothing; a page's ids are committed right after its events
were delivered, so a kill re-sends at most one page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import botocore.exceptions

from wazuh_ecr_scan.aws import describe_error, is_credentials_error
from wazuh_ecr_scan.config import Settings, start_of_today_ms
from wazuh_ecr_scan.encode import encode_event
from wazuh_ecr_scan.errors import CredentialsError
from wazuh_ecr_scan.flatten import LogEvent, flatten
from wazuh_ecr_scan.logs import DETAIL, local_only, log
from wazuh_ecr_scan.metrics import GroupStats, PassStats
from wazuh_ecr_scan.reader import Reader
from wazuh_ecr_scan.sender import Sender
from wazuh_ecr_scan.state import GroupKey, StateStore

AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
# Errors a later pass will most likely get past by itself: a warning, not an error.
TRANSIENT_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
}


@dataclass
class Source:
    """One account and region to read, with its reader."""

    account: str
    reader: Reader
    time_filtered: bool = True  # False for replays: recorded events are old, only ids de-duplicate


class Poller:
    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        sender: Sender,
        clock: Callable[[], float] = time.time,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.state = state
        self.sender = sender
        self.clock = clock
        self.should_stop = should_stop
        self.late_ms = settings.late_window_s * 1000
        self._detail = log.isEnabledFor(DETAIL)

    def run_pass(self, sources: list[Source]) -> PassStats:
        stats = PassStats()
        started = self.clock()
        for source in sources:
            self._read_source(source, stats)
        stats.duration = self.clock() - started
        return stats

    def _read_source(self, source: Source, stats: PassStats) -> None:
        region = source.reader.region
        try:
            groups = source.reader.groups(self.settings.log_groups, self.settings.log_group_prefix)
        except AWS_ERRORS as exc:
            self._raise_if_credentials(exc, region)
            stats.errors += 1
            log.error("region %s: %s while listing log groups", region, describe_error(exc))
            return
        log.debug("region %s: %d log groups", region, len(groups))
        for group in groups:
            if self.should_stop():
                return
            group_stats = GroupStats(region, group)
            stats.groups.append(group_stats)
            began = time.monotonic()
            try:
                self._read_group(source, group, group_stats)
            except AWS_ERRORS as exc:
                self._raise_if_credentials(exc, region)
                self._report_skipped(exc, region, group, group_stats, stats)
            finally:
                group_stats.seconds = time.monotonic() - began

    def _read_group(self, source: Source, group: str, stats: GroupStats) -> None:
        key = GroupKey(source.account, source.reader.region, group)
        now_ms = int(self.clock() * 1000)
        start_ms = self._start_ms(key, source, now_ms)
        seen = self.state.seen_ids(key, start_ms)
        log.debug("group %s: reading from %d with %d ids already sent", group, start_ms, len(seen))
        for page in source.reader.pages(group, start_ms):
            stats.pages += 1
            self._deliver_page(key, page, seen, stats)
            if self.should_stop():
                return  # what was delivered is committed; the group's window stays where it was
        if not source.time_filtered:
            self.state.finish_group(key, now_ms, forget_before_ms=None)
            return
        forget_before = now_ms - self.late_ms
        if self.settings.remove_log_streams:
            self._remove_finished_streams(source, key, forget_before)
        self.state.finish_group(key, now_ms, forget_before)

    def _start_ms(self, key: GroupKey, source: Source, now_ms: int) -> int:
        if not source.time_filtered:
            return self.settings.only_logs_after_ms or 0
        read_until = self.state.read_until(key)
        if read_until is not None:
            return read_until - self.late_ms
        if self.settings.only_logs_after_ms is not None:
            return self.settings.only_logs_after_ms
        return start_of_today_ms(now_ms / 1000)

    def _deliver_page(
        self, key: GroupKey, page: list[LogEvent], seen: set[tuple[str, str]], stats: GroupStats
    ) -> None:
        delivered: list[LogEvent] = []
        region = key.region
        prefix = self.settings.log_group_prefix
        try:
            for raw in page:
                if (raw.log_stream, raw.event_id) in seen:
                    stats.already_sent += 1
                    continue
                event = flatten(raw, region, prefix)
                if self._discarded(event):
                    stats.discarded += 1
                else:
                    self.sender.send(encode_event(event))
                    self._account(event, raw, stats)
                delivered.append(raw)
        finally:
            self.state.commit_delivered(key, delivered)
            seen.update((e.log_stream, e.event_id) for e in delivered)

    def _account(self, event: dict, raw: LogEvent, stats: GroupStats) -> None:
        event_type = event["aws"]["event_type"]
        stats.count(event_type)
        stats.streams.add(raw.log_stream)
        if event_type == "unparsed":
            log.warning(
                "unparsed message in group %s stream %s event %s: %s (sent as an unparsed event)",
                raw.log_group,
                raw.log_stream,
                raw.event_id,
                event["aws"]["ecr"]["parse_error"],
                **local_only(),
            )
        elif self._detail:
            log.log(
                DETAIL, "sent %s from %s/%s event %s", event_type, raw.log_group, raw.log_stream, raw.event_id
            )

    def _discarded(self, event: dict) -> bool:
        pattern = self.settings.discard_regex
        if pattern is None or self.settings.discard_field is None:
            return False
        value: object = event
        for part in self.settings.discard_field.split("."):
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        return pattern.search(value if isinstance(value, str) else str(value)) is not None

    def _remove_finished_streams(self, source: Source, key: GroupKey, before_ms: int) -> None:
        delete = getattr(source.reader, "delete_stream", None)
        if delete is None:
            return
        for stream in self.state.streams_done_before(key, before_ms):
            try:
                delete(key.log_group, stream)
            except AWS_ERRORS as exc:
                log.warning("cannot remove log stream %s: %s", stream, describe_error(exc, key.log_group))
                continue
            self.state.forget_stream(key, stream)
            log.debug("group %s: removed log stream %s", key.log_group, stream)

    @staticmethod
    def _raise_if_credentials(exc: BaseException, region: str) -> None:
        if is_credentials_error(exc):
            raise CredentialsError(
                f"region {region}: AWS rejected the credentials: {describe_error(exc)}"
            ) from exc

    @staticmethod
    def _report_skipped(
        exc: BaseException, region: str, group: str, group_stats: GroupStats, stats: PassStats
    ) -> None:
        code = exc.response.get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
        transient = code in TRANSIENT_CODES or isinstance(
            exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
        )
        group_stats.skipped = "skipped: " + (code or exc.__class__.__name__)
        if transient:
            stats.warnings += 1
            log.warning("region %s: %s; group skipped this pass", region, describe_error(exc, group))
        else:
            stats.errors += 1
            log.error("region %s: %s", region, describe_error(exc, group))
