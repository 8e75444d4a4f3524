"""Finding lifecycle in process: lifecycle.py over a real SQLite state file, fed by the real flattener.

The CLI sequences (moto, socket, passes, kills) are in test_lifecycle_cli.py.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lambda_writer import Scan, digest_for
from wazuh_ecr_scan import lifecycle
from wazuh_ecr_scan.flatten import LogEvent, flatten
from wazuh_ecr_scan.state import GroupKey, StateStore

LATE_MS = 20 * 60_000
T0 = 1_749_261_733_000  # 2025-06-07T02:02:13Z
ACCOUNT = "111122223333"


def finding(cve: str, severity: str = "HIGH", package: str = "openssl", version: str = "1.1.1k") -> dict:
    return {
        "name": cve,
        "severity": severity,
        "uri": f"https://nvd.nist.gov/vuln/detail/{cve}",
        "attributes": [
            {"key": "package_name", "value": package},
            {"key": "package_version", "value": version},
        ],
    }


def scan(repo: str, tag: str, digest_seed: str, at_ms: int, findings: list[dict], **kw: Any) -> Scan:
    seconds = at_ms // 1000 - 5
    event_time = f"{_iso(seconds)}"
    return Scan(repo, tag, digest_for(digest_seed), event_time, at_ms, findings, **kw)


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def log_events(s: Scan, order: str = "lambda") -> list[LogEvent]:
    """The scan's events, summary first as the Lambda writes them, or summary last ("summary_last")."""
    events = [
        LogEvent(s.log_group, stream, f"{s.lambda_start_ms}-{stream}-{n}", s.lambda_start_ms, message)
        for stream, messages in s.streams()
        for n, message in enumerate(messages)
    ]
    if order == "summary_last":
        events = events[1:] + events[:1]
    return events


@dataclass
class Run:
    """One Lifecycle over a state file, as the poller drives it."""

    path: Path
    sent: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = StateStore(str(self.path))
        self.lc = lifecycle.Lifecycle(self.store, LATE_MS, keep_days=90)

    def read(self, events: list[LogEvent]) -> list[dict]:
        out = []
        for raw in events:
            event = self.lc.annotate(ACCOUNT, flatten(raw, "us-east-1"))
            out.append(event)
            self.lc.accept()
        for group in sorted({raw.log_group for raw in events}):  # the page's commit, as the poller's
            key = GroupKey(ACCOUNT, "us-east-1", group)
            self.store.commit_delivered(key, [raw for raw in events if raw.log_group == group])
        self.sent.extend(out)
        return out

    def finish(self, log_group: str, now_ms: int) -> list[dict]:
        extra = self.lc.completed(ACCOUNT, "us-east-1", log_group, now_ms)
        self.lc.sent()
        self.sent.extend(extra)
        return extra

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def run(tmp_path: Path):
    r = Run(tmp_path / "state.db")
    yield r
    r.close()


def changes(events: list[dict]) -> dict[str, str]:
    return {e["vulnerability"]["cve"]: e["aws"]["ecr"]["change"] for e in events if _is_finding(e)}


def _is_finding(e: dict) -> bool:
    return e["aws"]["event_type"] == "finding"


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["aws"]["event_type"] == kind]


# -- scenarios ---------------------------------------------------------------------------------------


def test_first_scan_is_all_new_and_a_rescan_of_the_same_digest_is_all_persisting(run: Run):
    first = scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2", "CRITICAL")])
    events = run.read(log_events(first))
    assert changes(events) == {"CVE-1": "new", "CVE-2": "new"}
    assert {e["vulnerability"]["status"] for e in of_type(events, "finding")} == {"Active"}
    (summary,) = run.finish(first.log_group, T0 + 60_000)
    assert summary["aws"]["event_type"] == "scan_changes"
    ecr = summary["aws"]["ecr"]
    assert ecr["changes"]["new"] == {
        "total": 2,
        "Critical": 1,
        "High": 1,
        "Medium": 0,
        "Low": 0,
        "Informational": 0,
        "Untriaged": 0,
    }
    assert (ecr["complete"], ecr["changes_total"], ecr["image_tag"]) == (True, 2, "prod")

    again = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-1"), finding("CVE-2", "CRITICAL")])
    events = run.read(log_events(again))
    assert changes(events) == {"CVE-1": "persisting", "CVE-2": "persisting"}
    assert all("previous_digest" not in e["aws"]["ecr"] for e in events)
    (summary,) = run.finish(again.log_group, T0 + 3_700_000)
    assert summary["aws"]["ecr"]["changes_total"] == 0
    assert summary["aws"]["ecr"]["changes"]["persisting"]["total"] == 2


