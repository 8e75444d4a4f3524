"""CPU pipeline: replay N Lambda-format findings through parse → flatten → send (and the per-page SQLite
commit) into a bound datagram socket, against a bare loop over the same recording in the same run:
json.loads + build the same dict + json.dumps + send, nothing else. That loop is the practical limit for
CPython; the target is pipeline/bare ≥ 0.5 (findings per CPU second). A replay never reads ahead (it
waits on no network), so --workers does not apply here.

    python bench/cpu_pipeline.py [--findings 100000] [--repeat 3] [--quick] [--profile] [--orjson]

The socket is drained by bench/_sink.py in its own process, which also checks that the pipeline and the
bare loop sent byte-identical datagrams (an order-independent digest).
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import re
import socket
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import SinkProcess, Workdir, parser, report, scans
from lambda_writer import recording_lines, write_jsonl
from wazuh_ecr_scan import encode, flatten
from wazuh_ecr_scan.poller import Poller, Source
from wazuh_ecr_scan.replay import ReplayReader
from wazuh_ecr_scan.sender import SocketSender
from wazuh_ecr_scan.settings import ServiceSettings
from wazuh_ecr_scan.state import StateStore

T0 = 1_749_261_733_844
FINDINGS_PER_SCAN = 1000
REPOSITORIES = [f"team-{n % 4}/service-{n}" for n in range(10)]
LIFECYCLE_RUN = "module, lifecycle on"


def write_recording(path: Path, findings: int) -> int:
    per_scan = min(FINDINGS_PER_SCAN, findings)
    count = max(1, findings // per_scan)
    made = scans(REPOSITORIES, -(-count // len(REPOSITORIES)), per_scan, 5, T0, seed=7)[:count]
    return write_jsonl(path, recording_lines(made))


# -- the module's pipeline ------------------------------------------------------------------------------


def run_pipeline(
    recording: Path, sink: str, state_db: str, workers: int, lifecycle: bool = False
) -> dict[str, Any]:
    """The module's pass; with `lifecycle` (the CLI's default) its events carry the lifecycle fields and
    each scan adds a scan_changes event, so only the run without it can match the bare loop's bytes."""
    settings = ServiceSettings(workers=workers, replay=str(recording), lifecycle=lifecycle)
    state = StateStore(state_db)
    sender = SocketSender(sink)
    try:
        with measured() as took:
            source = Source("bench", ReplayReader(str(recording), "us-east-1", ()), time_filtered=False)
            stats = Poller(settings, state, sender).run_pass([source])
    finally:
        sender.close()
        state.close()
    return {**took, "events": stats.total("findings") + stats.total("summaries")}


def scan_count(recording: Path) -> int:
    with recording.open("rb") as f:
        return sum(1 for line in f if b'"logStreamName":"SUMMARY-' in line)


# -- the bare loop ----------------------------------------------------------------------------------------

_STREAM = re.compile(r"^([A-Z]+)-(.*)-([0-9a-f]{64})-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z$")
_SEVERITY = {"CRITICAL": "Critical", "HIGH": "High", "MEDIUM": "Medium", "LOW": "Low"}
_SEVERITY.update(INFORMATIONAL="Informational", UNDEFINED="Untriaged")
_SUMMARY_KEYS = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


def bare_loop(recording: Path, sink: str, loads: Callable[[Any], Any], dumps: Callable[[Any], bytes]) -> dict:
    """The same datagrams as the module for well-formed Lambda events, with no checks at all."""
    streams: dict[str, tuple[str, dict[str, str]]] = {}
    times: dict[int, str] = {}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(sink)
    events = 0
    with measured() as took, recording.open("rb") as f:
        for line in f:
            record = loads(line)
            group, stream = record["logGroupName"], record["logStreamName"]
            if stream not in streams:
                m = _STREAM.match(stream)
                ecr = {"repository": group[len("/aws/ecr/image-scan-findings/") :]}
                ecr.update(
                    image_digest="sha256:" + m[3], image_tag=m[2], scan_time=f"{m[4]}T{m[5]}:{m[6]}:{m[7]}Z"
                )
                streams[stream] = (m[1], ecr)
            kind, context = streams[stream]
            stamp = record["timestamp"]
            if stamp not in times:
                seconds, millis = divmod(stamp, 1000)
                times[stamp] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
            payload = loads(record["message"])
            ecr = dict(context)
            event: dict[str, Any] = {
                "integration": "aws",
                "aws": {
                    "source": "ecr_image_scan",
                    "event_type": "scan_summary" if kind == "SUMMARY" else "finding",
                    "region": "us-east-1",
                    "log_info": {
                        "log_group": group,
                        "log_stream": stream,
                        "event_id": record["eventId"],
                        "timestamp": times[stamp],
                    },
                    "ecr": ecr,
                },
            }
            if kind == "SUMMARY":
                counts = dict.fromkeys(_SUMMARY_KEYS, 0)
                counts.update(payload)
                total = sum(counts.values())
                ecr.update(scan_type="basic", severity_counts=counts, findings_total=total)
                ecr["truncated"] = total > 1000
            else:
                event["vulnerability"] = _bare_vulnerability(payload, ecr)
            sock.send(b"1:Wazuh-AWS:" + dumps(event))
            events += 1
    sock.close()
    return {**took, "events": events}


def _bare_vulnerability(payload: dict[str, Any], ecr: dict[str, Any]) -> dict[str, Any]:
    attributes = {a["key"]: a["value"] for a in payload["attributes"]}
    ecr["scan_type"] = "basic"
    ecr["attributes"] = attributes
    if "CVSS3_SCORE" in attributes:
        score = {"base": float(attributes["CVSS3_SCORE"]), "version": attributes["CVSS3_VECTOR"][5:8]}
    else:
        score = {"base": float(attributes["CVSS2_SCORE"]), "version": "2.0"}
    return {
        "cve": payload["name"],
        "reference": payload["uri"],
        "description": payload["description"],
        "package": {"name": attributes["package_name"], "version": attributes["package_version"]},
        "score": score,
        "severity": _SEVERITY[payload["severity"]],
        "scanner": {"vendor": "Amazon ECR"},
    }


