"""Boundaries where a one-character bug loses or repeats findings, each pinned by a test that fails on it
(issue 11 §5): an event exactly at a window start, a commit before a flush that fails, events at the
analysisd size and field limits, exactly 1000 findings, and AWS temporary credentials in log lines.

Limits are written as the numbers analysisd and the Lambda use, not imported from the module: a wrong
constant in the module must fail here."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator

import botocore.exceptions
import botocore.session
import pytest
from botocore.stub import Stubber
from conftest import QuietSender
from lambda_writer import make_scan, recording_lines
from wazuh_ecr_scan.cli import main
from wazuh_ecr_scan.encode import EVENT_HEADER, encode_event
from wazuh_ecr_scan.errors import AnalysisdUnavailable
from wazuh_ecr_scan.events import LogEvent, Page
from wazuh_ecr_scan.flatten import flatten
from wazuh_ecr_scan.logs import mask
from wazuh_ecr_scan.poller import Poller, Source
from wazuh_ecr_scan.reader import CloudWatchReader
from wazuh_ecr_scan.sender import StdoutSender
from wazuh_ecr_scan.settings import ServiceSettings
from wazuh_ecr_scan.state import StateStore

ANALYSISD_MAX_DATAGRAM = 65535  # OS_MAXSTR - 1: longer datagrams are cut by analysisd
ANALYSISD_MAX_FIELDS = 256  # analysisd.decoder_order_size: the JSON decoder keeps this many fields
LAMBDA_MAX_FINDINGS = 1000  # the Lambda writes at most 1000 findings; the summary counts all of them
LATE_MS = 1_200_000  # the default late-write window, 20 minutes
DAY_MS = 86_400_000
MIDNIGHT = 20_000 * DAY_MS
GROUP = "/aws/ecr/image-scan-findings/web"
DIGEST = "d" * 64
STREAM = f"HIGH-v1-{DIGEST}-2024-10-05T23-49-00Z"
SUMMARY_STREAM = f"SUMMARY-v1-{DIGEST}-2024-10-05T23-49-00Z"


class Log:
    """CloudWatch Logs as FilterLogEvents sees one group: every event with timestamp >= startTime."""

    region = "us-east-1"

    def __init__(self) -> None:
        self.events: list[LogEvent] = []
        self.starts: list[int] = []

    def put(self, timestamp: int, event_id: str) -> None:
        self.events.append(LogEvent(GROUP, STREAM, event_id, timestamp, '{"name": "CVE-2024-1"}'))

    def groups(self, names: tuple[str, ...], prefix: str) -> list[str]:
        return [GROUP]

    def pages(self, log_group: str, start_ms: int) -> Iterator[Page]:
        self.starts.append(start_ms)
        yield Page([e for e in self.events if e.timestamp >= start_ms])


class Collect(QuietSender):
    """A sender that keeps the event ids it was given."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def send(self, datagram: bytes) -> None:
        self.ids.append(json.loads(datagram[len(EVENT_HEADER) :])["aws"]["log_info"]["event_id"])


def one_pass(state: StateStore, reader, sender, now_ms: int, **settings) -> None:
    poller = Poller(ServiceSettings(workers=1, **settings), state, sender, clock=lambda: now_ms / 1000)
    poller.run_pass([Source("default", reader)])


# -- window starts: >= not > -----------------------------------------------------------------------


def test_an_event_exactly_at_the_next_windows_start_is_sent_once_and_a_late_one_there_is_not_lost():
    state, log, sender = StateStore(":memory:"), Log(), Collect()
    first_pass = MIDNIGHT + 3 * 3_600_000
    window_start = first_pass - LATE_MS  # where the next pass starts reading
    log.put(window_start - 1, "before")
    log.put(window_start, "at")
    log.put(window_start + 1, "after")
    one_pass(state, log, sender, first_pass)
    assert sorted(sender.ids) == ["after", "at", "before"]

    log.put(window_start, "late-at")  # written after that pass, with the very timestamp of the window start
    one_pass(state, log, sender, first_pass + 60_000)
    assert log.starts[-1] == window_start
    # "at" and "after" were read again, not sent again; the late write at the window start was not missed
    assert sorted(sender.ids) == ["after", "at", "before", "late-at"]


def test_an_event_exactly_at_only_logs_after_is_read_and_one_before_it_is_not():
    state, log, sender = StateStore(":memory:"), Log(), Collect()
    log.put(MIDNIGHT - 1, "before")
    log.put(MIDNIGHT, "at")
    one_pass(state, log, sender, MIDNIGHT + 3_600_000, only_logs_after_ms=MIDNIGHT)
    assert sender.ids == ["at"]


def test_a_first_pass_reads_an_event_exactly_at_midnight_utc():
    state, log, sender = StateStore(":memory:"), Log(), Collect()
    log.put(MIDNIGHT - 1, "yesterday")
    log.put(MIDNIGHT, "midnight")
    one_pass(state, log, sender, MIDNIGHT + 3_600_000)
    assert sender.ids == ["midnight"]


