"""`--check-config`, like the Wazuh daemons' `-t`: parse, resolve credentials, ask AWS who we are and
whether we may list and read the groups, print the resolved settings and what is missing.

Per service block: STS GetCallerIdentity once, then per region one DescribeLogGroups and, on one group,
one FilterLogEvents of at most one event. Nothing is sent to analysisd, the state DB is not opened and
nothing is deleted. Exit 0 when every check passed, 1 when one failed (the report names the IAM action).
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

import boto3

from wazuh_ecr_scan import __version__, discard, ossec_config
from wazuh_ecr_scan.aws import (
    AWS_ERRORS,
    DENIED_CODES,
    CallCounter,
    client_config,
    describe_error,
    error_code,
    is_credentials_error,
    logs_client,
    make_session,
    retries,
)
from wazuh_ecr_scan.errors import EXIT_INTERNAL, EXIT_OK, CredentialsError
from wazuh_ecr_scan.names import DEFAULT_GROUP_PREFIX
from wazuh_ecr_scan.settings import RunSettings, ServiceSettings
from wazuh_ecr_scan.values import arn_partition

LISTED_GROUPS = 50


@dataclass
class Check:
    status: str  # "ok", "FAIL", "warn" or "note"
    text: str
    missing: str | None = None  # IAM action and resource, when AWS refused for lack of it


@dataclass
class Identity:
    account: str
    arn: str

    @property
    def partition(self) -> str:
        return arn_partition(self.arn)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.checks.append(check)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]


def run(settings: RunSettings, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    print(f"wazuh-ecr-scan {__version__} --check-config", file=out)
    for line in describe_module(settings):
        print(line, file=out)
    report = Report()
    resolved: list[tuple[ServiceSettings, str]] = []
    for number, service in enumerate(settings.services, 1):
        print(f"service {number}: {service.origin}", file=out)
        for line in describe_service(service):
            print(f"  {line}", file=out)
        start = len(report.checks)
        account = check_service(service, report)
        if account is not None:
            report.checks.extend(overlaps(service, account, resolved))
            resolved.append((service, account))
        _print_checks(report.checks[start:], out, indent="  ")
    start = len(report.checks)
    check_local(settings, report)
    _print_checks(report.checks[start:], out, indent="")
    return _verdict(report, out)


# -- resolved settings -----------------------------------------------------------------------------


def describe_module(s: RunSettings) -> list[str]:
    mode = "one pass (--run-once)" if s.run_once else f"a pass every {s.interval_s}s"
    lines = [
        f"configuration: {s.config_file or 'command line only'}",
        f"  schedule: {mode}, run_on_start {_yes(s.run_on_start)}, skip_on_error {_yes(s.skip_on_error)}",
        f"  output: {'analysisd socket ' + s.socket_path if s.output == 'socket' else 'standard output'}",
        f"  state DB: {s.state_db}",
        f"  debug {s.debug}, " + _reading(s.services[0]),
    ]
    if s.disabled:
        lines.append("  disabled: every aws-s3 block says <disabled>yes</disabled>; a run reads nothing")
    return lines


def _reading(s: ServiceSettings) -> str:
    """How services are read: set by flags, the same for every service of a run."""
    mode, attempts = retries(s)
    return f"workers {s.workers}, max_rate {s.max_rate}/s, retries {mode} x{attempts}"


def describe_service(s: ServiceSettings) -> list[str]:
    groups = ", ".join(s.log_groups) if s.log_groups else f"every group starting with {s.log_group_prefix}"
    start = _date(s.only_logs_after_ms) if s.only_logs_after_ms is not None else "today 00:00 UTC"
    discarding = s.discard.describe() if s.discard else "none"
    return [
        f"account label: {s.account} (logs; state is kept under the account the credentials resolve to)",
        f"credentials: profile {s.aws_profile or '(default chain)'}, role {s.iam_role_arn or '-'}"
        + (f" for {s.iam_role_duration}s" if s.iam_role_duration else ""),
        f"regions: {', '.join(s.regions)}",
        f"log groups: {groups}",
        f"first read starts: {start}; remove_log_streams {_yes(s.remove_log_streams)}; discard: {discarding}",
        f"endpoints: sts {s.sts_endpoint or 'AWS'}, logs {s.service_endpoint or 'AWS'}",
    ]


# -- AWS -------------------------------------------------------------------------------------------


def check_service(s: ServiceSettings, report: Report) -> str | None:
    """The checks of one service block; the account its credentials resolve to, if they do."""
    for warning in discard.startup_warnings(s.discard):
        report.add(Check("warn", warning))
    counter = CallCounter()
    region = s.regions[0]
    session = _session(s, region, counter, report)
    if session is None:
        return None
    sts = session.client("sts", endpoint_url=s.sts_endpoint, config=client_config(s, region))
    identity = check_identity(sts, report)
    if identity is None:
        return None
    if s.aws_account_id and s.aws_account_id != identity.account:
        report.add(
            Check(
                "warn",
                f"aws_account_id {s.aws_account_id} is not the account of these credentials "
                f"({identity.account}); it is only a label: state is kept under {identity.account}",
            )
        )
    for each in s.regions:
        check_region(logs_client(s, session, each, counter), each, identity, s, report)
    if s.remove_log_streams:
        note = "remove_log_streams needs logs:DeleteLogStream (not tested: the check deletes nothing)"
        report.add(Check("note", note))
    return identity.account


def overlaps(s: ServiceSettings, account: str, earlier: list[tuple[ServiceSettings, str]]) -> list[Check]:
    """Blocks of one account listing the same groups in a Region: a pass reads each group once, by the
    first block (its discard settings apply)."""
    checks = []
    for other, other_account in earlier:
        regions = sorted(set(s.regions) & set(other.regions))
        if other_account == account and regions and _groups_overlap(s, other):
            checks.append(
                Check(
                    "warn",
                    f"the service at {other.origin} also reads account {account} in {', '.join(regions)}"
                    " with overlapping groups: a pass reads each group once, by that service (its"
                    " discard settings apply); make <aws_log_groups> or <regions> disjoint",
                )
            )
    return checks


def _groups_overlap(first: ServiceSettings, second: ServiceSettings) -> bool:
    def patterns(s: ServiceSettings) -> list[tuple[bool, str]]:
        # (is_prefix, text); no groups means discovery by --log_group_prefix
        return [(g.endswith("*"), g.rstrip("*")) for g in s.log_groups] or [(True, s.log_group_prefix)]

    for prefix_a, a in patterns(first):
        for prefix_b, b in patterns(second):
            if a == b or (prefix_a and b.startswith(a)) or (prefix_b and a.startswith(b)):
                return True
    return False


def _session(s: ServiceSettings, region: str, counter: CallCounter, report: Report) -> boto3.Session | None:
    try:
        session = make_session(s, region, counter)
    except CredentialsError as exc:
        missing = f"sts:AssumeRole on {s.iam_role_arn}" if s.iam_role_arn else None
        report.add(Check("FAIL", f"credentials: {exc}", missing))
        return None
    credentials = session.get_credentials()
    if credentials is None:
        report.add(
            Check(
                "FAIL",
                "credentials: none found (profile, environment, shared files, instance or task role)",
            )
        )
        return None
    source = "assumed role " + s.iam_role_arn if s.iam_role_arn else f"method {credentials.method}"
    report.add(Check("ok", f"credentials: found ({source})"))
    return session


def check_identity(sts: Any, report: Report) -> Identity | None:
    try:
        answer = sts.get_caller_identity()
    except AWS_ERRORS as exc:
        reason = "rejected" if is_credentials_error(exc) else "failed"
        report.add(Check("FAIL", f"sts:GetCallerIdentity {reason}: {describe_error(exc)}"))
        return None
    identity = Identity(answer["Account"], answer["Arn"])
    report.add(Check("ok", f"sts:GetCallerIdentity: {identity.arn} (account {identity.account})"))
    return identity


def check_region(client: Any, region: str, identity: Identity, s: ServiceSettings, report: Report) -> None:
    found = _list_groups(client, region, identity, s, report)
    if found is None:
        return
    exact = [g for g in s.log_groups if not g.endswith("*")]
    wanted = [g for g in exact if g in found] or ([] if exact else found)
    for group in exact:
        if group not in found and len(found) < LISTED_GROUPS:
            hint = _group_of_repository(client, group)
            report.add(Check("FAIL", f"{region}: log group {group} does not exist{hint}"))
    if wanted:
        _read_one(client, region, wanted[0], identity, report)
    elif not exact:
        report.add(Check("warn", f"{region}: no log group yet (the ECR scan findings Lambda creates them)"))


def _list_groups(
    client: Any, region: str, identity: Identity, s: ServiceSettings, report: Report
) -> list[str] | None:
    prefix = _common_prefix(s)
    kwargs: dict[str, Any] = {"limit": LISTED_GROUPS}
    if prefix:
        kwargs["logGroupNamePrefix"] = prefix
    try:
        page = client.describe_log_groups(**kwargs)
    except AWS_ERRORS as exc:
        action = f"logs:DescribeLogGroups on {_arn(identity, region, '*')}"
        report.add(_refused(exc, f"{region}: logs:DescribeLogGroups", action))
        return None
    groups = [g["logGroupName"] for g in page.get("logGroups", [])]
    more = " or more" if page.get("nextToken") else ""
    report.add(Check("ok", f"{region}: logs:DescribeLogGroups: {len(groups)}{more} groups under {prefix!r}"))
    return groups


def _group_of_repository(client: Any, name: str) -> str:
    """`sample-repo` given for a group: name /aws/ecr/image-scan-findings/sample-repo if it exists."""
    if name.startswith("/"):
        return ""
    candidate = DEFAULT_GROUP_PREFIX + name
    try:
        page = client.describe_log_groups(logGroupNamePrefix=candidate, limit=LISTED_GROUPS)
    except AWS_ERRORS:
        return ""
    if candidate not in [g["logGroupName"] for g in page.get("logGroups", [])]:
        return ""
    return f"; did you mean {candidate}? (<aws_log_groups> takes whole group names)"


def _read_one(client: Any, region: str, group: str, identity: Identity, report: Report) -> None:
    try:
        client.filter_log_events(logGroupName=group, startTime=int(time.time() * 1000), limit=1)
    except AWS_ERRORS as exc:
        action = f"logs:FilterLogEvents on {_arn(identity, region, group)}"
        report.add(_refused(exc, f"{region}: logs:FilterLogEvents on {group}", action))
        return
    report.add(Check("ok", f"{region}: logs:FilterLogEvents on {group}: allowed"))


def _refused(exc: BaseException, what: str, action: str) -> Check:
    if error_code(exc) in DENIED_CODES:
        return Check("FAIL", f"{what}: {describe_error(exc)}", missing=action)
    return Check("FAIL", f"{what}: {describe_error(exc)}")


def _arn(identity: Identity, region: str, group: str) -> str:
    suffix = "*" if group == "*" else f"{group}:*"
    return f"arn:{identity.partition}:logs:{region}:{identity.account}:log-group:{suffix}"


def _common_prefix(s: ServiceSettings) -> str:
    if not s.log_groups:
        return s.log_group_prefix
    names = [g.rstrip("*") for g in s.log_groups]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


# -- this host -------------------------------------------------------------------------------------


def check_local(s: RunSettings, report: Report) -> None:
    if s.output == "socket":
        report.add(_check_socket(s.socket_path))
    report.add(_check_state_dir(s.state_db))
    for check in check_stock_wodle(s):
        report.add(check)


def check_stock_wodle(s: RunSettings) -> list[Check]:
    """Wazuh's aws-s3 wodle reading the same groups from ossec.conf forwards every message raw."""
    paths = [os.path.join(s.wazuh_path, "etc", "ossec.conf")]
    if s.config_file and os.path.basename(s.config_file) == "ossec.conf":
        paths.insert(0, s.config_file)
    checks = []
    for path in dict.fromkeys(os.path.realpath(p) for p in paths if os.path.isfile(p)):
        for line, groups in ossec_config.stock_wodle_ecr_groups(path):
            checks.append(
                Check(
                    "warn",
                    f"{path} line {line}: Wazuh's own aws-s3 wodle reads {groups} too and forwards every"
                    " finding raw (duplicate alerts without the ECR fields): move that"
                    ' <wodle name="aws-s3"> block out of ossec.conf (e.g. to etc/ecr-scan.conf)'
                    " or disable it",
                )
            )
    return checks


