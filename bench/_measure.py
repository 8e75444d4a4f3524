"""Runs the CLI as its own child and writes its wall time, CPU time and peak RSS as JSON to argv[1].

    python bench/_measure.py RESULT.json -- ARGS...

A child's ru_maxrss starts from what its parent had mapped when it forked, so the benchmarks, which hold
data and threads, do not fork the CLI themselves: this small process does, and reports. (--quick forks
its runs from the CLI zygote, tests/support/cli_zygote.py, which reports the same figures.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any


def figures(pid: int, began: float) -> dict[str, Any]:
    """Wait for the child `pid` (started at perf_counter() `began`): its exit code and what it used."""
    _, status, usage = os.wait4(pid, 0)
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "wall_s": time.perf_counter() - began,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    result, args = sys.argv[1], sys.argv[3:]
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wazuh_ecr_scan", *args])
    measured = figures(proc.pid, began)
    with open(result, "w") as f:
        json.dump(measured, f)


if __name__ == "__main__":
    main()
