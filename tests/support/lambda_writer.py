"""Makes scans exactly as the aws-samples ECR scan findings logger Lambda writes them.

Layout (Template-ECR-SFL.yml, see ../shared/fixtures-reference/README.md): group
`/aws/ecr/image-scan-findings/<repo>`; stream `SUMMARY-<tag>-<digest hex>-<time>` with one event,
`json.dumps(findingSeverityCounts)`; then one stream per key of the counts, one event per finding,
`json.dumps(finding)`, written one PutLogEvents call at a time (here one call per stream unless a test
asks for `one_by_one`); every event has the same timestamp: the Lambda's start time in ms. At most 1000
findings are written; the counts cover all of them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROUP_PREFIX = "/aws/ecr/image-scan-findings/"
LAMBDA_MAX_FINDINGS = 1000
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
_PACKAGES = ("openssl", "musl", "zlib", "curl", "libssh2", "expat", "glibc", "busybox", "libxml2", "sqlite")


@dataclass
class Scan:
    repository: str
    tag: str
    digest_hex: str
    event_time: str  # EventBridge `time`, e.g. 2025-06-07T02:02:04Z
    lambda_start_ms: int
    findings: list[dict[str, Any]] = field(default_factory=list)
    severity_counts: dict[str, int] | None = None  # default: counted from the findings

    @property
    def log_group(self) -> str:
        return GROUP_PREFIX + self.repository

    def counts(self) -> dict[str, int]:
        if self.severity_counts is not None:
            return self.severity_counts
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
        return counts

    def stream_name(self, kind: str) -> str:
        return f"{kind}-{self.tag}-{self.digest_hex}-{self.event_time.replace(':', '-')}"

    def streams(self) -> list[tuple[str, list[str]]]:
        """(stream name, messages) in the order the Lambda creates and fills them."""
        counts = self.counts()
        streams = [(self.stream_name("SUMMARY"), [json.dumps(counts)])]
        by_severity = {kind: (self.stream_name(kind), []) for kind in counts}
        for finding in self.findings[:LAMBDA_MAX_FINDINGS]:
            by_severity[finding["severity"]][1].append(json.dumps(finding))
        streams.extend(by_severity.values())
        return streams

    def event_count(self) -> int:
        return sum(len(messages) for _, messages in self.streams())


def digest_for(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def make_finding(rng: random.Random, severity: str, style: str = "clair", n: int = 0) -> dict[str, Any]:
    package = rng.choice(_PACKAGES)
    version = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}-r{rng.randint(0, 9)}"
    cve = f"CVE-{rng.randint(2015, 2025)}-{rng.randint(1000, 99999)}"
    finding: dict[str, Any] = {
        "name": cve,
        "description": f"{package}: out-of-bounds write in parse_chunk() (case {n}) allows a crafted input "
        "to crash the process or execute code.",
        "uri": f"https://nvd.nist.gov/vuln/detail/{cve}",
        "severity": severity,
    }
    score = round(rng.uniform(0.1, 10.0), 1)
    if style == "clair":
        finding["attributes"] = [
            {"key": "package_version", "value": version},
            {"key": "package_name", "value": package},
            {"key": "CVSS2_VECTOR", "value": "AV:N/AC:L/Au:N/C:P/I:N/A:N"},
            {"key": "CVSS2_SCORE", "value": str(score)},
        ]
    else:
        finding["attributes"] = [
            {"key": "CVSS3_SCORE", "value": str(score)},
            {"key": "package_version", "value": version},
            {"key": "package_name", "value": package},
            {"key": "CVSS3_VECTOR", "value": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
        ]
    return finding


def make_scan(
    rng: random.Random,
    repository: str,
    tag: str,
    lambda_start_ms: int,
    per_severity: dict[str, int],
    style: str = "clair",
) -> Scan:
    findings = [
        make_finding(rng, severity, style, n)
        for severity in SEVERITY_ORDER
        for n in range(per_severity.get(severity, 0))
    ]
    rng.shuffle(findings)  # DescribeImageScanFindings returns findings in no severity order
    seconds = lambda_start_ms // 1000 - rng.randint(2, 20)  # the scan completed just before
    event_time = _iso_seconds(seconds)
    return Scan(
        repository,
        tag,
        digest_for(f"{repository}:{tag}:{lambda_start_ms}"),
        event_time,
        lambda_start_ms,
        findings,
    )


def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# -- writing to CloudWatch Logs (moto) the way the Lambda does ---------------------------------------


# PutLogEvents quotas: at most 10,000 events and 1,048,576 bytes (each message's UTF-8 bytes + 26) a call.
PUT_MAX_EVENTS = 10_000
PUT_MAX_BYTES = 1_048_576
PUT_EVENT_OVERHEAD = 26


def write_scan(
    client: Any, scan: Scan, only_first: int | None = None, skip_first: int = 0, one_by_one: bool = False
) -> int:
    """Create the group and streams, then write the scan's events, stream after stream in the Lambda's
    order. The Lambda makes one PutLogEvents call per event; a test gets the same events, timestamps and
    order from one call per stream (within the PutLogEvents quotas), ~100 times faster. `one_by_one`
    writes each event with its own call, as the Lambda does. `only_first`/`skip_first` cut the scan's
    event sequence so a test can write the rest later."""
    _create(client.create_log_group, logGroupName=scan.log_group)
    end = None if only_first is None else max(only_first, skip_first)
    chosen = list(itertools.islice(_sequence(scan), skip_first, end))
    for stream, messages in _by_stream(chosen):
        _create(client.create_log_stream, logGroupName=scan.log_group, logStreamName=stream)
        batches = ([m] for m in messages) if one_by_one else _put_batches(messages)
        for batch in batches:
            client.put_log_events(
                logGroupName=scan.log_group,
                logStreamName=stream,
                logEvents=[{"timestamp": scan.lambda_start_ms, "message": m} for m in batch],
            )
    return len(chosen)


def _by_stream(sequence: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Consecutive events of one stream grouped, in order (the Lambda fills one stream after another)."""
    grouped: list[tuple[str, list[str]]] = []
    for stream, message in sequence:
        if not grouped or grouped[-1][0] != stream:
            grouped.append((stream, []))
        grouped[-1][1].append(message)
    return grouped


