"""AWS sessions and clients: credentials (profile, role), botocore retry mode, API call counting, rate cap.

Two limiters, each with its own job:
- ratelimit.py, the module's hard cap: at most --max_rate requests per second per region and operation,
  every HTTP attempt (retries included) waiting for a token. It holds whatever AWS answers, so a pass fanned
  out over --workers stays under its share of the account's quota before any throttling happens.
- botocore's retry mode (adaptive by default): retries throttling and 5xx answers with backoff and, in
  adaptive mode, lowers the client's own sending rate when AWS throttles (other readers of the account
  spend the same quota). It only ever slows below the cap. Its learned rate lives in the client, so the
  clients are kept for the whole run (Clients), not rebuilt each pass.
"""

from __future__ import annotations

import collections
import functools
import os
import pwd
from typing import Any

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config

from wazuh_ecr_scan import __version__, ratelimit
from wazuh_ecr_scan.errors import AwsError, ConfigError, CredentialsError
from wazuh_ecr_scan.logs import log, register_secret
from wazuh_ecr_scan.settings import ServiceSettings as Settings
from wazuh_ecr_scan.values import role_account

ROLE_SESSION_NAME = "wazuh-ecr-scan"
# Retries when neither a flag nor the AWS profile (`retry_mode`, `max_attempts`) sets them.
DEFAULT_RETRY_MODE = "adaptive"
DEFAULT_MAX_ATTEMPTS = 8
# When the profile sets only one of the two, the other is the stock aws-s3 wodle's: it reads the same two
# keys and fills the missing one with standard mode or 10 attempts (wazuh/wazuh wodles/aws/aws_tools.py,
# set_profile_dict_config).
PROFILE_RETRY_MODE = "standard"
PROFILE_MAX_ATTEMPTS = 10
RETRY_MODES = ("adaptive", "standard", "legacy")
# A role's session is renewed once it has less than this left (botocore's defaults, 15 and 10 minutes, would
# renew a 900 s session, the shortest AWS allows, before every request); below the second, a failed renewal
# is an error rather than a warning.
ROLE_RENEW_S = 5 * 60
ROLE_MUST_RENEW_S = 60
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
# What AWS answers, in one place: every module that classifies an AWS failure takes its codes from here.
AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
NOT_FOUND_CODE = "ResourceNotFoundException"  # a log group or stream that does not exist (any more)
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
# Errors a later pass will most likely get past by itself: a warning, not an error.
TRANSIENT_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailableException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
}
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
    mode, attempts = retries(settings)
    return Config(
        region_name=region,
        retries={"mode": mode, "total_max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=max(10, settings.workers),  # botocore's default pool is 10
        user_agent_extra=f"wazuh-ecr-scan/{__version__}",
    )


def retries(settings: Settings) -> tuple[str, int]:
    """botocore's retry mode and attempts per call: the flags' when given (not None), else the AWS profile's
    `retry_mode`/`max_attempts` (as the stock aws-s3 wodle reads them, standard and 10 filling in for the
    one it lacks), else adaptive and 8."""
    profile = _profile_config(settings.aws_profile)
    where = f"AWS profile {settings.aws_profile or 'default'}"
    if "retry_mode" in profile or "max_attempts" in profile:
        default_mode, default_attempts = PROFILE_RETRY_MODE, PROFILE_MAX_ATTEMPTS
    else:
        default_mode, default_attempts = DEFAULT_RETRY_MODE, DEFAULT_MAX_ATTEMPTS
    mode = settings.retry_mode or profile.get("retry_mode") or default_mode
    if mode not in RETRY_MODES:
        raise ConfigError(f"{where}: retry_mode {mode!r} is not one of {', '.join(RETRY_MODES)}")
    attempts: Any = settings.max_attempts or profile.get("max_attempts") or default_attempts
    try:
        attempts = int(attempts)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise ConfigError(f"{where}: max_attempts {profile.get('max_attempts')!r} is not a whole number >= 1")
    return mode, attempts


def _profile_config(profile: str | None) -> dict[str, Any]:
    """The AWS profile's settings from the shared config file, as botocore reads them; {} without one."""
    try:
        return dict(botocore.session.Session(profile=profile).get_scoped_config())
    except botocore.exceptions.BotoCoreError:
        return {}  # an unknown profile is reported where the credentials are looked up


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
    return _role_session(settings, session, region, counter)


def _role_session(
    settings: Settings, base: boto3.Session, region: str, counter: CallCounter
) -> boto3.Session:
    """A session acting as the role: AssumeRole now (a role that cannot be assumed is a credentials error
    before any read), then again by botocore itself shortly before the session expires, so a pass longer
    than the role's duration goes on. Every set of role credentials is masked in the logs as it arrives."""

    def sts_client(service: str, **credentials: Any) -> Any:
        sts = base.client(
            service, endpoint_url=settings.sts_endpoint, config=client_config(settings, region), **credentials
        )
        counter.attach(sts)
        ratelimit.shared(settings.max_rate).attach(sts)
        return sts

    extra: dict[str, Any] = {"RoleSessionName": ROLE_SESSION_NAME}
    if settings.iam_role_duration:
        extra["DurationSeconds"] = settings.iam_role_duration
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        sts_client,
        base.get_credentials(),
        settings.iam_role_arn,
        extra_args=extra,
        expiry_window_seconds=ROLE_RENEW_S,
    )

    def fetch() -> dict[str, Any]:
        try:
            found = fetcher.fetch_credentials()
        except AWS_ERRORS as exc:
            reason = describe_error(exc)
            raise CredentialsError(f"cannot assume role {settings.iam_role_arn}: {reason}") from exc
        for secret in (found["secret_key"], found["token"], found["access_key"]):
            register_secret(secret)
        return found

    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=fetch(),
        refresh_using=fetch,
        method="assume-role",
        advisory_timeout=ROLE_RENEW_S,
        mandatory_timeout=ROLE_MUST_RENEW_S,
    )
    role = botocore.session.Session()
    resolver = botocore.credentials.CredentialResolver([_Given(credentials)])
    role.register_component("credential_provider", resolver)
    return boto3.Session(botocore_session=role, region_name=region)


