"""Latency-bound wall time: the initial ingest and the idle pass of 100 groups behind a proxy that adds
50 ms to every call (like AWS), with the worker pool (--workers) and the per-region, per-operation request
cap (--max_rate) at several settings; one region, two regions of 50 groups each, and a backlog of 10
groups × 2002 events served in AWS-like pages of 1000 events (fetching overlaps delivery).

    python bench/latency.py [--groups 100] [--latency 0.05] [--quick]

"peak/s" is the most requests of one operation that reached the proxy within any one second, all regions
together (the cap is per region: with two regions, up to twice the cap).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _common import (
    MotoProcess,
    SinkProcess,
    Workdir,
    format_calls,
    live_args,
    load,
    max_per_second,
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
FINDINGS = 5  # per scan, one per severity: 6 streams and 6 events per group
# (workers, max_rate): before this work (sequential, no cap), then the defaults (4, 4.0) and wider caps.
CONFIGS = [(1, 100.0), (1, 4.0), (4, 4.0), (4, 10.0), (1, 25.0), (4, 25.0), (8, 25.0)]
TWO_REGION_CONFIGS = [(1, 100.0), (1, 4.0), (4, 4.0)]
BACKLOG_CONFIGS = [(1, 100.0), (4, 4.0), (1, 25.0), (4, 25.0)]
# --quick: one setting per scenario (sequential, the default cap, a cap that does not stretch the backlog)
QUICK = {"one": [(1, 100.0)], "two": [(4, 4.0)], "backlog": [(4, 25.0)]}
PASSES = ("initial ingest", "idle pass")


def one_config(
    proxy: FaultProxy, scenario: Scenario, workers: int, rate: float, passes: tuple[str, ...]
) -> list[dict[str, Any]]:
    rows = []
    with Workdir() as work, SinkProcess(work.socket, keys=True) as sink:
        extra = ("--regions", ",".join(scenario.regions), "--workers", str(workers), "--max_rate", str(rate))
        for name in passes:
            proxy.reset_counts()
            run = run_cli(*live_args(proxy.url, sink.path, work.state(), *extra))
            got = sink.stats()
            sink.reset()
            peak = {
                op: max_per_second([r.started for r in proxy.requests if r.operation == op])
                for op in proxy.counts()
            }
            expected = scenario.events if name == "initial ingest" else 0
            rows.append(
                {
                    "scenario": scenario.name,
                    "pass": name,
                    "workers": workers,
                    "max_rate": rate,
                    "wall_s": round(run.wall_s, 2),
                    "pass_s": run.summary("duration"),
                    "calls": proxy.counts(),
                    "peak_per_s": peak,
                    # the proxy cannot tell regions apart: with two, each may use the whole cap
                    "cap_held": all(n <= rate * len(scenario.regions) for n in peak.values()),
                    "events": got["events"],
                    "complete": got["events"] == expected and got["duplicates"] == 0,
                }
            )
    return rows


@dataclass
class Scenario:
    name: str
    regions: list[str]
    events: int = 0

    def load(self, endpoint: str, scan_lists: list[list[Scan]]) -> Scenario:
        for region, scan_list in zip(self.regions, scan_lists, strict=True):
            load(endpoint, scan_list, region=region)
            self.events += sum(s.event_count() for s in scan_list)
        return self


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--latency", type=float, default=0.05)
    args = p.parse_args()
    groups = 2 if args.quick else args.groups
    backlog_groups, backlog_findings, page = (2, 3, 2) if args.quick else (10, 1000, 1000)
    configs = QUICK if args.quick else {"one": CONFIGS, "two": TWO_REGION_CONFIGS, "backlog": BACKLOG_CONFIGS}
    if args.quick:
        quick_mode()
    results: list[dict[str, Any]] = []
    with MotoProcess() as moto, FaultProxy(moto.url, latency=args.latency) as proxy:
        start = now_ms() - 2 * HOUR_MS
        one = Scenario(f"1 region × {groups}", ["us-east-1"]).load(
            moto.url, [scans([f"one/app-{n:03d}" for n in range(groups)], 1, FINDINGS, 5, start)]
        )
        two = Scenario(f"2 regions × {groups // 2}", ["us-east-2", "eu-west-1"]).load(
            moto.url,
            [
                scans([f"two/{r}-{n:03d}" for n in range(groups // 2)], 1, FINDINGS, 5, start, seed=s)
                for r, s in (("east", 2), ("west", 3))
            ],
        )
        backlog = Scenario(f"backlog, {backlog_groups} groups, pages of {page}", ["ap-southeast-2"]).load(
            moto.url,
            [scans([f"backlog/app-{n}" for n in range(backlog_groups)], 2, backlog_findings, 5, start)],
        )
        for workers, rate in configs["one"]:
            results += one_config(proxy, one, workers, rate, PASSES)
        for workers, rate in configs["two"]:
            results += one_config(proxy, two, workers, rate, PASSES)
        proxy.page_split("FilterLogEvents", max_events=page)
        for workers, rate in configs["backlog"]:
            results += one_config(proxy, backlog, workers, rate, ("initial ingest",))
    summarise(results, groups, args.latency)


def summarise(results: list[dict[str, Any]], groups: int, latency: float) -> None:
    rows = [
        (
            r["scenario"],
            r["pass"],
            r["workers"],
            r["max_rate"],
            r["wall_s"],
            r["pass_s"],
            format_calls(r["calls"]),
            format_calls(r["peak_per_s"]),
            r["cap_held"],
            r["complete"],
        )
        for r in results
    ]
    wodle = wodle_calls([1 + FINDINGS] * groups)
    summary = {
        "latency_s": latency,
        "groups": groups,
        "cap_held": all(r["cap_held"] for r in results),
        "complete": all(r["complete"] for r in results),
        "wodle_calls_per_pass": wodle,
        "wodle_min_wall_s": round(wodle * latency, 1),
        "runs": results,
    }
    headers = (
        "scenario",
        "pass",
        "workers",
        "max_rate",
        "wall s",
        "pass s",
        "calls",
        "peak/s",
        "cap held",
        "all once",
    )
    note = (
        f"Wazuh's wodle, same {groups} groups: ≥ {wodle} calls a pass, so ≥ {wodle * latency:.0f} s at "
        f"{latency * 1000:.0f} ms a call (sequential)"
    )
    report("latency", headers, rows, summary, [note])


if __name__ == "__main__":
    main()
