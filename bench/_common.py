"""What the benchmarks share: a moto server and a datagram sink in their own processes, the counting (and
latency-adding) fault proxy, fast loading of Lambda-format scans into moto, running the real CLI as a
child process with its wall time, CPU time and peak RSS, and printing a table plus a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import functools
import itertools
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support"
for _path in (SUPPORT, ROOT / "wodle"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from cli_zygote import Zygote  # noqa: E402
from lambda_writer import Scan, make_scan  # noqa: E402

PREFIX = "/aws/ecr/image-scan-findings/"
MOTO_PAGE = 10_000  # moto's FilterLogEvents page: `limit`, default 10,000 events, never cut by size
WODLE_STREAMS_PER_DESCRIBE = 50
_MEASURE = str(Path(__file__).with_name("_measure.py"))

# -- output -----------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
        memory = f", {kb / 1024**2:.0f} GB"
    except (OSError, TypeError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, {platform.system()}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return str(value)


def report(
    title: str,
    headers: Sequence[str],
    rows: list[Sequence[Any]],
    summary: dict[str, Any],
    notes: Sequence[str] = (),
) -> None:
    """The table for people, then the JSON summary as the very last line of standard output."""
    print(f"\n{title}\nmachine: {machine()}\n")
    print(table(headers, rows))
    for note in notes:
        print(note)
    print(json.dumps({"benchmark": title, **summary}, separators=(",", ":"), default=str))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, each scenario once: keeps the benchmark working in CI (its figures mean nothing)",
    )
    return p


def quick_mode() -> None:
    """--quick proves the benchmark still runs and checks what it checks, in a few seconds: every CLI run
    is forked from a zygote that imported the module once (tests/support/cli_zygote.py), and every moto
    server from a process that imported moto once (bench/_forkserver.py), instead of a new interpreter
    importing them again (0.5-0.8 s of CPU each)."""
    global _forked_cli, _moto_forks
    if _forked_cli is None:
        _forked_cli = _cli_zygote()
        _moto_forks = fork_server()


# -- processes ----------------------------------------------------------------------------------------

_FORKSERVER = str(Path(__file__).with_name("_forkserver.py"))


def _cli_zygote() -> Zygote:
    """The smoke test's CLI zygote, shared by the benchmarks it runs ($BENCH_CLI_ZYGOTE), or one started
    now for this process."""
    path = os.environ.get("BENCH_CLI_ZYGOTE")
    if path:
        return Zygote(path)
    zygote = Zygote.start(cli_env(), str(ROOT))
    atexit.register(zygote.close)
    return zygote


def fork_server() -> str:
    """The socket of the moto fork server: the smoke test's, shared by the benchmarks it runs
    ($BENCH_FORKSERVER_MOTO), or one started now for this process."""
    path = os.environ.get("BENCH_FORKSERVER_MOTO")
    if path:
        return path
    path = str(Path(tempfile.mkdtemp(prefix="ecr-bench-", dir="/tmp")) / "moto.sock")
    proc = subprocess.Popen(
        [sys.executable, _FORKSERVER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("bench/_forkserver.py did not start")
    atexit.register(_stop_fork_server, proc, path)
    return path


def _stop_fork_server(proc: subprocess.Popen, path: str) -> None:
    proc.stdin.close()
    proc.wait(30)
    shutil.rmtree(Path(path).parent, ignore_errors=True)


def _connect(path: str) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(path)
    return connection


_forked_cli: Zygote | None = None
_moto_forks: str | None = None


class MotoProcess:
    """moto's server (tests/support/moto_server.py) in a child process, on 127.0.0.1, with nothing in it
    (--quick: forked by the "moto" fork server, stopped when the connection closes)."""

    _SCRIPT = (
        "import sys; sys.path.insert(0, {support!r})\n"
        "from moto_server import MotoServer\n"
        "with MotoServer() as server:\n"
        "    print(server.url, flush=True)\n"
        "    sys.stdin.read()\n"
    )

    def __enter__(self) -> MotoProcess:
        if _moto_forks is not None:
            self.forked = _connect(_moto_forks)
            self.url = self.forked.makefile().readline().strip()
        else:
            script = self._SCRIPT.format(support=str(SUPPORT))
            self.proc = subprocess.Popen(
                [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError("moto server did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if _moto_forks is not None:
            self.forked.close()
            return
        self.proc.stdin.close()
        self.proc.wait(30)


class SinkProcess:
    """bench/_sink.py: the analysisd socket stand-in, in a child process."""

    def __init__(self, path: str, keys: bool = False) -> None:
        self.path = path
        self.keys = keys
        self._marks = itertools.count(1)

    def __enter__(self) -> SinkProcess:
        args = [sys.executable, str(Path(__file__).with_name("_sink.py")), self.path]
        self.proc = subprocess.Popen(
            args + (["--keys"] if self.keys else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("sink did not start")
        return self

    def _ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stats(self) -> dict[str, int]:
        """Totals once every datagram sent so far has arrived (a marker goes through the same socket)."""
        mark = next(self._marks)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(f"bench:mark:{mark}".encode(), self.path)
        self._ask(f"wait {mark}")
        return json.loads(self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    def __exit__(self, *exc_info: object) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


@dataclasses.dataclass
class CliRun:
    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    stderr: str

    def api_calls(self) -> dict[str, int]:
        match = re.search(r"API calls: (.*)", self.stderr)
        return {op: int(n) for op, n in re.findall(r"(\w+)=(\d+)", match[1])} if match else {}

    def summary(self, name: str) -> float:
        match = re.search(rf"pass done: .*\b{name}=([\d.]+)", self.stderr)
        return float(match[1]) if match else float("nan")


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="AKIAFAKEFAKEFAKE0001",
        AWS_SECRET_ACCESS_KEY="fake/secret/Key+for+bench00000000000000000",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        PYTHONPATH=str(ROOT / "wodle"),
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def run_cli(*args: str, check: bool = True) -> CliRun:
    """The real CLI in a child process (via bench/_measure.py, or under --quick forked by the CLI
    zygote): wall time, CPU time, peak RSS."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        figures = _forked_run(args, stderr) if _forked_cli is not None else _measured_run(args, stderr)
        stderr.seek(0)
        text = stderr.read()
    if not figures:
        raise RuntimeError(f"the CLI run was not measured:\n{text[-3000:]}")
    run = CliRun(figures["returncode"], figures["wall_s"], figures["cpu_s"], figures["max_rss_mb"], text)
    if check and run.returncode != 0:
        raise RuntimeError(f"wazuh-ecr-scan exited {run.returncode}:\n{text[-3000:]}")
    return run


