"""A line-by-line port of Wazuh's OS_Regex and OS_Match engines (src/os_regex/ in wazuh/wazuh).

OS_Regex is not a textbook regex engine: `+`/`*` are lazy towards the next pattern element with
at most four saved backtrack points, and only backslash classes take modifiers. Translating to
Python `re` would silently change results, so the C control flow is kept, pointer for pointer
(pointers become indexes into NUL-terminated byte buffers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RulesetError, UndefinedBehaviour, UnsupportedConstruct

BACKSLASH = ord("\\")
OR = ord("|")
BEGINREGEX = ord("^")
ENDREGEX = ord("$")
PRTS = ord("(")
BEGIN_SET = 0o200
END_SET = 0o400

# os_regex_compile.c: the letter after a backslash becomes an index into regexmap.
ESCAPE_CODES = {
    "d": 1,
    "w": 2,
    "s": 3,
    "p": 4,
    "(": 5,
    ")": 6,
    "\\": 7,
    "D": 8,
    "W": 9,
    "S": 10,
    ".": 11,
    "t": 12,
    "$": 13,
    "|": 14,
    "<": 15,
}


def _charmap() -> bytes:
    # os_regex_maps.c charmap: only A-Z are folded.
    return bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))


CHARMAP = _charmap()


def _regexmap() -> list[frozenset[int]]:
    """The bytes each escape code accepts (regexmap rows in os_regex_maps.c)."""
    digits = set(range(48, 58))
    word = digits | set(range(65, 91)) | set(range(97, 123)) | {ord("-"), ord("@"), ord("_")}
    punct = set(range(33, 47)) | set(range(58, 64)) | {91, 93, 123, 124, 125}
    everything = set(range(256))
    rows: list[set[int]] = [
        digits,  # 0: unused
        digits,  # 1: \d
        word,  # 2: \w
        {32},  # 3: \s (a space only)
        punct,  # 4: \p
        {40},  # 5: \(
        {41},  # 6: \)
        {92},  # 7: \\
        everything - digits,  # 8: \D
        everything - word,  # 9: \W
        everything - {32},  # 10: \S
        everything,  # 11: \.
        {9},  # 12: \t
        {36},  # 13: \$
        {124},  # 14: \|
        {60},  # 15: \<
    ]
    return [frozenset(r) for r in rows]


REGEXMAP = _regexmap()


class _Buf:
    """A NUL-terminated byte buffer; reading past the terminator is undefined behaviour in C."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what

    def __getitem__(self, i: int) -> int:
        if i < 0 or i > len(self.data):
            raise UndefinedBehaviour(f"OS_Regex reads outside the {self.what} ({self.data!r}, index {i})")
        return self.data[i] if i < len(self.data) else 0


def _regex(code: int, char: int) -> bool:
    return char in REGEXMAP[code]


def _is_plus(c: int) -> bool:
    return c in (ord("+"), ord("*"))


@dataclass(frozen=True)
class SubPattern:
    pattern: bytes
    flags: int
    closures: tuple[int, ...]


@dataclass(frozen=True)
class OSRegex:
    raw: str
    subpatterns: tuple[SubPattern, ...]
    substrings: bool

    def execute(self, subject: str) -> tuple[int | None, list[str]]:
        """OSRegex_Execute: (index of the last matched byte or None, captured substrings)."""
        data = subject.encode("utf-8", "surrogateescape")
        if not data:
            # _OS_Regex always runs its loop body once and then reads past the terminator.
            raise UndefinedBehaviour(f"OS_Regex {self.raw!r} on an empty string")
        # With OS_RETURN_SUBSTRING and any parenthesis in the whole pattern, every sub-pattern gets a
        # (possibly empty) closure array; _OS_Regex's final clean-up behaves differently with one.
        with_closures = self.substrings and any(sub.closures for sub in self.subpatterns)
        for sub in self.subpatterns:
            closures = list(sub.closures) if with_closures else None
            end, marks = _os_regex(sub.pattern, data, closures, sub.flags)
            if end is not None:
                return end, _substrings(data, marks)
        return None, []


def _substrings(data: bytes, marks: list[int | None] | None) -> list[str]:
    out: list[str] = []
    if marks is None:
        return out
    j = 0
    while j + 1 < len(marks) and marks[j] is not None and marks[j + 1] is not None:
        start, stop = marks[j], marks[j + 1]
        out.append(data[start:stop].decode("utf-8", "surrogateescape"))  # type: ignore[index]
        j += 2
    return out


