"""`--config`: the aws-s3 blocks become one set of settings per service block, flags given on the command
line override the file, and the guide's block drives a real pass against moto without an edit."""

from __future__ import annotations

import logging
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from lambda_writer import make_scan, write_scan
from moto_server import logs_client
from test_ossec_config import SEED
from wazuh_ecr_scan.cli import main
from wazuh_ecr_scan.errors import EXIT_BAD_CONFIG, EXIT_CREDENTIALS, ConfigError
from wazuh_ecr_scan.settings import parse_args

NOW_MS = int(time.time() * 1000)


def conf(tmp_path: Path, text: str) -> str:
    path = tmp_path / "ecr-scan.conf"
    path.write_text(text)
    return str(path)


def services(*blocks: str, module: str = "") -> str:
    body = "\n".join(f'  <service type="cloudwatchlogs">\n{b}\n  </service>' for b in blocks)
    return f'<wodle name="aws-s3">\n{module}{body}\n</wodle>\n'


def settings_for(tmp_path: Path, text: str, *flags: str):
    return parse_args(["--config", conf(tmp_path, text), "--state_db", str(tmp_path / "s.db"), *flags])


@pytest.fixture
def aws_files(tmp_path, monkeypatch) -> dict[str, str]:
    """A shared credentials file with a `default` profile (the guide's <aws_profile>) and an AWS config
    file giving profile `audit` a region; used in-process (monkeypatch) and by subprocesses (returned)."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIAFAKEFAKEFAKE0002\naws_secret_access_key = x\n")
    config = tmp_path / "config"
    config.write_text("[default]\nregion = us-east-1\n[profile audit]\nregion = eu-central-1\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run_with(env_updates: dict[str, str], *args: str):
    env = cli_env()
    env.update(env_updates)
    command = [sys.executable, "-m", "wazuh_ecr_scan", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


# -- settings --------------------------------------------------------------------------------------


def test_account_labels_id_alias_role_profile_default(tmp_path, aws_files):
    text = services(
        "<aws_account_id>111111111111</aws_account_id><aws_account_alias>x</aws_account_alias>",
        "<aws_account_alias>team-a</aws_account_alias>",
        "<iam_role_arn>arn:aws:iam::222222222222:role/wazuh</iam_role_arn><aws_profile>p</aws_profile>",
        "<aws_profile>audit</aws_profile>",
        "<regions>us-east-1</regions>",
    )
    passes = settings_for(tmp_path, text).services
    assert [p.account for p in passes] == ["111111111111", "team-a", "222222222222", "audit", "default"]
    assert passes[3].regions == ("eu-central-1",)  # the profile's region, as Wazuh's wodle takes it
    assert passes[1].regions == ("us-east-1",)  # the default profile's
    assert [p.origin.rsplit(" ", 1)[1] for p in passes] == ["2", "5", "8", "11", "14"]  # <service> lines


def test_no_regions_and_no_profile_region_reads_us_east_1_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with caplog.at_level(logging.WARNING, logger="wazuh_ecr_scan"):
        (service,) = settings_for(tmp_path, SEED).services
    assert service.regions == ("us-east-1",)
    assert "no <regions> and profile 'default' has no region" in caplog.text


def test_flags_given_on_the_command_line_override_every_block(tmp_path, aws_files):
    text = services(
        "<aws_account_alias>a</aws_account_alias><regions>us-east-1</regions>"
        '<discard_regex>"severity": "LOW"</discard_regex>',
        "<aws_account_alias>b</aws_account_alias><regions>eu-west-1</regions>",
        module="  <interval>10m</interval>\n",
    )
    kept = settings_for(tmp_path, text)
    assert [p.regions for p in kept.services] == [("us-east-1",), ("eu-west-1",)]
    assert kept.interval_s == 600 and kept.services[0].discard.field is None
    flags = (
        "--regions",
        "ap-south-1",
        "--interval",
        "1h",
        "--aws_log_groups",
        "/aws/ecr/image-scan-findings/x",
    )
    over = settings_for(tmp_path, text, *flags, "--discard-field", "aws.region", "--discard-regex", "^ap-")
    assert [p.regions for p in over.services] == [("ap-south-1",), ("ap-south-1",)]
    assert {p.log_groups for p in over.services} == {("/aws/ecr/image-scan-findings/x",)}
    assert over.interval_s == 3600
    assert all(p.discard.field == "aws.region" for p in over.services)


def test_a_flag_given_with_its_default_value_still_overrides_the_file(tmp_path, aws_files):
    """What was given is told from what was defaulted by the one parse, not by comparing values."""
    text = services("<regions>eu-west-1</regions>", module="  <interval>10m</interval>\n")
    assert settings_for(tmp_path, text).interval_s == 600
    given = settings_for(tmp_path, text, "--regions", "us-east-1", "--interval", "5m")
    assert given.interval_s == 300 and given.services[0].regions == ("us-east-1",)


def test_several_blocks_one_pass(tmp_path, aws_files):
    text = (
        services("<aws_account_alias>a</aws_account_alias>", module="  <interval>10m</interval>\n")
        + services(
            "<aws_account_alias>b</aws_account_alias>",
            module="  <interval>2m</interval>\n  <skip_on_error>yes</skip_on_error>\n",
        )
        + services("<aws_account_alias>c</aws_account_alias>", module="  <disabled>yes</disabled>\n")
    )
    settings = settings_for(tmp_path, text)
    assert [p.account for p in settings.services] == ["a", "b"]
    assert settings.interval_s == 120  # the shortest
    assert settings.skip_on_error is False  # only when every block says yes
    assert settings_for(tmp_path, text, "--skip_on_error").skip_on_error is True


def test_blocks_that_share_groups_are_accepted(tmp_path, aws_files):
    # Whether they overlap is known only once their credentials resolve to accounts: see
    # test_operations.py::test_two_blocks_of_one_account_read_each_group_once.
    same = services("<regions>us-east-1</regions>", "<regions>us-east-1,eu-west-1</regions>")
    assert len(settings_for(tmp_path, same).services) == 2


def test_without_config_the_command_line_is_the_one_service(tmp_path):
    (service,) = parse_args(["--state_db", str(tmp_path / "s.db"), "--aws_profile", "p"]).services
    assert service.account == "p"  # the same label as a <service> block with this profile would get
    role = "arn:aws:iam::222222222222:role/wazuh"
    db = ["--state_db", str(tmp_path / "s.db")]

    def account(*flags: str) -> str:
        (service,) = parse_args([*db, *flags]).services
        return service.account

    assert account("--iam_role_arn", role, "--aws_profile", "p") == "222222222222"
    assert account() == "default"
    assert account("--aws_account_alias", "prod") == "prod"


def test_every_block_disabled_is_a_quiet_exit_0(tmp_path, capsys):
    path = conf(tmp_path, services("<regions>us-east-1</regions>", module="  <disabled>yes</disabled>\n"))
    assert main(["--config", path, "--run-once", "--state_db", str(tmp_path / "s.db")]) == 0
    assert "wazuh-ecr-scan: INFO: module disabled in" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_only_other_services_is_a_configuration_error(tmp_path):
    text = '<wodle name="aws-s3"><service type="inspector"/></wodle>'
    with pytest.raises(ConfigError, match=r'no <service type="cloudwatchlogs">'):
        settings_for(tmp_path, text)


# -- real passes against moto ----------------------------------------------------------------------


def test_the_guide_block_drives_a_pass_unchanged(logs, receiver, cli_args, tmp_path, aws_files):
    scan = make_scan(
        random.Random(1), "name_of_the_ECR_repository", "v1", NOW_MS - 60_000, {"HIGH": 2, "LOW": 3}
    )
    write_scan(logs, scan)
    path = conf(tmp_path, SEED)
    result = run_with(aws_files, *cli_args("--config", path))
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    assert len(got.events) == scan.event_count()
    assert {e["aws"]["ecr"]["repository"] for e in got.events} == {"name_of_the_ECR_repository"}
    rerun = run_with(aws_files, *cli_args("--config", path))
    assert rerun.returncode == 0 and receiver.take().events == []


def test_two_accounts_in_one_pass_with_their_own_state_and_discard(logs, receiver, cli_args, moto, tmp_path):
    rng = random.Random(2)
    east = make_scan(rng, "web", "v1", NOW_MS - 60_000, {"HIGH": 2, "LOW": 2})
    west = make_scan(rng, "api", "v2", NOW_MS - 60_000, {"CRITICAL": 1, "LOW": 4})
    write_scan(logs, east)
    write_scan(logs_client(moto, region_name="eu-west-1"), west)
    text = services(
        "<aws_account_alias>team-a</aws_account_alias><regions>us-east-1</regions>",
        "<aws_account_alias>team-b</aws_account_alias><regions>eu-west-1</regions>"
        '<discard_regex field="severity">LOW</discard_regex>',  # as written for Wazuh: the message's field
    )
    result = run_with({}, *cli_args("--config", conf(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    got = receiver.take()
    by_region = {r: [e for e in got.events if e["aws"]["region"] == r] for r in ("us-east-1", "eu-west-1")}
    assert len(by_region["us-east-1"]) == east.event_count()
    assert (
        len(by_region["eu-west-1"]) == west.event_count() - 4
    )  # the LOW findings, matched on the Lambda message's own "severity"
    state = sqlite3.connect(cli_args()[cli_args().index("--state_db") + 1])
    keys = set(state.execute("SELECT account, region FROM groups"))
    # kept under the account the credentials resolve to (moto's), not under the labels
    assert keys == {("123456789012", "us-east-1"), ("123456789012", "eu-west-1")}


def test_one_account_with_bad_credentials_does_not_stop_the_others(
    logs, receiver, cli_args, tmp_path, aws_files
):
    scan = make_scan(random.Random(3), "web", "v1", NOW_MS - 60_000, {"HIGH": 1})
    write_scan(logs, scan)
    text = services(
        "<aws_profile>no-such-profile</aws_profile><regions>us-east-1</regions>",
        "<aws_account_alias>good</aws_account_alias><regions>us-east-1</regions>",
    )
    result = run_with(aws_files, *cli_args("--config", conf(tmp_path, text)))
    assert result.returncode == EXIT_CREDENTIALS
    (error,) = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert "AWS profile 'no-such-profile' not found" in error and error.endswith("ecr-scan.conf line 2)")
    assert len(receiver.take().events) == scan.event_count()


def test_bad_xml_is_exit_2_with_one_line_naming_file_and_line_also_in_the_log_file(moto, tmp_path):
    path = conf(tmp_path, services("<regions>us-east-1</regions>", "<region>eu-west-1</region>"))
    log_file = tmp_path / "ossec.log"
    result = run_with(
        {}, "--config", path, "--run-once", "--state_db", "/tmp/never.db", "--log_file", str(log_file)
    )
    assert result.returncode == EXIT_BAD_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert (
        f" wazuh-ecr-scan: ERROR: configuration error at '{path}' line 6: No such child tag 'region'"
        in lines[0]
    )
    assert log_file.read_text().strip() == lines[0]


ROLE = "arn:aws:iam::123456789012:role/r"


@pytest.mark.parametrize(
    ("flags", "tags", "reason"),
    [
        (["--aws_account_id", "prod"], "<aws_account_id>prod</aws_account_id>", "'prod' is not a 12-digit"),
        (["--iam_role_arn", "not-an-arn"], "<iam_role_arn>not-an-arn</iam_role_arn>", "is not a role ARN"),
        (
            ["--iam_role_arn", "arn:aws:s3:::bucket"],
            "<iam_role_arn>arn:aws:s3:::bucket</iam_role_arn>",
            "'arn:aws:s3:::bucket' is not a role ARN",
        ),
        (["--sts_endpoint", "ftp://x"], "<sts_endpoint>ftp://x</sts_endpoint>", "'ftp://x' is not an"),
        (
            ["--service_endpoint", "http://"],
            "<service_endpoint>http://</service_endpoint>",
            "'http://' is not an endpoint",
        ),
        (
            ["--iam_role_arn", ROLE, "--iam_role_duration", "60"],
            f"<iam_role_arn>{ROLE}</iam_role_arn><iam_role_duration>60</iam_role_duration>",
            "'60': the session duration is 900 to 43200 seconds",
        ),
        (["--regions", "moon-1"], "<regions>moon-1</regions>", "'moon-1' is not an AWS region name"),
    ],
)
def test_the_command_line_refuses_what_the_xml_refuses_with_the_same_reason(
    flags, tags, reason, tmp_path, moto
):
    """The flag and the tag are checked by the same rule: exit 2, one line naming the flag or the tag."""
    common = ["--run-once", "--service_endpoint", moto, "--state_db", str(tmp_path / "never.db")]
    by_flag = run_with({}, *common, *flags)
    path = conf(tmp_path, services(tags))
    by_file = run_with({}, *common, "--config", path)
    for result in (by_flag, by_file):
        lines = result.stderr.strip().splitlines()
        assert result.returncode == EXIT_BAD_CONFIG and len(lines) == 1, result.stderr
        assert reason in lines[0] and " wazuh-ecr-scan: ERROR: " in lines[0]
    assert f"{flags[-2]}: " in by_flag.stderr
    flag_reason = by_flag.stderr.strip().split(f"{flags[-2]}: ", 1)[1]
    assert f"at module 'aws-s3': {flag_reason}." in by_file.stderr
    assert not (tmp_path / "never.db").exists()


def test_a_role_duration_without_a_role_is_refused_from_the_command_line_too(tmp_path, moto):
    result = run_with(
        {}, "--run-once", "--service_endpoint", moto, "--state_db", str(tmp_path / "s.db"),
        "--iam_role_duration", "3600",
    )  # fmt: skip
    assert result.returncode == EXIT_BAD_CONFIG
    assert "needs an IAM role ARN" in result.stderr and "command line" in result.stderr


def test_a_flagged_role_duration_joins_the_role_of_the_file(tmp_path):
    """Checked on the merged settings: the file's role with the command line's duration is whole."""
    path = conf(tmp_path, services(f"<aws_profile>p</aws_profile><iam_role_arn>{ROLE}</iam_role_arn>"))
    settings = parse_args(["--config", path, "--state_db", "x", "--iam_role_duration", "3600"])
    (service,) = settings.services
    assert (service.iam_role_arn, service.iam_role_duration) == (ROLE, 3600)
    with pytest.raises(ConfigError, match="needs an IAM role ARN"):
        parse_args(["--config", conf(tmp_path, services("<regions>us-east-1</regions>")), "--state_db", "x",
                    "--iam_role_duration", "3600"])  # fmt: skip