class _Given(botocore.credentials.CredentialProvider):
    """Hands botocore credentials already made (the role's refreshable ones)."""

    METHOD = "assume-role"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


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
        except AWS_ERRORS as exc:
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
    # After the signer (registered first, on the same event) and before botocore logs the request:
    # credentials botocore renewed by itself (instance or container role, SSO, a role's) are masked too.
    signed = f"request-created.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register(signed, functools.partial(_mask_current_credentials, session))
    return client


class Clients:
    """A run's CloudWatch Logs clients, one per connection (credentials, endpoints, retries, rate) and
    region, made on first use and kept for the run: adaptive retry mode's learned rate lives in the client,
    and a role's credentials renew themselves. A pass takes the clients the previous one used, unless the
    base credentials changed meanwhile (a key rotated in the shared credentials file)."""

    def __init__(self, counter: CallCounter) -> None:
        self.counter = counter
        self._made: dict[tuple[Any, ...], tuple[str | None, boto3.Session, Any]] = {}

    def get(self, settings: Settings, region: str) -> tuple[boto3.Session, Any]:
        """The session and logs client of `settings` in `region`."""
        key = (*_connection(settings), region)
        base_key = _base_access_key(settings)
        made = self._made.get(key)
        if made is None or base_key is None or made[0] != base_key:
            session = make_session(settings, region, self.counter)
            made = self._made[key] = (base_key, session, logs_client(settings, session, region, self.counter))
        return made[1], made[2]

    def forget(self, settings: Settings) -> None:
        """Drop the clients of `settings`, whose credentials were rejected: the next pass looks them up
        again (a rotated key in the shared credentials file, a role allowed again)."""
        connection = _connection(settings)
        for key in [k for k in self._made if k[:-1] == connection]:
            del self._made[key]


def _base_access_key(settings: Settings) -> str | None:
    """The access key the profile's credentials resolve to now; None when they cannot be found (make_session
    then says why)."""
    try:
        credentials = boto3.Session(profile_name=settings.aws_profile).get_credentials()
        return None if credentials is None else credentials.get_frozen_credentials().access_key
    except botocore.exceptions.BotoCoreError:
        return None


def _connection(settings: Settings) -> tuple[Any, ...]:
    """What makes two service blocks' clients the same."""
    return (
        settings.aws_profile,
        settings.iam_role_arn,
        settings.iam_role_duration,
        settings.sts_endpoint,
        settings.service_endpoint,
        settings.retry_mode,
        settings.max_attempts,
        settings.workers,
        settings.max_rate,
    )


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


def _mask_current_credentials(session: boto3.Session, request: Any = None, **_: Any) -> None:
    _register_credentials(session)


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
