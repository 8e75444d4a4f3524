"""Options an administrator sets: stream removal, discarding, where reading starts, replay formats,
and bad values refused with one clear line before any AWS call."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from conftest import run_cli
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan.errors import EXIT_BAD_CONFIG, EXIT_CREDENTIALS, ConfigError
from wazuh_ecr_scan.settings import parse_date_ms, parse_interval

NOW_MS = int(time.time() * 1000)


def stream_names(logs, group: str) -> set[str]:
    pages = logs.get_paginator("describe_log_streams").paginate(logGroupName=group)
    return {s["logStreamName"] for page in pages for s in page["logStreams"]}


def test_remove_log_streams_deletes_only_streams_past_the_late_write_window(logs, receiver, cli_args):
    rng = random.Random(1)
    old = make_scan(rng, "web", "old", NOW_MS - 3_600_000, {"HIGH": 2, "LOW": 1})
    fresh = make_scan(rng, "web", "fresh", NOW_MS - 60_000, {"HIGH": 1})
    write_scan(logs, old)
    write_scan(logs, fresh)
    result = run_cli(*cli_args("--remove-log-streams"))
    assert result.returncode == 0, result.stderr
    assert len(receiver.take().events) == old.event_count() + fresh.event_count()
    remaining = stream_names(logs, old.log_group)
    assert remaining == {name for name, _ in fresh.streams()}  # the fresh scan may still be written to
    assert run_cli(*cli_args("--remove-log-streams")).returncode == 0
    assert receiver.take().events == []


def test_discard_regex_drops_matching_events_and_counts_them(logs, receiver, cli_args):
    write_scan(logs, make_scan(random.Random(2), "web", "v1", NOW_MS - 60_000, {"HIGH": 3, "LOW": 4}))
    result = run_cli(*cli_args("--discard-field", "vulnerability.severity", "--discard-regex", "^Low$"))
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert sorted(e["vulnerability"]["severity"] for e in got.events if "vulnerability" in e) == ["High"] * 3
    assert "discarded=4" in result.stderr
    assert run_cli(*cli_args()).returncode == 0
    assert receiver.take().events == []  # discarded is final, not re-read later


def test_default_start_is_today_and_an_earlier_only_logs_after_is_read_once(
    logs, receiver, cli_args, short_dir
):
    rng = random.Random(3)
    yesterday = make_scan(rng, "web", "y", NOW_MS - 3 * 86_400_000, {"HIGH": 1})
    write_scan(logs, yesterday)
    args = [a for a in cli_args() if a not in ("--only_logs_after", "2020-JAN-01")]
    assert run_cli(*args).returncode == 0
    assert receiver.take().events == []  # before today 00:00 UTC: not read by default
    assert run_cli(*cli_args()).returncode == 0
    # the earlier only_logs_after is honoured for the window before the group's first read (issue 11)
    assert len(receiver.take().events) == yesterday.event_count()
    assert run_cli(*cli_args()).returncode == 0
    assert receiver.take().events == []


def read_events(events) -> list[dict]:
    """The events made from log events: not the lifecycle's scan_changes (no event id)."""
    return [e for e in events if "event_id" in e["aws"]["log_info"]]


def test_replay_of_filter_log_events_output(tmp_path, capsys):
    from wazuh_ecr_scan.cli import main

    with open("tests/recordings/multi-repo.jsonl") as f:
        recording = [json.loads(line) for line in f]
    group = recording[0]["logGroupName"]
    events = [
        {k: v for k, v in e.items() if k != "logGroupName"} for e in recording if e["logGroupName"] == group
    ]
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"events": events, "searchedLogStreams": []}))
    assert main(["--run-once", "--output", "stdout", "--replay", str(path), "--aws_log_groups", group]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(read_events(out)) == len(events)
    assert {e["aws"]["log_info"]["log_group"] for e in out} == {group}
    assert main(["--run-once", "--output", "stdout", "--replay", str(path)]) == EXIT_BAD_CONFIG
    assert "give exactly one --aws_log_groups" in capsys.readouterr().err


def test_replay_through_a_state_file_is_de_duplicated(tmp_path, capsys):
    from wazuh_ecr_scan.cli import main

    args = [
        "--run-once",
        "--output",
        "stdout",
        "--replay",
        "tests/recordings/multi-repo.jsonl",
        "--state_db",
        str(tmp_path / "s.db"),
    ]
    assert main(args) == 0
    assert len(read_events(map(json.loads, capsys.readouterr().out.splitlines()))) == 24
    assert main(args) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--regions", "us-east-1,moon-1"], "--regions: 'moon-1' is not an AWS region"),
        (["--only_logs_after", "2024-FOO-01"], "--only_logs_after: '2024-FOO-01' is not a date"),
        (["--only_logs_after", "yesterday"], "--only_logs_after: 'yesterday' is not a date"),
        (["--interval", "5 minutes"], "--interval: '5 minutes' is not a positive interval"),
        (["--interval", "0s"], "--interval: '0s' is not a positive interval"),
        (
            ["--discard-field", "x", "--discard-regex", "(unclosed"],
            "--discard-regex: '(unclosed' is not a valid",
        ),
        (["--discard-regex", "x"], "--discard-field and --discard-regex go together"),
        (["--no-such-flag"], "bad arguments: unrecognized arguments: --no-such-flag"),
        (["--debug", "7"], "bad arguments: argument -d/--debug"),
        (["--replay", "/nonexistent.jsonl"], "--replay: /nonexistent.jsonl: no such file"),
    ],
)
def test_bad_configuration_is_one_clear_line_and_exit_2(args, message, moto):
    # The endpoint is real: had the module called AWS before checking, the run would have gone on.
    result = run_cli("--run-once", "--service_endpoint", moto, "--state_db", "/tmp/never.db", *args)
    assert result.returncode == EXIT_BAD_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert " wazuh-ecr-scan: ERROR: " in lines[0]


