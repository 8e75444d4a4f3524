"""The producer Lambda (producer/lambda_function.py) against moto's server over HTTP, then the real module.

ECR runs behind ``EcrPager`` (tests/support/ecr_pager.py), which pages DescribeImageScanFindings as ECR
does (moto returns every finding at once); CloudWatch Logs is moto's. The handler builds its clients from
boto3's default session, pointed here by ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from conftest import ROOT, run_cli
from ecr_pager import EcrPager
from fault_proxy import FaultProxy
from lambda_writer import make_finding
from moto_server import aws_client, logs_client

sys.path.insert(0, str(ROOT / "producer"))
import lambda_function

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
FIXTURES = ROOT / "tests" / "producer"
TEMPLATE = ROOT / "producer" / "template.yaml"
GROUP_PREFIX = "/aws/ecr/image-scan-findings/"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
CVSS = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
# Timestamp members of EnhancedImageScanFinding / Inspector's Finding (botocore models)
TIME_KEYS = {
    "firstObservedAt",
    "lastObservedAt",
    "updatedAt",
    "vendorCreatedAt",
    "vendorUpdatedAt",
    "pushedAt",
    "lastInUseAt",
}


# -- AWS side: moto behind the pager, and the environment the handler reads ---------------------------


@dataclass
class Aws:
    moto: str
    ecr: Any
    logs: Any
    pager: EcrPager

    def seed_scan(self, repository: str, digest: str, tag: str | None, result: dict[str, Any]) -> None:
        """An image in ECR, scanned, whose DescribeImageScanFindings answer is `result` (moto-api)."""
        with contextlib.suppress(self.ecr.exceptions.RepositoryAlreadyExistsException):
            self.ecr.create_repository(repositoryName=repository)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": digest, "size": 1, "mediaType": CONFIG_MEDIA_TYPE},
                "layers": [],
            }
        )
        self.ecr.put_image(
            repositoryName=repository,
            imageManifest=manifest,
            imageDigest=digest,
            **({"imageTag": tag} if tag else {}),
        )
        self.ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
        answer = {
            "registryId": ACCOUNT,
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            **result,
        }
        body = json.dumps({"results": [answer], "region": REGION}).encode()
        request = urllib.request.Request(
            f"{self.moto}/moto-api/static/ecr/scan-finding-results", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

    def streams(self, repository: str) -> dict[str, list[str]]:
        """Every stream of the repository's group with its messages, in write order."""
        group = GROUP_PREFIX + repository
        names = [
            s["logStreamName"]
            for page in self.logs.get_paginator("describe_log_streams").paginate(logGroupName=group)
            for s in page["logStreams"]
        ]
        return {name: read_messages(self.logs, group, name) for name in names}

    def groups(self) -> list[str]:
        pages = self.logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=GROUP_PREFIX)
        return [g["logGroupName"] for page in pages for g in page["logGroups"]]


def read_messages(logs: Any, group: str, name: str) -> list[str]:
    messages, request = [], {"logGroupName": group, "logStreamName": name, "startFromHead": True}
    while True:
        page = logs.get_log_events(**request)
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == request.get("nextToken"):
            return messages
        request["nextToken"] = page["nextForwardToken"]


