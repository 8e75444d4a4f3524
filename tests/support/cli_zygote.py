"""Run the CLI as a process forked from one that has already imported it.

The suite runs the CLI a few hundred times, and the benchmarks' --quick runs (bench/_common.py) dozens;
a new interpreter spends about 0.6 s importing boto3, botocore and the module before the CLI does
anything. The zygote imports them once; each run is then a
fork of it that does what `python -m wazuh_ecr_scan ARGS` does: its own process, environment, working
directory and standard streams, the module's `__main__` run by runpy, the interpreter's own exit (threads
joined, atexit handlers, streams flushed, exit code from SystemExit or 1 for an uncaught exception).

Protocol, one connection per run over an AF_UNIX stream socket: the client sends one JSON line
{"argv": [...], "env": {...}, "cwd": "..."} with three descriptors (stdin, stdout, stderr) attached; the
zygote answers {"pid": N}, then {"status": S, "cpu_s": C, "max_rss_kb": R} (os.wait4's) when that
process ends.

Run as `python cli_zygote.py SOCKET_PATH` (or `Zygote.start`), with PYTHONPATH leading to the module;
it stops, once the runs still going have ended, when its starter closes its stdin.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import locale
import os
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO

MAX_REQUEST = 1 << 20


def serve(path: str) -> dict | None:
    """Serve until the parent goes; in a forked child, return its request (to be run at top level)."""
    import wazuh_ecr_scan.cli  # noqa: F401  (what every run would import first)

    gc.freeze()  # the runs' collections skip (and so do not copy) every object imported here

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the loop (set_wakeup_fd)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "parent")
    waiting: dict[int, socket.socket] = {}  # pid -> the connection that asked for it
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "accept":
                connection, _ = listener.accept()
                message, fds = _receive_request(connection)
                pid = os.fork()
                if pid == 0:
                    try:
                        for other in [connection, *waiting.values()]:
                            other.close()
                        return _leave_the_server(json.loads(message), fds, selector, (wake_read, wake_write))
                    except BaseException:
                        os._exit(70)
                for fd in fds:
                    os.close(fd)
                connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                waiting[pid] = connection
            elif key.data == "child":
                _drain(wake_read)
                _reap(waiting)
            elif not os.read(sys.stdin.fileno(), 4096):  # the test session ended
                selector.unregister(sys.stdin)
                selector.unregister(listener)
                while waiting:  # the runs still going end first
                    selector.select()
                    _drain(wake_read)
                    _reap(waiting)
                return None


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.read(fd, 4096)


def _receive_request(connection: socket.socket) -> tuple[bytes, list[int]]:
    message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST, 3)
    while not message.endswith(b"\n"):
        more = connection.recv(MAX_REQUEST)
        if not more:
            break
        message += more
    return message, fds


def _leave_the_server(
    request: dict, fds: list[int], selector: selectors.BaseSelector, wake: tuple[int, int]
) -> dict:
    """In the forked child: drop the server's signal handling, sockets and pipes; take the run's streams,
    environment and working directory."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for key in list(selector.get_map().values()):
        if isinstance(key.fileobj, socket.socket):
            key.fileobj.close()
    selector.close()
    for fd in wake:
        os.close(fd)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    return request


def run_as_main(request: dict) -> None:
    """What `python -m wazuh_ecr_scan ARGV` does once its interpreter is up: run at the top level, so that
    SystemExit and uncaught exceptions end the process as they would end that one."""
    sys.argv = ["-m", *request["argv"]]
    sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
    runpy.run_module("wazuh_ecr_scan", run_name="__main__", alter_sys=True)


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = waiting.pop(pid, None)
        if connection is not None:
            cpu_s = usage.ru_utime + usage.ru_stime
            ended = {"status": status, "cpu_s": cpu_s, "max_rss_kb": usage.ru_maxrss}
            with contextlib.suppress(OSError):  # the client gave up on it (a timeout)
                connection.sendall(json.dumps(ended).encode() + b"\n")
            connection.close()


# -- the test session's side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ended:
    """How a forked run ended, and what it used (the CPU time and peak RSS of that process alone)."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float


class Zygote:
    """A client of the zygote at `path`; `Zygote.start` starts one (stopped by `close`)."""

    def __init__(self, path: str, process: subprocess.Popen | None = None) -> None:
        self.path = path
        self.process = process

    @classmethod
    def start(cls, env: dict[str, str], cwd: str) -> Zygote:
        """A new zygote whose module comes from `env`'s PYTHONPATH."""
        folder = tempfile.mkdtemp(prefix="ecr-zygote-", dir="/tmp")  # AF_UNIX: short paths
        path = os.path.join(folder, "zygote")
        process = subprocess.Popen(
            [sys.executable, __file__, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd
        )
        assert process.stdout is not None
        if process.stdout.readline() != b"ready\n":
            raise RuntimeError(f"the CLI zygote did not start (exit {process.wait()})")
        return cls(path, process)

    def run(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of `python -m wazuh_ecr_scan *argv`, as subprocess.run gives them
        (text=True); subprocess.TimeoutExpired after `timeout` s, the process killed."""
        with (
            open(os.devnull, "rb") as stdin,
            tempfile.TemporaryFile() as stdout,
            tempfile.TemporaryFile() as stderr,
        ):
            ended = self.run_with(argv, env, cwd, (stdin.fileno(), stdout.fileno(), stderr.fileno()), timeout)
            return ended.returncode, _text(stdout), _text(stderr)

    def run_with(
        self, argv: list[str], env: dict[str, str], cwd: str, streams: tuple[int, int, int], timeout: float
    ) -> Ended:
        """`python -m wazuh_ecr_scan *argv` with `streams` as its stdin, stdout and stderr, to its end."""
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
        began = time.perf_counter()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self.path)
            socket.send_fds(connection, [request], list(streams))
            answers = connection.makefile("rb")
            pid = json.loads(answers.readline())["pid"]
            connection.settimeout(timeout)
            try:
                ended = json.loads(answers.readline())
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["python", "-m", "wazuh_ecr_scan", *argv], timeout) from None
        return Ended(
            os.waitstatus_to_exitcode(ended["status"]),
            time.perf_counter() - began,
            ended["cpu_s"],
            ended["max_rss_kb"] / 1024,
        )

    def close(self) -> None:
        """Stop the zygote this client started (it waits for the runs still going)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(60)
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


def _text(file: IO[bytes]) -> str:
    """As subprocess.run(text=True) decodes: the locale's encoding, universal newlines."""
    file.seek(0)
    return io.TextIOWrapper(file, encoding=locale.getpreferredencoding(False)).read()


if __name__ == "__main__":
    forked = serve(sys.argv[1])
    if forked is not None:
        run_as_main(forked)
