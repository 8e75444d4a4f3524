"""The command line, read once: the options, which of them were given, and what a run needs before its
settings are built (the debug level, the log file, where status lines go), even when the line is bad."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from wazuh_ecr_scan import __version__
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.internal_options import wazuh_modules_debug
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX

DEFAULT_WAZUH_PATH = "/var/ossec"
DEFAULT_INTERVAL = "5m"
STATE_DB_RELATIVE = os.path.join("wodles", "ecr-scan", "ecr_scan_state.db")
SOCKET_RELATIVE = os.path.join("queue", "sockets", "queue")
_UNSET = object()


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
    p.add_argument("-c", "--aws_account_id", help="12-digit account ID (log lines; state key of a --replay)")
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
    p.add_argument(
        "--retry_mode",
        choices=("adaptive", "standard", "legacy"),
        help="botocore retry mode (default: the AWS profile's retry_mode, else adaptive)",
    )
    p.add_argument(
        "--max_attempts",
        type=int,
        help="attempts per AWS call, retries included (default: the AWS profile's max_attempts, else 8)",
    )
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


@dataclass(frozen=True)
class CommandLine:
    """`args`: every option, defaults filled in; `given`: the `dest` of each option on the command line
    (flags override --config, defaults do not). When the line is bad, `error` says why and `args` holds
    what was read before it."""

    args: argparse.Namespace
    given: frozenset[str]
    error: ConfigError | None = None

    def debug_level(self) -> int:
        """--debug, else the level modulesd itself takes (internal options)."""
        debug = self.args.debug
        return debug if debug is not None else wazuh_modules_debug(self.args.wazuh_path)

    @property
    def log_file(self) -> str | None:
        return self.args.log_file

    def status_socket(self) -> str | None:
        """Where status lines of a run that ends before (or after) its own sender go: the analysisd socket
        of --socket or --wazuh_path; None for --output stdout and --check-config, which send nothing."""
        if self.args.output != "socket" or self.args.check_config:
            return None
        return self.args.socket or os.path.join(self.args.wazuh_path, SOCKET_RELATIVE)


def read_command_line(argv: list[str] | None) -> CommandLine:
    """Parses argv once. --help and --version print and exit, as argparse does."""
    parser = build_parser()
    dests = [action.dest for action in parser._actions if action.dest != argparse.SUPPRESS]
    # Every option starts _UNSET, so what is still _UNSET afterwards was not given.
    args = argparse.Namespace(**dict.fromkeys(dests, _UNSET))
    error = None
    try:
        parser.parse_args(argv, args)
    except ConfigError as exc:
        error = exc
    given = frozenset(dest for dest in dests if getattr(args, dest) is not _UNSET)
    for action in parser._actions:
        if getattr(args, action.dest, None) is _UNSET:
            setattr(args, action.dest, action.default)
    return CommandLine(args, given, error)