@pytest.fixture
def aws(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with EcrPager(moto) as pager:
        for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", pager.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("RETENTION_DAYS", "30")
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh default session reads this environment
        yield Aws(moto, aws_client("ecr", pager.url), logs_client(moto), pager)


# -- events and findings --------------------------------------------------------------------------------


def digest_of(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def ecr_scan_event(
    repository: str,
    digest: str,
    tags: list[str],
    when: str,
    status: str = "COMPLETE",
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": hashlib.md5(f"{repository}{digest}{when}".encode()).hexdigest(),
        "detail-type": "ECR Image Scan",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": when,
        "region": REGION,
        "resources": [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"],
        "detail": {
            "scan-status": status,
            "repository-name": repository,
            "finding-severity-counts": counts or {},
            "image-digest": digest,
            "image-tags": tags,
        },
    }


def inspector_scan_event(repository: str, digest: str, tags: list[str], when: str) -> dict[str, Any]:
    arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"
    return {
        "version": "0",
        "id": hashlib.md5(f"scan{repository}{digest}{when}".encode()).hexdigest(),
        "detail-type": "Inspector2 Scan",
        "source": "aws.inspector2",
        "account": ACCOUNT,
        "time": when,
        "region": REGION,
        "resources": [arn],
        "detail": {
            "scan-status": "INITIAL_SCAN_COMPLETE",
            "repository-name": arn,
            "finding-severity-counts": {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "TOTAL": 3},
            "image-digest": digest,
            "image-tags": tags,
        },
    }


def basic_findings(seed: int, per_severity: dict[str, int]) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    findings = [
        make_finding(rng, severity, "native" if n % 2 else "clair", n)
        for severity, count in per_severity.items()
        for n in range(count)
    ]
    rng.shuffle(findings)
    return findings


def counts_of(findings: list[dict[str, Any]]) -> dict[str, int]:
    return dict(collections.Counter(f["severity"] for f in findings))


def complete(findings: list[dict], key: str = "findings", counts: dict[str, int] | None = None) -> dict:
    return {
        "imageScanStatus": {"status": "COMPLETE" if key == "findings" else "ACTIVE", "description": "ok"},
        "imageScanFindings": {
            "imageScanCompletedAt": 1748873800,
            "findingSeverityCounts": counts if counts is not None else counts_of(findings),
            key: findings,
        },
    }


def enhanced_finding(n: int, severity: str, repository: str, digest: str, tags: list[str]) -> dict[str, Any]:
    cve = f"CVE-2024-{20000 + n}"
    finding_id = hashlib.md5(cve.encode()).hexdigest()
    return {
        "awsAccountId": ACCOUNT,
        "description": f"openssl: buffer over-read in case {n} \u00e9\u2603.",
        "findingArn": f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{finding_id}",
        "firstObservedAt": 1714557600,
        "lastObservedAt": 1714644000.25,
        "packageVulnerabilityDetails": {
            "cvss": [{"baseScore": 7.5, "scoringVector": CVSS, "source": "NVD", "version": "3.1"}],
            "referenceUrls": [f"https://www.openssl.org/news/{cve}.txt"],
            "source": "NVD",
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}",
            "vendorCreatedAt": 1700000000,
            "vendorSeverity": severity,
            "vulnerabilityId": cve,
            "vulnerablePackages": [
                {
                    "name": "openssl",
                    "version": "3.0.1",
                    "release": "r0",
                    "packageManager": "OS",
                    "fixedInVersion": "3.0.2" if n % 2 else "NotAvailable",
                }
            ],
        },
        "remediation": {"recommendation": {"text": "Upgrade openssl."}},
        "resources": [
            {
                "details": {
                    "awsEcrContainerImage": {
                        "imageHash": digest,
                        "imageTags": tags,
                        "pushedAt": 1714550000,
                        "registry": ACCOUNT,
                        "repositoryName": repository,
                    }
                },
                "id": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}/{digest}",
                "type": "AWS_ECR_CONTAINER_IMAGE",
            }
        ],
        "score": 7.5,
        "scoreDetails": {
            "cvss": {
                "score": 7.5,
                "scoreSource": "NVD",
                "version": "3.1",
                "adjustments": [],
                "scoringVector": CVSS,
            }
        },
        "severity": severity,
        "status": "ACTIVE",
        "title": f"{cve} - openssl",
        "type": "PACKAGE_VULNERABILITY",
        "updatedAt": 1714644000,
        "fixAvailable": "YES" if n % 2 else "NO",
        "exploitAvailable": "NO",
    }


def iso(value: Any) -> Any:
    if isinstance(value, (int, float)):
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(value)))
        millis = round((value - int(value)) * 1000)
        return whole + (f".{millis:03d}Z" if millis else "Z")
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(value, "%b %d, %Y, %I:%M:%S %p"))
    return text


