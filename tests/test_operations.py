"""Operations (issue 11): nothing lost or sent twice by the documented workflows, and every failure reaches
analysisd as a status line, whatever the exit path. Real CLI, moto over HTTP, a bound socket, SQLite files.

Exit codes are compared with the documented numbers (README table), not with imported constants.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from conftest import ROOT, cli_env, run_cli, start_cli
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan.state import StateStore

NOW_MS = int(time.time() * 1000)


def one_scan(logs, seed: int = 1, repo: str = "web", counts=None):
    scan = make_scan(random.Random(seed), repo, "v1", NOW_MS - 60_000, counts or {"CRITICAL": 1, "HIGH": 1})
    write_scan(logs, scan)
    return scan


def errors_in(status: list[str]) -> list[str]:
    return [line for line in status if line.startswith("wazuh-ecr-scan: ERROR: ")]


def run_env(env_updates: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = cli_env()
    env.update(env_updates)
    command = [sys.executable, "-m", "wazuh_ecr_scan", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


# -- every exit path reaches analysisd ---------------------------------------------------------------


def test_credentials_error_of_the_only_service_reaches_analysisd_exit_3(receiver, cli_args):
    result = run_cli(*cli_args("--aws_profile", "no-such-profile"))
    assert result.returncode == 3, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "AWS profile 'no-such-profile' not found" in error


def test_configuration_error_reaches_analysisd_exit_2(receiver, cli_args):
    result = run_cli(*cli_args("--regions", "moon-1"))
    assert result.returncode == 2, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "--regions: 'moon-1' is not an AWS region name" in error


def test_a_log_file_that_cannot_be_opened_leaves_a_trace_in_analysisd(receiver, cli_args, tmp_path):
    result = run_cli(*cli_args("--log_file", str(tmp_path / "no-such-dir" / "ossec.log")))
    assert result.returncode == 2, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "--log_file: cannot open" in error and "no-such-dir/ossec.log" in error


def test_internal_error_reaches_analysisd_exit_1(logs, receiver, cli_args, tmp_path):
    one_scan(logs)
    bug = tmp_path / "inject"
    bug.mkdir()
    (bug / "sitecustomize.py").write_text(
        "from wazuh_ecr_scan import poller\n"
        "def broken(self, sources):\n"
        "    raise RuntimeError('injected bug')\n"
        "poller.Poller.run_pass = broken\n"
    )
    result = run_env({"PYTHONPATH": f"{bug}:{ROOT / 'wodle'}"}, *cli_args())
    assert result.returncode == 1, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "internal error (please report it)" in error


# -- the state lock: wait, then run; still held: exit 6 that alerts --------------------------------------


def state_db(cli_args) -> str:
    args = cli_args()
    return args[args.index("--state_db") + 1]


def test_a_second_instance_waits_for_the_lock_then_runs(logs, receiver, cli_args):
    scan = one_scan(logs)
    holder = StateStore(state_db(cli_args))  # another process holds the state file
    proc = start_cli(*cli_args("--lock_wait", "300"))
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the CLI says it waits: an observable event, not a sleep
        assert "is in use by another wazuh-ecr-scan" in line and "waiting up to 300s" in line, line
    finally:
        holder.close()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "lock acquired" in stderr
    assert len(receiver.take().events) == scan.event_count()


def test_a_lock_still_held_after_the_wait_is_exit_6_and_reaches_analysisd(logs, receiver, cli_args):
    one_scan(logs)
    holder = StateStore(state_db(cli_args))
    try:
        result = run_cli(*cli_args("--lock_wait", "1"))
    finally:
        holder.close()
    assert result.returncode == 6, result.stderr
    got = receiver.take()
    assert got.events == []
    (error,) = errors_in(got.status)
    assert "still in use by another wazuh-ecr-scan" in error and "after waiting 1s" in error


# -- SIGTERM mid-pass ------------------------------------------------------------------------------------


def wait_for_events(receiver, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.received.events) < count:
        assert time.monotonic() < deadline, "no event arrived"
        time.sleep(0.02)


def test_sigterm_mid_pass_is_a_warning_that_alerts_and_exit_7_and_nothing_is_lost(logs, receiver, cli_args):
    scans = [one_scan(logs, seed=n, repo=f"repo-{n:02d}", counts={"HIGH": 1}) for n in range(30)]
    total = sum(scan.event_count() for scan in scans)
    # One FilterLogEvents a second: the pass takes about 30 s, the signal comes after the first event.
    proc = start_cli(*cli_args("--workers", "1", "--max_rate", "1"))
    wait_for_events(receiver, 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 7, stderr
    first = receiver.take()
    (warning,) = [line for line in first.status if "pass interrupted" in line]
    read = int(re.search(r"pass interrupted: (\d+) of 30 groups read", warning)[1])
    assert read < 30  # (0 when the signal lands between the first event and the end of its group)
    assert not any("pass done" in line and "WARNING" in line for line in first.status)
    assert run_cli(*cli_args()).returncode == 0
    keys = first.keys() + receiver.take().keys()
    assert len(keys) == len(set(keys)) == total  # the rest came with the next pass, nothing twice


# -- --output stdout never changes what the service sends ----------------------------------------------


def test_a_stdout_run_without_state_db_does_not_consume_the_services_findings(logs, receiver, moto, tmp_path):
    scan = one_scan(logs)
    wazuh = tmp_path / "ossec"
    (wazuh / "wodles").mkdir(parents=True)
    common = ["--run-once", "--service_endpoint", moto, "--sts_endpoint", moto, "--wazuh_path", str(wazuh)]
    common += ["--only_logs_after", "2020-JAN-01", "--socket", receiver.path]
    first = run_cli(*common, "--output", "stdout")
    assert first.returncode == 0, first.stderr
    read = [e for e in map(json.loads, first.stdout.splitlines()) if "event_id" in e["aws"]["log_info"]]
    assert len(read) == scan.event_count()  # (and the lifecycle's scan_changes)
    assert "--output stdout without --state_db: reading the state of" in first.stderr.splitlines()[0]
    service = run_cli(*common)
    assert service.returncode == 0, service.stderr
    assert len(receiver.take().events) == scan.event_count()  # the debugging run consumed nothing
    again = run_cli(*common, "--output", "stdout")
    assert again.returncode == 0 and again.stdout == ""  # it reads the service's state


# -- state keyed by the account the credentials resolve to ------------------------------------------------

V2_SCHEMA = """
CREATE TABLE groups (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    read_until_ms INTEGER NOT NULL, PRIMARY KEY (account, region, log_group)) WITHOUT ROWID;
CREATE TABLE streams (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL, first_event_ms INTEGER NOT NULL, last_event_ms INTEGER NOT NULL,
    events INTEGER NOT NULL, last_event_id TEXT NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream)) WITHOUT ROWID;
