"""One CloudWatch log event in, one Wazuh event (a dict) out: finding, scan_summary or unparsed.

The field names are a contract with the rules and with other tools: see docs/event-schema.md.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from wazuh_ecr_scan.encode import set_text, text_at
from wazuh_ecr_scan.enhanced import SCANNER_VENDOR as ENHANCED_VENDOR
from wazuh_ecr_scan.enhanced import enhanced_fields, is_enhanced, unique_key
from wazuh_ecr_scan.enhanced import number as _number
from wazuh_ecr_scan.events import LogEvent  # also imported from here by older code
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX, parse_stream_name, repository_of

SOURCE = "ecr_image_scan"
SCANNER_VENDOR = "Amazon ECR"
# The Lambda calls DescribeImageScanFindings once with maxResults=1000 and ignores nextToken.
LAMBDA_FINDINGS_LIMIT = 1000

SEVERITIES = {
    "CRITICAL": "Critical",
    "HIGH": "High",
    "MEDIUM": "Medium",
    "LOW": "Low",
    "INFORMATIONAL": "Informational",
    "UNDEFINED": "Untriaged",
    "UNTRIAGED": "Untriaged",
}
SUMMARY_KEYS = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
# The producer's SUMMARY for a scan that did not complete: {"imageScanStatus": {"status", "description"}}
SCAN_STATUS_KEY = "imageScanStatus"
FINDING_KEYS = frozenset(("name", "description", "uri", "severity", "attributes"))
MAX_ATTRIBUTE_KEY = 128
MAX_COUNT = 2**53  # beyond it a count is not a count (and its JSON could outgrow int limits)

# analysisd shows a rule's <description> unexpanded once the expansion would reach OS_COMMENT_MAX (1024
# bytes, ParseRuleComment in src/analysisd/eventinfo.c): then, with no_full_log, the alert names no
# CVE and no image. The fixed text of every description is at most DESCRIPTION_TEXT_MAX bytes
# (tests/test_rules_validity.py checks it); the fields a description expands share the rest.
OS_COMMENT_MAX = 1024
DESCRIPTION_TEXT_MAX = 256
SUMMARY_NUMBERS_MAX = 7 * 16  # findings_total and six counts, below MAX_COUNT
DESCRIPTION_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "finding": (
        ("vulnerability", "severity"),
        ("vulnerability", "status"),
        ("vulnerability", "cve"),
        ("vulnerability", "package", "name"),
        ("vulnerability", "package", "version"),
        ("aws", "ecr", "repository"),
        ("aws", "ecr", "image_tag"),
        ("aws", "ecr", "alert_note"),
    ),
    "scan_summary": (("aws", "ecr", "repository"), ("aws", "ecr", "image_tag"), ("aws", "ecr", "alert_note")),
    # A scan_summary with aws.ecr.scan_status (a scan that did not complete): no counts to expand.
    "scan_status": (
        ("aws", "ecr", "repository"),
        ("aws", "ecr", "image_tag"),
        ("aws", "ecr", "scan_status"),
        ("aws", "ecr", "scan_status_description"),
    ),
    "unparsed": (("aws", "ecr", "parse_error"),),
}
# Expanded by a description but never cut: they name the message (AWS caps each at 512 characters; the
# digest is the stream name's 64 hex digits).
DESCRIPTION_FIXED_FIELDS = {
    "unparsed": (("aws", "log_info", "log_group"), ("aws", "log_info", "log_stream")),
    "scan_status": (("aws", "ecr", "image_digest"),),
}
MIN_DESCRIPTION_FIELD = 64


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


class ParseError(ValueError):
    """The message or the stream name is not what the Lambda writes; becomes an `unparsed` event."""


_NOT_GIVEN: Any = object()


@functools.lru_cache(maxsize=1024)
def iso_millis(timestamp_ms: int) -> str:
    try:
        seconds, millis = divmod(int(timestamp_ms), 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    except (OverflowError, OSError, ValueError):
        return str(timestamp_ms)


@functools.lru_cache(maxsize=4096)
def _stream_context(log_group: str, log_stream: str, group_prefix: str) -> tuple[tuple[str, str], ...] | None:
    """The `aws.ecr` fields the names give, or None (after the repository) when the stream name has
    another shape. Cached: every event of a stream shares them."""
    parsed = parse_stream_name(log_stream)
    repository = ("repository", repository_of(log_group, group_prefix))
    if parsed is None:
        return None
    fields = [repository, ("image_digest", parsed.image_digest)]
    if parsed.image_tag:
        fields.append(("image_tag", parsed.image_tag))
    fields.append(("scan_time", parsed.scan_time))
    return tuple(fields)


@functools.lru_cache(maxsize=4096)
def _stream_kind(log_stream: str) -> str | None:
    parsed = parse_stream_name(log_stream)
    return parsed.kind if parsed else None


def parse_message(message: str) -> Any:
    """The message's JSON value, or a ParseError (returned, not raised) when it is not JSON (nesting
    too deep for the parser included)."""
    try:
        return json.loads(message)
    except (ValueError, RecursionError) as exc:
        return ParseError(f"message is not valid JSON: {exc}")


def flatten(
    event: LogEvent, region: str, group_prefix: str = DEFAULT_GROUP_PREFIX, payload: Any = _NOT_GIVEN
) -> dict[str, Any]:
    """The Wazuh event for one log event, from its message as `parse_message` returns it (parsed here
    when not given). Never raises on bad input: that becomes `unparsed`."""
    result = _flatten(event, region, group_prefix, payload)
    fit_description_fields(result)
    return result


def _flatten(event: LogEvent, region: str, group_prefix: str, payload: Any) -> dict[str, Any]:
    context = _stream_context(event.log_group, event.log_stream, group_prefix)
    bad_name = "stream name does not match <SEVERITY>-<tag>-<digest>-<time>"
    if context is None:
        ecr: dict[str, Any] = {"repository": repository_of(event.log_group, group_prefix)}
    else:
        ecr = dict(context)
    if payload is _NOT_GIVEN:
        payload = parse_message(event.message)
    if isinstance(payload, ParseError):
        return _unparsed(event, region, ecr, bad_name if context is None else str(payload))
    if context is None and not (isinstance(payload, dict) and is_enhanced(payload)):
        # An enhanced finding names its image itself; anything else needs the stream name.
        return _unparsed(event, region, ecr, bad_name)
    try:
        if _stream_kind(event.log_stream) == "SUMMARY":
            if isinstance(payload, dict) and SCAN_STATUS_KEY in payload:
                return _envelope(event, region, "scan_summary", _scan_status_fields(payload, ecr))
            return _envelope(event, region, "scan_summary", _summary_fields(payload, ecr))
        return _finding(event, region, ecr, payload)
    except ParseError as exc:
        return _unparsed(event, region, _identity(ecr), str(exc))
    except Exception as exc:  # one odd message must never stop the ingestion of the rest
        why = f"cannot map message: {exc.__class__.__name__}: {exc}"
        return _unparsed(event, region, _identity(ecr), why)


def _identity(ecr: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ecr.items() if k in ("repository", "image_digest", "image_tag", "scan_time")}


def _envelope(event: LogEvent, region: str, event_type: str, ecr: dict[str, Any]) -> dict[str, Any]:
    return {
        "integration": "aws",
        "aws": {
            "source": SOURCE,
            "event_type": event_type,
            "region": region,
            "log_info": {
                "log_group": event.log_group,
                "log_stream": event.log_stream,
                "event_id": event.event_id,
                "timestamp": iso_millis(event.timestamp),
            },
            "ecr": ecr,
        },
    }


def _unparsed(event: LogEvent, region: str, ecr: dict[str, Any], why: str) -> dict[str, Any]:
    ecr["parse_error"] = why
    ecr["raw_message"] = event.message
    return _envelope(event, region, "unparsed", ecr)


def _summary_fields(payload: Any, ecr: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ParseError(f"summary message is a JSON {_json_type(payload)}, not an object of counts")
    counts = dict.fromkeys(SUMMARY_KEYS, 0)
    for key, value in payload.items():
        if type(value) is not int or not 0 <= value < MAX_COUNT:
            raise ParseError(f"summary count {str(key)[:MAX_ATTRIBUTE_KEY]!r} is not a non-negative integer")
        counts[str(key)[:MAX_ATTRIBUTE_KEY]] = value
    total = sum(counts.values())
    # Only enhanced scans count UNTRIAGED; otherwise the counts cannot tell the scan types apart.
    ecr["scan_type"] = "enhanced" if "UNTRIAGED" in payload else "basic"
    ecr["severity_counts"] = counts
    ecr["findings_total"] = total
    ecr["truncated"] = total > LAMBDA_FINDINGS_LIMIT
    if "UNTRIAGED" in payload:  # the summary rules' descriptions name the six basic severities only
        ecr["alert_note"] = f", untriaged {counts['UNTRIAGED']}"
    return ecr


def _scan_status_fields(payload: dict[str, Any], ecr: dict[str, Any]) -> dict[str, Any]:
    """A scan that did not complete, or whose findings could not be read (ImageScanStatus shape). No
    scan_type: the message does not say which scanner ran."""
    others = sorted(str(key)[:MAX_ATTRIBUTE_KEY] for key in payload if key != SCAN_STATUS_KEY)
    if others:
        raise ParseError(f"summary message has keys besides {SCAN_STATUS_KEY}: {', '.join(others)[:512]}")
    status = payload[SCAN_STATUS_KEY]
    if not isinstance(status, dict):
        raise ParseError(f"summary {SCAN_STATUS_KEY} is a JSON {_json_type(status)}, not an object")
    value, description = status.get("status"), status.get("description")
    if not isinstance(value, str) or not value:
        raise ParseError(f"summary {SCAN_STATUS_KEY} has no status string")
    if description is not None and not isinstance(description, str):
        raise ParseError(f"summary {SCAN_STATUS_KEY} description is a JSON {_json_type(description)}")
    ecr["scan_status"] = value
    if description:
        ecr["scan_status_description"] = description
    return ecr


def _finding(event: LogEvent, region: str, ecr: dict[str, Any], payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ParseError(f"finding message is a JSON {_json_type(payload)}, not an object")
    vendor = SCANNER_VENDOR
    if is_enhanced(payload):
        vulnerability = enhanced_fields(payload, ecr)
        vendor = ENHANCED_VENDOR
    elif FINDING_KEYS.isdisjoint(payload):
        raise ParseError("finding message has none of name, description, uri, severity, attributes")
    else:
        ecr["scan_type"] = "basic"
        attributes = _attributes(payload.get("attributes"))
        if attributes:
            ecr["attributes"] = attributes
        vulnerability = _basic_vulnerability(payload, attributes)
    vulnerability["severity"] = _severity(payload.get("severity"), _stream_kind(event.log_stream), ecr)
    vulnerability["scanner"] = {"vendor": vendor}
    result = _envelope(event, region, "finding", ecr)
    result["vulnerability"] = vulnerability
    return result


def _attributes(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ParseError(f"finding attributes is a JSON {_json_type(raw)}, not a list")
    attributes: dict[str, str] = {}
    next_suffix: dict[str, int] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ParseError("finding attribute is not an object with a string key")
        key = item["key"][:MAX_ATTRIBUTE_KEY] or "_"
        value = item.get("value")
        if value is None or value == "":
            continue  # nothing to keep: the schema has no nulls and no empty strings
        value = value if isinstance(value, str) else json.dumps(value)
        # A repeated key keeps every value: key, key_2, key_3... found in linear time overall.
        attributes[unique_key(key, attributes, next_suffix)] = value
    return attributes


def _basic_vulnerability(payload: dict[str, Any], attributes: dict[str, str]) -> dict[str, Any]:
    vulnerability: dict[str, Any] = {}
    _put_text(vulnerability, "cve", payload.get("name"))
    _put_text(vulnerability, "reference", payload.get("uri"))
    _put_text(vulnerability, "description", payload.get("description"))
    package: dict[str, str] = {}
    _put_text(package, "name", attributes.get("package_name"))
    _put_text(package, "version", attributes.get("package_version"))
    if package:
        vulnerability["package"] = package
    score = _score(attributes)
    if score:
        vulnerability["score"] = score
    return vulnerability


def _score(attributes: dict[str, str]) -> dict[str, Any] | None:
    v3 = _number(attributes.get("CVSS3_SCORE"))
    if v3 is not None:
        vector = attributes.get("CVSS3_VECTOR", "")
        version = vector[5:8] if vector.startswith("CVSS:3.") else "3.0"
        return {"base": v3, "version": version}
    v2 = _number(attributes.get("CVSS2_SCORE"))
    if v2 is not None:
        return {"base": v2, "version": "2.0"}
    return None


def _severity(raw: Any, stream_kind: str | None, ecr: dict[str, Any]) -> str:
    severity = SEVERITIES.get(str(raw).upper()) if raw is not None else None
    if severity is None:
        severity = SEVERITIES.get(stream_kind or "", "Untriaged")
        if raw is not None and raw != "":
            ecr["original_severity"] = str(raw)[:MAX_ATTRIBUTE_KEY]
    return severity


def fit_description_fields(result: dict[str, Any]) -> None:
    """Cut the fields a rule description expands so the expansion stays under OS_COMMENT_MAX. The
    longest are cut first, to a common length; full values go under `aws.ecr.full_values`, and
    `aws.ecr.description_cut` names what was cut."""
    kind = _description_kind(result)
    paths = [p for p in DESCRIPTION_FIELDS.get(kind, ()) if text_at(result, p)]
    budget = OS_COMMENT_MAX - 1 - DESCRIPTION_TEXT_MAX
    budget -= SUMMARY_NUMBERS_MAX if kind == "scan_summary" else 0
    budget -= sum(_expanded_len(text_at(result, p)) for p in DESCRIPTION_FIXED_FIELDS.get(kind, ()))
    budget = max(budget, MIN_DESCRIPTION_FIELD * len(paths))
    sizes = {p: _expanded_len(text_at(result, p)) for p in paths}
    if sum(sizes.values()) <= budget:
        return
    cap = _common_cap(sorted(sizes.values()), budget)
    ecr = result["aws"]["ecr"]
    cut = []
    for path in paths:
        if sizes[path] <= cap:
            continue
        text = text_at(result, path)
        name = ".".join(path)
        ecr.setdefault("full_values", {})["_".join(path)] = text
        set_text(result, path, _cut_to_bytes(text, cap))
        cut.append(name)
    ecr["description_cut"] = ", ".join(cut)


def _description_kind(result: dict[str, Any]) -> str:
    kind = result["aws"]["event_type"]
    if kind == "scan_summary" and "scan_status" in result["aws"]["ecr"]:
        return "scan_status"
    return kind


def _common_cap(sizes: list[int], budget: int) -> int:
    """The largest cap c with sum(min(size, c)) <= budget (sizes ascending)."""
    remaining = budget
    for index, size in enumerate(sizes):
        share = remaining // (len(sizes) - index)
        if size > share:
            return share
        remaining -= size
    return sizes[-1] if sizes else budget


def _expanded_len(text: str) -> int:
    """Bytes the value takes in analysisd, after encode.py has replaced NULs and lone surrogates."""
    return len(text.encode("utf-8", "surrogatepass")) + 2 * text.count("\x00")


def _cut_to_bytes(text: str, limit: int) -> str:
    while _expanded_len(text) > limit:
        text = text[: max(len(text) - max((_expanded_len(text) - limit) // 4, 1), 0)]
    return text


def _put_text(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == "":
        return
    if isinstance(value, dict | list):
        # A text member holding a structure is not the Lambda's data; rendering it would also depend on
        # how deep json.dumps may still recurse from here.
        raise ParseError(f"{key} is a JSON {type(value).__name__}, not text")
    target[key] = value if isinstance(value, str) else json.dumps(value)
