"""Discard rules on content anyone who can write to a findings group controls: a message no parser can
read, or text that makes a regex backtrack, never stops ingestion; every other group is still read."""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from conftest import run_cli
from lambda_writer import GROUP_PREFIX, digest_for, make_scan, write_scan
from wazuh_ecr_scan.discard import MAX_TIMEOUTS, risky_pattern

NOW_MS = int(time.time() * 1000)
STREAM = f"HIGH-v1-{digest_for('poison')}-2025-06-07T02-02-04Z"
BLOCK = """<wodle name="aws-s3"><disabled>no</disabled><interval>5m</interval>
  <service type="cloudwatchlogs"><regions>us-east-1</regions>
    {discard}
  </service></wodle>"""


def write_message(logs, repository: str, message: str, stream: str = STREAM) -> None:
    group = GROUP_PREFIX + repository
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": NOW_MS - 60_000, "message": message}],
    )


DISCARD_RULES = {  # flags or a block, and whether the poisoned message is discarded (else: unparsed)
    "README's field": (
        ["--discard-field", "vulnerability.severity", "--discard-regex", "^(Low|Informational)$"],
        False,
    ),
    "Wazuh's field": (["--discard-field", "severity", "--discard-regex", "LOW|INFORMATIONAL"], False),
    # Without a field, a message that is not JSON is tested, as in Wazuh: this one matches.
    "no field": (["<discard_regex>LOW|INFORMATIONAL|\\[</discard_regex>"], True),
}


@pytest.mark.parametrize("rule", DISCARD_RULES, ids=list(DISCARD_RULES))
def test_a_message_too_deep_to_parse_is_an_unparsed_event_and_later_groups_are_read(
    logs, receiver, cli_args, tmp_path, rule
):
    write_message(logs, "a-poisoned", "[" * 3000 + "]" * 3000)
    scan = make_scan(random.Random(1), "b-healthy", "v1", NOW_MS - 60_000, {"HIGH": 2})
    write_scan(logs, scan)
    args, discarded = DISCARD_RULES[rule]
    if args[0].startswith("<"):
        conf = tmp_path / "ecr-scan.conf"
        conf.write_text(BLOCK.format(discard=args[0]))
        args = ["--config", str(conf)]
    result = run_cli(*cli_args(*args))
    assert result.returncode == 0, result.stderr[-3000:]
    got = receiver.take()
    unparsed = [e for e in got.events if e["aws"]["event_type"] == "unparsed"]
    if discarded:
        assert unparsed == [] and " discarded=1 " in result.stderr
    else:
        assert len(unparsed) == 1 and unparsed[0]["aws"]["ecr"]["raw_message"].startswith("[[[")
        assert "message is not valid JSON" in unparsed[0]["aws"]["ecr"]["parse_error"]
    healthy = [e for e in got.events if e["aws"]["log_info"]["log_group"] == scan.log_group]
    assert len(healthy) == scan.event_count()
    assert any(line.startswith("wazuh-ecr-scan: INFO: pass done: groups=2 ") for line in got.status)


def test_the_field_in_the_lambda_message_is_matched_from_its_start_and_ours_anywhere(
    logs, receiver, cli_args, tmp_path
):
    finding = {"name": "CVE-1", "severity": "XLOW", "description": "d", "uri": "u", "attributes": []}
    write_message(logs, "web", json.dumps(finding))
    # Wazuh's semantics: `severity` is not a field of our event, so the message's own is matched from its
    # start: "XLOW" does not match LOW. Our `vulnerability.cve` is searched: "VE-1" matches inside.
    assert run_cli(*cli_args("--discard-field", "severity", "--discard-regex", "LOW")).returncode == 0
    assert len(receiver.take().events) == 1
    other_state = str(tmp_path / "other.db")
    result = run_cli(
        *cli_args(
            "--discard-field", "vulnerability.cve", "--discard-regex", "VE-1", "--state_db", other_state
        )
    )
    assert result.returncode == 0 and "discarded=1" in result.stderr, result.stderr[-2000:]
    assert receiver.take().events == []


