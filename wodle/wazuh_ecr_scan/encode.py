"""Wazuh event dict → analysisd datagram, trimmed to fit analysisd's limits instead of being dropped."""

from __future__ import annotations

import json
from typing import Any

EVENT_HEADER = b"1:Wazuh-AWS:"
STATUS_HEADER = b"1:wazuh-ecr-scan:"
MAX_DATAGRAM = 65535
# analysisd.decoder_order_size: the JSON decoder keeps at most this many fields of one event.
MAX_FIELDS = 256
# Text fields cut first, in this order, before the longest of the rest.
TRIM_FIRST = (("vulnerability", "description"), ("aws", "ecr", "raw_message"))
# Never cut below this many characters while another field can give way.
MIN_KEEP = 64

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def encode_event(event: dict[str, Any]) -> bytes:
    data = EVENT_HEADER + _dumps(event).encode("ascii")
    if len(data) <= MAX_DATAGRAM and _field_count_fits(event):
        return data
    return _encode_trimmed(event)


def encode_status(line: str) -> bytes:
    data = STATUS_HEADER + line.replace("\n", " ").encode("utf-8", "replace")
    return data[:MAX_DATAGRAM]


def to_json_line(event: dict[str, Any]) -> str:
    """The payload without the analysisd header (for --output stdout)."""
    return encode_event(event)[len(EVENT_HEADER) :].decode("ascii")


def _field_count_fits(event: dict[str, Any]) -> bool:
    # Cheap upper bound: only a large attribute or count map can push an event past the budget.
    ecr = event.get("aws", {}).get("ecr", {})
    extra = len(ecr.get("attributes", ())) + len(ecr.get("severity_counts", ()))
    return extra < MAX_FIELDS - 64 or count_fields(event) <= MAX_FIELDS


def count_fields(value: Any) -> int:
    if isinstance(value, dict):
        return sum(count_fields(v) for v in value.values())
    return 1


def _encode_trimmed(event: dict[str, Any]) -> bytes:
    event = json.loads(_dumps(event))  # a private deep copy
    ecr = event["aws"].setdefault("ecr", {})
    ecr["trimmed"] = True
    _trim_maps_to_field_budget(event, ecr)
    data = EVENT_HEADER + _dumps(event).encode("ascii")
    while len(data) > MAX_DATAGRAM:
        _shorten_one_field(event, len(data) - MAX_DATAGRAM)
        data = EVENT_HEADER + _dumps(event).encode("ascii")
    return data


def _trim_maps_to_field_budget(event: dict[str, Any], ecr: dict[str, Any]) -> None:
    for key in ("attributes", "severity_counts"):
        excess = count_fields(event) - MAX_FIELDS
        mapping = ecr.get(key)
        if excess <= 0 or not isinstance(mapping, dict):
            continue
        keep = max(len(mapping) - excess - 1, 0)  # -1: room for the *_dropped counter
        ecr[key] = dict(list(mapping.items())[:keep])
        ecr[f"{key}_dropped"] = len(mapping) - keep


def _shorten_one_field(event: dict[str, Any], excess: int) -> None:
    """Cut the first TRIM_FIRST field still longer than MIN_KEEP, else the longest string, by about
    `excess` encoded bytes. Every call shortens one string, so the caller's loop ends."""
    candidates = [path for path in TRIM_FIRST if len(_get(event, path) or "") > MIN_KEEP]
    path = candidates[0] if candidates else max(_string_paths(event), key=lambda p: len(_get(event, p)))
    text = _get(event, path)
    encoded = _encoded_len(text)
    keep = len(text) * max(encoded - excess - 16, 0) // encoded
    if candidates:
        keep = max(keep, MIN_KEEP)
    _set(event, path, text[: min(keep, len(text) - 1)])


def _encoded_len(text: str) -> int:
    return len(_dumps(text)) - 2


def _string_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, item in value.items():
        if isinstance(item, dict):
            paths.extend(_string_paths(item, (*prefix, key)))
        elif isinstance(item, str) and item:
            paths.append((*prefix, key))
    return paths


def _get(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, str) else None


def _set(event: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text
