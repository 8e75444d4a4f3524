"""Finding lifecycle through the real CLI: moto's server over HTTP, a bound datagram socket, a real
SQLite file, one `--run-once` per pass."""

from __future__ import annotations

import collections
import json
import os
import socket
import threading
import time
from pathlib import Path

from conftest import EVENT_HEADER, run_cli
from lambda_writer import Scan, recording_lines, write_scan
from ruletest import project_engine
from test_lifecycle import finding, scan

NOW_MS = int(time.time() * 1000)
MINUTE = 60_000
LATE_MS = 20 * MINUTE


def lifecycle_args(cli_args, *extra: str) -> list[str]:
    return cli_args("--workers", "1", *extra)  # the lifecycle is on by default


def read_pass(cli_args, receiver, *extra: str) -> list[dict]:
    result = run_cli(*lifecycle_args(cli_args, *extra))
    assert result.returncode == 0, result.stderr
    return receiver.take().every


def findings(events: list[dict]) -> dict[str, str]:
    """cve -> change of every finding event (a cve seen twice would be a bug: asserted)."""
    out: dict[str, str] = {}
    for e in events:
        if e["aws"]["event_type"] == "finding":
            cve = e["vulnerability"]["cve"]
            assert cve not in out, f"{cve} sent twice"
            out[cve] = e["aws"]["ecr"]["change"]
    return out


def scan_changes(events: list[dict]) -> list[dict]:
    return [e["aws"]["ecr"] for e in events if e["aws"]["event_type"] == "scan_changes"]


def alerts(events: list[dict]) -> collections.Counter:
    """rule id -> how many alerts the project's rules raise for these events (level 3 and up)."""
    engine = project_engine()
    results = [engine.process("1:Wazuh-AWS:" + json.dumps(e, separators=(",", ":"))) for e in events]
    return collections.Counter(r.rule_id for r in results if r.alert)


def write(logs, *scans: Scan) -> None:
    for s in scans:
        write_scan(logs, s)


def test_the_same_digest_scanned_twice_is_all_persisting_the_second_time(logs, receiver, cli_args):
    cves = [finding("CVE-2024-1", "CRITICAL"), finding("CVE-2024-2"), finding("CVE-2024-3", "LOW")]
    write(logs, scan("web/api", "prod", "d1", NOW_MS - 10 * MINUTE, cves))
    first = read_pass(cli_args, receiver)
    assert findings(first) == dict.fromkeys(["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"], "new")
    (changes,) = scan_changes(first)
    assert (changes["complete"], changes["changes_total"]) == (True, 3)
    assert alerts(first) == {110202: 1, 110203: 1, 110206: 1, 110275: 1}

    write(logs, scan("web/api", "prod", "d1", NOW_MS - 5 * MINUTE, cves))
    second = read_pass(cli_args, receiver)
    assert findings(second) == dict.fromkeys(["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"], "persisting")
    (changes,) = scan_changes(second)
    assert (changes["complete"], changes["changes_total"]) == (True, 0)
    assert all(e["vulnerability"]["status"] == "Active" for e in second if "vulnerability" in e)
    assert alerts(second) == {}  # no new alert for a rescan


def test_a_tag_moved_to_a_digest_fixing_two_and_adding_one(logs, receiver, cli_args):
    old = scan(
        "web/api", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-A"), finding("CVE-B"), finding("CVE-C")]
    )
    write(logs, old)
    read_pass(cli_args, receiver)
    new = scan("web/api", "prod", "d2", NOW_MS - 5 * MINUTE, [finding("CVE-C"), finding("CVE-D", "CRITICAL")])
    write(logs, new)
    got = read_pass(cli_args, receiver)
    resolved = [e for e in got if e["aws"]["ecr"].get("change") == "resolved"]
    assert sorted(e["vulnerability"]["cve"] for e in resolved) == ["CVE-A", "CVE-B"]
    assert {e["vulnerability"]["status"] for e in resolved} == {"Solved"}
    changes = [e["aws"]["ecr"]["change"] for e in got if e["aws"]["event_type"] == "finding"]
    assert collections.Counter(changes) == {"resolved": 2, "new": 1, "persisting": 1}
    (summary,) = scan_changes(got)
    assert summary["previous_digest"] == "sha256:" + old.digest_hex
    assert summary["image_digest"] == "sha256:" + new.digest_hex
    assert (summary["changes"]["new"]["Critical"], summary["changes"]["resolved"]["total"]) == (1, 2)
    assert alerts(got) == {110202: 1, 110272: 2, 110277: 1}  # new Critical, 2 resolved, the move
    # resolved once: a rerun sends nothing
    assert read_pass(cli_args, receiver) == []


