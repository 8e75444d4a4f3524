"""AWS clients over a run: a role's session renews itself (and its new keys are masked), clients are kept
from pass to pass, retries come from the AWS profile when no flag sets them, and every page read through
botocore's paginator carries AWS's clock."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, cli_env
from fault_proxy import FaultProxy
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan import aws, cli
from wazuh_ecr_scan.aws import CallCounter, Clients, make_session
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.logs import SECRET_MASK, mask
from wazuh_ecr_scan.reader import CloudWatchReader
from wazuh_ecr_scan.settings import ServiceSettings as Settings

ROLE = "arn:aws:iam::123456789012:role/ecr-scan-reader"


@pytest.fixture
def base_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in cli_env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


def test_a_role_session_renews_itself_before_it_expires_and_its_new_keys_are_masked(
    moto, base_credentials, monkeypatch
):
    """A pass longer than the role's session goes on with renewed credentials instead of ending in exit 3."""
    # The shortest session AWS allows (900 s), renewed once less than 898 s are left: two seconds from now.
    monkeypatch.setattr(aws, "ROLE_RENEW_S", 898)
    settings = Settings(iam_role_arn=ROLE, iam_role_duration=900, sts_endpoint=moto, service_endpoint=moto)
    clients = Clients(CallCounter())
    session, logs = clients.get(settings, "us-east-1")
    first = session.get_credentials().get_frozen_credentials()
    deadline = time.monotonic() + 60
    while clients.counter.calls["AssumeRole"] < 2 and time.monotonic() < deadline:
        logs.describe_log_groups()  # signing asks for the credentials: botocore renews them when due
        time.sleep(0.2)
    renewed = session.get_credentials().get_frozen_credentials()
    assert clients.counter.calls["AssumeRole"] == 2
    assert renewed.access_key != first.access_key
    for secret in (renewed.access_key, renewed.secret_key, renewed.token):
        assert mask(f"value {secret}", SECRET_MASK.secrets) == "value ***"


def test_a_pass_takes_the_clients_and_role_session_of_the_previous_pass(moto, base_credentials):
    settings = Settings(iam_role_arn=ROLE, sts_endpoint=moto, service_endpoint=moto)
    clients = Clients(CallCounter())
    first = cli.build_sources(settings, clients)
    second = cli.build_sources(settings, clients)
    assert second[0].reader.client is first[0].reader.client  # adaptive mode's learned rate is kept
    assert clients.counter.calls["AssumeRole"] == 1


def test_rejected_credentials_are_looked_up_again_on_the_next_pass(moto, base_credentials):
    settings = Settings(sts_endpoint=moto, service_endpoint=moto)
    clients = Clients(CallCounter())
    before = clients.get(settings, "us-east-1")
    clients.forget(settings)
    assert clients.get(settings, "us-east-1")[1] is not before[1]


