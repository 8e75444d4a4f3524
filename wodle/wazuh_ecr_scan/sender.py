"""Delivery: AF_UNIX datagrams to analysisd (one socket for the run), or JSON lines on stdout."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import sys
from typing import Protocol, TextIO

from wazuh_ecr_scan.encode import EVENT_HEADER, MAX_DATAGRAM, encode_status
from wazuh_ecr_scan.errors import AnalysisdUnavailable
from wazuh_ecr_scan.logs import NAME, SECRET_MASK

SEND_TIMEOUT_S = 30.0
_SNDBUF = 4 * (MAX_DATAGRAM + 1024)
# analysisd restarting: the socket file is recreated; one reconnect is worth a try.
_RECONNECT_ERRNOS = {errno.ECONNREFUSED, errno.ENOENT, errno.ENOTCONN, errno.EPIPE}


class Sender(Protocol):
    def send(self, datagram: bytes) -> None: ...

    def send_status(self, line: str) -> None: ...

    def flush(self) -> None:
        """Everything sent so far has left the process (called before state is committed)."""

    def close(self) -> None: ...


class SocketSender:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sent = 0
        self._sock: socket.socket | None = None
        self._connect()

    def send(self, datagram: bytes) -> None:
        try:
            self._sock_or_connect().send(datagram)
        except OSError as exc:
            if exc.errno not in _RECONNECT_ERRNOS:
                raise self._unavailable(exc) from exc
            self._reconnect_and_send(datagram)
        self.sent += 1

    def send_status(self, line: str) -> None:
        self.send(encode_status(line))

    def flush(self) -> None:
        pass  # a datagram is in analysisd's queue once send() returned

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _reconnect_and_send(self, datagram: bytes) -> None:
        self.close()
        self._connect()
        try:
            self._sock_or_connect().send(datagram)
        except OSError as exc:
            raise self._unavailable(exc) from exc

    def _sock_or_connect(self) -> socket.socket:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        return self._sock

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SNDBUF)
            sock.settimeout(SEND_TIMEOUT_S)
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise self._unavailable(exc) from exc
        self._sock = sock

    def _unavailable(self, exc: OSError) -> AnalysisdUnavailable:
        reason = exc.strerror or exc.__class__.__name__
        if isinstance(exc, TimeoutError):
            reason = f"no room for {SEND_TIMEOUT_S:.0f}s (analysisd not reading)"
        return AnalysisdUnavailable(
            f"cannot send to analysisd socket {self.path}: {reason}. Is wazuh-analysisd running?"
        )


class StdoutSender:
    """One JSON event per line, without the analysisd header; status lines stay on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.sent = 0

    def send(self, datagram: bytes) -> None:
        try:
            self.stream.write(datagram[len(EVENT_HEADER) :].decode("ascii") + "\n")
        except BrokenPipeError as exc:
            raise AnalysisdUnavailable("standard output was closed by its reader") from exc
        self.sent += 1

    def send_status(self, line: str) -> None:
        pass

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError as exc:
            raise AnalysisdUnavailable("standard output was closed by its reader") from exc

    def close(self) -> None:
        self.flush()


# analysisd keeps a rule's <description> unexpanded once the expansion would reach OS_COMMENT_MAX
# (1024 bytes, eventinfo.c): the health rules wrap $(ecr_scan.message) in about 30 bytes of text.
MAX_STATUS_MESSAGE_BYTES = 900


def status_line(level: str, message: str) -> str:
    """`wazuh-ecr-scan: LEVEL: message`, the message cut short enough for the alert to show it."""
    raw = message.encode("utf-8")
    if len(raw) > MAX_STATUS_MESSAGE_BYTES:
        message = raw[:MAX_STATUS_MESSAGE_BYTES].decode("utf-8", "ignore") + "..."
    return f"{NAME}: {level}: {message}"


MAX_PENDING_STATUS = 50


class StatusRelay(logging.Handler):
    """The one way log lines become `wazuh-ecr-scan: LEVEL: message` status lines in analysisd.

    While a run's socket sender is attached, INFO and above go out as they are logged. Before it exists
    (a configuration or --log_file error) and after it is closed (a state lock, credentials or internal
    error on the way out), WARNING and ERROR lines wait here; `deliver_pending` sends them through a socket
    of their own when the run ends, whatever its exit path.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sender: Sender | None = None
        self.pending: list[str] = []
        self.addFilter(SECRET_MASK)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "local_only", False):
            return
        if self.sender is None:
            if record.levelno >= logging.WARNING and len(self.pending) < MAX_PENDING_STATUS:
                self.pending.append(status_line(record.levelname, record.getMessage()))
            return
        # A failure here is reported by whoever sends the next event.
        with contextlib.suppress(AnalysisdUnavailable):
            self.sender.send_status(status_line(record.levelname, record.getMessage()))

    def attach(self, sender: Sender) -> None:
        self.sender = sender
        pending, self.pending = self.pending, []
        for line in pending:
            with contextlib.suppress(AnalysisdUnavailable):
                sender.send_status(line)

    def detach(self) -> None:
        self.sender = None

    def deliver_pending(self, socket_path: str | None) -> None:
        """Send the lines still waiting, if the socket is reachable; they are in the log file anyway."""
        pending, self.pending = self.pending, []
        if not pending or not socket_path:
            return
        try:
            sender = SocketSender(socket_path)
        except AnalysisdUnavailable:
            return
        try:
            for line in pending:
                sender.send_status(line)
        except AnalysisdUnavailable:
            pass
        finally:
            sender.close()


STATUS = StatusRelay()
