"""Command line → Settings. Every value is checked here, before any AWS call."""

from __future__ import annotations

import argparse
import calendar
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from dateutil import parser as dateparser

from wazuh_ecr_scan import __version__
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX

DEFAULT_WAZUH_PATH = "/var/ossec"
DEFAULT_INTERVAL = "5m"
STATE_DB_RELATIVE = os.path.join("wodles", "ecr-scan", "ecr_scan_state.db")
SOCKET_RELATIVE = os.path.join("queue", "sockets", "queue")
# A scan's streams keep filling for up to 900 s after the timestamp its events carry; the rest is
# margin for CloudWatch ingestion delay and clock skew between this host and AWS.
DEFAULT_LATE_WINDOW_S = 20 * 60

_INTERVAL_RE = re.compile(r"^(\d+)([smhdw]?)$")
_INTERVAL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")
_WAZUH_DATE_RE = re.compile(r"^\d{4}-[A-Za-z]{3}-\d{1,2}$")
_MONTHS = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}


@dataclass(frozen=True)
class Settings:
    run_once: bool = False
    interval_s: int = 300
    regions: tuple[str, ...] = ("us-east-1",)
    log_groups: tuple[str, ...] = ()
    log_group_prefix: str = DEFAULT_GROUP_PREFIX
    only_logs_after_ms: int | None = None
    aws_account_id: str | None = None
    aws_profile: str | None = None
    iam_role_arn: str | None = None
    iam_role_duration: int | None = None
    sts_endpoint: str | None = None
    service_endpoint: str | None = None
    remove_log_streams: bool = False
    discard_field: str | None = None
    discard_regex: re.Pattern[str] | None = None
    skip_on_error: bool = False
    debug: int = 0
    wazuh_path: str = DEFAULT_WAZUH_PATH
    socket_path: str = ""
    state_db: str = ""
    output: str = "socket"
    replay: str | None = None
    retry_mode: str = "adaptive"
    max_attempts: int = 8
    late_window_s: int = DEFAULT_LATE_WINDOW_S
    workers: int = 4
    # Requests per second per region and operation; under AWS's quotas (FilterLogEvents 5-25/s by
    # Region, DescribeLogGroups about 10/s) so a pass never takes the account's whole budget.
    max_rate: float = 4.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"bad arguments: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wazuh-ecr-scan",
        description="Read Amazon ECR image-scan findings from CloudWatch Logs and send one Wazuh event "
        "per finding to analysisd.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--run-once", dest="run_once", action="store_true", help="one pass, then exit")
    p.add_argument("--interval", default=DEFAULT_INTERVAL, help="time between passes: 30s, 5m, 1h, 1d")
    p.add_argument("--regions", default="us-east-1", help="comma-separated regions")
    p.add_argument("--aws_log_groups", default="", help="comma-separated group names (default: discover)")
    p.add_argument("--log_group_prefix", default=DEFAULT_GROUP_PREFIX, help="prefix for discovery")
    p.add_argument("--only_logs_after", help="YYYY-MMM-DD or ISO date; start here when there is no state")
    p.add_argument("--aws_account_id", help="account label kept in the state DB")
    p.add_argument("--aws_profile")
    p.add_argument("--iam_role_arn")
    p.add_argument("--iam_role_duration", type=int)
    p.add_argument("--sts_endpoint")
    p.add_argument("--service_endpoint", help="endpoint URL of the CloudWatch Logs client")
    p.add_argument("--remove-log-streams", dest="remove_log_streams", action="store_true")
    p.add_argument(
        "--discard-field", dest="discard_field", help="dotted event field tested by --discard-regex"
    )
    p.add_argument("--discard-regex", dest="discard_regex", help="drop events whose field matches this")
    p.add_argument("--skip_on_error", action="store_true", help="exit 0 even when AWS errors skip groups")
    p.add_argument("--debug", type=int, default=0, choices=range(4), metavar="0-3")
    p.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    p.add_argument("--socket", help="analysisd socket (default <wazuh_path>/queue/sockets/queue)")
    p.add_argument("--state_db", help=f"state file (default <wazuh_path>/{STATE_DB_RELATIVE})")
    p.add_argument("--output", choices=("socket", "stdout"), default="socket")
    p.add_argument("--replay", help="read recorded events from this file instead of CloudWatch")
    p.add_argument("--retry_mode", choices=("adaptive", "standard", "legacy"), default="adaptive")
    p.add_argument("--max_attempts", type=int, default=8, help="attempts per AWS call (botocore retries)")
    p.add_argument("--workers", type=int, default=4, help="groups read at the same time (1-32)")
    p.add_argument("--max_rate", type=float, default=4.0, help="requests/s per region and operation (cap)")
    return p


