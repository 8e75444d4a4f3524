"""The aws-s3 wodle's XML dialect: Wazuh's ECR guide block verbatim, every cloudwatchlogs tag, and bad
input refused with a line naming the file, the line and the tag, as Wazuh's own reader does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from wazuh_ecr_scan import ossec_config
from wazuh_ecr_scan.errors import ConfigError

# Wazuh documentation, "Amazon ECR image scanning", Wazuh configuration step (4.x), verbatim.
SEED = """\
<wodle name="aws-s3">
  <disabled>no</disabled>
  <interval>5m</interval>
  <run_on_start>yes</run_on_start>
  <service type="cloudwatchlogs">
    <aws_profile>default</aws_profile>
    <aws_log_groups>/aws/ecr/image-scan-findings/name_of_the_ECR_repository</aws_log_groups>
  </service>
</wodle>
"""


def write(tmp_path: Path, text: str, name: str = "ecr.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def service_xml(*children: str, attributes: str = 'type="cloudwatchlogs"') -> str:
    body = "\n".join(f"    {c}" for c in children)
    return f'<wodle name="aws-s3">\n  <service {attributes}>\n{body}\n  </service>\n</wodle>\n'


def test_the_guide_block_verbatim(tmp_path):
    config = ossec_config.load(write(tmp_path, SEED))
    (block,) = config.blocks
    assert (block.line, block.disabled, block.interval_s, block.run_on_start) == (1, False, 300, True)
    (service,) = block.services
    assert service.line == 5
    assert service.aws_profile == "default"
    assert service.aws_log_groups == ("/aws/ecr/image-scan-findings/name_of_the_ECR_repository",)
    assert service.regions == ()


def test_every_cloudwatchlogs_tag(tmp_path):
    text = service_xml(
        "<aws_account_id>123456789012</aws_account_id>",
        "<aws_account_alias>prod</aws_account_alias>",
        "<aws_profile>audit</aws_profile>",
        "<iam_role_arn>arn:aws:iam::210987654321:role/wazuh-ecr</iam_role_arn>",
        "<iam_role_duration>3600</iam_role_duration>",
        "<only_logs_after>2024-JAN-31</only_logs_after>",
        "<regions>us-east-1, eu-west-1,us-east-1</regions>",
        "<aws_log_groups>/aws/ecr/image-scan-findings/web,/aws/ecr/image-scan-findings/team-a/*</aws_log_groups>",
        "<remove_log_streams>yes</remove_log_streams>",
        '<discard_regex field="vulnerability.severity">^(Low|Informational)$</discard_regex>',
        "<sts_endpoint>vpce-0a1b.sts.us-east-1.vpce.amazonaws.com</sts_endpoint>",
        "<service_endpoint>https://vpce-0c2d.logs.us-east-1.vpce.amazonaws.com</service_endpoint>",
    )
    (service,) = ossec_config.load(write(tmp_path, text)).blocks[0].services
    assert service.aws_account_id == "123456789012" and service.aws_account_alias == "prod"
    assert service.aws_profile == "audit"
    assert service.iam_role_arn == "arn:aws:iam::210987654321:role/wazuh-ecr"
    assert service.iam_role_duration == 3600
    assert service.only_logs_after_ms == 1706659200000
    assert service.regions == ("us-east-1", "eu-west-1")
    assert service.aws_log_groups == (
        "/aws/ecr/image-scan-findings/web",
        "/aws/ecr/image-scan-findings/team-a/*",
    )
    assert service.remove_log_streams is True
    assert service.discard.field == "vulnerability.severity"
    assert service.discard.pattern.pattern == "^(Low|Informational)$"
    assert service.sts_endpoint == "https://vpce-0a1b.sts.us-east-1.vpce.amazonaws.com"
    assert service.service_endpoint == "https://vpce-0c2d.logs.us-east-1.vpce.amazonaws.com"


def test_discard_regex_without_field_and_a_bare_ampersand(tmp_path):
    text = service_xml('<discard_regex>"severity": "(LOW|INFORMATIONAL)"&&x?</discard_regex>')
    (service,) = ossec_config.load(write(tmp_path, text)).blocks[0].services
    assert service.discard.field is None
    assert service.discard.pattern.pattern == '"severity": "(LOW|INFORMATIONAL)"&&x?'


def test_a_whole_ossec_conf_yields_only_cloudwatchlogs_services(tmp_path, caplog):
    text = f"""<?xml version="1.0"?>