def with_iso_times(value: Any) -> Any:
    """What the producer writes for a finding: every timestamp member as ISO 8601 UTC."""
    if isinstance(value, dict):
        return {k: iso(v) if k in TIME_KEYS else with_iso_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_iso_times(v) for v in value]
    return value


def inspector_finding_event(repository: str, digest: str, tags: list[str], when: str, status: str) -> dict:
    """An Inspector2 Finding event shaped like the sample in AWS's ECR guide (dates as AWS's samples
    write them)."""
    detail = enhanced_finding(7, "MEDIUM", repository, digest, tags)
    detail.update(
        firstObservedAt="Dec 3, 2021, 6:02:30 PM",
        lastObservedAt="Dec 4, 2021, 6:02:30 AM",
        updatedAt="Dec 4, 2021, 6:02:30 AM",
        status=status,
        inspectorScore=6.5,
    )
    detail["packageVulnerabilityDetails"]["vendorCreatedAt"] = "Oct 16, 2019, 12:00:00 AM"
    detail["resources"][0]["details"]["awsEcrContainerImage"]["pushedAt"] = "Dec 3, 2021, 6:02:13 PM"
    detail["resources"][0].update(partition="N/A", region="N/A")
    return {
        "version": "0",
        "id": hashlib.md5(f"finding{digest}{when}{status}".encode()).hexdigest(),
        "detail-type": "Inspector2 Finding",
        "source": "aws.inspector2",
        "account": ACCOUNT,
        "time": when,
        "region": REGION,
        "resources": [detail["resources"][0]["id"]],
        "detail": detail,
    }


def stream(kind: str, tag: str, digest: str, when: str) -> str:
    return f"{kind}-{tag}-{digest.removeprefix('sha256:')}-{when.replace(':', '-')}"


# -- the module side ------------------------------------------------------------------------------------


def run_module(receiver, cli_args) -> list[dict[str, Any]]:
    result = run_cli(*cli_args())
    assert result.returncode == 0, result.stderr
    events = receiver.take().events
    keys = [(e["aws"]["log_info"]["log_stream"], e["aws"]["log_info"]["event_id"]) for e in events]
    assert len(keys) == len(set(keys)), "an event arrived twice"
    return events


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [e for e in events if e["aws"]["event_type"] == event_type]


# -- basic scanning -------------------------------------------------------------------------------------


def test_basic_scan_is_written_byte_for_byte_as_the_old_lambda_wrote_it(aws, receiver, cli_args):
    """A scan in the aws-samples logger's format (tests/producer/basic-scan-namespaced.json) again."""
    reference = json.loads((FIXTURES / "basic-scan-namespaced.json").read_text())
    event = reference["triggerEvent"]
    detail = event["detail"]
    old = {s["logStreamName"]: [e["message"] for e in s["events"]] for s in reference["logStreams"]}
    summary = next(name for name in old if name.startswith("SUMMARY-"))
    findings = [json.loads(m) for name, messages in old.items() if name != summary for m in messages]
    counts = json.loads(old[summary][0])
    aws.seed_scan(
        detail["repository-name"],
        detail["image-digest"],
        detail["image-tags"][0],
        complete(findings, counts=counts),
    )

    result = lambda_function.lambda_handler(event, None)

    assert result["written"] == sum(len(m) for m in old.values())
    assert aws.streams(detail["repository-name"]) == old
    events = run_module(receiver, cli_args)
    assert len(of_type(events, "finding")) == len(findings) and len(of_type(events, "scan_summary")) == 1
    for got in events:
        ecr = got["aws"]["ecr"]
        assert ecr["repository"] == detail["repository-name"] == "data-eng/etl/ingest-worker"
        assert ecr["image_digest"] == detail["image-digest"]
        assert ecr["image_tag"] == detail["image-tags"][0] == "v3.0.0-beta.2"