def _check_socket(path: str) -> Check:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        hint = "is Wazuh running? is --wazuh_path right?"
        return Check("FAIL", f"analysisd socket {path}: {exc.strerror} ({hint})")
    if not stat.S_ISSOCK(mode):
        return Check("FAIL", f"analysisd socket {path}: not a socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(path)
    except OSError as exc:
        return Check("FAIL", f"analysisd socket {path}: {exc.strerror} (is wazuh-analysisd running?)")
    finally:
        sock.close()
    return Check("ok", f"analysisd socket {path}: accepting")


def _check_state_dir(path: str) -> Check:
    if path == ":memory:":
        return Check("ok", "state DB: in memory (replay)")
    directory = os.path.dirname(os.path.abspath(path))
    existing = directory
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check("FAIL", f"state DB {path}: {existing} is not writable by this user")
    state = "exists" if os.path.exists(path) else "will be created"
    return Check("ok", f"state DB {path}: {state}")


# -- output ----------------------------------------------------------------------------------------


def _print_checks(checks: list[Check], out: TextIO, indent: str) -> None:
    for check in checks:
        print(f"{indent}[{check.status:>4}] {check.text}", file=out)
        if check.missing:
            print(f"{indent}       missing permission: {check.missing}", file=out)


def _verdict(report: Report, out: TextIO) -> int:
    failed = report.failed
    if not failed:
        warnings = sum(1 for c in report.checks if c.status == "warn")
        print("result: OK" + (f" with {warnings} warning(s) above" if warnings else ""), file=out)
        return EXIT_OK
    actions = sorted({c.missing.split(" on ")[0] for c in failed if c.missing})
    missing = f"; IAM actions to allow: {', '.join(actions)}" if actions else ""
    print(f"result: {len(failed)} check(s) failed{missing}", file=out)
    return EXIT_INTERNAL  # 1, as a daemon's -t when the configuration would not work


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
