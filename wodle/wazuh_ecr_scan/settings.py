"""Settings of a run and of each service it reads, from the command line and --config (the aws-s3 wodle's
XML). Every value is checked here, before any AWS call: each value by the rule values.py gives it, whether
it came from a flag or a tag, and each service's merged settings by `check_service`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from wazuh_ecr_scan import ossec_config, profiles, values
from wazuh_ecr_scan.cli_args import (
    DEFAULT_INTERVAL,
    DEFAULT_WAZUH_PATH,
    SOCKET_RELATIVE,
    STATE_DB_RELATIVE,
    CommandLine,
    read_command_line,
)
from wazuh_ecr_scan.discard import DiscardRule
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.logs import log
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX
from wazuh_ecr_scan.ossec_config import ServiceBlock, WodleBlock
from wazuh_ecr_scan.values import (
    REGION_RE,
    compile_pattern,
    date_ms,
    interval_seconds,
    role_account,
    split_list,
)

# A scan's streams keep filling for up to 900 s after the timestamp its events carry; the rest is
# margin for CloudWatch ingestion delay and clock skew between this host and AWS.
DEFAULT_LATE_WINDOW_S = 20 * 60


@dataclass(frozen=True)
class ServiceSettings:
    """What one service reads and with which credentials: a `<service type="cloudwatchlogs">` block of
    --config with the service flags given on the command line over it, or the command line alone."""

    regions: tuple[str, ...] = ("us-east-1",)
    log_groups: tuple[str, ...] = ()
    log_group_prefix: str = DEFAULT_GROUP_PREFIX
    only_logs_after_ms: int | None = None
    aws_account_id: str | None = None
    aws_account_alias: str | None = None
    aws_profile: str | None = None
    iam_role_arn: str | None = None
    iam_role_duration: int | None = None
    sts_endpoint: str | None = None
    service_endpoint: str | None = None
    remove_log_streams: bool = False
    # From the flags (always with a field) or <discard_regex> (with or without one): discard.py.
    discard: DiscardRule | None = None
    # --config: this block's state-DB label (see account) and where it was read.
    account_label: str | None = None
    origin: str = "command line"
    # How it is read: flags only, the same for every service of a run.
    replay: str | None = None
    # None: the AWS profile's retry_mode/max_attempts, else adaptive and 8 (aws.retries).
    retry_mode: str | None = None
    max_attempts: int | None = None
    workers: int = 4
    # Requests per second per region and operation; under AWS's quotas (FilterLogEvents 5-25/s by
    # Region, DescribeLogGroups about 10/s) so a pass never takes the account's whole budget.
    max_rate: float = 4.0
    late_window_s: int = DEFAULT_LATE_WINDOW_S
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


@dataclass(frozen=True)
class RunSettings:
    """The run: schedule, output, state file, logging; and the services each pass reads, in order (the
    blocks of --config, or the command line's one)."""

    services: tuple[ServiceSettings, ...] = (ServiceSettings(),)
    run_once: bool = False
    interval_s: int = 300
    skip_on_error: bool = False
    run_on_start: bool = True
    disabled: bool = False
    debug: int = 0
    wazuh_path: str = DEFAULT_WAZUH_PATH
    socket_path: str = ""
    state_db: str = ""
    state_db_given: bool = False  # --state_db on the command line (else the default under wazuh_path)
    output: str = "socket"
    config_file: str | None = None
    check_config: bool = False
    log_file: str | None = None
    lock_wait_s: int = 60


def run_settings(command_line: CommandLine) -> RunSettings:
    """The run's settings; ConfigError (exit 2) naming the flag, or the file, line and tag, of a bad value."""
    if command_line.error is not None:
        raise command_line.error
    args = command_line.args
    service = _service_from_flags(args)
    run = _run_from_flags(args, command_line.debug_level())
    if args.config:
        run = apply_config_file(run, service, args.config, command_line.given)
    else:
        run = replace(run, services=(service,))
    for each in run.services:
        check_service(each)
    return run


def check_service(service: ServiceSettings) -> None:
    """What only the merged settings of one service can tell, whichever way each value came in."""
    if service.iam_role_duration is not None and not service.iam_role_arn:
        raise ConfigError(f"{service.origin}: an IAM role session duration needs an IAM role ARN")


def _service_from_flags(args: argparse.Namespace) -> ServiceSettings:
    regions = [_flag("regions", values.region, region) for region in split_list(args.regions)]
    if not regions:
        raise ConfigError("--regions: at least one region is needed")
    if (args.discard_field is None) != (args.discard_regex is None):
        raise ConfigError("--discard-field and --discard-regex go together")
    if args.max_attempts is not None and args.max_attempts < 1:
        raise ConfigError("--max_attempts must be at least 1")
    if not 1 <= args.workers <= 32:
        raise ConfigError("--workers must be between 1 and 32")
    if not 0 < args.max_rate <= 100:
        raise ConfigError("--max_rate must be above 0 and at most 100 requests per second")
    if args.lifecycle_days < 1:
        raise ConfigError("--lifecycle_days must be at least 1")
    if args.replay and not os.path.isfile(args.replay):
        raise ConfigError(f"--replay: {args.replay}: no such file")
    return ServiceSettings(
        regions=tuple(regions),
        log_groups=tuple(split_list(args.aws_log_groups)),
        log_group_prefix=args.log_group_prefix,
        only_logs_after_ms=parse_date_ms(args.only_logs_after) if args.only_logs_after else None,
        aws_account_id=_optional_flag("aws_account_id", values.account_id, args.aws_account_id),
        aws_account_alias=args.aws_account_alias,
        aws_profile=args.aws_profile,
        iam_role_arn=_optional_flag("iam_role_arn", values.role_arn, args.iam_role_arn),
        iam_role_duration=_optional_flag("iam_role_duration", values.role_duration, args.iam_role_duration),
        sts_endpoint=_optional_flag("sts_endpoint", values.endpoint_url, args.sts_endpoint),
        service_endpoint=_optional_flag("service_endpoint", values.endpoint_url, args.service_endpoint),
        remove_log_streams=args.remove_log_streams,
        discard=_discard_from_flags(args.discard_field, args.discard_regex),
        replay=args.replay,
        retry_mode=args.retry_mode,
        max_attempts=args.max_attempts,
        workers=args.workers,
        max_rate=args.max_rate,
        lifecycle=args.lifecycle,
        lifecycle_days=args.lifecycle_days,
    )


def _run_from_flags(args: argparse.Namespace, debug: int) -> RunSettings:
    if not 0 <= args.lock_wait <= 3600:
        raise ConfigError("--lock_wait must be between 0 and 3600 seconds")
    return RunSettings(
        run_once=args.run_once,
        interval_s=parse_interval(args.interval),
        skip_on_error=args.skip_on_error,
        debug=debug,
        wazuh_path=args.wazuh_path,
        socket_path=args.socket or os.path.join(args.wazuh_path, SOCKET_RELATIVE),
        state_db=args.state_db or _default_state_db(args),
        state_db_given=args.state_db is not None,
        output=args.output,
        config_file=args.config,
        check_config=args.check_config,
        log_file=args.log_file,
        lock_wait_s=args.lock_wait,
    )


def _flag(name: str, check: Callable[[Any], Any], value: Any) -> Any:
    """`check(value)`; its ValueError is refused naming the flag, with the reason the XML reader gives."""
    try:
        return check(value)
    except ValueError as exc:
        raise ConfigError(f"--{name}: {exc}") from exc


def _optional_flag(name: str, check: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else _flag(name, check, value)


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
    "discard_field": ("discard",),
    "discard_regex": ("discard",),
}


def apply_config_file(
    run: RunSettings, cli: ServiceSettings, path: str, explicit: frozenset[str]
) -> RunSettings:
    """The run with the aws-s3 blocks of `path`: one ServiceSettings per service block, the service flags
    given on the command line (`explicit`) over each; the module tags of the blocks set the schedule."""
    config = ossec_config.load(path)
    enabled = [block for block in config.blocks if not block.disabled]
    if not enabled:  # nothing runs; --check-config still checks the file's services, not the defaults
        disabled = [s for block in config.blocks for s in block.services]
        services = tuple(_service_settings(cli, path, s, explicit) for s in disabled)
        return replace(run, disabled=True, services=services or (cli,))
    services = [s for block in enabled for s in block.services]
    if not services:
        raise ConfigError(
            f"configuration error at '{path}': no <service type=\"cloudwatchlogs\"> in the enabled "
            '<wodle name="aws-s3"> blocks: nothing to read'
        )
    # Blocks whose credentials resolve to the same account may list the same groups: each group is read
    # once per pass, by the first block that lists it (Poller._claim).
    return replace(
        run,
        services=tuple(_service_settings(cli, path, service, explicit) for service in services),
        # Several blocks, one pass: the shortest interval; errors are skipped only if every block says so.
        interval_s=run.interval_s if "interval" in explicit else min(_interval(b) for b in enabled),
        skip_on_error=run.skip_on_error or all(b.skip_on_error for b in enabled),
        run_on_start=any(b.run_on_start for b in enabled),
    )


def _interval(block: WodleBlock) -> int:
    return block.interval_s or parse_interval(DEFAULT_INTERVAL)


def _service_settings(
    cli: ServiceSettings, path: str, service: ServiceBlock, explicit: frozenset[str]
) -> ServiceSettings:
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
        "discard": service.discard,
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
    return account_id or alias or role_account(role_arn) or profile or "default"


def _profile_region(profile: str | None, origin: str) -> str:
    """The profile's region in the AWS config file, as Wazuh's wodle takes it when <regions> is absent."""
    name = profile or "default"
    region = profiles.region(name)
    if region is not None and REGION_RE.match(region):
        return region
    log.warning(
        "%s: no <regions> and profile %r has no region in %s: reading us-east-1 only "
        "(Wazuh's wodle would try every region); set <regions>",
        origin,
        name,
        profiles.config_file(),
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


def _default_state_db(args: argparse.Namespace) -> str:
    if args.replay:
        return ":memory:"  # a demo replay repeats; give --state_db to replay through a real state file
    if not os.path.isdir(os.path.join(args.wazuh_path, "wodles")):
        raise ConfigError(
            f"no Wazuh installation at {args.wazuh_path} (no wodles/ folder): "
            "give --wazuh_path or --state_db PATH"
        )
    return os.path.join(args.wazuh_path, STATE_DB_RELATIVE)


def _discard_from_flags(field: str | None, pattern: str | None) -> DiscardRule | None:
    """The rule of --discard-field/--discard-regex (given together: `_service_from_flags` checks): always
    with a field; a field-less rule comes only from <discard_regex> in --config. An empty value of
    either flag discards nothing."""
    regex = _optional_flag("discard-regex", compile_pattern, pattern or None)
    return DiscardRule(regex, field) if regex is not None and field else None


def parse_args(argv: list[str] | None) -> RunSettings:
    """The run's settings from a command line (as `wazuh-ecr-scan` reads its own)."""
    return run_settings(read_command_line(argv))
