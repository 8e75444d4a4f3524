"""FaultProxy in front of a real moto server, driven by real boto3 clients.

Every fault is checked against botocore's own retry decision (standard mode unless a test says
otherwise). Backoff sleeps are patched to zero and recorded, so "botocore decided to retry" is
observable and the file stays fast.
"""

from __future__ import annotations

import functools
import http.client
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import botocore.retries.standard
import botocore.retryhandler
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))

from fault_proxy import FaultProxy, operation_name
from moto_server import MotoServer, aws_client, logs_client, reset

GROUP = "/aws/lambda/ecr-scan-logger"
STREAMS = ("2025/01/01/[$LATEST]aaa", "2025/01/01/[$LATEST]bbb", "2025/01/01/[$LATEST]ccc")
PER_STREAM = 25


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with MotoServer() as server:
        yield server.url


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    reset(moto_url)
    fault_proxy = FaultProxy(moto_url, seed=1234)
    with fault_proxy:
        yield fault_proxy
    # stop() raises if any handler thread is left behind
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]


@pytest.fixture
def retry_delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Zero botocore's backoff (standard and legacy mode) and record every retry it decides on."""
    decided: list[float] = []

    def standard_delay(self: Any, context: Any) -> float:
        decided.append(context.attempt_number)
        return 0.0

    def legacy_delay(base: Any, growth_factor: float, attempts: int) -> float:
        decided.append(attempts)
        return 0.0

    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", standard_delay)
    monkeypatch.setattr(botocore.retryhandler, "delay_exponential", legacy_delay)
    return decided


def client(endpoint: str, attempts: int = 3, mode: str = "standard", **config: Any) -> Any:
    # total_max_attempts includes the first call; retries={"max_attempts": n} would mean n *retries*.
    return logs_client(endpoint, retries={"mode": mode, "total_max_attempts": attempts}, **config)


@functools.lru_cache(maxsize=4)
def cached_client(endpoint: str) -> Any:
    """Hypothesis examples share one proxy; building a boto3 client costs ~80 ms, so build it once."""
    return client(endpoint)


def seed_events(moto_url: str) -> list[dict[str, Any]]:
    """25 events in each of 3 streams, interleaved in time; returns moto's own (interleaved) view."""
    logs = logs_client(moto_url)
    logs.create_log_group(logGroupName=GROUP)
    base = int(time.time() * 1000) - 60_000
    for s, stream in enumerate(STREAMS):
        logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
        events = [{"timestamp": base + 10 * i + s, "message": f"{s}:{i}"} for i in range(PER_STREAM)]
        logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=events)
    direct = logs.filter_log_events(logGroupName=GROUP, interleaved=True)
    assert "nextToken" not in direct  # moto answers all 75 in one page (JSON null → absent)
    return direct["events"]


def event_key(event: dict[str, Any]) -> tuple[str, str]:
    return event["logStreamName"], event["eventId"]


def read_all_filter_pages(logs: Any, **params: Any) -> list[dict[str, Any]]:
    """The poller's loop: keep going until nextToken is absent. Returns the pages."""
    pages = []
    request = {"logGroupName": GROUP, "interleaved": True, **params}
    while True:
        page = logs.filter_log_events(**request)
        pages.append(page)
        if "nextToken" not in page:
            return pages
        request["nextToken"] = page["nextToken"]
        assert len(pages) < 500, "pagination does not terminate"


# -- plain forwarding -----------------------------------------------------------------------------------
def test_forwards_counts_and_logs_requests(proxy: FaultProxy) -> None:
    logs = client(proxy.url)
    logs.create_log_group(logGroupName=GROUP)
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == [GROUP]
    logs.describe_log_groups()

    assert proxy.counts() == {"CreateLogGroup": 1, "DescribeLogGroups": 2}
    assert proxy.count("Logs_20140328.DescribeLogGroups") == 2
    assert proxy.fault_count() == 0
    records = proxy.requests
    assert [(r.operation, r.status, r.fault, r.upstream) for r in records] == [
        ("CreateLogGroup", 200, None, True),
        ("DescribeLogGroups", 200, None, True),
        ("DescribeLogGroups", 200, None, True),
    ]
    assert all(r.duration >= 0 for r in records)

    proxy.reset_counts()
    assert proxy.counts() == {} and proxy.requests == []


