"""Static checks on rules/, decoders/ and tests/rules/: the CI gate for the XML itself."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ruletest import load_case_dir, project_engine
from ruletest.project import (
    CASES_DIR,
    ID_RANGE,
    fixture_files,
    project_decoder_files,
    project_rule_files,
)
from ruletest.validity import (
    decoder_order_fields,
    description_fields,
    duplicate_ids,
    group_lists_without_comma,
    ids_out_of_range,
    read_rules,
    uncovered_rules,
    unresolved_if_sids,
)
from ruletest.xmlload import parse_fragment
from wazuh_ecr_scan.flatten import (
    DESCRIPTION_FIELDS,
    DESCRIPTION_FIXED_FIELDS,
    DESCRIPTION_TEXT_MAX,
    SUMMARY_KEYS,
)

# The alert level each rule must have (issue #3; levels of Wazuh's vulnerability-detector rules).
EXPECTED_LEVELS = {
    110200: 0,
    110201: 7,
    110202: 13,
    110203: 10,
    110204: 7,
    110205: 7,
    110206: 5,
    110207: 3,
    110208: 7,
    110220: 3,
    110221: 7,
    110230: 5,
    110240: 0,
    110241: 7,
    110242: 4,
    110243: 0,
    110244: 0,
    110245: 3,
    110246: 7,
    110247: 7,
    110248: 7,
    110249: 7,
    110260: 0,
    110261: 13,
    110262: 10,
    110263: 7,
    110264: 7,
    110265: 5,
    110266: 3,
    110267: 0,
    110268: 3,
    # finding lifecycle (issue 13)
    110270: 0,
    110271: 0,
    110272: 3,
    110273: 0,
    110274: 0,
    110275: 3,
    110276: 0,
    110277: 3,
    110278: 7,
}
FINDING_COMPLIANCE = {
    "pci_dss_11.2.1",
    "pci_dss_11.2.3",
    "tsc_CC7.1",
    "tsc_CC7.2",
    "nist_800_53_RA.5",
    "gdpr_IV_35.7.d",
}


@pytest.fixture(scope="module")
def rules():
    return read_rules(project_rule_files())


def test_project_files_exist() -> None:
    assert project_rule_files() and project_decoder_files()


@pytest.mark.parametrize("path", project_rule_files() + project_decoder_files(), ids=lambda p: p.name)
def test_xml_well_formed(path: Path) -> None:
    assert parse_fragment(path)


def test_runner_loads_everything() -> None:
    """Any construct the runner does not implement raises here."""
    engine = project_engine()
    assert set(EXPECTED_LEVELS) <= set(engine.rules.by_id)


def test_ids_unique_and_in_range(rules) -> None:
    assert duplicate_ids(rules) == []
    assert ids_out_of_range(rules, ID_RANGE) == []


def test_if_sid_resolvable(rules) -> None:
    stock = {r.id for r in read_rules(fixture_files("rules"))}
    assert unresolved_if_sids(rules, stock) == []


def test_group_lists_end_with_comma(rules) -> None:
    assert group_lists_without_comma(rules) == []


def test_every_rule_has_passing_and_failing_cases(rules) -> None:
    assert uncovered_rules(rules, load_case_dir(CASES_DIR)) == []


def test_levels(rules) -> None:
    assert {r.id: r.level for r in rules} == EXPECTED_LEVELS


def test_finding_rules_carry_vulnerability_compliance(rules) -> None:
    alerting_findings = [r for r in rules if r.id in range(110201, 110209)]
    for rule in alerting_findings:
        tags = set("".join(rule.group_lists).split(","))
        assert {"amazon", "aws_ecr", "vulnerability"} <= tags, rule.id
        assert tags >= FINDING_COMPLIANCE, rule.id


def test_description_fields_exist(rules) -> None:
    """$(name) must name a decoder field for status rules, an event-schema path for the others."""
    decoder_fields = decoder_order_fields(project_decoder_files())
    for rule in rules:
        for name in description_fields(rule):
            if 110240 <= rule.id <= 110243:
                assert name in decoder_fields, (rule.id, name)
            else:
                assert name.split(".")[0] in ("aws", "vulnerability"), (rule.id, name)


def test_descriptions_fit_os_comment_max_with_the_fields_the_module_budgets(rules) -> None:
    """analysisd keeps a description unexpanded once it would reach 1024 bytes: the module cuts the
    fields it expands (flatten.fit_description_fields) on the assumption checked here, that the fixed
    text is at most DESCRIPTION_TEXT_MAX bytes and that ECR-event rules expand only budgeted fields."""
    budgeted = {".".join(p) for paths in DESCRIPTION_FIELDS.values() for p in paths}
    budgeted |= {".".join(p) for paths in DESCRIPTION_FIXED_FIELDS.values() for p in paths}
    numbers = {"aws.ecr.findings_total"} | {f"aws.ecr.severity_counts.{k}" for k in SUMMARY_KEYS}
    for rule in rules:
        if rule.id in range(110200, 110240) or rule.id in range(110244, 110250):  # this module's events
            fixed = re.sub(r"\$\([^)]*\)", "", rule.description)
            assert len(fixed.encode()) <= DESCRIPTION_TEXT_MAX, rule.id
            assert set(description_fields(rule)) <= budgeted | numbers, rule.id


def test_ini_lines_survive_configparser_quirks() -> None:
    for case in load_case_dir(CASES_DIR):
        assert case.log == case.log.strip() and " ;" not in case.log, case.id
