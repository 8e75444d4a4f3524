"""Every benchmark still runs, with tiny sizes (--quick), and ends with its one-line JSON summary.
Nothing here is timed: the figures are in BENCHMARKS.md. The selected benchmarks start together (each
is its own process, mostly waiting on its moto server and CLI runs), and each test waits for its own.
They share a CLI zygote (tests/support/cli_zygote.py) and a moto fork server (bench/_forkserver.py), which
imported the module, and moto, once: every CLI run and every moto server of every benchmark is forked from
them."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from cli_zygote import Zygote
from conftest import ROOT, cli_env

BENCHMARKS = [
    "cpu_pipeline",
    "api_cost",
    "latency",
    "memory",
    "scaling",
    "anchor",
    "lifecycle",
    "producer_memory",
]
TIMEOUT_S = 600

# Each benchmark is a process running the CLI against moto; they start together (the module's fixture),
# so they share one worker under pytest-xdist.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("benchmarks")]


class _Run:
    def __init__(self, name: str, env: dict[str, str], stdout: IO[str], stderr: IO[str]) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick"],
            stdout=self.stdout,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def result(self) -> tuple[int, str, str]:
        returncode = self.proc.wait(timeout=TIMEOUT_S)
        self.stdout.seek(0)
        self.stderr.seek(0)
        return returncode, self.stdout.read(), self.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def _moto_fork_server(folder: str) -> Iterator[str]:
    """bench/_forkserver.py, listening on a socket in `folder`; stopped (its stdin closed) on exit."""
    path = str(Path(folder) / "moto.sock")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_forkserver.py"), path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", "bench/_forkserver.py did not start"
        yield path
    finally:
        proc.stdin.close()  # it exits once every child it forked has ended
        try:
            proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise


@contextlib.contextmanager
def _cli_zygote() -> Iterator[str]:
    zygote = Zygote.start(cli_env(), str(ROOT))
    try:
        yield zygote.path
    finally:
        zygote.close()


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[str, _Run]]:
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="ecr-smoke-", dir="/tmp"))
        env = cli_env()
        env["BENCH_CLI_ZYGOTE"] = stack.enter_context(_cli_zygote())
        env["BENCH_FORKSERVER_MOTO"] = stack.enter_context(_moto_fork_server(folder))
        started = {}
        for name in dict.fromkeys(selected):
            output = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in range(2)]
            started[name] = _Run(name, env, *output)
            stack.callback(started[name].stop)
        yield started


@pytest.mark.slow
def test_full_runs_measure_a_new_interpreter(runs: dict[str, _Run], tmp_path: Path) -> None:
    """--quick forks its CLI runs; a benchmark at full size runs each through bench/_measure.py (a new
    interpreter, start-up included), which still reports the run's exit code, CPU time and peak RSS.
    (Asks for `runs` so that the benchmarks are already running meanwhile.)"""
    result = tmp_path / "figures.json"
    measure = [sys.executable, str(ROOT / "bench" / "_measure.py"), str(result), "--", "--help"]
    subprocess.run(measure, stdout=subprocess.DEVNULL, env=cli_env(), cwd=ROOT, check=True, timeout=TIMEOUT_S)
    figures = json.loads(result.read_text())
    assert figures["returncode"] == 0
    assert figures["cpu_s"] > 0 and figures["max_rss_mb"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_quick(name: str, runs: dict[str, _Run]) -> None:
    returncode, stdout, stderr = runs[name].result()
    assert returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == name
    # behaviour, not speed: every benchmark checks that nothing was missed or sent twice
    assert summary.get("complete", True) is not False
    if name == "api_cost":
        assert summary["met"] is True  # call counts are exact, whatever the machine
    if name == "anchor":
        assert summary["calls_met"] is True
