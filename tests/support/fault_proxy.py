"""A loopback HTTP proxy that puts AWS-like faults and page boundaries in front of moto's server.

moto never throttles, never fails, and never returns partial or empty pages (see
``/work/shared/cloudwatch-api-facts.md``). ``FaultProxy`` sits between a boto3 client and a moto server
and adds, per AWS operation, what real CloudWatch Logs does::

    with MotoServer() as moto, FaultProxy(moto.url, seed=7) as proxy:
        proxy.throttle("FilterLogEvents", calls=[1, 3])        # 1st and 3rd FilterLogEvents throttled
        proxy.unavailable("DescribeLogGroups", share=0.2)      # 20 % answered 503
        proxy.page_split("FilterLogEvents", max_events=4, empty_pages=1)
        logs = logs_client(proxy.url, retries={"mode": "standard", "total_max_attempts": 5})
        ...
        assert proxy.count("FilterLogEvents") == 7 and proxy.fault_count("FilterLogEvents") == 2

Operations are named as in the API (``FilterLogEvents``); the JSON protocol's ``X-Amz-Target``
(``Logs_20140328.FilterLogEvents``) and the query protocol's form field ``Action=`` (STS) are both read.
Rules accept the short name, the full target, a collection of names, or ``"*"``/``None`` for all.

Faults (one rule fires per request; rules are tried in the order they were added):

``throttle``
    HTTP 400, ``x-amzn-ErrorType: ThrottlingException``, body
    ``{"__type":"ThrottlingException","message":"Rate exceeded"}`` (XML ``Throttling`` for query APIs).
``unavailable``
    HTTP 503 ``ServiceUnavailableException`` or, with ``status=500``, HTTP 500 ``InternalFailure``.
``denied``
    HTTP 400, ``x-amzn-ErrorType: AccessDeniedException``, body ``{"__type":"AccessDeniedException",
    "message":"User: arn:aws:iam::123456789012:user/wazuh is not authorized to perform: logs:<Operation>"}``
    (XML ``AccessDenied`` for query APIs): an IAM policy that lacks the action. Never retried by botocore.
``reset``
    The request is read, then the connection is closed with ``SO_LINGER`` 0: the client gets ECONNRESET
    and no response. ``forward=True`` first sends the request upstream (the "did my write happen?" case).
``slow``
    The request is forwarded, then the answer is held back ``delay`` seconds (capped at
    ``MAX_SLOW_DELAY``; cut short by ``stop()``) and sent if the client is still there.

A rule fires on the explicit 1-based ``calls`` of its operation(s), counted from when the rule was
added (every matching request counts, even one another rule answered), or with probability ``share``
drawn from the proxy's seeded ``random.Random``; ``limit`` caps how often it fires. With neither
``calls`` nor ``share`` a rule fires every time.

``latency`` adds a fixed delay to every request (AWS-like ~50 ms round trips for benchmarks).

``page_split`` re-cuts paginated responses the way AWS may: at most ``max_events`` items a page, with
``empty_pages`` empty pages (no items, but a token) between the pieces of one upstream page and
``leading_empty_pages`` before the first piece. Tokens handed to the client are proxy-minted and opaque
(``fpx:...``); each maps to (upstream token, snapshot of the upstream page, offset, empty pages left),
so re-sending a token yields the same continuation. Only the request that has to fetch the next upstream
page goes to moto, with the token in the JSON body replaced by the upstream token. Supported:
``FilterLogEvents`` (finished when ``nextToken`` is absent), ``GetLogEvents`` (finished when
``nextForwardToken`` equals the token sent; ``nextBackwardToken`` is the upstream one, unsplit),
``DescribeLogGroups``, ``DescribeLogStreams``.

Headers are forwarded unchanged, the original ``Host`` included, except hop-by-hop headers; the body is
forwarded byte for byte, so the SigV4 signature stays valid. Only ``page_split`` continuation requests are
re-serialised (new body, new ``Content-Length``), which would break the signature; moto does not check
signatures unless its ``INITIAL_NO_AUTH_ACTION_COUNT`` IAM mode is switched on, so that is harmless here.

The proxy binds ``127.0.0.1`` only, speaks HTTP/1.1 with keep-alive (botocore reuses connections), uses
one upstream ``http.client`` connection per client connection, and ``stop()`` closes the listening socket
and every client connection and joins every handler thread.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import random
import socket
import socketserver
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MAX_SLOW_DELAY",
    "FaultProxy",
    "FaultRule",
    "PageSplit",
    "RequestRecord",
    "operation_name",
]

MAX_SLOW_DELAY = 30.0
FAULT_KINDS = ("throttle", "unavailable", "denied", "reset", "slow")

_LOOPBACK = "127.0.0.1"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",  # recomputed for the body actually sent
    }
)
_JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def operation_name(target_or_name: str) -> str:
    """``Logs_20140328.FilterLogEvents`` → ``FilterLogEvents``; a short name is returned unchanged."""
    return target_or_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class RequestRecord:
    """One request the proxy answered (or reset): for assertions and benchmarks."""

    operation: str
    status: int | None  # None: connection reset, no response
    duration: float  # seconds from request read to response ready (latency, upstream, slow delay)
    fault: str | None  # fault kind injected, or None
    upstream: bool  # whether the request (or a rewritten one) reached the upstream
    started: float  # time.monotonic() when the request had been read


@dataclass
class FaultRule:
    """A fault rule; returned by ``FaultProxy.add_fault`` and its shortcuts. Counters are live."""

    kind: str
    operations: frozenset[str] | None  # None: every operation
    share: float | None = None
    calls: frozenset[int] | None = None
    limit: int | None = None
    status: int | None = None  # unavailable: 503 or 500
    delay: float = 0.0  # slow
    forward: bool = False  # reset: send upstream before resetting
    seen: int = 0  # matching requests since the rule was added
    injected: int = 0  # times it fired

    def matches(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


@dataclass(frozen=True)
class PageSplit:
    max_events: int
    empty_pages: int = 0
    leading_empty_pages: int = 0


@dataclass(frozen=True)
class _PageSpec:
    items: str
    request_token: str
    response_token: str
    forward_style: bool  # GetLogEvents: the end is "same token back", not "no token"


_PAGE_SPECS: dict[str, _PageSpec] = {
    "FilterLogEvents": _PageSpec("events", "nextToken", "nextToken", False),
    "GetLogEvents": _PageSpec("events", "nextToken", "nextForwardToken", True),
    "DescribeLogGroups": _PageSpec("logGroups", "nextToken", "nextToken", False),
    "DescribeLogStreams": _PageSpec("logStreams", "nextToken", "nextToken", False),
}


@dataclass(frozen=True)
class _Cursor:
    upstream_token: str | None  # token to send upstream to fetch the page
    page_id: int | None  # snapshot of that upstream page, once fetched
    offset: int
    empties: int  # empty pages still to serve before the next piece


@dataclass
class _Page:
    items: list[Any]
    upstream_next: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _ConnectionAborted(Exception):
    """Raised inside a handler after the connection was reset on purpose."""


class _UpstreamError(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.handler_threads: set[threading.Thread] = set()
        self.connections: set[socket.socket] = set()
        self.tracking_lock = threading.Lock()
        super().__init__((_LOOPBACK, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup; not wanted on an offline box.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_handler,
            args=(request, client_address),
            name=f"fault-proxy-{client_address[1]}",
            daemon=True,
        )
        with self.tracking_lock:
            self.handler_threads.add(thread)
            self.connections.add(request)
        thread.start()

    def _run_handler(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self.tracking_lock:
                self.connections.discard(request)
                self.handler_threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients going away mid-response is routine here; keep the test output clean.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _ConnectionAborted:
            self.close_connection = True
        except OSError:  # client vanished while we wrote the answer
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # -- request handling -------------------------------------------------------------------------
    def _serve(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        operation, query_protocol = _identify(self.headers, body, self.command, self.path)
        started = time.monotonic()
        rule = proxy._begin_request(operation)
        kind = rule.kind if rule is not None else None
        upstream_used = False

        if kind == "reset":
            if rule is not None and rule.forward:
                with contextlib.suppress(_UpstreamError):
                    self._forward(body, self._forward_headers(), self.path)
            proxy._record(operation, None, started, kind, bool(rule and rule.forward))
            self._abort()
            raise _ConnectionAborted

        proxy._sleep(proxy.latency)
        if kind in ("throttle", "unavailable", "denied"):
            assert rule is not None
            response = _error_response(kind, rule.status, query_protocol, operation)
        else:
            response, upstream_used = self._answer(operation, body)
            if kind == "slow":
                assert rule is not None
                proxy._sleep(min(rule.delay, MAX_SLOW_DELAY))
        # Logged before the answer goes out, so a client that got its answer always finds it in the log.
        proxy._record(operation, response.status, started, kind, upstream_used)
        self._send(response)

    def _answer(self, operation: str, body: bytes) -> tuple[_Response, bool]:
        proxy = self.server.proxy
        split = proxy._split_for(operation)
        try:
            if split is not None and self.command == "POST":
                return proxy._serve_split(operation, split, body, self._fetch_json)
            return self._forward(body, self._forward_headers(), self.path), True
        except _UpstreamError as exc:
            payload = json.dumps({"__type": "BadGateway", "message": str(exc)}).encode()
            return _Response(502, "Bad Gateway", _synth_headers(_JSON_CONTENT_TYPE), payload), False

    def _fetch_json(self, body: bytes) -> _Response:
        return self._forward(body, self._forward_headers(), self.path)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _forward_headers(self) -> list[tuple[str, str]]:
        listed = {
            token.strip().lower() for token in self.headers.get("Connection", "").split(",") if token.strip()
        }
        return [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() not in listed
        ]

    def _forward(self, body: bytes, headers: list[tuple[str, str]], path: str) -> _Response:
        proxy = self.server.proxy
        for attempt in range(2):
            fresh = self._upstream is None
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    proxy._upstream_host, proxy._upstream_port, timeout=proxy.upstream_timeout
                )
            conn = self._upstream
            try:
                conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                upstream_response = conn.getresponse()
                payload = upstream_response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive upstream connection may have been closed by the server meanwhile.
                conn.close()
                self._upstream = None
                if fresh or attempt:
                    raise _UpstreamError(f"upstream connection failed: {exc!r}") from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._upstream = None
                raise _UpstreamError(f"upstream request failed: {exc!r}") from exc
            if upstream_response.will_close:
                conn.close()
                self._upstream = None
            response_headers = [
                (name, value)
                for name, value in upstream_response.getheaders()
                if name.lower() not in _HOP_BY_HOP
            ]
            return _Response(upstream_response.status, upstream_response.reason, response_headers, payload)
        raise AssertionError("unreachable")

    def _send(self, response: _Response) -> None:
        self.send_response_only(response.status, response.reason)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:  # the client asked for it (Connection: close, HTTP/1.0)
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    def _abort(self) -> None:
        """Close the client connection with RST (SO_LINGER on, timeout 0) and no response."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket's file descriptor is closed only when the makefile() objects are closed too.
        for stream in (self.wfile, self.rfile):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        sock.close()


