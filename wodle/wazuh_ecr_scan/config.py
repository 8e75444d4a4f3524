"""Command line (and --config, the aws-s3 wodle's XML) → Settings. Every value is checked here, before
any AWS call."""

from __future__ import annotations

import argparse
import configparser
import contextlib
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from wazuh_ecr_scan import __version__, ossec_config
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.logs import log
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX
from wazuh_ecr_scan.ossec_config import ServiceBlock, WodleBlock
from wazuh_ecr_scan.values import (
    REGION_RE,
    ROLE_ARN_RE,
    compile_pattern,
    date_ms,
    interval_seconds,
    split_list,
)

DEFAULT_WAZUH_PATH = "/var/ossec"
DEFAULT_INTERVAL = "5m"
STATE_DB_RELATIVE = os.path.join("wodles", "ecr-scan", "ecr_scan_state.db")
SOCKET_RELATIVE = os.path.join("queue", "sockets", "queue")
# A scan's streams keep filling for up to 900 s after the timestamp its events carry; the rest is
# margin for CloudWatch ingestion delay and clock skew between this host and AWS.
DEFAULT_LATE_WINDOW_S = 20 * 60


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
    state_db_given: bool = False  # --state_db on the command line (else the default under wazuh_path)
    output: str = "socket"
    replay: str | None = None
    retry_mode: str = "adaptive"
    max_attempts: int = 8
    late_window_s: int = DEFAULT_LATE_WINDOW_S
    workers: int = 4
    # Requests per second per region and operation; under AWS's quotas (FilterLogEvents 5-25/s by
    # Region, DescribeLogGroups about 10/s) so a pass never takes the account's whole budget.
    max_rate: float = 4.0
    aws_account_alias: str | None = None
    config_file: str | None = None
    check_config: bool = False
    log_file: str | None = None
    lock_wait_s: int = 60
    run_on_start: bool = True
    disabled: bool = False
    # --config: state-DB label of this service block (see account), where it was read, and a discard_regex
    # without `field`, which tests the raw CloudWatch message as Wazuh's cloudwatchlogs service does.
    account_label: str | None = None
    origin: str = "command line"
    raw_discard_regex: re.Pattern[str] | None = None
    # --config: one Settings per <service type="cloudwatchlogs"> block, each read in every pass.
    services: tuple[Settings, ...] = ()
    # Finding lifecycle (lifecycle.py); images not scanned for lifecycle_days are forgotten.
    lifecycle: bool = True
    lifecycle_days: int = 90

    @property
    def account(self) -> str:
        """This block's label, in log lines; the state DB keys a replay's offsets by it. Live reads are
        keyed by the account the credentials resolve to (aws.resolve_account), whatever the label."""
        return self.account_label or state_label(
            self.aws_account_id, self.aws_account_alias, self.iam_role_arn, self.aws_profile
        )

    def passes(self) -> tuple[Settings, ...]:
        """The settings of each service block read in a pass: the file's blocks, or the command line."""
        return self.services or (self,)


