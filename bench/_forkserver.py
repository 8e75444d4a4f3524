"""--quick's moto fork server: a process that imported moto once, then forks one child per connection on
an AF_UNIX stream socket, so a benchmark gets a moto server without a new interpreter importing moto again
(about 1 s of CPU each time). (Its CLI runs are forked likewise, by tests/support/cli_zygote.py.)

    python bench/_forkserver.py SOCKET_PATH

Prints `ready` as soon as it listens (it imports after that: a connection made meanwhile waits in the
backlog); exits when its standard input closes. Each child is a moto server on 127.0.0.1
(tests/support/moto_server.py) with empty backends; its URL is the answer, and it stops when the
connection closes.

The smoke test starts one for all the benchmarks it runs; a benchmark run alone with --quick starts its own.
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import socket
import sys
from collections.abc import Callable
from pathlib import Path

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
    serve(sys.argv[1], prepare_moto, handle_moto)


if __name__ == "__main__":
    main()