def _std_dumps() -> Callable[[Any], bytes]:
    encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
    return lambda event: encoder(event).encode("ascii")


# -- measuring ---------------------------------------------------------------------------------------------


@contextmanager
def measured():
    took: dict[str, float] = {}
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    yield took
    took["cpu_s"] = time.process_time() - cpu
    took["wall_s"] = time.perf_counter() - wall


@contextmanager
def orjson_in_module():
    """The module with orjson for parsing and encoding (ASCII-only output, as the schema requires: an
    event with any non-ASCII character falls back to the stdlib encoder)."""
    import orjson

    std_loads, std_dumps = flatten.json.loads, encode._dumps

    def dumps(event: Any) -> str:
        data = orjson.dumps(event)
        return data.decode("ascii") if data.isascii() else std_dumps(event)

    flatten.json.loads, encode._dumps = orjson.loads, dumps
    try:
        yield
    finally:
        flatten.json.loads, encode._dumps = std_loads, std_dumps


def orjson_bare_dumps() -> Callable[[Any], bytes]:
    import orjson

    std = _std_dumps()
    return lambda event: data if (data := orjson.dumps(event)).isascii() else std(event)


def profile_pipeline(recording: Path, sink: str, state_db: str) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_pipeline(recording, sink, state_db, workers=1)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(22)
    return out.getvalue()


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--findings", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3, help="rounds; each run keeps its best (least CPU)")
    p.add_argument("--profile", action="store_true", help="print the pipeline's cProfile (tottime)")
    p.add_argument("--orjson", action="store_true", help="also measure with orjson (if installed)")
    args = p.parse_args()
    findings, rounds = (100, 1) if args.quick else (args.findings, args.repeat)
    with Workdir() as work, SinkProcess(work.socket) as sink:
        recording = work.path / "recording.jsonl"
        lines = write_recording(recording, findings)
        scans_read = scan_count(recording)
        contenders = _contenders(recording, sink.path, work, args.orjson and _has_orjson())
        best: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}
        for n in range(rounds):  # interleaved, so a slow moment of the machine hits every contender
            for name, run in contenders.items():
                result, received = run(n), sink.stats()
                sink.reset()
                if name not in best or result["cpu_s"] < best[name][0]["cpu_s"]:
                    best[name] = (result, received)
        if args.profile:
            print(profile_pipeline(recording, sink.path, work.state("profile")), file=sys.stderr)
    summarise(lines, scans_read, [(name, *best[name]) for name in contenders])


def _contenders(recording: Path, sink: str, work: Workdir, with_orjson: bool) -> dict[str, Callable]:
    def module(n: int) -> dict[str, Any]:
        return run_pipeline(recording, sink, work.state(f"module-{n}"), workers=1)

    def module_lifecycle(n: int) -> dict[str, Any]:
        return run_pipeline(recording, sink, work.state(f"lifecycle-{n}"), workers=1, lifecycle=True)

    runs: dict[str, Callable[[int], dict[str, Any]]] = {
        "bare loop (stdlib json)": lambda n: bare_loop(recording, sink, json.loads, _std_dumps()),
        "module": module,
        LIFECYCLE_RUN: module_lifecycle,
    }
    if with_orjson:
        import orjson

        def module_orjson(n: int) -> dict[str, Any]:
            with orjson_in_module():
                return run_pipeline(recording, sink, work.state(f"orjson-{n}"), workers=1)

        runs["bare loop (orjson)"] = lambda n: bare_loop(recording, sink, orjson.loads, orjson_bare_dumps())
        runs["module + orjson"] = module_orjson
    return runs


def _has_orjson() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        print("orjson is not installed: skipped", file=sys.stderr)
        return False
    return True


def summarise(lines: int, scans_read: int, runs: list[tuple[str, dict[str, Any], dict[str, int]]]) -> None:
    bare = runs[0][1]
    bare_rate = bare["events"] / bare["cpu_s"]
    digest = runs[0][2]["digest"]
    rows, summary = [], {"events": lines, "ratio_target": 0.5}
    for name, result, received in runs:
        rate = result["events"] / result["cpu_s"]
        ratio = rate / bare_rate
        if name == LIFECYCLE_RUN:  # other bytes (lifecycle fields), one scan_changes more per scan
            same = received["events"] == lines and received["made"] == scans_read
        else:
            same = received["digest"] == digest and received["events"] == lines
        rows.append(
            (
                name,
                result["events"],
                f"{rate:,.0f}",
                round(result["cpu_s"], 2),
                round(result["wall_s"], 2),
                f"{ratio:.2f}",
                same,
            )
        )
        key = re.sub(r"\W+", "_", name).strip("_")
        summary[key] = {
            "events_per_cpu_s": round(rate),
            "cpu_s": round(result["cpu_s"], 3),
            "ratio": round(ratio, 3),
        }
    summary["complete"] = all(row[-1] for row in rows)
    summary["met"] = summary["module"]["ratio"] >= 0.5
    lifecycle_key = re.sub(r"\W+", "_", LIFECYCLE_RUN).strip("_")
    summary["lifecycle_to_off"] = round(summary[lifecycle_key]["ratio"] / summary["module"]["ratio"], 3)
    headers = ("run", "events", "events/CPU s", "CPU s", "wall s", "ratio to bare", "same datagrams")
    report("cpu_pipeline", headers, rows, summary)


if __name__ == "__main__":
    main()