class StrictParser(argparse.ArgumentParser):
    """Raises ConfigError (exit 2, one log line) instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"bad arguments: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = StrictParser(
        prog="wazuh-ecr-scan",
        description="Read Amazon ECR image-scan findings from CloudWatch Logs and send one Wazuh event "
        "per finding to analysisd.",
        epilog="exit codes: 0 ok; 1 internal error; 2 configuration error; 3 AWS credentials; 4 AWS error "
        "(groups skipped); 5 analysisd socket; 6 state file; 7 pass interrupted by a signal (e.g. "
        "modulesd's <timeout>) before every group was read",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--run-once", dest="run_once", action="store_true", help="one pass, then exit")
    p.add_argument("--interval", default=DEFAULT_INTERVAL, help="time between passes: 30s, 5m, 1h, 1d")
    p.add_argument("-r", "--regions", default="us-east-1", help="comma-separated regions")
    p.add_argument(
        "-g", "--aws_log_groups", default="", help="comma-separated group names (default: discover)"
    )
    p.add_argument("--log_group_prefix", default=DEFAULT_GROUP_PREFIX, help="prefix for discovery")
    p.add_argument(
        "-s", "--only_logs_after", help="YYYY-MMM-DD or ISO date; start here when there is no state"
    )
    p.add_argument("-c", "--aws_account_id", help="account label (log lines; the state key of a --replay)")
    p.add_argument("-p", "--aws_profile")
    p.add_argument("-i", "--iam_role_arn")
    p.add_argument("-rd", "--iam_role_duration", type=int)
    p.add_argument("-st", "--sts_endpoint")
    p.add_argument("-se", "--service_endpoint", help="endpoint URL of the CloudWatch Logs client")
    p.add_argument("-P", "--remove-log-streams", dest="remove_log_streams", action="store_true")
    p.add_argument(
        "-df", "--discard-field", dest="discard_field", help="dotted event field tested by --discard-regex"
    )
    p.add_argument(
        "-dr", "--discard-regex", dest="discard_regex", help="drop events whose field matches this"
    )
    p.add_argument(
        "-e", "--skip_on_error", action="store_true", help="exit 0 even when AWS errors skip groups"
    )
    p.add_argument(
        "-d",
        "--debug",
        type=int,
        default=None,
        choices=range(4),
        metavar="0-3",
        help="default: wazuh_modules.debug of <wazuh_path>/etc/local_internal_options.conf, as modulesd",
    )
    p.add_argument(
        "-sr",
        "--service",
        choices=("cloudwatchlogs",),
        help="as in aws-s3 command lines; only cloudwatchlogs is read",
    )
    p.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    p.add_argument("--socket", help="analysisd socket (default <wazuh_path>/queue/sockets/queue)")
    p.add_argument("--state_db", help=f"state file (default <wazuh_path>/{STATE_DB_RELATIVE})")
    p.add_argument("--output", choices=("socket", "stdout"), default="socket")
    p.add_argument(
        "--replay",
        help="read recorded events from this file instead of CloudWatch (no AWS call: state, if "
        "--state_db is given, is kept under the account label, not a resolved account)",
    )
    p.add_argument("--retry_mode", choices=("adaptive", "standard", "legacy"), default="adaptive")
    p.add_argument("--max_attempts", type=int, default=8, help="attempts per AWS call (botocore retries)")
    p.add_argument("--workers", type=int, default=4, help="groups read at the same time (1-32)")
    p.add_argument("--max_rate", type=float, default=4.0, help="requests/s per region and operation (cap)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help='aws-s3 wodle XML: <wodle name="aws-s3"> blocks or a whole ossec.conf (flags override it)',
    )
    p.add_argument("-n", "--aws_account_alias", help="account label when there is no --aws_account_id")
    p.add_argument(
        "--check-config",
        dest="check_config",
        action="store_true",
        help="check configuration, credentials and permissions, print the resolved settings; exit 0, "
        "1 when a check failed, 2 when the configuration cannot be read",
    )
    p.add_argument("--log_file", metavar="FILE", help="also append log lines to FILE (e.g. logs/ossec.log)")
    p.add_argument(
        "--lock_wait",
        type=int,
        default=60,
        metavar="SECONDS",
        help="wait this long for another instance using the same state file (default 60), then exit 6",
    )
    p.add_argument(
        "--lifecycle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mark findings new/persisting/changed/resolved and send resolved and scan_changes events, so "
        "only what changed alerts (default on; --no-lifecycle: events as read, every rescan alerts)",
    )
    p.add_argument("--lifecycle_days", type=int, default=90, help="forget images not scanned for N days")
    return p


def early_options(argv: list[str]) -> tuple[int, str | None]:
    """--debug and --log_file alone, for logging set up before the full parse; (0, None) if unreadable."""
    parser = StrictParser(add_help=False)
    parser.add_argument("-d", "--debug")
    parser.add_argument("-df", "-dr")  # so that "-df x" is not read as "-d f"
    parser.add_argument("--log_file")
    parser.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    try:
        args, _ = parser.parse_known_args(argv)
    except ConfigError:
        return 0, None
    if args.debug is None:
        return wazuh_modules_debug(args.wazuh_path), args.log_file
    debug = int(args.debug) if args.debug in ("0", "1", "2", "3") else 0
    return debug, args.log_file


def wazuh_modules_debug(wazuh_path: str) -> int:
    """`wazuh_modules.debug` (0-2) of etc/local_internal_options.conf, else of etc/internal_options.conf:
    the level wazuh-modulesd takes when started without -d (src/wazuh_modules/main.c,
    getDefine_Int("wazuh_modules", "debug", 0, 2)) and passes on to its own wodles as --debug N
    (src/wazuh_modules/wm_aws.c)."""
    for name in ("local_internal_options.conf", "internal_options.conf"):
        value = _internal_option(os.path.join(wazuh_path, "etc", name), "wazuh_modules.debug")
        if value is not None:
            return min(max(int(value), 0), 2) if value.isdigit() else 0
    return 0


def _internal_option(path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    value = None
    for line in lines:
        key, sep, text = line.split("#", 1)[0].partition("=")
        if sep and key.strip() == name:
            value = text.strip()  # the last one counts
    return value


def early_status_socket(argv: list[str]) -> str | None:
    """Where status lines of a run that ends before (or after) its own sender go: the analysisd socket of
    --socket or --wazuh_path; None for --output stdout and --check-config, which send nothing."""
    parser = StrictParser(add_help=False)
    parser.add_argument("--socket")
    parser.add_argument("--wazuh_path", default=DEFAULT_WAZUH_PATH)
    parser.add_argument("--output", default="socket")
    parser.add_argument("--check-config", dest="check_config", action="store_true")
    try:
        args, _ = parser.parse_known_args(argv)
    except ConfigError:
        return None
    if args.output != "socket" or args.check_config:
        return None
    return args.socket or os.path.join(args.wazuh_path, SOCKET_RELATIVE)


def parse_args(argv: list[str] | None) -> Settings:
    args = build_parser().parse_args(argv)
    settings = _from_args(args)
    if args.config:
        settings = apply_config_file(settings, args.config, explicit_flags(argv))
    return settings


def _from_args(args: argparse.Namespace) -> Settings:
    regions = split_list(args.regions)
    for region in regions:
        if not REGION_RE.match(region):
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
    if not 0 <= args.lock_wait <= 3600:
        raise ConfigError("--lock_wait must be between 0 and 3600 seconds")
    if not 0 < args.max_rate <= 100:
        raise ConfigError("--max_rate must be above 0 and at most 100 requests per second")
    groups = split_list(args.aws_log_groups)
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
        debug=args.debug if args.debug is not None else wazuh_modules_debug(args.wazuh_path),
        wazuh_path=args.wazuh_path,
        socket_path=args.socket or os.path.join(args.wazuh_path, SOCKET_RELATIVE),
        state_db=args.state_db or _default_state_db(args),
        state_db_given=args.state_db is not None,
        output=args.output,
        replay=args.replay,
        retry_mode=args.retry_mode,
        max_attempts=args.max_attempts,
        workers=args.workers,
        max_rate=args.max_rate,
        aws_account_alias=args.aws_account_alias,
        config_file=args.config,
        check_config=args.check_config,
        log_file=args.log_file,
        lock_wait_s=args.lock_wait,
        lifecycle=args.lifecycle,
        lifecycle_days=_positive(args.lifecycle_days, "--lifecycle_days"),
    )


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise ConfigError(f"{flag} must be at least 1")
    return value


def explicit_flags(argv: list[str] | None) -> set[str]:
    """The `dest` of every option given on the command line (defaults left out)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


