"""Peak memory of the producer Lambda holding one large enhanced scan (it reads a scan whole, then writes).

    python bench/producer_memory.py [--findings 50000] [--quick]

Builds N EnhancedImageScanFinding dicts as botocore returns them (datetimes), then the messages and the
PutLogEvents events the handler would write, and prints the process's peak RSS. Compare it with the
template's MemorySize. `complete`: one event a finding (plus the SUMMARY), and the batches hold every
event.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producer"))
import lambda_function

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED")


def finding(n: int, digest: str) -> dict:
    cve = f"CVE-2024-{10000 + n}"
    finding_id = hashlib.md5(cve.encode()).hexdigest()
    when = datetime(2026, 11, 30, 10, 0, n % 60, tzinfo=timezone.utc)
    return {
        "awsAccountId": "123456789012",
        "description": f"A flaw in package {n % 97} lets a crafted input read out of bounds (case {n}).",
        "findingArn": f"arn:aws:inspector2:us-east-1:123456789012:finding/{finding_id}",
        "firstObservedAt": when,
        "lastObservedAt": when,
        "packageVulnerabilityDetails": {
            "cvss": [
                {
                    "baseScore": 7.5,
                    "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
                    "source": "NVD",
                    "version": "3.1",
                }
            ],
            "referenceUrls": [f"https://security-tracker.debian.org/tracker/{cve}"],
            "source": "DEBIAN_CVE",
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}",
            "vendorSeverity": "high",
            "vulnerabilityId": cve,
            "vulnerablePackages": [
                {
                    "name": f"lib{n % 97}",
                    "version": "1.2.3",
                    "release": "1",
                    "arch": "X86_64",
                    "packageManager": "OS",
                    "fixedInVersion": "1.2.4",
                }
            ],
        },
        "remediation": {"recommendation": {"text": "None Provided"}},
        "resources": [
            {
                "id": f"arn:aws:ecr:us-east-1:123456789012:repository/big/{digest}",
                "type": "AWS_ECR_CONTAINER_IMAGE",
                "details": {
                    "awsEcrContainerImage": {
                        "repositoryName": "big",
                        "imageHash": digest,
                        "imageTags": ["v1"],
                        "registry": "123456789012",
                        "pushedAt": when,
                    }
                },
            }
        ],
        "score": 7.5,
        "severity": SEVERITIES[n % len(SEVERITIES)],
        "status": "ACTIVE",
        "title": f"{cve} - lib{n % 97}",
        "type": "PACKAGE_VULNERABILITY",
        "updatedAt": when,
        "fixAvailable": "YES",
        "exploitAvailable": "NO",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=50_000)
    parser.add_argument(
        "--quick", action="store_true", help="800 findings (two batches): keeps the benchmark working in CI"
    )
    args = parser.parse_args()
    if args.quick:
        args.findings = 800
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest = "sha256:" + hashlib.sha256(b"big").hexdigest()
    findings = [finding(n, digest) for n in range(args.findings)]
    image = lambda_function.Image("123456789012", "big", digest, "v1")
    scan = lambda_function.ScanEvent(True, image, "INITIAL_SCAN_COMPLETE", "2026-11-30T10:00:00Z")
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}
    streams = lambda_function.scan_streams(scan, lambda_function.ScanResult("ACTIVE", "", counts, findings))
    events = [{"timestamp": 0, "message": m} for _, messages in streams for m in messages]
    batches = batched = 0
    for batch in lambda_function.batches(events):
        batches, batched = batches + 1, batched + len(batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    size = sum(len(e["message"].encode()) for e in events)
    print(
        json.dumps(
            {
                "benchmark": "producer_memory",
                "findings": args.findings,
                "message_bytes": size,
                "batches": batches,
                "rss_before_mib": round(before / 1024),
                "peak_rss_mib": round(peak / 1024),
                "complete": len(events) == args.findings + 1 and batched == len(events),
            }
        )
    )


if __name__ == "__main__":
    main()