CREATE TABLE seen_events (account TEXT NOT NULL, region TEXT NOT NULL, log_group TEXT NOT NULL,
    log_stream TEXT NOT NULL, event_id TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (account, region, log_group, log_stream, event_id)) WITHOUT ROWID;
PRAGMA user_version=2;
"""


def as_version_2(state: str, v2: Path, label: str) -> None:
    """The rows a version-2 module writes for the same reads: the same, under the block's label."""
    db = sqlite3.connect(v2)
    db.executescript(V2_SCHEMA)
    db.execute("ATTACH DATABASE ? AS new", (state,))
    db.execute("INSERT INTO groups SELECT ?, region, log_group, read_until_ms FROM new.groups", (label,))
    db.execute(
        "INSERT INTO streams SELECT ?, region, log_group, log_stream, first_event_ms, last_event_ms,"
        " events, last_event_id FROM new.streams",
        (label,),
    )
    db.execute(
        "INSERT INTO seen_events SELECT ?, region, log_group, log_stream, event_id, timestamp_ms"
        " FROM new.seen_events",
        (label,),
    )
    db.commit()
    db.close()


def test_a_version_2_state_file_relabelled_re_sends_nothing(logs, receiver, cli_args, short_dir):
    first = one_scan(logs, seed=1, repo="web")
    assert run_cli(*cli_args()).returncode == 0
    assert len(receiver.take().events) == first.event_count()
    v2 = short_dir / "v2.db"
    as_version_2(state_db(cli_args), v2, label="default")  # written by the previous release
    second = one_scan(logs, seed=2, repo="api")
    args = cli_args("--aws_account_id", "111122223333")  # the label --check-config suggests, added
    args[args.index("--state_db") + 1] = str(v2)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert len(got.events) == second.event_count()  # only the new scan
    assert {e["aws"]["ecr"]["repository"] for e in got.events} == {"api"}
    db = sqlite3.connect(v2)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    assert set(db.execute("SELECT DISTINCT account FROM groups")) == {("123456789012",)}
    # where each group's first read began: only_logs_after (2020-01-01), so a later, earlier one is honoured
    assert set(db.execute("SELECT first_start_ms FROM groups")) == {(1577836800000,)}
    args = cli_args("--aws_account_alias", "renamed")
    args[args.index("--state_db") + 1] = str(v2)
    assert run_cli(*args).returncode == 0
    assert receiver.take().events == []  # relabelled again: nothing re-sent