# Command-line flags that override the value of every service block of --config.
_SERVICE_FLAGS = {
    "regions": ("regions",),
    "aws_log_groups": ("log_groups",),
    "only_logs_after": ("only_logs_after_ms",),
    "aws_account_id": ("aws_account_id",),
    "aws_account_alias": ("aws_account_alias",),
    "aws_profile": ("aws_profile",),
    "iam_role_arn": ("iam_role_arn",),
    "iam_role_duration": ("iam_role_duration",),
    "sts_endpoint": ("sts_endpoint",),
    "service_endpoint": ("service_endpoint",),
    "remove_log_streams": ("remove_log_streams",),
    "discard_field": ("discard_field", "discard_regex", "raw_discard_regex"),
    "discard_regex": ("discard_field", "discard_regex", "raw_discard_regex"),
}


def apply_config_file(cli: Settings, path: str, explicit: set[str]) -> Settings:
    """Settings from the aws-s3 blocks of `path`; flags given on the command line win."""
    config = ossec_config.load(path)
    enabled = [block for block in config.blocks if not block.disabled]
    if not enabled:  # nothing runs; --check-config still checks the file's services, not the defaults
        disabled = [s for block in config.blocks for s in block.services]
        services = tuple(_service_settings(cli, path, s, explicit) for s in disabled)
        return replace(services[0] if services else cli, disabled=True, services=services)
    services = [s for block in enabled for s in block.services]
    if not services:
        raise ConfigError(
            f"configuration error at '{path}': no <service type=\"cloudwatchlogs\"> in the enabled "
            '<wodle name="aws-s3"> blocks: nothing to read'
        )
    # Blocks whose credentials resolve to the same account may list the same groups: each group is read
    # once per pass, by the first block that lists it (Poller._claim).
    passes = tuple(_service_settings(cli, path, service, explicit) for service in services)
    module = {
        # Several blocks, one pass: the shortest interval; errors are skipped only if every block says so.
        "interval_s": cli.interval_s if "interval" in explicit else min(_interval(b) for b in enabled),
        "skip_on_error": cli.skip_on_error or all(b.skip_on_error for b in enabled),
        "run_on_start": any(b.run_on_start for b in enabled),
    }
    return replace(passes[0], services=tuple(replace(p, **module) for p in passes), **module)