def parse_args(argv: list[str] | None) -> Settings:
    args = build_parser().parse_args(argv)
    regions = _split(args.regions)
    for region in regions:
        if not _REGION_RE.match(region):
            raise ConfigError(f"--regions: {region!r} is not an AWS region name (e.g. us-east-1)")
    if not regions:
        raise ConfigError("--regions: at least one region is needed")
    if (args.discard_field is None) != (args.discard_regex is None):
        raise ConfigError("--discard-field and --discard-regex go together")
    if args.iam_role_duration is not None and not 900 <= args.iam_role_duration <= 43200:
        raise ConfigError("--iam_role_duration must be between 900 and 43200 seconds")
    if args.max_attempts < 1:
        raise ConfigError("--max_attempts must be at least 1")
    if not 1 <= args.workers <= 32:
        raise ConfigError("--workers must be between 1 and 32")
    if not 0 < args.max_rate <= 100:
        raise ConfigError("--max_rate must be above 0 and at most 100 requests per second")
    groups = _split(args.aws_log_groups)
    if args.replay and not os.path.isfile(args.replay):
        raise ConfigError(f"--replay: {args.replay}: no such file")
    return Settings(
        run_once=args.run_once,
        interval_s=parse_interval(args.interval),
        regions=tuple(regions),
        log_groups=tuple(groups),
        log_group_prefix=args.log_group_prefix,
        only_logs_after_ms=parse_date_ms(args.only_logs_after) if args.only_logs_after else None,
        aws_account_id=args.aws_account_id,
        aws_profile=args.aws_profile,
        iam_role_arn=args.iam_role_arn,
        iam_role_duration=args.iam_role_duration,
        sts_endpoint=args.sts_endpoint,
        service_endpoint=args.service_endpoint,
        remove_log_streams=args.remove_log_streams,
        discard_field=args.discard_field,
        discard_regex=_compile(args.discard_regex) if args.discard_regex else None,
        skip_on_error=args.skip_on_error,
        debug=args.debug,
        wazuh_path=args.wazuh_path,
        socket_path=args.socket or os.path.join(args.wazuh_path, SOCKET_RELATIVE),
        state_db=args.state_db or _default_state_db(args),
        output=args.output,
        replay=args.replay,
        retry_mode=args.retry_mode,
        max_attempts=args.max_attempts,
        workers=args.workers,
        max_rate=args.max_rate,
    )


def parse_interval(text: str) -> int:
    """Wazuh time syntax: a number of seconds, or a number followed by s, m, h, d or w."""
    match = _INTERVAL_RE.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ConfigError(f"--interval: {text!r} is not a positive interval like 30s, 5m, 1h, 1d")
    return int(match[1]) * _INTERVAL_UNITS[match[2]]


def parse_date_ms(text: str) -> int:
    """Wazuh's YYYY-MMM-DD (2024-JAN-01) or an ISO 8601 date/time; naive means UTC."""
    text = text.strip()
    try:
        if _WAZUH_DATE_RE.match(text):
            year, month, day = text.split("-")
            moment = datetime(int(year), _MONTHS[month.upper()], int(day), tzinfo=timezone.utc)
        else:
            moment = dateparser.isoparse(text)
    except (KeyError, ValueError, OverflowError) as exc:
        raise ConfigError(
            f"--only_logs_after: {text!r} is not a date like 2024-JAN-01 or 2024-01-01"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def start_of_today_ms(now_s: float) -> int:
    today = datetime.fromtimestamp(now_s, tz=timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(today.timestamp() * 1000)


def _default_state_db(args: argparse.Namespace) -> str:
    if args.replay:
        return ":memory:"  # a demo replay repeats; give --state_db to replay through a real state file
    if not os.path.isdir(os.path.join(args.wazuh_path, "wodles")):
        raise ConfigError(
            f"no Wazuh installation at {args.wazuh_path} (no wodles/ folder): "
            "give --wazuh_path or --state_db PATH"
        )
    return os.path.join(args.wazuh_path, STATE_DB_RELATIVE)


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--discard-regex: {pattern!r} is not a valid regular expression: {exc}") from exc
