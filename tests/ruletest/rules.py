"""Rules: loading (rules.c, rules_list.c) and OS_CheckIfRuleMatch for the constructs in use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .decoders import DecoderSet
from .errors import RulesetError, UnsupportedConstruct
from .event import JSON_STATIC_KEYS, Event
from .expressions import Expression, make_expression
from .xmlload import check_attributes, content, elements, parse_fragment

_ELEMENTS = {"if_sid", "decoded_as", "field", "description", "group", "options", "match"}
_OPTIONS = {"no_full_log"}
# w_check_attr_field_name: names analysisd refuses in <field>.
_STATIC_FIELD_NAMES = frozenset(
    {
        "srcip",
        "dstip",
        "srcgeoip",
        "dstgeoip",
        "srcport",
        "dstport",
        "user",
        "srcuser",
        "dstuser",
        "url",
        "id",
        "data",
        "extra_data",
        "status",
        "protocol",
        "system_name",
        "action",
    }
)


@dataclass(frozen=True)
class FieldCondition:
    name: str
    expression: Expression


@dataclass
class Rule:
    id: int
    level: int
    source: str
    description: str
    groups: str  # the enclosing <group name> and every <group> element, concatenated as analysisd does
    if_sid: int | None = None
    decoded_as: str | None = None
    match: Expression | None = None
    fields: tuple[FieldCondition, ...] = ()
    options: tuple[str, ...] = ()
    children: list[Rule] = field(default_factory=list)

    @property
    def priority(self) -> int:
        """The internal level used for ordering: level 0 is stored as 99, then times 100 (rules.c)."""
        return 9900 if self.level == 0 else self.level * 100

    def matches_here(self, event: Event) -> bool:
        """The rule's own conditions, in OS_CheckIfRuleMatch's order."""
        if self.decoded_as is not None and event.decoder != self.decoded_as:
            return False
        if self.match is not None and not self.match.accepts(event.log):
            return False
        for cond in self.fields:
            value = event.find_field(cond.name)
            if value is None:
                return False  # a missing field never matches, negate or not
            if not cond.expression.accepts(value):
                return False
        return True

    def evaluate(self, event: Event) -> Rule | None:
        """The deepest first match below and including this rule, trying children in list order."""
        if not self.matches_here(event):
            return None
        for child in self.children:
            hit = child.evaluate(event)
            if hit is not None:
                return hit
        return self


@dataclass
class RuleTree:
    """Rules with sigid >= 10 and no if_sid hang below the category template rule (rule 1 for
    syslog-type decoders, which is all this runner supports); everything else below its if_sid."""

    top: list[Rule] = field(default_factory=list)
    by_id: dict[int, Rule] = field(default_factory=dict)
    load_order: list[Rule] = field(default_factory=list)

    def load(self, path: Path, decoders: DecoderSet) -> None:
        for node in parse_fragment(path):
            if node.tag != "group":
                raise UnsupportedConstruct(f"{path.name}: root element <{node.tag}> is not implemented")
            check_attributes(node, {"name"}, path.name)
            name = node.get("name")
            if not name:
                raise RulesetError(f"{path.name}: <group> without a name")
            for rule_node in elements(node):
                self.add(_read_rule(rule_node, name, path.name, decoders))

    def add(self, rule: Rule) -> None:
        if rule.id in self.by_id:
            raise RulesetError(f"{rule.source}: duplicate rule id {rule.id} (analysisd would skip it)")
        if rule.id < 10:
            raise UnsupportedConstruct(f"{rule.source}: category template rule {rule.id} is not implemented")
        siblings = self.top
        if rule.if_sid is not None:
            parent = self.by_id.get(rule.if_sid)
            if parent is None:
                raise RulesetError(
                    f"{rule.source}: rule {rule.id}: if_sid {rule.if_sid} not loaded before it"
                )
            siblings = parent.children
        _insert_by_priority(siblings, rule)
        self.by_id[rule.id] = rule
        self.load_order.append(rule)

    def evaluate(self, event: Event) -> Rule | None:
        """The first top-level rule whose subtree matches ends the search."""
        for rule in self.top:
            hit = rule.evaluate(event)
            if hit is not None:
                return hit
        return None  # rule 1 is noalert: no match at all


def _insert_by_priority(siblings: list[Rule], rule: Rule) -> None:
    """_OS_AddRule: before the first sibling of strictly lower priority, so ties keep load order."""
    for i, other in enumerate(siblings):
        if rule.priority > other.priority:
            siblings.insert(i, rule)
            return
    siblings.append(rule)


def _read_rule(node, group_name: str, source: str, decoders: DecoderSet) -> Rule:
    if node.tag != "rule":
        raise UnsupportedConstruct(f"{source}: <{node.tag}> inside <group> is not implemented")
    where = f"{source}: rule {node.get('id')!r}"
    check_attributes(node, {"id", "level"}, where)
    rule_id, level = _int_attr(node, "id", where), _int_attr(node, "level", where)
    if not 0 <= level <= 16:
        raise RulesetError(f"{where}: level {level} out of range")
    parts = _RuleParts()
    for child in elements(node):
        if child.tag not in _ELEMENTS:
            raise UnsupportedConstruct(f"{where}: <{child.tag}> is not implemented")
        parts.take(child, where, decoders)
    if not parts.description:
        raise RulesetError(f"{where}: no description")
    return Rule(
        id=rule_id,
        level=level,
        source=source,
        description=parts.description,
        groups=group_name + "".join(parts.groups),
        if_sid=parts.if_sid,
        decoded_as=parts.decoded_as,
        match=parts.match,
        fields=tuple(parts.fields),
        options=tuple(parts.options),
    )


def _int_attr(node, name: str, where: str) -> int:
    value = node.get(name, "")
    if not value.isdigit():
        raise RulesetError(f"{where}: attribute {name} must be an integer, got {value!r}")
    return int(value)


@dataclass
class _RuleParts:
    description: str = ""
    groups: list[str] = field(default_factory=list)
    if_sid: int | None = None
    decoded_as: str | None = None
    match: Expression | None = None
    fields: list[FieldCondition] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def take(self, child, where: str, decoders: DecoderSet) -> None:
        text = content(child, where)
        if child.tag == "field":
            self.fields.append(_field(child, text, where))
            return
        check_attributes(child, set(), where)
        if child.tag == "description":
            self._once("description", where)
            self.description = text.replace("\n", " ", 1)
        elif child.tag == "group":
            self.groups.append(text)
        elif child.tag == "options":
            if text not in _OPTIONS:
                raise UnsupportedConstruct(f"{where}: option {text!r} is not implemented")
            self.options.append(text)
        elif child.tag == "if_sid":
            self._once("if_sid", where)
            if not text.isdigit():
                raise UnsupportedConstruct(f"{where}: if_sid lists are not implemented ({text!r})")
            self.if_sid = int(text)
        elif child.tag == "decoded_as":
            self._once("decoded_as", where)
            if not decoders.is_parent(text):
                raise RulesetError(f"{where}: decoded_as {text!r} is not a loaded parent decoder")
            self.decoded_as = text
        else:  # match
            self._once("match", where)
            self.match = make_expression("osmatch", text)

    def _once(self, what: str, where: str) -> None:
        if getattr(self, what):
            raise UnsupportedConstruct(f"{where}: repeated <{what}> is not implemented")


def _field(child, text: str, where: str) -> FieldCondition:
    check_attributes(child, {"name", "type", "negate"}, where)
    name = child.get("name")
    if not name:
        raise RulesetError(f"{where}: <field> without name")
    if name.lower() in _STATIC_FIELD_NAMES or name in JSON_STATIC_KEYS:
        raise RulesetError(f"{where}: <field name={name!r}> is a static field")
    kind = child.get("type", "osregex")
    if kind not in ("osregex", "pcre2"):
        raise UnsupportedConstruct(f"{where}: field type {kind!r} is not implemented")
    negate = child.get("negate", "no")
    if negate not in ("yes", "no"):
        raise RulesetError(f"{where}: negate must be yes or no")
    return FieldCondition(name, make_expression(kind, text, negate == "yes"))
