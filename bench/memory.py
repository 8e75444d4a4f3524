"""Memory: peak RSS of the real CLI (a child process; ru_maxrss) replaying 100k findings, and ingesting a
5000-finding backlog from moto: in one group or five, with moto's pages (10,000 events) or AWS-like pages
of 1000 events, with one worker or four; and 120,000 events in one group's late-write window, read by a
first pass and re-read by a second (every id already sent). Target: ≤ 80 MB. The first row is the floor:
an idle pass (the interpreter, boto3 and one CloudWatch Logs client).

    python bench/memory.py [--findings 100000] [--backlog 5000] [--late-window 120000] [--quick]
"""

from __future__ import annotations

from typing import Any

from _common import (
    MotoProcess,
    SinkProcess,
    Workdir,
    live_args,
    load,
    now_ms,
    parser,
    quick_mode,
    report,
    run_cli,
    scans,
)
from cpu_pipeline import write_recording
from fault_proxy import FaultProxy

TARGET_MB = 80.0
HOUR_MS = 3_600_000


def replay_rows(findings: int) -> list[dict[str, Any]]:
    rows = []
    with Workdir() as work, SinkProcess(work.socket) as sink:
        recording = work.path / "recording.jsonl"
        events = write_recording(recording, findings)
        for name, state in (
            ("replay, state file", ["--state_db", work.state()]),
            ("replay, state in memory", []),
        ):
            run = run_cli("--run-once", "--replay", str(recording), "--socket", sink.path, *state)
            got = sink.stats()
            sink.reset()
            rows.append(_row(f"{name} ({events:,} events)", run, got["events"], events))
    return rows


def backlog_runs(page: int, quick: bool) -> dict[str, list[tuple[int, int]]]:
    """(page split, workers) for each layout: every combination, or (--quick) each value once."""
    if quick:
        return {"one group": [(0, 1)], "five groups": [(page, 4)]}
    every = [(split, workers) for split in (0, page) for workers in (1, 4)]
    return {"one group": every, "five groups": every}


def backlog_rows(backlog: int, runs: dict[str, list[tuple[int, int]]]) -> list[dict[str, Any]]:
    rows = []
    per_scan = min(1000, backlog)
    count = max(1, backlog // per_scan)
    with MotoProcess() as moto, FaultProxy(moto.url) as proxy, Workdir() as work:
        with SinkProcess(work.socket) as sink:
            run = run_cli(*live_args(proxy.url, sink.path, work.state("floor")))
            rows.append(_row("idle pass, no groups (the floor)", run, 0, 0))
        start = now_ms() - 2 * HOUR_MS
        layouts = {
            "one group": scans(["backlog/one"], count, per_scan, 5, start, seed=1),
            "five groups": scans(
                [f"backlog/five-{n}" for n in range(5)], max(1, count // 5), per_scan, 5, start, seed=2
            ),
        }
        for layout, scan_list in layouts.items():
            load(moto.url, scan_list)
            events = sum(s.event_count() for s in scan_list)
            groups = ",".join(sorted({s.log_group for s in scan_list}))
            for split, workers in runs[layout]:
                if split:
                    proxy.page_split("FilterLogEvents", max_events=split)
                with SinkProcess(work.socket) as sink:
                    extra = ("--aws_log_groups", groups, "--workers", str(workers), "--max_rate", "50")
                    run = run_cli(
                        *live_args(proxy.url, sink.path, work.state(f"{layout}{split}{workers}"), *extra)
                    )
                    got = sink.stats()
                proxy.clear_page_split()
                pages = f"pages of {split}" if split else "moto pages"
                rows.append(
                    _row(
                        f"backlog {events:,} events, {layout}, {pages}, --workers {workers}",
                        run,
                        got["events"],
                        events,
                    )
                )
    return rows


def late_window_rows(events: int, splits: tuple[int, ...]) -> list[dict[str, Any]]:
    """One group whose events all sit in the late-write window: what a pass holds for ids already sent,
    with moto's pages (10,000 events, ~10 MB) and AWS-like pages of 1000 events (AWS caps a page at 1 MB)."""
    rows = []
    per_scan = min(1000, events)
    with MotoProcess() as moto, FaultProxy(moto.url) as proxy, Workdir() as work:
        scan_list = scans(
            ["late/one"], max(1, events // (per_scan + 1)), per_scan, 5, now_ms() - 60_000, seed=3
        )
        load(moto.url, scan_list)
        total = sum(s.event_count() for s in scan_list)
        for split in splits:
            if split:
                proxy.page_split("FilterLogEvents", max_events=split)
            state = work.state(f"late{split}")
            pages = f"pages of {split}" if split else "moto pages"
            for name, expected in (("first pass", total), ("second pass, all already sent", 0)):
                with SinkProcess(work.socket) as sink:
                    run = run_cli(*live_args(proxy.url, sink.path, state, "--max_rate", "50"))
                    got = sink.stats()
                label = f"late window {total:,} events in one group, {pages}, {name}"
                rows.append(_row(label, run, got["events"], expected))
            proxy.clear_page_split()
    return rows


def _row(name: str, run: Any, received: int, expected: int) -> dict[str, Any]:
    return {
        "run": name,
        "peak_rss_mb": round(run.max_rss_mb, 1),
        "cpu_s": round(run.cpu_s, 2),
        "wall_s": round(run.wall_s, 2),
        "events": received,
        "complete": received == expected,
        "met": run.max_rss_mb <= TARGET_MB,
    }


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--findings", type=int, default=100_000)
    p.add_argument("--backlog", type=int, default=5000)
    p.add_argument(
        "--late-window", type=int, default=120_000, help="events in one group's late window; 0: skip"
    )
    args = p.parse_args()
    findings, backlog, page = (20, 10, 4) if args.quick else (args.findings, args.backlog, 1000)
    late = min(args.late_window, 20) if args.quick else args.late_window
    if args.quick:
        quick_mode()
    late_splits = (page,) if args.quick else (0, page)  # --quick: the moto-pages case is in the backlog
    results = (
        backlog_rows(backlog, backlog_runs(page, args.quick))
        + replay_rows(findings)
        + (late_window_rows(late, late_splits) if late else [])
    )
    rows = [(r["run"], r["peak_rss_mb"], r["met"], r["cpu_s"], r["wall_s"], r["complete"]) for r in results]
    headers = ("run", "peak RSS MB", f"≤ {TARGET_MB:.0f} MB", "CPU s", "wall s", "all events")
    summary = {
        "target_mb": TARGET_MB,
        "met": all(r["met"] for r in results),
        "complete": all(r["complete"] for r in results),
        "runs": results,
    }
    report("memory", headers, rows, summary)


if __name__ == "__main__":
    main()