def _interval(block: WodleBlock) -> int:
    return block.interval_s or parse_interval(DEFAULT_INTERVAL)


def _service_settings(cli: Settings, path: str, service: ServiceBlock, explicit: set[str]) -> Settings:
    values = {
        "regions": service.regions,
        "log_groups": service.aws_log_groups,
        "only_logs_after_ms": service.only_logs_after_ms,
        "aws_account_id": service.aws_account_id,
        "aws_account_alias": service.aws_account_alias,
        "aws_profile": service.aws_profile,
        "iam_role_arn": service.iam_role_arn,
        "iam_role_duration": service.iam_role_duration,
        "sts_endpoint": service.sts_endpoint,
        "service_endpoint": service.service_endpoint,
        "remove_log_streams": service.remove_log_streams,
        "discard_field": service.discard_field,
        "discard_regex": service.discard_regex if service.discard_field else None,
        "raw_discard_regex": None if service.discard_field else service.discard_regex,
    }
    for flag, names in _SERVICE_FLAGS.items():
        if flag in explicit:
            values.update({name: getattr(cli, name) for name in names})
    origin = f"{path} line {service.line}"
    if not values["regions"]:
        values["regions"] = (_profile_region(values["aws_profile"], origin),)
    label = state_label(
        values["aws_account_id"], values["aws_account_alias"], values["iam_role_arn"], values["aws_profile"]
    )
    return replace(cli, account_label=label, origin=origin, **values)


def state_label(account_id: str | None, alias: str | None, role_arn: str | None, profile: str | None) -> str:
    """The label an account's offsets are kept under, the same from the command line and --config:
    two accounts read through one state file must never share a group's window."""
    role = ROLE_ARN_RE.match(role_arn or "")
    return account_id or alias or (role[1] if role else None) or profile or "default"


def _profile_region(profile: str | None, origin: str) -> str:
    """The profile's region in the AWS config file, as Wazuh's wodle takes it when <regions> is absent."""
    path = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    parser = configparser.RawConfigParser()
    with contextlib.suppress(configparser.Error):
        parser.read(path)
    name = profile or "default"
    for section in (name, f"profile {name}"):
        if parser.has_option(section, "region") and REGION_RE.match(parser.get(section, "region").strip()):
            return parser.get(section, "region").strip()
    log.warning(
        "%s: no <regions> and profile %r has no region in %s: reading us-east-1 only "
        "(Wazuh's wodle would try every region); set <regions>",
        origin,
        name,
        path,
    )
    return "us-east-1"


def parse_interval(text: str) -> int:
    """Wazuh time syntax: a number of seconds, or a number followed by s, m, h, d or w."""
    try:
        return interval_seconds(text)
    except ValueError as exc:
        raise ConfigError(f"--interval: {exc}") from exc


def parse_date_ms(text: str) -> int:
    """Wazuh's YYYY-MMM-DD (2024-JAN-01) or an ISO 8601 date/time; naive means UTC."""
    try:
        return date_ms(text)
    except ValueError as exc:
        raise ConfigError(f"--only_logs_after: {exc}") from exc


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


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return compile_pattern(pattern)
    except ValueError as exc:
        raise ConfigError(f"--discard-regex: {exc}") from exc