def test_untagged_image_is_logged_with_an_empty_tag_and_reaches_the_module_without_a_tag(
    aws, receiver, cli_args
):
    digest = digest_of("untagged")
    findings = basic_findings(1, {"HIGH": 2, "LOW": 1})
    aws.seed_scan("web/api", digest, None, complete(findings))
    when = "2026-11-30T10:00:00Z"

    lambda_function.lambda_handler(ecr_scan_event("web/api", digest, [], when), None)

    streams = aws.streams("web/api")
    assert set(streams) == {stream(k, "", digest, when) for k in ("HIGH", "LOW", "SUMMARY")}
    assert streams[stream("SUMMARY", "", digest, when)] == [json.dumps(counts_of(findings))]
    assert sorted(streams[stream("HIGH", "", digest, when)]) == sorted(
        json.dumps(f) for f in findings if f["severity"] == "HIGH"
    )
    events = run_module(receiver, cli_args)
    assert len(of_type(events, "finding")) == 3 and len(of_type(events, "scan_summary")) == 1
    for got in events:
        assert got["aws"]["ecr"]["image_digest"] == digest
        assert "image_tag" not in got["aws"]["ecr"]


def test_a_scan_of_2500_findings_is_read_page_by_page_and_written_whole(aws, receiver, cli_args):
    digest = digest_of("big")
    findings = basic_findings(
        2, {"CRITICAL": 100, "HIGH": 900, "MEDIUM": 1000, "LOW": 400, "INFORMATIONAL": 100}
    )
    aws.seed_scan("platform/base", digest, "v2", complete(findings))
    when = "2026-11-30T11:00:00Z"

    result = lambda_function.lambda_handler(
        ecr_scan_event("platform/base", digest, ["v2", "latest"], when), None
    )

    assert [page.returned for page in aws.pager.pages] == [1000, 1000, 500]
    assert all(page.max_results is not None and page.max_results <= 1000 for page in aws.pager.pages)
    assert result["written"] == 2501
    streams = aws.streams("platform/base")
    written = [m for name, messages in streams.items() if not name.startswith("SUMMARY-") for m in messages]
    assert sorted(written) == sorted(json.dumps(f) for f in findings)
    events = run_module(receiver, cli_args)
    got = of_type(events, "finding")
    assert len(got) == 2500
    assert collections.Counter(e["vulnerability"]["cve"] for e in got) == collections.Counter(
        f["name"] for f in findings
    )


def test_a_failed_scan_is_logged_as_a_summary_with_its_status(aws, receiver, cli_args):
    digest = digest_of("failed")
    description = "UnsupportedImageError: The operating system and/or package manager are not supported."
    aws.seed_scan(
        "legacy",
        digest,
        "old",
        {"imageScanStatus": {"status": "FAILED", "description": description}, "imageScanFindings": {}},
    )
    when = "2026-11-30T12:00:00Z"

    lambda_function.lambda_handler(ecr_scan_event("legacy", digest, ["old"], when, status="FAILED"), None)

    message = json.dumps({"imageScanStatus": {"status": "FAILED", "description": description}})
    assert aws.streams("legacy") == {stream("SUMMARY", "old", digest, when): [message]}
    events = run_module(receiver, cli_args)
    assert len(events) == 1
    assert events[0]["aws"]["event_type"] == "scan_summary"
    ecr = events[0]["aws"]["ecr"]
    assert (ecr["scan_status"], ecr["scan_status_description"]) == ("FAILED", description)


def test_findings_of_a_deleted_image_are_reported_as_unreadable(aws):
    digest = digest_of("gone")
    when = "2026-11-30T12:30:00Z"

    lambda_function.lambda_handler(ecr_scan_event("deleted-repo", digest, ["v1"], when), None)

    (message,) = aws.streams("deleted-repo")[stream("SUMMARY", "v1", digest, when)]
    status = json.loads(message)["imageScanStatus"]
    assert status["status"] == "COMPLETE" and status["description"].startswith(
        "RepositoryNotFoundException: "
    )


# -- redelivery -----------------------------------------------------------------------------------------