def test_a_version_2_group_kept_under_two_labels_is_not_guessed_and_says_so(
    logs, receiver, cli_args, short_dir
):
    one_scan(logs, seed=3, repo="web")
    assert run_cli(*cli_args()).returncode == 0
    receiver.take()
    v2 = short_dir / "v2-two-labels.db"
    as_version_2(state_db(cli_args), v2, label="alpha")
    db = sqlite3.connect(v2)
    db.execute("INSERT INTO groups SELECT 'beta', region, log_group, read_until_ms FROM groups")
    db.commit()
    db.close()
    args = cli_args("--aws_account_alias", "gamma")
    args[args.index("--state_db") + 1] = str(v2)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    warning = [line for line in receiver.take().status if "previous version kept its state" in line]
    assert len(warning) == 1 and "'alpha', 'beta'" in warning[0] and "<aws_account_alias>" in warning[0]


def test_two_blocks_of_one_account_read_each_group_once(logs, receiver, cli_args, tmp_path):
    scans = [one_scan(logs, seed=n, repo=f"repo-{n}") for n in range(3)]
    block = (
        '<service type="cloudwatchlogs"><aws_account_alias>{}</aws_account_alias>'
        "<regions>us-east-1</regions></service>"
    )
    conf = tmp_path / "ecr-scan.conf"
    conf.write_text(f'<wodle name="aws-s3">{block.format("team-a")}\n{block.format("team-b")}</wodle>')
    result = run_cli(*cli_args("--config", str(conf)))
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert len(got.keys()) == len(set(got.keys())) == sum(s.event_count() for s in scans)
    (warning,) = {line for line in got.status if "is also read by the service at" in line}
    assert "of account 123456789012 in region us-east-1" in warning


# -- only_logs_after moved earlier after the first run ----------------------------------------------------


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_earlier_only_logs_after_reads_the_earlier_window_once(logs, receiver, cli_args):
    day = 86_400_000
    old = make_scan(random.Random(5), "web", "v0", NOW_MS - 3 * day, {"HIGH": 2})
    recent = make_scan(random.Random(6), "web", "v1", NOW_MS - 60_000, {"CRITICAL": 1})
    write_scan(logs, old)
    write_scan(logs, recent)
    assert run_cli(*cli_args("--only_logs_after", iso(NOW_MS - 2 * day))).returncode == 0
    first = receiver.take()
    assert {e["aws"]["ecr"]["image_tag"] for e in first.events} == {"v1"}
    result = run_cli(*cli_args("--only_logs_after", iso(NOW_MS - 4 * day)))
    assert result.returncode == 0, result.stderr
    second = receiver.take()
    assert len(second.events) == old.event_count()
    assert {e["aws"]["ecr"]["image_tag"] for e in second.events} == {"v0"}  # the earlier window only
    assert run_cli(*cli_args("--only_logs_after", iso(NOW_MS - 4 * day))).returncode == 0
    assert receiver.take().events == []  # read once


# -- messages that say what is wrong ---------------------------------------------------------------------