def test_a_tag_moved_to_a_digest_that_fixes_two_and_adds_one(run: Run):
    old = scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2"), finding("CVE-3", "LOW")])
    run.read(log_events(old))
    run.finish(old.log_group, T0 + 60_000)
    new = scan("web", "prod", "d2", T0 + 3_600_000, [finding("CVE-3", "LOW"), finding("CVE-4", "CRITICAL")])
    events = run.read(log_events(new))
    assert changes(events) == {"CVE-3": "persisting", "CVE-4": "new"}
    assert {e["aws"]["ecr"]["previous_digest"] for e in events} == {"sha256:" + old.digest_hex}
    extra = run.finish(new.log_group, T0 + 3_700_000)
    resolved = of_type(extra, "finding")
    assert sorted(e["vulnerability"]["cve"] for e in resolved) == ["CVE-1", "CVE-2"]
    for e in resolved:
        assert e["aws"]["ecr"]["change"] == "resolved"
        assert e["vulnerability"]["status"] == "Solved"
        assert e["aws"]["ecr"]["image_digest"] == "sha256:" + new.digest_hex
        assert e["aws"]["ecr"]["previous_digest"] == "sha256:" + old.digest_hex
        assert e["aws"]["ecr"]["first_seen"] == old.event_time
    (summary,) = of_type(extra, "scan_changes")
    assert summary["aws"]["ecr"]["changes"]["resolved"]["total"] == 2
    assert summary["aws"]["ecr"]["changes"]["new"]["Critical"] == 1
    assert summary["aws"]["ecr"]["previous_digest"] == "sha256:" + old.digest_hex
    # resolved once: nothing more on a later call
    assert run.finish(new.log_group, T0 + 7_200_000) == []


def test_severity_change_is_changed_and_keeps_first_seen(run: Run):
    run.read(log_events(scan("web", "prod", "d1", T0, [finding("CVE-1", "LOW")])))
    run.finish("/aws/ecr/image-scan-findings/web", T0 + 60_000)
    later = scan("web", "prod", "d1", T0 + 86_400_000, [finding("CVE-1", "HIGH")])
    (event,) = of_type(run.read(log_events(later)), "finding")
    assert event["aws"]["ecr"]["change"] == "changed"
    assert event["aws"]["ecr"]["first_seen"] < later.event_time


def test_findings_read_before_their_summary(run: Run):
    old = scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2")])
    run.read(log_events(old, "summary_last"))
    run.finish(old.log_group, T0 + 60_000)
    new = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-2")])
    run.read(log_events(new, "summary_last"))
    extra = run.finish(new.log_group, T0 + 3_700_000)
    assert [e["vulnerability"]["cve"] for e in of_type(extra, "finding")] == ["CVE-1"]


def test_a_truncated_scan_resolves_nothing_and_says_so(run: Run):
    old = scan("web", "prod", "d1", T0, [finding(f"CVE-{n}") for n in range(5)])
    run.read(log_events(old))
    run.finish(old.log_group, T0 + 60_000)
    cut = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-0")], severity_counts={"HIGH": 1200})
    run.read(log_events(cut))
    assert run.finish(cut.log_group, T0 + 3_600_000 + 60_000) == []  # window still open: not closed yet
    extra = run.finish(cut.log_group, T0 + 3_600_000 + LATE_MS + 1000)
    (summary,) = extra
    ecr = summary["aws"]["ecr"]
    assert (ecr["complete"], ecr["findings_expected"], ecr["findings_received"]) == (False, 1200, 1)
    assert "nothing is resolved" in ecr["incomplete_reason"]
    assert ecr["changes"]["resolved"]["total"] == 0