def _forked_run(args: Sequence[str], stderr: IO[str]) -> dict[str, Any]:
    assert _forked_cli is not None
    with open(os.devnull, "rb+") as null:
        streams = (null.fileno(), null.fileno(), stderr.fileno())
        ended = _forked_cli.run_with(list(args), cli_env(), str(ROOT), streams, timeout=3600)
    return dataclasses.asdict(ended)


def _measured_run(args: Sequence[str], stderr: IO[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, _MEASURE, result.name, "--", *args]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=stderr, env=cli_env(), cwd=ROOT)
        return json.loads(Path(result.name).read_text() or "{}")


class Workdir:
    """A short temporary folder (AF_UNIX paths are limited to 107 bytes) with a socket and state paths."""

    def __enter__(self) -> Workdir:
        self.path = Path(tempfile.mkdtemp(prefix="ecr-bench-", dir="/tmp"))
        self.socket = str(self.path / "queue")
        return self

    def state(self, name: str = "state") -> str:
        return str(self.path / f"{name}.db")

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def live_args(endpoint: str, socket_path: str, state_db: str, *extra: str) -> list[str]:
    return [
        "--run-once",
        "--service_endpoint",
        endpoint,
        "--sts_endpoint",
        endpoint,
        "--socket",
        socket_path,
        "--state_db",
        state_db,
        "--only_logs_after",
        "2020-JAN-01",
        *extra,
    ]


