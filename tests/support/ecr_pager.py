"""A loopback HTTP proxy in front of moto that pages DescribeImageScanFindings the way ECR does.

moto 5.2 serves custom DescribeImageScanFindings results (``POST /moto-api/static/ecr/scan-finding-results``)
but ignores ``maxResults`` and ``nextToken``: every call returns every finding. ECR returns at most
``maxResults`` findings a page (1 to 1000; 100 when the request has none) and a ``nextToken`` while more are
left. ``EcrPager`` forwards every request to moto unchanged, except DescribeImageScanFindings: that one goes
to moto without ``maxResults``/``nextToken``, and the proxy cuts moto's full answer into pages::

    with EcrPager(moto_url) as pager:
        ecr = aws_client("ecr", pager.url)
        ...
        assert max(page.returned for page in pager.pages) <= 1000

A ``maxResults`` outside 1..1000 is answered HTTP 400 ``InvalidParameterException``, as ECR does.
Re-serialising the request body breaks its SigV4 signature; moto does not check signatures.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "EcrPager", "Page"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeImageScanFindings"
_ITEM_KEYS = ("findings", "enhancedFindings")
_SKIP_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding"})


@dataclass(frozen=True)
class Page:
    """One DescribeImageScanFindings page the proxy answered."""

    max_results: int | None
    token: str | None
    returned: int
    next_token: str | None


class EcrPager:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.pages: list[Page] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # shutdown() waits up to one poll interval (0.5 s by default)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EcrPager:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, list]:
        conn = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body))})
            response = conn.getresponse()
            return response.status, response.read(), response.getheaders()
        finally:
            conn.close()

    def _page(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        request = json.loads(body or b"{}")
        max_results = request.pop("maxResults", None)
        token = request.pop("nextToken", None)
        if max_results is not None and not 1 <= max_results <= MAX_PAGE:
            error = {
                "__type": "InvalidParameterException",
                "message": f"maxResults {max_results} not in 1..1000",
            }
            return 400, json.dumps(error).encode()
        status, answer, _ = self._forward("POST", "/", headers, json.dumps(request).encode())
        if status != 200:
            return status, answer
        result = json.loads(answer)
        found = result.get("imageScanFindings") or {}
        start = int(token.split(":", 1)[1]) if token else 0
        size = max_results or DEFAULT_PAGE
        total = max((len(found.get(key) or []) for key in _ITEM_KEYS), default=0)
        for key in _ITEM_KEYS:
            if key in found:
                found[key] = found[key][start : start + size]
        next_token = f"page:{start + size}" if start + size < total else None
        if next_token:
            result["nextToken"] = next_token
        returned = max((len(found.get(key) or []) for key in _ITEM_KEYS), default=0)
        with self._lock:
            self.pages.append(Page(max_results, token, returned, next_token))
        return 200, json.dumps(result).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        pager = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS}
                if self.headers.get("X-Amz-Target") == _TARGET:
                    status, answer = pager._page(headers, body)
                    reply_headers = [("Content-Type", "application/x-amz-json-1.1")]
                else:
                    status, answer, upstream_headers = pager._forward(self.command, self.path, headers, body)
                    reply_headers = [(k, v) for k, v in upstream_headers if k.lower() not in _SKIP_HEADERS]
                self.send_response(status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler
