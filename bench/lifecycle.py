"""Finding lifecycle: its CPU cost in the replay pipeline (parse → flatten → lifecycle → send → commit),
against the same pipeline without it, and the size of its tables for many images.

    python bench/lifecycle.py [--findings 100000] [--repeat 3] [--images 10000] [--per-image 200] [--quick]

Pipeline runs (best of --repeat, interleaved): lifecycle off; on, first read of every image (all `new`);
on, a rescan of every image against the state the first read left (all `persisting`). The lifecycle makes
no AWS call (it reads only the state DB): on a replay the API call count is 0 either way.
DB size: --images images (tags of 100 repositories) × --per-image findings each, read once through
lifecycle.py in process (hand-built flattened events, so this part times the lifecycle alone), committed
every 500 events as the poller does; the file size is measured after a WAL checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cpu_pipeline
from _common import SinkProcess, Workdir, parser, report, scans
from lambda_writer import Scan, recording_lines, write_jsonl
from wazuh_ecr_scan import lifecycle

T0 = int(time.time() * 1000) - 3 * 86_400_000  # recent enough that nothing is pruned
HOUR = 3_600_000
FINDINGS_PER_SCAN = 1000
REPOSITORIES = [f"team-{n % 4}/service-{n}" for n in range(10)]


# -- pipeline ----------------------------------------------------------------------------------------


def make_scans(findings: int) -> list[Scan]:
    per_scan = min(FINDINGS_PER_SCAN, findings)
    count = max(1, findings // per_scan)
    return scans(REPOSITORIES, -(-count // len(REPOSITORIES)), per_scan, 5, T0, seed=7)[:count]


def rescan_of(made: list[Scan]) -> list[Scan]:
    """The same images and findings, scanned an hour later (new stream names and event ids)."""
    later = []
    for s in made:
        seconds = (s.lambda_start_ms + HOUR) // 1000 - 5
        event_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
        later.append(replace(s, event_time=event_time, lambda_start_ms=s.lambda_start_ms + HOUR))
    return later


def run_pipeline(recording: Path, sink: str, state_db: str, on: bool) -> dict[str, Any]:
    return cpu_pipeline.run_pipeline(recording, sink, state_db, workers=1, lifecycle=on)


def pipeline_rows(args: Any, work: Workdir, sink: SinkProcess) -> tuple[list[tuple], dict[str, Any]]:
    findings, rounds = (100, 1) if args.quick else (args.findings, args.repeat)
    made = make_scans(findings)
    first, again = work.path / "first.jsonl", work.path / "again.jsonl"
    lines = write_jsonl(first, recording_lines(made))
    write_jsonl(again, recording_lines(rescan_of(made)))
    baseline = work.state("baseline")
    run_pipeline(first, sink.path, baseline, on=True)  # the state a rescan starts from
    sink.stats()
    sink.reset()

    def rescan(n: int) -> dict[str, Any]:
        db = work.state(f"rescan-{n}")
        shutil.copy(baseline, db)
        return run_pipeline(again, sink.path, db, on=True)

    keys = {"lifecycle off": "off", "lifecycle on, first read (new)": "first_read"}
    keys["lifecycle on, rescan (persisting)"] = "rescan"
    contenders = {
        "lifecycle off": lambda n: run_pipeline(first, sink.path, work.state(f"off-{n}"), on=False),
        "lifecycle on, first read (new)": lambda n: run_pipeline(
            first, sink.path, work.state(f"on-{n}"), on=True
        ),
        "lifecycle on, rescan (persisting)": rescan,
    }
    best: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
    for n in range(rounds):
        for name, run in contenders.items():
            result, received = run(n), sink.stats()
            sink.reset()
            if name not in best or result["cpu_s"] < best[name][0]["cpu_s"]:
                best[name] = (result, received)
    off_rate = best["lifecycle off"][0]["events"] / best["lifecycle off"][0]["cpu_s"]
    rows, summary = [], {"events": lines, "scans": len(made)}
    complete = True
    for name, (result, received) in best.items():
        rate = result["events"] / result["cpu_s"]
        ratio = rate / off_rate
        rows.append(
            (
                name,
                result["events"],
                received["events"] + received["made"],
                f"{rate:,.0f}",
                round(result["cpu_s"], 2),
                f"{ratio:.3f}",
            )
        )
        summary[keys[name]] = round(ratio, 3)
        # one scan_changes event per scan with the lifecycle on; no resolved finding in these runs
        sent = received["events"] + received["made"]
        complete &= sent == lines + (0 if name == "lifecycle off" else len(made))
    summary["complete"] = complete
    return rows, summary


# -- DB size ------------------------------------------------------------------------------------------


class _Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        lifecycle.migrate(self.db)
        self.writers: list = []


def db_size(path: str, images: int, per_image: int) -> dict[str, Any]:
    rng = random.Random(3)
    packages = [f"pkg-{n}" for n in range(300)]
    pool = [
        (f"CVE-{rng.randint(2015, 2025)}-{rng.randint(1000, 99999)}", rng.choice(packages))
        for _ in range(20_000)
    ]
    store = _Store(path)
    lc = lifecycle.Lifecycle(store, 20 * 60_000, keep_days=90)
    events = 0
    with cpu_pipeline.measured() as took:
        for n in range(images):
            repository, tag = f"team/service-{n % 100}", f"v{n // 100}.0.{n % 7}"
            digest = f"sha256:{n:064x}"
            common = {
                "repository": repository,
                "image_digest": digest,
                "image_tag": tag,
                "scan_time": "2025-06-07T02:02:04Z",
            }
            log_info = {
                "log_group": "/aws/ecr/image-scan-findings/" + repository,
                "log_stream": "s",
                "timestamp": "2025-06-07T02:02:10.000Z",
            }
            summary = {
                "aws": {
                    "event_type": "scan_summary",
                    "region": "us-east-1",
                    "log_info": log_info,
                    "ecr": {**common, "findings_total": per_image},
                }
            }
            lc.annotate("bench", summary)
            lc.accept()
            for cve, package in rng.sample(pool, per_image):
                event = {
                    "aws": {
                        "event_type": "finding",
                        "region": "us-east-1",
                        "log_info": log_info,
                        "ecr": dict(common),
                    },
                    "vulnerability": {
                        "cve": cve,
                        "severity": rng.choice(("High", "Medium", "Low")),
                        "package": {
                            "name": package,
                            "version": f"{rng.randint(0, 9)}.{rng.randint(0, 30)}-r{rng.randint(0, 5)}",
                        },
                    },
                }
                lc.annotate("bench", event)
                lc.accept()
                events += 1
                if events % 500 == 0:
                    lc.save()
            if n % 100 == 99:
                lc.completed("bench", "us-east-1", log_info["log_group"], 0)
                lc.sent()
        lc.save()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = store.db.execute("SELECT count(*) FROM lifecycle_images").fetchone()[0]
    store.db.close()
    size = os.path.getsize(path)
    return {
        "images": rows,
        "findings": events,
        "bytes": size,
        "bytes_per_finding": round(size / max(events, 1), 1),
        "lifecycle_us_per_event": round(took["cpu_s"] / max(events, 1) * 1e6, 1),
    }


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--findings", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--per-image", dest="per_image", type=int, default=200)
    args = p.parse_args()
    with Workdir() as work, SinkProcess(work.socket) as sink:
        rows, summary = pipeline_rows(args, work, sink)
        # --quick: 100 images (one completed group) and 500 findings (one save in the loop)
        images, per_image = (100, 5) if args.quick else (args.images, args.per_image)
        size = db_size(work.state("size"), images, per_image)
    summary["db"] = size
    summary["met"] = all(float(row[-1]) >= 0.9 for row in rows)
    notes = [
        f"DB size: {size['images']} images x {per_image} findings = {size['findings']} findings:"
        f" {size['bytes'] / 1e6:.1f} MB ({size['bytes_per_finding']} bytes a finding);"
        f" lifecycle alone {size['lifecycle_us_per_event']} us CPU an event"
    ]
    headers = ("run", "events read", "datagrams sent", "events/CPU s", "CPU s", "rate vs off")
    report("lifecycle", headers, rows, summary, notes)


if __name__ == "__main__":
    main()