def test_a_key_rotated_in_the_shared_credentials_file_is_taken_by_the_next_pass(moto, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def rotate(key_id: str) -> None:
        (tmp_path / "credentials").write_text(
            f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = fake/Secret/{key_id}\n"
        )

    settings = Settings(service_endpoint=moto)
    clients = Clients(CallCounter())
    rotate("AKIAFAKEROTATED00001")
    first = clients.get(settings, "us-east-1")
    assert clients.get(settings, "us-east-1")[1] is first[1]  # unchanged: the same client
    rotate("AKIAFAKEROTATED00002")
    session, _ = clients.get(settings, "us-east-1")
    assert session.get_credentials().get_frozen_credentials().access_key == "AKIAFAKEROTATED00002"


def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str) -> None:
    (tmp_path / "config").write_text(f"[profile reader]\nregion = us-east-1\n{lines}")
    (tmp_path / "credentials").write_text(
        "[reader]\naws_access_key_id = AKIAFAKEFAKEFAKE0002\naws_secret_access_key = fake/Secret/Key0002\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


def retries_of(settings: Settings) -> dict:
    session = make_session(settings, "us-east-1", CallCounter())
    return aws.logs_client(settings, session, "us-east-1", CallCounter()).meta.config.retries


def test_retries_come_from_the_aws_profile_when_no_flag_sets_them(tmp_path, monkeypatch, base_credentials):
    profile(tmp_path, monkeypatch, "retry_mode = standard\nmax_attempts = 3\n")
    unset = Settings(aws_profile="reader")
    assert retries_of(unset) == {"mode": "standard", "total_max_attempts": 3}
    flags = Settings(aws_profile="reader", retry_mode="legacy", max_attempts=5)
    assert retries_of(flags) == {"mode": "legacy", "total_max_attempts": 5}


def test_without_flags_or_profile_retries_are_adaptive_with_8_attempts(
    tmp_path, monkeypatch, base_credentials
):
    profile(tmp_path, monkeypatch, "")
    unset = Settings(aws_profile="reader")
    assert retries_of(unset) == {"mode": "adaptive", "total_max_attempts": 8}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("max_attempts = 4\n", {"mode": "standard", "total_max_attempts": 4}),
        ("retry_mode = legacy\n", {"mode": "legacy", "total_max_attempts": 10}),
    ],
)
def test_a_profile_setting_one_retry_key_gets_the_stock_wodles_value_for_the_other(
    tmp_path, monkeypatch, base_credentials, lines, expected
):
    profile(tmp_path, monkeypatch, lines)
    assert retries_of(Settings(aws_profile="reader")) == expected


def test_a_bad_retry_setting_in_the_profile_is_a_configuration_error(tmp_path, monkeypatch, base_credentials):
    profile(tmp_path, monkeypatch, "max_attempts = many\n")
    unset = Settings(aws_profile="reader")
    with pytest.raises(ConfigError, match="AWS profile reader: max_attempts 'many'"):
        retries_of(unset)


def test_each_page_carries_the_date_aws_answered_it_with(moto, logs, base_credentials):
    group = "/aws/ecr/image-scan-findings/dated"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now_ms = int(time.time() * 1000)
    events = [{"timestamp": now_ms, "message": str(n)} for n in range(3)]
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events)
    settings = Settings(service_endpoint=moto)
    _, client = Clients(CallCounter()).get(settings, "us-east-1")
    before = now_ms - 2000  # the Date header has whole seconds, taken one second early
    pages = list(CloudWatchReader(client, "us-east-1").pages(group, 0))
    after = int(time.time() * 1000)
    assert [e.message for page in pages for e in page.events] == ["0", "1", "2"]
    assert all(page.server_time_ms is not None and before <= page.server_time_ms <= after for page in pages)


def test_the_cli_retries_as_the_aws_profile_says_when_no_flag_is_given(
    logs, receiver, moto, short_dir, tmp_path
):
    """The stock aws-s3 wodle's way: `retry_mode`/`max_attempts` of the profile (here 2 attempts, so a
    call throttled twice gives up; the default 8 would have got through on the third)."""
    write_scan(logs, make_scan(random.Random(5), "web", "v1", int(time.time() * 1000) - 60_000, {"HIGH": 1}))
    (tmp_path / "config").write_text("[default]\nretry_mode = standard\nmax_attempts = 2\n")
    env = {**cli_env(), "AWS_CONFIG_FILE": str(tmp_path / "config")}
    with FaultProxy(moto, seed=3) as proxy:
        proxy.throttle("FilterLogEvents", calls=[1, 2])
        args = [
            "--run-once",
            "--service_endpoint",
            proxy.url,
            "--sts_endpoint",
            moto,
            "--socket",
            receiver.path,
        ]
        args += [
            "--state_db",
            str(short_dir / "state.db"),
            "--only_logs_after",
            "2020-JAN-01",
            "--workers",
            "1",
        ]
        result = subprocess.run(
            [sys.executable, "-m", "wazuh_ecr_scan", *args], capture_output=True, text=True, env=env, cwd=ROOT
        )
        assert proxy.count("FilterLogEvents") == 2
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ThrottlingException on FilterLogEvents" in result.stderr
    assert "skipped_groups=1" in result.stderr