def _identify(headers: Any, body: bytes, method: str, path: str) -> tuple[str, bool]:
    """(operation, uses the query protocol) of a request."""
    target = headers.get("X-Amz-Target")
    if target:
        return operation_name(target), False
    if "application/x-www-form-urlencoded" in headers.get("Content-Type", ""):
        try:
            action = parse_qs(body.decode("utf-8"), keep_blank_values=True).get("Action")
        except UnicodeDecodeError:
            action = None
        if action:
            return action[0], True
    return f"{method} {urlsplit(path).path}", False


def _synth_headers(content_type: str) -> list[tuple[str, str]]:
    return [
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("Content-Type", content_type),
        ("Date", formatdate(usegmt=True)),
    ]


_JSON_ERRORS = {
    ("throttle", 400): ("ThrottlingException", "Rate exceeded", "Bad Request"),
    ("unavailable", 503): ("ServiceUnavailableException", "Service Unavailable", "Service Unavailable"),
    ("unavailable", 500): ("InternalFailure", "Internal Failure", "Internal Server Error"),
    ("denied", 400): (
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/wazuh is not authorized to perform: {action}",
        "Bad Request",
    ),
}
_QUERY_CODES = {
    "ThrottlingException": "Throttling",
    "ServiceUnavailableException": "ServiceUnavailable",
    "AccessDeniedException": "AccessDenied",
}