def test_headers_and_body_forwarded_unchanged_over_keep_alive() -> None:
    """Host, signature headers and body bytes reach the upstream as sent; hop-by-hop headers do not."""
    seen: list[tuple[dict[str, str], bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((dict(self.headers.items()), body))
            payload = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as proxy:
            host = proxy.url.removeprefix("http://")
            body = b'{"logGroupName": "g",  "x": "\xc3\xa9"}'  # odd spacing and UTF-8 kept as is
            conn = http.client.HTTPConnection(host, timeout=5)
            for _ in range(2):  # the same client connection twice: keep-alive works
                conn.request(
                    "POST",
                    "/",
                    body=body,
                    headers={
                        "X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/logs/aws4",
                        "Connection": "keep-alive, X-Drop-Me",
                        "X-Drop-Me": "1",
                        "Keep-Alive": "timeout=5",
                    },
                )
                response = conn.getresponse()
                assert (response.status, response.read()) == (200, b'{"ok":true}')
            conn.close()
            assert proxy.count("DescribeLogGroups") == 2
    finally:
        upstream.shutdown()
        upstream.server_close()
    for headers, received in seen:
        assert received == body
        assert headers["Host"] == host
        assert headers["X-Amz-Target"] == "Logs_20140328.DescribeLogGroups"
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256")
        assert "X-Drop-Me" not in headers and "Keep-Alive" not in headers


def test_binds_loopback_only_and_stops_cleanly(moto_url: str) -> None:
    proxy = FaultProxy(moto_url).start()
    assert proxy.url.startswith("http://127.0.0.1:")
    logs = client(proxy.url)
    logs.describe_log_groups()  # leaves an idle keep-alive connection and its handler thread behind
    assert [t for t in threading.enumerate() if t.name.startswith("fault-proxy-")]
    proxy.stop()  # closes the idle connection rather than waiting for the client to
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]
    proxy.stop()  # idempotent


def test_unreachable_upstream_is_a_502() -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy, pytest.raises(ClientError) as caught:  # nothing on :9
        client(proxy.url, attempts=1).describe_log_groups()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502


# -- throttling -----------------------------------------------------------------------------------------
def test_throttle_surfaces_without_retries(proxy: FaultProxy) -> None:
    proxy.throttle("FilterLogEvents")
    logs = client(proxy.url, attempts=1)
    logs.create_log_group(logGroupName=GROUP)
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(logGroupName=GROUP)
    response = caught.value.response
    assert response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"
    assert isinstance(caught.value, logs.exceptions.ClientError)
    assert proxy.count("FilterLogEvents") == 1
    assert proxy.fault_counts() == {("FilterLogEvents", "throttle"): 1}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_throttle_is_retried_until_success(proxy: FaultProxy, retry_delays: list[float], mode: str) -> None:
    rule = proxy.throttle("FilterLogEvents", calls=[1, 2])
    logs = client(proxy.url, attempts=3, mode=mode)
    logs.create_log_group(logGroupName=GROUP)
    response = logs.filter_log_events(logGroupName=GROUP)
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(retry_delays) == 2
    assert proxy.count("FilterLogEvents") == 3
    assert proxy.fault_count("FilterLogEvents", "throttle") == 2
    assert (rule.seen, rule.injected) == (3, 2)
    assert [r.status for r in proxy.requests if r.operation == "FilterLogEvents"] == [400, 400, 200]


def test_explicit_schedule_counts_every_matching_request(proxy: FaultProxy) -> None:
    """'Fail the 1st and 3rd FilterLogEvents': numbering is per rule, other operations do not count."""
    proxy.throttle("FilterLogEvents", calls=[1, 3])
    logs = client(proxy.url, attempts=1)
    logs.create_log_group(logGroupName=GROUP)
    outcomes = []
    for _ in range(4):
        logs.describe_log_groups()
        try:
            logs.filter_log_events(logGroupName=GROUP)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert outcomes == ["ThrottlingException", "ok", "ThrottlingException", "ok"]


def test_share_is_reproducible_with_a_seed_and_limit_caps_it(moto_url: str) -> None:
    reset(moto_url)
    logs_client(moto_url).create_log_group(logGroupName=GROUP)

    def pattern(seed: int, limit: int | None = None) -> list[bool]:
        with FaultProxy(moto_url, seed=seed) as proxy:
            proxy.throttle("DescribeLogGroups", share=0.5, limit=limit)
            logs = client(proxy.url, attempts=1)
            result = []
            for _ in range(20):
                try:
                    logs.describe_log_groups()
                    result.append(False)
                except ClientError:
                    result.append(True)
            assert proxy.fault_count("DescribeLogGroups") == sum(result)
            return result

    first = pattern(seed=7)
    assert first == pattern(seed=7)
    assert 4 <= sum(first) <= 16
    assert first != pattern(seed=8)
    assert sum(pattern(seed=7, limit=3)) == 3


def test_throttle_on_a_query_protocol_api(proxy: FaultProxy, retry_delays: list[float]) -> None:
    """STS (form-encoded Action=...) gets an XML <Code>Throttling</Code> error, which botocore retries."""
    proxy.throttle("GetCallerIdentity", calls=[1, 2])
    sts = aws_client("sts", proxy.url, retries={"mode": "standard", "total_max_attempts": 1})
    with pytest.raises(ClientError) as caught:
        sts.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "Throttling"
    retried = aws_client("sts", proxy.url, retries={"mode": "standard", "total_max_attempts": 3})
    assert retried.get_caller_identity()["ResponseMetadata"]["RetryAttempts"] == 1
    assert proxy.counts() == {"GetCallerIdentity": 3}


def test_access_denied_is_never_retried_on_either_protocol(
    proxy: FaultProxy, retry_delays: list[float]
) -> None:
    proxy.access_denied(["FilterLogEvents", "GetCallerIdentity"])
    logs = client(proxy.url, attempts=5)
    logs.create_log_group(logGroupName=GROUP)
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(logGroupName=GROUP)
    assert caught.value.response["Error"] == {
        "Code": "AccessDeniedException",
        "Message": "User: arn:aws:iam::123456789012:user/wazuh is not authorized to perform:"
        " logs:FilterLogEvents",
    }
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sts = aws_client("sts", proxy.url, retries={"mode": "standard", "total_max_attempts": 5})
    with pytest.raises(ClientError) as caught:
        sts.get_caller_identity()
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert retry_delays == []
    assert proxy.fault_counts() == {("FilterLogEvents", "denied"): 1, ("GetCallerIdentity", "denied"): 1}


# -- 5xx ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "code"), [(503, "ServiceUnavailableException"), (500, "InternalFailure")])
def test_server_errors_surface_and_are_retried(
    proxy: FaultProxy, retry_delays: list[float], status: int, code: str
) -> None:
    proxy.unavailable("DescribeLogGroups", status=status, calls=[1, 2])
    with pytest.raises(ClientError) as caught:
        client(proxy.url, attempts=1).describe_log_groups()
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status

    response = client(proxy.url, attempts=3).describe_log_groups()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert proxy.fault_count("DescribeLogGroups", "unavailable") == 2
    assert proxy.count("DescribeLogGroups") == 3


# -- connection reset -----------------------------------------------------------------------------------
def test_connection_reset_without_retries(proxy: FaultProxy) -> None:
    proxy.connection_reset("DescribeLogGroups", calls=[1])
    logs = client(proxy.url, attempts=1)
    with pytest.raises(ConnectionClosedError) as caught:
        logs.describe_log_groups()
    underlying = caught.value.kwargs["error"]  # urllib3 ProtocolError("Connection aborted.", <errno>)
    assert isinstance(underlying.args[1], ConnectionResetError)  # ECONNRESET, not a clean close
    assert logs.describe_log_groups()["logGroups"] == []  # a new connection works
    assert [(r.status, r.fault) for r in proxy.requests] == [(None, "reset"), (200, None)]


def test_connection_reset_is_retried(proxy: FaultProxy, retry_delays: list[float]) -> None:
    proxy.connection_reset("DescribeLogGroups", calls=[1, 2])
    response = client(proxy.url, attempts=3).describe_log_groups()
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert proxy.count("DescribeLogGroups") == 3


def test_reset_after_forwarding_duplicates_a_retried_write(
    proxy: FaultProxy, moto_url: str, retry_delays: list[float]
) -> None:
    """forward=True: the write reached moto, the client never heard back and retried it."""
    logs = client(proxy.url, attempts=2)
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="s")
    proxy.connection_reset("PutLogEvents", calls=[1], forward=True)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=GROUP, logStreamName="s", logEvents=[{"timestamp": now, "message": "x"}])
    events = logs_client(moto_url).get_log_events(logGroupName=GROUP, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in events["events"]] == ["x", "x"]


