"""End to end: the real CLI against moto's server over HTTP, a bound datagram socket, a real SQLite file."""

from __future__ import annotations

import collections
import random
import re
import time

from conftest import Receiver, run_cli, start_cli
from lambda_writer import Scan, make_scan, write_scan

NOW_MS = int(time.time() * 1000)


def scans_for(n_repos: int, seed: int, start_ms: int, per_severity=None) -> list[Scan]:
    rng = random.Random(seed)
    per_severity = per_severity or {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 3, "LOW": 1, "INFORMATIONAL": 1}
    repos = ["sample-repo", "team-a/billing-worker", "platform/base/images/alpine", "web/api"]
    return [
        make_scan(
            rng,
            repos[i % len(repos)],
            f"v1.{i}-rc.{seed}",
            start_ms + i * 1000,
            per_severity,
            style="native" if i % 2 else "clair",
        )
        for i in range(n_repos)
    ]


def by_type(events: list[dict]) -> collections.Counter:
    return collections.Counter(e["aws"]["event_type"] for e in events)


def summary_field(stderr: str, name: str) -> int:
    return int(re.search(rf"pass done: .*\b{name}=(\d+)", stderr)[1])


def test_first_run_rerun_incremental_and_new_group(logs, receiver, cli_args):
    first = scans_for(3, seed=1, start_ms=NOW_MS - 600_000)
    for scan in first:
        write_scan(logs, scan)
    expected_findings = sum(len(s.findings) for s in first)

    result = run_cli(*cli_args())
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert by_type(got.events) == {"finding": expected_findings, "scan_summary": 3}
    assert len(set(got.keys())) == len(got.keys())  # nothing twice
    assert any("pass done:" in line for line in got.status)

    # every finding carries its repository, digest and tag from the names
    for event in got.events:
        ecr = event["aws"]["ecr"]
        scan = next(s for s in first if ecr["image_digest"] == "sha256:" + s.digest_hex)
        assert ecr["repository"] == scan.repository and ecr["image_tag"] == scan.tag
        assert event["aws"]["log_info"]["log_group"] == scan.log_group

    rerun = run_cli(*cli_args())
    assert rerun.returncode == 0, rerun.stderr
    assert receiver.take().events == []

    new = scans_for(2, seed=2, start_ms=NOW_MS - 300_000)
    new[1].repository = "brand-new/repo"  # a group that did not exist before
    for scan in new:
        write_scan(logs, scan)
    third = run_cli(*cli_args())
    assert third.returncode == 0, third.stderr
    got = receiver.take()
    assert by_type(got.events) == {"finding": sum(len(s.findings) for s in new), "scan_summary": 2}
    assert {e["aws"]["ecr"]["repository"] for e in got.events} == {new[0].repository, "brand-new/repo"}


def test_same_millisecond_late_writes_are_delivered_once(logs, receiver, cli_args):
    scan = scans_for(1, seed=3, start_ms=NOW_MS - 120_000, per_severity={"HIGH": 40, "LOW": 35})[0]
    total = scan.event_count()
    write_scan(logs, scan, only_first=30)  # the Lambda is still writing when the pass runs

    assert run_cli(*cli_args()).returncode == 0
    assert len(receiver.take().events) == 30

    write_scan(logs, scan, skip_first=30)  # the rest, with the very same timestamp
    assert run_cli(*cli_args()).returncode == 0
    got = receiver.take()
    assert len(got.events) == total - 30
    assert run_cli(*cli_args()).returncode == 0
    assert receiver.take().events == []


def test_scan_streams_created_after_a_pass_within_fifteen_minutes(logs, receiver, cli_args):
    early = scans_for(1, seed=4, start_ms=NOW_MS - 60_000)[0]
    write_scan(logs, early)
    assert run_cli(*cli_args()).returncode == 0
    receiver.take()
    # A scan whose Lambda started 14 minutes ago writes its streams only now.
    late = scans_for(1, seed=5, start_ms=NOW_MS - 14 * 60_000)[0]
    late.repository = early.repository
    write_scan(logs, late)
    assert run_cli(*cli_args()).returncode == 0
    got = receiver.take()
    assert len(got.events) == late.event_count()
    assert {e["aws"]["ecr"]["image_digest"] for e in got.events} == {"sha256:" + late.digest_hex}


def test_idle_pass_costs_two_calls_for_a_group_with_hundreds_of_streams(logs, receiver, cli_args):
    # 40 scans x 6 streams = 240 streams in one group.
    scans = scans_for(
        40,
        seed=6,
        start_ms=NOW_MS - 3_600_000,
        per_severity={"CRITICAL": 1, "HIGH": 1, "MEDIUM": 1, "LOW": 1, "INFORMATIONAL": 1},
    )
    for scan in scans:
        scan.repository = "many/streams"
        write_scan(logs, scan)
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=scans[0].log_group)
    assert sum(len(page["logStreams"]) for page in pages) >= 200

    assert run_cli(*cli_args()).returncode == 0
    assert len(receiver.take().events) == sum(s.event_count() for s in scans)
    # An hour later nothing new has arrived: the late-write window holds no events.
    idle = run_cli(*cli_args("--debug", "1"))
    assert idle.returncode == 0, idle.stderr
    assert receiver.take().events == []
    calls = dict(re.findall(r"(\w+)=(\d+)", re.search(r"API calls: (.*)", idle.stderr)[1]))
    # GetCallerIdentity: once per run, the account the state is kept under
    assert calls == {"DescribeLogGroups": "1", "FilterLogEvents": "1", "GetCallerIdentity": "1"}


