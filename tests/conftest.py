"""Shared fixtures: a moto server over HTTP, a bound analysisd-like datagram socket, and the real CLI.

Two tiers (markers declared in setup.cfg): tests that use moto, the analysisd-like receiver, or run a
subprocess (the CLI, the launcher) are marked `integration` here, at collection; the rest run in process
in a few seconds: `python -m pytest -m "not integration"`. `python -m pytest` runs both.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where PYTHONDONTWRITEBYTECODE is set, pytest would rewrite and compile every test module on every run
# (3 s of the fast tier): it keeps them in __pycache__ (gitignored) all the same.
sys.dont_write_bytecode = False
sys.path.insert(0, str(ROOT / "wodle"))  # this checkout's module, whatever else is installed
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "tests"))

from cli_zygote import Zygote  # noqa: E402
from moto_server import MotoServer, logs_client, reset  # noqa: E402

# A test using a fixture named like these (directly or through another fixture: `logs`, `cli_args`,
# `proxy`, ...) talks to a moto server or the analysisd-like receiver.
INTEGRATION_FIXTURE_WORDS = ("moto", "receiver")
# A test whose code, or a function of its module that it calls, names one of these starts a process
# (the CLI, the launcher) or a moto server.
INTEGRATION_NAMES = frozenset({"run_cli", "run_cli_fresh", "start_cli", "subprocess", "Popen", "MotoServer"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_an_integration_fixture(item) or _starts_a_process(item):
            item.add_marker(pytest.mark.integration)


def _uses_an_integration_fixture(item: pytest.Item) -> bool:
    return any(
        word in name for name in getattr(item, "fixturenames", ()) for word in INTEGRATION_FIXTURE_WORDS
    )


def _starts_a_process(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    if function is None:
        return False
    function = getattr(getattr(function, "hypothesis", None), "inner_test", function)
    return _names_any(inspect.unwrap(function), INTEGRATION_NAMES, set())


def _names_any(function: object, names: frozenset[str], seen: set[int]) -> bool:
    """Whether `function`, or a function of the same module it names, names one of `names`."""
    code = getattr(function, "__code__", None)
    if code is None or id(code) in seen:
        return False
    seen.add(id(code))
    module_globals = getattr(function, "__globals__", {})
    for name in _all_names(code):
        if name in names:
            return True
        helper = module_globals.get(name)
        if getattr(helper, "__module__", None) == getattr(function, "__module__", "") and _names_any(
            helper, names, seen
        ):
            return True
    return False


def _all_names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _all_names(const)


EVENT_HEADER = b"1:Wazuh-AWS:"
STATUS_HEADER = b"1:wazuh-ecr-scan:"
SYNC_HEADER = b"\0receiver-sync:"  # the receiver's own marker (see Receiver.settle), never the module's


class QuietSender:
    """For in-process tests of the poller: status lines, flushes and closing do nothing; a subclass's
    `send` says what becomes of each event datagram."""

    def send_status(self, line: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Received:
    # Events made from CloudWatch log events (each has an event id). The finding lifecycle (on by
    # default) also makes events no log event carries: resolved findings and scan_changes, in `made`;
    # `every` holds both kinds in arrival order.
    events: list[dict] = field(default_factory=list)
    made: list[dict] = field(default_factory=list)
    every: list[dict] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    status: list[str] = field(default_factory=list)

    def keys(self) -> list[tuple[str, str]]:
        """(stream, event id) of every event received, duplicates kept."""
        return [(e["aws"]["log_info"]["log_stream"], e["aws"]["log_info"]["event_id"]) for e in self.events]


class Receiver:
    """A bound AF_UNIX datagram socket, like analysisd's queue, drained by a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.received = Received()
        self.paused = threading.Event()
        self.pause_after: int | None = None  # stop reading after this many datagrams (a stalled analysisd)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._marks = itertools.count()
        self._seen_marks: set[bytes] = set()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
            try:
                data = self.sock.recv(1 << 17)
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if data.startswith(SYNC_HEADER):
                    self._seen_marks.add(data)
                    self._synced.notify_all()
                    continue
                if self.pause_after is not None and len(self.received.raw) + 1 >= self.pause_after:
                    self.paused.set()
                self.received.raw.append(data)
                if data.startswith(EVENT_HEADER):
                    event = json.loads(data[len(EVENT_HEADER) :])
                    self.received.every.append(event)
                    read = "event_id" in event.get("aws", {}).get("log_info", {})
                    (self.received.events if read else self.received.made).append(event)
                elif data.startswith(STATUS_HEADER):
                    self.received.status.append(data[len(STATUS_HEADER) :].decode())

    def settle(self, timeout: float = 60) -> Received:
        """What was received once every datagram sent before this call has been read: a marker sent now
        is queued behind them (a datagram socket's queue keeps their order), so its arrival is the
        condition waited on. A stalled receiver (`paused`) must be resumed first."""
        token = SYNC_HEADER + str(next(self._marks)).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.settimeout(timeout)
            sender.sendto(token, self.path)
        with self._synced:
            if not self._synced.wait_for(lambda: token in self._seen_marks, timeout):
                raise AssertionError(f"receiver: the marker datagram was not read within {timeout}s")
            self._seen_marks.discard(token)
            return self.received

    def wait_until(self, condition: Callable[[Received], bool], timeout: float = 60) -> Received:
        """Wait (polling) until `condition(received so far)` holds; fail the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if condition(self.received):
                    return self.received
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"receiver: condition not met within {timeout}s: {condition.__doc__ or ''}"
                )
            time.sleep(0.02)

    def take(self) -> Received:
        received = self.settle()
        with self._lock:
            self.received = Received()
        return received

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with MotoServer() as server:
        yield server.url


@pytest.fixture
def moto(moto_endpoint: str) -> Iterator[str]:
    reset(moto_endpoint)
    yield moto_endpoint


@pytest.fixture
def logs(moto: str):
    return logs_client(moto)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short path: AF_UNIX socket paths are limited to 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="ecr-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
def receiver(short_dir: Path) -> Iterator[Receiver]:
    r = Receiver(str(short_dir / "queue"))
    yield r
    r.close()


def cli_env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE dropped: the suite starts a few hundred CLI processes, and each would
    # compile the module again (0.1 s) instead of reading its __pycache__ (gitignored).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        AWS_ACCESS_KEY_ID="AKIAFAKEFAKEFAKE0001",
        AWS_SECRET_ACCESS_KEY="fake/secret/Key+for+tests0000000000000000",
        AWS_SESSION_TOKEN="FakeSessionTokenForTests==",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        PYTHONPATH=str(ROOT / "wodle"),
    )
    return env


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, timeout: float = 120) -> CliResult:
    """`python -m wazuh_ecr_scan *args` to its end, as a process forked from a zygote that has imported
    the module already (tests/support/cli_zygote.py): a new interpreter would spend 0.6 s importing. With
    ECR_SCAN_TESTS_FRESH_INTERPRETER=1, each run is a new interpreter."""
    if os.environ.get("ECR_SCAN_TESTS_FRESH_INTERPRETER") == "1":
        return run_cli_fresh(*args, timeout=timeout)
    return CliResult(*_zygote().run(list(args), cli_env(), str(ROOT), timeout))


def run_cli_fresh(*args: str, timeout: float = 120) -> CliResult:
    """`python -m wazuh_ecr_scan *args` in a new interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "wazuh_ecr_scan", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        cwd=ROOT,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


_zygotes: list[Zygote] = []


def _zygote() -> Zygote:
    if not _zygotes:
        _zygotes.append(Zygote.start(cli_env(), str(ROOT)))
    return _zygotes[0]


def pytest_sessionfinish() -> None:
    for zygote in _zygotes:
        zygote.close()


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "wazuh_ecr_scan", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
    )


@pytest.fixture
def cli_args(moto: str, receiver: Receiver, short_dir: Path):
    """The flags every live-mode integration run needs, pointing at moto, the receiver and a state file."""

    def build(*extra: str, endpoint: str | None = None) -> list[str]:
        return [
            "--run-once",
            "--service_endpoint",
            endpoint or moto,
            "--sts_endpoint",
            moto,  # the account the dummy credentials resolve to (moto: 123456789012)
            "--socket",
            receiver.path,
            "--state_db",
            str(short_dir / "state.db"),
            "--only_logs_after",
            "2020-JAN-01",
            "--max_attempts",
            "3",
            # The request-rate cap (4 per second by default; tested on its own in test_ratelimit.py) would
            # only make a test of anything else wait.
            "--max_rate",
            "100",
            *extra,
        ]

    return build