# -- slow answers / latency -----------------------------------------------------------------------------
def test_slow_answer_times_out_and_is_retried(proxy: FaultProxy, retry_delays: list[float]) -> None:
    # The held answer (30 s) outlasts any test run: raising ReadTimeoutError shows the client gave up on it.
    # The read timeout leaves a loaded machine ample time for moto's answer to the retry.
    proxy.slow("DescribeLogGroups", delay=30.0, calls=[1])
    with pytest.raises(ReadTimeoutError):
        client(proxy.url, attempts=1, read_timeout=1.0).describe_log_groups()

    proxy.slow("DescribeLogGroups", delay=30.0, calls=[1])  # a fresh rule: its 1st call is the next one
    response = client(proxy.url, attempts=2, read_timeout=1.0).describe_log_groups()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert proxy.fault_count("DescribeLogGroups", "slow") == 2
    # the fixture's stop() cuts the still-sleeping handlers short and joins them


def test_latency_is_added_to_every_call(proxy: FaultProxy) -> None:
    logs = client(proxy.url)
    logs.describe_log_groups()  # connect outside the measurement
    proxy.latency = 0.05
    started = time.monotonic()
    for _ in range(4):
        logs.describe_log_groups()
    assert time.monotonic() - started >= 4 * 0.05
    assert all(r.duration >= 0.05 for r in proxy.requests[1:])


