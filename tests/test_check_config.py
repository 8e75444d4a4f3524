"""--check-config: resolved settings, credentials, STS GetCallerIdentity, one DescribeLogGroups per region,
what is missing named by IAM action; exit 0 or 1, and nothing sent, nothing written."""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.stub import Stubber
from conftest import run_cli
from test_cli_config import conf, run_with
from test_ossec_config import SEED
from wazuh_ecr_scan import check_config
from wazuh_ecr_scan.check_config import Identity, Report, check_identity, check_region
from wazuh_ecr_scan.settings import parse_args

GROUP = "/aws/ecr/image-scan-findings/web"
IDENTITY = Identity("123456789012", "arn:aws:iam::123456789012:user/wazuh")


@pytest.fixture
def check_args(moto, receiver, short_dir):
    def build(*extra: str) -> list[str]:
        return [
            "--check-config",
            "--service_endpoint",
            moto,
            "--sts_endpoint",
            moto,
            "--socket",
            receiver.path,
            "--state_db",
            str(short_dir / "state.db"),
            *extra,
        ]

    return build


def test_everything_in_place_is_ok_and_touches_nothing(logs, receiver, check_args, short_dir):
    logs.create_log_group(logGroupName=GROUP)
    result = run_cli(*check_args())
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "account label: default (logs; state is kept under the account the credentials resolve to)" in out
    assert "sts:GetCallerIdentity: arn:aws:sts::123456789012:user/moto (account 123456789012)" in out
    assert "us-east-1: logs:DescribeLogGroups: 1 groups under '/aws/ecr/image-scan-findings/'" in out
    assert f"us-east-1: logs:FilterLogEvents on {GROUP}: allowed" in out
    assert f"analysisd socket {receiver.path}: accepting" in out
    assert out.rstrip().endswith("result: OK")
    assert receiver.take().raw == []
    assert not (short_dir / "state.db").exists()


def test_missing_group_socket_and_delete_permission_note(logs, check_args, short_dir):
    result = run_cli(
        *check_args(
            "--aws_log_groups",
            GROUP,
            "--remove-log-streams",
            "--regions",
            "us-east-1,eu-west-1",
            "--socket",
            str(short_dir / "nope"),
        )
    )
    assert result.returncode == 1
    assert f"[FAIL] us-east-1: log group {GROUP} does not exist" in result.stdout
    assert f"[FAIL] eu-west-1: log group {GROUP} does not exist" in result.stdout
    assert f"[FAIL] analysisd socket {short_dir / 'nope'}: No such file or directory" in result.stdout
    assert "logs:DeleteLogStream (not tested" in result.stdout
    assert "result: 3 check(s) failed" in result.stdout


def test_the_guide_block_with_an_unknown_profile(check_args, tmp_path):
    text = SEED.replace("<aws_profile>default</aws_profile>", "<aws_profile>nope</aws_profile>")
    result = run_with({}, *check_args("--config", conf(tmp_path, text)))
    assert result.returncode == 1
    assert f"service 1: {tmp_path / 'ecr-scan.conf'} line 5" in result.stdout
    assert "[FAIL] credentials: AWS profile 'nope' not found" in result.stdout


def test_bad_configuration_is_still_exit_2(check_args, tmp_path):
    result = run_cli(*check_args("--config", conf(tmp_path, "<wodle name='aws-s3'><x/></wodle>")))
    assert result.returncode == 2 and "No such tag 'x'" in result.stderr


