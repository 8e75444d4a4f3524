"""The SQLite state: one instance per file, corruption named not reset, private files, bounded size."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest
from conftest import run_cli
from wazuh_ecr_scan.errors import EXIT_STATE, StateError
from wazuh_ecr_scan.flatten import LogEvent
from wazuh_ecr_scan.state import GroupKey, StateStore

KEY = GroupKey("default", "us-east-1", "/aws/ecr/image-scan-findings/web")


def events(n: int, stream: str = "s", ts: int = 1000) -> list[LogEvent]:
    return [LogEvent(KEY.log_group, stream, str(i), ts, "{}") for i in range(n)]


def test_delivered_ids_and_stream_offsets_survive_a_reopen(tmp_path):
    path = str(tmp_path / "state.db")
    store = StateStore(path)
    store.commit_delivered(KEY, events(3, "a") + events(2, "b", ts=2000))
    store.finish_group(KEY, read_until_ms=5000, forget_before_ms=0)
    store.close()

    store = StateStore(path)
    assert store.read_until(KEY) == 5000
    assert store.seen_ids(KEY, 0) == {("a", "0"), ("a", "1"), ("a", "2"), ("b", "0"), ("b", "1")}
    assert store.seen_ids(KEY, 1500) == {("b", "0"), ("b", "1")}
    rows = store.db.execute(
        "SELECT log_stream, first_event_ms, last_event_ms, events FROM streams ORDER BY 1"
    )
    assert rows.fetchall() == [("a", 1000, 1000, 3), ("b", 2000, 2000, 2)]
    store.close()


def test_a_second_instance_on_the_same_file_is_refused(tmp_path):
    path = str(tmp_path / "state.db")
    first = StateStore(path)
    with pytest.raises(StateError, match=r"in use by another wazuh-ecr-scan \(pid \d+\)"):
        StateStore(path)
    first.close()
    StateStore(path).close()  # free again once the first one is gone


def test_second_instance_through_the_cli_exits_6(tmp_path):
    path = str(tmp_path / "state.db")
    holder = StateStore(path)
    try:
        result = run_cli(
            "--run-once",
            "--replay",
            "tests/recordings/multi-repo.jsonl",
            "--output",
            "stdout",
            "--state_db",
            path,
            "--lock_wait",
            "0",
        )
    finally:
        holder.close()
    assert result.returncode == EXIT_STATE
    assert "in use by another wazuh-ecr-scan" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_state_file_is_named_with_how_to_recover(tmp_path, damage):
    path = tmp_path / "state.db"
    store = StateStore(str(path))
    store.commit_delivered(KEY, events(500))
    store.close()
    data = path.read_bytes()
    path.write_bytes(b"this is not sqlite" * 100 if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(StateError) as caught:
        StateStore(str(path))
    assert str(path) in str(caught.value) and "move it aside" in str(caught.value)
    assert path.stat().st_size > 0  # never silently reset


def test_state_files_are_private_and_symlinks_are_not_followed(tmp_path):
    path = tmp_path / "sub" / "state.db"
    StateStore(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sub" / "state.db.lock").stat().st_mode) == 0o600

    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link.db"
    os.symlink(victim, link)
    with pytest.raises(StateError, match="symbolic link"):
        StateStore(str(link))
    assert victim.read_text() == "precious"


def test_finishing_a_group_prunes_what_can_no_longer_be_re_read(tmp_path):
    store = StateStore(str(tmp_path / "state.db"))
    store.commit_delivered(KEY, events(10, "old", ts=1_000) + events(5, "new", ts=9_000))
    store.finish_group(KEY, read_until_ms=10_000, forget_before_ms=5_000)
    assert store.seen_ids(KEY, 0) == {("new", str(i)) for i in range(5)}
    assert [r[0] for r in store.db.execute("SELECT log_stream FROM streams")] == ["new"]
    store.close()


def test_read_until_follows_a_clock_that_was_set_back(tmp_path):
    # A pass made while the clock ran an hour ahead must not hold every later window in the future.
    store = StateStore(str(tmp_path / "state.db"))
    store.finish_group(KEY, 3_600_000 + 10_000, 0)
    store.finish_group(KEY, 20_000, 0)
    assert store.read_until(KEY) == 20_000
    assert store.last_pass(KEY.account, KEY.region) == 20_000
    assert store.last_pass(KEY.account, "eu-west-1") is None
    store.close()


def test_remove_log_streams_keeps_stream_rows_until_deleted(tmp_path):
    store = StateStore(str(tmp_path / "state.db"))
    store.commit_delivered(KEY, events(2, "old", ts=1_000))
    store.finish_group(KEY, 100_000, 50_000, prune_streams=False)
    assert store.streams_done_before(KEY, 50_000) == ["old"]  # a failed delete is tried again next pass
    store.forget_stream(KEY, "old")
    assert store.streams_done_before(KEY, 50_000) == []
    store.close()


def test_a_locked_database_is_a_state_error_not_a_crash(tmp_path):
    path = str(tmp_path / "state.db")
    store = StateStore(path)
    store.db.execute("PRAGMA busy_timeout=100")
    other = sqlite3.connect(path)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StateError, match=r"cannot write state file .*locked"):
        store.commit_delivered(KEY, events(1))
    other.rollback()
    store.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    StateStore(str(path)).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer than this module"):
        StateStore(str(path))


def test_a_file_without_schema_gets_one(tmp_path):
    path = tmp_path / "state.db"
    sqlite3.connect(path).close()  # an empty file from elsewhere
    store = StateStore(str(path))
    assert store.db.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert store.read_until(KEY) is None
    store.close()


V1_SCHEMA = """
CREATE TABLE groups (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    read_until_ms INTEGER NOT NULL, PRIMARY KEY (account, region, log_group)) WITHOUT ROWID;
CREATE TABLE streams (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL, first_event_ms INTEGER NOT NULL, last_event_ms INTEGER NOT NULL,
    events INTEGER NOT NULL, last_event_id TEXT NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream)) WITHOUT ROWID;
CREATE TABLE seen_events (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL, event_id TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream, event_id)) WITHOUT ROWID;
CREATE INDEX seen_events_by_time ON seen_events (account, region, log_group, timestamp_ms);
INSERT INTO groups VALUES ('default', 'us-east-1', '/aws/ecr/image-scan-findings/web', 5000);
INSERT INTO seen_events VALUES ('default', 'us-east-1', '/aws/ecr/image-scan-findings/web', 's', '7', 4000);
PRAGMA user_version=1;
"""


def test_a_version_1_file_is_migrated_with_its_offsets(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    old.close()
    store = StateStore(str(path))
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert store.read_until(KEY) == 5000
    assert store.seen_ids(KEY, 0) == {("s", "7")}
    indexes = store.db.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND name='seen_events_by_time'"
    )
    assert indexes.fetchall() == []
    store.close()
