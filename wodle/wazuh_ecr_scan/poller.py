"""One pass: discover → read → flatten → send → commit, for every group of every source.

Which events a pass reads: from the listing time of the group's last complete pass less the late-write
window (the Lambda stamps every event of a scan with its start time and writes for up to 15 minutes), or
from its first start (kept as soon as the group is listed) when no pass over it has completed yet.
Events re-read inside that window are skipped by (stream, eventId), so a rerun re-sends nothing; a
page's ids are committed right after its events were delivered, so a kill re-sends at most one page.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import botocore.exceptions

from wazuh_ecr_scan import lifecycle
from wazuh_ecr_scan.aws import (
    AWS_ERRORS,
    NOT_FOUND_CODE,
    TRANSIENT_CODES,
    describe_error,
    error_code,
    is_credentials_error,
    no_credentials_message,
)
from wazuh_ecr_scan.discard import Discarder
from wazuh_ecr_scan.encode import encode_event
from wazuh_ecr_scan.errors import CredentialsError, FatalError
from wazuh_ecr_scan.events import LogEvent, Page
from wazuh_ecr_scan.flatten import flatten, parse_message
from wazuh_ecr_scan.logs import DETAIL, local_only, log
from wazuh_ecr_scan.metrics import GroupStats, PassStats
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX
from wazuh_ecr_scan.prefetch import Prefetcher
from wazuh_ecr_scan.reader import Reader
from wazuh_ecr_scan.sender import Sender
from wazuh_ecr_scan.settings import ServiceSettings
from wazuh_ecr_scan.state import GroupKey, StateStore

# A FilterLogEvents page holds up to 10,000 events; committing in slices bounds what a kill re-sends.
COMMIT_EVERY = 500
CLOCK_SKEW_WARNING_MS = 60_000
# --remove-log-streams: DeleteLogStream calls per pass, after every group was read; the rest wait for the
# next pass (their rows stay in the state), so a writer creating streams faster cannot starve reading.
MAX_STREAM_DELETIONS = 100


@dataclass
class Source:
    """One account and region to read, with its reader."""

    account: str
    reader: Reader
    time_filtered: bool = True  # False for replays: recorded events are old, only ids de-duplicate


@dataclass(frozen=True)
class _GroupJob:
    """One group to read in this pass: where it starts, and the time its state will record (the listing's)."""

    source: Source
    key: GroupKey
    now_ms: int
    start_ms: int
    # An only_logs_after moved earlier than the group's first read: events in [from, until) were sent.
    sent_window: tuple[int, int] | None = None


@dataclass(frozen=True)
class _ListingFailed:
    region: str
    error: BaseException


class Poller:
    def __init__(
        self,
        settings: ServiceSettings,
        state: StateStore,
        sender: Sender,
        clock: Callable[[], float] = time.time,
        should_stop: Callable[[], bool] = lambda: False,
        claims: dict[GroupKey, str] | None = None,
        other_labels: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.state = state
        self.sender = sender
        self.clock = clock
        self.should_stop = should_stop
        # Groups taken by a service block in this pass (shared by every block's Poller, emptied per pass):
        # two blocks whose credentials resolve to the same account never both read a group.
        self.claims = claims
        self.other_labels = other_labels
        self._overlaps_reported: set[str] = set()
        self.late_ms = settings.late_window_s * 1000
        self._detail = log.isEnabledFor(DETAIL)
        self._skew_reported = False
        self._last_pass: dict[tuple[str, str], int | None] = {}
        self._listed = 0
        self._completed = 0
        self._listed_sources: set[tuple[str, str]] = set()
        self._found = 0
        self._readers: dict[str, Reader] = {}
        self.discarder = Discarder(settings.discard)
        self._finished: list[tuple[Source, GroupKey, int]] = []  # groups whose old streams may be removed
        self.lifecycle = lifecycle.make(state, self.late_ms, settings.lifecycle, settings.lifecycle_days)

    def run_pass(self, sources: list[Source]) -> PassStats:
        stats = PassStats()
        started = self.clock()
        self._listed = self._completed = self._found = 0
        self._listed_sources = set()
        self._readers = {s.reader.region: s.reader for s in sources}
        self.discarder.new_pass()
        self._finished = []
        # The previous pass's listing time, taken before this pass finishes any group: a group that is
        # new in this pass's listing was created after it.
        self._last_pass = {
            (s.account, s.reader.region): self.state.last_pass(s.account, s.reader.region) for s in sources
        }
        if self.settings.workers > 1 and any(source.time_filtered for source in sources):
            # Only live sources wait on the network; a replay reads a local file, and worker threads
            # would just contend with this one for the GIL.
            self._read_ahead(sources, stats)
        else:
            for source in sources:
                if self.should_stop():
                    break
                self._read_source(source, stats)
        self._remove_finished_streams()
        stats.duration = self.clock() - started
        stats.listed, stats.completed = self._listed, self._completed
        if self._found == 0 and len(self._listed_sources) == len(sources) and not self.should_stop():
            stats.warnings += 1
            log.warning(
                "no log group found in region %s matching %s: nothing was read; check <regions> and"
                " <aws_log_groups> (the findings Lambda creates %s<repository> at a repository's first scan)",
                ", ".join(dict.fromkeys(s.reader.region for s in sources)),
                self._pattern(),
                DEFAULT_GROUP_PREFIX,
            )
        unread = self._completed < self._listed or self._sources_left(sources)
        stats.interrupted = self.should_stop() and unread
        return stats

    def _pattern(self) -> str:
        names = self.settings.log_groups
        return ", ".join(names) if names else self.settings.log_group_prefix + "*"

    def _sources_left(self, sources: list[Source]) -> bool:
        """Some source was not even listed: the stop came before its turn."""
        return len(self._listed_sources) < len(sources)

    def _read_source(self, source: Source, stats: PassStats) -> None:
        region = source.reader.region
        listed_ms = int(self.clock() * 1000)
        try:
            groups = self._list_groups(source)
        except AWS_ERRORS as exc:
            self._listing_failed(exc, region, stats)
            return
        jobs = self._claim_new_groups(source, groups, listed_ms)
        for job in jobs:
            if self.should_stop():
                return
            read = functools.partial(self._read_group, job)
            self._read_guarded(region, job.key.log_group, stats, read)

    def _claim_new_groups(self, source: Source, groups: list[str], listed_ms: int) -> list[_GroupJob]:
        """Each group's job, its window ending at the listing time (earlier than any of its reads). A
        group listed for the first time keeps its first start in the state at once, so a read that is
        skipped, interrupted or never reached resumes from there, not from a later pass's start."""
        jobs, first_windows = [], []
        self._listed_sources.add((source.account, source.reader.region))
        self._found += len(groups)
        for group in groups:
            key = GroupKey(source.account, source.reader.region, group)
            if not self._claim(key):
                continue
            self._listed += 1
            read_until = self.state.read_until(key) if source.time_filtered else None
            if source.time_filtered and read_until is None and self._adopt_legacy(key):
                read_until = self.state.read_until(key)
            start_ms = self._start_ms(key, source, read_until, listed_ms)
            job = _GroupJob(source, key, listed_ms, start_ms)
            if source.time_filtered and read_until is None:
                first_windows.append((key, start_ms + self.late_ms, start_ms))
            elif source.time_filtered:
                job = self._read_back(job)
            jobs.append(job)
        if first_windows:
            self.state.claim_groups(first_windows)
        return jobs

    def _claim(self, key: GroupKey) -> bool:
        """True when this block reads the group in this pass: no other block resolving to the same
        account and region took it first."""
        if self.claims is None:
            return True
        owner = self.claims.setdefault(key, self.settings.origin)
        if owner == self.settings.origin:
            return True
        if owner not in self._overlaps_reported:  # once per run and pair of blocks
            self._overlaps_reported.add(owner)
            log.warning(
                "service at %s: group %s of account %s in region %s (and any other group both list) is also"
                " read by the service at %s: each is read once, by that service (with its settings);"
                " remove the overlap (disjoint <aws_log_groups> or <regions>)",
                self.settings.origin,
                key.log_group,
                key.account,
                key.region,
                owner,
            )
        return False

    def _adopt_legacy(self, key: GroupKey) -> bool:
        label = self.state.adopt_legacy(key, self.settings.account, self.other_labels)
        if label is None:
            left = sorted(self.state.legacy_labels(key))
            if left:
                log.warning(
                    "group %s (region %s): the previous version kept its state under %s, and which of them"
                    " is this block's is not certain: read as a new group, so what was sent before the"
                    " upgrade may be sent again; give this block the <aws_account_id> or"
                    " <aws_account_alias> it had before the upgrade",
                    key.log_group,
                    key.region,
                    ", ".join(repr(each) for each in left),
                )
            return False
        log.info(
            "group %s (region %s): state kept under label %r now kept under account %s, the account the"
            " credentials resolve to",
            key.log_group,
            key.region,
            label,
            key.account,
        )
        return True

    def _read_back(self, job: _GroupJob) -> _GroupJob:
        """only_logs_after earlier than where the group's first read began: read from there once; what was
        sent since that first start is skipped by time, later events by id as usual."""
        floor = self.settings.only_logs_after_ms
        first_start = self.state.first_start(job.key)
        if first_start is None and floor is not None:
            # Read before schema 3: its first start is taken to be today's only_logs_after, so that a
            # later move earlier is honoured.
            self.state.move_first_start(job.key, floor)
            return job
        if floor is None or first_start is None or floor >= first_start:
            return job
        log.info(
            "group %s: only_logs_after is earlier than its first read (%d ms): reading from %d ms once;"
            " nothing already sent is sent again",
            job.key.log_group,
            first_start,
            floor,
        )
        return replace(job, start_ms=floor, sent_window=(first_start, job.start_ms))

    def _list_groups(self, source: Source) -> list[str]:
        groups = source.reader.groups(self.settings.log_groups, self.settings.log_group_prefix)
        log.debug("region %s: %d log groups", source.reader.region, len(groups))
        return groups

    def _listing_failed(self, exc: BaseException, region: str, stats: PassStats) -> None:
        self._raise_if_credentials(exc, region)
        stats.errors += 1
        log.error("region %s: %s while listing log groups", region, describe_error(exc))

    def _read_guarded(
        self, region: str, group: str, stats: PassStats, read: Callable[[GroupStats], None]
    ) -> None:
        """`read` one group; an AWS error skips the group (credentials errors end the pass)."""
        group_stats = GroupStats(region, group)
        stats.groups.append(group_stats)
        began = time.monotonic()
        try:
            read(group_stats)
        except AWS_ERRORS as exc:
            self._raise_if_credentials(exc, region)
            self._report_skipped(exc, region, group, group_stats, stats)
        except FatalError:
            raise
        except Exception as exc:  # a bug met on this group's data costs this group, not the pass
            stats.errors += 1
            group_stats.skipped = "skipped: internal error"
            log.error(
                "region %s: group %s skipped: internal error %s: %s (please report it)",
                region,
                group,
                exc.__class__.__name__,
                exc,
            )
            log.debug("internal error reading group %s", group, exc_info=True)
        finally:
            group_stats.seconds = time.monotonic() - began
            stats.errors += group_stats.errors

    # -- reading ahead (--workers > 1) -------------------------------------------------------------
    # The pool only fetches: listing and pages. Each group's start is decided from the state here, in
    # this thread, before its first call; delivery and commits happen here, one group after the other,
    # so each group's events, their order and the state are those of the sequential pass. Only the
    # order of the groups differs when there are several regions (taken in turn).

    def _read_ahead(self, sources: list[Source], stats: PassStats) -> None:
        with Prefetcher(self.settings.workers) as prefetch:
            listed_ms = int(self.clock() * 1000)
            listings = [prefetch.call(self._list_groups, source) for source in sources]
            jobs = prefetch.ordered(self._group_jobs(sources, listings, listed_ms), self._job_pages)
            for job, pages in jobs:
                if isinstance(job, _ListingFailed):
                    self._listing_failed(job.error, job.region, stats)
                    continue
                if self.should_stop():
                    return
                assert pages is not None  # every group job has its stream
                read = functools.partial(self._read_job, job, pages)
                self._read_guarded(job.key.region, job.key.log_group, stats, read)

    def _group_jobs(
        self, sources: list[Source], listings: list[Future[list[str]]], listed_ms: int
    ) -> Iterator[_GroupJob | _ListingFailed]:
        """Listing failures first, then the groups of all sources taken in turn, so that the pool reads
        several regions at once (each region has its own request-rate cap)."""
        listed: list[list[_GroupJob]] = []
        for source, listing in zip(sources, listings, strict=True):
            try:
                listed.append(self._claim_new_groups(source, listing.result(), listed_ms))
            except AWS_ERRORS as exc:
                yield _ListingFailed(source.reader.region, exc)
        for turn in itertools.zip_longest(*listed):
            yield from filter(None, turn)

    @staticmethod
    def _job_pages(job: _GroupJob | _ListingFailed) -> Callable[[], Iterator[Page]] | None:
        if isinstance(job, _ListingFailed):
            return None
        return functools.partial(job.source.reader.pages, job.key.log_group, job.start_ms)

    def _read_job(self, job: _GroupJob, pages: Iterable[Page], stats: GroupStats) -> None:
        log.debug("group %s: reading from %d", job.key.log_group, job.start_ms)
        server_ms: int | None = None
        for page in pages:
            if not stats.pages:
                server_ms = page.server_time_ms
            stats.pages += 1
            events = page.events
            if job.sent_window is not None:
                events = _outside(events, job.sent_window, stats)
            self._deliver_page(job.key, events, stats)
            if self.should_stop():
                return  # what was delivered is committed; the group's window stays where it was
        now_ms = self._aws_time(server_ms, job.key, job.now_ms)
        self._send_lifecycle_events(job, stats, now_ms)
        self._finish_group(job.source, job.key, now_ms)
        if job.sent_window is not None:
            self.state.move_first_start(job.key, job.start_ms)
        self._completed += 1

    def _send_lifecycle_events(self, job: _GroupJob, stats: GroupStats, now_ms: int) -> None:
        """After a group's pages: its finished scans' resolved findings and scan_changes (lifecycle.py)."""
        for event in self.lifecycle.completed(job.key.account, job.key.region, job.key.log_group, now_ms):
            if self.discarder.discards(event, None, "", f"{job.key.log_group}: {event['aws']['event_type']}"):
                stats.discarded += 1
                continue
            self.sender.send(encode_event(event))
            stats.findings += event["aws"]["event_type"] == "finding"
        self.sender.flush()
        self.lifecycle.sent()

    def _finish_group(self, source: Source, key: GroupKey, now_ms: int) -> None:
        if not source.time_filtered:
            return  # a replay de-duplicates by id only: the live reading window is not its to move
        forget_before = now_ms - self.late_ms
        remove = self.settings.remove_log_streams
        if remove:
            self._finished.append((source, key, forget_before))
        # With stream removal, a stream's row goes only once it was deleted, so a failed delete is retried.
        self.state.finish_group(key, now_ms, forget_before, prune_streams=not remove)

    def _aws_time(self, server_ms: int | None, key: GroupKey, now_ms: int) -> int:
        """The earlier of this host's time when the groups were listed and AWS's (`server_ms`, the Date
        of the group's first page): a host clock running ahead must not move the window past late writes."""
        if server_ms is None:
            return now_ms
        if now_ms - server_ms > CLOCK_SKEW_WARNING_MS and not self._skew_reported:
            self._skew_reported = True
            log.warning(
                "this host's clock is %d s ahead of AWS's (region %s): the reading window follows AWS's"
                " clock; check NTP",
                (now_ms - server_ms) // 1000,
                key.region,
            )
        return min(now_ms, server_ms)

    def _read_group(self, job: _GroupJob, stats: GroupStats) -> None:
        self._read_job(job, job.source.reader.pages(job.key.log_group, job.start_ms), stats)

    def _start_ms(self, key: GroupKey, source: Source, read_until: int | None, now_ms: int) -> int:
        floor = self.settings.only_logs_after_ms
        if not source.time_filtered:
            return floor or 0
        if read_until is not None:
            return max(read_until - self.late_ms, floor or 0)
        if floor is not None:
            return floor
        # A group with no state starts today 00:00 UTC, or earlier when the last pass over this account
        # and region could not have seen it: a repository whose first scan came just before midnight.
        today = start_of_today_ms(now_ms / 1000)
        last_pass = self._last_pass.get((key.account, key.region))
        return today if last_pass is None else min(today, last_pass - self.late_ms)

    def _deliver_page(self, key: GroupKey, page: list[LogEvent], stats: GroupStats) -> None:
        for start in range(0, len(page), COMMIT_EVERY):
            self._deliver_slice(key, page[start : start + COMMIT_EVERY], stats)

    def _deliver_slice(self, key: GroupKey, events: list[LogEvent], stats: GroupStats) -> None:
        """Send, then commit what was sent, even when sending stopped halfway. Ids already delivered are
        looked up in the state DB, one query per slice: memory does not grow with the late window."""
        seen = self.state.already_sent(key, [(raw.log_stream, raw.event_id) for raw in events])
        delivered: list[LogEvent] = []
        try:
            for raw in events:
                ident = (raw.log_stream, raw.event_id)
                if ident in seen:
                    stats.already_sent += 1
                    continue
                try:
                    event, datagram = self._prepare(key, raw)
                except Exception as exc:  # a bug met on one message costs that message, not the pass
                    self._message_failed(raw, exc, stats)
                else:
                    if datagram is None:
                        stats.discarded += 1
                    else:
                        self.sender.send(datagram)
                        self._account(event, raw, stats)
                    self.lifecycle.accept()  # only a delivered (or discarded) event counts
                seen.add(ident)
                delivered.append(raw)
        except BaseException:
            with contextlib.suppress(FatalError):  # the error in flight is the one to report
                self._commit(key, delivered)
            raise
        self._commit(key, delivered)

    def _prepare(self, key: GroupKey, raw: LogEvent) -> tuple[dict, bytes | None]:
        """The event and its datagram, or None when the discard rule drops it. The message is parsed
        once, here, for both."""
        payload = parse_message(raw.message)
        event = flatten(raw, key.region, self.settings.log_group_prefix, payload)
        event = self.lifecycle.annotate(key.account, event)
        if self.discarder.discards(event, payload, raw.message, _where(raw)):
            return event, None
        return event, encode_event(event)

    def _message_failed(self, raw: LogEvent, exc: Exception, stats: GroupStats) -> None:
        stats.errors += 1
        log.error(
            "%s skipped: internal error %s: %s (please report it)", _where(raw), exc.__class__.__name__, exc
        )
        log.debug("internal error on %s", _where(raw), exc_info=True)

    def _commit(self, key: GroupKey, delivered: list[LogEvent]) -> None:
        self.sender.flush()  # what is still in a buffer was not delivered
        self.state.commit_delivered(key, delivered)

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

    def _remove_finished_streams(self) -> None:
        """--remove-log-streams, once every group of the pass was read: at most MAX_STREAM_DELETIONS
        calls, stopping on a signal between calls. What is left is removed by later passes."""
        budget = MAX_STREAM_DELETIONS
        for source, key, before_ms in self._finished:
            for stream in self.state.streams_done_before(key, before_ms):
                if self.should_stop():
                    return
                if budget <= 0:
                    log.info(
                        "stream removal: %d log streams removed this pass, the rest in the next passes",
                        MAX_STREAM_DELETIONS,
                    )
                    return
                budget -= 1
                self._remove_stream(source.reader.delete_stream, key, stream)

    def _remove_stream(self, delete: Callable[[str, str], None], key: GroupKey, stream: str) -> None:
        try:
            delete(key.log_group, stream)
        except AWS_ERRORS as exc:
            if error_code(exc) == NOT_FOUND_CODE:  # already gone (by hand, retention)
                self.state.forget_stream(key, stream)
                return
            log.warning("cannot remove log stream %s: %s", stream, describe_error(exc, key.log_group))
            return
        self.state.forget_stream(key, stream)
        log.debug("group %s: removed log stream %s", key.log_group, stream)

    def _raise_if_credentials(self, exc: BaseException, region: str) -> None:
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            raise CredentialsError(f"region {region}: {no_credentials_message(self.settings.aws_profile)}")
        if is_credentials_error(exc):
            raise CredentialsError(
                f"region {region}: AWS rejected the credentials: {describe_error(exc)}"
            ) from exc

    def _report_skipped(
        self, exc: BaseException, region: str, group: str, group_stats: GroupStats, stats: PassStats
    ) -> None:
        code = error_code(exc)
        transient = code in TRANSIENT_CODES or isinstance(
            exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
        )
        group_stats.skipped = "skipped: " + (code or exc.__class__.__name__)
        if code == NOT_FOUND_CODE and group not in self.settings.log_groups:
            # Discovered in this pass's listing, deleted before its read: a race, not a fault. A group
            # named in --aws_log_groups that does not exist stays an error.
            stats.warnings += 1
            log.warning("region %s: log group %s was deleted after it was listed; skipped", region, group)
        elif transient:
            stats.warnings += 1
            log.warning("region %s: %s; group skipped this pass", region, describe_error(exc, group))
        else:
            stats.errors += 1
            hint = self._missing_group_hint(region, group) if code == NOT_FOUND_CODE else ""
            log.error("region %s: %s%s", region, describe_error(exc, group), hint)

    def _missing_group_hint(self, region: str, group: str) -> str:
        """`<aws_log_groups>sample-repo` names a repository, not its group: name the group if it exists."""
        reader = self._readers.get(region)
        if reader is None or group.startswith("/"):
            return ""
        candidate = DEFAULT_GROUP_PREFIX + group
        try:
            exists = candidate in reader.groups((), candidate)
        except AWS_ERRORS:
            return ""
        return f"; did you mean {candidate}? (<aws_log_groups> takes whole group names)" if exists else ""


def start_of_today_ms(now_s: float) -> int:
    today = datetime.fromtimestamp(now_s, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


def _outside(page: list[LogEvent], window: tuple[int, int], stats: GroupStats) -> list[LogEvent]:
    kept = [event for event in page if not window[0] <= event.timestamp < window[1]]
    stats.already_sent += len(page) - len(kept)
    return kept


def _where(raw: LogEvent) -> str:
    return f"group {raw.log_group} stream {raw.log_stream} event {raw.event_id}"