def test_a_truncated_scan_resolves_nothing(logs, receiver, cli_args):
    write(logs, scan("big", "2024.12", "d1", NOW_MS - 60 * MINUTE, [finding(f"CVE-{n}") for n in range(4)]))
    cut = scan("big", "2024.12", "d1", NOW_MS - 30 * MINUTE, [finding("CVE-0")])
    cut.severity_counts = {"HIGH": 1200}  # the old Lambda logged fewer than the summary counts
    write(logs, cut)
    got = read_pass(cli_args, receiver)
    assert [e for e in got if e["aws"]["ecr"].get("change") == "resolved"] == []
    complete, truncated = sorted(scan_changes(got), key=lambda c: c["scan_time"])
    assert complete["complete"] is True
    assert (truncated["complete"], truncated["findings_expected"], truncated["findings_received"]) == (
        False,
        1200,
        1,
    )
    assert "nothing is resolved" in truncated["incomplete_reason"]
    # the missing findings alert once, on the scan_changes (110278), not on the summary (110221)
    assert alerts(got)[110278] == 1 and 110221 not in alerts(got)


def test_a_scan_of_over_1000_findings_all_logged_claims_none_missing(logs, receiver, cli_args):
    """The producer logs every finding: a summary counting 1002 is not a truncated scan by itself."""
    at = NOW_MS - 30 * MINUTE
    first = scan("big", "2024.12", "d1", at, [finding(f"CVE-{n}") for n in range(1000)])
    first.severity_counts = {"HIGH": 1002}
    write(logs, first)  # the summary and 1000 findings (the writer stops at the old Lambda's 1000) ...
    rest = scan("big", "2024.12", "d1", at, [finding("CVE-1000"), finding("CVE-1001")])
    write_scan(logs, rest, skip_first=1)  # ... and the producer's two more, in the same stream
    got = read_pass(cli_args, receiver)
    (summary,) = [e for e in got if e["aws"]["event_type"] == "scan_summary"]
    assert summary["aws"]["ecr"]["truncated"] is True  # the field keeps its meaning: over 1000
    (changes,) = scan_changes(got)
    assert (changes["complete"], changes["findings_received"]) == (True, 1002)
    raised = alerts(got)
    assert 110221 not in raised and 110278 not in raised  # nothing says findings are missing
    assert raised[110275] == 1 and raised[110203] == 1002