def _error_response(kind: str, status: int | None, query_protocol: bool, operation: str = "") -> _Response:
    status = 400 if kind in ("throttle", "denied") else (status or 503)
    code, message, reason = _JSON_ERRORS[(kind, status)]
    service = "sts" if query_protocol else "logs"
    message = message.format(action=f"{service}:{operation}")
    if query_protocol:
        code = _QUERY_CODES.get(code, code)
        fault_type = "Sender" if status < 500 else "Receiver"
        headers = _synth_headers("text/xml")
        request_id = headers[0][1]
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return _Response(status, reason, headers, body)
    headers = [*_synth_headers(_JSON_CONTENT_TYPE), ("x-amzn-ErrorType", code)]
    body = json.dumps({"__type": code, "message": message}, separators=(",", ":")).encode()
    return _Response(status, reason, headers, body)


def _normalise_operations(operation: str | Iterable[str] | None) -> frozenset[str] | None:
    if operation is None or operation == "*":
        return None
    names = [operation] if isinstance(operation, str) else list(operation)
    if "*" in names:
        return None
    return frozenset(operation_name(name) for name in names)


class FaultProxy:
    """Threaded loopback HTTP proxy in front of ``upstream`` (e.g. a moto server URL); see module doc."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        latency: float = 0.0,
        upstream_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.latency = latency
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._splits: dict[str, PageSplit] = {}
        self._received: Counter[str] = Counter()
        self._faults: Counter[tuple[str, str]] = Counter()
        self._requests: list[RequestRecord] = []
        self._cursors: dict[str, _Cursor] = {}
        self._pages: dict[int, _Page] = {}
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FaultProxy is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        self._stopping.clear()
        self._server = _Server(self)
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, drop every client connection and join all threads (each within ``timeout``)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # ends latency/slow sleeps
        server.shutdown()
        server.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
            self._serve_thread = None
        with server.tracking_lock:
            connections = list(server.connections)
            threads = list(server.handler_threads)
        for sock in connections:  # idle keep-alive handlers are blocked in readline()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise RuntimeError(f"FaultProxy handler threads did not finish: {alive}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- fault configuration --------------------------------------------------------------------------
    def add_fault(
        self,
        kind: str,
        operation: str | Iterable[str] | None = "*",
        *,
        share: float | None = None,
        calls: Collection[int] | None = None,
        limit: int | None = None,
        status: int | None = None,
        delay: float = 0.0,
        forward: bool = False,
    ) -> FaultRule:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if share is not None and calls is not None:
            raise ValueError("give either share or calls, not both")
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within 0.0..1.0, got {share}")
        if calls is not None and any(int(n) < 1 for n in calls):
            raise ValueError("calls are 1-based request numbers")
        if kind == "unavailable" and status not in (None, 500, 503):
            raise ValueError("unavailable supports status 503 or 500")
        if kind == "slow" and not 0.0 < delay <= MAX_SLOW_DELAY:
            raise ValueError(f"slow needs 0 < delay <= {MAX_SLOW_DELAY}")
        rule = FaultRule(
            kind=kind,
            operations=_normalise_operations(operation),
            share=share,
            calls=frozenset(int(n) for n in calls) if calls is not None else None,
            limit=limit,
            status=(status or 503) if kind == "unavailable" else None,
            delay=delay,
            forward=forward,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def throttle(self, operation: str | Iterable[str] | None = "*", **when: Any) -> FaultRule:
        """HTTP 400 ThrottlingException. ``when``: share=, calls=, limit=."""
        return self.add_fault("throttle", operation, **when)

    def unavailable(
        self, operation: str | Iterable[str] | None = "*", *, status: int = 503, **when: Any
    ) -> FaultRule:
        """HTTP 503 ServiceUnavailableException, or with ``status=500`` HTTP 500 InternalFailure."""
        return self.add_fault("unavailable", operation, status=status, **when)

    def access_denied(self, operation: str | Iterable[str] | None = "*", **when: Any) -> FaultRule:
        """HTTP 400 AccessDeniedException (``AccessDenied`` for query APIs). ``when``: share=, calls=."""
        return self.add_fault("denied", operation, **when)

    def connection_reset(
        self, operation: str | Iterable[str] | None = "*", *, forward: bool = False, **when: Any
    ) -> FaultRule:
        """Reset the connection (ECONNRESET, no response); ``forward=True`` applies the request first."""
        return self.add_fault("reset", operation, forward=forward, **when)

    def slow(self, operation: str | Iterable[str] | None = "*", *, delay: float, **when: Any) -> FaultRule:
        """Forward, then hold the answer back ``delay`` seconds (longer than the client's read_timeout)."""
        return self.add_fault("slow", operation, delay=delay, **when)

    def remove_fault(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    def page_split(
        self,
        operation: str = "FilterLogEvents",
        *,
        max_events: int,
        empty_pages: int = 0,
        leading_empty_pages: int = 0,
    ) -> PageSplit:
        """Serve ``operation``'s pages as pieces of ≤ ``max_events`` items, with empty pages between."""
        name = operation_name(operation)
        if name not in _PAGE_SPECS:
            raise ValueError(f"page_split supports {sorted(_PAGE_SPECS)}, not {name!r}")
        if max_events < 1 or empty_pages < 0 or leading_empty_pages < 0:
            raise ValueError("max_events must be >= 1 and empty page counts >= 0")
        split = PageSplit(max_events, empty_pages, leading_empty_pages)
        with self._lock:
            self._splits[name] = split
        return split

    def clear_page_split(self, operation: str | None = None) -> None:
        """Stop splitting ``operation`` (or every operation).

        Do this between pagination sequences: a proxy-minted token sent after its split was cleared is
        forwarded to moto as is, and moto answers an unknown FilterLogEvents token with an empty last page.
        """
        with self._lock:
            if operation is None:
                self._splits.clear()
            else:
                self._splits.pop(operation_name(operation), None)

    # -- counters -------------------------------------------------------------------------------------
    def count(self, operation: str) -> int:
        """Requests received for ``operation`` (faulted ones included)."""
        with self._lock:
            return self._received[operation_name(operation)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._received)

    def fault_count(self, operation: str | None = None, kind: str | None = None) -> int:
        """Faults injected, optionally only for ``operation`` and/or of ``kind``."""
        op = operation_name(operation) if operation is not None else None
        with self._lock:
            return sum(
                n
                for (o, k), n in self._faults.items()
                if (op is None or o == op) and (kind is None or k == kind)
            )

    def fault_counts(self) -> dict[tuple[str, str], int]:
        """{(operation, kind): faults injected}."""
        with self._lock:
            return dict(self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in completion order."""
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        """Zero the received/fault counters and the request log (rules keep their own ``seen`` counts)."""
        with self._lock:
            self._received.clear()
            self._faults.clear()
            self._requests.clear()

    # -- internals used by the handler ----------------------------------------------------------------
    def _begin_request(self, operation: str) -> FaultRule | None:
        """Count the request and pick the fault rule that fires for it, if any."""
        with self._lock:
            self._received[operation] += 1
            chosen: FaultRule | None = None
            for rule in self._rules:
                if not rule.matches(operation):
                    continue
                rule.seen += 1
                if chosen is not None or (rule.limit is not None and rule.injected >= rule.limit):
                    continue
                if rule.calls is not None:
                    fire = rule.seen in rule.calls
                elif rule.share is not None:
                    fire = self._rng.random() < rule.share
                else:
                    fire = True
                if fire:
                    rule.injected += 1
                    chosen = rule
            if chosen is not None:
                self._faults[(operation, chosen.kind)] += 1
            return chosen

    def _record(
        self, operation: str, status: int | None, started: float, fault: str | None, upstream: bool
    ) -> None:
        record = RequestRecord(operation, status, time.monotonic() - started, fault, upstream, started)
        with self._lock:
            self._requests.append(record)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _split_for(self, operation: str) -> PageSplit | None:
        with self._lock:
            return self._splits.get(operation)

    def _mint(self, cursor: _Cursor) -> str:
        with self._lock:
            token = f"fpx:{next(self._ids):08d}"
            self._cursors[token] = cursor
            return token

    def _serve_split(
        self, operation: str, split: PageSplit, body: bytes, fetch: Any
    ) -> tuple[_Response, bool]:
        spec = _PAGE_SPECS[operation]
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return fetch(body), True
        sent_token = request.get(spec.request_token)
        with self._lock:
            cursor = self._cursors.get(sent_token) if isinstance(sent_token, str) else None
        if cursor is None:  # first page, or a token the proxy did not mint: a new sequence
            cursor = _Cursor(sent_token, None, 0, split.leading_empty_pages)

        if cursor.empties > 0:
            token = self._mint(
                _Cursor(cursor.upstream_token, cursor.page_id, cursor.offset, cursor.empties - 1)
            )
            return self._page_response(spec, [], token, {}), False

        upstream_used = False
        if cursor.page_id is None:
            if cursor.upstream_token == sent_token:
                upstream_body = body
            else:
                rewritten = dict(request)
                if cursor.upstream_token is None:
                    rewritten.pop(spec.request_token, None)
                else:
                    rewritten[spec.request_token] = cursor.upstream_token
                upstream_body = json.dumps(rewritten, separators=(",", ":")).encode()
            response = fetch(upstream_body)
            upstream_used = True
            if response.status != 200:
                return response, upstream_used
            try:
                parsed = json.loads(response.body)
            except ValueError:
                return response, upstream_used
            items = parsed.pop(spec.items, None) or []
            upstream_next = parsed.pop(spec.response_token, None)
            if spec.forward_style and not items and upstream_next == cursor.upstream_token:
                # GetLogEvents at the end of the stream: give back exactly the token the client sent.
                return self._page_response(spec, [], sent_token, parsed), upstream_used
            with self._lock:
                page_id = next(self._ids)
                self._pages[page_id] = _Page(items, upstream_next, parsed)
            cursor = _Cursor(cursor.upstream_token, page_id, 0, 0)

        with self._lock:
            page = self._pages[cursor.page_id]
        end = cursor.offset + split.max_events
        piece = page.items[cursor.offset : end]
        if end < len(page.items):
            token = self._mint(_Cursor(cursor.upstream_token, cursor.page_id, end, split.empty_pages))
        elif page.upstream_next is not None:
            token = self._mint(_Cursor(page.upstream_next, None, 0, split.leading_empty_pages))
        else:
            token = None  # FilterLogEvents/Describe*: the end of the results
        return self._page_response(spec, piece, token, page.extra), upstream_used

    @staticmethod
    def _page_response(
        spec: _PageSpec, items: list[Any], token: str | None, extra: dict[str, Any]
    ) -> _Response:
        payload: dict[str, Any] = dict(extra)
        payload[spec.items] = items
        if token is not None:
            payload[spec.response_token] = token
        if spec.forward_style:
            payload.setdefault("nextBackwardToken", token)
        body = json.dumps(payload, separators=(",", ":")).encode()
        return _Response(200, "OK", _synth_headers(_JSON_CONTENT_TYPE), body)
