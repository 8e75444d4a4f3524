"""--remove-log-streams on groups anyone can fill with streams: every group is read before any stream is
deleted, deletion has a per-pass budget, and a SIGTERM stops it between two calls."""

from __future__ import annotations

import random
import signal
import time

from conftest import cli_env, start_cli
from lambda_writer import GROUP_PREFIX, digest_for, make_scan, write_scan
from test_options import stream_names
from wazuh_ecr_scan import poller
from wazuh_ecr_scan.cli import main

NOW_MS = int(time.time() * 1000)


def write_old_streams(logs, repository: str, count: int) -> str:
    """`count` finished one-event streams, an hour old: past the late-write window, so removable."""
    group = GROUP_PREFIX + repository
    logs.create_log_group(logGroupName=group)
    for n in range(count):
        stream = f"HIGH-v{n}-{digest_for(str(n))}-2025-06-07T02-02-04Z"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": NOW_MS - 3_600_000, "message": '{"name": "CVE-1"}'}],
        )
    return group


def test_every_group_is_read_before_any_stream_is_removed(logs, receiver, cli_args):
    old = write_old_streams(logs, "a-old", 3)
    fresh = make_scan(random.Random(1), "b-fresh", "v1", NOW_MS - 60_000, {"HIGH": 1})
    write_scan(logs, fresh)
    proc = start_cli(*cli_args("--remove-log-streams", "--debug", "1"))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    lines = stderr.splitlines()
    read_fresh = next(n for n, line in enumerate(lines) if f"group {fresh.log_group}: reading from" in line)
    first_removal = next(n for n, line in enumerate(lines) if "removed log stream" in line)
    assert read_fresh < first_removal
    assert stream_names(logs, old) == set()
    assert len(receiver.take().events) == 3 + fresh.event_count()


def test_stream_removal_stops_on_sigterm_between_calls(logs, receiver, cli_args):
    group = write_old_streams(logs, "web", 60)  # 15 s of DeleteLogStream at the 4/s cap
    proc = start_cli(*cli_args("--remove-log-streams", "--debug", "1"))
    assert proc.stderr is not None
    for line in proc.stderr:
        if "removed log stream" in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert len(receiver.take().events) == 60
    assert len(stream_names(logs, group)) > 30  # not all deleted: the pass stopped


def test_stream_removal_has_a_budget_per_pass_and_the_rest_waits(
    logs, receiver, cli_args, monkeypatch, capsys
):
    group = write_old_streams(logs, "web", 5)
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(poller, "MAX_STREAM_DELETIONS", 2)
    assert main(cli_args("--remove-log-streams")) == 0
    assert len(stream_names(logs, group)) == 3
    assert "2 log streams removed this pass, the rest in the next passes" in capsys.readouterr().err
    assert main(cli_args("--remove-log-streams")) == 0
    assert main(cli_args("--remove-log-streams")) == 0
    assert stream_names(logs, group) == set()
    assert len(receiver.take().events) == 5  # nothing sent twice