def test_no_credentials_at_all_says_none_were_found_and_what_was_searched(receiver, cli_args, tmp_path):
    env = {name: "" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"), AWS_CONFIG_FILE=str(tmp_path / "cfg")
    )
    result = run_env(env, *cli_args())
    assert result.returncode == 3, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "no AWS credentials found: searched the environment" in error
    assert f"{tmp_path}/credentials and {tmp_path}/cfg (user " in error
    assert "no instance role (AWS_EC2_METADATA_DISABLED=true)" in error
    assert "rejected" not in error


def test_a_profile_not_found_names_the_files_searched(receiver, cli_args, tmp_path):
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "c"),
    }
    result = run_env(env, *cli_args("--aws_profile", "prod"))
    assert result.returncode == 3
    (error,) = errors_in(receiver.take().status)
    assert f"AWS profile 'prod' not found in {tmp_path}/credentials and {tmp_path}/c (user " in error


def test_a_pass_that_finds_no_group_is_a_warning_naming_region_and_pattern(logs, receiver, cli_args):
    one_scan(logs)  # in us-east-1; the block reads eu-west-1
    result = run_cli(*cli_args("--regions", "eu-west-1"))
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in receiver.take().status if "WARNING" in line]
    assert "no log group found in region eu-west-1 matching /aws/ecr/image-scan-findings/*" in warning


def test_a_repository_name_for_a_group_suggests_the_group(logs, receiver, cli_args):
    one_scan(logs, repo="sample-repo")
    result = run_cli(*cli_args("--aws_log_groups", "sample-repo"))
    assert result.returncode == 4
    (error,) = errors_in(receiver.take().status)
    assert "did you mean /aws/ecr/image-scan-findings/sample-repo?" in error


# -- aws-s3 command lines carry over ---------------------------------------------------------------------


def test_the_aws_s3_wodles_short_flags_are_accepted(logs, receiver, moto, short_dir):
    scan = one_scan(logs, repo="web")
    group = "/aws/ecr/image-scan-findings/web"
    # as wazuh/wazuh wodles/aws/aws_tools.py get_script_arguments() lists them
    flags = ["-sr", "cloudwatchlogs", "-r", "us-east-1", "-g", group, "-s", "2020-JAN-01", "-n", "prod"]
    flags += ["-se", moto, "-st", moto, "-d", "1", "-e", "-df", "aws.region", "-dr", "^eu-"]
    local = ["--run-once", "--socket", receiver.path, "--state_db", str(short_dir / "s.db")]
    result = run_cli(*local, *flags)
    assert result.returncode == 0, result.stderr
    assert len(receiver.take().events) == scan.event_count()
    assert "DEBUG: " in result.stderr


def test_debug_follows_wazuh_modules_debug_of_local_internal_options(logs, receiver, cli_args, tmp_path):
    one_scan(logs)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "internal_options.conf").write_text("wazuh_modules.debug=0\n")
    (tmp_path / "etc" / "local_internal_options.conf").write_text("# local\nwazuh_modules.debug=1\n")
    result = run_cli(*cli_args("--wazuh_path", str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "wazuh-ecr-scan: DEBUG: " in result.stderr
    quiet = run_cli(*cli_args("--wazuh_path", str(tmp_path), "--debug", "0"))
    assert quiet.returncode == 0 and "DEBUG" not in quiet.stderr  # --debug wins


def test_sts_out_of_reach_keeps_state_under_aws_account_id_or_says_what_to_give(logs, receiver, cli_args):
    scan = one_scan(logs)
    unreachable = ["--sts_endpoint", "http://127.0.0.1:9", "--max_attempts", "1"]
    result = run_cli(*cli_args(*unreachable))
    assert result.returncode == 4, result.stderr
    (error,) = errors_in(receiver.take().status)
    assert "cannot tell which AWS account the credentials belong to" in error and "<sts_endpoint>" in error
    result = run_cli(*cli_args(*unreachable, "--aws_account_id", "123456789012"))
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert len(got.events) == scan.event_count()
    assert any("keeping state under <aws_account_id> 123456789012" in line for line in got.status)
    assert run_cli(*cli_args()).returncode == 0  # STS back: the same key, nothing re-sent
    assert receiver.take().events == []
