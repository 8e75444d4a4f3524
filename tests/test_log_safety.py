"""What reaches ossec.log: no credential in any form botocore logs (a role assumed at --debug 3 included),
no raw control character from a value someone else wrote, and the file follows log rotation."""

from __future__ import annotations

import os
import random
import re
import signal
import time

import pytest
from conftest import cli_env, run_cli, start_cli
from lambda_writer import GROUP_PREFIX, digest_for, make_scan, write_scan
from wazuh_ecr_scan.logs import escape_controls, mask

NOW_MS = int(time.time() * 1000)
WAZUH_LINE = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} wazuh-ecr-scan: (DEBUG|INFO|WARNING|ERROR): ")
BASE_SECRETS = [
    cli_env()[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
]
ROLE = "arn:aws:iam::123456789012:role/ecr-scan-reader"
# The assumed role's credentials, in the forms botocore logs them, when not masked.
UNMASKED_ROLE_CREDENTIALS = re.compile(
    r"<(SecretAccessKey|SessionToken|AccessKeyId)>(?!\*\*\*<)|\bASIA[A-Z0-9]{12,}|FQoGZXIvYXdz|IQoJb3JpZ2lu"
)


def test_a_role_assumed_at_debug_3_leaves_no_credential_in_the_log(logs, receiver, cli_args, moto, short_dir):
    write_scan(logs, make_scan(random.Random(1), "web", "v1", NOW_MS - 60_000, {"HIGH": 1}))
    log_file = short_dir / "ossec.log"
    args = cli_args(
        "--debug", "3", "--log_file", str(log_file), "--iam_role_arn", ROLE, "--sts_endpoint", moto
    )
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(receiver.take().events) == 2  # read with the role's credentials
    written = log_file.read_text()
    sts_lines = "\n".join(line[:400] for line in written.splitlines() if "sts" in line.lower())
    assert "<SecretAccessKey>***</SecretAccessKey>" in written, sts_lines  # the STS answer was logged
    assert "'X-Amz-Security-Token': b'***'" in written  # and the signed headers
    for secret in BASE_SECRETS:
        assert secret not in written
    leaks = [m.group() for m in UNMASKED_ROLE_CREDENTIALS.finditer(written)]
    assert leaks == []
    assert written == result.stderr.split("\nregion ")[0] + "\n"  # stderr got the same masked lines


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("<SecretAccessKey>wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY</SecretAccessKey>", "wJalrXUtnFEMI"),
        ("<SessionToken>AQoDYXdzEPT//////////wEXAMPLE</SessionToken>", "AQoDYXdzEPT"),
        ('{"SecretAccessKey": "abc/def+ghi", "SessionToken": "tok3n"}', "abc/def+ghi"),
        ('{"SecretAccessKey": "abc/def+ghi", "SessionToken": "tok3n"}', "tok3n"),
        ('b\'{\\"SessionToken\\": \\"tok3n\\"}\'', "tok3n"),
        ("{'X-Amz-Security-Token': b'FakeToken==', 'Authorization': b'x'}", "FakeToken=="),
        ("{'aws_session_token': b'tok3n==', 'aws_secret_access_key': 's3cr3t'}", "tok3n=="),
        ("{'aws_session_token': b'tok3n==', 'aws_secret_access_key': 's3cr3t'}", "s3cr3t"),
        ("x-amz-security-token:tok3n\n", "tok3n"),
        ("Credential=ASIAQWERTYUIOPASDFGH/20261201/us-east-1/logs/aws4_request", "ASIAQWERTYUIOPASDFGH"),
        ("AccessKeyId: AKIAQWERTYUIOPASDFGH", "AKIAQWERTYUIOPASDFGH"),
        ("token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ== end", "IQoJb3JpZ2lu"),
        ("token FwoGZXIvYXdzEBYaDxo6Gfi+zB334eOSABMiM23/V7P2 end", "FwoGZXIvYXdz"),
        ("Signature=0123456789abcdef", "0123456789abcdef"),
    ],
)
def test_credentials_are_masked_by_shape_in_every_form(line, secret):
    assert secret not in mask(line, set())


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        # Secret keys are base64-like, and 2 in 64 start with b or B: the bytes prefix `b'` must not swallow
        # that first character (it used to stay in the log).
        ("<SecretAccessKey>BPhkncePvM66V7GIYNntkyqWot67NR0PpXvl</SecretAccessKey>", "<SecretAccessKey>***<"),
        ('{"SecretAccessKey": "bj1WJsuPoHqW0R0tiB083N"}', '{"SecretAccessKey": "***"}'),
        ("{'X-Amz-Security-Token': b'bTOKEN=='}", "{'X-Amz-Security-Token': b'***'}"),
        ("aws_secret_access_key=bs3cr3t", "aws_secret_access_key=***"),
    ],
)
def test_a_secret_is_masked_from_its_first_character(line, masked):
    assert masked in mask(line, set())


def test_masking_leaves_ordinary_lines_alone():
    line = "group /aws/ecr/image-scan-findings/web: reading from 1700000000000, SignedHeaders=host;x-amz-date"
    assert mask(line, set()) == line


def test_control_characters_are_escaped():
    assert escape_controls("a\nb\r\x1b[31m\x00\x85\u2028") == "a\\nb\\r\\x1b[31m\\x00\\x85\\u2028"


def test_a_stream_name_cannot_forge_or_recolour_a_log_line(logs, receiver, cli_args, short_dir):
    group = GROUP_PREFIX + "web"
    forged = "2026/01/01 00:00:00 wazuh-ecr-scan: ERROR: forged"
    stream = f"HIGH-v1-{digest_for('x')}-2025-06-07T02-02-04Z\n{forged}\x1b[2K"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": NOW_MS - 60_000, "message": "{}"}]
    )
    log_file = short_dir / "ossec.log"
    result = run_cli(*cli_args("--debug", "2", "--log_file", str(log_file)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(receiver.take().events) == 1
    written = log_file.read_text()
    assert "\x1b" not in written
    lines = written.splitlines()
    assert all(WAZUH_LINE.match(line) for line in lines), lines
    assert [line for line in lines if "\\n" + forged in line]  # the name is there, escaped
    assert not [line for line in lines if line.startswith(forged)]


def test_the_log_file_follows_rotation_in_loop_mode(logs, receiver, cli_args, short_dir):
    write_scan(logs, make_scan(random.Random(2), "web", "v1", NOW_MS - 60_000, {"HIGH": 1}))
    log_file = short_dir / "ossec.log"
    args = [a for a in cli_args("--log_file", str(log_file), "--interval", "1s") if a != "--run-once"]
    proc = start_cli(*args)
    try:
        wait_for_line(log_file, "pass done")
        os.rename(log_file, str(log_file) + ".1")  # what logrotate does (without copytruncate)
        wait_for_line(log_file, "pass done")  # the next pass writes to a new file at the same path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert "pass done" in (short_dir / "ossec.log.1").read_text()


def wait_for_line(path, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never reached {path}")


def test_a_traceback_cannot_forge_a_line_either():
    import io

    from wazuh_ecr_scan.logs import log, setup_logging

    stream = io.StringIO()
    setup_logging(0, stream=stream)
    try:
        raise ValueError("x\n2026/01/01 00:00:00 wazuh-ecr-scan: ERROR: forged\x1b[2K")
    except ValueError:
        log.exception("internal error")
    setup_logging(0)
    lines = stream.getvalue().splitlines()
    assert WAZUH_LINE.match(lines[0]) and all(line.startswith("  ") for line in lines[1:])
    assert "\x1b" not in stream.getvalue()
