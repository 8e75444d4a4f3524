"""Flattening: names → context, messages → finding / scan_summary / unparsed, and the golden files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wazuh_ecr_scan.encode import MAX_DATAGRAM, STATUS_HEADER, encode_event, encode_status
from wazuh_ecr_scan.flatten import LogEvent, flatten, iso_millis
from wazuh_ecr_scan.names import parse_stream_name, repository_of
from wazuh_ecr_scan.replay import ReplayReader

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "fixtures-reference"
DIGEST = "83fc47a390b715a4957a4b67813722d7dd6ed2f77b68f970e8aedd6274307fe2"
GROUP = "/aws/ecr/image-scan-findings/team-a/billing-worker"


def event(stream: str, message: str, group: str = GROUP) -> LogEvent:
    return LogEvent(group, stream, "3801", 1749261733844, message)


@pytest.mark.parametrize(
    ("name", "kind", "tag", "scan_time"),
    [
        (f"SUMMARY-latest-{DIGEST}-2025-06-07T02-02-04Z", "SUMMARY", "latest", "2025-06-07T02:02:04Z"),
        (
            f"HIGH-release-2.4.1-rc.1-{DIGEST}-2025-06-02T14-17-40Z",
            "HIGH",
            "release-2.4.1-rc.1",
            "2025-06-02T14:17:40Z",
        ),
        (f"CRITICAL-{'a' * 40}-{DIGEST}-2025-06-02T14-17-40Z", "CRITICAL", "a" * 40, "2025-06-02T14:17:40Z"),
        # a tag that itself ends like a digest and a time: parsing from the right still works
        (
            f"LOW-x-{'0' * 64}-2025-01-01T00-00-00Z-{DIGEST}-2025-06-02T14-17-40Z",
            "LOW",
            f"x-{'0' * 64}-2025-01-01T00-00-00Z",
            "2025-06-02T14:17:40Z",
        ),
        (f"UNDEFINED--{DIGEST}-2025-06-02T14-17-40Z", "UNDEFINED", "", "2025-06-02T14:17:40Z"),
    ],
)
def test_stream_names_parse_from_the_right(name, kind, tag, scan_time):
    parsed = parse_stream_name(name)
    assert parsed is not None
    assert (parsed.kind, parsed.image_tag, parsed.image_digest, parsed.scan_time) == (
        kind,
        tag,
        "sha256:" + DIGEST,
        scan_time,
    )


@pytest.mark.parametrize(
    "name",
    [
        "my-own-stream",
        f"HIGH-latest-{DIGEST[:63]}-2025-06-02T14-17-40Z",
        f"SEVERE-latest-{DIGEST}-2025-06-02T14-17-40Z",
        f"HIGH-latest-{DIGEST}-2025-06-02T14:17:40Z",
        f"high-latest-{DIGEST}-2025-06-02T14-17-40Z",
        f"HIGH-latest-{DIGEST}-2025-06-02T14-17-40Z\n",
        f"HIGH-latest-{DIGEST}-\u0662\u0660\u0662\u0665-06-02T14-17-40Z",
        "",
    ],
)
def test_other_stream_names_do_not_parse(name):
    assert parse_stream_name(name) is None


def test_repository_keeps_every_slash():
    assert repository_of("/aws/ecr/image-scan-findings/a/b/c") == "a/b/c"
    assert repository_of("/custom/prefix/web") == "web"
    # a narrower discovery prefix does not cut the repository name
    assert (
        repository_of("/aws/ecr/image-scan-findings/prod/api", "/aws/ecr/image-scan-findings/prod/")
        == "prod/api"
    )
    assert repository_of("/custom/ecr/team/web", "/custom/ecr") == "team/web"


def test_finding_fields_from_a_native_finding():
    message = json.dumps(
        {
            "name": "CVE-2024-1234",
            "description": "caf\u00e9 \U0001f680",
            "uri": "https://nvd/CVE-2024-1234",
            "severity": "CRITICAL",
            "attributes": [
                {"key": "CVSS3_SCORE", "value": "9.8"},
                {"key": "package_version", "value": "1.1.1k"},
                {"key": "package_name", "value": "openssl"},
                {"key": "CVSS3_VECTOR", "value": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                {"key": "CVSS2_SCORE", "value": "7.5"},
            ],
        }
    )
    out = flatten(event(f"CRITICAL-v1.2-{DIGEST}-2025-06-07T02-02-04Z", message), "eu-west-1")
    assert out["integration"] == "aws"
    aws = out["aws"]
    assert (aws["source"], aws["event_type"], aws["region"]) == ("ecr_image_scan", "finding", "eu-west-1")
    assert aws["log_info"]["timestamp"] == "2025-06-07T02:02:13.844Z"
    assert aws["ecr"]["repository"] == "team-a/billing-worker"
    assert aws["ecr"]["image_tag"] == "v1.2"
    assert aws["ecr"]["image_digest"] == "sha256:" + DIGEST
    assert aws["ecr"]["attributes"]["CVSS2_SCORE"] == "7.5"
    v = out["vulnerability"]
    assert v["cve"] == "CVE-2024-1234" and v["severity"] == "Critical"
    assert v["package"] == {"name": "openssl", "version": "1.1.1k"}
    assert v["score"] == {"base": 9.8, "version": "3.1"}  # CVSS3 wins over CVSS2
    assert v["description"] == "caf\u00e9 \U0001f680"
    assert v["scanner"] == {"vendor": "Amazon ECR"}


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("INFORMATIONAL", "Informational"),
        ("LOW", "Low"),
        ("MEDIUM", "Medium"),
        ("HIGH", "High"),
        ("CRITICAL", "Critical"),
        ("UNDEFINED", "Untriaged"),
        ("UNTRIAGED", "Untriaged"),
    ],
)
def test_severities_map_to_wazuh_words(severity, expected):
    out = flatten(
        event(
            f"{severity}-v1-{DIGEST}-2025-06-07T02-02-04Z",
            json.dumps({"name": "CVE-1", "severity": severity}),
        ),
        "us-east-1",
    )
    assert out["vulnerability"]["severity"] == expected


def test_unknown_severity_falls_back_to_the_stream_and_keeps_the_original():
    out = flatten(
        event(f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z", json.dumps({"name": "CVE-1", "severity": "SEVERE"})),
        "us-east-1",
    )
    assert out["vulnerability"]["severity"] == "High"
    assert out["aws"]["ecr"]["original_severity"] == "SEVERE"


def test_cvss2_only_and_no_score():
    attrs = [{"key": "CVSS2_SCORE", "value": "5.0"}]
    out = flatten(
        event(
            f"LOW-v1-{DIGEST}-2025-06-07T02-02-04Z",
            json.dumps({"name": "CVE-1", "severity": "LOW", "attributes": attrs}),
        ),
        "us-east-1",
    )
    assert out["vulnerability"]["score"] == {"base": 5.0, "version": "2.0"}
    out = flatten(
        event(
            f"LOW-v1-{DIGEST}-2025-06-07T02-02-04Z",
            json.dumps(
                {"name": "CVE-1", "severity": "LOW", "attributes": [{"key": "CVSS2_SCORE", "value": "n/a"}]}
            ),
        ),
        "us-east-1",
    )
    assert "score" not in out["vulnerability"]


def test_summary_counts_total_and_truncation():
    stream = f"SUMMARY-v1-{DIGEST}-2025-06-07T02-02-04Z"
    out = flatten(event(stream, '{"HIGH": 700, "MEDIUM": 301}'), "us-east-1")
    ecr = out["aws"]["ecr"]
    assert out["aws"]["event_type"] == "scan_summary"
    assert ecr["severity_counts"] == {
        "CRITICAL": 0,
        "HIGH": 700,
        "MEDIUM": 301,
        "LOW": 0,
        "INFORMATIONAL": 0,
        "UNDEFINED": 0,
    }
    assert ecr["findings_total"] == 1001 and ecr["truncated"] is True
    clean = flatten(event(stream, "{}"), "us-east-1")["aws"]["ecr"]
    assert clean["findings_total"] == 0 and clean["truncated"] is False


@pytest.mark.parametrize(
    ("stream_kind", "message", "why"),
    [
        ("HIGH", "not json", "message is not valid JSON"),
        ("HIGH", '{"name": "CVE-', "message is not valid JSON"),
        ("HIGH", "null", "finding message is a JSON null"),
        ("HIGH", "[1, 2]", "finding message is a JSON array"),
        ("HIGH", '"text"', "finding message is a JSON string"),
        ("HIGH", '{"foo": 1}', "finding message has none of"),
        ("HIGH", '{"name": "CVE-1", "attributes": {"k": "v"}}', "finding attributes is a JSON object"),
        ("HIGH", '{"name": "CVE-1", "attributes": [{"value": "v"}]}', "finding attribute is not an object"),
        ("SUMMARY", "[]", "summary message is a JSON array"),
        ("SUMMARY", '{"HIGH": "3"}', "summary count 'HIGH'"),
        ("SUMMARY", '{"HIGH": 1.5}', "summary count 'HIGH'"),
        ("SUMMARY", '{"imageScanStatus": "FAILED"}', "summary imageScanStatus is a JSON string"),
        ("SUMMARY", '{"imageScanStatus": {"description": "d"}}', "summary imageScanStatus has no status"),
        ("SUMMARY", '{"imageScanStatus": {"status": ""}}', "summary imageScanStatus has no status"),
        ("SUMMARY", '{"imageScanStatus": {"status": "FAILED", "description": 5}}', "summary imageScanStatus"),
        ("SUMMARY", '{"imageScanStatus": {"status": "FAILED"}, "HIGH": 1}', "summary message has keys"),
        ("HIGH", "[" * 100_000, "message is not valid JSON"),  # deep nesting: RecursionError
    ],
)
def test_bad_messages_become_unparsed_with_the_reason_and_the_raw_text(stream_kind, message, why):
    stream = f"{stream_kind}-v1-{DIGEST}-2025-06-07T02-02-04Z"
    out = flatten(event(stream, message), "us-east-1")
    ecr = out["aws"]["ecr"]
    assert out["aws"]["event_type"] == "unparsed"
    assert ecr["parse_error"].startswith(why)
    assert ecr["raw_message"] == message
    assert ecr["image_tag"] == "v1" and ecr["repository"] == "team-a/billing-worker"
    assert len(encode_event(out)) <= MAX_DATAGRAM


def test_a_status_summary_gives_the_scan_status_and_no_counts():
    """What the producer writes for a scan that did not complete: ECR's ImageScanStatus."""
    description = "UnsupportedImageError: The operating system and/or package manager are not supported."
    message = json.dumps({"imageScanStatus": {"status": "FAILED", "description": description}})
    out = flatten(event(f"SUMMARY-v1-{DIGEST}-2025-06-07T02-02-04Z", message), "us-east-1")
    assert out["aws"]["event_type"] == "scan_summary"
    assert out["aws"]["ecr"] == {
        "repository": "team-a/billing-worker",
        "image_digest": "sha256:" + DIGEST,
        "image_tag": "v1",
        "scan_time": "2025-06-07T02:02:04Z",
        "scan_status": "FAILED",
        "scan_status_description": description,
    }
    untagged = json.dumps({"imageScanStatus": {"status": "UNSUPPORTED_IMAGE", "description": ""}})
    ecr = flatten(event(f"SUMMARY--{DIGEST}-2025-06-07T02-02-04Z", untagged), "us-east-1")["aws"]["ecr"]
    assert ecr["scan_status"] == "UNSUPPORTED_IMAGE"
    assert "image_tag" not in ecr and "scan_status_description" not in ecr  # no empty strings


