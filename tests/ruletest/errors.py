"""Errors raised by the rule-test runner. Any of them fails the test run loudly."""

from __future__ import annotations


class RulesetError(Exception):
    """The XML is something analysisd would refuse to load (or would load differently than written)."""


class UnsupportedConstruct(RulesetError):
    """The XML uses a construct this runner does not implement, so it cannot vouch for the result."""


class UndefinedBehaviour(RulesetError):
    """The C engine would read outside its buffers here; no faithful answer exists."""


class CaseFileError(Exception):
    """A rule-test `.ini` file is malformed."""