def stubbed_logs() -> tuple[object, Stubber]:
    client = boto3.client("logs", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    return client, Stubber(client)


def denied(stub: Stubber, method: str, operation: str) -> None:
    stub.add_client_error(
        method,
        service_error_code="AccessDeniedException",
        service_message=f"User is not authorized to perform: logs:{operation}",
        http_status_code=400,
    )


def test_describe_denied_names_the_action_and_resource():
    client, stub = stubbed_logs()
    denied(stub, "describe_log_groups", "DescribeLogGroups")
    report = Report()
    with stub:
        check_region(client, "us-east-1", IDENTITY, parse_args(["--state_db", "x"]).services[0], report)
    (check,) = report.checks
    assert check.status == "FAIL"
    assert check.missing == "logs:DescribeLogGroups on arn:aws:logs:us-east-1:123456789012:log-group:*"


def test_filter_denied_names_the_group_and_the_verdict_lists_actions():
    client, stub = stubbed_logs()
    stub.add_response("describe_log_groups", {"logGroups": [{"logGroupName": GROUP}]})
    denied(stub, "filter_log_events", "FilterLogEvents")
    report = Report()
    with stub:
        check_region(client, "us-east-1", IDENTITY, parse_args(["--state_db", "x"]).services[0], report)
    listed, read = report.checks
    assert listed.status == "ok" and read.status == "FAIL"
    assert read.missing == f"logs:FilterLogEvents on arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
    out = io.StringIO()
    assert check_config._verdict(report, out) == 1
    assert out.getvalue() == "result: 1 check(s) failed; IAM actions to allow: logs:FilterLogEvents\n"


def test_rejected_credentials_and_gov_cloud_partition():
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    stub = Stubber(sts)
    stub.add_client_error(
        "get_caller_identity", service_error_code="InvalidClientTokenId", http_status_code=403
    )
    report = Report()
    with stub:
        assert check_identity(sts, report) is None
    assert report.checks[0].status == "FAIL" and "rejected" in report.checks[0].text
    gov = Identity("123456789012", "arn:aws-us-gov:iam::123456789012:user/w")
    assert check_config._arn(gov, "us-gov-west-1", "*").startswith("arn:aws-us-gov:logs:us-gov-west-1:")


def test_no_groups_yet_is_a_warning_not_a_failure():
    client, stub = stubbed_logs()
    stub.add_response("describe_log_groups", {"logGroups": []})
    report = Report()
    with stub:
        check_region(client, "us-east-1", IDENTITY, parse_args(["--state_db", "x"]).services[0], report)
    assert [c.status for c in report.checks] == ["ok", "warn"] and not report.failed


def test_a_profile_whose_credentials_cannot_be_resolved_is_exit_3_in_one_wazuh_line(tmp_path, short_dir):
    """A role chain to a missing source_profile (or a failing credential_process) raises while botocore
    resolves credentials: one ERROR line and exit 3, and a [FAIL] line in --check-config, no traceback."""
    aws_config = tmp_path / "config"
    aws_config.write_text(
        "[profile chained]\nregion = us-east-1\nrole_arn = arn:aws:iam::111122223333:role/x\n"
        "source_profile = missing\n"
    )
    env = {"AWS_CONFIG_FILE": str(aws_config), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    common = ["--aws_profile", "chained", "--state_db", str(short_dir / "s.db"), "--output", "stdout"]
    result = run_with(env, "--run-once", *common)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "wazuh-ecr-scan: ERROR: " in lines[0] and "chained" in lines[0], lines
    checked = run_with(env, "--check-config", *common)
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert "[FAIL] credentials: AWS profile chained" in checked.stdout


def test_check_config_of_a_file_whose_blocks_are_all_disabled_checks_the_file(tmp_path, short_dir):
    text = (
        '<wodle name="aws-s3"><disabled>yes</disabled><service type="cloudwatchlogs">'
        "<regions>eu-west-3</regions><aws_log_groups>/aws/ecr/image-scan-findings/x</aws_log_groups>"
        "</service></wodle>"
    )
    unreachable = "http://127.0.0.1:9"
    result = run_cli(
        *["--config", conf(tmp_path, text), "--check-config", "--state_db", str(short_dir / "s.db")],
        *["--sts_endpoint", unreachable, "--service_endpoint", unreachable, "--max_attempts", "1"],
    )
    assert "regions: eu-west-3" in result.stdout and "regions: us-east-1" not in result.stdout, result.stdout


def test_a_stock_aws_s3_block_reading_ecr_groups_in_ossec_conf_is_warned(logs, check_args, tmp_path):
    logs.create_log_group(logGroupName=GROUP)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ossec.conf").write_text(
        '<ossec_config>\n  <wodle name="aws-s3">\n    <service type="cloudwatchlogs">\n'
        f"      <aws_log_groups>/aws/lambda/billing,{GROUP}</aws_log_groups>\n    </service>\n  </wodle>\n"
        "</ossec_config>\n"
    )
    result = run_cli(*check_args("--wazuh_path", str(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    (warning,) = [line for line in result.stdout.splitlines() if "[warn]" in line]
    # only the ECR group: the stock wodle reading other groups is none of this module's business
    assert f"{etc}/ossec.conf line 4: Wazuh's own aws-s3 wodle reads {GROUP} too" in warning
    assert result.stdout.rstrip().endswith("result: OK with 1 warning(s) above")


def test_a_repository_name_given_for_a_group_suggests_the_group(logs, check_args):
    logs.create_log_group(logGroupName="/aws/ecr/image-scan-findings/sample-repo")
    result = run_cli(*check_args("--aws_log_groups", "sample-repo"))
    assert result.returncode == 1
    hint = "did you mean /aws/ecr/image-scan-findings/sample-repo?"
    assert f"us-east-1: log group sample-repo does not exist; {hint}" in result.stdout


def test_two_blocks_resolving_to_one_account_with_overlapping_groups_are_warned(logs, check_args, tmp_path):
    logs.create_log_group(logGroupName=GROUP)
    block = '<service type="cloudwatchlogs"><aws_account_alias>{}</aws_account_alias></service>'
    path = conf(tmp_path, f'<wodle name="aws-s3">{block.format("a")}{block.format("b")}</wodle>')
    result = run_cli(*check_args("--config", path, "--regions", "us-east-1"))
    assert result.returncode == 0, result.stdout + result.stderr
    (warning,) = [line for line in result.stdout.splitlines() if "[warn]" in line]
    assert "also reads account 123456789012 in us-east-1 with overlapping groups" in warning
