"""Static checks on the project's XML and cases (run in CI by tests/test_rules_validity.py)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .inicases import Case
from .xmlload import elements, parse_fragment

_FIELD_REF = re.compile(r"\$\(([^)]*)\)")


@dataclass(frozen=True)
class RuleInfo:
    id: int
    level: int
    file: str
    if_sid: int | None
    group_lists: tuple[str, ...]  # the enclosing group name and each <group> element
    description: str
    decoded_as: str | None


def read_rules(paths: list[Path]) -> list[RuleInfo]:
    out = []
    for path in paths:
        for group in parse_fragment(path):
            for rule in elements(group):
                out.append(_rule_info(rule, group.get("name", ""), path.name))
    return out


def _rule_info(rule, group_name: str, file: str) -> RuleInfo:
    def text(tag: str) -> str | None:
        node = rule.find(tag)
        return None if node is None else node.text or ""

    if_sid = text("if_sid")
    return RuleInfo(
        id=int(rule.get("id", "-1")),
        level=int(rule.get("level", "-1")),
        file=file,
        if_sid=int(if_sid) if if_sid and if_sid.isdigit() else None,
        group_lists=(group_name, *[g.text or "" for g in rule.findall("group")]),
        description=text("description") or "",
        decoded_as=text("decoded_as"),
    )


def duplicate_ids(rules: list[RuleInfo]) -> list[int]:
    return sorted(i for i, n in Counter(r.id for r in rules).items() if n > 1)


def ids_out_of_range(rules: list[RuleInfo], allowed: range) -> list[int]:
    return sorted(r.id for r in rules if r.id not in allowed)


def unresolved_if_sids(rules: list[RuleInfo], stock_ids: set[int]) -> list[tuple[int, int]]:
    """if_sid values that name neither a stock parent nor a project rule defined earlier."""
    seen: set[int] = set()
    bad = []
    for rule in rules:
        if rule.if_sid is not None and rule.if_sid not in seen | stock_ids:
            bad.append((rule.id, rule.if_sid))
        seen.add(rule.id)
    return bad


def group_lists_without_comma(rules: list[RuleInfo]) -> list[tuple[int, str]]:
    return [(r.id, g) for r in rules for g in r.group_lists if not g.endswith(",")]


def uncovered_rules(rules: list[RuleInfo], cases: list[Case]) -> list[int]:
    """Rules without at least one passing and one failing case in a section for them."""
    passing = {int(c.rule) for c in cases if c.should_match}
    failing = {int(c.rule) for c in cases if not c.should_match}
    return sorted(r.id for r in rules if r.id not in passing or r.id not in failing)


def description_fields(rule: RuleInfo) -> list[str]:
    return _FIELD_REF.findall(rule.description)


def decoder_order_fields(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for decoder in parse_fragment(path):
            order = decoder.find("order")
            if order is not None and order.text:
                names.update(part.strip() for part in order.text.split(","))
    return names
