"""Hostile content through the real CLI (issue 14 items 6, 11, 12, 14): moto over HTTP or a recording,
the datagram socket, and what analysisd (the project's rule engine) makes of what arrives."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import EVENT_HEADER, run_cli
from ruletest import project_engine

DIGEST = "e" * 64
STREAM = f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z"
OS_COMMENT_MAX = 1024
AGENT_MAX_DATAGRAM = 65536 - 128  # OS_MAXSTR - OS_HEADER_SIZE


def put(logs, group: str, stream: str, *messages: str) -> None:
    timestamp_ms = int(time.time() * 1000) - 60_000
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": timestamp_ms, "message": m} for m in messages],
    )


def finding(**overrides) -> str:
    message = {
        "name": "CVE-2024-0001",
        "description": "a flaw",
        "uri": "https://nvd.nist.gov/vuln/detail/CVE-2024-0001",
        "severity": "HIGH",
        "attributes": [{"key": "package_name", "value": "zlib"}, {"key": "package_version", "value": "1.2"}],
    }
    message.update(overrides)
    return json.dumps(message)


def recording(path: Path, group: str, stream: str, message: str) -> Path:
    line = {
        "logGroupName": group,
        "logStreamName": stream,
        "eventId": "1" * 56,
        "timestamp": 1_749_261_733_844,
        "ingestionTime": 1_749_261_733_900,
        "message": message,
    }
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    return path


def test_a_group_with_a_double_slash_is_reported_with_its_own_repository_name(logs, receiver, cli_args):
    put(logs, "/aws/ecr/image-scan-findings//prod/api", STREAM, finding())
    put(logs, "/aws/ecr/image-scan-findings/prod/api", STREAM, finding(name="CVE-2024-0002"))
    assert run_cli(*cli_args()).returncode == 0
    by_cve = {e["vulnerability"]["cve"]: e["aws"]["ecr"]["repository"] for e in receiver.settle().events}
    assert by_cve == {"CVE-2024-0001": "/prod/api", "CVE-2024-0002": "prod/api"}


def test_a_hundred_thousand_same_key_attributes_are_named_in_linear_time(short_dir):
    """Quadratic naming (key_2, key_3... probed from 2 each time) needs about 5e9 probes here and
    cannot finish inside run_cli's timeout; linear naming takes well under a second of it."""
    attributes = [{"key": "k", "value": "v"} for _ in range(100_000)]
    path = recording(
        short_dir / "rec.jsonl", "/aws/ecr/image-scan-findings/r", STREAM, finding(attributes=attributes)
    )
    result = run_cli("--run-once", "--output", "stdout", "--replay", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    (event,) = [e for e in events if e["aws"]["event_type"] == "finding"]  # and the lifecycle's scan_changes
    ecr = event["aws"]["ecr"]
    assert len(ecr["attributes"]) + ecr["attributes_dropped"] == 100_000
    assert ecr["attributes"]["k"] == "v" and ecr["attributes"]["k_2"] == "v"


def _description(datagram: bytes) -> tuple[int, str]:
    result = project_engine().process(datagram.decode("utf-8"))
    return result.rule_id, result.description


def test_nul_lone_surrogate_and_a_huge_version_still_give_an_alert_naming_cve_and_image(
    short_dir, receiver, cli_args
):
    message = finding(
        name="CVE-2024-0001\u0000-hidden",
        description="text \udc00 more",
        attributes=[
            {"key": "package_name", "value": "zlib"},
            {"key": "package_version", "value": "9" * 1000},
        ],
    )
    path = recording(short_dir / "rec.jsonl", "/aws/ecr/image-scan-findings/web/api", STREAM, message)
    result = run_cli(
        "--run-once", "--socket", receiver.path, "--state_db", str(short_dir / "s.db"), "--replay", str(path)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    received = [d for d in receiver.settle().raw if d.startswith(EVENT_HEADER)]
    (raw,) = [d for d in received if b'"event_type":"finding"' in d]  # and the lifecycle's scan_changes
    assert not re.search(rb"\\u0000|\\ud[c-f]", raw)  # cJSON would cut or refuse the event
    event = json.loads(raw[len(EVENT_HEADER) :])
    assert event["aws"]["ecr"]["replaced_characters"] == 2
    assert event["vulnerability"]["cve"] == "CVE-2024-0001\ufffd-hidden"
    assert event["aws"]["ecr"]["full_values"]["vulnerability_package_version"] == "9" * 1000
    rule, description = _description(raw)
    assert rule == 110203
    assert len(description.encode()) < OS_COMMENT_MAX
    assert "$(" not in description
    assert "CVE-2024-0001\ufffd-hidden" in description and "web/api:v1" in description


@pytest.mark.parametrize(("agent", "limit"), [(True, AGENT_MAX_DATAGRAM), (False, 65535)])
def test_trimmed_events_fit_what_an_agent_forwards(short_dir, receiver, cli_args, logs, agent, limit):
    wazuh = short_dir / "wazuh"
    (wazuh / "bin").mkdir(parents=True)
    (wazuh / "wodles").mkdir()
    (wazuh / "bin" / ("wazuh-agentd" if agent else "wazuh-analysisd")).touch()
    put(logs, "/aws/ecr/image-scan-findings/big", STREAM, finding(description="d" * 200_000))
    assert run_cli(*cli_args("--wazuh_path", str(wazuh))).returncode == 0
    (raw,) = [d for d in receiver.settle().raw if d.startswith(EVENT_HEADER)]
    assert AGENT_MAX_DATAGRAM - 200 < len(raw) <= limit  # trimmed, and no more than needed
    assert json.loads(raw[len(EVENT_HEADER) :])["aws"]["ecr"]["trimmed"] is True