def compile_regex(pattern: str, substrings: bool = False) -> OSRegex:
    """OSRegex_Compile with flags 0 (case-insensitive), as rules and decoders use it."""
    if not pattern:
        raise UnsupportedConstruct("empty OS_Regex pattern")
    body = _transform(pattern.encode("utf-8"), pattern)
    subs: list[SubPattern] = []
    for piece in body.split(bytes([OR])):
        flags = 0
        if piece[:1] == bytes([BEGINREGEX]):
            piece = piece[1:]
            flags |= BEGIN_SET
        if piece[-1:] == bytes([ENDREGEX]):
            piece = piece[:-1]
            flags |= END_SET
        if not piece:
            raise UnsupportedConstruct(f"empty alternative in OS_Regex {pattern!r}")
        closures = tuple(i for i, c in enumerate(piece) if c == PRTS)
        subs.append(SubPattern(piece, flags, closures))
    return OSRegex(pattern, tuple(subs), substrings)


def _transform(raw: bytes, pattern: str) -> bytes:
    out = bytearray()
    depth = 0
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == BACKSLASH:
            nxt = chr(raw[i + 1]) if i + 1 < len(raw) else ""
            if nxt not in ESCAPE_CODES:
                raise RulesetError(f"OS_Regex {pattern!r}: invalid escape \\{nxt} (analysisd refuses it)")
            out += bytes([BACKSLASH, ESCAPE_CODES[nxt]])
            i += 2
            continue
        if c == PRTS:
            depth += 1
        elif c == ord(")"):
            c = PRTS  # open and close are the same byte internally
            depth -= 1
        if depth not in (0, 1):
            raise RulesetError(f"OS_Regex {pattern!r}: only one level of balanced parentheses is allowed")
        c = CHARMAP[c]
        if c == OR and depth != 0:
            raise RulesetError(f"OS_Regex {pattern!r}: '|' inside parentheses")
        out.append(c)
        i += 1
    if depth != 0:
        raise RulesetError(f"OS_Regex {pattern!r}: unbalanced parentheses")
    return bytes(out)


@dataclass
class _State:
    pt: int = 0
    st: int = 0
    r_code: int | None = None
    regex_matched: int = 0
    st_error: int | None = None
    pt_error: list[int | None] = field(default_factory=lambda: [None] * 4)
    pt_error_str: list[int | None] = field(default_factory=lambda: [None] * 4)


_CONTINUE = object()


def _os_regex(
    pattern: bytes, data: bytes, closures: list[int] | None, flags: int
) -> tuple[int | None, list[int | None] | None]:
    """_OS_Regex from os_regex_execute.c. Returns (r_code, parenthesis marks)."""
    p = _Buf(pattern, "pattern")
    s = _Buf(data, "subject")
    marks: list[int | None] | None = [None] * len(closures) if closures is not None else None
    x = _State()
    while True:
        outcome = _body(p, s, closures, marks, flags, x)
        if outcome is not _CONTINUE:
            return outcome, marks  # type: ignore[return-value]
        x.st += 1
        if s[x.st] == 0:
            break
    return _cleanup(p, s, closures, marks, x), marks


def _mark(closures: list[int] | None, marks: list[int | None] | None, at: int, value: int) -> None:
    if closures is None or marks is None:
        return
    for k, pos in enumerate(closures):
        if pos == at:
            marks[k] = value
            return


def _body(p: _Buf, s: _Buf, closures, marks, flags: int, x: _State):
    end_ok = not (flags & END_SET) or s[x.st] == 0
    if p[x.pt] == 0:
        if end_ok:
            return x.r_code
    elif p[x.pt] == PRTS:
        _mark(closures, marks, x.pt, x.st)
        x.pt += 1
        if p[x.pt] == 0 and end_ok:
            return x.r_code

    if p[x.pt] == BACKSLASH:
        if _regex(p[x.pt + 1], s[x.st]):
            return _escape_hit(p, s, closures, marks, x)
        if p[x.pt + 3] == 0 and x.regex_matched == 1 and x.r_code is not None:
            x.r_code = x.st
            if not (flags & END_SET) or s[x.st] == 0:
                return x.r_code
        elif p[x.pt + 2] == ord("+") and x.regex_matched == 1:
            x.pt += 3
            x.st -= 1
            x.regex_matched = 0
            return _CONTINUE
        elif p[x.pt + 2] == ord("*"):
            x.pt += 3
            x.st -= 1
            x.r_code = x.st
            x.regex_matched = 0
            return _CONTINUE
        x.regex_matched = 0
    elif p[x.pt] == CHARMAP[s[x.st]]:
        x.pt += 1
        if x.st_error is None:
            x.st_error = x.st
        x.r_code = x.st
        return _CONTINUE
    return _recover(flags, x)


