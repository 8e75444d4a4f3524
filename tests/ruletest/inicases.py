"""Rule cases in Wazuh's ruleset/testing `.ini` format, as ruleset/testing/runtests.py reads them.

One extension, ignored by runtests.py: `lands N = rule:level:decoder` next to `log N fail` records
where the near-miss is expected to land in this runner's model (stock parents as fixtures).
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import CaseFileError

_LOG_KEY = re.compile(r"^log (\d+) (pass|fail)$")
_LANDS_KEY = re.compile(r"^lands (\d+)$")
_FIXED_KEYS = {"rule", "alert", "decoder"}


@dataclass(frozen=True)
class Case:
    file: str
    section: str
    key: str
    number: int
    should_match: bool
    log: str
    rule: str
    alert: str
    decoder: str
    lands: tuple[str, str, str] | None

    @property
    def expected(self) -> tuple[str, str, str]:
        return self.rule, self.alert, self.decoder

    def holds_for(self, actual: tuple[str, str, str]) -> bool:
        """`pass`: exactly the expected triple; `fail`: anything else, namely where `lands` says."""
        if self.should_match:
            return actual == self.expected
        return actual != self.expected and actual == self.lands

    @property
    def id(self) -> str:
        return f"{self.file}[{self.section}] {self.key}"


def load_cases(path: Path) -> list[Case]:
    parser = configparser.RawConfigParser(strict=True)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except configparser.Error as exc:
        raise CaseFileError(f"{path.name}: {exc}") from exc
    cases: list[Case] = []
    for section in parser.sections():
        cases.extend(_section_cases(path.name, section, dict(parser.items(section))))
    return cases


def _section_cases(file: str, section: str, items: dict[str, str]) -> list[Case]:
    where = f"{file}[{section}]"
    missing = _FIXED_KEYS - set(items)
    if missing:
        raise CaseFileError(f"{where}: missing {sorted(missing)}")
    lands = _lands(items, where)
    cases = []
    for key, value in items.items():
        if key in _FIXED_KEYS or _LANDS_KEY.match(key):
            continue
        m = _LOG_KEY.match(key)
        if not m:
            raise CaseFileError(f"{where}: unexpected key {key!r}")
        number, verdict = int(m.group(1)), m.group(2)
        _check_log_text(value, where, key)
        if (verdict == "fail") != (number in lands):
            raise CaseFileError(f"{where}: every `log N fail` needs `lands N`, and only those")
        cases.append(
            Case(
                file,
                section,
                key,
                number,
                verdict == "pass",
                value,
                items["rule"],
                items["alert"],
                items["decoder"],
                lands.get(number),
            )
        )
    if not cases:
        raise CaseFileError(f"{where}: no log lines")
    return cases


def _lands(items: dict[str, str], where: str) -> dict[int, tuple[str, str, str]]:
    out = {}
    for key, value in items.items():
        m = _LANDS_KEY.match(key)
        if m:
            parts = value.split(":")
            if len(parts) != 3:
                raise CaseFileError(f"{where}: {key} must be rule:level:decoder")
            out[int(m.group(1))] = (parts[0], parts[1], parts[2])
    return out


def _check_log_text(value: str, where: str, key: str) -> None:
    # Python 2's ConfigParser (used by older runtests.py) cuts values at " ;" as an inline comment.
    if " ;" in value or "\t;" in value:
        raise CaseFileError(f"{where}: {key} contains ' ;', which older runtests.py drops")
    if not value:
        raise CaseFileError(f"{where}: {key} is empty")


def load_case_dir(directory: Path) -> list[Case]:
    files = sorted(directory.glob("*.ini"))
    if not files:
        raise CaseFileError(f"no .ini files in {directory}")
    return [case for path in files for case in load_cases(path)]
