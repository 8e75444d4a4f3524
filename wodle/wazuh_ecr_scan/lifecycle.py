"""Finding lifecycle (issue 13): which findings of an image are new, persisting, changed or resolved.

Sits between flatten and send. The poller hands every flattened event to `annotate()`, which adds
`aws.ecr.change`, `aws.ecr.first_seen`, `aws.ecr.previous_digest` and `vulnerability.status`; once the
event was delivered it calls `accept()`, and only then does the event count (an event that failed to
go out is annotated again, the same way, when it is re-read). After a group's pages, `completed()`
gives the events no message carries: one `finding` with `aws.ecr.change: "resolved"` per finding
that a complete scan no longer shows, and one `scan_changes` per finished scan; `sent()` records that
they went out.

Model, per image key (account, region, repository, tag; or digest for an untagged image):
- the findings it showed, keyed by (vulnerability.cve, package name, package version), each with its
  severity, fix availability, first_seen and the scan time that last showed it. A finding is added
  (`new`) or updated (`persisting`/`changed`) as soon as it is read, whatever scan it belongs to;
- a scan (digest + scan time) is complete once its summary is known and as many findings as the summary
  counts were read. Then, at once, every finding of the image last shown by an earlier scan is resolved
  (its events go to an outbox table committed with the event that completed the scan, and are sent
  after the group's pages). A scan that cannot complete (truncated by the old Lambda, a lost message, no
  summary) is closed once the late-write window has passed and resolves nothing.
Because a scan completes at a fixed point of the event sequence and everything else only adds, the
lifecycle does not depend on how the events are split into pages or passes.

State lives in the state DB, in tables of its own (`migrate()`), written inside the state store's
transactions (its `writers`): what a page changed is committed together with the page's event ids.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol

from wazuh_ecr_scan.errors import StateError

CHANGES = ("new", "changed", "persisting", "resolved")
SEVERITIES = ("Critical", "High", "Medium", "Low", "Informational", "Untriaged")
DEFAULT_KEEP_DAYS = 90
DAY_MS = 86_400_000
PRUNE_EVERY_MS = 3_600_000
ACTIVE, SOLVED, SUPPRESSED = "Active", "Solved", "Suppressed"

_TABLES = """
CREATE TABLE IF NOT EXISTS lifecycle_images (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    repository TEXT NOT NULL,
    ref TEXT NOT NULL,
    digest TEXT NOT NULL,
    scan_time TEXT NOT NULL,
    last_event_ms INTEGER NOT NULL,
    findings BLOB NOT NULL,
    PRIMARY KEY (account, region, repository, ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lifecycle_images_by_age ON lifecycle_images (last_event_ms);
CREATE TABLE IF NOT EXISTS lifecycle_scans (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    repository TEXT NOT NULL,
    ref TEXT NOT NULL,
    digest TEXT NOT NULL,
    scan_time TEXT NOT NULL,
    log_group TEXT NOT NULL,
    scan TEXT NOT NULL,
    PRIMARY KEY (account, region, repository, ref, digest, scan_time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lifecycle_journal (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    repository TEXT NOT NULL,
    ref TEXT NOT NULL,
    lines BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS lifecycle_journal_by_image ON lifecycle_journal (account, region, repository, ref);
CREATE TABLE IF NOT EXISTS lifecycle_outbox (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    log_group TEXT NOT NULL,
    event TEXT NOT NULL
);
"""
# Version of this module's tables, kept in their own row (the state DB's user_version is state.py's).
TABLES_VERSION = 1
_MIGRATIONS = {0: _TABLES}


def migrate(db: sqlite3.Connection) -> None:
    """Create or upgrade the lifecycle tables of a state DB (called by state.StateStore on open)."""
    db.execute("CREATE TABLE IF NOT EXISTS lifecycle_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM lifecycle_version").fetchone()
    version = row[0] if row else 0
    if version > TABLES_VERSION:
        raise sqlite3.DatabaseError(
            f"lifecycle tables version {version} are newer than this module's {TABLES_VERSION}; upgrade"
        )
    for step in range(version, TABLES_VERSION):
        db.executescript(
            f"BEGIN;{_MIGRATIONS[step]}DELETE FROM lifecycle_version;"
            f"INSERT INTO lifecycle_version VALUES ({step + 1});COMMIT;"
        )


class Store(Protocol):
    """What the lifecycle needs of state.StateStore."""

    path: str
    db: sqlite3.Connection
    writers: list[Callable[[sqlite3.Connection], None]]


# A finding's row: (severity, fix, first_seen, scan time that last showed it). Tuples of strings, not
# lists: the garbage collector stops tracking them, and an image holds thousands.
Row = tuple[str, ...]


class ImageKey(NamedTuple):
    account: str
    region: str
    repository: str
    ref: str  # the tag, or the digest of an untagged image (a tag never contains ':')


@dataclass
class Image:
    key: ImageKey
    digest: str = ""
    scan_time: str = ""
    last_event_ms: int = 0
    # (cve, package, version) -> its Row
    findings: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    # What changed since the last write (None: removed). A page writes only that, to the journal; the
    # findings are packed into the image's row once per group read (and when the image is new).
    changed: dict[tuple[str, str, str], Row | None] = field(default_factory=dict)
    stored: bool = False
    journaled: bool = False
    stored_meta: tuple[str, str, int] = ("", "", 0)  # digest, scan_time, last_event_ms as in the row
    dirty: bool = False  # in Lifecycle._dirty_images: a flag is cheaper than a set lookup per event

    @property
    def meta(self) -> tuple[str, str, int]:
        return (self.digest, self.scan_time, self.last_event_ms)

    def put(self, finding: tuple[str, str, str], row: Row) -> None:
        self.findings[finding] = self.changed[finding] = row

    def drop(self, finding: tuple[str, str, str]) -> Row | None:
        self.changed[finding] = None
        return self.findings.pop(finding, None)


@dataclass
class Scan:
    key: ImageKey
    digest: str
    scan_time: str
    log_group: str
    log_stream: str
    tag: str = ""
    previous_digest: str = ""
    scan_type: str = ""
    expected: int | None = None
    received: int = 0
    last_event_ms: int = 0
    summarised: bool = False
    basic: bool = False
    done: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    ident: tuple[ImageKey, str, str] = field(init=False, repr=False)
    dirty: bool = field(default=False, init=False, repr=False)  # in Lifecycle._dirty_scans

    def __post_init__(self) -> None:
        self.ident = (self.key, self.digest, self.scan_time)

    def to_json(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if k not in ("key", "ident", "dirty")}
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, key: ImageKey, text: str) -> Scan:
        return cls(key=key, **json.loads(text))


# What one annotated event changes, applied by accept() once the event was delivered: (stream, its cache
# entry or None, image, scan, new scan?, event ms, summary count, and for a finding (key, the image's row
# as read, change, severity, fix, first_seen, enhanced?) else None). A tuple: this is the per-event path.
_Staged = tuple


class Lifecycle:
    def __init__(self, store: Store, late_ms: int, keep_days: int = DEFAULT_KEEP_DAYS) -> None:
        self.store = store
        self.late_ms = late_ms
        self.keep_ms = keep_days * DAY_MS
        self._images: dict[ImageKey, Image] = {}
        self._scans: dict[tuple[ImageKey, str, str], Scan] = {}
        self._dirty_images: set[ImageKey] = set()
        self._dirty_scans: set[tuple[ImageKey, str, str]] = set()
        self._outbox: list[tuple[str, str, str, dict[str, Any]]] = []
        self._handed_out: list[int] = []
        self._sent: list[int] = []
        self._staged: _Staged | None = None
        # (account, group, stream) -> its image and scan: every event of a stream has the same ones
        self._by_stream: dict[tuple[str, str, str], tuple[Image, Scan]] = {}
        self._prune_before: int | None = None
        self._last_prune_ms: int | None = None
        store.writers.append(self._write)

    # -- the poller's interface ------------------------------------------------------------------

    def annotate(self, account: str, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its lifecycle fields; what it changes waits for accept()."""
        self._staged = None
        aws = event.get("aws", {})
        kind = aws.get("event_type")
        ecr = aws.get("ecr", {})
        digest = ecr.get("image_digest")
        if kind not in ("finding", "scan_summary") or not digest or not ecr.get("repository"):
            return event
        log_info = aws.get("log_info", {})
        stream = (account, log_info.get("log_group", ""), log_info.get("log_stream", ""))
        timestamp = log_info.get("timestamp", "")
        scan_time = ecr.get("scan_time") or timestamp
        cached = self._by_stream.get(stream)
        if cached is not None:
            image, scan = cached
            new_scan = False
        else:
            tag = ecr.get("image_tag") or ""
            key = ImageKey(account, aws.get("region", ""), ecr["repository"], tag or digest)
            image = self._image(key)
            scan, new_scan = self._scan(key, digest, scan_time, tag, image, log_info, ecr)
        event_ms = _millis(timestamp)
        if scan.previous_digest:
            ecr["previous_digest"] = scan.previous_digest
        if kind == "scan_summary":
            ecr["lifecycle"] = True  # its scan_changes event alerts instead (rule 110273)
            total = ecr.get("findings_total")
            expected = total if isinstance(total, int) else None
            self._staged = (stream, cached, image, scan, new_scan, event_ms, expected, None)
            return event
        vulnerability = event.setdefault("vulnerability", {})
        package = vulnerability.get("package") or {}
        finding = (vulnerability.get("cve", ""), package.get("name", ""), package.get("version", ""))
        severity = vulnerability.get("severity", "")
        fix = ecr.get("fix_available") or ("YES" if package.get("fixed_version") else "")
        row = image.findings.get(finding)
        status = vulnerability.get("status")
        if status == SOLVED:  # Inspector closed it
            change = "resolved"
        elif row is None:
            change = "new"
        elif row[0] != severity or row[1] != fix:
            change = "changed"
        else:
            change = "persisting"
        first_seen = row[2] if row else _iso_seconds(scan_time)
        ecr["change"] = change
        ecr["first_seen"] = first_seen
        if status != SUPPRESSED:
            vulnerability["status"] = SOLVED if change == "resolved" else ACTIVE
        enhanced = ecr.get("scan_type") == "enhanced" or "finding_arn" in ecr
        self._staged = (stream, cached, image, scan, new_scan, event_ms, None,
                        (finding, row, change, severity, str(fix), first_seen, enhanced))  # fmt: skip
        return event

    def accept(self) -> None:
        """The event last annotated was delivered (or discarded on purpose): it counts."""
        staged, self._staged = self._staged, None
        if staged is None:
            return
        stream, cached, image, scan, new_scan, event_ms, expected, finding_part = staged
        if new_scan:
            self._scans[scan.ident] = scan
            if scan.scan_time >= image.scan_time:
                image.digest, image.scan_time = scan.digest, scan.scan_time
        if cached is None:
            self._by_stream[stream] = (image, scan)
        if event_ms > image.last_event_ms:
            image.last_event_ms = event_ms
        if event_ms > scan.last_event_ms:
            scan.last_event_ms = event_ms
        if finding_part is None:
            scan.summarised = scan.basic = True
            scan.expected = expected
        else:
            # The image's row for the finding as annotate() read it: nothing ran in between.
            finding, row, change, severity, fix, first_seen, enhanced = finding_part
            if change == "resolved":
                image.drop(finding)
            else:
                last = row[3] if row is not None and row[3] > scan.scan_time else scan.scan_time
                image.findings[finding] = image.changed[finding] = (severity, fix, first_seen, last)
            scan.received += 1
            if not enhanced:
                scan.basic = True
            counts = scan.counts.get(change)
            if counts is None:
                counts = scan.counts[change] = {}
            counts[severity] = counts.get(severity, 0) + 1
        if not image.dirty:
            image.dirty = True
            self._dirty_images.add(image.key)
        if not scan.dirty:
            scan.dirty = True
            self._dirty_scans.add(scan.ident)
        if not scan.done and scan.expected is not None and scan.received >= scan.expected:
            self._finish(scan, complete=True)

    def completed(self, account: str, region: str, log_group: str, now_ms: int) -> list[dict[str, Any]]:
        """After a group's pages: close its scans whose late-write window has passed, and give every
        event of its finished scans not sent yet (resolved findings, scan_changes), oldest first."""
        self._staged = None
        self._by_stream.clear()
        for scan in self._group_scans(account, region, log_group):
            ends = max(scan.last_event_ms, _millis(scan.scan_time)) + self.late_ms
            if now_ms < ends:
                continue
            if not scan.done:
                self._finish(scan, complete=False)
            self._scans.pop(scan.ident, None)
            self._dirty_scans.add(scan.ident)  # written as a delete: neither pending nor done any more
        self._plan_prune(now_ms)
        return self._outbox_events(account, region, log_group)

    def sent(self) -> None:
        """The events completed() gave were delivered: commit that, and drop what is cached."""
        self._sent.extend(self._handed_out)
        self._handed_out = []
        for image in self._images.values():  # pack journaled findings back into their image rows
            if image.journaled:
                image.stored = False
                self._dirty_images.add(image.key)
        self.save()
        self._images.clear()
        self._scans.clear()
        self._by_stream.clear()

    def save(self) -> None:
        """Commit the accepted changes (the state store's own transactions do this too)."""
        db = self.store.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._write(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot write state file {self.store.path}: {exc}") from exc

    # -- finishing a scan ------------------------------------------------------------------------

    def _finish(self, scan: Scan, complete: bool) -> None:
        """Close a scan: a complete one resolves what the image showed before it and it did not."""
        scan.done = True
        self._dirty_scans.add(scan.ident)
        image = self._image(scan.key)
        group = (scan.key.account, scan.key.region, scan.log_group)
        if complete:
            gone = [k for k, row in image.findings.items() if row[3] < scan.scan_time]
            for finding in sorted(gone):
                severity, _fix, first_seen, _last = image.drop(finding) or ("", "", "", "")
                counts = scan.counts.setdefault("resolved", {})
                counts[severity] = counts.get(severity, 0) + 1
                self._outbox.append((*group, _resolved_event(scan, finding, severity, first_seen)))
            if gone:
                self._dirty_images.add(image.key)
        if complete or scan.summarised or scan.basic:
            # Inspector's one-finding events (no summary) are not scans: nothing to report about them.
            self._outbox.append((*group, _scan_changes_event(scan, complete)))

    def _group_scans(self, account: str, region: str, log_group: str) -> list[Scan]:
        rows = self._read(
            "SELECT repository, ref, scan FROM lifecycle_scans WHERE account=? AND region=? AND log_group=?",
            (account, region, log_group),
        )
        for repository, ref, text in rows:
            scan = Scan.from_json(ImageKey(account, region, repository, ref), text)
            self._scans.setdefault(scan.ident, scan)
        return [
            s
            for s in list(self._scans.values())
            if (s.key.account, s.key.region, s.log_group) == (account, region, log_group)
        ]

    def _outbox_events(self, account: str, region: str, log_group: str) -> list[dict[str, Any]]:
        self.save()  # so that every event has its row (and seq) before it is handed out
        rows = self._read(
            "SELECT seq, event FROM lifecycle_outbox WHERE account=? AND region=? AND log_group=?"
            " ORDER BY seq",
            (account, region, log_group),
        )
        self._handed_out = [seq for seq, _ in rows]
        return [json.loads(event) for _, event in rows]

    def _plan_prune(self, now_ms: int) -> None:
        if self.keep_ms <= 0:
            return
        if self._last_prune_ms is None or now_ms - self._last_prune_ms >= PRUNE_EVERY_MS:
            self._last_prune_ms = now_ms
            self._prune_before = now_ms - self.keep_ms

    # -- loading ---------------------------------------------------------------------------------

    def _image(self, key: ImageKey) -> Image:
        image = self._images.get(key)
        if image is None:
            image = Image(key)
            rows = self._read(
                "SELECT digest, scan_time, last_event_ms, findings FROM lifecycle_images"
                " WHERE account=? AND region=? AND repository=? AND ref=?",
                (key.account, key.region, key.repository, key.ref),
            )
            if rows:
                image.digest, image.scan_time, image.last_event_ms, blob = rows[0]
                image.findings = _unpack(blob)
                image.stored, image.stored_meta = True, image.meta
            journal = self._read(
                "SELECT lines FROM lifecycle_journal WHERE account=? AND region=? AND repository=? AND ref=?"
                " ORDER BY seq",
                tuple(key),
            )
            for (lines,) in journal:
                _replay_journal(image.findings, zlib.decompress(lines).decode())
                image.journaled = True
            self._images[key] = image
        return image

    def _scan(
        self,
        key: ImageKey,
        digest: str,
        scan_time: str,
        tag: str,
        image: Image,
        log_info: dict[str, Any],
        ecr: dict[str, Any],
    ) -> tuple[Scan, bool]:
        ident = (key, digest, scan_time)
        scan = self._scans.get(ident)
        if scan is None:
            rows = self._read(
                "SELECT scan FROM lifecycle_scans WHERE account=? AND region=? AND repository=? AND ref=?"
                " AND digest=? AND scan_time=?",
                (key.account, key.region, key.repository, key.ref, digest, scan_time),
            )
            if rows:
                scan = self._scans[ident] = Scan.from_json(key, rows[0][0])
        if scan is not None:
            return scan, False
        moved = tag and image.digest and image.digest != digest and scan_time > image.scan_time
        scan = Scan(
            key,
            digest,
            scan_time,
            log_info.get("log_group", ""),
            log_info.get("log_stream", ""),
            tag=tag,
            previous_digest=image.digest if moved else "",
            scan_type=str(ecr.get("scan_type", "")),
        )
        return scan, True

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self.store.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StateError(f"cannot read state file {self.store.path}: {exc}") from exc

    # -- writing (inside the state store's transaction) ------------------------------------------

    def _write(self, db: sqlite3.Connection) -> None:
        for key in self._dirty_images:
            image = self._images.get(key)
            if image is not None:
                self._write_image(db, image)
        for ident in self._dirty_scans:
            key, digest, scan_time = ident
            scan = self._scans.get(ident)
            if scan is None:
                db.execute(
                    "DELETE FROM lifecycle_scans WHERE account=? AND region=? AND repository=? AND ref=?"
                    " AND digest=? AND scan_time=?",
                    (*key, digest, scan_time),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO lifecycle_scans VALUES (?,?,?,?,?,?,?,?)",
                    (*key, digest, scan_time, scan.log_group, scan.to_json()),
                )
        db.executemany(
            "INSERT INTO lifecycle_outbox (account, region, log_group, event) VALUES (?,?,?,?)",
            [(*group, json.dumps(event, separators=(",", ":"))) for *group, event in self._outbox],
        )
        db.executemany("DELETE FROM lifecycle_outbox WHERE seq=?", [(seq,) for seq in self._sent])
        if self._prune_before is not None:
            self._prune(db, self._prune_before)
        for scan in self._scans.values():
            scan.dirty = False
        for image in self._images.values():
            image.dirty = False
        self._dirty_images.clear()
        self._dirty_scans.clear()
        self._outbox.clear()
        self._sent.clear()
        self._prune_before = None

    def _write_image(self, db: sqlite3.Connection, image: Image) -> None:
        """A page's changes go to the journal (new images get an empty row first); the findings are
        packed into the image's row when the group's read is done (`packed` False)."""
        key = tuple(image.key)
        if not image.stored:
            findings = _pack(image.findings) if image.journaled else _pack({})
            db.execute(
                "INSERT OR REPLACE INTO lifecycle_images VALUES (?,?,?,?,?,?,?,?)",
                (*key, image.digest, image.scan_time, image.last_event_ms, findings),
            )
            if image.journaled:  # packed: the journal is in the row now
                db.execute(
                    "DELETE FROM lifecycle_journal WHERE account=? AND region=? AND repository=? AND ref=?",
                    key,
                )
                image.journaled, image.changed = False, {}
            image.stored, image.stored_meta = True, image.meta
        elif image.meta != image.stored_meta:  # an UPDATE rewrites the whole row, findings too
            db.execute(
                "UPDATE lifecycle_images SET digest=?, scan_time=?, last_event_ms=?"
                " WHERE account=? AND region=? AND repository=? AND ref=?",
                (*image.meta, *key),
            )
            image.stored_meta = image.meta
        if image.changed:
            db.execute(
                "INSERT INTO lifecycle_journal (account, region, repository, ref, lines) VALUES (?,?,?,?,?)",
                (*key, zlib.compress(_journal_lines(image.changed).encode(), 1)),
            )
            image.journaled = True
        image.changed = {}

    def _prune(self, db: sqlite3.Connection, before_ms: int) -> None:
        """Images not scanned since `before_ms` are forgotten with their findings and open scans."""
        old = db.execute(
            "SELECT account, region, repository, ref FROM lifecycle_images WHERE last_event_ms < ?",
            (before_ms,),
        ).fetchall()
        for table in ("lifecycle_scans", "lifecycle_journal"):
            db.executemany(
                f"DELETE FROM {table} WHERE account=? AND region=? AND repository=? AND ref=?", old
            )
        db.execute("DELETE FROM lifecycle_images WHERE last_event_ms < ?", (before_ms,))
        for key in [ImageKey(*row) for row in old]:
            self._images.pop(key, None)
        self._by_stream.clear()


# -- events the module makes ---------------------------------------------------------------------------


def _envelope(scan: Scan, event_type: str, ecr: dict[str, Any]) -> dict[str, Any]:
    return {
        "integration": "aws",
        "aws": {
            "source": "ecr_image_scan",
            "event_type": event_type,
            "region": scan.key.region,
            "log_info": {
                "log_group": scan.log_group,
                "log_stream": scan.log_stream,
                "timestamp": _iso_millis(scan.last_event_ms),
            },
            "ecr": ecr,
        },
    }


def _image_fields(scan: Scan) -> dict[str, Any]:
    ecr: dict[str, Any] = {"repository": scan.key.repository, "image_digest": scan.digest}
    if scan.tag:
        ecr["image_tag"] = scan.tag
    ecr["scan_time"] = scan.scan_time
    if scan.previous_digest:
        ecr["previous_digest"] = scan.previous_digest
    if scan.scan_type:
        ecr["scan_type"] = scan.scan_type
    return ecr


def _resolved_event(
    scan: Scan, finding: tuple[str, str, str], severity: str, first_seen: str
) -> dict[str, Any]:
    ecr = _image_fields(scan)
    ecr.update(change="resolved", first_seen=first_seen)
    event = _envelope(scan, "finding", ecr)
    cve, name, version = finding
    vulnerability: dict[str, Any] = {}
    if cve:
        vulnerability["cve"] = cve
    if severity:
        vulnerability["severity"] = severity
    package = {k: v for k, v in (("name", name), ("version", version)) if v}
    if package:
        vulnerability["package"] = package
    vulnerability["status"] = SOLVED
    event["vulnerability"] = vulnerability
    return event


def _scan_changes_event(scan: Scan, complete: bool) -> dict[str, Any]:
    ecr = _image_fields(scan)
    changes = {}
    for change in CHANGES:
        counts = scan.counts.get(change, {})
        row = {"total": sum(counts.values())}
        row.update({severity: counts.get(severity, 0) for severity in SEVERITIES})
        changes[change] = row
    ecr["changes"] = changes
    ecr["changes_total"] = sum(changes[c]["total"] for c in ("new", "changed", "resolved"))
    ecr["complete"] = complete
    ecr["findings_received"] = scan.received
    if scan.expected is not None:
        ecr["findings_expected"] = scan.expected
    if not complete:
        ecr["incomplete_reason"] = _why_incomplete(scan)
    return _envelope(scan, "scan_changes", ecr)


def _why_incomplete(scan: Scan) -> str:
    if scan.expected is None:
        return "no summary was read for this scan: nothing is resolved"
    return (
        f"{scan.received} of the {scan.expected} findings of the summary were read before the late-write"
        " window ended (truncated or lost): nothing is resolved"
    )


# -- helpers -------------------------------------------------------------------------------------------


# An image's findings are stored as lines of tab-separated fields (cve, package, version, severity, fix,
# first_seen, last scan time), zlib-compressed: a tenth of the size of rows, and packed at C speed. Tabs
# and newlines inside a value are replaced by spaces (a CVE id, package name or version never has them).
_CLEAN = str.maketrans("\t\n", "  ")


def _line(finding: tuple[str, ...], row: Row) -> str:
    line = "\t".join((*finding, *row))
    return line if line.count("\t") == 6 and "\n" not in line else _clean_line(finding, row)


def _clean_line(finding: tuple[str, ...], row: Row) -> str:
    return "\t".join(value.translate(_CLEAN) for value in (*finding, *row))


def _pack(findings: dict[tuple[str, str, str], Row]) -> bytes:
    text = "\n".join(["\t".join(k + v) for k, v in findings.items()])
    # Each line has at least 6 tabs (7 values) and the join adds len - 1 newlines: equal totals mean no
    # value held a tab or a newline, checked once for the whole text instead of line by line.
    if not _well_formed(text, 6 * len(findings), len(findings)):
        text = "\n".join([_line(k, v) for k, v in findings.items()])
    return zlib.compress(text.encode(), 1)


def _well_formed(text: str, tabs: int, lines: int) -> bool:
    return text.count("\t") == tabs and text.count("\n") == max(lines - 1, 0)


def _unpack(blob: bytes) -> dict[tuple[str, str, str], Row]:
    text = zlib.decompress(blob).decode()
    findings: dict[tuple[str, str, str], Row] = {}
    for line in text.split("\n") if text else ():
        fields = line.split("\t")
        findings[(fields[0], fields[1], fields[2])] = tuple(fields[3:])
    return findings


def _journal_lines(changed: dict[tuple[str, str, str], Row | None]) -> str:
    """`+<line>` for a finding added or updated, `-<cve, package, version>` for one removed."""
    lines = ["-" + "\t".join(k) if v is None else "+" + "\t".join(k + v) for k, v in changed.items()]
    text = "\n".join(lines)
    removed = list(changed.values()).count(None)
    if _well_formed(text, 6 * (len(changed) - removed) + 2 * removed, len(changed)):
        return text
    return "\n".join(["-" + "\t".join(k) if v is None else "+" + _line(k, v) for k, v in changed.items()])


def _replay_journal(findings: dict[tuple[str, str, str], Row], lines: str) -> None:
    for line in lines.split("\n"):
        fields = line[1:].split("\t")
        finding = (fields[0], fields[1], fields[2])
        if line[0] == "-":
            findings.pop(finding, None)
        else:
            findings[finding] = tuple(fields[3:])


@functools.lru_cache(maxsize=4096)
def _millis(iso: str) -> int:
    """ISO 8601 UTC (`2025-06-07T02:02:04Z` or with milliseconds) as epoch ms; 0 when it is not one."""
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, OverflowError):
        return 0


def _iso_millis(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@functools.lru_cache(maxsize=4096)
def _iso_seconds(text: str) -> str:
    """first_seen: the scan time as given (ISO 8601 UTC), seconds precision."""
    ms = _millis(text)
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ms else text


class Off:
    """The lifecycle turned off (--no-lifecycle): events go out as flattened, nothing is kept."""

    def annotate(self, account: str, event: dict[str, Any]) -> dict[str, Any]:
        return event

    def accept(self) -> None:
        pass

    def completed(self, account: str, region: str, log_group: str, now_ms: int) -> list[dict[str, Any]]:
        return []

    def sent(self) -> None:
        pass


def make(store: Store, late_ms: int, enabled: bool, keep_days: int = DEFAULT_KEEP_DAYS) -> Lifecycle | Off:
    return Lifecycle(store, late_ms, keep_days) if enabled else Off()
