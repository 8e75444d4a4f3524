"""The subset of PCRE2 the runner accepts for `type="pcre2"`, executed with Python's `re` on bytes.

analysisd compiles PCRE2 with options 0 (expression.c): case-sensitive, no UTF, no multiline. On
bytes, Python's `re` agrees with that for the tokens accepted here; anything else is refused so a
pattern can never pass here and behave differently in analysisd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UnsupportedConstruct

_META = set("\\^$.|?*+()[]{}")
_CLASS_ESCAPES = set("dDwWsS")
_LITERAL_ESCAPES = set("\\^$.|?*+()[]{}/-")
_QUANTIFIER = re.compile(r"[*+?]\??|\{\d+(,\d*)?\}\??")


@dataclass(frozen=True)
class PCRE2:
    raw: str
    compiled: re.Pattern[bytes]

    def execute(self, subject: str) -> tuple[int | None, list[str]]:
        data = subject.encode("utf-8", "surrogateescape")
        m = self.compiled.search(data)
        if m is None:
            return None, []
        groups = [(g or b"").decode("utf-8", "surrogateescape") for g in m.groups()]
        return m.end() - 1, groups  # expression.c: end_match = str + ovector[1] - 1


def compile_pcre2(pattern: str) -> PCRE2:
    _check_subset(pattern)
    return PCRE2(pattern, re.compile(pattern.encode("utf-8")))


def _check_subset(pattern: str) -> None:
    i = 0
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i = _escape(pattern, i, in_class=False)
        elif c == "[":
            i = _char_class(pattern, i)
        elif c == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?:", i):
                raise UnsupportedConstruct(f"pcre2 {pattern!r}: group syntax at {i} is not implemented")
            depth += 1
            i += 3 if pattern.startswith("(?:", i) else 1
        elif c == ")":
            depth -= 1
            i += 1
        elif c in "*+?{":
            m = _QUANTIFIER.match(pattern, i)
            if not m:
                raise UnsupportedConstruct(f"pcre2 {pattern!r}: quantifier at {i} is not implemented")
            i = m.end()
        elif ord(c) < 32 or ord(c) > 126:
            raise UnsupportedConstruct(f"pcre2 {pattern!r}: non-printable or non-ASCII character")
        else:
            i += 1
        if depth < 0:
            raise UnsupportedConstruct(f"pcre2 {pattern!r}: unbalanced parenthesis")
    if depth:
        raise UnsupportedConstruct(f"pcre2 {pattern!r}: unbalanced parenthesis")


def _escape(pattern: str, i: int, in_class: bool) -> int:
    nxt = pattern[i + 1 : i + 2]
    if nxt in _CLASS_ESCAPES or nxt in _LITERAL_ESCAPES:
        return i + 2
    raise UnsupportedConstruct(f"pcre2 {pattern!r}: escape \\{nxt} is not implemented")


def _char_class(pattern: str, i: int) -> int:
    j = i + 1
    if pattern[j : j + 1] == "^":
        j += 1
    if pattern[j : j + 1] == "]":
        raise UnsupportedConstruct(f"pcre2 {pattern!r}: ']' first in a class is not implemented")
    while j < len(pattern) and pattern[j] != "]":
        if pattern[j] == "\\":
            j = _escape(pattern, j, in_class=True)
        elif pattern[j] == "[":
            raise UnsupportedConstruct(f"pcre2 {pattern!r}: POSIX classes are not implemented")
        else:
            j += 1
    if j >= len(pattern):
        raise UnsupportedConstruct(f"pcre2 {pattern!r}: unterminated character class")
    return j + 1
