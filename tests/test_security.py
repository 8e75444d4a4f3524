"""Secrets never reach a log line, a status line or an event, at any --debug level."""

from __future__ import annotations

import random
import re
import time

from conftest import cli_env, run_cli
from lambda_writer import make_scan, write_scan
from wazuh_ecr_scan.logs import mask

SECRETS = [cli_env()[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]


def test_no_credential_in_any_output(logs, receiver, cli_args):
    """--debug 3 logs every line the lower levels log, and botocore's requests and answers besides."""
    write_scan(logs, make_scan(random.Random(1), "web", "v1", int(time.time() * 1000) - 60_000, {"HIGH": 2}))
    result = run_cli(*cli_args("--debug", "3"))
    assert result.returncode == 0, result.stderr[-2000:]
    got = receiver.take()
    assert len(got.events) == 3
    assert "botocore" in result.stderr  # the noisy level really ran
    everything = result.stdout + result.stderr + "".join(d.decode(errors="replace") for d in got.raw)
    for secret in SECRETS:
        assert secret not in everything


# What moto's STS answers AssumeRole with, by shape: temporary key ids, its session tokens' fixed prefix,
# and the secret key and token elements of the XML answer botocore logs at --debug 3.
ASSUMED_ROLE_SECRETS = re.compile(
    r"ASIA[A-Z0-9]{16}|FQoGZXIvYXdzEBYaD|<SecretAccessKey>(?!\*\*\*<)|<SessionToken>(?!\*\*\*<)"
)


def test_no_credential_of_an_assumed_role_in_any_output(logs, receiver, cli_args, moto):
    write_scan(logs, make_scan(random.Random(2), "web", "v1", int(time.time() * 1000) - 60_000, {"HIGH": 2}))
    role = ("--iam_role_arn", "arn:aws:iam::123456789012:role/wazuh-ecr", "--sts_endpoint", moto)
    result = run_cli(*cli_args(*role, "--debug", "3"))
    assert result.returncode == 0, result.stderr[-2000:]
    got = receiver.take()
    assert len(got.events) == 3
    assert "AssumeRole" in result.stderr  # the role's credentials went through the logged lines
    everything = result.stdout + result.stderr + "".join(d.decode(errors="replace") for d in got.raw)
    leaked = sorted({m.group(0) for m in ASSUMED_ROLE_SECRETS.finditer(everything)})
    assert leaked == [], "an assumed role's credentials are in the output, unmasked"


def test_mask_patterns():
    line = (
        "Credential=AKIAABCDEFGHIJKLMNOP/20261126/us-east-1/logs, Signature=0123abcdef, "
        "'X-Amz-Security-Token': 'IQoJb3JpZ2luX2VjEJr', aws_secret_access_key=abc/def+ghi"
    )
    masked = mask(line, set())
    for secret in ("AKIAABCDEFGHIJKLMNOP", "0123abcdef", "IQoJb3JpZ2luX2VjEJr", "abc/def+ghi"):
        assert secret not in masked
    assert mask("token s3cr3t-value here", {"s3cr3t-value"}) == "token *** here"


def test_secrets_of_a_role_assumed_every_pass_stay_bounded_and_the_newest_are_masked():
    from wazuh_ecr_scan.logs import MAX_SECRETS, SecretMask

    masker = SecretMask()
    for n in range(10 * MAX_SECRETS):  # a year of passes in loop mode, each assuming the role again
        masker.register(f"session-token-{n:06d}")
    assert len(masker.secrets) == MAX_SECRETS
    newest = f"session-token-{10 * MAX_SECRETS - 1:06d}"
    assert mask(f"using {newest}", masker.secrets) == "using ***"