def test_a_scan_read_across_two_passes_resolves_only_after_the_second(logs, receiver, cli_args):
    write(logs, scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-1"), finding("CVE-2")]))
    read_pass(cli_args, receiver)
    later = scan(
        "web", "prod", "d2", NOW_MS - 2 * MINUTE, [finding("CVE-2"), finding("CVE-3"), finding("CVE-4")]
    )
    write_scan(logs, later, only_first=2)  # summary + one finding so far: the Lambda is still writing
    partial = read_pass(cli_args, receiver)
    assert [e for e in partial if e["aws"]["ecr"].get("change") == "resolved"] == []
    assert scan_changes(partial) == []
    write_scan(logs, later, skip_first=2)
    rest = read_pass(cli_args, receiver)
    resolved = [e["vulnerability"]["cve"] for e in rest if e["aws"]["ecr"].get("change") == "resolved"]
    assert resolved == ["CVE-1"]
    (changes,) = scan_changes(rest)
    assert changes["changes"]["new"]["total"] == 2 and changes["changes"]["persisting"]["total"] == 1


def test_two_repositories_with_the_same_tags_are_separate(logs, receiver, cli_args):
    write(
        logs,
        scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-W")]),
        scan("api", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-A")]),
    )
    read_pass(cli_args, receiver)
    write(logs, scan("web", "prod", "d2", NOW_MS - 5 * MINUTE, [finding("CVE-A")]))
    got = read_pass(cli_args, receiver)
    # api's CVE-A does not make web's new; web's CVE-W is resolved in web only
    assert findings(got) == {"CVE-A": "new", "CVE-W": "resolved"}
    assert {e["aws"]["ecr"]["repository"] for e in got} == {"web"}


def test_untagged_digests_are_images_of_their_own(logs, receiver, cli_args):
    one = scan("web", "", "u1", NOW_MS - 10 * MINUTE, [finding("CVE-1"), finding("CVE-2")])
    two = scan("web", "", "u2", NOW_MS - 10 * MINUTE, [finding("CVE-1")])
    write(logs, one, two)
    first = read_pass(cli_args, receiver)
    assert all("image_tag" not in e["aws"]["ecr"] for e in first)
    assert len(scan_changes(first)) == 2
    write(logs, scan("web", "", "u1", NOW_MS - 5 * MINUTE, [finding("CVE-2")]))
    second = read_pass(cli_args, receiver)
    assert findings(second) == {"CVE-1": "resolved", "CVE-2": "persisting"}
    resolved = next(e for e in second if e["aws"]["ecr"].get("change") == "resolved")
    assert resolved["aws"]["ecr"]["image_digest"] == "sha256:" + one.digest_hex
    assert "previous_digest" not in resolved["aws"]["ecr"]


class ClosingReceiver:
    """analysisd going away: a bound socket that takes `keep` datagrams, then closes and disappears."""

    def __init__(self, path: str, keep: int) -> None:
        self.path, self.keep = path, keep
        self.events: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.thread = threading.Thread(target=self._take, daemon=True)
        self.thread.start()

    def _take(self) -> None:
        while len(self.events) < self.keep:
            data = self.sock.recv(1 << 17)
            if data.startswith(EVENT_HEADER):  # status lines are not counted
                self.events.append(json.loads(data[len(EVENT_HEADER) :]))
        self.sock.close()
        os.unlink(self.path)


def test_a_crash_between_a_scans_findings_and_its_completion(logs, receiver, cli_args, short_dir: Path):
    write(logs, scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-1"), finding("CVE-2")]))
    read_pass(cli_args, receiver)
    later = scan("web", "prod", "d2", NOW_MS - 5 * MINUTE, [finding("CVE-2"), finding("CVE-3")])
    write(logs, later)
    gone = ClosingReceiver(str(short_dir / "gone"), keep=later.event_count())
    crashed = run_cli(*lifecycle_args(cli_args, "--socket", gone.path))
    assert crashed.returncode == 5, crashed.stderr  # analysisd vanished while the completion was sent
    gone.thread.join(5)
    assert findings(gone.events) == {"CVE-2": "persisting", "CVE-3": "new"}

    after = read_pass(cli_args, receiver)
    # the findings are not sent again; the completion is sent once, as if nothing had happened
    assert findings(after) == {"CVE-1": "resolved"}
    assert len(scan_changes(after)) == 1
    assert read_pass(cli_args, receiver) == []


def test_images_not_scanned_for_the_keep_time_are_forgotten(logs, receiver, cli_args, short_dir: Path):
    write(logs, scan("web", "prod", "d1", NOW_MS - 3 * 86_400_000, [finding("CVE-1")]))
    read_pass(cli_args, receiver, "--lifecycle_days", "2")  # forgotten at the end of this pass
    write(logs, scan("web", "prod", "d1", NOW_MS - 5 * MINUTE, [finding("CVE-1")]))
    assert findings(read_pass(cli_args, receiver, "--lifecycle_days", "2")) == {"CVE-1": "new"}
    # the same two scans kept for the default 90 days (a fresh state file): the second is persisting
    kept = read_pass(cli_args, receiver, "--state_db", str(short_dir / "kept.db"))
    changes = [e["aws"]["ecr"]["change"] for e in kept if e["aws"]["event_type"] == "finding"]
    assert sorted(changes) == ["new", "persisting"]


def test_replay_to_stdout_computes_the_same_lifecycle_as_a_live_read(logs, receiver, cli_args, tmp_path):
    old = scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-A"), finding("CVE-B")])
    new = scan("web", "prod", "d2", NOW_MS - 5 * MINUTE, [finding("CVE-B"), finding("CVE-C")])
    write(logs, old, new)
    live = read_pass(cli_args, receiver)
    recording = tmp_path / "rec.jsonl"
    recording.write_text("".join(json.dumps(line) + "\n" for line in recording_lines([old, new])))
    replay = run_cli("--run-once", "--lifecycle", "--output", "stdout", "--replay", str(recording))
    assert replay.returncode == 0, replay.stderr
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]

    def lifecycle_view(events: list[dict]) -> list[tuple]:
        return sorted(
            (
                e["aws"]["event_type"],
                e.get("vulnerability", {}).get("cve", ""),
                e["aws"]["ecr"].get("change", ""),
                e["aws"]["ecr"].get("previous_digest", ""),
                json.dumps(e["aws"]["ecr"].get("changes"), sort_keys=True),
            )
            for e in events
        )

    assert lifecycle_view(replayed) == lifecycle_view(live)
    assert ("finding", "CVE-A", "resolved", "sha256:" + old.digest_hex, "null") in lifecycle_view(live)


def test_without_lifecycle_events_are_as_before(logs, receiver, cli_args):
    write(logs, scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-1")]))
    result = run_cli(*cli_args("--no-lifecycle"))
    assert result.returncode == 0, result.stderr
    got = receiver.take().every
    assert len(got) == 2
    assert all("change" not in e["aws"]["ecr"] and "status" not in e.get("vulnerability", {}) for e in got)


def test_the_lifecycle_makes_no_aws_call(logs, receiver, cli_args, short_dir: Path):
    write(
        logs,
        scan("web", "prod", "d1", NOW_MS - 10 * MINUTE, [finding("CVE-1"), finding("CVE-2")]),
        scan("web", "prod", "d2", NOW_MS - 5 * MINUTE, [finding("CVE-2")]),
    )

    def api_calls(*extra: str) -> str:
        result = run_cli(*cli_args("--workers", "1", *extra))
        assert result.returncode == 0, result.stderr
        receiver.take()
        return next(line for line in result.stderr.splitlines() if line.startswith("API calls:"))

    without = api_calls("--no-lifecycle", "--state_db", str(short_dir / "off.db"))
    with_lifecycle = api_calls("--state_db", str(short_dir / "on.db"))  # on by default
    assert with_lifecycle == without
    assert "FilterLogEvents=" in without
