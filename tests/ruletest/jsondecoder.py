"""JSON_Decoder (json_decoder.c): every value becomes a string field named by its dotted path."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import UnsupportedConstruct
from .event import JSON_STATIC_KEYS, Event

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)


class _Pairs(list):
    """A JSON object kept as ordered (key, value) pairs: cJSON keeps duplicate keys."""


def json_decode(text: str, event: Event) -> None:
    try:
        # cJSON_Parse reads one value and ignores what follows it.
        value, _ = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_no_constant).raw_decode(text)
    except ValueError:
        return  # malformed JSON: the event keeps the json decoder but gets no fields
    _read(value, None, event)


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # cJSON rejects NaN/Infinity, so the whole parse fails


def _read(value: Any, key: str | None, event: Event) -> None:
    if isinstance(value, _Pairs):
        for sub_key, sub_value in value:
            _read(sub_value, sub_key if key is None else f"{key}.{sub_key}", event)
        return
    if key is None:
        return  # a top-level scalar or array yields no fields
    if isinstance(value, list):
        if not value:
            raise UnsupportedConstruct("JSON decoding of an empty array is not implemented")
        _fill(event, key, cjson_print(value))
    elif value is None:
        _fill(event, key, "null")  # decoder.h: JSON_TREAT_NULL_DEFAULT is "as string"
    else:
        _fill(event, key, scalar_text(value))


def scalar_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value.split("\x00", 1)[0]  # cJSON decodes \u0000 to a NUL byte; strdup stops there
    return number_text(float(value))


def number_text(number: float) -> str:
    """`%i` when cJSON's saturated valueint equals valuedouble, else `%f`."""
    if number >= INT_MAX:
        as_int = INT_MAX
    elif number <= INT_MIN:
        as_int = INT_MIN
    else:
        as_int = int(number)
    return str(as_int) if float(as_int) == number else f"{number:f}"


def cjson_print(value: Any) -> str:
    """cJSON_PrintUnformatted (cJSON 1.7: numbers as %1.15g, or %1.17g when that does not round-trip)."""
    if isinstance(value, _Pairs):
        return "{" + ",".join(f"{_cjson_string(k)}:{cjson_print(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(cjson_print(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _cjson_string(value)
    return _cjson_number(float(value))


def _cjson_number(number: float) -> str:
    if math.isnan(number) or math.isinf(number):
        return "null"
    integral = number_text(number)
    if "." not in integral:
        return integral  # print_number: `%d` when valuedouble equals valueint
    text = f"{number:1.15g}"
    return text if float(text) == number else f"{number:1.17g}"


def _cjson_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _fill(event: Event, key: str, value: str) -> None:
    if key in JSON_STATIC_KEYS:
        event.static[key] = value
    else:
        event.fields.append((key, value))
