"""Golden end-to-end: the core's flattened events (tests/golden/*.jsonl) through the rules."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ruletest import Engine, project_engine

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.jsonl"))

# (event_type, severity, status, change or what a summary says) -> (rule, level). The golden files are
# made with the finding lifecycle on (the default): persisting findings and tracked summaries are
# archived at level 0, each scan alerts once on its scan_changes.
EXPECTED = {
    ("finding", "Critical"): (110202, 13),
    ("finding", "High"): (110203, 10),
    ("finding", "Medium"): (110204, 7),
    ("finding", "Untriaged"): (110205, 7),
    ("finding", "Low"): (110206, 5),
    ("finding", "Informational"): (110207, 3),
    ("finding", None): (110208, 7),
    ("finding", "persisting"): (110270, 0),
    ("scan_summary", False): (110220, 3),
    ("scan_summary", True): (110221, 7),
    ("scan_summary", "tracked"): (110273, 0),
    ("scan_summary", "tracked, over 1000"): (110274, 0),
    ("unparsed", None): (110230, 5),
    ("finding", "Solved"): (110245, 3),
    ("finding", "resolved"): (110272, 3),
    ("finding", "Suppressed"): (110244, 0),
    ("scan_changes", "changed"): (110275, 3),
    ("scan_changes", "nothing changed"): (110276, 0),
    ("scan_changes", "tag moved"): (110277, 3),
    ("scan_changes", "incomplete"): (110278, 7),
}

# One row per recording: how many alerts of each rule it must produce.
RECORDINGS = {
    "malformed": {110230: 10, 110203: 6, 110278: 3},
    "multi-repo": {
        110202: 3,
        110203: 4,
        110204: 3,
        110205: 1,
        110206: 2,
        110207: 2,
        110270: 4,
        110273: 5,
        110275: 3,
        110276: 2,
    },
    "truncated-1200": {110203: 333, 110204: 415, 110206: 252, 110274: 1, 110278: 1},
    "enhanced": {
        110202: 1,
        110203: 4,
        110204: 1,
        110205: 1,
        110206: 1,
        110207: 1,
        110273: 1,
        110244: 1,
        110272: 1,
        110275: 1,
    },
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return project_engine()


def _key(event: dict) -> tuple[str, object]:
    kind, ecr = event["aws"]["event_type"], event["aws"]["ecr"]
    if kind == "finding":
        vulnerability = event.get("vulnerability", {})
        if ecr.get("change") in ("persisting", "resolved"):
            return kind, ecr["change"]
        if vulnerability.get("status") in ("Solved", "Suppressed"):
            return kind, vulnerability["status"]
        return kind, vulnerability.get("severity")
    if kind == "scan_summary":
        if ecr.get("lifecycle"):
            return kind, "tracked, over 1000" if ecr["truncated"] else "tracked"
        return kind, ecr["truncated"]
    if kind == "scan_changes":
        if not ecr["complete"]:
            return kind, "incomplete"
        if ecr["changes_total"] == 0:
            return kind, "nothing changed"
        return kind, "tag moved" if ecr.get("previous_digest") else "changed"
    return kind, None


def _rule_counts(engine: Engine, path: Path) -> Counter:
    counts: Counter = Counter()
    for line in path.read_text().splitlines():
        event = json.loads(line)
        result = engine.process("1:Wazuh-AWS:" + line)
        assert (result.rule_id, result.level) == EXPECTED[_key(event)], (path.name, line[:200])
        assert result.decoder == "json"
        counts[result.rule_id] += 1
    return counts


def test_golden_files_exist() -> None:
    assert GOLDEN_FILES, f"no golden events in {GOLDEN_DIR}"


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_events_land_on_expected_rules(engine: Engine, path: Path) -> None:
    counts = _rule_counts(engine, path)
    if path.stem in RECORDINGS:
        assert dict(counts) == RECORDINGS[path.stem]


def test_every_recording_has_a_row() -> None:
    assert {p.stem for p in GOLDEN_FILES} <= set(RECORDINGS), "add a row to RECORDINGS for each recording"
