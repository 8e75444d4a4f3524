"""Wazuh event dict → analysisd datagram, trimmed to fit analysisd's limits instead of being dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

EVENT_HEADER = b"1:Wazuh-AWS:"
STATUS_HEADER = b"1:wazuh-ecr-scan:"
MAX_DATAGRAM = 65535
# On an agent, agentd refuses a message longer than OS_MAXSTR - OS_HEADER_SIZE = 65536 - 128 bytes
# ("(1405) Message size not valid": CreateSecMSG in src/os_crypto/shared/msgs.c; the constants are in
# src/headers/defs.h), so an agent's events are trimmed to this instead.
AGENT_MAX_DATAGRAM = 65536 - 128
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
MAPS = ("attributes", "other_packages", "severity_counts")
# cJSON (analysisd's JSON decoder) refuses a lone UTF-16 surrogate escape, so the whole event is lost;
# a NUL escape cuts the string there. Both are replaced with U+FFFD and counted in the event.
REPLACEMENT = "\ufffd"
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")
_UNSAFE_ESCAPE = re.compile(r"\\u(?:0000|d[89a-f])")

_limit = {"datagram": MAX_DATAGRAM}

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def use_agent_limit(agent: bool) -> None:
    """Trim events to what agentd forwards (on an agent) or what analysisd reads (on a manager)."""
    _limit["datagram"] = AGENT_MAX_DATAGRAM if agent else MAX_DATAGRAM


def max_datagram() -> int:
    return _limit["datagram"]


def is_agent(wazuh_path: str | Path) -> bool:
    """An agent installation, told apart from a manager as `install` does: agentd without analysisd."""
    root = Path(wazuh_path)
    return (root / "bin" / "wazuh-agentd").exists() and not (root / "bin" / "wazuh-analysisd").exists()


def encode_event(event: dict[str, Any]) -> bytes:
    text = _dumps(event)
    if _UNSAFE_ESCAPE.search(text):
        event, replaced = _replace_unsafe(event)
        if replaced:
            ecr = event.setdefault("aws", {}).setdefault("ecr", {})
            ecr["replaced_characters"] = ecr.get("replaced_characters", 0) + replaced
            text = _dumps(event)
    data = EVENT_HEADER + text.encode("ascii")
    if len(data) <= max_datagram() and _field_count_fits(event):
        return data
    return _encode_trimmed(event)


def _replace_unsafe(value: Any) -> tuple[Any, int]:
    """A copy with NULs and lone surrogates replaced in every key and string, and how many."""
    if isinstance(value, str):
        return _UNSAFE_TEXT.subn(REPLACEMENT, value)
    if isinstance(value, dict):
        total = 0
        copy: dict[str, Any] = {}
        for key, item in value.items():
            new_key, n_key = _replace_unsafe(key)
            new_item, n_item = _replace_unsafe(item)
            copy[new_key] = new_item
            total += n_key + n_item
        return copy, total
    if isinstance(value, list):
        items = [_replace_unsafe(item) for item in value]
        return [item for item, _ in items], sum(n for _, n in items)
    return value, 0


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
    extra = sum(len(ecr.get(key, ())) for key in MAPS) + len(ecr.get("full_values", ()))
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
    limit = max_datagram()
    while len(data) > limit:
        excess = len(data) - limit
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
    paths = [p for p in paths if len(text_at(event, p)) > floor]
    if not paths:
        return False
    first = [p for p in TRIM_FIRST if p in paths]
    path = first[0] if first else max(paths, key=lambda p: _encoded_len(text_at(event, p)))
    text = text_at(event, path)
    encoded = _encoded_len(text)
    keep = max(len(text) * max(encoded - excess - 16, 0) // encoded, floor)
    set_text(event, path, text[: min(keep, len(text) - 1)])
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


def text_at(event: dict[str, Any], path: tuple[str, ...]) -> str:
    """The text at a path of keys in the event; "" when it is missing or not text."""
    value: Any = event
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return ""
        value = value[key]
    return value if isinstance(value, str) else ""


def set_text(event: dict[str, Any], path: tuple[str, ...], text: str) -> None:
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = text
