"""Enhanced (Amazon Inspector) finding messages → the event's `vulnerability` and `aws.ecr` fields.

Two shapes arrive, told apart from basic findings by their keys (`packageVulnerabilityDetails` or
`findingArn`): ECR's `EnhancedImageScanFinding` (DescribeImageScanFindings `enhancedFindings`) and
Inspector's `Finding` (the `detail` of an `Inspector2 Finding` event). Member names are those of
botocore's service models (`ecr/2015-09-21`, `inspector2/2020-06-08`); see docs/event-schema.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from dateutil import parser as dateparser

ENHANCED_KEYS = ("packageVulnerabilityDetails", "findingArn")
SCANNER_VENDOR = "Amazon Inspector"
STATUSES = {"ACTIVE": "Active", "CLOSED": "Solved", "SUPPRESSED": "Suppressed"}
NO_FIX = "NotAvailable"  # Inspector's fixedInVersion when there is no fix
MAX_OTHER_PACKAGES = 200  # kept under aws.ecr.other_packages; the rest counted
MAX_SHORT_TEXT = 256  # ids, ARNs, enum words, vectors
# Epoch numbers above this are milliseconds (year 5138 in seconds).
MILLIS_THRESHOLD = 10**11


def is_enhanced(payload: dict[str, Any]) -> bool:
    return any(key in payload for key in ENHANCED_KEYS)


def enhanced_fields(payload: dict[str, Any], ecr: dict[str, Any]) -> dict[str, Any]:
    """The `vulnerability` object; `aws.ecr` fields are added to `ecr`. Severity is set by the caller."""
    details = payload.get("packageVulnerabilityDetails")
    details = details if isinstance(details, dict) else {}
    vulnerability: dict[str, Any] = {}
    _put(vulnerability, "cve", details.get("vulnerabilityId"))
    _put(vulnerability, "reference", _reference(details))
    _put(vulnerability, "description", payload.get("description"), limit=None)
    package = _packages(details, ecr)
    if package:
        vulnerability["package"] = package
    score = _score(payload, details)
    if score:
        vulnerability["score"] = score
    else:
        _put(ecr, "score_unparsed", _unreadable_score(payload, details))
    _status(payload.get("status"), vulnerability, ecr)
    _finding_context(payload, details, ecr)
    _resource_identity(payload.get("resources"), ecr)
    note = alert_note(ecr.get("exploit_available"), ecr.get("fix_available"), package.get("fixed_version"))
    if note:
        ecr["alert_note"] = note
    return vulnerability


def alert_note(exploit: Any, fix: Any, fixed_version: str | None) -> str:
    """The text the severity rules append to their description: known exploit, fix available."""
    parts = []
    if exploit == "YES":
        parts.append("exploit available")
    if fix == "YES":
        parts.append(f"fix available: {fixed_version}" if fixed_version else "fix available")
    elif fix == "PARTIAL":
        parts.append("fix available for some packages")
    return f" ({'; '.join(parts)})" if parts else ""


def iso_utc(value: Any) -> str | None:
    """ISO 8601 UTC (`2021-12-03T18:02:30Z`) from an ISO string, AWS's sample-event form
    (`Dec 3, 2021, 6:02:30 PM`, read as UTC) or epoch seconds/milliseconds; None when unreadable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None
            seconds = value / 1000 if abs(value) >= MILLIS_THRESHOLD else value
            moment = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
        elif isinstance(value, str) and value.strip():
            moment = dateparser.parse(value[:MAX_SHORT_TEXT])
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
        else:
            return None
        moment = moment.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError, OSError, TypeError, ArithmeticError):  # ParserError is a ValueError
        return None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def _reference(details: dict[str, Any]) -> Any:
    source_url = details.get("sourceUrl")
    if isinstance(source_url, str) and source_url:
        return source_url
    urls = details.get("referenceUrls")
    if isinstance(urls, list):
        return next((url for url in urls if isinstance(url, str) and url), None)
    return None


def _packages(details: dict[str, Any], ecr: dict[str, Any]) -> dict[str, str]:
    """The first vulnerable package as `vulnerability.package`; the others, name → version, under
    `aws.ecr.other_packages` (repeated names get `_2`, `_3`...)."""
    packages = [p for p in details.get("vulnerablePackages") or () if isinstance(p, dict)]
    if not isinstance(details.get("vulnerablePackages"), list) or not packages:
        return {}
    first, others = packages[0], packages[1:]
    package: dict[str, str] = {}
    _put(package, "name", first.get("name"))
    _put(package, "version", first.get("version"))
    fixed = first.get("fixedInVersion")
    if fixed != NO_FIX:
        _put(package, "fixed_version", fixed)
    _put(package, "path", first.get("filePath"))
    _put(package, "manager", first.get("packageManager"))
    kept: dict[str, str] = {}
    next_suffix: dict[str, int] = {}
    for other in others[:MAX_OTHER_PACKAGES]:
        name = str(other.get("name") or "_")[:MAX_SHORT_TEXT]
        version = other.get("version")
        version = version if isinstance(version, str) else json.dumps(version)
        kept[unique_key(name, kept, next_suffix)] = version
    if kept:
        ecr["other_packages"] = kept
    if len(others) > MAX_OTHER_PACKAGES:
        ecr["other_packages_dropped"] = len(others) - MAX_OTHER_PACKAGES
    return package