def test_a_redelivered_event_writes_nothing_twice_and_completes_a_partial_write(
    aws, receiver, cli_args, monkeypatch
):
    digest = digest_of("redelivered")
    findings = basic_findings(3, {"HIGH": 30, "MEDIUM": 20})
    aws.seed_scan("sample-repo", digest, "latest", complete(findings))
    when = "2026-11-30T13:00:00Z"
    event = ecr_scan_event("sample-repo", digest, ["latest"], when)
    # A first delivery that died midway: its HIGH stream holds 12 of 30 findings, nothing else is written.
    group, high = GROUP_PREFIX + "sample-repo", stream("HIGH", "latest", digest, when)
    high_messages = [json.dumps(f) for f in findings if f["severity"] == "HIGH"]
    aws.logs.create_log_group(logGroupName=group)
    aws.logs.create_log_stream(logGroupName=group, logStreamName=high)
    aws.logs.put_log_events(
        logGroupName=group,
        logStreamName=high,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": m} for m in high_messages[:12]],
    )

    # Streams are read back in pieces of at most 7 events with empty pages between, as AWS may page them.
    with FaultProxy(aws.moto, seed=5) as proxy:
        proxy.page_split("GetLogEvents", max_events=7, empty_pages=1)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
        second = lambda_function.lambda_handler(event, None)
        third = lambda_function.lambda_handler(event, None)
        assert proxy.count("GetLogEvents") > 10

    assert second["written"] == 50 - 12 + 1 and third["written"] == 0
    streams = aws.streams("sample-repo")
    assert sorted(streams[high]) == sorted(high_messages)
    assert sum(len(m) for m in streams.values()) == 51
    events = run_module(receiver, cli_args)
    assert len(of_type(events, "finding")) == 50 and len(of_type(events, "scan_summary")) == 1


def test_a_finding_too_large_for_cloudwatch_is_reported_and_the_rest_written(aws, caplog):
    digest = digest_of("huge")
    findings = basic_findings(6, {"CRITICAL": 2, "LOW": 1})
    findings[0]["description"] = "x" * 1_048_576  # with the JSON around it, over PutLogEvents' batch size
    aws.seed_scan("huge", digest, "v1", complete(findings))
    when = "2026-11-30T13:30:00Z"

    result = lambda_function.lambda_handler(ecr_scan_event("huge", digest, ["v1"], when), None)

    assert result["written"] == 3
    written = [m for ms in aws.streams("huge").values() for m in ms]
    assert sorted(written) == sorted(
        [json.dumps(counts_of(findings))] + [json.dumps(f) for f in findings[1:]]
    )
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "too large" in error.getMessage() and findings[0]["name"] in error.getMessage()


def test_throttled_writes_are_retried_by_botocore(aws, monkeypatch):
    digest = digest_of("throttled")
    findings = basic_findings(4, {"LOW": 5})
    aws.seed_scan("throttled", digest, "v1", complete(findings))
    with FaultProxy(aws.moto, seed=3) as proxy:
        proxy.throttle("PutLogEvents", calls=[1])
        proxy.throttle("CreateLogStream", calls=[1])
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", proxy.url)
        result = lambda_function.lambda_handler(
            ecr_scan_event("throttled", digest, ["v1"], "2026-11-30T14:00:00Z"), None
        )
        assert proxy.fault_count("PutLogEvents") == 1 and proxy.fault_count("CreateLogStream") == 1
    assert result["written"] == 6
    assert sorted(m for ms in aws.streams("throttled").values() for m in ms) == sorted(
        [json.dumps(counts_of(findings))] + [json.dumps(f) for f in findings]
    )


# -- enhanced scanning ----------------------------------------------------------------------------------