def test_socket_missing_exits_5_and_advances_nothing(logs, receiver, cli_args, short_dir):
    scans = scans_for(2, seed=7, start_ms=NOW_MS - 60_000)
    for scan in scans:
        write_scan(logs, scan)
    missing = run_cli(*cli_args("--socket", str(short_dir / "nope")))
    assert missing.returncode == 5
    assert "analysisd socket" in missing.stderr and str(short_dir / "nope") in missing.stderr

    assert run_cli(*cli_args()).returncode == 0  # nothing was marked sent: everything arrives now, once
    got = receiver.take()
    assert len(got.keys()) == len(set(got.keys())) == sum(s.event_count() for s in scans)


SENT_LINE = re.compile(r": DEBUG: sent \w+ from (?P<group>\S+)/(?P<stream>[^/\s]+) event (?P<id>\S+)$", re.M)


def test_analysisd_gone_mid_pass_commits_only_what_was_sent(logs, receiver, cli_args, short_dir):
    scans = scans_for(2, seed=8, start_ms=NOW_MS - 60_000, per_severity={"HIGH": 300, "LOW": 300})
    for scan in scans:
        write_scan(logs, scan)
    receiver.pause_after = 40  # analysisd stops reading after 40 datagrams; the module fills the queue
    proc = start_cli(*cli_args("--debug", "2"))  # debug 2: one line per event sent
    assert receiver.paused.wait(60), "the module never sent 40 datagrams"
    receiver.close()  # ...and goes away: the socket is closed and its file removed
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 5, stderr[-3000:]
    assert "cannot send to analysisd socket" in stderr
    sent = {(m["stream"], m["id"]) for m in SENT_LINE.finditer(stderr)}  # what the module handed over
    total = sum(s.event_count() for s in scans)
    assert 40 <= len(sent) < total

    back = Receiver(receiver.path)  # analysisd is back
    try:
        assert run_cli(*cli_args()).returncode == 0
        rest = back.take()
    finally:
        back.close()
    # Exactly what was not handed over arrives now: nothing sent was left uncommitted (no duplicate),
    # nothing unsent was committed (nothing lost).
    resent, arrived = len(set(rest.keys()) & sent), len(set(rest.keys()))
    assert (resent, arrived, len(rest.keys())) == (0, total - len(sent), total - len(sent))


def test_more_than_1000_findings_summary_says_truncated(logs, receiver, cli_args):
    scan = scans_for(1, seed=10, start_ms=NOW_MS - 60_000, per_severity={"HIGH": 700, "LOW": 500})[0]
    write_scan(logs, scan)
    assert run_cli(*cli_args()).returncode == 0
    got = receiver.take()
    assert by_type(got.events) == {"finding": 1000, "scan_summary": 1}
    summary = next(e for e in got.events if e["aws"]["event_type"] == "scan_summary")
    assert summary["aws"]["ecr"]["findings_total"] == 1200
    assert summary["aws"]["ecr"]["truncated"] is True


def test_malformed_messages_arrive_as_unparsed_with_a_log_line(logs, receiver, cli_args):
    group = "/aws/ecr/image-scan-findings/broken"
    logs.create_log_group(logGroupName=group)
    stream = "HIGH-v1-" + "c" * 64 + "-2025-06-07T02-02-04Z"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.create_log_stream(logGroupName=group, logStreamName="odd stream name")
    huge = '{"name": "CVE-2024-1", "severity": "HIGH", "description": "' + "D" * 300_000 + '"}'
    for message in ("not json", '{"name": "CVE-', huge):
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": NOW_MS - 1000, "message": message}],
        )
    logs.put_log_events(
        logGroupName=group,
        logStreamName="odd stream name",
        logEvents=[{"timestamp": NOW_MS - 1000, "message": "{}"}],
    )
    result = run_cli(*cli_args())
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert by_type(got.events) == {"unparsed": 3, "finding": 1}
    assert all(len(raw) <= 65535 for raw in got.raw)
    huge_event = next(e for e in got.events if e["aws"]["event_type"] == "finding")
    assert huge_event["aws"]["ecr"]["trimmed"] is True
    assert huge_event["vulnerability"]["description"].startswith("DDDD")
    assert result.stderr.count("unparsed message in group " + group) == 3
    assert "stream odd stream name" in result.stderr