def _escape_hit(p: _Buf, s: _Buf, closures, marks, x: _State):
    next_pt = x.pt + 2
    if not _is_plus(p[next_pt]):
        x.pt = next_pt
        if x.st_error is None:
            x.st_error = x.st
        x.r_code = x.st
        return _CONTINUE
    if p[next_pt] == ord("*"):
        x.regex_matched = 1
    if x.regex_matched:
        next_pt += 1
        ok_here = -1
        if p[next_pt] == PRTS:
            next_pt += 1
        if p[next_pt] == 0:
            ok_here = 1
        elif p[next_pt] == BACKSLASH:
            if _regex(p[next_pt + 1], s[x.st]):
                ok_here = 0 if _is_plus(p[next_pt + 2]) else 2
        elif p[next_pt] == CHARMAP[s[x.st]]:
            x.regex_matched = 0
            ok_here = 1
        if ok_here >= 0:
            if p[next_pt - 1] == PRTS:
                _mark(closures, marks, next_pt - 1, x.st + 1 if s[x.st + 1] == 0 else x.st)
            if p[next_pt] == 0:
                return _CONTINUE
            next_pt += ok_here
            for k in range(4):
                if x.pt_error[k] is None:
                    x.pt_error[k] = x.pt
                    x.pt_error_str[k] = x.st
                    break
            x.pt = next_pt
    else:
        next_pt += 1
        if p[next_pt] == PRTS:
            _mark(closures, marks, next_pt, x.st + 1 if s[x.st + 1] == 0 else x.st)
            next_pt += 1
        x.regex_matched = 1
    x.r_code = x.st
    return _CONTINUE


def _recover(flags: int, x: _State):
    for k in (3, 2, 1, 0):
        if x.pt_error[k] is not None:
            x.pt = x.pt_error[k]  # type: ignore[assignment]
            x.st = x.pt_error_str[k]  # type: ignore[assignment]
            x.pt_error[k] = None
            return _CONTINUE
    if flags & BEGIN_SET:
        return None
    if x.st_error is not None:
        x.st = x.st_error
        x.st_error = None
    x.pt = 0
    x.r_code = None
    return _CONTINUE


def _cleanup(p: _Buf, s: _Buf, closures, marks, x: _State) -> int | None:
    pt = x.pt
    if closures is not None:
        while p[pt] != PRTS and p[pt] != 0:
            if p[pt] == BACKSLASH and p[pt + 2] == ord("*"):
                pt += 3
            else:
                break
        if p[pt] == PRTS:
            _mark(closures, marks, pt, x.st)
    cell = [pt]

    def end_of_file() -> bool:  # ENDOFFILE(pt): skip one '(' then test for the terminator
        if p[cell[0]] == PRTS:
            cell[0] += 1
        return p[cell[0]] == 0

    def star_then_end() -> bool:
        if p[cell[0]] != BACKSLASH:
            return False
        cell[0] += 2
        if p[cell[0]] != ord("*"):
            return False
        cell[0] += 1
        return end_of_file()

    if end_of_file():
        return x.r_code
    if p[cell[0]] == BACKSLASH and x.regex_matched:
        cell[0] += 2
        if _is_plus(p[cell[0]]):
            cell[0] += 1
            if end_of_file() or star_then_end():
                return x.r_code
    if star_then_end():
        return x.r_code
    return None


@dataclass(frozen=True)
class OSMatch:
    """OSMatch_Compile/OSMatch_Execute (os_match_compile.c, os_match_execute.c), flags 0."""

    raw: str
    patterns: tuple[tuple[str, bytes], ...]

    def execute(self, subject: str) -> bool:
        data = subject.encode("utf-8", "surrogateescape")
        folded = data.translate(CHARMAP)
        return any(_os_match_one(kind, pat, folded) for kind, pat in self.patterns)


def _os_match_one(kind: str, pat: bytes, folded: bytes) -> bool:
    if kind == "any":
        return True
    if kind == "exact":
        return folded == pat
    if kind == "prefix":
        return folded[: len(pat)] == pat
    if kind == "suffix":
        return len(folded) >= len(pat) and folded.endswith(pat)
    return pat in folded


def compile_match(pattern: str) -> OSMatch:
    data = pattern.encode("utf-8").translate(CHARMAP)
    if 0xE3 in data:
        raise UnsupportedConstruct(f"OS_Match {pattern!r}: byte 0xE3 switches the C engine to strstr")
    out: list[tuple[str, bytes]] = []
    for piece in data.split(bytes([OR])):
        starts = piece[:1] == b"^"
        ends = piece[-1:] == b"$"
        if starts and ends:
            out.append(("exact", piece[1:-1]))
        elif not piece:
            out.append(("any", b""))
        elif ends:
            out.append(("suffix", piece[:-1]))
        elif starts:
            out.append(("prefix", piece[1:]))
        else:
            out.append(("substring", piece))
    return OSMatch(pattern, tuple(out))
