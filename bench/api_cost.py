"""API cost: calls per operation, counted by a proxy in front of moto's server, for an initial ingest of
G groups × S scans, an idle pass over a group with 1000 streams, and an incremental pass with a few new
scans; with moto's pages (10,000 events) and with AWS-like short and empty pages cut by the proxy.

    python bench/api_cost.py [--groups 20] [--scans 25] [--quick]

Targets (issue #6): idle pass ≤ 1 call per group plus discovery, whatever the number of streams; initial
ingest ≤ one call per page the API must return plus discovery. Every run also makes one
sts:GetCallerIdentity (the state is keyed by the account it resolves). The last column is what Wazuh's aws-s3
wodle needs at least for the same pass (1 STS + 2·⌈streams/50⌉ DescribeLogStreams per group + ≥ 1
GetLogEvents per stream).
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
    now_ms,
    pages_needed,
    parser,
    quick_mode,
    report,
    run_cli,
    scans,
    wodle_calls,
)
from fault_proxy import FaultProxy

HOUR_MS = 3_600_000
RUN_CALLS = 1  # sts:GetCallerIdentity, once per run: the state is keyed by the resolved account


@dataclass
class Group:
    name: str
    streams: int = 0
    events: int = 0


@dataclass
class Workload:
    groups: dict[str, Group]

    def add(self, scan_list: list[Any]) -> None:
        for scan in scan_list:
            group = self.groups.setdefault(scan.log_group, Group(scan.log_group))
            group.streams += len(scan.streams())
            group.events += scan.event_count()


def expected_calls(events_per_group: list[int], split: int) -> int:
    """FilterLogEvents pages the API returns for these groups, plus one DescribeLogGroups page and the
    run's one GetCallerIdentity. With `split`, the proxy serves pieces of `split` events with one empty
    page between two pieces."""
    if not split:
        return RUN_CALLS + 1 + sum(pages_needed(e) for e in events_per_group)
    return RUN_CALLS + 1 + sum(2 * pages_needed(e, split) - 1 for e in events_per_group)


def run_scenarios(moto: str, proxy: FaultProxy, args: Any, split: int) -> list[dict[str, Any]]:
    old, new = now_ms() - 2 * HOUR_MS, now_ms() - 60_000
    repos = [f"svc/app-{n:03d}" for n in range(args.groups)]
    many = "big/thousand-streams"
    first = scans(repos, args.scans, args.findings, 4, old, seed=1)
    wide = scans([many], args.wide_streams // 2, 1, 1, old, seed=2)  # 1 finding: SUMMARY + 1 stream per scan
    later = scans([*repos[:3], many], 1, args.findings, 4, new, seed=3)
    tag = f"pages of {split} + empty pages" if split else "moto pages"
    results = []
    with Workdir() as work, SinkProcess(work.socket, keys=True) as sink:
        if split:
            proxy.page_split("FilterLogEvents", max_events=split, empty_pages=1)
        workload = Workload({})

        def pass_(name: str, new_events: dict[str, int]) -> None:
            proxy.reset_counts()
            run = run_cli(*live_args(proxy.url, sink.path, work.state(), "--max_rate", "50"))
            got = sink.stats()
            sink.reset()
            counts = proxy.counts()
            per_group = [new_events.get(g, 0) for g in workload.groups]
            target = expected_calls(per_group, split)
            results.append(
                {
                    "scenario": f"{name} ({tag})",
                    "groups": len(workload.groups),
                    "streams": sum(g.streams for g in workload.groups.values()),
                    "events": got["events"],
                    "expected_events": sum(new_events.values()),
                    "duplicates": got["duplicates"],
                    "calls": counts,
                    "total": sum(counts.values()),
                    "target": target,
                    "met": sum(counts.values()) <= target and got["events"] == sum(new_events.values()),
                    "wodle": wodle_calls([g.streams for g in workload.groups.values()]),
                    "wall_s": round(run.wall_s, 2),
                }
            )

        load(moto, first + wide)
        workload.add(first + wide)
        pass_("initial ingest", {g: workload.groups[g].events for g in workload.groups})
        pass_("idle pass", {})
        load(moto, later)
        before = {g: workload.groups[g].events for g in workload.groups}
        workload.add(later)
        pass_("incremental", {g: workload.groups[g].events - before[g] for g in workload.groups})
        if split:
            proxy.clear_page_split()
    return results


def idle_thousand_streams(moto: str, proxy: FaultProxy, streams: int) -> dict[str, Any]:
    """One group with `streams` streams, read once, then an idle pass."""
    scan_list = scans(["idle/thousand"], streams // 2, 1, 1, now_ms() - 2 * HOUR_MS, seed=4)
    load(moto, scan_list)
    with Workdir() as work, SinkProcess(work.socket, keys=True) as sink:
        group = scan_list[0].log_group
        args = live_args(proxy.url, sink.path, work.state(), "--aws_log_groups", group)
        run_cli(*args)
        first = sink.stats()
        sink.reset()
        proxy.reset_counts()
        run = run_cli(*args)
        got = sink.stats()
    counts = proxy.counts()
    return {
        "scenario": f"idle pass, 1 group of {streams} streams",
        "groups": 1,
        "streams": streams,
        "events": got["events"],
        "expected_events": 0,
        "duplicates": got["duplicates"],
        "calls": counts,
        "total": sum(counts.values()),
        "target": RUN_CALLS + 1,  # --aws_log_groups: no discovery call at all
        "met": sum(counts.values()) <= RUN_CALLS + 1 and first["events"] == streams and got["events"] == 0,
        "wodle": wodle_calls([streams]),
        "wall_s": round(run.wall_s, 2),
    }


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=20)
    p.add_argument("--scans", type=int, default=25, help="scans per group")
    p.add_argument("--findings", type=int, default=20, help="findings per scan")
    p.add_argument("--wide-streams", dest="wide_streams", type=int, default=1000)
    p.add_argument("--split", type=int, default=200, help="events per page when the proxy cuts pages")
    args = p.parse_args()
    if args.quick:  # pages still cut in two (3 events a scan, pieces of 2), the wide group has 4 streams
        args.groups, args.scans, args.findings, args.wide_streams, args.split = 2, 1, 2, 4, 2
        quick_mode()
    results = []
    for split in (0, args.split):
        with MotoProcess() as moto, FaultProxy(moto.url) as proxy:
            results += run_scenarios(moto.url, proxy, args, split)
            if not split:
                results.append(idle_thousand_streams(moto.url, proxy, args.wide_streams))
    rows = [
        (
            r["scenario"],
            r["groups"],
            r["streams"],
            f"{r['events']}/{r['expected_events']}",
            r["duplicates"],
            format_calls(r["calls"]),
            r["total"],
            r["target"],
            r["met"],
            r["wodle"],
            r["wall_s"],
        )
        for r in results
    ]
    headers = (
        "scenario",
        "groups",
        "streams",
        "events/expected",
        "dup",
        "calls",
        "total",
        "target ≤",
        "met",
        "wodle ≥",
        "wall s",
    )
    report("api_cost", headers, rows, {"met": all(r["met"] for r in results), "scenarios": results})


if __name__ == "__main__":
    main()