<ossec_config>
  <global><logall>no</logall></global>
  <wodle name="command"><tag>x</tag><command>/bin/true</command></wodle>
</ossec_config>
<ossec_config>
  <wodle name="aws-s3">
    <disabled>no</disabled>
    <skip_on_error>yes</skip_on_error>
    <bucket type="cloudtrail"><name>trail</name></bucket>
    <service type="inspector"><regions>us-east-1</regions></service>
    <subscriber type="security_lake"><sqs_name>q</sqs_name></subscriber>
    <service type="cloudwatchlogs"><aws_account_id>111111111111</aws_account_id></service>
  </wodle>
</ossec_config>
{SEED}"""
    with caplog.at_level(logging.INFO, logger="wazuh_ecr_scan"):
        config = ossec_config.load(write(tmp_path, text))
    first, second = config.blocks
    assert first.skip_on_error and [s.aws_account_id for s in first.services] == ["111111111111"]
    assert second.services[0].aws_profile == "default"
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert [m.split(": ", 1)[0].rsplit(" ", 1)[1] for m in ignored] == ["10", "11", "12"]  # their lines


def test_scheduling_tags_duplicates_and_empty_values_are_warnings(tmp_path, caplog):
    text = """<wodle name="aws-s3">
  <interval>1M</interval>
  <time>02:00</time>
  <service type="cloudwatchlogs">
    <regions>us-east-1</regions>
    <regions>eu-west-1</regions>
    <only_logs_after></only_logs_after>
    <discard_regex field="x"></discard_regex>
  </service>
