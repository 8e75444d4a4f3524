"""Operations (issue 11): nothing lost or sent twice by the documented workflows, and every failure reaches
analysisd as a status line, whatever the exit path. Real CLI, moto over HTTP, a bound socket, SQLite files.

Exit codes are compared with the documented numbers (README table), not with imported constants.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time

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
    # One FilterLogEvents a second: the pass takes about 30 s, the signal comes after the first group.
    proc = start_cli(*cli_args("--workers", "1", "--max_rate", "1"))
    wait_for_events(receiver, 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 7, stderr
    first = receiver.take()
    (warning,) = [line for line in first.status if "pass interrupted" in line]
    read = int(re.search(r"pass interrupted: (\d+) of 30 groups read", warning)[1])
    assert 1 <= read < 30
    assert not any("pass done" in line and "WARNING" in line for line in first.status)
    assert run_cli(*cli_args()).returncode == 0
    keys = first.keys() + receiver.take().keys()
    assert len(keys) == len(set(keys)) == total  # the rest came with the next pass, nothing twice


# -- --output stdout never changes what the service sends ----------------------------------------------


def test_a_stdout_run_without_state_db_does_not_consume_the_services_findings(logs, receiver, moto, tmp_path):
    scan = one_scan(logs)
    wazuh = tmp_path / "ossec"
    (wazuh / "wodles").mkdir(parents=True)
    common = ["--run-once", "--service_endpoint", moto, "--wazuh_path", str(wazuh)]
    common += ["--only_logs_after", "2020-JAN-01", "--socket", receiver.path]
    first = run_cli(*common, "--output", "stdout")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == scan.event_count()
    assert "--output stdout without --state_db: reading the state of" in first.stderr.splitlines()[0]
    service = run_cli(*common)
    assert service.returncode == 0, service.stderr
    assert len(receiver.take().events) == scan.event_count()  # the debugging run consumed nothing
    again = run_cli(*common, "--output", "stdout")
    assert again.returncode == 0 and again.stdout == ""  # it reads the service's state
