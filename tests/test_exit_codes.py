"""Exit codes as the README documents them (0 ok, 1 internal, 2 config, 3 credentials, 4 AWS, 5 analysisd,
6 state DB), written as numbers: modulesd and administrators' scripts see numbers, so a renumbered
constant must fail here, not pass because the test imports the same constant."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import run_cli
from wazuh_ecr_scan.cli import main


@pytest.fixture
def analysisd(short_dir: Path):
    path = short_dir / "queue"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield str(path)
    sock.close()


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """No credentials anywhere botocore looks: environment, shared files, container or instance role."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))


def live(socket_path: str, state_db: str, *extra: str) -> list[str]:
    unreachable = "http://127.0.0.1:9"  # nothing may be asked of AWS before these failures
    return [
        "--run-once",
        "--service_endpoint",
        unreachable,
        "--socket",
        socket_path,
        "--state_db",
        state_db,
        *extra,
    ]


def test_a_bad_flag_is_exit_2():
    assert main(["--run-once", "--debug", "7"]) == 2


def test_no_credentials_at_all_is_exit_3(no_credentials, analysisd, tmp_path):
    assert main(live(analysisd, str(tmp_path / "s.db"), "--max_attempts", "1")) == 3


def test_a_missing_analysisd_socket_is_exit_5(short_dir, tmp_path):
    assert main(live(str(short_dir / "no-socket"), str(tmp_path / "s.db"))) == 5


def test_a_state_db_that_cannot_be_created_is_exit_6(analysisd, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    assert main(live(analysisd, str(tmp_path / "file" / "state.db"))) == 6


def test_a_named_group_that_does_not_exist_is_exit_4_through_the_process(cli_args):
    missing = "/aws/ecr/image-scan-findings/does-not-exist"
    result = run_cli(*cli_args("--aws_log_groups", missing))
    assert result.returncode == 4, result.stderr
    assert run_cli(*cli_args("--aws_log_groups", missing, "--skip_on_error")).returncode == 0


def test_the_process_exits_with_the_code_main_returns(tmp_path):
    assert run_cli("--run-once", "--state_db", str(tmp_path / "s.db"), "--debug", "7").returncode == 2