def test_an_enhanced_initial_scan_writes_every_finding_as_the_api_returned_it(aws, receiver, cli_args):
    digest = digest_of("enhanced")
    tags = ["3.19"]
    findings = [
        enhanced_finding(n, sev, "inspected", digest, tags)
        for n, sev in enumerate(["HIGH", "MEDIUM", "MEDIUM", "UNTRIAGED", "CRITICAL"])
    ]
    counts = {"HIGH": 1, "MEDIUM": 2, "UNTRIAGED": 1, "CRITICAL": 1}
    aws.seed_scan("inspected", digest, "3.19", complete(findings, "enhancedFindings", counts))
    when = "2026-11-30T15:00:00Z"

    result = lambda_function.lambda_handler(inspector_scan_event("inspected", digest, tags, when), None)

    assert result["written"] == 6
    streams = aws.streams("inspected")
    assert streams[stream("SUMMARY", "3.19", digest, when)] == [json.dumps(counts)]
    for kind in counts:
        got = [json.loads(m) for m in streams[stream(kind, "3.19", digest, when)]]
        assert got == [with_iso_times(f) for f in findings if f["severity"] == kind]
    first = json.loads(streams[stream("CRITICAL", "3.19", digest, when)][0])
    assert (
        first["firstObservedAt"] == "2024-05-01T10:00:00Z"
        and first["lastObservedAt"] == "2024-05-02T10:00:00.250Z"
    )

    events = run_module(receiver, cli_args)
    got = of_type(events, "finding")
    assert len(got) == 5 and len(of_type(events, "scan_summary")) == 1
    assert_enhanced_fields(got, findings)


def test_inspector_finding_events_active_then_closed(aws, receiver, cli_args):
    digest = digest_of("continuous")
    active = inspector_finding_event(
        "amazon/ecs-sample", digest, ["latest"], "2026-11-30T16:00:00Z", "ACTIVE"
    )
    closed = inspector_finding_event(
        "amazon/ecs-sample", digest, ["latest"], "2026-11-30T17:30:00Z", "CLOSED"
    )

    for event in (active, closed, closed):  # the CLOSED one delivered twice
        lambda_function.lambda_handler(event, None)

    streams = aws.streams("amazon/ecs-sample")
    assert set(streams) == {stream("MEDIUM", "latest", digest, e["time"]) for e in (active, closed)}
    for event in (active, closed):
        (message,) = streams[stream("MEDIUM", "latest", digest, event["time"])]
        written = json.loads(message)
        assert written == with_iso_times(event["detail"])
        assert written["firstObservedAt"] == "2021-12-03T18:02:30Z"
        assert written["status"] == event["detail"]["status"]
    assert aws.pager.pages == []  # the event carries the finding: nothing read from ECR

    events = run_module(receiver, cli_args)
    got = of_type(events, "finding")
    assert len(got) == 2
    assert sorted(e["vulnerability"]["status"] for e in got) == ["Active", "Solved"]
    for event in got:
        assert event["aws"]["ecr"]["scan_type"] == "enhanced"
        assert event["aws"]["ecr"]["repository"] == "amazon/ecs-sample"
        assert event["aws"]["ecr"]["image_digest"] == digest


def assert_enhanced_fields(events: list[dict], findings: list[dict]) -> None:
    """The binding fields of issue 12's table (read by the module's enhanced support)."""
    by_cve = {f["packageVulnerabilityDetails"]["vulnerabilityId"]: f for f in findings}
    for event in events:
        vulnerability, ecr = event["vulnerability"], event["aws"]["ecr"]
        finding = by_cve[vulnerability["cve"]]
        package = finding["packageVulnerabilityDetails"]["vulnerablePackages"][0]
        assert ecr["scan_type"] == "enhanced"
        assert vulnerability["severity"] == finding["severity"].title()
        assert vulnerability["package"]["name"] == package["name"]
        assert vulnerability["package"]["version"] == package["version"]
        if package["fixedInVersion"] != "NotAvailable":
            assert vulnerability["package"]["fixed_version"] == package["fixedInVersion"]
        else:
            assert "fixed_version" not in vulnerability["package"]
        assert float(vulnerability["score"]["base"]) == 7.5
        assert vulnerability["status"] == "Active"
        assert vulnerability["reference"] == finding["packageVulnerabilityDetails"]["sourceUrl"]
        assert vulnerability["scanner"]["vendor"] == "Amazon Inspector"
        assert ecr["fix_available"] == finding["fixAvailable"]
        assert ecr["exploit_available"] == finding["exploitAvailable"]
        assert ecr["finding_arn"] == finding["findingArn"]
        assert ecr["first_observed"] == "2024-05-01T10:00:00Z"
        assert ecr["repository"] == "inspected" and ecr["image_tag"] == "3.19"


