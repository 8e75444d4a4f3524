"""Hostile and malformed input, property-based: any message and any names give one event that fits
analysisd (≤ 65535 bytes, ≤ 256 fields, one line), never an exception, never a silent drop."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wazuh_ecr_scan.encode import EVENT_HEADER, MAX_DATAGRAM, MAX_FIELDS, count_fields, encode_event
from wazuh_ecr_scan.flatten import LogEvent, flatten

DIGEST = "d" * 64
GOOD_STREAM = f"HIGH-v1-{DIGEST}-2025-06-07T02-02-04Z"
GROUP = "/aws/ecr/image-scan-findings/a/b/c"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)
finding_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=50) | json_values,
        "description": st.text(),
        "uri": st.text(max_size=100),
        "severity": st.sampled_from(["HIGH", "LOW", "UNDEFINED", "", "nope"]) | json_values,
        "attributes": st.lists(
            st.fixed_dictionaries(
                {"key": st.text(max_size=30), "value": st.text(max_size=200) | json_values}
            ),
            max_size=60,
        )
        | json_values,
    },
)
messages = st.text() | json_values.map(json.dumps) | finding_like.map(json.dumps)
stream_names = (
    st.text(max_size=600)
    | st.just(GOOD_STREAM)
    | st.builds(
        lambda kind, tag: f"{kind}-{tag}-{DIGEST}-2025-06-07T02-02-04Z",
        st.sampled_from(["SUMMARY", "HIGH", "CRITICAL", "UNDEFINED"]),
        st.text(max_size=300),
    )
)


def assert_fits(event: dict) -> dict:
    data = encode_event(event)
    assert data.startswith(EVENT_HEADER)
    assert len(data) <= MAX_DATAGRAM
    assert b"\n" not in data and b"\r" not in data  # control characters stay escaped inside strings
    decoded = json.loads(data[len(EVENT_HEADER) :])
    assert count_fields(decoded) <= MAX_FIELDS
    assert decoded["integration"] == "aws" and decoded["aws"]["source"] == "ecr_image_scan"
    assert decoded["aws"]["event_type"] in {"finding", "scan_summary", "unparsed"}
    return decoded


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages, stream=stream_names, group=st.text(max_size=600), timestamp=st.integers())
def test_any_input_gives_one_event_that_fits(message, stream, group, timestamp):
    event = flatten(LogEvent(group, stream, "1", timestamp, message), "us-east-1")
    decoded = assert_fits(event)
    if decoded["aws"]["event_type"] == "unparsed":
        assert decoded["aws"]["ecr"]["parse_error"]
        ecr = decoded["aws"]["ecr"]
        assert ecr["raw_message"] == message or ecr.get("trimmed") or ecr.get("replaced_characters")


def test_two_megabyte_message_is_trimmed_not_dropped():
    message = json.dumps({"name": "CVE-2024-1", "severity": "HIGH", "description": "\u00e9" * 2_000_000})
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    assert decoded["aws"]["ecr"]["trimmed"] is True
    assert decoded["vulnerability"]["cve"] == "CVE-2024-1"
    assert decoded["vulnerability"]["description"].startswith("\u00e9\u00e9\u00e9")
    assert len(decoded["vulnerability"]["description"]) > 5000  # trimmed to fit, not emptied


def test_two_megabyte_garbage_is_an_unparsed_event_with_the_start_of_the_text():
    message = "<html>" + "x" * 2_000_000
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    assert decoded["aws"]["event_type"] == "unparsed"
    assert decoded["aws"]["ecr"]["raw_message"].startswith("<html>xxx")


def test_thousands_of_attributes_are_trimmed_to_the_field_budget():
    attrs = [{"key": f"k{i}", "value": "v"} for i in range(5000)]
    attrs.insert(0, {"key": "package_name", "value": "zlib"})
    message = json.dumps({"name": "CVE-1", "severity": "LOW", "attributes": attrs})
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    ecr = decoded["aws"]["ecr"]
    assert ecr["trimmed"] is True
    assert ecr["attributes_dropped"] + len(ecr["attributes"]) == 5001
    assert decoded["vulnerability"]["package"]["name"] == "zlib"


def test_nul_quotes_backslashes_and_emoji_survive_as_json():
    description = 'a "quoted" \\path\\ NUL\x00 newline\n tab\t emoji \U0001f680 lone surrogate \ud800'
    message = json.dumps({"name": "CVE-1", "severity": "LOW", "description": description})
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    # analysisd's cJSON cuts a string at NUL and rejects a lone surrogate: both become U+FFFD, counted.
    assert decoded["vulnerability"]["description"] == description.replace("\x00", "\ufffd").replace(
        "\ud800", "\ufffd"
    )
    assert decoded["aws"]["ecr"]["replaced_characters"] == 2


def test_null_array_and_duplicated_keys():
    for message in ("null", "[]", '[{"name": "CVE-1"}]'):
        decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
        assert decoded["aws"]["event_type"] == "unparsed"
    dup = '{"name": "CVE-1", "name": "CVE-2", "severity": "LOW"}'
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, dup), "us-east-1"))
    assert (
        decoded["vulnerability"]["cve"] == "CVE-2"
    )  # json's rule: the last one wins, as in the Lambda's data


def test_tag_of_300_characters_and_repository_with_several_slashes():
    stream = f"CRITICAL-{'t' * 300}-{DIGEST}-2025-06-07T02-02-04Z"
    decoded = assert_fits(flatten(LogEvent(GROUP, stream, "1", 0, '{"name": "CVE-1"}'), "us-east-1"))
    assert decoded["aws"]["ecr"]["image_tag"] == "t" * 300
    assert decoded["aws"]["ecr"]["repository"] == "a/b/c"


POISON = {
    # nests deeper than json.dumps may recurse from some call depths: the outcome must not depend on it
    "deeply-nested-name": (GOOD_STREAM, '{"name": ' + "[" * 950 + "]" * 950 + ', "severity": "HIGH"}'),
    "4300-digit-counts": (
        "SUMMARY-v1-" + DIGEST + "-2025-06-07T02-02-04Z",
        '{"HIGH": ' + "9" * 4300 + ', "LOW": ' + "9" * 4300 + "}",
    ),
}


def flatten_at_depth(event: LogEvent, depth: int) -> dict:
    """flatten() called `depth` frames below a fresh thread's top: where the CLI calls it, or deeper."""
    result: dict = {}

    def descend(n: int) -> None:
        if n:
            descend(n - 1)
        else:
            result["event"] = flatten(event, "us-east-1")

    thread = threading.Thread(target=descend, args=(depth,))
    thread.start()
    thread.join()
    return result["event"]