def test_a_long_status_description_is_cut_for_the_rule_and_kept_whole():
    description = "RepositoryNotFoundException: " + "x" * 5000
    message = json.dumps({"imageScanStatus": {"status": "COMPLETE", "description": description}})
    out = flatten(event(f"SUMMARY-v1-{DIGEST}-2025-06-07T02-02-04Z", message), "us-east-1")
    ecr = out["aws"]["ecr"]
    assert ecr["description_cut"] == "aws.ecr.scan_status_description"
    assert ecr["full_values"] == {"aws_ecr_scan_status_description": description}
    assert description.startswith(ecr["scan_status_description"])
    # the rule expands repository, tag, digest, status and description: all within analysisd's 1024 bytes
    expanded = ("repository", "image_tag", "image_digest", "scan_status", "scan_status_description")
    assert len("".join(ecr[key] for key in expanded).encode()) <= 1023 - 256


def test_odd_stream_name_keeps_the_repository():
    out = flatten(event("whatever", '{"name": "CVE-1"}'), "us-east-1")
    assert out["aws"]["event_type"] == "unparsed"
    assert out["aws"]["ecr"] == {
        "repository": "team-a/billing-worker",
        "parse_error": "stream name does not match <SEVERITY>-<tag>-<digest>-<time>",
        "raw_message": '{"name": "CVE-1"}',
    }


