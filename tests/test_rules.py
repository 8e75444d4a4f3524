"""The `.ini` rule cases in tests/rules/, evaluated with the project's runner (tests/ruletest)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ruletest import Case, Engine, load_case_dir, project_engine
from ruletest.project import CASES_DIR, REPO_ROOT
from wazuh_ecr_scan.sender import status_line

CASES = load_case_dir(CASES_DIR)
SCHEMA_DOC = REPO_ROOT / "docs" / "event-schema.md"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return project_engine()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_ini_case(engine: Engine, case: Case) -> None:
    result = engine.logtest(case.log)
    if case.should_match:
        assert result.ut == case.expected, result.description
    else:
        assert result.ut != case.expected
        assert result.ut == case.lands, f"near-miss landed elsewhere: {result.description}"


def _schema_lines(prefix: str) -> list[str]:
    return [line.strip() for line in SCHEMA_DOC.read_text().splitlines() if line.startswith(prefix)]


STATUS_EXPECTED = {"ERROR": ("110241", "7"), "WARNING": ("110242", "4"), "INFO": ("110243", "0")}


@pytest.mark.parametrize("datagram", _schema_lines("1:wazuh-ecr-scan:"))
def test_status_lines_in_event_schema(engine: Engine, datagram: str) -> None:
    """The status lines exactly as docs/event-schema.md shows them on the wire."""
    result = engine.process(datagram)
    level_word = datagram.split(": ")[1]
    assert result.location == "wazuh-ecr-scan"
    assert result.ut == (*STATUS_EXPECTED[level_word], "wazuh-ecr-scan")
    assert result.field("ecr_scan.level") == level_word


def test_pass_summary_fields(engine: Engine) -> None:
    (datagram,) = [line for line in _schema_lines("1:wazuh-ecr-scan:") if "pass done" in line]
    result = engine.process(datagram)
    counts = {
        key: value for key, value in (pair.split("=") for pair in datagram.split("pass done: ")[1].split())
    }
    for key, value in counts.items():
        assert result.field(f"ecr_scan.{key}") == value
    assert result.description == "ECR scan pass done: " + datagram.split("pass done: ")[1]


def test_error_description_names_the_problem(engine: Engine) -> None:
    (datagram,) = [line for line in _schema_lines("1:wazuh-ecr-scan:") if ": ERROR: " in line]
    result = engine.process(datagram)
    assert result.description == "ECR scan ingestion failing: " + datagram.split(": ERROR: ", 1)[1]
    assert result.alert


def test_a_long_error_still_reads_in_the_alert(engine: Engine) -> None:
    """AWS error texts can name a 256-character repository twice; analysisd would show the raw template."""
    message = "region us-east-1: AccessDeniedException on FilterLogEvents for group /aws/ecr/" + "é" * 1500
    result = engine.process("1:wazuh-ecr-scan:" + status_line("ERROR", message))
    assert result.ut == ("110241", "7", "wazuh-ecr-scan")
    assert result.description.startswith("ECR scan ingestion failing: region us-east-1: AccessDenied")
    assert result.description.endswith("é...")


def _schema_example(event_type: str) -> str:
    (payload,) = [p for p in _schema_lines('{"integration":"aws"') if f'"event_type":"{event_type}"' in p]
    return payload


def test_schema_example_finding(engine: Engine) -> None:
    payload = _schema_example("finding")
    result = engine.process("1:Wazuh-AWS:" + payload)
    assert result.ut == ("110202", "13", "json")
    assert (
        result.description == "ECR image scan: Critical CVE-2024-1234 in openssl 1.1.1k, image web/api:v1.2"
    )
    assert result.groups == ("amazon", "aws_ecr", "vulnerability")
    assert result.compliance == {
        "gdpr": ("IV_35.7.d",),
        "nist_800_53": ("RA.5",),
        "pci_dss": ("11.2.1", "11.2.3"),
        "tsc": ("CC7.1", "CC7.2"),
    }
    assert "no_full_log" in result.options


def test_schema_example_scan_status(engine: Engine) -> None:
    result = engine.process("1:Wazuh-AWS:" + _schema_example("scan_summary"))
    assert result.ut == ("110246", "7", "json")
    assert result.description == (
        "ECR image scan of web/api@sha256:83fc...7fe2 (untagged) did not complete: FAILED: "
        "UnsupportedImageError: The operating system and/or package manager are not supported."
    )
    assert result.groups == ("amazon", "aws_ecr", "vulnerability", "ecr_scan_not_completed")