# -- data -----------------------------------------------------------------------------------------------

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")


def per_severity(findings: int, kinds: int) -> dict[str, int]:
    """`findings` spread over the first `kinds` severities (so a scan has 1 + kinds streams)."""
    kinds = max(1, min(kinds, len(SEVERITIES), findings or 1))
    base, extra = divmod(findings, kinds)
    return {SEVERITIES[i]: base + (1 if i < extra else 0) for i in range(kinds) if base or i < extra}


def scans(
    repositories: Sequence[str], per_group: int, findings: int, kinds: int, start_ms: int, seed: int = 1
) -> list[Scan]:
    rng = random.Random(seed)
    made = []
    for n in range(per_group):
        for repository in repositories:
            style = "native" if n % 2 else "clair"
            counts = per_severity(findings, kinds)
            made.append(make_scan(rng, repository, f"v1.{n}-s{seed}", start_ms + n, counts, style=style))
    return made


def events_of(scan_list: Iterable[Scan]) -> int:
    return sum(scan.event_count() for scan in scan_list)


def streams_of(scan_list: Iterable[Scan]) -> int:
    return sum(len(scan.streams()) for scan in scan_list)


def load(endpoint: str, scan_list: Sequence[Scan], threads: int = 4, region: str = "us-east-1") -> None:
    """Write scans to moto fast: one PutLogEvents per stream (the Lambda makes one per event; the data is
    the same, and how it was written does not change what a reader pays)."""
    client = logs_client(
        endpoint, region, retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16
    )
    for group in sorted({scan.log_group for scan in scan_list}):
        with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
            client.create_log_group(logGroupName=group)

    def write(item: tuple[Scan, str, list[str]]) -> None:
        scan, stream, messages = item
        client.create_log_stream(logGroupName=scan.log_group, logStreamName=stream)
        events = [{"timestamp": scan.lambda_start_ms, "message": m} for m in messages]
        for i in range(0, len(events), 5000):
            client.put_log_events(
                logGroupName=scan.log_group, logStreamName=stream, logEvents=events[i : i + 5000]
            )

    work = [(scan, stream, messages) for scan in scan_list for stream, messages in scan.streams()]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, work))


@functools.cache
def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()  # one session: it loads each service model once


def logs_client(endpoint: str, region: str = "us-east-1", **config: Any) -> Any:
    """A CloudWatch Logs client for the moto server, with fake credentials (built with botocore alone:
    tests/support/moto_server.py would import moto into the benchmark's process, ~1 s of CPU)."""
    from botocore.config import Config

    return _botocore_session().create_client(
        "logs",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(proxies={}, **config),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


# -- API call accounting ------------------------------------------------------------------------------


def max_per_second(times: Sequence[float], window: float = 1.0) -> int:
    """The most requests that arrived within any window [t, t + window)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def wodle_calls(streams_per_group: Sequence[int]) -> int:
    """Wazuh's aws-s3 wodle (cloudwatchlogs), lower bound per pass: 1 STS call, two DescribeLogStreams
    listings of ⌈streams/50⌉ pages per group, at least one GetLogEvents per stream."""
    return 1 + sum(2 * -(-s // WODLE_STREAMS_PER_DESCRIBE) + s for s in streams_per_group)


def pages_needed(events: int, page: int = MOTO_PAGE) -> int:
    """FilterLogEvents pages the API must return for one group (an empty group still answers once)."""
    return max(1, -(-events // page))


_SHORT = {"DescribeLogGroups": "DLG", "FilterLogEvents": "FLE", "GetLogEvents": "GLE"}


def format_calls(calls: dict[str, int]) -> str:
    """{"FilterLogEvents": 3} → "FLE=3"."""
    return " ".join(f"{_SHORT.get(op, op)}={n}" for op, n in sorted(calls.items())) or "-"


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