def test_repeated_attribute_keys_keep_every_value():
    attrs = [{"key": "package_name", "value": "a"}, {"key": "package_name", "value": "b"}]
    out = flatten(
        event(f"LOW-v1-{DIGEST}-2025-06-07T02-02-04Z", json.dumps({"name": "CVE-1", "attributes": attrs})),
        "us-east-1",
    )
    assert out["aws"]["ecr"]["attributes"] == {"package_name": "a", "package_name_2": "b"}
    assert out["vulnerability"]["package"] == {"name": "a"}


def test_iso_millis():
    assert iso_millis(0) == "1970-01-01T00:00:00.000Z"
    assert iso_millis(1749261733844) == "2025-06-07T02:02:13.844Z"


@pytest.mark.parametrize(
    "sample",
    ["basic-scan-clair.json", "basic-scan-aws-native-namespaced.json", "basic-scan-zero-findings.json"],
)
def test_reference_samples_flatten_without_a_single_unparsed(sample):
    path = REFERENCE / sample
    if not path.exists():
        pytest.skip("../shared/fixtures-reference is not beside this checkout")
    document = json.loads(path.read_text())
    reader = ReplayReader(str(path), "us-east-1", ())
    events = [
        flatten(e, "us-east-1") for page in reader.pages(document["logGroupName"], 0) for e in page.events
    ]
    detail = document["triggerEvent"]["detail"]
    counts = detail["finding-severity-counts"]
    types = [e["aws"]["event_type"] for e in events]
    assert types.count("unparsed") == 0
    assert types.count("scan_summary") == 1
    assert types.count("finding") == sum(counts.values())
    for e in events:
        ecr = e["aws"]["ecr"]
        assert ecr["repository"] == detail["repository-name"]
        assert ecr["image_digest"] == detail["image-digest"]
        assert ecr["image_tag"] == detail["image-tags"][0]
        assert ecr["scan_time"] == document["triggerEvent"]["time"]


