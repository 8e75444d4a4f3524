"""Read state in SQLite: per group the listing time of its last complete pass (or, until one completes,
the window its first start comes from), per stream what was delivered,
and the event ids delivered inside the late-write window (so re-reading that window re-sends nothing).

One instance per file: an exclusive lock on `<db>.lock` is held for the life of the process.
Every page is committed in one transaction after its events were delivered.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass

from wazuh_ecr_scan import lifecycle
from wazuh_ecr_scan.errors import StateError
from wazuh_ecr_scan.events import LogEvent
from wazuh_ecr_scan.logs import log

SCHEMA_VERSION = 3
MEMORY = ":memory:"
DEFAULT_LOCK_WAIT_S = 60
_LOCK_POLL_S = 0.2
SEEN_BATCH = 400  # ids per lookup: 2 parameters each, under SQLite's 999 before 3.32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    log_group TEXT NOT NULL,
    read_until_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, log_group)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL,
    first_event_ms INTEGER NOT NULL,
    last_event_ms INTEGER NOT NULL,
    events INTEGER NOT NULL,
    last_event_id TEXT NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_events (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL,
    event_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream, event_id)
) WITHOUT ROWID;
"""
# Each step takes a file from version N to N + 1.
_MIGRATIONS = {
    0: _SCHEMA,
    # Version 1 had an index on (group, timestamp): every query already narrows to one group by the
    # primary key and a live group keeps only its late window, so it cost a B-tree insert per event.
    1: "DROP INDEX IF EXISTS seen_events_by_time;",
    # Version 3 keys live state by the AWS account the credentials resolve to, not by the editable label
    # (<aws_account_id>, alias, role or profile name) of version 2. Those rows stay as they are, listed in
    # legacy_groups; the first pass that reads such a group moves its rows to the resolved account
    # (adopt_legacy), so an upgrade re-sends nothing. first_start_ms: where a group's first read began,
    # so an earlier only_logs_after is read once, for the earlier window only (NULL: not known).
    2: """
CREATE TABLE IF NOT EXISTS legacy_groups (
    label TEXT NOT NULL,
    region TEXT NOT NULL,
    log_group TEXT NOT NULL,
    PRIMARY KEY (label, region, log_group)
) WITHOUT ROWID;
INSERT OR IGNORE INTO legacy_groups SELECT account, region, log_group FROM groups;
INSERT OR IGNORE INTO legacy_groups SELECT DISTINCT account, region, log_group FROM streams;
INSERT OR IGNORE INTO legacy_groups SELECT DISTINCT account, region, log_group FROM seen_events;
ALTER TABLE groups ADD COLUMN first_start_ms INTEGER;
""",
}
_KEYED_TABLES = ("groups", "streams", "seen_events")

_RECOVERY = "move it aside and rerun: the module then starts again from --only_logs_after"


@dataclass(frozen=True)
class GroupKey:
    account: str
    region: str
    log_group: str


class StateStore:
    def __init__(self, path: str, lock_wait_s: float = 0) -> None:
        self.path = path
        self._lock_fd: int | None = None
        if path != MEMORY:
            _create_private(path)
            self._lock_fd = _lock(path + ".lock", lock_wait_s)
        self.db = self._connect()
        self.writers: list = []  # called in every transaction with the connection (lifecycle.py's tables)

    # -- reading -------------------------------------------------------------------------------

    def read_until(self, key: GroupKey) -> int | None:
        rows = self._query(
            "SELECT read_until_ms FROM groups WHERE account=? AND region=? AND log_group=?", _k(key)
        )
        return rows[0][0] if rows else None

    def first_start(self, key: GroupKey) -> int | None:
        """Where the group's first read began (None: unknown, for groups read before schema 3)."""
        rows = self._query(
            "SELECT first_start_ms FROM groups WHERE account=? AND region=? AND log_group=?", _k(key)
        )
        return rows[0][0] if rows else None

    def last_pass(self, account: str, region: str) -> int | None:
        """The latest complete pass over any group of this account and region, if there was one."""
        rows = self._query(
            "SELECT max(read_until_ms) FROM groups WHERE account=? AND region=?", (account, region)
        )
        return rows[0][0]

    def seen_ids(self, key: GroupKey, since_ms: int) -> set[tuple[str, str]]:
        rows = self._query(
            "SELECT log_stream, event_id FROM seen_events"
            " WHERE account=? AND region=? AND log_group=? AND timestamp_ms >= ?",
            (*_k(key), since_ms),
        )
        return set(rows)

    def already_sent(self, key: GroupKey, idents: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (stream, event id) were delivered, by the primary key: one query per
        SEEN_BATCH ids, so memory holds one page's ids, not the whole late-write window's."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(idents), SEEN_BATCH):
            batch = idents[start : start + SEEN_BATCH]
            values = ",".join("(?,?)" for _ in batch)
            found.update(
                self._query(
                    f"WITH page(log_stream, event_id) AS (VALUES {values})"
                    " SELECT s.log_stream, s.event_id FROM page JOIN seen_events AS s"
                    " ON s.account=? AND s.region=? AND s.log_group=?"
                    " AND s.log_stream=page.log_stream AND s.event_id=page.event_id",
                    (*[part for ident in batch for part in ident], *_k(key)),
                )
            )
        return found

    def streams_done_before(self, key: GroupKey, before_ms: int) -> list[str]:
        rows = self._query(
            "SELECT log_stream FROM streams"
            " WHERE account=? AND region=? AND log_group=? AND last_event_ms < ?",
            (*_k(key), before_ms),
        )
        return [row[0] for row in rows]

    # -- writing -------------------------------------------------------------------------------

    def commit_delivered(self, key: GroupKey, events: Iterable[LogEvent]) -> None:
        """Record delivered events, one transaction for the lot (a page)."""
        events = list(events)
        if not events:
            return
        k = _k(key)
        per_stream: dict[str, list[LogEvent]] = {}
        for event in events:
            per_stream.setdefault(event.log_stream, []).append(event)
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO seen_events VALUES (?,?,?,?,?,?)",
                [(*k, e.log_stream, e.event_id, e.timestamp) for e in events],
            )
            db.executemany(
                "INSERT INTO streams VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT (account, region, log_group, log_stream) DO UPDATE SET"
                " first_event_ms = min(first_event_ms, excluded.first_event_ms),"
                " last_event_ms = max(last_event_ms, excluded.last_event_ms),"
                " events = events + excluded.events, last_event_id = excluded.last_event_id",
                [
                    (
                        *k,
                        stream,
                        min(e.timestamp for e in group),
                        max(e.timestamp for e in group),
                        len(group),
                        group[-1].event_id,
                    )
                    for stream, group in per_stream.items()
                ],
            )

    def finish_group(
        self, key: GroupKey, read_until_ms: int, forget_before_ms: int, prune_streams: bool = True
    ) -> None:
        """The pass over `key` completed: later passes read from `read_until_ms` (less the late-write
        window); ids (and, with `prune_streams`, streams) older than `forget_before_ms` can no longer be
        read again. Stored as given, not max()ed: a pass made with a clock that ran ahead must not hold
        every later pass's window in the future."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO groups (account, region, log_group, read_until_ms) VALUES (?,?,?,?)"
                " ON CONFLICT (account, region, log_group)"
                " DO UPDATE SET read_until_ms = excluded.read_until_ms",
                (*_k(key), read_until_ms),
            )
            db.execute(
                "DELETE FROM seen_events WHERE account=? AND region=? AND log_group=? AND timestamp_ms < ?",
                (*_k(key), forget_before_ms),
            )
            if prune_streams:
                db.execute(
                    "DELETE FROM streams WHERE account=? AND region=? AND log_group=? AND last_event_ms < ?",
                    (*_k(key), forget_before_ms),
                )

    def claim_groups(self, windows: Iterable[tuple[GroupKey, int, int]]) -> None:
        """Groups seen for the first time: keep (key, read_until_ms, first_start_ms), the window their first
        start comes from, until their first complete pass replaces it. Groups that have a row keep it."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO groups (account, region, log_group, read_until_ms, first_start_ms)"
                " VALUES (?,?,?,?,?)",
                [(*_k(key), read_until_ms, first_start_ms) for key, read_until_ms, first_start_ms in windows],
            )

    def move_first_start(self, key: GroupKey, first_start_ms: int) -> None:
        """The group was read back to `first_start_ms` (an earlier only_logs_after)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE groups SET first_start_ms=? WHERE account=? AND region=? AND log_group=?",
                (first_start_ms, *_k(key)),
            )

    def legacy_labels(self, key: GroupKey) -> set[str]:
        """The labels a version-2 file kept this region and group under, not yet adopted by an account."""
        rows = self._query(
            "SELECT label FROM legacy_groups WHERE region=? AND log_group=?", (key.region, key.log_group)
        )
        return {row[0] for row in rows}

    def adopt_legacy(self, key: GroupKey, label: str, other_labels: frozenset[str]) -> str | None:
        """Move the state a version-2 file kept for this region and group under a label to the resolved
        account of `key`; the label it was under, or None when there is nothing (or nothing certain).

        The label taken: this service's own label, the account itself, or else the only label that holds
        the group when no other service of this run goes by it (the label was edited, e.g. an
        <aws_account_id> added: the data is the same)."""
        labels = self.legacy_labels(key)
        if not labels:
            return None
        for candidate in (label, key.account):
            if candidate in labels:
                chosen = candidate
                break
        else:
            if len(labels) != 1 or labels & other_labels:
                return None
            (chosen,) = labels
        with self._transaction() as db:
            for table in _KEYED_TABLES:
                where = "account=? AND region=? AND log_group=?"
                db.execute(
                    f"UPDATE OR IGNORE {table} SET account=? WHERE {where}",
                    (key.account, chosen, key.region, key.log_group),
                )
                db.execute(f"DELETE FROM {table} WHERE {where}", (chosen, key.region, key.log_group))
            db.execute(
                "DELETE FROM legacy_groups WHERE label=? AND region=? AND log_group=?",
                (chosen, key.region, key.log_group),
            )
        return chosen

    def forget_stream(self, key: GroupKey, log_stream: str) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM streams WHERE account=? AND region=? AND log_group=? AND log_stream=?",
                (*_k(key), log_stream),
            )

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- internals -----------------------------------------------------------------------------

    def _transaction(self):
        return _Transaction(self)

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StateError(f"cannot read state file {self.path}: {error}") from error

    def write_error(self, error: sqlite3.Error) -> StateError:
        return StateError(f"cannot write state file {self.path}: {error}")

    def _connect(self) -> sqlite3.Connection:
        try:
            # "" is SQLite's private temporary database: like :memory: but spilled to disk, not RAM.
            db = sqlite3.connect("" if self.path == MEMORY else self.path, isolation_level=None, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            _migrate(db)
            lifecycle.migrate(db)
        except sqlite3.Error as exc:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
            raise StateError(f"state file {self.path} is unreadable or corrupt ({exc}): {_RECOVERY}") from exc
        return db


class _Transaction:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
            for write in self.store.writers:
                write(self.store.db)
        except sqlite3.Error as error:
            raise self.store.write_error(error) from error
        return self.store.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error as error:
            raise self.store.write_error(error) from error
        if isinstance(exc, sqlite3.Error):
            raise self.store.write_error(exc) from exc


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this module's {SCHEMA_VERSION}; upgrade the module"
        )
    for step in range(version, SCHEMA_VERSION):
        db.executescript(f"BEGIN;{_MIGRATIONS[step]}PRAGMA user_version={step + 1};COMMIT;")


def throwaway_copy(path: str, directory: str) -> str:
    """A copy of the state file `path` in `directory` (empty when there is none yet), for a run that must
    read the state without changing what the service's runs will send (--output stdout)."""
    copy = os.path.join(directory, os.path.basename(path))
    if not os.path.exists(path):
        return copy
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            target = sqlite3.connect(copy)
            with target:
                source.backup(target)
            target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise StateError(f"cannot copy state file {path}: {exc}") from exc
    return copy