# -- what is not ours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {
            "id": "1",
            "source": "aws.ecr",
            "detail-type": "ECR Image Action",
            "time": "2026-11-30T18:00:00Z",
            "detail": {
                "result": "SUCCESS",
                "repository-name": "x",
                "image-digest": digest_of("x"),
                "action-type": "PUSH",
            },
        },
        {
            "id": "2",
            "source": "aws.inspector2",
            "detail-type": "Inspector2 Scan",
            "time": "2026-11-30T18:00:00Z",
            "detail": {"scan-status": "INITIAL_SCAN_COMPLETE", "instance-id": "i-087d63509b8c97098"},
        },
        {
            "id": "3",
            "source": "aws.inspector2",
            "detail-type": "Inspector2 Finding",
            "time": "2026-11-30T18:00:00Z",
            "detail": {
                "severity": "HIGH",
                "resources": [{"type": "AWS_EC2_INSTANCE", "id": "i-087d63509b8c97098"}],
            },
        },
        {
            "id": "4",
            "source": "aws.s3",
            "detail-type": "Object Created",
            "time": "2026-11-30T18:00:00Z",
            "detail": {},
        },
        {
            "id": "5",
            "source": "aws.ecr",
            "detail-type": "ECR Image Scan",
            "time": "2026-11-30T18:00:00Z",
            "detail": {"scan-status": "COMPLETE"},
        },
    ],
    ids=["ecr-push", "inspector-ec2-scan", "inspector-ec2-finding", "s3", "malformed-ecr-scan"],
)
def test_an_unrelated_event_is_logged_once_and_writes_nothing(aws, event, caplog):
    caplog.set_level("INFO", logger="ecr_scan_findings")

    result = lambda_function.lambda_handler(event, None)

    assert result["written"] == 0 and result["ignored"]
    assert aws.groups() == [] and aws.pager.pages == []
    lines = [r for r in caplog.records if r.name == "ecr_scan_findings"]
    assert len(lines) == 1 and f"event {event['id']}" in lines[0].getMessage()


# -- the template ---------------------------------------------------------------------------------------


@pytest.mark.integration  # a whole linter run (seconds): with the tool runs, not the in-process tier
def test_the_template_passes_cfn_lint():
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


@pytest.mark.skipif(shutil.which("aws") is None, reason="needs the AWS CLI (pip install awscli)")
def test_cloudformation_package_and_deploy_as_the_docs_say(moto, tmp_path):
    """docs/producer.md's `aws cloudformation package` and `deploy` commands, against moto's S3 and
    CloudFormation: Lambda gets a zip of the handler, and the stack comes up with the migration's rule
    states."""
    s3 = aws_client("s3", moto)
    s3.create_bucket(Bucket="artifacts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=moto,
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    packaged = tmp_path / "packaged.yaml"

    def aws_cli(*args: str) -> None:
        # Run from producer/, as docs/producer.md says: the CLI zips a single-file Code path only when
        # that path is valid from the working directory too; from elsewhere it uploads the bare .py file.
        result = subprocess.run(
            ["aws", *args], env=env, capture_output=True, text=True, timeout=300, cwd=TEMPLATE.parent
        )
        assert result.returncode == 0, result.stderr

    aws_cli("cloudformation", "package", "--template-file", "template.yaml", "--s3-bucket", "artifacts",
            "--output-template-file", str(packaged))  # fmt: skip
    aws_cli("cloudformation", "deploy", "--template-file", str(packaged), "--stack-name", "producer",
            "--capabilities", "CAPABILITY_IAM", "--parameter-overrides", "RetentionInDays=30",
            "BasicScanRuleState=DISABLED")  # fmt: skip

    from cfnlint.decode import decode

    template, errors = decode(str(packaged))
    assert not errors
    code = template["Resources"]["Function"]["Properties"]["Code"]
    assert code["S3Bucket"] == "artifacts"
    archive = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket="artifacts", Key=code["S3Key"])["Body"].read()))
    assert archive.namelist() == ["lambda_function.py"]
    assert archive.read("lambda_function.py") == (ROOT / "producer" / "lambda_function.py").read_bytes()
    (function,) = aws_client("lambda", moto).list_functions()["Functions"]
    assert (function["Runtime"], function["Handler"]) == ("python3.13", "lambda_function.lambda_handler")
    events = aws_client("events", moto)
    rules = {json.loads(r["EventPattern"])["detail-type"][0]: r for r in events.list_rules()["Rules"]}
    assert {kind: rule["State"] for kind, rule in rules.items()} == {
        "ECR Image Scan": "DISABLED",
        "Inspector2 Scan": "ENABLED",
        "Inspector2 Finding": "ENABLED",
    }
    for rule in rules.values():
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == function["FunctionArn"]