</wodle>"""
    with caplog.at_level(logging.WARNING, logger="wazuh_ecr_scan"):
        (block,) = ossec_config.load(write(tmp_path, text)).blocks
    assert block.interval_s == 30 * 86400
    assert block.services[0].regions == ("eu-west-1",)  # the last one, as in Wazuh
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "line 3: <time> is not used" in messages
    assert "line 6: <regions> given again (first at line 5)" in messages
    assert "line 7: Empty content for tag 'only_logs_after'" in messages
    assert "line 8: No value was provided for 'discard_regex'. No event will be skipped." in messages


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('<wodle name="aws-s3">\n  <foo>1</foo>\n</wodle>', 2, "No such tag 'foo' at module 'aws-s3'."),
        (service_xml("<log_group>x</log_group>"), 3, "No such child tag 'log_group' of service at module"),
        (
            '<wodle name="aws-s3">\n<disabled>noo</disabled></wodle>',
            2,
            "Invalid content for tag 'disabled' at module 'aws-s3': 'noo' is not one of: yes, no.",
        ),
        ('<wodle name="aws-s3">\n<interval>5 min</interval></wodle>', 2, "Invalid interval value"),
        (service_xml("<aws_account_id></aws_account_id>"), 3, "Empty content for tag 'aws_account_id'"),
        (service_xml("<aws_account_id>prod</aws_account_id>"), 3, "'prod' is not a 12-digit AWS account ID"),
        (service_xml("<iam_role_arn>wazuh-role</iam_role_arn>"), 3, "'wazuh-role' is not a role ARN"),
        (
            service_xml(
                "<iam_role_arn>arn:aws:iam::123456789012:role/r</iam_role_arn>",
                "<iam_role_duration>60</iam_role_duration>",
            ),
            4,
            "Invalid content for tag 'iam_role_duration' at module 'aws-s3': '60': the session duration",
        ),
        (service_xml("<iam_role_duration>900</iam_role_duration>"), 2, "needs an <iam_role_arn>"),
        (service_xml("<only_logs_after>2024-FOO-01</only_logs_after>"), 3, "'2024-FOO-01' is not a date"),
        (service_xml("<regions>us-east-1,moon-1</regions>"), 3, "'moon-1' is not an AWS region name"),
        (service_xml("<aws_log_groups></aws_log_groups>"), 3, "Empty content for tag 'aws_log_groups'"),
        (service_xml("<aws_log_groups>/aws/ecr/a*b</aws_log_groups>"), 3, "only a final '*'"),
        (service_xml("<aws_log_groups>/aws/ecr/{x}</aws_log_groups>"), 3, "has '{}'"),
        (
            service_xml("<remove_log_streams>1</remove_log_streams>"),
            3,
            "Invalid content for tag 'remove_log_streams'",
        ),
        (
            service_xml('<discard_regex field="x">(open</discard_regex>'),
            3,
            "'(open' is not a valid regular expression",
        ),
        (
            service_xml('<discard_regex fields="x">y</discard_regex>'),
            3,
            "Attribute name 'fields' is not valid",
        ),
        (service_xml("<sts_endpoint>ftp://x</sts_endpoint>"), 3, "'ftp://x' is not an endpoint URL"),
        (service_xml("<regions><region>x</region></regions>"), 3, "<regions> must hold a value"),
        (service_xml("<access_key>AKIA</access_key>"), 3, "<access_key> is not supported"),
        (service_xml(attributes=""), 2, "Undefined type for service."),
        (
            service_xml(attributes='kind="cloudwatchlogs"'),
            2,
            "Attribute name 'kind' is not valid. The valid one is 'type'.",
        ),
        (service_xml(attributes='type="cloudwatch"'), 2, "Invalid service type 'cloudwatch'. Valid ones are"),
        ('<wodle name="aws-s3">\n  <service type="cloudwatchlogs">\n</wodle>', 3, "bad XML: "),
        (
            '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<wodle name="aws-s3"/>',
            1,
            "bad XML: ",
        ),
    ],
)
def test_errors_name_file_line_and_tag(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        ossec_config.load(path)
    assert str(caught.value).startswith(f"configuration error at '{path}' line {line}: ")
    assert message in str(caught.value)


def test_a_file_without_aws_s3_block_or_unreadable(tmp_path):
    path = write(tmp_path, '<ossec_config><wodle name="command"/></ossec_config>')
    with pytest.raises(ConfigError, match='no <wodle name="aws-s3"> block found'):
        ossec_config.load(path)
    with pytest.raises(ConfigError, match=r"--config: cannot read /nonexistent\.conf"):
        ossec_config.load("/nonexistent.conf")


def test_shipped_template_and_example_are_valid(tmp_path):
    root = Path(__file__).resolve().parents[1]
    (block,) = ossec_config.load(str(root / "wodle" / "ecr-scan.conf")).blocks
    assert block.services[0].aws_log_groups == ("/aws/ecr/image-scan-findings/*",)
    example = ossec_config.parse_file(str(root / "ossec.conf.example"))
    (command,) = [w for w in example.iter("wodle") if w.get("name") == "command"]
    values = {child.tag: (child.text or "").strip() for child in ossec_config.elements(command)}
    assert values["command"].split()[:3] == [
        "/var/ossec/wodles/ecr-scan/ecr-scan",
        "--config",
        "/var/ossec/etc/ecr-scan.conf",
    ]
    assert "--run-once" in values["command"]
    assert values["ignore_output"] == "yes" and int(values["timeout"]) > 0  # modulesd waits only then


def test_comments_and_bytes_are_read_as_wazuh_reads_them(tmp_path):
    """Wazuh's os_xml skips a comment up to the first "-->" whatever it holds, and reads bytes: a
    commented-out command line ("--config") or a Latin-1 word in an ossec.conf must not stop the module."""
    commented = (
        "<ossec_config>\n  <!-- old: /var/ossec/wodles/ecr-scan/ecr-scan --config etc/ecr-scan.conf\n"
        "       --run-once -->\n" + SEED + "</ossec_config>\n"
    )
    (block,) = ossec_config.load(write(tmp_path, commented)).blocks
    assert block.services[0].aws_profile == "default"
    latin1 = tmp_path / "latin1.conf"
    latin1.write_bytes(b"<!-- configuraci\xf3n de Wazuh -->\n" + SEED.encode())
    assert len(ossec_config.load(str(latin1)).blocks) == 1
    bad = commented.replace("<run_on_start>yes", "<run_on_start>maybe")
    with pytest.raises(ConfigError, match=r"line 7"):  # line numbers survive the removed comment
        ossec_config.load(write(tmp_path, bad))


# -- what `install` and `uninstall` read in ossec.conf ----------------------------------------------

COMMAND = (
    '<wodle name="command">\n  <command>/var/ossec/wodles/ecr-scan/ecr-scan --run-once</command>\n</wodle>\n'
)
STOCK = (
    '<wodle name="aws-s3">\n  <service type="cloudwatchlogs">\n'
    "    <aws_log_groups>/aws/lambda/x, /aws/ecr/image-scan-findings/web</aws_log_groups>\n"
    "  </service>\n</wodle>\n"
)


def test_the_ossec_conf_report_skips_commented_and_disabled_blocks(tmp_path):
    """As Wazuh's os_xml and modulesd read it: comments skipped (even one holding "--"), blocks with
    <disabled>yes</disabled> not run, several top-level <ossec_config> blocks."""
    disabled = "<disabled>yes</disabled>\n"
    text = (
        "<ossec_config>\n<!-- was: --run-once\n"
        + COMMAND
        + STOCK
        + "-->\n"  # lines 2-11 commented out
        + COMMAND.replace("<command>", disabled + "<command>")  # lines 12-15
        + STOCK.replace("<service", disabled + "<service")  # lines 16-21
        + "</ossec_config>\n<ossec_config>\n  <ruleset>\n    <rule_dir>etc/rules</rule_dir>\n"
        "  </ruleset>\n</ossec_config>\n"
    )
    path = write(tmp_path, text, "ossec.conf")
    assert ossec_config.ossec_conf_report(path) == ossec_config.OssecConfReport(
        stock_wodle_groups=[],
        module_line=None,
        missing_ruleset_lines=["<decoder_dir>etc/decoders</decoder_dir>"],
    )
    enabled = text + "<ossec_config>\n" + COMMAND + STOCK + "</ossec_config>\n"  # lines 28-37
    report = ossec_config.ossec_conf_report(write(tmp_path, enabled, "ossec.conf"))
    assert report.module_line == 30  # its <command>
    assert report.stock_wodle_groups == [(34, "/aws/ecr/image-scan-findings/web")]
    # A tag given twice: modulesd keeps the last one.
    twice = text.replace("<disabled>yes</disabled>\n", "<disabled>yes</disabled><disabled>no</disabled>\n")
    assert ossec_config.ossec_conf_report(write(tmp_path, twice, "ossec.conf")).module_line == 14
    replaced = COMMAND.replace("</command>", "</command><command>/bin/true</command>")
    report = ossec_config.ossec_conf_report(write(tmp_path, f"<ossec_config>{replaced}</ossec_config>"))
    assert report.module_line is None


def test_the_ossec_conf_report_of_a_broken_or_missing_file(tmp_path):
    broken = write(tmp_path, "<ossec_config>\n" + COMMAND + "  <ruleset>\n</ossec_config>\n", "ossec.conf")
    report = ossec_config.ossec_conf_report(broken)
    assert report.bad_xml is not None and report.bad_xml.startswith(
        f"configuration error at '{broken}' line 6"
    )
    assert report.module_line == 3  # read in recover mode up to the break
    assert '"module_line": 3' in ossec_config.ossec_conf_report_json(broken)
    with pytest.raises(ConfigError, match=r"^cannot read /nonexistent/ossec\.conf: No such file"):
        ossec_config.ossec_conf_report("/nonexistent/ossec.conf")
    assert ossec_config.ossec_conf_report_json("/nonexistent/ossec.conf") == (
        '{"error": "cannot read /nonexistent/ossec.conf: No such file or directory"}'
    )