def test_unknown_profile_is_a_credentials_error_before_any_call(moto, short_dir):
    result = run_cli(
        "--run-once",
        "--service_endpoint",
        moto,
        "--state_db",
        str(short_dir / "s.db"),
        "--output",
        "stdout",
        "--aws_profile",
        "no-such-profile",
    )
    assert result.returncode == EXIT_CREDENTIALS
    assert "AWS profile 'no-such-profile' not found" in result.stderr


def test_dates_and_intervals():
    assert parse_date_ms("2024-JAN-01") == parse_date_ms("2024-01-01") == 1704067200000
    assert parse_date_ms("2024-jan-01") == 1704067200000
    assert parse_date_ms("2024-01-01T12:00:00+02:00") == 1704103200000
    assert [parse_interval(t) for t in ("30s", "5m", "1h", "1d", "90")] == [30, 300, 3600, 86400, 90]
    with pytest.raises(ConfigError):
        parse_date_ms("2024-13-45")


def test_a_broken_recording_line_is_named(tmp_path, capsys):
    from wazuh_ecr_scan.cli import main

    with open("tests/recordings/multi-repo.jsonl") as f:
        lines = f.readlines()
    lines[3] = lines[3][:60] + "\n"  # cut mid-line, after the group
    path = tmp_path / "broken.jsonl"
    path.write_text("".join(lines))
    assert main(["--run-once", "--output", "stdout", "--replay", str(path)]) == EXIT_BAD_CONFIG
    assert (
        f"--replay {path}: the line at byte {sum(len(x) for x in lines[:3])}: not JSON"
        in capsys.readouterr().err
    )


RECORDINGS = Path(__file__).parent / "recordings"
WAZUH_BLOCK = """<wodle name="aws-s3"><disabled>no</disabled><interval>5m</interval>
  <service type="cloudwatchlogs"><aws_profile>default</aws_profile><regions>us-east-1</regions>
    %s
  </service></wodle>"""


def replay_with(tmp_path, service_xml: str, recording: str):
    conf = tmp_path / "ecr-scan.conf"
    conf.write_text(WAZUH_BLOCK % service_xml)
    result = run_cli(
        "--config", str(conf), "--run-once", "--replay", str(RECORDINGS / recording), "--output", "stdout"
    )
    assert result.returncode == 0, result.stderr
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def test_a_discard_block_written_for_wazuh_discards_the_same_findings(tmp_path):
    _, everything = replay_with(tmp_path, "", "multi-repo.jsonl")
    # Wazuh's cloudwatchlogs service: `field` is a path in the message's own JSON, matched from its start.
    _, kept = replay_with(
        tmp_path, '<discard_regex field="severity">LOW|INFORMATIONAL</discard_regex>', "multi-repo.jsonl"
    )
    low = [e for e in everything if e.get("vulnerability", {}).get("severity") in ("Low", "Informational")]
    assert low and len(kept) == len(everything) - len(low)
    assert not [e for e in kept if e.get("vulnerability", {}).get("severity") in ("Low", "Informational")]


def test_discard_regex_without_field_tests_only_messages_that_are_not_json_and_says_so(tmp_path):
    _, everything = replay_with(tmp_path, "", "malformed.jsonl")
    result, kept = replay_with(tmp_path, "<discard_regex>this is not</discard_regex>", "malformed.jsonl")
    dropped = [e for e in everything if e["aws"]["ecr"].get("raw_message", "").startswith("this is not")]
    assert dropped and len(kept) == len(everything) - len(dropped)
    # JSON messages are never tested without a field, as in Wazuh: "LOW" in a summary's counts drops nothing
    _, summaries_kept = replay_with(tmp_path, "<discard_regex>.*LOW</discard_regex>", "multi-repo.jsonl")
    assert len(summaries_kept) == len(replay_with(tmp_path, "", "multi-repo.jsonl")[1])
    assert "<discard_regex> without field tests only messages that are not JSON" in result.stderr


def test_role_arns_are_read_by_partition_account_and_resource():
    from wazuh_ecr_scan.values import role_account

    assert role_account("arn:aws-us-gov:iam::123456789012:role/path/wazuh") == "123456789012"
    assert role_account("arn:aws-cn:iam::123456789012:role/r") == "123456789012"
    for not_a_role in (
        "arn:aws:iam::123456789012:user/r",  # a user
        "arn:aws:iam::12345:role/r",  # not a 12-digit account
        "arn:aws:iam:us-east-1:123456789012:role/r",  # IAM ARNs have no region
        "arn:aws:iam::123456789012:role/",  # no role name
        "arn:aws:sts::123456789012:assumed-role/r/s",
        "wazuh-role",
        None,
    ):
        assert role_account(not_a_role) is None, not_a_role


def test_wazuh_dates_take_english_month_names_in_any_case():
    assert parse_date_ms("2024-may-01") == parse_date_ms("2024-MAY-01") == parse_date_ms("2024-05-01")
    assert parse_date_ms("2024-Sep-30") == parse_date_ms("2024-09-30")
    with pytest.raises(ConfigError, match="'2024-MAI-01' is not a date"):
        parse_date_ms("2024-MAI-01")
