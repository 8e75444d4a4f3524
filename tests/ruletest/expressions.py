"""Rule and decoder expressions: OS_Regex (the default), PCRE2 and OS_Match, with `negate`."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnsupportedConstruct
from .osregex import OSMatch, OSRegex, compile_match, compile_regex
from .pcre2 import PCRE2, compile_pcre2


@dataclass(frozen=True)
class Match:
    matched: bool
    end: int | None  # byte index of the last matched byte, as analysisd's end_match pointer
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Expression:
    kind: str  # "osregex", "pcre2" or "osmatch"
    pattern: str
    negate: bool
    engine: OSRegex | PCRE2 | OSMatch

    def run(self, subject: str) -> Match:
        """The raw match, before `negate` (callers compare it with `negate` like analysisd does)."""
        if isinstance(self.engine, OSMatch):
            return Match(self.engine.execute(subject), None, ())
        end, groups = self.engine.execute(subject)
        return Match(end is not None, end, tuple(groups))

    def accepts(self, subject: str) -> bool:
        return self.run(subject).matched != self.negate


def make_expression(kind: str, pattern: str, negate: bool = False, substrings: bool = False) -> Expression:
    if kind == "osregex":
        return Expression(kind, pattern, negate, compile_regex(pattern, substrings))
    if kind == "pcre2":
        return Expression(kind, pattern, negate, compile_pcre2(pattern))
    if kind == "osmatch":
        return Expression(kind, pattern, negate, compile_match(pattern))
    raise UnsupportedConstruct(f"expression type {kind!r} is not implemented")