def _put_batches(messages: list[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for message in messages:
        cost = len(message.encode()) + PUT_EVENT_OVERHEAD
        if batch and (len(batch) == PUT_MAX_EVENTS or size + cost > PUT_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += cost
    if batch:
        yield batch


def _sequence(scan: Scan) -> Iterator[tuple[str, str]]:
    for stream, messages in scan.streams():
        for message in messages:
            yield stream, message


def _create(call: Any, **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except Exception as exc:  # ResourceAlreadyExistsException, as the Lambda expects
        if "ResourceAlreadyExists" not in type(exc).__name__ and "AlreadyExists" not in str(exc):
            raise


# -- recordings --------------------------------------------------------------------------------------


def recording_lines(scans: list[Scan], region: str = "us-east-1") -> Iterator[dict[str, Any]]:
    """The multi-group JSON Lines recording: one FilterLogEvents event per line plus its group."""
    counter = 0
    for scan in scans:
        for stream, messages in scan.streams():
            for message in messages:
                counter += 1
                yield {
                    "logGroupName": scan.log_group,
                    "logStreamName": stream,
                    "eventId": f"{scan.lambda_start_ms:020d}{counter:036d}",
                    "timestamp": scan.lambda_start_ms,
                    "ingestionTime": scan.lambda_start_ms + 40 + counter % 900,
                    "message": message,
                }


def write_jsonl(path: Path, lines: Iterable[dict[str, Any]]) -> int:
    """`lines` as a JSON Lines recording (compact, as the shipped ones); how many were written."""
    written = 0
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
            written += 1
    return written


def raw_event(log_group: str, stream: str, timestamp: int, message: str, n: int) -> dict[str, Any]:
    return {
        "logGroupName": log_group,
        "logStreamName": stream,
        "eventId": f"{timestamp:020d}{n:036d}",
        "timestamp": timestamp,
        "ingestionTime": timestamp + 40,
        "message": message,
    }
