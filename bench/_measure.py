"""Runs the CLI as its own child and writes its wall time, CPU time and peak RSS as JSON to argv[1].

    python bench/_measure.py RESULT.json -- ARGS...
    python bench/_measure.py --forked

A child's ru_maxrss starts from what its parent had mapped when it forked, so the benchmarks, which hold
data and threads, do not fork the CLI themselves: this small process does, and reports.

`--forked` (the benchmarks' --quick) imports the module once, then reads one JSON request a line
({"args": [...], "stderr": PATH}), forks a child that runs `python -m wazuh_ecr_scan ARGS` from there
(stdout to /dev/null, stderr to PATH) and answers each with the same JSON figures. The children skip the
interpreter's start-up and the imports, about 0.5 s of CPU a run: --quick runs many short passes to
prove the benchmarks still work, and their figures are not measurements.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import subprocess
import sys
import time
from typing import Any


def figures(pid: int, began: float) -> dict[str, Any]:
    _, status, usage = os.wait4(pid, 0)
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_s": time.perf_counter() - began,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
    }


def serve_forked() -> None:
    sys.path[0] = os.getcwd()  # as `python -m` sets it, not this script's folder
    import wazuh_ecr_scan.cli  # noqa: F401  (what the children no longer import)

    gc.freeze()  # the children's collections skip (and so do not copy) every object imported here
    for line in sys.stdin:
        request = json.loads(line)
        began = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            run_cli_here(request["args"], request["stderr"])  # exits this child: never returns
        print(json.dumps(figures(pid, began)), flush=True)


def run_cli_here(args: list[str], stderr_path: str) -> None:
    """`python -m wazuh_ecr_scan ARGS` in this (forked) process; its SystemExit ends the process."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_TRUNC), 2)
    sys.argv = ["wazuh_ecr_scan", *args]
    runpy.run_module("wazuh_ecr_scan", run_name="__main__", alter_sys=True)
    sys.exit(0)


def main() -> None:
    if sys.argv[1:] == ["--forked"]:
        serve_forked()
        return
    result, args = sys.argv[1], sys.argv[3:]
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wazuh_ecr_scan", *args])
    measured = figures(proc.pid, began)
    proc.returncode = measured["returncode"]  # reaped by wait4: Popen must not wait for it again
    with open(result, "w") as f:
        json.dump(measured, f)


if __name__ == "__main__":
    main()
