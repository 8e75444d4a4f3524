"""run_cli forks the CLI from a zygote that has imported it: each run must end as a new interpreter's
`python -m wazuh_ecr_scan` would, with the same exit code and the same output, and runs must not leak
into each other."""

from __future__ import annotations

import re

import pytest
from conftest import run_cli, run_cli_fresh

TIME = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", re.MULTILINE)


def same_output(text: str) -> str:
    return TIME.sub("", text)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--version"], id="version"),
        pytest.param(["--help"], id="help"),
        pytest.param(["--no-such-flag"], id="bad flag, exit 2"),
        pytest.param(["--run-once", "--wazuh_path", "/nonexistent"], id="no Wazuh, exit 2"),
        pytest.param(["--run-once", "--output", "stdout", "--regions", "moon-1"], id="bad region"),
    ],
)
def test_a_forked_run_ends_as_a_new_interpreters_run(argv: list[str]) -> None:
    forked, fresh = run_cli(*argv), run_cli_fresh(*argv)
    assert forked.stdout + forked.stderr  # each of these says something
    assert forked.returncode == fresh.returncode
    assert same_output(forked.stdout) == same_output(fresh.stdout)
    assert same_output(forked.stderr) == same_output(fresh.stderr)


def test_runs_do_not_leak_into_each_other(moto, receiver, cli_args) -> None:
    debug = run_cli(*cli_args("--debug", "2"))
    quiet = run_cli(*cli_args())
    assert debug.returncode == quiet.returncode == 0, debug.stderr + quiet.stderr
    assert "DEBUG" in debug.stderr
    assert "DEBUG" not in quiet.stderr  # the first run's logging setup stayed in its own process