def test_a_stream_split_across_recording_objects_keeps_every_event(tmp_path):
    stream = f"MEDIUM-latest-{DIGEST}-2025-06-07T02-02-04Z"

    def part(cve):
        return {
            "logGroupName": GROUP,
            "logStreams": [
                {
                    "logStreamName": stream,
                    "events": [
                        {
                            "timestamp": 1749261724000,
                            "message": json.dumps({"name": cve, "severity": "MEDIUM"}),
                        }
                    ],
                }
            ],
        }

    path = tmp_path / "appended.json"
    path.write_text(json.dumps([part("CVE-2025-0001"), part("CVE-2025-0002")]))
    events = [e for page in ReplayReader(str(path), "us-east-1", ()).pages(GROUP, 0) for e in page.events]
    assert len({(e.log_stream, e.event_id) for e in events}) == 2
    assert sorted(json.loads(e.message)["name"] for e in events) == ["CVE-2025-0001", "CVE-2025-0002"]


def test_a_long_status_line_is_cut_between_characters_and_stays_one_line():
    data = encode_status("WARNING: \r\n" + "\u00e9" * 40_000)
    assert len(data) <= MAX_DATAGRAM
    text = data[len(STATUS_HEADER) :].decode("utf-8")
    assert "\n" not in text and "\r" not in text


GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.jsonl"))
# vulnerability.severity of every scan type (docs/event-schema.md)
SEVERITIES = {"Critical", "High", "Medium", "Low", "Informational", "Untriaged"}


@pytest.mark.parametrize("golden", GOLDEN, ids=[g.stem for g in GOLDEN])
def test_golden_recordings(golden, capsys):
    """Recorded input (tests/recordings) beside expected output (tests/golden), through the real CLI path."""
    from wazuh_ecr_scan.cli import main

    recording = ROOT / "tests" / "recordings" / golden.name
    assert main(["--run-once", "--output", "stdout", "--replay", str(recording)]) == 0
    produced = capsys.readouterr().out.splitlines()
    expected = golden.read_text().splitlines()
    assert len(produced) == len(expected)
    for n, (got, want) in enumerate(zip(produced, expected, strict=True)):
        assert json.loads(got) == json.loads(want), f"{golden.name} line {n + 1}"


def test_golden_files_cover_every_event_type_and_severity():
    events = [json.loads(line) for g in GOLDEN for line in g.read_text().splitlines()]
    # scan_changes: the lifecycle (on by default) sums up each scan it closed
    assert {e["aws"]["event_type"] for e in events} == {"finding", "scan_summary", "unparsed", "scan_changes"}
    changes = {e["aws"]["ecr"].get("change") for e in events if "vulnerability" in e}
    assert changes == {"new", "persisting", "resolved"}
    assert {e["vulnerability"]["severity"] for e in events if "vulnerability" in e} == SEVERITIES


