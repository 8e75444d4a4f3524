"""AWS sessions and clients: credentials (profile, role), botocore retry mode, API call counting, rate cap."""

from __future__ import annotations

import collections
import os
import pwd
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from wazuh_ecr_scan import __version__, ratelimit
from wazuh_ecr_scan.errors import AwsError, CredentialsError
from wazuh_ecr_scan.logs import log, register_secret
from wazuh_ecr_scan.settings import ServiceSettings as Settings
from wazuh_ecr_scan.values import role_account

ROLE_SESSION_NAME = "wazuh-ecr-scan"
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
CREDENTIAL_ERROR_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
}


class CallCounter:
    """API calls made, by operation name (one per call, retries not counted) and HTTP attempts."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.attempts = 0

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._on_call)
        client.meta.events.register("before-send", self._on_send)

    def _on_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _on_send(self, **_: Any) -> None:
        self.attempts += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def client_config(settings: Settings, region: str) -> Config:
    return Config(
        region_name=region,
        retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=max(10, settings.workers),  # botocore's default pool is 10
        user_agent_extra=f"wazuh-ecr-scan/{__version__}",
    )


def make_session(settings: Settings, region: str, counter: CallCounter) -> boto3.Session:
    """A session with the profile's credentials, or the role's when --iam_role_arn is set."""
    try:
        session = boto3.Session(profile_name=settings.aws_profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise CredentialsError(
            f"AWS profile {settings.aws_profile!r} not found in {shared_files_searched()}"
        ) from exc
    try:  # before any call: botocore logs the request's headers (the session token) at --debug 3
        found = _register_credentials(session)
    except botocore.exceptions.BotoCoreError as exc:
        raise CredentialsError(f"AWS profile {settings.aws_profile or 'default'}: {exc}") from exc
    if not found:
        raise CredentialsError(no_credentials_message(settings.aws_profile))
    if not settings.iam_role_arn:
        return session
    sts = session.client("sts", endpoint_url=settings.sts_endpoint, config=client_config(settings, region))
    counter.attach(sts)
    ratelimit.shared(settings.max_rate).attach(sts)
    kwargs: dict[str, Any] = {"RoleArn": settings.iam_role_arn, "RoleSessionName": ROLE_SESSION_NAME}
    if settings.iam_role_duration:
        kwargs["DurationSeconds"] = settings.iam_role_duration
    try:
        credentials = sts.assume_role(**kwargs)["Credentials"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise CredentialsError(f"cannot assume role {settings.iam_role_arn}: {describe_error(exc)}") from exc
    for secret in (credentials["SecretAccessKey"], credentials["SessionToken"], credentials["AccessKeyId"]):
        register_secret(secret)
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


# Account of each set of credentials met in this run (by access key id): GetCallerIdentity once each.
_ACCOUNTS: dict[str, str] = {}


def resolve_account(settings: Settings, session: boto3.Session, region: str, counter: CallCounter) -> str:
    """The AWS account these credentials act in: the state DB keys offsets by it, never by a label.

    An assumed role acts in the account of its ARN; other credentials are asked with
    sts:GetCallerIdentity (no permission needed), once per access key in a run."""
    role = role_account(settings.iam_role_arn)
    if role:
        return role
    credentials = session.get_credentials()
    if credentials is None:
        raise CredentialsError(no_credentials_message(settings.aws_profile))
    access_key = credentials.get_frozen_credentials().access_key
    if access_key not in _ACCOUNTS:
        config = client_config(settings, region)
        sts = session.client("sts", endpoint_url=settings.sts_endpoint, config=config)
        counter.attach(sts)
        ratelimit.shared(settings.max_rate).attach(sts)
        try:
            _ACCOUNTS[access_key] = sts.get_caller_identity()["Account"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if is_credentials_error(exc):
                raise CredentialsError(f"AWS rejected the credentials: {describe_error(exc)}") from exc
            if settings.aws_account_id:
                log.warning(
                    "cannot ask AWS which account the credentials belong to (%s): keeping state under"
                    " <aws_account_id> %s; give <sts_endpoint> if STS is reachable only through one",
                    describe_error(exc),
                    settings.aws_account_id,
                )
                return settings.aws_account_id  # not cached: the next run asks again
            raise AwsError(
                f"cannot tell which AWS account the credentials belong to: {describe_error(exc)} "
                "(sts:GetCallerIdentity; in a VPC without internet access give <sts_endpoint>, or"
                " <aws_account_id> to keep state under when STS cannot be reached)"
            ) from exc
    return _ACCOUNTS[access_key]


def shared_files_searched() -> str:
    """The shared credentials and config files botocore reads, and whose home they are under."""
    credentials = os.path.expanduser(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials")
    config = os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or "~/.aws/config")
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return f"{credentials} and {config} (user {user}, HOME={os.path.expanduser('~')})"


def no_credentials_message(profile: str | None) -> str:
    """What botocore searched, in its order, when it found nothing."""
    if profile:
        return f"no AWS credentials found for profile {profile!r} in {shared_files_searched()}"
    if os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or os.environ.get(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    ):
        container = "the container role (no answer)"
    else:
        container = "no container role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI unset)"
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        instance = "no instance role (AWS_EC2_METADATA_DISABLED=true)"
    else:
        instance = "no instance role (the instance metadata service did not answer)"
    return (
        "no AWS credentials found: searched the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset), "
        f"the shared files {shared_files_searched()}, {container}, {instance}; give <aws_profile>, "
        "<iam_role_arn> with base credentials, environment variables or an instance role"
    )


def logs_client(settings: Settings, session: boto3.Session, region: str, counter: CallCounter) -> Any:
    client = session.client(
        "logs", endpoint_url=settings.service_endpoint, config=client_config(settings, region)
    )
    counter.attach(client)
    ratelimit.shared(settings.max_rate).attach(client)
    return client


def error_code(exc: BaseException) -> str:
    """AWS's error code (`ThrottlingException`, …) of a ClientError; "" for anything else."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


def is_credentials_error(exc: BaseException) -> bool:
    if isinstance(exc, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return True
    return error_code(exc) in CREDENTIAL_ERROR_CODES


def describe_error(exc: BaseException, log_group: str | None = None) -> str:
    """`Code on Operation for group G: message` for ClientError; the class and text for the rest."""
    where = f" for group {log_group}" if log_group else ""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        message = error.get("Message") or ""
        text = f"{error.get('Code', 'Error')} on {exc.operation_name}{where}"
        return f"{text}: {message}" if message else text
    return f"{exc.__class__.__name__}{where}: {exc}"


def _register_credentials(session: boto3.Session) -> bool:
    """Mask the session's secrets in every log line; False when botocore found no credentials."""
    credentials = session.get_credentials()
    if credentials is None:
        return False
    frozen = credentials.get_frozen_credentials()
    register_secret(frozen.access_key)
    register_secret(frozen.secret_key)
    register_secret(frozen.token)
    return True