# -- page splitting -------------------------------------------------------------------------------------
@pytest.mark.parametrize("upstream_limit", [None, 20])
def test_page_split_delivers_everything_across_partial_and_empty_pages(
    proxy: FaultProxy, moto_url: str, upstream_limit: int | None
) -> None:
    expected = seed_events(moto_url)
    proxy.page_split("FilterLogEvents", max_events=7, empty_pages=1, leading_empty_pages=1)
    params = {"limit": upstream_limit} if upstream_limit else {}
    pages = read_all_filter_pages(client(proxy.url), **params)

    events = [e for page in pages for e in page["events"]]
    assert [event_key(e) for e in events] == [event_key(e) for e in expected]
    assert len(events) == len(STREAMS) * PER_STREAM
    sizes = [len(page["events"]) for page in pages]
    assert max(sizes) <= 7
    assert sizes[0] == 0  # a leading empty page, and it still has a nextToken
    assert sizes.count(0) >= 10
    assert all(page["nextToken"].startswith("fpx:") for page in pages[:-1])
    assert sizes[-1] > 0 and "nextToken" not in pages[-1]
    upstream_pages = 1 if upstream_limit is None else 4
    assert sum(r.upstream for r in proxy.requests) == upstream_pages
    assert proxy.count("FilterLogEvents") == len(pages)


def test_page_split_token_can_be_resent(proxy: FaultProxy, moto_url: str) -> None:
    seed_events(moto_url)
    proxy.page_split("FilterLogEvents", max_events=10, empty_pages=0)
    logs = client(proxy.url)
    first = logs.filter_log_events(logGroupName=GROUP, interleaved=True, limit=30)
    token = first["nextToken"]
    again = logs.filter_log_events(logGroupName=GROUP, interleaved=True, limit=30, nextToken=token)
    replay = logs.filter_log_events(logGroupName=GROUP, interleaved=True, limit=30, nextToken=token)
    assert [event_key(e) for e in again["events"]] == [event_key(e) for e in replay["events"]]
    assert again["nextToken"] != replay["nextToken"]  # fresh opaque tokens...
    tail_a = read_all_filter_pages(logs, limit=30, nextToken=again["nextToken"])
    tail_b = read_all_filter_pages(logs, limit=30, nextToken=replay["nextToken"])
    keys_a = [event_key(e) for p in tail_a for e in p["events"]]
    assert keys_a == [event_key(e) for p in tail_b for e in p["events"]]  # ...same continuation
    assert len(first["events"]) + len(again["events"]) + len(keys_a) == len(STREAMS) * PER_STREAM


