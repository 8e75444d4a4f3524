"""What the AWS config file says about a profile, read by botocore (AWS_CONFIG_FILE, `[profile x]`
sections), as boto3 sessions read it."""

from __future__ import annotations

import os

import botocore.exceptions
import botocore.session


def region(profile: str) -> str | None:
    """The profile's own `region` (not AWS_DEFAULT_REGION); None when it has none or does not exist."""
    try:
        value = botocore.session.Session(profile=profile).get_scoped_config().get("region")
    except botocore.exceptions.BotoCoreError:  # no such profile, a file botocore cannot read
        return None
    return str(value).strip() if value else None


def config_file() -> str:
    return os.path.expanduser(botocore.session.Session().get_config_variable("config_file"))