def test_the_cloudwatch_reader_asks_for_events_from_the_window_start_itself():
    """FilterLogEvents' `startTime` is inclusive (AWS answers events at it): the window start itself."""
    client = botocore.session.get_session().create_client(
        "logs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    answer = [
        {"logStreamName": STREAM, "eventId": str(t), "timestamp": t, "message": "{}"}
        for t in (MIDNIGHT, MIDNIGHT + 1)
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "filter_log_events", {"events": answer}, {"logGroupName": GROUP, "startTime": MIDNIGHT}
        )
        pages = list(CloudWatchReader(client, "us-east-1").pages(GROUP, MIDNIGHT))
    assert [e.event_id for page in pages for e in page.events] == [str(MIDNIGHT), str(MIDNIGHT + 1)]


def test_a_replay_keeps_an_event_exactly_at_only_logs_after(tmp_path, capsys):
    midnight = 1_717_200_000_000  # 2024-06-01T00:00:00Z
    recording = tmp_path / "r.jsonl"
    lines = [
        {"logGroupName": GROUP, "logStreamName": STREAM, "eventId": name, "timestamp": t, "message": "{}"}
        for name, t in (("before", midnight - 1), ("at", midnight), ("after", midnight + 1))
    ]
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = [
        "--run-once",
        "--output",
        "stdout",
        "--replay",
        str(recording),
        "--only_logs_after",
        "2024-JUN-01",
    ]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["aws"]["log_info"]["event_id"] for e in events] == ["at", "after"]


# -- commits follow delivery ------------------------------------------------------------------------


class PipeClosedAtFlush(io.StringIO):
    """Standard output whose reader goes away: a flush after `good_flushes` raises BrokenPipeError, and
    only what was flushed before it ever reached the reader."""

    def __init__(self, good_flushes: int) -> None:
        super().__init__()
        self.good_flushes = good_flushes
        self.delivered: list[str] = []

    def flush(self) -> None:
        if self.good_flushes == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.good_flushes -= 1
        self.delivered.extend(self.getvalue().splitlines())
        self.seek(0)
        self.truncate()


def test_a_commit_follows_a_flush_that_worked_never_one_that_failed():
    state, log = StateStore(":memory:"), Log()
    for n in range(1200):  # three commits: 500, 500, 200
        log.put(MIDNIGHT + 1000, f"{n:04d}")
    stream = PipeClosedAtFlush(good_flushes=1)
    with pytest.raises(AnalysisdUnavailable):
        one_pass(state, log, StdoutSender(stream), MIDNIGHT + 3_600_000)
    delivered = [json.loads(line)["aws"]["log_info"]["event_id"] for line in stream.delivered]
    assert delivered == [f"{n:04d}" for n in range(500)]

    rest = Collect()
    one_pass(state, log, rest, MIDNIGHT + 3_600_000)
    assert rest.ids == [f"{n:04d}" for n in range(500, 1200)]  # what the failed flush held is sent again


# -- analysisd's limits: 65535 bytes, 256 fields ----------------------------------------------------


def finding_event(description: str = "", attributes: int = 0) -> dict:
    finding = {"name": "CVE-2024-1", "severity": "HIGH", "description": description}
    finding["attributes"] = [{"key": f"k{n:03d}", "value": "v"} for n in range(attributes)]
    return flatten(LogEvent(GROUP, STREAM, "1", MIDNIGHT, json.dumps(finding)), "us-east-1")


def sized(total_bytes: int) -> dict:
    """A finding whose datagram, untrimmed, is exactly `total_bytes` long."""
    base = len(encode_event(finding_event("x" * 1000)))
    event = finding_event("x" * (1000 + total_bytes - base))
    assert len(EVENT_HEADER) + len(json.dumps(event, separators=(",", ":"))) == total_bytes
    return event


def fields(value) -> int:
    return sum(fields(v) for v in value.values()) if isinstance(value, dict) else 1


def test_an_event_of_exactly_65535_bytes_is_sent_whole():
    data = encode_event(sized(ANALYSISD_MAX_DATAGRAM))
    assert len(data) == ANALYSISD_MAX_DATAGRAM
    assert "trimmed" not in json.loads(data[len(EVENT_HEADER) :])["aws"]["ecr"]


@pytest.mark.parametrize("over", [1, 2, 7, 100])
def test_an_event_just_over_65535_bytes_is_trimmed_to_fit(over):
    data = encode_event(sized(ANALYSISD_MAX_DATAGRAM + over))
    assert ANALYSISD_MAX_DATAGRAM - 200 < len(data) <= ANALYSISD_MAX_DATAGRAM
    decoded = json.loads(data[len(EVENT_HEADER) :])
    assert decoded["aws"]["ecr"]["trimmed"] is True
    assert decoded["vulnerability"]["cve"] == "CVE-2024-1"


