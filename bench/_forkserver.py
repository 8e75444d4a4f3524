"""--quick's fork servers: a process that imported what its children need once, then forks one child per
connection on an AF_UNIX stream socket, so a benchmark gets a moto server or a CLI run without a new
interpreter importing boto3, moto or the module again (0.5-0.8 s of CPU each time).

    python bench/_forkserver.py cli|moto SOCKET_PATH

Prints `ready` as soon as it listens (it imports after that: a connection made meanwhile waits in the
backlog); exits when its standard input closes.

cli: every line on a connection is a request {"args": [...], "stderr": PATH}; a child runs
`python -m wazuh_ecr_scan ARGS` there (the benchmarks' environment, stdout to /dev/null, stderr to PATH)
and the answer is a line of JSON figures, as bench/_measure.py writes them.
moto: a moto server on 127.0.0.1 (tests/support/moto_server.py) with empty backends; its URL is the
answer, and it stops when the connection closes.

The smoke test starts one of each for all the benchmarks it runs; a benchmark run alone with --quick
starts its own.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import runpy
import selectors
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _measure import figures

ROOT = Path(__file__).resolve().parents[1]


def serve(path: str, prepare: Callable[[], None], handle: Callable[[socket.socket], None]) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    prepare()
    gc.freeze()  # the children's collections skip (and so do not copy) every object imported here
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    events.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in events.select():
            if key.fileobj is sys.stdin:  # the starter closed it (or wrote, which it never does): stop
                os.unlink(path)
                _reap(block=True)  # so the starter's wait accounts for every child's CPU time
                return
            connection, _ = listener.accept()
            if os.fork() == 0:
                events.close()
                listener.close()
                handle(connection)
                os._exit(0)
            connection.close()
        _reap(block=False)


def _reap(block: bool) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, 0 if block else os.WNOHANG)[0]:
            pass


# -- the CLI ----------------------------------------------------------------------------------------------


def prepare_cli() -> None:
    """The environment, folder and sys.path of `python -m wazuh_ecr_scan` as bench/_common.py runs it."""
    beyond = sys.path[1:]  # past this script's folder, before _common puts its folders in front
    from _common import cli_env

    os.environ.clear()
    os.environ.update(cli_env())
    os.chdir(ROOT)
    sys.path[:] = [str(ROOT), str(ROOT / "wodle"), *beyond]  # `-m` puts the folder first, then PYTHONPATH
    import wazuh_ecr_scan.cli  # noqa: F401  (what the children no longer import)


def handle_cli(connection: socket.socket) -> None:
    stream = connection.makefile("rw")
    for line in stream:
        request = json.loads(line)
        began = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            run_cli_here(request["args"], request["stderr"])  # its SystemExit ends that process
        stream.write(json.dumps(figures(pid, began)) + "\n")
        stream.flush()


def run_cli_here(args: list[str], stderr_path: str) -> None:
    """`python -m wazuh_ecr_scan ARGS` in this (forked) process."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_TRUNC), 2)
    sys.argv = ["wazuh_ecr_scan", *args]
    runpy.run_module("wazuh_ecr_scan", run_name="__main__", alter_sys=True)
    sys.exit(0)


# -- moto -------------------------------------------------------------------------------------------------


def prepare_moto() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "support"))
    import moto_server  # noqa: F401
    from moto.backends import get_backend

    for service in ("logs", "sts"):  # what a server would otherwise import at its first request
        get_backend(service)


def handle_moto(connection: socket.socket) -> None:
    from moto_server import MotoServer  # imported by prepare_moto

    with MotoServer() as server:
        connection.sendall(f"{server.url}\n".encode())
        while connection.recv(4096):
            pass


def main() -> None:
    kind, path = sys.argv[1:3]
    if kind == "cli":
        serve(path, prepare_cli, handle_cli)
    else:
        serve(path, prepare_moto, handle_moto)


if __name__ == "__main__":
    main()
