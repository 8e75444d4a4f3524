"""One CloudWatch log event in, one Wazuh event (a dict) out: finding, scan_summary or unparsed.

The field names are a contract with the rules and with other tools: see docs/event-schema.md.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from typing import Any

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
FINDING_KEYS = frozenset(("name", "description", "uri", "severity", "attributes"))
MAX_ATTRIBUTE_KEY = 128
MAX_COUNT = 2**53  # beyond it a count is not a count (and its JSON could outgrow int limits)


@dataclass(frozen=True)
class LogEvent:
    """One event as CloudWatch Logs returns it (FilterLogEvents shape)."""

    log_group: str
    log_stream: str
    event_id: str
    timestamp: int
    message: str


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
    context = _stream_context(event.log_group, event.log_stream, group_prefix)
    if context is None:
        ecr = {"repository": repository_of(event.log_group, group_prefix)}
        return _unparsed(event, region, ecr, "stream name does not match <SEVERITY>-<tag>-<digest>-<time>")
    ecr = dict(context)
    if payload is _NOT_GIVEN:
        payload = parse_message(event.message)
    if isinstance(payload, ParseError):
        return _unparsed(event, region, ecr, str(payload))
    try:
        if _stream_kind(event.log_stream) == "SUMMARY":
            return _envelope(event, region, "scan_summary", _summary_fields(payload, ecr))
        return _finding(event, region, ecr, payload)
    except ParseError as exc:
        return _unparsed(event, region, dict(context), str(exc))
    except Exception as exc:  # one odd message must never stop the ingestion of the rest
        return _unparsed(event, region, dict(context), f"cannot map message: {exc.__class__.__name__}: {exc}")


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
    ecr["severity_counts"] = counts
    ecr["findings_total"] = total
    ecr["truncated"] = total > LAMBDA_FINDINGS_LIMIT
    return ecr


def _finding(event: LogEvent, region: str, ecr: dict[str, Any], payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ParseError(f"finding message is a JSON {_json_type(payload)}, not an object")
    if "packageVulnerabilityDetails" in payload:
        vulnerability = _enhanced_vulnerability(payload)
    elif FINDING_KEYS.isdisjoint(payload):
        raise ParseError("finding message has none of name, description, uri, severity, attributes")
    else:
        attributes = _attributes(payload.get("attributes"))
        if attributes:
            ecr["attributes"] = attributes
        vulnerability = _basic_vulnerability(payload, attributes)
    vulnerability["severity"] = _severity(payload.get("severity"), _stream_kind(event.log_stream), ecr)
    vulnerability["scanner"] = {"vendor": SCANNER_VENDOR}
    result = _envelope(event, region, "finding", ecr)
    result["vulnerability"] = vulnerability
    return result


def _attributes(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ParseError(f"finding attributes is a JSON {_json_type(raw)}, not a list")
    attributes: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise ParseError("finding attribute is not an object with a string key")
        key = item["key"][:MAX_ATTRIBUTE_KEY] or "_"
        value = item.get("value")
        if value is None or value == "":
            continue  # nothing to keep: the schema has no nulls and no empty strings
        value = value if isinstance(value, str) else json.dumps(value)
        unique, n = key, 1
        while unique in attributes:  # a repeated key keeps every value: key, key_2, key_3...
            n += 1
            unique = f"{key}_{n}"
        attributes[unique] = value
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


def _enhanced_vulnerability(payload: dict[str, Any]) -> dict[str, Any]:
    """Inspector (enhanced) finding shape: not written by the Lambda today, mapped in case a writer does."""
    details = payload.get("packageVulnerabilityDetails")
    if not isinstance(details, dict):
        raise ParseError("enhanced finding packageVulnerabilityDetails is not an object")
    vulnerability: dict[str, Any] = {}
    _put_text(vulnerability, "cve", details.get("vulnerabilityId"))
    _put_text(vulnerability, "reference", details.get("sourceUrl"))
    _put_text(vulnerability, "description", payload.get("description"))
    packages = details.get("vulnerablePackages")
    if isinstance(packages, list) and packages and isinstance(packages[0], dict):
        package: dict[str, str] = {}
        _put_text(package, "name", packages[0].get("name"))
        _put_text(package, "version", packages[0].get("version"))
        if package:
            vulnerability["package"] = package
    cvss = details.get("cvss")
    if isinstance(cvss, list) and cvss and isinstance(cvss[0], dict):
        base = _number(cvss[0].get("baseScore"))
        if base is not None:
            vulnerability["score"] = {"base": base}
            _put_text(vulnerability["score"], "version", cvss[0].get("version"))
    return vulnerability


def _severity(raw: Any, stream_kind: str | None, ecr: dict[str, Any]) -> str:
    severity = SEVERITIES.get(str(raw).upper()) if raw is not None else None
    if severity is None:
        severity = SEVERITIES.get(stream_kind or "", "Untriaged")
        if raw is not None and raw != "":
            ecr["original_severity"] = str(raw)[:MAX_ATTRIBUTE_KEY]
    return severity


def _put_text(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value == "":
        return
    target[key] = value if isinstance(value, str) else json.dumps(value)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return number
