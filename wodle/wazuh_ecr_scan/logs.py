"""Logging the way Wazuh daemons do: `YYYY/MM/DD HH:MM:SS wazuh-ecr-scan: LEVEL: message`.

Lines at INFO and above are also sent to analysisd as status lines (see sender.StatusHandler);
DEBUG never is. Known secrets and anything shaped like AWS credentials (key ids, labelled secret keys and
session tokens in XML, JSON, header dicts and reprs, STS session tokens) are masked in every line, and
control characters (a newline or ESC in a stream name) are escaped: one record, one line, whatever the
values in it.
"""

from __future__ import annotations

import logging
import logging.handlers
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
# A value after its name, in every form botocore logs: `<SessionToken>v<`, `"SessionToken": "v"`,
# `'X-Amz-Security-Token': b'v'`, `aws_secret_access_key=v`, `x-amz-security-token:v`, JSON inside a repr.
# (A `b` is the bytes prefix only before a quote: secrets may start with b or B.)
_LABELLED = (
    r"(?i)((?:aws_)?(?:secret_access_key|session_token|security_token|secret_key|SecretAccessKey|SessionToken"
    r"|SecretKey|x-amz-security-token)(?:\\?['\"])?\s*[:=>]\s*(?:b(?=\\?['\"]))?(?:\\?['\"])?)[^'\"<,\s}&\\]+"
)
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),
    re.compile(_LABELLED),
    re.compile(r"(?i)(Signature=)[0-9a-f]+"),
    # STS session tokens by their prefix, and any base64 run long enough to be one.
    re.compile(r"(?:IQoJb3JpZ2lu|F[wQ]oGZXIvYXdz)[A-Za-z0-9+/]+=*"),
    re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[+/])[A-Za-z0-9+/]{200,}=*"),
)
# C0 and C1 controls, DEL and the Unicode line separators: shown as escapes, never written raw.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
        masked = escape_controls(mask(text, self.secrets))
        if masked != text:
            record.msg, record.args = masked, None
        return True


def escape_controls(text: str) -> str:
    """`\\n`, `\\x1b`, `\\u2028` for control characters: a value cannot start a forged log line."""
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


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

    def formatException(self, ei) -> str:
        """A traceback keeps its lines, indented so none reads as a log line of its own; a value in it
        (an exception's text) gets its control characters escaped like any message."""
        lines = (escape_controls(line) for line in super().formatException(ei).split("\n"))
        return "\n".join("  " + line for line in lines)


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
            # Reopened when logrotate (or an administrator) moves the file away, in loop mode too.
            root.addHandler(_wazuh_style(logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")))
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
