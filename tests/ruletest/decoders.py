"""Decoders: loading (decode-xml.c) and DecodeEvent (decoder.c) for the constructs in use."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RulesetError, UnsupportedConstruct
from .event import Event
from .expressions import Expression, make_expression
from .jsondecoder import json_decode
from .xmlload import check_attributes, content, elements, parse_fragment

_ELEMENTS = {"parent", "prematch", "regex", "order", "plugin_decoder"}
_PLUGINS = {"JSON_Decoder"}
# Order names that are static fields in analysisd are refused; dotted names are always dynamic.
_DYNAMIC_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


@dataclass
class Decoder:
    name: str
    source: str
    parent: str | None = None
    prematch: Expression | None = None
    prematch_after_parent: bool = False
    regex: Expression | None = None
    regex_offset: str | None = None  # None, "after_parent" or "after_prematch"
    order: tuple[str, ...] = ()
    plugin: str | None = None
    children: list[Decoder] = field(default_factory=list)


@dataclass
class DecoderSet:
    parents: list[Decoder] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def load(self, path: Path) -> None:
        for node in parse_fragment(path):
            self._add(_read_decoder(node, path.name))

    def _add(self, dec: Decoder) -> None:
        if dec.name in self.names:
            raise UnsupportedConstruct(f"{dec.source}: decoder name {dec.name!r} reused (sibling decoders)")
        self.names.add(dec.name)
        if dec.parent is None:
            if dec.prematch is None:
                raise UnsupportedConstruct(f"{dec.source}: parent decoder {dec.name!r} without <prematch>")
            if dec.regex_offset == "after_prematch" or dec.prematch_after_parent:
                raise UnsupportedConstruct(f"{dec.source}: offsets on parent decoder {dec.name!r}")
            self.parents.append(dec)
            return
        parent = next((p for p in self.parents if p.name == dec.parent), None)
        if parent is None:
            raise RulesetError(
                f"{dec.source}: parent decoder {dec.parent!r} of {dec.name!r} not loaded before it"
            )
        if dec.plugin:
            raise UnsupportedConstruct(f"{dec.source}: plugin decoder on child {dec.name!r}")
        parent.children.append(dec)

    def is_parent(self, name: str) -> bool:
        return any(p.name == name for p in self.parents)

    def decode(self, event: Event) -> None:
        """DecodeEvent for an event without program_name (the 'no program name' decoder list)."""
        if event.program_name is not None:
            raise UnsupportedConstruct("decoding events with a program_name is not implemented")
        for parent in self.parents:
            hit = parent.prematch.run(event.log)  # type: ignore[union-attr]
            if not hit.matched:
                continue
            event.decoder = parent.name  # children report their parent's name (no use_own_name)
            _decode_with(parent, event, _after(event.log, hit.end))
            return


def _after(text: str, end: int | None) -> str:
    """The text after an end_match pointer: `if (*pmatch != '\\0') pmatch++`."""
    data = text.encode("utf-8", "surrogateescape")
    assert end is not None
    start = end + 1 if end < len(data) else end
    return data[start:].decode("utf-8", "surrogateescape")


def _decode_with(parent: Decoder, event: Event, pmatch: str) -> None:
    chosen, cmatch = _choose_child(parent, event, pmatch)
    if chosen is None:
        return
    if chosen.plugin == "JSON_Decoder":
        json_decode(event.log, event)
        return
    if chosen.regex is None:
        return
    subject = {"after_parent": pmatch, "after_prematch": cmatch}.get(chosen.regex_offset or "", event.log)
    if subject is None:
        raise UnsupportedConstruct(f"{chosen.source}: regex offset without a matching prematch")
    hit = chosen.regex.run(subject)
    if not hit.matched:
        return
    for name, value in zip(chosen.order, hit.groups, strict=False):
        event.fields.append((name, value))


def _choose_child(parent: Decoder, event: Event, pmatch: str) -> tuple[Decoder | None, str | None]:
    if not parent.children:
        return parent, None
    for child in parent.children:
        if child.prematch is None:
            return child, pmatch
        subject = pmatch if child.prematch_after_parent else event.log
        hit = child.prematch.run(subject)
        if hit.matched:
            return child, _after(subject, hit.end)
    return None, None


def _read_decoder(node, source: str) -> Decoder:
    where = f"{source}: decoder {node.get('name')!r}"
    if node.tag != "decoder":
        raise UnsupportedConstruct(f"{source}: root element <{node.tag}> is not implemented")
    check_attributes(node, {"name"}, where)
    if not node.get("name"):
        raise RulesetError(f"{where}: missing name")
    dec = Decoder(name=node.get("name"), source=source)
    seen: set[str] = set()
    for child in elements(node):
        if child.tag not in _ELEMENTS:
            raise UnsupportedConstruct(f"{where}: <{child.tag}> is not implemented")
        if child.tag in seen:
            raise UnsupportedConstruct(f"{where}: repeated <{child.tag}> is not implemented")
        seen.add(child.tag)
        _apply(dec, child, where)
    if dec.regex is not None and not dec.order:
        raise RulesetError(f"{where}: <regex> without <order>")
    return dec


def _apply(dec: Decoder, child, where: str) -> None:
    text = content(child, where)
    if child.tag == "parent":
        check_attributes(child, set(), where)
        dec.parent = text
    elif child.tag == "prematch":
        check_attributes(child, {"offset"}, where)
        offset = child.get("offset")
        if offset not in (None, "after_parent"):
            raise UnsupportedConstruct(f"{where}: prematch offset {offset!r} is not implemented")
        dec.prematch_after_parent = offset == "after_parent"
        dec.prematch = make_expression("osregex", text)
    elif child.tag == "regex":
        check_attributes(child, {"offset"}, where)
        offset = child.get("offset")
        if offset not in (None, "after_parent", "after_prematch"):
            raise UnsupportedConstruct(f"{where}: regex offset {offset!r} is not implemented")
        dec.regex_offset = offset
        dec.regex = make_expression("osregex", text, substrings=True)
    elif child.tag == "order":
        check_attributes(child, set(), where)
        names = tuple(part.strip() for part in text.split(","))
        bad = [n for n in names if not _DYNAMIC_NAME.match(n)]
        if bad:
            raise UnsupportedConstruct(f"{where}: order field(s) {bad} are not dotted dynamic names")
        dec.order = names
    else:
        check_attributes(child, set(), where)
        if text not in _PLUGINS:
            raise UnsupportedConstruct(f"{where}: plugin {text!r} is not implemented")
        dec.plugin = text
