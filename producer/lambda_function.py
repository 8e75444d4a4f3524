"""Writes Amazon ECR image-scan findings to CloudWatch Logs, one message per finding.

Layout (read by wazuh-ecr-scan; see docs/producer.md): group `/aws/ecr/image-scan-findings/<repository>`,
streams `<SEVERITY>-<tag>-<digest hex>-<time>` with one message per finding and, for a scan, a
`SUMMARY-<tag>-<digest hex>-<time>` stream written last. An untagged image has an empty `<tag>`.

Events handled: `aws.ecr`/`ECR Image Scan` (basic scanning), `aws.inspector2`/`Inspector2 Scan` (enhanced
initial scan of an ECR image) and `aws.inspector2`/`Inspector2 Finding` (one enhanced finding of an ECR
image created, updated or closed). Anything else is logged in one line and ignored.

A redelivered event writes nothing twice: stream names come from the event alone, and a stream that
already exists gets only the messages it does not hold yet.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

GROUP_PREFIX = "/aws/ecr/image-scan-findings/"
PAGE_SIZE = 1000  # DescribeImageScanFindings maxResults: 1 to 1000
# PutLogEvents limits (botocore logs model, PutLogEvents): a batch holds at most 10,000 events and
# 1,048,576 bytes, counted as each message's UTF-8 size plus 26 bytes; it spans at most 24 hours.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
# Throttling (ThrottlingException) and transient errors are retried by botocore, with client-side
# rate limiting after a throttle.
CLIENT_CONFIG = Config(retries={"mode": "adaptive", "total_max_attempts": 10})

SCAN_COMPLETE_EVENTS = {"COMPLETE", "INITIAL_SCAN_COMPLETE"}  # scan-status of ECR / Inspector2 events
SCAN_DONE = {"COMPLETE", "ACTIVE"}  # ImageScanStatus with findings to read (ACTIVE: enhanced scanning)
# The image, its scan or its repository is gone: the findings can never be read, so say so in a SUMMARY.
GONE_ERRORS = {"ImageNotFoundException", "ScanNotFoundException", "RepositoryNotFoundException"}
BASIC_SEVERITIES = {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNDEFINED"}
ENHANCED_SEVERITIES = {"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNTRIAGED"}
AWS_SAMPLE_TIME = "%b %d, %Y, %I:%M:%S %p"  # "Dec 3, 2021, 6:02:30 PM", as AWS's sample events write

LOG = logging.getLogger("ecr_scan_findings")
LOG.setLevel(logging.INFO)


# -- what the event is about ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    registry: str
    repository: str
    digest: str  # sha256:...
    tag: str  # first tag, "" when the image has none

    @property
    def log_group(self) -> str:
        return GROUP_PREFIX + self.repository


@dataclass(frozen=True)
class ScanEvent:
    """A scan of one image finished (or failed): its findings are read from ECR."""

    enhanced: bool
    image: Image
    status: str  # the event's scan-status
    time: str  # EventBridge `time`


@dataclass(frozen=True)
class FindingEvent:
    """One enhanced finding of one image changed: the event carries the finding."""

    image: Image
    time: str
    finding: dict[str, Any]


def classify(event: dict[str, Any]) -> ScanEvent | FindingEvent | None:
    """The event as one we handle, or None."""
    source, kind = event.get("source"), event.get("detail-type")
    detail = event.get("detail") or {}
    if source == "aws.ecr" and kind == "ECR Image Scan":
        image = Image(
            str(event.get("account", "")),
            detail["repository-name"],
            detail["image-digest"],
            first_tag(detail.get("image-tags")),
        )
        return ScanEvent(False, image, str(detail.get("scan-status", "")), event["time"])
    if source == "aws.inspector2" and kind == "Inspector2 Scan" and "image-digest" in detail:
        registry, repository = repository_from_arn(detail["repository-name"], str(event.get("account", "")))
        image = Image(registry, repository, detail["image-digest"], first_tag(detail.get("image-tags")))
        return ScanEvent(True, image, str(detail.get("scan-status", "")), event["time"])
    if source == "aws.inspector2" and kind == "Inspector2 Finding":
        ecr = ecr_image_details(detail)
        if ecr is not None:
            image = Image(
                str(ecr.get("registry") or event.get("account", "")),
                ecr["repositoryName"],
                ecr["imageHash"],
                first_tag(ecr.get("imageTags")),
            )
            return FindingEvent(image, event["time"], detail)
    return None


def first_tag(tags: Any) -> str:
    return str(tags[0]) if isinstance(tags, list) and tags else ""


def repository_from_arn(value: str, account: str) -> tuple[str, str]:
    """(registry, repository) from `arn:aws:ecr:<region>:<account>:repository/<name>` (Inspector2 Scan
    events give the ARN), or (account, value) for a plain name."""
    parts = value.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[5].startswith("repository/"):
        return parts[4], parts[5][len("repository/") :]
    return account, value


def ecr_image_details(finding: dict[str, Any]) -> dict[str, Any] | None:
    for resource in finding.get("resources") or []:
        if resource.get("type") == "AWS_ECR_CONTAINER_IMAGE":
            details = (resource.get("details") or {}).get("awsEcrContainerImage")
            if details and details.get("repositoryName") and details.get("imageHash"):
                return details
    return None


# -- reading findings ------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    status: str
    description: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)


def read_scan(ecr: Any, image: Image, enhanced: bool) -> ScanResult:
    """Every finding of the image's last scan, following nextToken, at most PAGE_SIZE a page."""
    pages = ecr.get_paginator("describe_image_scan_findings").paginate(
        registryId=image.registry,
        repositoryName=image.repository,
        imageId={"imageDigest": image.digest},
        PaginationConfig={"PageSize": PAGE_SIZE},
    )
    result: ScanResult | None = None
    items = "enhancedFindings" if enhanced else "findings"
    for page in pages:
        found = page.get("imageScanFindings") or {}
        if result is None:
            status = page.get("imageScanStatus") or {}
            result = ScanResult(
                str(status.get("status", "")),
                str(status.get("description", "")),
                found.get("findingSeverityCounts") or {},
            )
        result.findings.extend(found.get(items) or [])
    return result or ScanResult("")