def handler_statements() -> dict[str, set[str]]:
    from cfnlint.decode import decode

    template, errors = decode(str(TEMPLATE))
    assert not errors
    (policy,) = template["Resources"]["FunctionRole"]["Properties"]["Policies"]
    statements = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        actions = statement["Action"]
        statements[statement["Sid"]] = {actions} if isinstance(actions, str) else set(actions)
    return statements


def test_the_role_allows_exactly_the_calls_the_handler_makes(aws):
    """Every operation the handler sends, recorded by a botocore hook over one run of each event kind,
    is allowed by the role, and the role allows nothing else but what ECR asks of enhanced readers."""
    calls: set[str] = set()

    def record(model, **_: Any) -> None:
        calls.add(f"{model.service_model.signing_name}:{model.name}")

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", record)
    digest = digest_of("role")
    aws.seed_scan("role", digest, "v1", complete(basic_findings(5, {"HIGH": 2})))
    event = ecr_scan_event("role", digest, ["v1"], "2026-11-30T19:00:00Z")
    lambda_function.lambda_handler(event, None)
    lambda_function.lambda_handler(event, None)  # a redelivery reads the streams back
    lambda_function.lambda_handler(
        ecr_scan_event("role", digest, ["v1"], "2026-11-30T19:01:00Z", "FAILED"), None
    )
    lambda_function.lambda_handler(
        inspector_finding_event("role", digest, ["v1"], "2026-11-30T19:02:00Z", "ACTIVE"), None
    )

    statements = handler_statements()
    # What Lambda itself does with the role: the runtime's log lines, failed events to the queue
    assert statements.pop("FunctionOwnLogs") == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert statements.pop("FailedEventsToQueue") == {"sqs:SendMessage"}
    # ECR requires inspector2:ListFindings of a caller reading enhanced findings (not a call of ours)
    assert set().union(*statements.values()) == calls | {"inspector2:ListFindings"}
    assert calls == {
        "ecr:DescribeImageScanFindings",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:CreateLogStream",
        "logs:GetLogEvents",
        "logs:PutLogEvents",
    }
    retention = aws.logs.describe_log_groups(logGroupNamePrefix=GROUP_PREFIX + "role")["logGroups"][0]
    assert retention["retentionInDays"] == 30


# -- batching -------------------------------------------------------------------------------------------


def test_batches_keep_within_putlogevents_limits():
    now = 1_764_547_200_000
    big = "x" * (200_000 - 26)
    events = [{"timestamp": now, "message": big} for _ in range(12)]  # 2.4 MB
    events += [{"timestamp": now + 1, "message": "é"} for _ in range(15_000)]
    events += [{"timestamp": now + 24 * 3600 * 1000 + 5, "message": "late"}]
    events.reverse()

    batches = list(lambda_function.batches(copy.deepcopy(events)))

    assert sum(len(b) for b in batches) == len(events)
    for batch in batches:
        assert len(batch) <= 10_000
        assert sum(len(e["message"].encode()) + 26 for e in batch) <= 1_048_576
        assert [e["timestamp"] for e in batch] == sorted(e["timestamp"] for e in batch)
        assert batch[-1]["timestamp"] - batch[0]["timestamp"] < 24 * 3600 * 1000
    # 5 messages of 200 kB fill a megabyte; then 10,000 events; the rest; the event a day later alone
    assert [len(b) for b in batches] == [5, 5, 10_000, 5_002, 1]
