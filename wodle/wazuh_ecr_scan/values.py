"""Value parsers shared by the command line (config.py) and the aws-s3 XML reader (ossec_config.py).

Each raises ValueError with a reason; the caller names where the value came from (a flag or a tag).
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timezone

from dateutil import parser as dateparser

ROLE_ARN_RE = re.compile(r"^arn:[^:\n]*:iam::(\d{12}):role/.+$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
YES_NO = {"yes": True, "no": False}
_INTERVAL_RE = re.compile(r"^(\d+)([smhdw]?)$")
_INTERVAL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WAZUH_DATE_RE = re.compile(r"^\d{4}-[A-Za-z]{3}-\d{1,2}$")
_MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}


def interval_seconds(text: str) -> int:
    """Wazuh time syntax: a number of seconds, or a number followed by s, m, h, d or w."""
    match = _INTERVAL_RE.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a positive interval like 30s, 5m, 1h, 1d")
    return int(match[1]) * _INTERVAL_UNITS[match[2]]


def date_ms(text: str) -> int:
    """Wazuh's YYYY-MMM-DD (2024-JAN-01) or an ISO 8601 date/time; naive means UTC."""
    text = text.strip()
    try:
        if _WAZUH_DATE_RE.match(text):
            year, month, day = text.split("-")
            moment = datetime(int(year), _MONTHS[month.upper()], int(day), tzinfo=timezone.utc)
        else:
            moment = dateparser.isoparse(text)
    except (KeyError, ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a date like 2024-JAN-01 or 2024-01-01") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc


def yes_no(text: str) -> bool:
    """`yes` or `no`, exactly, as Wazuh's module readers take them."""
    if text not in YES_NO:
        raise ValueError(f"{text!r} is not one of: yes, no")
    return YES_NO[text]
