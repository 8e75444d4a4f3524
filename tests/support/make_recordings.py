"""Writes the shipped recordings (tests/recordings/*.jsonl) and, with --golden, their expected
flattened events (tests/golden/*.jsonl). Deterministic: same seed, same bytes.

    python tests/support/make_recordings.py            # recordings only
    python tests/support/make_recordings.py --golden   # and regenerate the golden files (review the diff!)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lambda_writer import GROUP_PREFIX, Scan, make_scan, raw_event, recording_lines

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


def write_jsonl(path: Path, lines) -> None:
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


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
    if args.golden:
        for name in ("multi-repo", "truncated-1200", "malformed"):
            golden(name)


if __name__ == "__main__":
    main()
