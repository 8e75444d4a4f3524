"""Start moto's server on loopback and build boto3 clients that talk to it.

Pytest-agnostic: everything here is a plain class or context manager, so ``conftest.py`` can wrap it in
fixtures of any scope::

    with moto_server() as endpoint:
        logs = logs_client(endpoint)
        logs.create_log_group(logGroupName="/aws/lambda/ecr-scan")
        ...
        reset(endpoint)          # wipe every moto backend between tests

Notes on moto's server (moto 5.2):

* ``ThreadedMotoServer`` runs in-process, so it shares moto's global backends with any ``mock_aws``
  active in the same process; ``reset(endpoint)`` (POST ``/moto-api/reset``) wipes those too.
* It routes a request to a service by the SigV4 credential scope in ``Authorization`` (``.../logs/...``),
  not by the Host header, so any endpoint URL works. It does not verify signatures unless the
  ``INITIAL_NO_AUTH_ACTION_COUNT`` setting is used.
* ``ThreadedMotoServer.stop()`` shuts the serve loop down but does not close the listening socket;
  ``MotoServer.stop()`` closes it too.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

__all__ = [
    "FAKE_CREDENTIALS",
    "REGION",
    "MotoServer",
    "aws_client",
    "logs_client",
    "moto_server",
    "reset",
]

REGION = "us-east-1"

#: Explicit dummy credentials, so no client ever looks at the environment, a profile or IMDS.
FAKE_CREDENTIALS: dict[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

_LOOPBACK = "127.0.0.1"
_SESSION_LOCK = threading.Lock()
_session: boto3.session.Session | None = None


class _LoopbackThreadedMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` that reports a failed start instead of leaving ``start()`` waiting forever.

    Upstream ``start()`` waits on an event that is set only once the server socket is bound; if binding
    fails, werkzeug raises in the thread and the event is never set. Relies on moto's private
    ``_server_entry``/``_server_ready_event`` (moto 5.x).
    """

    startup_error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except BaseException as exc:  # SystemExit from werkzeug included
            self.startup_error = exc
            self._server_ready_event.set()


class MotoServer:
    """moto's ``ThreadedMotoServer`` on ``127.0.0.1`` and a free port (the OS picks it: port 0).

    Use as a context manager (``with MotoServer() as server: server.url``) or call ``start()``/``stop()``.
    ``quiet=True`` raises the ``werkzeug`` logger to WARNING while the server runs, so the per-request
    access log does not flood the test output.
    """

    def __init__(self, *, quiet: bool = True, start_timeout: float = 10.0) -> None:
        self._quiet = quiet
        self._start_timeout = start_timeout
        self._server: _LoopbackThreadedMotoServer | None = None
        self._url: str | None = None
        self._saved_log_level: int | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; only valid while the server runs."""
        if self._url is None:
            raise RuntimeError("MotoServer is not running; call start() first")
        return self._url

    def start(self) -> str:
        if self._server is not None:
            raise RuntimeError("MotoServer already started")
        if self._quiet:
            logger = logging.getLogger("werkzeug")
            self._saved_log_level = logger.level
            # werkzeug sets its logger to INFO on first use when the level is NOTSET
            if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
        server = _LoopbackThreadedMotoServer(ip_address=_LOOPBACK, port=0, verbose=False)
        starter = threading.Thread(target=server.start, name="moto-server-start", daemon=True)
        starter.start()
        starter.join(self._start_timeout)
        if starter.is_alive() or server.startup_error is not None:
            self._restore_log_level()
            raise RuntimeError(f"moto server did not start: {server.startup_error!r}")
        host, port = server.get_host_and_port()
        self._server = server
        self._url = f"http://{host}:{port}"
        return self._url

    def stop(self) -> None:
        server, self._server, self._url = self._server, None, None
        if server is None:
            return
        try:
            server.stop()
        finally:
            wsgi_server = getattr(server, "_server", None)
            if wsgi_server is not None:
                wsgi_server.server_close()
            self._restore_log_level()

    def _restore_log_level(self) -> None:
        if self._saved_log_level is not None:
            logging.getLogger("werkzeug").setLevel(self._saved_log_level)
            self._saved_log_level = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def moto_server(*, quiet: bool = True) -> Iterator[str]:
    """Run a moto server for the duration of the ``with`` block and yield its endpoint URL."""
    with MotoServer(quiet=quiet) as server:
        yield server.url


def aws_client(
    service_name: str,
    endpoint: str,
    *,
    region_name: str = REGION,
    config: Config | None = None,
    **config_options: Any,
) -> Any:
    """A boto3 client for ``service_name`` at ``endpoint`` with fake credentials.

    ``config_options`` become a ``botocore.config.Config`` merged over ``config``, e.g.
    ``retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.5``. Environment proxies are
    switched off (``proxies={}``) unless you pass ``proxies`` yourself: every endpoint here is loopback.
    Clients come from one private ``boto3.session.Session`` (not the default session), created once and
    guarded by a lock: a fresh session per client would reload the service model, ~150 ms a client.

    Mind botocore's naming: ``retries={"max_attempts": n}`` means n *retries* (n + 1 calls);
    ``retries={"total_max_attempts": n}`` means n calls in all, like ``AWS_MAX_ATTEMPTS``.
    """
    merged = Config(proxies={})
    if config is not None:
        merged = merged.merge(config)
    if config_options:
        merged = merged.merge(Config(**config_options))
    with _SESSION_LOCK:
        global _session
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            service_name, endpoint_url=endpoint, region_name=region_name, config=merged, **FAKE_CREDENTIALS
        )


def logs_client(
    endpoint: str,
    *,
    region_name: str = REGION,
    config: Config | None = None,
    **config_options: Any,
) -> Any:
    """A CloudWatch Logs client at ``endpoint`` (see ``aws_client``)."""
    return aws_client("logs", endpoint, region_name=region_name, config=config, **config_options)


def reset(endpoint: str, *, timeout: float = 10.0) -> None:
    """Wipe every moto backend (all services, accounts and regions) via ``POST /moto-api/reset``."""
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http:// endpoint, got {endpoint!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", "/moto-api/reset", body=b"", headers={"Content-Length": "0"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"moto reset failed: HTTP {response.status} {body[:200]!r}")
