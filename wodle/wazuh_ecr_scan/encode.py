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
# What names the event: shortened only when nothing else is left to cut.
IDENTITY = {
    ("integration",),
    ("aws", "source"),
    ("aws", "event_type"),
    ("aws", "region"),
    ("aws", "log_info"),
    ("aws", "ecr", "repository"),
    ("aws", "ecr", "image_digest"),
    ("aws", "ecr", "image_tag"),
    ("aws", "ecr", "scan_time"),
}
MAPS = ("attributes", "severity_counts")

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def encode_event(event: dict[str, Any]) -> bytes:
    data = EVENT_HEADER + _dumps(event).encode("ascii")
    if len(data) <= MAX_DATAGRAM and _field_count_fits(event):
        return data
    return _encode_trimmed(event)


def encode_status(line: str) -> bytes:
    one_line = line.replace("\r", " ").replace("\n", " ")
    data = STATUS_HEADER + one_line.encode("utf-8", "replace")
    # Cut at a character boundary: a byte cut could leave half a UTF-8 sequence at the end.
    return data[:MAX_DATAGRAM].decode("utf-8", "ignore").encode("utf-8")


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
    """Fit the field budget, then the datagram: cut free text (description first), then drop map
    entries (attributes, counts), and only as a last resort shorten the names that identify the event."""
    event = json.loads(_dumps(event))  # a private deep copy
    ecr = event["aws"].setdefault("ecr", {})
    ecr["trimmed"] = True
    _trim_maps_to_field_budget(event, ecr)
    data = EVENT_HEADER + _dumps(event).encode("ascii")
    while len(data) > MAX_DATAGRAM:
        excess = len(data) - MAX_DATAGRAM
        free_text = [p for p in _string_paths(event) if p[:2] not in IDENTITY and p[:3] not in IDENTITY]
        if not (
            _shorten_text(event, excess, free_text, MIN_KEEP)
            or _drop_map_entries(ecr, excess)
            or _shorten_text(event, excess, _string_paths(event), 0)
        ):
            raise ValueError("event cannot be cut under the datagram limit")  # keys alone over 64 KiB
        data = EVENT_HEADER + _dumps(event).encode("ascii")
    return data


def _trim_maps_to_field_budget(event: dict[str, Any], ecr: dict[str, Any]) -> None:
    for key in MAPS:
        excess = count_fields(event) - MAX_FIELDS
        mapping = ecr.get(key)
        if excess <= 0 or not isinstance(mapping, dict):
            continue
        keep = max(len(mapping) - excess - 1, 0)  # -1: room for the *_dropped counter
        ecr[key] = dict(list(mapping.items())[:keep])
        ecr[f"{key}_dropped"] = len(mapping) - keep


def _shorten_text(event: dict[str, Any], excess: int, paths: list[tuple[str, ...]], floor: int) -> bool:
    """Cut the first TRIM_FIRST field, else the longest of `paths`, longer than `floor`, by about
    `excess` encoded bytes. False when no such field is left."""
    paths = [p for p in paths if len(_get(event, p)) > floor]
    if not paths:
        return False
    first = [p for p in TRIM_FIRST if p in paths]
    path = first[0] if first else max(paths, key=lambda p: _encoded_len(_get(event, p)))
    text = _get(event, path)
    encoded = _encoded_len(text)
    keep = max(len(text) * max(encoded - excess - 16, 0) // encoded, floor)
    _set(event, path, text[: min(keep, len(text) - 1)])
    return True


def _drop_map_entries(ecr: dict[str, Any], excess: int) -> bool:
    """Drop entries from the end of the attribute (then count) map until about `excess` bytes are gone."""
    for key in MAPS:
        mapping = ecr.get(key)
        if not isinstance(mapping, dict) or not mapping:
            continue
        items = list(mapping.items())
        while items and excess > 0:
            name, value = items.pop()
            excess -= len(_dumps({name: value}))
            ecr[f"{key}_dropped"] = ecr.get(f"{key}_dropped", 0) + 1
        ecr[key] = dict(items)
        return True
    return False


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


def _get(event: dict[str, Any], path: tuple[str, ...]) -> str:
    value: Any = event
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return ""
        value = value[key]
    return value if isinstance(value, str) else ""


def _set(event: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text
