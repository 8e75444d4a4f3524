"""Scaling: how API calls, wall time, the CLI's own CPU time and its peak RSS grow with the streams of a
group (10 / 100 / 1000 / 10000; one finding a scan, so a scan adds two streams and two events) and with
the findings of a scan (1 / 100 / 1000; ten scans a group), for the initial ingest and an idle pass,
behind a proxy adding 50 ms a call.

    python bench/scaling.py [--latency 0.05] [--quick]

Wall time includes moto's own time to filter a group (it walks every stream), which AWS does not pay
the same way; CPU s is this module's cost alone.
"""

from __future__ import annotations

from typing import Any

from _common import (
    MotoProcess,
    SinkProcess,
    Workdir,
    format_calls,
    live_args,
    load,
    now_ms,
    parser,
    quick_mode,
    report,
    run_cli,
    scans,
    wodle_calls,
)
from fault_proxy import FaultProxy
from lambda_writer import Scan

HOUR_MS = 3_600_000


def measure(proxy: FaultProxy, axis: str, size: int, scan_list: list[Scan]) -> list[dict[str, Any]]:
    group = scan_list[0].log_group
    streams = sum(len(s.streams()) for s in scan_list)
    events = sum(s.event_count() for s in scan_list)
    rows = []
    with Workdir() as work, SinkProcess(work.socket) as sink:
        for name, expected in (("initial ingest", events), ("idle pass", 0)):
            proxy.reset_counts()
            run = run_cli(*live_args(proxy.url, sink.path, work.state(), "--aws_log_groups", group))
            got = sink.stats()
            sink.reset()
            rows.append(
                {
                    "axis": axis,
                    "size": size,
                    "pass": name,
                    "streams": streams,
                    "events": got["events"],
                    "complete": got["events"] == expected,
                    "calls": proxy.counts(),
                    "total": sum(proxy.counts().values()),
                    "wodle_calls": wodle_calls([streams]),
                    "wall_s": round(run.wall_s, 2),
                    "cpu_s": round(run.cpu_s, 2),
                    "peak_rss_mb": round(run.max_rss_mb, 1),
                }
            )
    return rows


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--latency", type=float, default=0.05)
    args = p.parse_args()
    stream_sizes, finding_sizes = ((4,), (3,)) if args.quick else ((10, 100, 1000, 10000), (1, 100, 1000))
    scans_per_group = 2 if args.quick else 10
    if args.quick:
        quick_mode()
    start = now_ms() - 2 * HOUR_MS
    results = []
    with MotoProcess() as moto, FaultProxy(moto.url, latency=args.latency) as proxy:
        for size in stream_sizes:
            scan_list = scans([f"scale/streams-{size}"], size // 2, 1, 1, start, seed=size)
            load(moto.url, scan_list, threads=8)
            results += measure(proxy, "streams per group", size, scan_list)
        for size in finding_sizes:
            scan_list = scans([f"scale/findings-{size}"], scans_per_group, size, 5, start, seed=size + 1)
            load(moto.url, scan_list)
            results += measure(proxy, "findings per scan", size, scan_list)
    rows = [
        (
            r["axis"],
            r["size"],
            r["pass"],
            r["streams"],
            r["events"],
            format_calls(r["calls"]),
            r["wodle_calls"],
            r["wall_s"],
            r["cpu_s"],
            r["peak_rss_mb"],
            r["complete"],
        )
        for r in results
    ]
    headers = (
        "axis",
        "size",
        "pass",
        "streams",
        "events sent",
        "calls",
        "wodle calls ≥",
        "wall s",
        "CPU s",
        "peak RSS MB",
        "all once",
    )
    idle = [r["total"] for r in results if r["pass"] == "idle pass"]
    summary = {
        "latency_s": args.latency,
        "idle_calls_constant": len(set(idle)) == 1,
        "complete": all(r["complete"] for r in results),
        "runs": results,
    }
    report("scaling", headers, rows, summary)


if __name__ == "__main__":
    main()