def test_page_split_works_with_the_botocore_paginator_and_throttling(
    proxy: FaultProxy, moto_url: str, retry_delays: list[float]
) -> None:
    expected = seed_events(moto_url)
    proxy.page_split("FilterLogEvents", max_events=5, empty_pages=2)
    proxy.throttle("FilterLogEvents", share=0.3)
    paginator = client(proxy.url, attempts=10).get_paginator("filter_log_events")
    events = [e for page in paginator.paginate(logGroupName=GROUP, interleaved=True) for e in page["events"]]
    assert [event_key(e) for e in events] == [event_key(e) for e in expected]
    assert proxy.fault_count("FilterLogEvents", "throttle") > 0
    assert len(retry_delays) == proxy.fault_count()


def test_page_split_get_log_events(proxy: FaultProxy, moto_url: str) -> None:
    seed_events(moto_url)
    proxy.page_split("GetLogEvents", max_events=4, empty_pages=1)
    logs = client(proxy.url)
    request = {"logGroupName": GROUP, "logStreamName": STREAMS[1], "startFromHead": True, "limit": 10}
    pages = []
    while True:  # AWS's rule: the end is when nextForwardToken comes back equal to the token sent
        page = logs.get_log_events(**request)
        pages.append(page)
        if page["nextForwardToken"] == request.get("nextToken"):
            break
        request["nextToken"] = page["nextForwardToken"]
        assert len(pages) < 100
    messages = [e["message"] for page in pages for e in page["events"]]
    assert messages == [f"1:{i}" for i in range(PER_STREAM)]
    assert max(len(p["events"]) for p in pages) <= 4
    assert any(not p["events"] for p in pages[:-1])
    assert not pages[-1]["events"]


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    max_events=st.integers(2, 30),
    empty_pages=st.integers(0, 2),
    leading=st.integers(0, 1),
    upstream_limit=st.sampled_from([None, 7, 40]),
)
def test_page_split_property(
    proxy: FaultProxy,
    moto_url: str,
    max_events: int,
    empty_pages: int,
    leading: int,
    upstream_limit: int | None,
) -> None:
    direct = cached_client(moto_url)
    if not direct.describe_log_groups()["logGroups"]:
        seed_events(moto_url)  # the proxy fixture (and its moto reset) is shared by all examples
    expected = direct.filter_log_events(logGroupName=GROUP, interleaved=True)["events"]
    proxy.page_split(
        "FilterLogEvents", max_events=max_events, empty_pages=empty_pages, leading_empty_pages=leading
    )
    params = {"limit": upstream_limit} if upstream_limit else {}
    pages = read_all_filter_pages(cached_client(proxy.url), **params)
    assert [event_key(e) for p in pages for e in p["events"]] == [event_key(e) for e in expected]
    assert all(len(p["events"]) <= max_events for p in pages)


def test_operation_names() -> None:
    assert operation_name("Logs_20140328.FilterLogEvents") == "FilterLogEvents"
    assert operation_name("GetLogEvents") == "GetLogEvents"


def test_page_split_describe_log_groups(proxy: FaultProxy) -> None:
    logs = client(proxy.url)
    names = [f"/g/{n}" for n in range(5)]
    for name in names:
        logs.create_log_group(logGroupName=name)
    proxy.page_split("DescribeLogGroups", max_events=2, empty_pages=1)
    pages = list(logs.get_paginator("describe_log_groups").paginate())
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == names
    assert [len(p["logGroups"]) for p in pages] == [2, 0, 2, 0, 1]


def test_counters_are_thread_safe(proxy: FaultProxy, retry_delays: list[float]) -> None:
    proxy.throttle("DescribeLogGroups", share=0.3)
    logs = client(proxy.url, attempts=20)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                logs.describe_log_groups()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    faults = proxy.fault_count("DescribeLogGroups", "throttle")
    assert faults > 0
    assert proxy.count("DescribeLogGroups") == 40 + faults == len(proxy.requests)
    assert len(retry_delays) == faults