def _k(key: GroupKey) -> tuple[str, str, str]:
    return (key.account, key.region, key.log_group)


def _create_private(path: str) -> None:
    """Create the state file 0600 without following a symlink planted at its path."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(f"state file {path} is a symbolic link: refusing to follow it") from exc
        raise StateError(f"cannot create state file {path}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StateError(f"state file {path} is not a regular file")
    finally:
        os.close(fd)


def _lock(path: str, wait_s: float) -> int:
    """The state file's exclusive lock; another instance holding it is waited for, up to `wait_s`."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create lock file {path}: {exc.strerror}") from exc
    state_file = path[: -len(".lock")]
    deadline = time.monotonic() + wait_s
    waiting = False
    while not _try_lock(fd):
        if not waiting:
            waiting = True
            log.info(
                "state file %s is in use by another wazuh-ecr-scan (pid %s): waiting up to %ds for it"
                " (--lock_wait)",
                state_file,
                _holder(fd),
                wait_s,
            )
        if time.monotonic() >= deadline:
            holder = _holder(fd)
            os.close(fd)
            raise StateError(
                f"state file {state_file} is still in use by another wazuh-ecr-scan (pid {holder}) after "
                f"waiting {wait_s:g}s: only one instance may use a state file at a time; give each "
                "command block its own --state_db, or a longer --lock_wait"
            )
        time.sleep(_LOCK_POLL_S)
    if waiting:
        log.info("state file %s: lock acquired, the run goes on", state_file)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