@pytest.mark.parametrize("name", POISON)
def test_poison_messages_found_in_review_become_unparsed_not_crashes(name):
    stream, message = POISON[name]
    event = LogEvent(GROUP, stream, "1", 0, message)
    shallow, deep = (assert_fits(flatten_at_depth(event, depth)) for depth in (5, 40))
    # unparsed (the raw message kept, a warning logged), wherever flatten() is called from
    assert (shallow["aws"]["event_type"], deep["aws"]["event_type"]) == ("unparsed", "unparsed")
    assert shallow["aws"]["ecr"].pop("parse_error") and deep["aws"]["ecr"].pop("parse_error")
    assert shallow == deep  # the reason may name the recursion limit at one depth, not the event


def test_a_score_too_large_for_a_number_keeps_the_finding_and_the_score_as_written():
    cvss = '{"cvss": [{"baseScore": ' + "9" * 401 + "}]}"
    message = '{"description": "x", "packageVulnerabilityDetails": ' + cvss + "}"
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    assert decoded["aws"]["event_type"] == "finding"
    assert "score" not in decoded["vulnerability"]
    kept = decoded["aws"]["ecr"]["score_unparsed"]
    assert len(kept) >= 100 and kept == "9" * len(kept)


def test_oversize_keys_drop_attributes_and_never_blank_the_identity():
    rocket = "\U0001f680" * 127
    attrs = [{"key": f"{rocket}{i}", "value": "v" * 280} for i in range(200)]
    group = "/aws/ecr/image-scan-findings/" + "r" * 250
    message = json.dumps({"name": "CVE-1", "severity": "LOW", "attributes": attrs})
    decoded = assert_fits(flatten(LogEvent(group, GOOD_STREAM, "1", 0, message), "us-east-1"))
    ecr = decoded["aws"]["ecr"]
    assert decoded["aws"]["log_info"]["log_group"] == group
    assert ecr["repository"] == "r" * 250 and ecr["image_tag"] == "v1"
    assert ecr["attributes_dropped"] > 0 and ecr["trimmed"] is True
    assert decoded["vulnerability"]["cve"] == "CVE-1"


def test_no_empty_strings_or_nulls_in_findings():
    attrs = [{"key": "package_name", "value": None}, {"key": "x", "value": ""}, {"key": "y", "value": "1"}]
    message = json.dumps({"name": "CVE-1", "severity": "", "attributes": attrs})
    decoded = assert_fits(flatten(LogEvent(GROUP, GOOD_STREAM, "1", 0, message), "us-east-1"))
    assert decoded["aws"]["ecr"]["attributes"] == {"y": "1"}
    assert "original_severity" not in decoded["aws"]["ecr"]
    assert decoded["vulnerability"]["severity"] == "High"  # from the stream name