# -- enhanced (Amazon Inspector) findings ------------------------------------------------------------

ENHANCED = {
    "awsAccountId": "123456789012",
    "description": "zlib: out-of-bounds read.",
    "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/abc",
    "firstObservedAt": "Dec 3, 2021, 6:02:30 PM",
    "lastObservedAt": 1733248950,
    "packageVulnerabilityDetails": {
        "vulnerabilityId": "CVE-2021-1234",
        "referenceUrls": ["https://example.org/CVE-2021-1234"],
        "vulnerablePackages": [
            {"name": "zlib", "version": "1.2.11", "fixedInVersion": "NotAvailable"},
            {"name": "openssl", "version": "3.0.1"},
            {"name": "openssl", "version": "3.0.2"},
        ],
        "cvss": [{"baseScore": 5.0, "version": "2.0", "scoringVector": "AV:N"}],
    },
    "inspectorScore": 7.5,
    "inspectorScoreDetails": {
        "adjustedCvss": {"score": 7.5, "version": "3.1", "scoringVector": "CVSS:3.1/AV:N"}
    },
    "resources": [
        {
            "type": "AWS_ECR_CONTAINER_IMAGE",
            "details": {
                "awsEcrContainerImage": {
                    "imageHash": "sha256:" + "a" * 64,
                    "imageTags": ["from-resource"],
                    "repositoryName": "team-a/billing-worker",
                }
            },
        }
    ],
    "severity": "UNTRIAGED",
    "status": "CLOSED",
    "fixAvailable": "NO",
    "exploitAvailable": "YES",
}


def test_inspector_finding_maps_to_the_binding_fields():
    out = flatten(event(f"UNTRIAGED--{DIGEST}-2025-06-07T02-02-04Z", json.dumps(ENHANCED)), "us-east-1")
    ecr, vulnerability = out["aws"]["ecr"], out["vulnerability"]
    assert out["aws"]["event_type"] == "finding"
    assert vulnerability == {
        "cve": "CVE-2021-1234",
        "reference": "https://example.org/CVE-2021-1234",  # no sourceUrl: the first reference URL
        "description": "zlib: out-of-bounds read.",
        "package": {"name": "zlib", "version": "1.2.11"},  # NotAvailable is no fixed version
        "score": {"base": 7.5, "version": "3.1", "vector": "CVSS:3.1/AV:N"},  # the score Inspector used
        "status": "Solved",
        "severity": "Untriaged",
        "scanner": {"vendor": "Amazon Inspector"},
    }
    assert ecr["scan_type"] == "enhanced"
    assert ecr["first_observed"] == "2021-12-03T18:02:30Z"  # AWS's sample-event form, read as UTC
    assert ecr["last_observed"] == "2024-12-03T18:02:30Z"  # epoch seconds
    assert ecr["other_packages"] == {"openssl": "3.0.1", "openssl_2": "3.0.2"}
    assert (ecr["fix_available"], ecr["exploit_available"]) == ("NO", "YES")
    assert ecr["alert_note"] == " (exploit available)"
    assert ecr["finding_arn"] == ENHANCED["findingArn"]
    # the stream gives digest (and an empty tag): the resource only fills what the name lacks
    assert ecr["image_digest"] == "sha256:" + DIGEST and ecr["image_tag"] == "from-resource"


def test_enhanced_finding_in_a_stream_with_another_name_is_named_by_its_resource():
    out = flatten(event("my-own-stream", json.dumps(dict(ENHANCED, status="ACTIVE"))), "us-east-1")
    ecr = out["aws"]["ecr"]
    assert out["aws"]["event_type"] == "finding" and out["vulnerability"]["status"] == "Active"
    assert (ecr["repository"], ecr["image_digest"], ecr["image_tag"]) == (
        "team-a/billing-worker",
        "sha256:" + "a" * 64,
        "from-resource",
    )
    assert out["vulnerability"]["severity"] == "Untriaged"


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2025-05-31T12:38:14.000000+00:00", "2025-05-31T12:38:14Z"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"),
        ("Dec 3, 2021, 6:02:30 PM", "2021-12-03T18:02:30Z"),
        (1733248950, "2024-12-03T18:02:30Z"),
        (1733248950250, "2024-12-03T18:02:30.250Z"),
        ("not a date", None),
        (float("inf"), None),
        (True, None),
    ],
)
def test_times_become_iso_8601_utc(raw, iso):
    from wazuh_ecr_scan.enhanced import iso_utc

    assert iso_utc(raw) == iso