def test_a_scan_without_a_summary_resolves_nothing(run: Run):
    old = scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2")])
    run.read(log_events(old))
    run.finish(old.log_group, T0 + 60_000)
    lost = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-1")])
    run.read(log_events(lost)[1:])  # the summary never came
    (summary,) = run.finish(lost.log_group, T0 + 3_600_000 + LATE_MS + 1000)
    assert summary["aws"]["ecr"]["complete"] is False
    assert "no summary" in summary["aws"]["ecr"]["incomplete_reason"]


def test_untagged_images_are_keyed_by_digest(run: Run):
    a = scan("web", "", "d1", T0, [finding("CVE-1")])
    b = scan("web", "", "d2", T0 + 1000, [finding("CVE-1")])
    events = run.read(log_events(a) + log_events(b))
    assert changes(events[:2]) == {"CVE-1": "new"} and changes(events[2:]) == {"CVE-1": "new"}
    assert all(
        "image_tag" not in e["aws"]["ecr"] and "previous_digest" not in e["aws"]["ecr"] for e in events
    )
    extra = run.finish(a.log_group, T0 + 60_000)
    assert len(of_type(extra, "scan_changes")) == 2 and of_type(extra, "finding") == []


def test_two_repositories_with_the_same_tags_are_separate_images(run: Run):
    a = scan("web", "prod", "d1", T0, [finding("CVE-1")])
    b = scan("api", "prod", "d1", T0, [finding("CVE-2")])
    run.read(log_events(a))
    run.read(log_events(b))
    run.finish(a.log_group, T0 + 60_000)
    run.finish(b.log_group, T0 + 60_000)
    a2 = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-1")])
    assert changes(run.read(log_events(a2))) == {"CVE-1": "persisting"}
    assert of_type(run.finish(a2.log_group, T0 + 3_700_000), "finding") == []


