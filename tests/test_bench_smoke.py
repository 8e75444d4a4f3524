"""Every benchmark still runs, with tiny sizes (--quick), and ends with its one-line JSON summary.
Nothing here is timed: the figures are in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, cli_env

BENCHMARKS = ["cpu_pipeline", "api_cost", "latency", "memory", "scaling", "anchor"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_quick(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == name
    # behaviour, not speed: every benchmark checks that nothing was missed or sent twice
    assert summary.get("complete", True) is not False
    if name == "api_cost":
        assert summary["met"] is True  # call counts are exact, whatever the machine
    if name == "anchor":
        assert summary["calls_met"] is True