@pytest.mark.parametrize("attributes", [180, 200, 210, 220, 229, 230, 231, 240, 250, 256, 300])
def test_events_with_200_to_256_fields_keep_every_field_that_fits_and_never_exceed_256(attributes):
    event = finding_event("text", attributes)
    decoded = json.loads(encode_event(event)[len(EVENT_HEADER) :])
    assert fields(decoded) <= ANALYSISD_MAX_FIELDS
    ecr = decoded["aws"]["ecr"]
    if fields(event) <= ANALYSISD_MAX_FIELDS:
        assert decoded == event  # nothing dropped from an event that fits
    else:
        assert ecr["trimmed"] is True
        assert len(ecr["attributes"]) + ecr["attributes_dropped"] == attributes
        assert fields(decoded) == ANALYSISD_MAX_FIELDS  # as many attributes kept as fit


# -- exactly 1000 findings --------------------------------------------------------------------------


@pytest.mark.parametrize(("findings", "truncated"), [(999, False), (1000, False), (1001, True)])
def test_a_summary_is_truncated_only_beyond_1000_findings(findings, truncated):
    counts = {"HIGH": findings - 400, "LOW": 400}
    event = flatten(LogEvent(GROUP, SUMMARY_STREAM, "1", MIDNIGHT, json.dumps(counts)), "us-east-1")
    assert event["aws"]["ecr"]["findings_total"] == findings
    assert event["aws"]["ecr"]["truncated"] is truncated


def test_a_scan_of_exactly_1000_findings_arrives_whole_and_not_truncated(tmp_path, capsys):
    import random

    scan = make_scan(random.Random(5), "web", "v1", MIDNIGHT, {"CRITICAL": 100, "HIGH": 500, "LOW": 400})
    assert len(scan.findings) == LAMBDA_MAX_FINDINGS
    recording = tmp_path / "scan.jsonl"
    recording.write_text("".join(json.dumps(line) + "\n" for line in recording_lines([scan])))
    assert main(["--run-once", "--output", "stdout", "--replay", str(recording)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    findings = [e for e in events if e["aws"]["event_type"] == "finding"]
    (summary,) = [e for e in events if e["aws"]["event_type"] == "scan_summary"]
    assert len(findings) == len({e["aws"]["log_info"]["event_id"] for e in findings}) == 1000
    assert summary["aws"]["ecr"]["findings_total"] == 1000 and summary["aws"]["ecr"]["truncated"] is False


# -- AWS temporary credentials are masked by their shape --------------------------------------------

TEMPORARY_KEY_ID = "ASIAQWERTYUIOPASDFGH"  # 20 characters, like every AWS access key id
LONG_TERM_KEY_ID = "AKIAQWERTYUIOPASDFGH"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6f+Zx0Tq3cBaCkzL/tokenTAIL=="
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "line",
    [
        f"assumed role: key {TEMPORARY_KEY_ID} expires 12:00",
        f"Credential={TEMPORARY_KEY_ID}/20261201/us-east-1/logs/aws4_request",
        f"key {LONG_TERM_KEY_ID}",
        f"'X-Amz-Security-Token': '{SESSION_TOKEN}'",
        f"x-amz-security-token={SESSION_TOKEN}",
        f"aws_session_token = {SESSION_TOKEN}",
        f'{{"SessionToken": "{SESSION_TOKEN}", "SecretAccessKey": "{SECRET_KEY}"}}',
        f"<Credentials><AccessKeyId>{TEMPORARY_KEY_ID}</AccessKeyId><SecretAccessKey>{SECRET_KEY}"
        f"</SecretAccessKey><SessionToken>{SESSION_TOKEN}</SessionToken></Credentials>",
    ],
    ids=["key-id", "sigv4-credential", "long-term-key-id", "header", "query", "config", "json", "sts-xml"],
)
def test_temporary_key_ids_session_tokens_and_secrets_are_masked_without_being_registered(line):
    masked = mask(line, set())  # nothing registered: the shape alone must give them away
    for secret in (TEMPORARY_KEY_ID, LONG_TERM_KEY_ID, SESSION_TOKEN, SECRET_KEY):
        assert secret not in masked
    # what is cut is the secret itself, not the whole line
    assert "***" in masked and len(masked) < len(line)


def test_a_next_token_answered_twice_is_an_error_not_an_endless_read():
    """botocore's paginator refuses a token it was already given: the group is skipped, not read forever."""
    client = botocore.session.get_session().create_client(
        "logs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        stub.add_response("filter_log_events", {"events": [], "nextToken": "same"})
        stub.add_response("filter_log_events", {"events": [], "nextToken": "same"})
        pages = CloudWatchReader(client, "us-east-1").pages(GROUP, MIDNIGHT)
        with pytest.raises(botocore.exceptions.PaginationError):
            list(itertools.islice(pages, 5))