def test_a_zero_finding_scan_resolves_everything(run: Run):
    run.read(log_events(scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2")])))
    run.finish("/aws/ecr/image-scan-findings/web", T0 + 60_000)
    clean = scan("web", "prod", "d2", T0 + 3_600_000, [])
    run.read(log_events(clean))
    extra = run.finish(clean.log_group, T0 + 3_700_000)
    assert sorted(e["vulnerability"]["cve"] for e in of_type(extra, "finding")) == ["CVE-1", "CVE-2"]


def test_an_undelivered_event_does_not_count(run: Run):
    s = scan("web", "prod", "d1", T0, [finding("CVE-1")])
    summary, one = log_events(s)
    run.read([summary])
    first = run.lc.annotate(ACCOUNT, flatten(one, "us-east-1"))
    assert first["aws"]["ecr"]["change"] == "new"
    # not accepted (the send failed): read again, it is still new, and counted once
    again = run.lc.annotate(ACCOUNT, flatten(one, "us-east-1"))
    assert again["aws"]["ecr"]["change"] == "new"
    run.lc.accept()
    (changes_event,) = run.finish(s.log_group, T0 + 60_000)
    assert changes_event["aws"]["ecr"]["findings_received"] == 1


def test_state_survives_a_reopen(tmp_path: Path):
    first = Run(tmp_path / "state.db")
    old = scan("web", "prod", "d1", T0, [finding("CVE-1"), finding("CVE-2")])
    first.read(log_events(old))
    first.close()  # killed before the group's end: the scan's completion is in the outbox
    second = Run(tmp_path / "state.db")
    extra = second.finish(old.log_group, T0 + 60_000)
    assert len(of_type(extra, "scan_changes")) == 1
    new = scan("web", "prod", "d1", T0 + 3_600_000, [finding("CVE-2")])
    second.read(log_events(new))
    second.close()  # killed again before the group's end: the changes are in the journal
    third = Run(tmp_path / "state.db")
    resolved = of_type(third.finish(new.log_group, T0 + 3_700_000), "finding")
    assert [e["vulnerability"]["cve"] for e in resolved] == ["CVE-1"]
    back = scan("web", "prod", "d1", T0 + 7_200_000, [finding("CVE-1"), finding("CVE-2")])
    assert changes(third.read(log_events(back))) == {"CVE-1": "new", "CVE-2": "persisting"}
    third.close()


def test_images_not_scanned_for_the_keep_time_are_pruned(tmp_path: Path):
    r = Run(tmp_path / "state.db")
    r.lc = lifecycle.Lifecycle(r.store, LATE_MS, keep_days=1)
    r.store.writers[:] = [r.lc._write]
    old = scan("web", "prod", "d1", T0, [finding("CVE-1")])
    r.read(log_events(old))
    r.finish(old.log_group, T0 + 60_000)
    assert r.store.db.execute("SELECT count(*) FROM lifecycle_images").fetchone()[0] == 1
    r.finish(old.log_group, T0 + 2 * 86_400_000)
    assert r.store.db.execute("SELECT count(*) FROM lifecycle_images").fetchone()[0] == 0
    again = scan("web", "prod", "d1", T0 + 3 * 86_400_000, [finding("CVE-1")])
    assert changes(r.read(log_events(again))) == {"CVE-1": "new"}
    r.close()


# -- enhanced findings (hand-built flattened events, issue 12's fields) --------------------------------


def enhanced_event(cve: str, status: str, digest: str, when: str, arn: str) -> dict:
    return {
        "integration": "aws",
        "aws": {
            "source": "ecr_image_scan",
            "event_type": "finding",
            "region": "us-east-1",
            "log_info": {
                "log_group": "/aws/ecr/image-scan-findings/web",
                "log_stream": f"HIGH-prod-{digest}-{when.replace(':', '-')}",
                "event_id": arn + when,
                "timestamp": when.replace("Z", ".000Z"),
            },
            "ecr": {
                "repository": "web",
                "image_digest": "sha256:" + digest,
                "image_tag": "prod",
                "scan_time": when,
                "scan_type": "enhanced",
                "finding_arn": arn,
                "fix_available": "NO",
            },
        },
        "vulnerability": {
            "cve": cve,
            "severity": "High",
            "package": {"name": "openssl", "version": "1.1.1k"},
            "status": status,
        },
    }


def test_enhanced_closed_is_resolved_new_arn_is_new_timestamps_only_is_persisting(run: Run):
    digest = digest_for("e1")
    lc = run.lc

    def read(event: dict) -> dict:
        out = lc.annotate(ACCOUNT, event)
        lc.accept()
        return out

    first = read(enhanced_event("CVE-9", "Active", digest, "2025-06-07T02:00:00Z", "arn:f/1"))
    assert first["aws"]["ecr"]["change"] == "new"
    update = read(enhanced_event("CVE-9", "Active", digest, "2025-06-07T05:00:00Z", "arn:f/1"))
    assert update["aws"]["ecr"]["change"] == "persisting"
    other = read(enhanced_event("CVE-10", "Active", digest, "2025-06-07T05:00:00Z", "arn:f/2"))
    assert other["aws"]["ecr"]["change"] == "new"
    closed = read(enhanced_event("CVE-9", "Solved", digest, "2025-06-08T00:00:00Z", "arn:f/1"))
    assert (closed["aws"]["ecr"]["change"], closed["vulnerability"]["status"]) == ("resolved", "Solved")
    assert closed["aws"]["ecr"]["first_seen"] == "2025-06-07T02:00:00Z"
    suppressed = read(enhanced_event("CVE-10", "Suppressed", digest, "2025-06-08T01:00:00Z", "arn:f/2"))
    assert suppressed["vulnerability"]["status"] == "Suppressed"
    # one-finding Inspector events are not scans: no scan_changes for them, and nothing else resolved
    assert run.finish("/aws/ecr/image-scan-findings/web", _ms("2025-06-09T00:00:00Z")) == []
    again = read(enhanced_event("CVE-9", "Active", digest, "2025-06-09T02:00:00Z", "arn:f/3"))
    assert again["aws"]["ecr"]["change"] == "new"


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- property: one pass or many, the same lifecycle events -----------------------------------------------

CVES = [f"CVE-2024-{n}" for n in range(8)]


@st.composite
def scan_sequences(draw) -> list[tuple[Scan, str, bool]]:
    count = draw(st.integers(1, 8))
    at = T0
    made = []
    for _ in range(count):
        at += draw(st.sampled_from([60_000, 5 * 60_000, 30 * 60_000, 3_600_000]))
        repo = draw(st.sampled_from(["web", "api"]))
        tag = draw(st.sampled_from(["prod", "dev", ""]))
        digest = draw(st.sampled_from(["d1", "d2", "d3"]))
        cves = draw(st.lists(st.sampled_from(CVES), unique=True, max_size=5))
        severities = [draw(st.sampled_from(["HIGH", "LOW"])) for _ in cves]
        shape = draw(st.sampled_from(["complete", "complete", "truncated", "no_summary"]))
        s = scan(repo, tag, digest, at, [finding(c, sev) for c, sev in zip(cves, severities, strict=True)])
        if shape == "truncated":
            counted = s.counts()
            s.severity_counts = {**counted, "HIGH": counted.get("HIGH", 0) + 1200}
        order = draw(st.sampled_from(["lambda", "summary_last"]))
        made.append((s, order, shape == "no_summary"))
    return made


def _timeline(sequence: list[tuple[Scan, str, bool]]) -> list[LogEvent]:
    events = []
    for s, order, no_summary in sequence:
        mine = log_events(s, order)
        if no_summary:
            mine = [e for e in mine if not e.log_stream.startswith("SUMMARY-")]
        events.extend(mine)
    return events


def _replay(path: Path, events: list[LogEvent], cuts: list[int]) -> list[str]:
    """Read `events` in passes ending at `cuts`, each a process of its own (the state file reopened);
    each pass ends as the poller's does, at a time that the late-write window of every scan not yet
    fully read has not passed."""
    groups = sorted({e.log_group for e in events})
    out: list[dict] = []
    start = 0
    for end in [*cuts, len(events)]:
        r = Run(path)
        out.extend(r.read(events[start:end]) if end > start else [])
        unread = [e.timestamp for e in events[end:]]
        now = min(unread) + LATE_MS - 1 if unread else events[-1].timestamp + LATE_MS + 1
        for group in groups:
            out.extend(r.finish(group, now))
        r.close()
        start = end
    return sorted(json.dumps(e, sort_keys=True) for e in out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=scan_sequences(), data=st.data())
def test_one_pass_or_many_give_the_same_lifecycle_events(tmp_path_factory, sequence, data):
    events = _timeline(sequence)
    if not events:
        return
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    base = tmp_path_factory.mktemp("lc")
    one = _replay(base / "one.db", events, [])
    many = _replay(base / "many.db", events, cuts)
    assert one == many
    # every finding event got exactly one change, and Solved only with resolved
    for line in one:
        event = json.loads(line)
        if event["aws"]["event_type"] == "finding":
            assert event["aws"]["ecr"]["change"] in lifecycle.CHANGES
            assert (event["vulnerability"]["status"] == "Solved") == (
                event["aws"]["ecr"]["change"] == "resolved"
            )


def test_random_history_keeps_at_most_one_row_per_finding(tmp_path: Path):
    rng = random.Random(5)
    r = Run(tmp_path / "state.db")
    at = T0
    for n in range(30):
        at += 3_600_000
        cves = rng.sample(CVES, rng.randint(0, 6))
        s = scan("web", "prod", f"d{n % 3}", at, [finding(c) for c in cves])
        r.read(log_events(s))
        r.finish(s.log_group, at + 60_000)
        (blob,) = r.store.db.execute("SELECT findings FROM lifecycle_images").fetchone()
        stored = {cve for cve, _package, _version in lifecycle._unpack(blob)}
        assert stored == set(cves)  # after a complete scan the image shows exactly that scan's findings
    r.close()
