"""Logging the way Wazuh daemons do: `YYYY/MM/DD HH:MM:SS wazuh-ecr-scan: LEVEL: message`.

Lines at INFO and above are also sent to analysisd as status lines (see sender.StatusHandler);
DEBUG never is. Known secrets and AWS signing material are masked in every line.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterable
from typing import TextIO

from wazuh_ecr_scan.errors import ConfigError

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


MAX_SECRETS = 64  # credentials kept for masking (profile, then one set per role assumed)


class SecretMask(logging.Filter):
    """Masks registered secret values and anything shaped like AWS credentials or signatures."""

    def __init__(self) -> None:
        super().__init__()
        # Insertion-ordered, newest last: a role assumed at every pass adds fresh credentials, and
        # only the latest ones can still be in use.
        self.secrets: dict[str, None] = {}

    def register(self, secret: str) -> None:
        self.secrets.pop(secret, None)
        self.secrets[secret] = None
        while len(self.secrets) > MAX_SECRETS:
            del self.secrets[next(iter(self.secrets))]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask(text, self.secrets)
        if masked != text:
            record.msg, record.args = masked, None
        return True


def mask(text: str, secrets: Iterable[str]) -> str:
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


class Progress:
    """One status line on a terminal, rewritten in place and wiped before any log line is printed.

    Only when the stream is a terminal: under modulesd (or any pipe) it does nothing.
    """

    MIN_GAP_S = 0.25

    def __init__(self) -> None:
        self.stream: TextIO = sys.stderr
        self.enabled = False
        self._shown = False
        self._last = 0.0
        self._lock = threading.Lock()

    def attach(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = _is_terminal(stream)
        self._shown = False

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.MIN_GAP_S:
                return
            self._last = now
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False


class _TerminalHandler(logging.StreamHandler):
    """Writes a log line after wiping the progress line, if one is shown."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        super().__init__(stream)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.clear()
        super().emit(record)


PROGRESS = Progress()


def setup_logging(debug: int, stream: TextIO | None = None, log_file: str | None = None) -> None:
    """Lines to `stream` (stderr) and, with `log_file`, appended to that file too (e.g. ossec.log).

    Raises ConfigError when the file cannot be opened; the stream is set up first, so that error is seen.
    """
    logging.addLevelName(DETAIL, "DEBUG")
    stream = stream or sys.stderr
    PROGRESS.attach(stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if getattr(old, "owned_by_wazuh_ecr_scan", False):
            old.close()  # our log file; handlers of others (pytest, an embedding program) stay usable
    root.addHandler(_wazuh_style(_TerminalHandler(stream, PROGRESS)))
    root.setLevel(logging.WARNING)
    log.setLevel({0: logging.INFO, 1: logging.DEBUG}.get(debug, DETAIL))
    if debug >= 3:
        logging.getLogger("botocore").setLevel(logging.DEBUG)
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
    if log_file:
        try:
            root.addHandler(_wazuh_style(logging.FileHandler(log_file, mode="a", encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"--log_file: cannot open {log_file}: {exc.strerror}") from exc


def _wazuh_style(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(WazuhFormatter())
    handler.addFilter(SECRET_MASK)
    handler.owned_by_wazuh_ecr_scan = True  # type: ignore[attr-defined]
    return handler


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def register_secret(value: str | None) -> None:
    if value:
        SECRET_MASK.register(value)


def local_only() -> dict[str, dict[str, bool]]:
    """`extra=` for lines that belong in the log but must not become status events in analysisd."""
    return {"extra": {"local_only": True}}