def unique_key(key: str, taken: dict[str, Any], next_suffix: dict[str, int]) -> str:
    """`key`, else `key_2`, `key_3`... the first not in `taken`. Linear over a whole list: each
    (key, n) is tried once, because `next_suffix` remembers where the last search for `key` stopped
    (and `key_n` splits back into one key and one number only)."""
    if key not in taken:
        return key
    n = next_suffix.get(key, 1)
    while True:
        n += 1
        candidate = f"{key}_{n}"
        if candidate not in taken:
            next_suffix[key] = n
            return candidate


def _score(payload: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """The CVSS score Inspector used: ECR's `scoreDetails.cvss` / `score`, Inspector's
    `inspectorScoreDetails.adjustedCvss` / `inspectorScore`, else the first of `cvss[]`."""
    for container, key, top in (
        ("scoreDetails", "cvss", "score"),
        ("inspectorScoreDetails", "adjustedCvss", "inspectorScore"),
    ):
        holder = payload.get(container)
        used = holder.get(key) if isinstance(holder, dict) else None
        used = used if isinstance(used, dict) else {}
        base = number(used.get("score"))
        if base is None:
            base = number(payload.get(top))
        if base is not None:
            score: dict[str, Any] = {"base": base}
            _put(score, "version", used.get("version"))
            _put(score, "vector", used.get("scoringVector"))
            return score
    cvss = details.get("cvss")
    if isinstance(cvss, list) and cvss and isinstance(cvss[0], dict):
        base = number(cvss[0].get("baseScore"))
        if base is not None:
            score = {"base": base}
            _put(score, "version", cvss[0].get("version"))
            _put(score, "vector", cvss[0].get("scoringVector"))
            return score
    return {}


def _unreadable_score(payload: dict[str, Any], details: dict[str, Any]) -> Any:
    """A score given but not a finite number (a 401-digit one, say): kept as written, not dropped."""
    cvss = details.get("cvss")
    candidates = [payload.get("score"), payload.get("inspectorScore")]
    if isinstance(cvss, list) and cvss and isinstance(cvss[0], dict):
        candidates.append(cvss[0].get("baseScore"))
    for raw in candidates:
        if raw is not None and not isinstance(raw, dict | list) and number(raw) is None:
            return raw
    return None


def _status(raw: Any, vulnerability: dict[str, Any], ecr: dict[str, Any]) -> None:
    if raw is None or raw == "":
        return
    status = STATUSES.get(str(raw).upper())
    if status is None:
        ecr["original_status"] = str(raw)[:MAX_SHORT_TEXT]
        return
    vulnerability["status"] = status


def _finding_context(payload: dict[str, Any], details: dict[str, Any], ecr: dict[str, Any]) -> None:
    ecr["scan_type"] = "enhanced"
    _put(ecr, "finding_arn", payload.get("findingArn"))
    _put(ecr, "title", payload.get("title"))
    _put(ecr, "finding_type", payload.get("type"))
    _put(ecr, "account_id", payload.get("awsAccountId"))
    _put(ecr, "fix_available", payload.get("fixAvailable"))
    _put(ecr, "exploit_available", payload.get("exploitAvailable"))
    _put(ecr, "vendor_severity", details.get("vendorSeverity"))
    _put(ecr, "vulnerability_source", details.get("source"))
    for key, field in (
        ("firstObservedAt", "first_observed"),
        ("lastObservedAt", "last_observed"),
        ("updatedAt", "updated_at"),
    ):
        _time(ecr, field, payload.get(key))
    exploitability = payload.get("exploitabilityDetails")
    if isinstance(exploitability, dict):
        _time(ecr, "last_known_exploit", exploitability.get("lastKnownExploitAt"))
    epss = payload.get("epss")
    if isinstance(epss, dict) and number(epss.get("score")) is not None:
        ecr["epss_score"] = number(epss.get("score"))
    remediation = payload.get("remediation")
    recommendation = remediation.get("recommendation") if isinstance(remediation, dict) else None
    if isinstance(recommendation, dict):
        _put(ecr, "remediation", recommendation.get("text"), limit=1024)


def _time(ecr: dict[str, Any], field: str, raw: Any) -> None:
    if raw is None or raw == "":
        return
    iso = iso_utc(raw)
    if iso is None:  # kept as written, so nothing is lost; the rules never read it
        ecr[f"{field}_unparsed"] = (raw if isinstance(raw, str) else json.dumps(raw))[:MAX_SHORT_TEXT]
        return
    ecr[field] = iso


def _resource_identity(resources: Any, ecr: dict[str, Any]) -> None:
    """Digest, tag and repository from the finding's ECR image resource, where the names gave none."""
    if not isinstance(resources, list):
        return
    for resource in resources:
        details = resource.get("details") if isinstance(resource, dict) else None
        image = details.get("awsEcrContainerImage") if isinstance(details, dict) else None
        if not isinstance(image, dict):
            continue
        if "image_digest" not in ecr:
            _put(ecr, "image_digest", image.get("imageHash"))
        tags = image.get("imageTags")
        if "image_tag" not in ecr and isinstance(tags, list) and tags:
            _put(ecr, "image_tag", tags[0])
        if "repository" not in ecr:
            _put(ecr, "repository", image.get("repositoryName"))
        return


def _put(target: dict[str, Any], key: str, value: Any, limit: int | None = MAX_SHORT_TEXT) -> None:
    if value is None or value == "" or isinstance(value, dict | list):
        return
    text = value if isinstance(value, str) else json.dumps(value)
    target[key] = text if limit is None else text[:limit]


def number(value: Any) -> float | int | None:
    """A finite number from a JSON number or numeric text; None for anything else (booleans too)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