def read_status(ecr: Any, image: Image, event_status: str) -> ScanResult:
    """A scan that did not complete: the event's status, with ECR's description of it when ECR still
    reports that status."""
    page = ecr.describe_image_scan_findings(
        registryId=image.registry,
        repositoryName=image.repository,
        imageId={"imageDigest": image.digest},
        maxResults=1,
    )
    status = page.get("imageScanStatus") or {}
    same = status.get("status") == event_status
    return ScanResult(event_status, str(status.get("description", "")) if same else "")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


def error_text(exc: ClientError) -> str:
    return f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"


# -- what to write ---------------------------------------------------------------------------------------


def stream_name(kind: str, image: Image, event_time: str) -> str:
    """`<KIND>-<tag>-<digest hex>-<time>`, as the aws-samples logger names them (`:` is not allowed)."""
    return f"{kind}-{image.tag}-{image.digest.replace('sha256:', '')}-{event_time.replace(':', '-')}"


def severity_of(finding: dict[str, Any], enhanced: bool) -> str:
    known, fallback = (ENHANCED_SEVERITIES, "UNTRIAGED") if enhanced else (BASIC_SEVERITIES, "UNDEFINED")
    severity = finding.get("severity")
    return severity if severity in known else fallback


def iso_utc(value: Any) -> Any:
    """A datetime, epoch seconds or a date string as ISO 8601 UTC (`2024-05-01T10:00:00Z`); anything
    else unchanged."""
    when = value if isinstance(value, datetime) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        when = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        when = parse_time(value)
    if when is None:
        return value
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    spec = "milliseconds" if when.microsecond else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return datetime.strptime(text, AWS_SAMPLE_TIME)
    except ValueError:
        return None


def finding_message(finding: dict[str, Any]) -> str:
    """The finding as JSON with Python's default separators (as the aws-samples logger wrote them)."""
    return json.dumps(finding, default=iso_utc)


@lru_cache(maxsize=1)
def inspector_finding_shape() -> Any:
    return botocore.session.get_session().get_service_model("inspector2").shape_for("Finding")


