"""Scans that did not complete, through the real CLI: the producer's status SUMMARY streams in moto's
CloudWatch Logs over HTTP, the module run once onto a real datagram socket, and what analysisd (the
project's rule engine) makes of each event that arrives."""

from __future__ import annotations

import json
import sys
import time

from conftest import EVENT_HEADER, ROOT, run_cli
from ruletest import project_engine

sys.path.insert(0, str(ROOT / "producer"))
import lambda_function as producer

DIGEST = "sha256:" + "4d" * 32
WHEN = "2026-11-30T12:00:00Z"
FAILED = "UnsupportedImageError: The operating system and/or package manager are not supported."
GONE = "RepositoryNotFoundException: The repository with name 'old/api' does not exist"


def write_status_summary(logs, repository: str, tag: str, status: str, description: str) -> None:
    """The streams the producer writes for a scan without findings to read, as it names and fills them."""
    image = producer.Image("123456789012", repository, DIGEST, tag)
    scan = producer.ScanEvent(False, image, status, WHEN)
    streams = producer.status_streams(scan, producer.ScanResult(status, description))
    logs.create_log_group(logGroupName=image.log_group)
    for name, messages in streams:
        logs.create_log_stream(logGroupName=image.log_group, logStreamName=name)
        events = [{"timestamp": int(time.time() * 1000) - 60_000, "message": m} for m in messages]
        logs.put_log_events(logGroupName=image.log_group, logStreamName=name, logEvents=events)


def test_scans_that_did_not_complete_arrive_as_summaries_with_their_status_and_alert(
    logs, receiver, cli_args
):
    write_status_summary(logs, "web/api", "v1.2", "FAILED", FAILED)
    write_status_summary(logs, "web/untagged", "", "UNSUPPORTED_IMAGE", "")
    write_status_summary(logs, "old/api", "v7", "COMPLETE", GONE)

    result = run_cli(*cli_args())

    assert result.returncode == 0, result.stderr[-2000:]
    raw = [d for d in receiver.settle().raw if d.startswith(EVENT_HEADER)]
    by_repository = {json.loads(d[len(EVENT_HEADER) :])["aws"]["ecr"]["repository"]: d for d in raw}
    assert len(raw) == len(by_repository) == 3
    engine = project_engine()
    outcomes = {}
    for repository, datagram in by_repository.items():
        event = json.loads(datagram[len(EVENT_HEADER) :])
        assert event["aws"]["event_type"] == "scan_summary"
        assert "severity_counts" not in event["aws"]["ecr"]
        alert = engine.process(datagram.decode("ascii"))
        status = event["aws"]["ecr"]["scan_status"]
        outcomes[repository] = (status, alert.rule_id, alert.level, alert.description)
    assert outcomes == {
        "web/api": (
            "FAILED",
            110249,
            7,
            f"ECR image scan of web/api:v1.2 did not complete: FAILED: {FAILED}",
        ),
        "web/untagged": (
            "UNSUPPORTED_IMAGE",
            110246,
            7,
            f"ECR image scan of web/untagged@{DIGEST} (untagged) did not complete: UNSUPPORTED_IMAGE: ",
        ),
        "old/api": (
            "COMPLETE",
            110248,
            7,
            f"ECR image scan of old/api:v7 completed (COMPLETE) but its findings could not be read: {GONE}",
        ),
    }