def test_an_unreadable_time_is_kept_as_written():
    message = json.dumps(dict(ENHANCED, firstObservedAt="yesterday-ish"))
    ecr = flatten(event(f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z", message), "us-east-1")["aws"]["ecr"]
    assert "first_observed" not in ecr and ecr["first_observed_unparsed"] == "yesterday-ish"


def test_basic_findings_and_summaries_say_basic():
    finding = flatten(event(f"LOW-v1-{DIGEST}-2025-06-07T02-02-04Z", '{"name": "CVE-1"}'), "us-east-1")
    summary = flatten(event(f"SUMMARY-v1-{DIGEST}-2025-06-07T02-02-04Z", '{"LOW": 1}'), "us-east-1")
    enhanced_summary = flatten(
        event(f"SUMMARY-v1-{DIGEST}-2025-06-07T02-02-04Z", '{"UNTRIAGED": 1}'), "us-east-1"
    )
    assert finding["aws"]["ecr"]["scan_type"] == "basic"
    assert summary["aws"]["ecr"]["scan_type"] == "basic"
    assert enhanced_summary["aws"]["ecr"]["scan_type"] == "enhanced"


def test_a_thousand_packages_are_kept_within_the_field_budget():
    packages = [{"name": f"p{i}", "version": "1"} for i in range(1000)]
    details = dict(ENHANCED["packageVulnerabilityDetails"], vulnerablePackages=packages)
    message = json.dumps(dict(ENHANCED, packageVulnerabilityDetails=details))
    out = flatten(event(f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z", message), "us-east-1")
    decoded = json.loads(encode_event(out)[len(b"1:Wazuh-AWS:") :])
    ecr = decoded["aws"]["ecr"]
    assert len(ecr["other_packages"]) + ecr["other_packages_dropped"] == 999
    from wazuh_ecr_scan.encode import MAX_FIELDS, count_fields

    assert count_fields(decoded) <= MAX_FIELDS


def test_description_fields_are_cut_to_fit_and_kept_whole_elsewhere():
    attrs = [{"key": "package_name", "value": "n" * 600}, {"key": "package_version", "value": "v" * 600}]
    message = json.dumps({"name": "CVE-2024-1", "severity": "HIGH", "attributes": attrs})
    out = flatten(event(f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z", message), "us-east-1")
    ecr, package = out["aws"]["ecr"], out["vulnerability"]["package"]
    assert ecr["description_cut"] == "vulnerability.package.name, vulnerability.package.version"
    assert ecr["full_values"] == {
        "vulnerability_package_name": "n" * 600,
        "vulnerability_package_version": "v" * 600,
    }
    assert len(package["name"]) == len(package["version"]) < 400
    assert out["vulnerability"]["cve"] == "CVE-2024-1" and ecr["repository"] == "team-a/billing-worker"


def test_repository_after_a_double_slash_keeps_its_leading_slash():
    assert repository_of("/aws/ecr/image-scan-findings//prod/api") == "/prod/api"
    assert repository_of("/custom/ecr//web", "/custom/ecr/") == "/web"


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_any = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    replacements=st.dictionaries(st.sampled_from(sorted(ENHANCED)), json_any, max_size=6), drop=st.booleans()
)
def test_any_enhanced_like_message_gives_one_event_that_fits(replacements, drop):
    """Every member of an enhanced finding replaced by any JSON value (or left out): one event, never an
    exception, within analysisd's limits."""
    message = {k: v for k, v in ENHANCED.items() if not (drop and k in replacements)}
    if not drop:
        message.update(replacements)
    message["findingArn"] = message.get("findingArn") or "arn"  # keep it enhanced
    out = flatten(event(f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z", json.dumps(message)), "us-east-1")
    data = encode_event(out)
    assert len(data) <= MAX_DATAGRAM
    decoded = json.loads(data[len(b"1:Wazuh-AWS:") :])
    assert decoded["aws"]["event_type"] in {"finding", "unparsed"}
    if decoded["aws"]["event_type"] == "finding":
        assert decoded["vulnerability"]["scanner"]["vendor"] == "Amazon Inspector"
        assert decoded["vulnerability"]["severity"] in SEVERITIES
