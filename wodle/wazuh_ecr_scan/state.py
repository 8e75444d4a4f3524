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
from collections.abc import Iterable
from dataclasses import dataclass

from wazuh_ecr_scan import lifecycle
from wazuh_ecr_scan.errors import StateError
from wazuh_ecr_scan.flatten import LogEvent

SCHEMA_VERSION = 2
MEMORY = ":memory:"

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
}

_RECOVERY = "move it aside and rerun: the module then starts again from --only_logs_after"


@dataclass(frozen=True)
class GroupKey:
    account: str
    region: str
    log_group: str


class StateStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd: int | None = None
        if path != MEMORY:
            _create_private(path)
            self._lock_fd = _lock(path + ".lock")
        self.db = self._connect()
        self.writers: list = []  # called in every transaction with the connection (lifecycle.py's tables)

    # -- reading -------------------------------------------------------------------------------

    def read_until(self, key: GroupKey) -> int | None:
        rows = self._query(
            "SELECT read_until_ms FROM groups WHERE account=? AND region=? AND log_group=?", _k(key)
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
                "INSERT INTO groups VALUES (?,?,?,?) ON CONFLICT (account, region, log_group)"
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

    def claim_groups(self, windows: Iterable[tuple[GroupKey, int]]) -> None:
        """Groups seen for the first time: keep the `read_until_ms` their first start comes from, until
        their first complete pass replaces it. Groups that already have a row keep it."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO groups VALUES (?,?,?,?)",
                [(*_k(key), read_until_ms) for key, read_until_ms in windows],
            )

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


def _lock(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateError(
            f"state file {path[: -len('.lock')]} is in use by another wazuh-ecr-scan (pid {holder}); "
            "only one instance may use a state file"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd
