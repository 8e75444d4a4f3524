"""Discarding events: `--discard-field/--discard-regex` and `<discard_regex [field="…"]>`, in one place.

The settings carry one `DiscardRule` per service (`ServiceSettings.discard`), built where they are read:
the two flags, which go together (`--discard-regex` alone is refused: exit 2), always make a rule with a
field; the XML tag makes one with its `field`, or without a field when it has none. The two meanings
are those of Wazuh's aws-s3 cloudwatchlogs service (wodles/aws), so a block written for Wazuh discards
the same events here:
- with a field, the dotted path is looked up in the event this module sends (searched anywhere in the
  value); a path that event lacks is looked up in the Lambda's message instead, matched from its start
  (a list matches when any of its strings does);
- without a field (only `<discard_regex>` with no `field` makes one), only the raw CloudWatch messages
  that are not JSON are tested, matched from their start (every ECR finding and summary is JSON:
  `startup_warnings` says so).

The message is parsed once, by the caller (`flatten.parse_message`): this module never parses it again.

Time bound. Python's `re` has no timeout and a pattern with nested repetition such as `^(\\w+\\s?)*$`
backtracks exponentially on 35 characters an attacker wrote. `risky_pattern` finds nested repetition
(`--check-config` and the run's first lines warn), and every match runs under a time budget: CPython's
regex engine checks for signals every 4096 steps while it matches (`MAYBE_CHECK_SIGNALS` in
Modules/_sre/sre_lib.h), so a SIGALRM whose handler raises ends the match.
A match over budget keeps the event (it is sent, never lost) with a WARNING; after MAX_TIMEOUTS in one
pass the rule is suspended until the next pass, so a flood of such messages costs seconds, not hours.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

try:  # the parser `re` itself uses; a private module, hence the fallback for Python 3.10
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

from wazuh_ecr_scan.flatten import ParseError
from wazuh_ecr_scan.logs import log

MATCH_BUDGET_S = 0.25  # a legitimate match takes microseconds
MAX_TIMEOUTS = 3  # per pass, then the rule is suspended until the next pass
_MISSING = object()
_REPEATS = {_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT} | (
    {_sre_parse.POSSESSIVE_REPEAT} if hasattr(_sre_parse, "POSSESSIVE_REPEAT") else set()
)


@dataclass(frozen=True)
class DiscardRule:
    pattern: re.Pattern[str]
    field: str | None  # None: Wazuh's field-less rule, on raw messages that are not JSON

    def describe(self) -> str:
        if self.field is None:
            return f"raw message matching {self.pattern.pattern!r}"
        return f"field {self.field} matching {self.pattern.pattern!r}"


class MatchTimeout(Exception):
    """A discard match ran over MATCH_BUDGET_S."""


@dataclass
class Discarder:
    """Applies one rule to each event, under the time budget. One per service; `new_pass` resets it."""

    rule: DiscardRule | None
    timeouts: int = 0

    def new_pass(self) -> None:
        self.timeouts = 0

    def discards(self, event: dict[str, Any], payload: Any, message: str, where: str) -> bool:
        """Whether `event` (from `message`, parsed as `payload`: `flatten.parse_message`'s result) is to
        be dropped. `where` names the event in a warning."""
        rule = self.rule
        if rule is None or self.timeouts >= MAX_TIMEOUTS:
            return False
        try:
            return any(_timed(method, text) for method, text in _candidates(rule, event, payload, message))
        except MatchTimeout:
            self._timed_out(where)
            return False

    def _timed_out(self, where: str) -> None:
        self.timeouts += 1
        assert self.rule is not None
        suspended = self.timeouts >= MAX_TIMEOUTS
        log.warning(
            "discard_regex %r took over %.2fs on %s: the event was kept and sent%s; the pattern backtracks"
            " (see --check-config)",
            self.rule.pattern.pattern,
            MATCH_BUDGET_S,
            where,
            f"; discarding is suspended until the next pass after {MAX_TIMEOUTS} such events"
            if suspended
            else "",
        )


def _candidates(
    rule: DiscardRule, event: dict[str, Any], payload: Any, message: str
) -> Iterator[tuple[Any, str]]:
    """(match method, text) pairs; the event is discarded when any of them matches."""
    pattern = rule.pattern
    if rule.field is None:
        if isinstance(payload, ParseError):
            yield pattern.match, message
        return
    value = _dotted(event, rule.field)
    if value is not _MISSING:
        yield pattern.search, value if isinstance(value, str) else str(value)
        return
    if isinstance(payload, ParseError):
        return
    value = _dotted(payload, rule.field)
    for each in value if isinstance(value, list) else [value]:
        if isinstance(each, str):
            yield pattern.match, each


def _dotted(value: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


# -- the time budget -------------------------------------------------------------------------------

_in_match = False


def _on_alarm(signum: int, frame: object) -> None:
    if _in_match:
        raise MatchTimeout


def _timed(method: Any, text: str) -> bool:
    """`method(text)` under MATCH_BUDGET_S. Only the main thread gets signals: elsewhere, no budget."""
    global _in_match
    if threading.current_thread() is not threading.main_thread():
        return method(text) is not None
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    _in_match = True
    try:
        signal.setitimer(signal.ITIMER_REAL, MATCH_BUDGET_S)
        return method(text) is not None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _in_match = False


# -- checking a pattern ----------------------------------------------------------------------------


def risky_pattern(pattern: re.Pattern[str]) -> str | None:
    """Why `pattern` can backtrack exponentially (a repetition inside a repetition, e.g. `(\\w+\\s?)*`),
    or None. A static check: it finds the common catastrophic shape, not every slow pattern."""
    try:
        parsed = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:
        return None
    return _nested_repeat(list(parsed), inside_repeat=False)


def _nested_repeat(items: list, inside_repeat: bool) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            low, high, sub = av
            variable = high != low
            if inside_repeat and variable:
                return "a repetition inside a repetition (nested quantifiers)"
            repeats = high > 1
            found = _nested_repeat(list(sub), inside_repeat or repeats)
            if found:
                return found
        else:
            for sub in _subpatterns(op, av):
                found = _nested_repeat(list(sub), inside_repeat)
                if found:
                    return found
    return None


def _subpatterns(op: Any, av: Any) -> Iterator[Any]:
    if op is _sre_parse.SUBPATTERN:
        yield av[-1]
    elif op is _sre_parse.BRANCH:
        yield from av[1]
    elif op in (_sre_parse.ASSERT, _sre_parse.ASSERT_NOT):
        yield av[1]
    elif op is _sre_parse.GROUPREF_EXISTS:
        yield from (branch for branch in av[1:] if branch is not None)
    elif hasattr(_sre_parse, "ATOMIC_GROUP") and op is _sre_parse.ATOMIC_GROUP:
        yield av


def startup_warnings(rule: DiscardRule | None) -> list[str]:
    """What an administrator should know about a service's discard rule before it runs."""
    if rule is None:
        return []
    warnings = []
    if rule.field is None:
        warnings.append(
            "<discard_regex> without field tests only messages that are not JSON, as Wazuh's"
            " cloudwatchlogs service does; every ECR finding and summary is JSON: add a field"
            ' (e.g. field="vulnerability.severity" or field="severity")'
        )
    risk = risky_pattern(rule.pattern)
    if risk:
        warnings.append(
            f"discard_regex {rule.pattern.pattern!r} has {risk}: it can take exponential time on text"
            f" written to CloudWatch; each match is cut after {MATCH_BUDGET_S}s and the event kept."
            r" Rewrite it without nesting (e.g. ^[\w\s]*$ for ^(\w+\s?)*$)"
        )
    return warnings