def test_a_backtracking_discard_regex_keeps_the_event_warns_and_the_pass_ends(logs, receiver, cli_args):
    description = "a" * 34 + "!"  # ^(\w+\s?)*$ tries 2^34 ways before it fails: hours
    finding = {"name": "CVE-1", "severity": "HIGH", "description": description, "uri": "u", "attributes": []}
    write_message(logs, "web", json.dumps(finding))
    result = run_cli(
        *cli_args("--discard-field", "vulnerability.description", "--discard-regex", r"^(\w+\s?)*$"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = receiver.take()
    assert [e["vulnerability"]["description"] for e in got.events] == [description]  # kept, not lost
    assert any("took over" in line and "the event was kept and sent" in line for line in got.status)
    assert "repetition inside a repetition" in result.stderr  # said before the pass


def test_a_flood_of_backtracking_messages_costs_a_few_budgets_then_the_rule_waits_for_the_next_pass(
    logs, receiver, cli_args
):
    group = GROUP_PREFIX + "web"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=STREAM)
    description = "a" * 34 + "!"
    events = [
        {
            "timestamp": NOW_MS - 60_000,
            "message": json.dumps({"name": f"CVE-{n}", "description": description}),
        }
        for n in range(200)
    ]
    logs.put_log_events(logGroupName=group, logStreamName=STREAM, logEvents=events)
    result = run_cli(
        *cli_args("--discard-field", "vulnerability.description", "--discard-regex", r"^(\w+\s?)*$"),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = receiver.take()
    assert len(got.events) == 200
    warnings = [line for line in got.status if "took over" in line]
    assert len(warnings) == MAX_TIMEOUTS and "suspended until the next pass" in warnings[-1]


@pytest.mark.parametrize(
    ("pattern", "risky"),
    [
        (r"^(\w+\s?)*$", True),
        (r"(a+)+b", True),
        (r"(?:x|(y+))*z", True),
        (r"^(Low|Informational)$", False),
        (r"LOW|INFORMATIONAL", False),
        (r"^[\w\s]*$", False),
        (r"(ab){2,5}c*", False),
        (r"(?:a?)", False),
    ],
)
def test_nested_repetition_is_found_in_a_pattern(pattern, risky):
    assert (risky_pattern(re.compile(pattern)) is not None) == risky


def test_check_config_warns_about_a_backtracking_discard_regex(moto, tmp_path):
    conf = tmp_path / "ecr-scan.conf"
    conf.write_text(BLOCK.format(discard=r'<discard_regex field="severity">^(\w+\s?)*$</discard_regex>'))
    result = run_cli(
        "--check-config",
        "--config",
        str(conf),
        "--service_endpoint",
        moto,
        "--sts_endpoint",
        moto,
        "--state_db",
        str(tmp_path / "state.db"),
    )
    assert "repetition inside a repetition" in result.stdout, result.stdout + result.stderr


def test_a_bug_met_on_one_message_or_one_group_costs_only_that_and_is_alerted(
    logs, receiver, cli_args, monkeypatch, capsys
):
    """Fault injection: an unexpected exception while encoding one message, and while reading one group."""
    from conftest import cli_env
    from wazuh_ecr_scan import poller
    from wazuh_ecr_scan.cli import main
    from wazuh_ecr_scan.state import StateStore

    write_message(logs, "a-one-bad-message", json.dumps({"name": "CVE-BUG", "severity": "HIGH"}))
    write_message(logs, "b-bad-group", json.dumps({"name": "CVE-2", "severity": "HIGH"}))
    scan = make_scan(random.Random(3), "c-healthy", "v1", NOW_MS - 60_000, {"HIGH": 2})
    write_scan(logs, scan)
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    real_encode, real_lookup = poller.encode_event, StateStore.already_sent

    def encode(event):
        if event.get("vulnerability", {}).get("cve") == "CVE-BUG":
            raise KeyError("injected")
        return real_encode(event)

    def lookup(self, key, idents):
        if key.log_group.endswith("b-bad-group"):
            raise RuntimeError("injected")
        return real_lookup(self, key, idents)

    monkeypatch.setattr(poller, "encode_event", encode)
    monkeypatch.setattr(StateStore, "already_sent", lookup)
    assert main(cli_args("--skip_on_error")) == 0
    got = receiver.take()
    assert {e["aws"]["log_info"]["log_group"] for e in got.events} == {scan.log_group}
    assert len(got.events) == scan.event_count()
    errors = [line for line in got.status if ": ERROR: " in line]
    assert any("a-one-bad-message stream" in line and "internal error KeyError" in line for line in errors)
    assert any(
        "group /aws/ecr/image-scan-findings/b-bad-group skipped: internal error" in line for line in errors
    )
    capsys.readouterr()
