"""Value parsers shared by the command line and the aws-s3 XML reader (ossec_config.py).

Each raises ValueError with a reason; the caller names where the value came from (a flag or a tag), so
a value is refused with the same reason whichever way it came in.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

from botocore.utils import ArnParser, InvalidArnException
from dateutil import parser as dateparser

ROLE_DURATION_S = range(900, 43200 + 1)  # AssumeRole's DurationSeconds (the role's maximum may be lower)
_ACCOUNT_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
YES_NO = {"yes": True, "no": False}
_INTERVAL_RE = re.compile(r"^(\d+)([smhdw]?)$")
_INTERVAL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WAZUH_DATE_RE = re.compile(r"^\d{4}-[A-Za-z]{3}-\d{1,2}$")
# Month names are English whatever the locale: dateutil's fixed table. (calendar.month_abbr and
# strptime's %b follow LC_TIME, which any library calling setlocale(LC_ALL, "") under modulesd would set
# from the environment, e.g. to de_DE where "MAY" is "MAI".)
_MONTHS = dateparser.parserinfo()


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
            year, name, day = text.split("-")
            month = _MONTHS.month(name)
            if month is None:
                raise ValueError(f"no month {name!r}")
            moment = datetime(int(year), month, int(day), tzinfo=timezone.utc)
        else:
            moment = dateparser.isoparse(text)
    except (ValueError, OverflowError) as exc:
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


def account_id(text: str) -> str:
    if not _ACCOUNT_RE.match(text):
        raise ValueError(f"{text!r} is not a 12-digit AWS account ID")
    return text


def region(text: str) -> str:
    if not REGION_RE.match(text):
        raise ValueError(f"{text!r} is not an AWS region name (e.g. us-east-1)")
    return text


def role_arn(text: str) -> str:
    if role_account(text) is None:
        raise ValueError(f"{text!r} is not a role ARN (arn:aws:iam::<account>:role/<name>)")
    return text


def role_account(arn: str | None) -> str | None:
    """The account of an IAM role ARN; None when `arn` is not one."""
    try:
        parts = ArnParser().parse_arn(arn or "")
    except InvalidArnException:
        return None
    is_role = parts["service"] == "iam" and not parts["region"] and parts["resource"].startswith("role/")
    if not is_role or len(parts["resource"]) <= len("role/") or not _ACCOUNT_RE.match(parts["account"]):
        return None
    return parts["account"]


def arn_partition(arn: str) -> str:
    """The partition of an ARN (aws, aws-cn, aws-us-gov, ...); "aws" when `arn` is not one."""
    try:
        return ArnParser().parse_arn(arn)["partition"] or "aws"
    except InvalidArnException:
        return "aws"


def role_duration(text: str | int) -> int:
    """Seconds of an assumed role's session, from a tag's text or an int flag."""
    seconds = int(text) if str(text).isdigit() else None
    if seconds is None or seconds not in ROLE_DURATION_S:
        first, last = ROLE_DURATION_S.start, ROLE_DURATION_S[-1]
        raise ValueError(f"{str(text)!r}: the session duration is {first} to {last} seconds")
    return seconds


def endpoint_url(text: str) -> str:
    """An endpoint URL; a bare host name (Wazuh's docs give bare VPC endpoint names) gets https://."""
    url = text if "://" in text else "https://" + text
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an endpoint URL or host name")
    return url
