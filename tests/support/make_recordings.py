"""Writes the shipped recordings (tests/recordings/*.jsonl) and, with --golden, their expected
flattened events (tests/golden/*.jsonl). Deterministic: same seed, same bytes.

    python tests/support/make_recordings.py            # recordings only
    python tests/support/make_recordings.py --golden   # and regenerate the golden files (review the diff!)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_writer import GROUP_PREFIX, Scan, make_scan, raw_event, recording_lines, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = ROOT / "tests" / "recordings"
GOLDEN = ROOT / "tests" / "golden"
T0 = 1749261733844  # 2025-06-07T02:02:13.844Z, as in the fixtures reference


def multi_repo_scans() -> list[Scan]:
    rng = random.Random(20250607)
    sample = make_scan(rng, "sample-repo", "latest", T0, {"INFORMATIONAL": 1, "LOW": 1, "MEDIUM": 2})
    billing = make_scan(
        rng,
        "team-a/billing-worker",
        "release-2.4.1-rc.1",
        T0 + 61_000,
        {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1, "INFORMATIONAL": 1},
        style="native",
    )
    billing.findings[0]["description"] += " Emoji in a commit message \U0001f680 and caf\u00e9 triggered it."
    web = make_scan(rng, "web/api", "v1.2", T0 + 125_000, {"CRITICAL": 2, "HIGH": 1, "UNDEFINED": 1})
    web.findings.append(
        {  # a vendor advisory id, no CVSS at all, only the package attributes
            "name": "ALAS2-2023-2001",
            "description": "Amazon Linux 2 advisory: openssl updated to fix several issues.",
            "uri": "https://alas.aws.amazon.com/AL2/ALAS2-2023-2001.html",
            "severity": "HIGH",
            "attributes": [
                {"key": "package_version", "value": "1.0.2k-24.amzn2.0.7"},
                {"key": "package_name", "value": "openssl"},
            ],
        }
    )
    clean = make_scan(rng, "platform/base/images/alpine", "3.20.1", T0 + 190_000, {})
    # A rescan of the same digest a day later: new streams (new time suffix), the same findings.
    rescan = Scan(
        sample.repository,
        sample.tag,
        sample.digest_hex,
        "2025-06-08T02:02:04Z",
        T0 + 86_400_000,
        list(sample.findings),
    )
    return [sample, billing, web, clean, rescan]


def truncated_scan() -> Scan:
    rng = random.Random(1200)
    scan = make_scan(
        rng, "big/monolith", "2024.12.01", T0 + 300_000, {"HIGH": 400, "MEDIUM": 500, "LOW": 300}
    )
    return scan  # 1200 counted, the Lambda logs the first 1000


def malformed_lines() -> list[dict]:
    group = GROUP_PREFIX + "broken/repo"
    digest = "b" * 64
    good = f"HIGH-v1-{digest}-2025-06-07T02-02-04Z"
    summary = f"SUMMARY-v1-{digest}-2025-06-07T02-02-04Z"
    finding = {
        "name": "CVE-2024-0001",
        "description": "x",
        "uri": "https://nvd.nist.gov/vuln/detail/CVE-2024-0001",
        "severity": "HIGH",
        "attributes": [{"key": "package_name", "value": "zlib"}],
    }
    nasty = dict(
        finding,
        name="CVE-2024-0002",
        description='quotes " and \\ backslashes, a NUL \x00, a newline\nand a tab\t, emoji \U0001f680',
    )
    cases = [
        (good, "this is not JSON"),
        (good, json.dumps(finding)[:40]),  # truncated
        (good, "null"),
        (good, json.dumps([finding])),
        (good, json.dumps({"foo": 1, "bar": [1, 2]})),
        (good, json.dumps(dict(finding, attributes="package_name=zlib"))),
        (good, '{"name": "CVE-2024-0003", "name": "CVE-2024-0004", "severity": "HIGH"}'),  # duplicated key
        (good, json.dumps(nasty)),
        (good, json.dumps(dict(finding, name="CVE-2024-0005", description="A" * 100_000))),
        (good, json.dumps(dict(finding, name="CVE-2024-0006", severity="SEVERE"))),
        (summary, json.dumps(["HIGH", 3])),
        (summary, json.dumps({"HIGH": -1})),
        ("my-own-stream", json.dumps(finding)),
        (f"HIGH--{digest}-2025-06-07T02-02-04Z", json.dumps(dict(finding, name="CVE-2024-0007"))),
        (f"HIGH-{'t' * 300}-{digest}-2025-06-07T02-02-04Z", json.dumps(dict(finding, name="CVE-2024-0008"))),
        (f"HIGH-v1-{digest[:63]}-2025-06-07T02-02-04Z", json.dumps(dict(finding, name="CVE-2024-0009"))),
    ]
    return [
        raw_event(group, stream, T0 + 500_000, message, n) for n, (stream, message) in enumerate(cases, 1)
    ]


ACCOUNT = "123456789012"
ENHANCED_REPO = "team-a/payments"


def enhanced_finding(
    rng: random.Random,
    severity: str,
    n: int,
    digest: str,
    tag: str | None,
    status: str = "ACTIVE",
    fix: str = "YES",
    exploit: str = "NO",
    dates: tuple[object, object] = ("2025-06-01T10:00:00Z", "2025-06-07T02:02:04Z"),
    inspector_event: bool = False,
) -> dict:
    """One enhanced finding as the producer logs it: ECR's EnhancedImageScanFinding, or with
    `inspector_event` the `detail` of an `Inspector2 Finding` event (Inspector's Finding shape)."""
    package = ("openssl", "glibc", "zlib", "requests", "log4j-core")[n % 5]
    cve = f"CVE-{rng.randint(2019, 2025)}-{rng.randint(1000, 99999)}"
    score = round(rng.uniform(0.1, 10.0), 1)
    vulnerable = [
        {
            "name": package,
            "version": f"{n}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
            "packageManager": "OS" if n % 2 else "PIP",
            "fixedInVersion": "NotAvailable" if fix == "NO" else f"{n}.9.9",
            "filePath": None if n % 2 else f"/usr/lib/python3/site-packages/{package}",
        }
    ]
    if n % 3 == 0:  # a second vulnerable package, kept under aws.ecr.other_packages
        vulnerable.append(
            {"name": "libssl3", "version": "3.0.2", "packageManager": "OS", "fixedInVersion": "3.0.3"}
        )
    for each in vulnerable:
        if each.get("filePath") is None:
            each.pop("filePath", None)
    image = {
        "architecture": "amd64",
        "imageHash": "sha256:" + digest,
        "imageTags": [tag] if tag else [],
        "platform": "DEBIAN_12",
        "pushedAt": dates[0],
        "registry": ACCOUNT,
        "repositoryName": ENHANCED_REPO,
    }
    finding = {
        "awsAccountId": ACCOUNT,
        "description": f"{package}: a crafted input in case {n} leads to an out-of-bounds read.",
        "findingArn": f"arn:aws:inspector2:us-east-1:{ACCOUNT}:finding/{digest[:24]}{n:08x}",
        "firstObservedAt": dates[0],
        "lastObservedAt": dates[1],
        "packageVulnerabilityDetails": {
            "cvss": [
                {
                    "baseScore": score,
                    "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    "source": "NVD",
                    "version": "3.1",
                }
            ],
            "referenceUrls": [f"https://security-tracker.debian.org/tracker/{cve}"],
            "relatedVulnerabilities": [],
            "source": "NVD",
            "sourceUrl": f"https://nvd.nist.gov/vuln/detail/{cve}" if n % 4 else None,
            "vendorSeverity": severity.lower(),
            "vulnerabilityId": cve,
            "vulnerablePackages": vulnerable,
        },
        "remediation": {"recommendation": {"text": "Upgrade to the fixed in version."}},
        "resources": [
            {
                "details": {"awsEcrContainerImage": image},
                "id": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{ENHANCED_REPO}/sha256:{digest}",
                "type": "AWS_ECR_CONTAINER_IMAGE",
            }
        ],
        "severity": severity,
        "status": status,
        "title": f"{cve} - {package}",
        "type": "PACKAGE_VULNERABILITY",
        "updatedAt": dates[1],
        "fixAvailable": fix,
        "exploitAvailable": exploit,
    }
    if finding["packageVulnerabilityDetails"]["sourceUrl"] is None:
        del finding["packageVulnerabilityDetails"]["sourceUrl"]  # the reference falls back to referenceUrls
    cvss = {
        "score": score,
        "scoreSource": "NVD",
        "version": "3.1",
        "adjustments": [],
        "scoringVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    }
    if inspector_event:  # an Inspector Finding names its scores as Inspector does, the ECR API as ECR does
        finding["inspectorScore"] = score
        finding["inspectorScoreDetails"] = {"adjustedCvss": cvss}
        if exploit == "YES":
            finding["exploitabilityDetails"] = {"lastKnownExploitAt": dates[1]}
    else:
        finding["score"] = score
        finding["scoreDetails"] = {"cvss": cvss}
    return finding


def enhanced_lines() -> list[dict]:
    """An enhanced initial scan (SUMMARY + one stream per severity, EnhancedImageScanFinding messages)
    and `Inspector2 Finding` events (one stream each, no summary; Finding messages, dates in the three
    forms a producer may leave: ISO, AWS's sample-event form, epoch seconds)."""
    rng = random.Random(2026)
    group = GROUP_PREFIX + ENHANCED_REPO
    digest = hashlib.sha256(b"team-a/payments:v3.1.0").hexdigest()
    t_scan = "2025-06-07T02-02-04Z"
    plan = [
        ("CRITICAL", "YES", "YES"),
        ("HIGH", "YES", "NO"),
        ("HIGH", "PARTIAL", "NO"),
        ("MEDIUM", "NO", "NO"),
        ("LOW", "YES", "NO"),
        ("INFORMATIONAL", "NO", "NO"),
        ("UNTRIAGED", "NO", "NO"),
    ]
    findings = [
        enhanced_finding(rng, severity, n, digest, "v3.1.0", fix=fix, exploit=exploit)
        for n, (severity, fix, exploit) in enumerate(plan)
    ]
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    lines = []
    n = 0
    for kind, messages in [("SUMMARY", [counts])] + [
        (severity, [f for f in findings if f["severity"] == severity]) for severity in counts
    ]:
        stream = f"{kind}-v3.1.0-{digest}-{t_scan}"
        for message in messages:
            n += 1
            lines.append(raw_event(group, stream, T0 + 900_000, json.dumps(message), n))
    untagged = hashlib.sha256(b"team-a/payments:untagged").hexdigest()
    events = [  # (severity, tag, digest, status, fix, exploit, (first, last), time)
        (
            "HIGH",
            "v3.1.0",
            digest,
            "ACTIVE",
            "YES",
            "YES",
            ("Dec 3, 2021, 6:02:30 PM", "Jun 8, 2025, 9:15:00 AM"),
            "2025-06-08T09-15-02Z",
        ),
        (
            "CRITICAL",
            "v3.1.0",
            digest,
            "CLOSED",
            "YES",
            "NO",
            ("2025-06-01T10:00:00Z", "2025-06-09T11:00:00Z"),
            "2025-06-09T11-00-05Z",
        ),
        (
            "MEDIUM",
            "v3.1.0",
            digest,
            "SUPPRESSED",
            "NO",
            "NO",
            (1748772000, 1749470400),
            "2025-06-09T12-00-00Z",
        ),
        (
            "HIGH",
            "",
            untagged,
            "ACTIVE",
            "NO",
            "NO",
            ("2025-06-09T13:00:00.250Z", "2025-06-09T13:00:00.250Z"),
            "2025-06-09T13-00-01Z",
        ),
    ]
    for index, (severity, tag, image, status, fix, exploit, dates, when) in enumerate(events):
        finding = enhanced_finding(
            rng, severity, 10 + index, image, tag or None, status, fix, exploit, dates, inspector_event=True
        )
        n += 1
        stream = f"{severity}-{tag}-{image}-{when}"
        lines.append(raw_event(group, stream, T0 + 1_000_000 + index * 60_000, json.dumps(finding), n))
    return lines


def golden(name: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wazuh_ecr_scan",
            "--run-once",
            "--output",
            "stdout",
            "--replay",
            str(RECORDINGS / f"{name}.jsonl"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (GOLDEN / f"{name}.jsonl").write_text(out, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", action="store_true")
    args = parser.parse_args()
    RECORDINGS.mkdir(exist_ok=True)
    GOLDEN.mkdir(exist_ok=True)
    write_jsonl(RECORDINGS / "multi-repo.jsonl", recording_lines(multi_repo_scans()))
    write_jsonl(RECORDINGS / "truncated-1200.jsonl", recording_lines([truncated_scan()]))
    write_jsonl(RECORDINGS / "malformed.jsonl", malformed_lines())
    write_jsonl(RECORDINGS / "enhanced.jsonl", enhanced_lines())
    if args.golden:
        for name in ("multi-repo", "truncated-1200", "malformed", "enhanced"):
            golden(name)


if __name__ == "__main__":
    main()
