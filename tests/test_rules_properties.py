"""Property tests: free-form text in events never changes which rule an event lands on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ruletest import project_engine

ENGINE = project_engine()
SEVERITY_RULES = {
    "Critical": (110202, 13),
    "High": (110203, 10),
    "Medium": (110204, 7),
    "Untriaged": (110205, 7),
    "Low": (110206, 5),
    "Informational": (110207, 3),
}
# What the module can put in a string: anything but NUL (cut short in C) and lone surrogates.
# 40 characters per field keeps the description under OS_COMMENT_MAX even at 4 bytes a character.
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=80
)
line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"), min_size=1, max_size=200
)


def finding(severity: str, cve: str, name: str, version: str, repo: str, tag: str) -> str:
    event = {
        "integration": "aws",
        "aws": {
            "source": "ecr_image_scan",
            "event_type": "finding",
            "region": "us-east-1",
            "ecr": {"repository": repo, "image_tag": tag, "attributes": {"package_name": name}},
        },
        "vulnerability": {"cve": cve, "severity": severity, "package": {"name": name, "version": version}},
    }
    return "1:Wazuh-AWS:" + json.dumps(event, ensure_ascii=True, separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(SEVERITY_RULES)), text, text, text, text, text)
def test_finding_text_never_changes_the_rule(severity, cve, name, version, repo, tag) -> None:
    result = ENGINE.process(finding(severity, cve, name, version, repo, tag))
    assert (result.rule_id, result.level) == SEVERITY_RULES[severity]
    assert result.description == f"ECR image scan: {severity} {cve} in {name} {version}, image {repo}:{tag}"


@settings(max_examples=300, deadline=None)
@given(
    text.filter(lambda s: s.removesuffix("\n") not in SEVERITY_RULES)
)  # PCRE2 `$` also matches before a final \n
def test_any_other_severity_still_alerts(severity) -> None:
    result = ENGINE.process(finding(severity, "CVE-1", "p", "1", "r", "t"))
    assert result.rule_id in (110201, 110208)
    assert result.level == 7


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["ERROR", "CRITICAL", "WARNING"]), line_text)
def test_status_message_text_never_changes_the_rule(level, message) -> None:
    result = ENGINE.process(f"1:wazuh-ecr-scan:wazuh-ecr-scan: {level}: {message}")
    assert result.rule_id == (110242 if level == "WARNING" else 110241)
    assert result.field("ecr_scan.message") == message


STATUS_RULES = {110246, 110247, 110248, 110249}


@settings(max_examples=200, deadline=None)
@given(
    status=st.text(min_size=1, max_size=300),
    description=st.text(max_size=3000),
    tag=st.text(st.characters(blacklist_characters="\n"), max_size=300),
    repository=st.text(min_size=1, max_size=400),
)
@example(status="FAILED", description="\u00e9" * 3000, tag="", repository="r" * 400)
@example(status="S" * 300, description="d" * 3000, tag="t" * 300, repository="r" * 400)
def test_any_scan_status_summary_alerts_at_7_naming_its_image(status, description, tag, repository) -> None:
    """Whatever a status SUMMARY says, the module's event lands on a status rule with a description that
    analysisd expands (under 1024 bytes, no raw $(...) template)."""
    from wazuh_ecr_scan.encode import encode_event
    from wazuh_ecr_scan.flatten import LogEvent, flatten

    stream = f"SUMMARY-{tag}-{'ab' * 32}-2025-06-07T02-02-04Z"
    message = json.dumps({"imageScanStatus": {"status": status, "description": description}})
    group = "/aws/ecr/image-scan-findings/" + repository
    event = flatten(LogEvent(group, stream, "1", 1749261733844, message), "us-east-1")
    result = ENGINE.process(encode_event(event).decode("ascii"))
    assert result.rule_id in STATUS_RULES and result.level == 7
    assert (result.rule_id in (110248, 110249)) == bool(tag)
    assert result.description != ENGINE.rules.by_id[result.rule_id].description  # expanded
    assert len(result.description.encode()) < 1024
    assert ("ab" * 32) in result.description or bool(tag)