def normalise_times(shape: Any, value: Any) -> Any:
    """`value` with every member that `shape` (botocore model) types as a timestamp in ISO 8601 UTC."""
    kind = shape.type_name
    if kind == "timestamp":
        return iso_utc(value)
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: normalise_times(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [normalise_times(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: normalise_times(shape.value, v) for k, v in value.items()}
    return value


def scan_streams(scan: ScanEvent, result: ScanResult) -> list[tuple[str, list[str]]]:
    """(stream, messages): one stream per severity, then SUMMARY last (present = scan fully written)."""
    by_severity: dict[str, list[str]] = {}
    for finding in result.findings:
        by_severity.setdefault(severity_of(finding, scan.enhanced), []).append(finding_message(finding))
    streams = [(stream_name(kind, scan.image, scan.time), messages) for kind, messages in by_severity.items()]
    streams.append((stream_name("SUMMARY", scan.image, scan.time), [json.dumps(result.counts)]))
    return streams


def status_streams(scan: ScanEvent, result: ScanResult) -> list[tuple[str, list[str]]]:
    """A scan without findings to read: its SUMMARY carries the status, as ImageScanStatus."""
    message = json.dumps({"imageScanStatus": {"status": result.status, "description": result.description}})
    return [(stream_name("SUMMARY", scan.image, scan.time), [message])]


def finding_streams(event: FindingEvent) -> list[tuple[str, list[str]]]:
    finding = normalise_times(inspector_finding_shape(), event.finding)
    return [(stream_name(severity_of(finding, True), event.image, event.time), [finding_message(finding)])]


# -- writing ---------------------------------------------------------------------------------------------


def ensure_group(logs: Any, group: str, retention_days: int | None) -> None:
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        return
    if retention_days:
        logs.put_retention_policy(logGroupName=group, retentionInDays=retention_days)


def create_stream(logs: Any, group: str, stream: str) -> bool:
    """True when this call created the stream, False when it was there already (a redelivery)."""
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        return False
    return True


def stored_messages(logs: Any, group: str, stream: str) -> Counter[str]:
    """Every message the stream holds (GetLogEvents from the head until the token comes back)."""
    held: Counter[str] = Counter()
    request = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    while True:
        page = logs.get_log_events(**request)
        held.update(event["message"] for event in page.get("events", []))
        token = page.get("nextForwardToken")
        if not token or token == request.get("nextToken"):
            return held
        request["nextToken"] = token


def not_yet_written(messages: list[str], held: Counter[str]) -> list[str]:
    """`messages` minus what the stream holds, counting repeats, in the original order."""
    left = Counter(held)
    missing = []
    for message in messages:
        if left[message]:
            left[message] -= 1
        else:
            missing.append(message)
    return missing


def batches(events: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """PutLogEvents batches in time order within the count, size and 24-hour span limits."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in sorted(events, key=lambda e: e["timestamp"]):
        event_size = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD
        if batch and (
            len(batch) == MAX_BATCH_EVENTS
            or size + event_size > MAX_BATCH_BYTES
            or event["timestamp"] - batch[0]["timestamp"] >= MAX_BATCH_SPAN_MS
        ):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch


def writable(messages: list[str], group: str, stream: str) -> list[str]:
    """Messages that fit in a batch; any other is logged as an error (the SUMMARY counts still show it)."""
    fits = []
    for message in messages:
        if len(message.encode("utf-8")) + EVENT_OVERHEAD > MAX_BATCH_BYTES:
            LOG.error(
                "finding too large for CloudWatch Logs, not written: %s %s %.200s", group, stream, message
            )
        else:
            fits.append(message)
    return fits


def write_stream(logs: Any, group: str, stream: str, messages: list[str], timestamp_ms: int) -> int:
    """Write what the stream lacks of `messages`; return how many were written."""
    if not create_stream(logs, group, stream):
        messages = not_yet_written(messages, stored_messages(logs, group, stream))
    events = [{"timestamp": timestamp_ms, "message": m} for m in writable(messages, group, stream)]
    for batch in batches(events):
        response = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
        if response.get("rejectedLogEventsInfo"):
            raise RuntimeError(
                f"{group} {stream}: PutLogEvents rejected events: {response['rejectedLogEventsInfo']}"
            )
    return len(events)


def write_streams(logs: Any, group: str, streams: list[tuple[str, list[str]]], timestamp_ms: int) -> int:
    ensure_group(logs, group, retention_days())
    return sum(write_stream(logs, group, stream, messages, timestamp_ms) for stream, messages in streams)


def retention_days() -> int | None:
    value = os.environ.get("RETENTION_DAYS", "").strip()
    return int(value) if value else None


# -- the handler -----------------------------------------------------------------------------------------


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    timestamp_ms = int(time.time() * 1000)
    try:
        what = classify(event)
    except (KeyError, TypeError, AttributeError) as exc:
        LOG.error(
            "ignored malformed %s event %s: missing or odd field %s",
            event.get("detail-type"),
            event.get("id"),
            exc,
        )
        return {"written": 0, "ignored": True}
    if what is None:
        LOG.info(
            "ignored event %s: source %s, detail-type %s",
            event.get("id"),
            event.get("source"),
            event.get("detail-type"),
        )
        return {"written": 0, "ignored": True}
    logs = boto3.client("logs", config=CLIENT_CONFIG)
    if isinstance(what, FindingEvent):
        streams = finding_streams(what)
    else:
        streams = scan_event_streams(boto3.client("ecr", config=CLIENT_CONFIG), what)
    written = write_streams(logs, what.image.log_group, streams, timestamp_ms)
    LOG.info(
        "%s %s@%s tag %r: %d of %d messages written, the others were there already",
        event.get("detail-type"),
        what.image.repository,
        what.image.digest,
        what.image.tag,
        written,
        sum(len(messages) for _, messages in streams),
    )
    return {"written": written, "ignored": False, "streams": [stream for stream, _ in streams]}


def scan_event_streams(ecr: Any, scan: ScanEvent) -> list[tuple[str, list[str]]]:
    completed = scan.status in SCAN_COMPLETE_EVENTS
    try:
        result = (
            read_scan(ecr, scan.image, scan.enhanced)
            if completed
            else read_status(ecr, scan.image, scan.status)
        )
    except ClientError as exc:
        if error_code(exc) not in GONE_ERRORS:
            raise  # the invocation fails and Lambda retries it
        LOG.error("findings of %s@%s cannot be read: %s", scan.image.repository, scan.image.digest, exc)
        return status_streams(scan, ScanResult(scan.status, error_text(exc)))
    if completed and result.status in SCAN_DONE:
        return scan_streams(scan, result)
    return status_streams(scan, result)
