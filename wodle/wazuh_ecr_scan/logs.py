"""Logging the way Wazuh daemons do: `YYYY/MM/DD HH:MM:SS wazuh-ecr-scan: LEVEL: message`.

Lines at INFO and above are also sent to analysisd as status lines (see sender.StatusHandler);
DEBUG never is. Known secrets and AWS signing material are masked in every line.
"""

from __future__ import annotations

import logging
import re
import sys

NAME = "wazuh-ecr-scan"
log = logging.getLogger("wazuh_ecr_scan")

# debug 0: INFO; 1: DEBUG of this module; 2: + per-event detail; 3: + botocore
DETAIL = 5
_MASK = "***"
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+"),
    re.compile(r"(?i)(Signature=)[0-9a-f]+"),
    re.compile(
        r"(?i)((?:aws_)?(?:secret_access_key|session_token|SecretAccessKey|SessionToken)['\"]?\s*[:=]\s*['\"]?)"
        r"[^'\",\s}]+"
    ),
)


class SecretMask(logging.Filter):
    """Masks registered secret values and anything shaped like AWS credentials or signatures."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask(text, self.secrets)
        if masked != text:
            record.msg, record.args = masked, None
        return True


def mask(text: str, secrets: set[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, _MASK)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + _MASK, text)
    return text


SECRET_MASK = SecretMask()


class WazuhFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(f"%(asctime)s {NAME}: %(levelname)s: %(message)s", "%Y/%m/%d %H:%M:%S")


def setup_logging(debug: int, stream=None) -> None:
    logging.addLevelName(DETAIL, "DEBUG")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(WazuhFormatter())
    handler.addFilter(SECRET_MASK)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    log.setLevel({0: logging.INFO, 1: logging.DEBUG}.get(debug, DETAIL))
    if debug >= 3:
        logging.getLogger("botocore").setLevel(logging.DEBUG)
        logging.getLogger("urllib3").setLevel(logging.DEBUG)


def register_secret(value: str | None) -> None:
    if value:
        SECRET_MASK.secrets.add(value)


def local_only() -> dict[str, dict[str, bool]]:
    """`extra=` for lines that belong in the log but must not become status events in analysisd."""
    return {"extra": {"local_only": True}}
