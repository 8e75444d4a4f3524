"""Logging like a Wazuh daemon: `YYYY/MM/DD HH:MM:SS wazuh-ecr-scan: LEVEL: message` on stderr and in
--log_file, --debug 0-3, nothing at debug level sent to analysisd, and a progress line on terminals only."""

from __future__ import annotations

import io
import logging
import os
import pty
import random
import re
import subprocess
import sys
import time

import pytest
from conftest import ROOT, cli_env, run_cli
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan.cli_args import read_command_line
from wazuh_ecr_scan.logs import DETAIL, Progress, log, register_secret, setup_logging

WAZUH_LINE = re.compile(
    r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} wazuh-ecr-scan: (DEBUG|INFO|WARNING|ERROR|CRITICAL): \S"
)
NOW_MS = int(time.time() * 1000)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_debug_lines_go_to_stderr_and_the_log_file_never_to_analysisd(logs, receiver, cli_args, short_dir):
    write_scan(logs, make_scan(random.Random(1), "web", "v1", NOW_MS - 60_000, {"HIGH": 2, "LOW": 1}))
    log_file = short_dir / "ossec.log"
    log_file.write_text("2024/01/01 00:00:00 wazuh-modulesd: INFO: a line that was already there\n")
    result = run_cli(*cli_args("--debug", "2", "--log_file", str(log_file)))
    assert result.returncode == 0, result.stderr
    written = log_file.read_text().splitlines()[1:]
    assert written and all(WAZUH_LINE.match(line) for line in written), written
    assert any(": DEBUG: sent finding from " in line for line in written)  # level 2: one line per event
    assert any(": INFO: pass done: " in line for line in written)
    before_table = result.stderr.split("\nregion ")[0].splitlines()
    assert before_table == written  # the same lines on stderr; then the --run-once table
    status = receiver.take().status
    assert any(line.startswith("wazuh-ecr-scan: INFO: pass done: ") for line in status)
    assert not [line for line in status if "DEBUG" in line]


@pytest.mark.parametrize(
    ("debug", "shown"),
    [
        (0, ["info"]),
        (1, ["info", "debug"]),
        (2, ["info", "debug", "per-event"]),
        (3, ["info", "debug", "per-event", "botocore"]),
    ],
)
def test_debug_levels_choose_the_lines_logged(debug, shown):
    stream = io.StringIO()
    setup_logging(debug, stream=stream)
    try:
        log.info("info line")
        log.debug("debug line")
        log.log(DETAIL, "per-event line")
        logging.getLogger("botocore").debug("botocore line")
    finally:
        logging.getLogger("botocore").setLevel(logging.NOTSET)
        logging.getLogger("urllib3").setLevel(logging.NOTSET)
        setup_logging(0)
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 2)[2].removesuffix(" line") for line in lines] == shown
    assert all(WAZUH_LINE.match(line) for line in lines)
    assert [line.split(": ")[1] for line in lines] == ["INFO"] + ["DEBUG"] * (len(shown) - 1)


def test_the_debug_level_and_log_file_are_read_even_from_a_bad_command_line():
    def early(*argv: str) -> tuple[int, str | None]:
        command_line = read_command_line(["--wazuh_path", "/nonexistent", *argv])
        return command_line.debug_level(), command_line.log_file

    assert early("--run-once", "--debug", "2", "--log_file", "/x.log", "--regions", "a") == (2, "/x.log")
    assert early("--log_file", "/x.log", "--debug", "9") == (0, "/x.log")
    assert early("--no-such-flag", "--debug", "1", "--log_file", "/x.log") == (1, "/x.log")
    assert early("--debug") == (0, None)


def test_an_unopenable_log_file_is_one_line_and_exit_2(moto):
    result = run_cli("--run-once", "--state_db", "/tmp/never.db", "--log_file", "/nonexistent/dir/ossec.log")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert WAZUH_LINE.match(line) and "--log_file: cannot open /nonexistent/dir/ossec.log" in line


def test_secrets_are_masked_in_the_log_file_too(tmp_path):
    path = tmp_path / "ossec.log"
    setup_logging(0, stream=io.StringIO(), log_file=str(path))
    register_secret("s3cr3t-session-token-value")
    log.warning("assumed role, token s3cr3t-session-token-value, key AKIAABCDEFGHIJKLMNOP")
    setup_logging(0)  # closes the file
    text = path.read_text()
    assert "s3cr3t" not in text and "AKIAABCDEFGHIJKLMNOP" not in text and text.count("***") == 2


def test_progress_is_rewritten_in_place_and_wiped_before_a_log_line():
    terminal = FakeTerminal()
    setup_logging(0, stream=terminal)
    from wazuh_ecr_scan.logs import PROGRESS

    PROGRESS.show("group 1/3 /aws/ecr/image-scan-findings/web: 10 events sent", force=True)
    PROGRESS.show("throttled: too soon after the last one")
    log.info("pass done")
    output = terminal.getvalue()
    assert output.startswith("\rgroup 1/3 /aws/ecr/image-scan-findings/web: 10 events sent\x1b[K")
    assert "throttled" not in output
    assert "\r\x1b[K" in output and WAZUH_LINE.match(output.split("\r\x1b[K", 1)[1])
    setup_logging(0)


def test_no_progress_when_stderr_is_not_a_terminal():
    pipe = io.StringIO()
    setup_logging(0, stream=pipe)
    from wazuh_ecr_scan.logs import PROGRESS

    PROGRESS.show("x", force=True)
    assert pipe.getvalue() == "" and not PROGRESS.enabled
    setup_logging(0)
    assert Progress().enabled is False


def test_a_pass_on_a_terminal_shows_progress_then_the_table():
    controller, terminal = pty.openpty()
    recording = str(ROOT / "tests" / "recordings" / "multi-repo.jsonl")
    command = [
        sys.executable,
        "-m",
        "wazuh_ecr_scan",
        "--run-once",
        "--output",
        "stdout",
        "--replay",
        recording,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=terminal, env=cli_env(), cwd=ROOT)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert proc.wait(60) == 0
    output = b"".join(chunks).decode()
    assert "[default us-east-1 1/4] /aws/ecr/image-scan-findings/" in output
    assert "events sent" in output
    assert "\r\x1b[K" in output.split("pass done")[0]  # wiped before the summary line
    assert "log group" in output.split("pass done")[1]  # the table comes after
