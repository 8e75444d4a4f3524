"""Reading Wazuh ruleset XML: several root elements per file, so it is parsed as a fragment."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from .errors import RulesetError, UnsupportedConstruct


def parse_fragment(path: Path) -> list[etree._Element]:
    """The root elements of a rules/decoders file, refusing what analysisd's own parser may read
    differently (XML declarations, entities, CDATA, processing instructions)."""
    text = path.read_text(encoding="utf-8")
    for token, why in (
        ("<?", "processing instruction or XML declaration"),
        ("&", "entity reference"),
        ("<![CDATA[", "CDATA section"),
        ("<!DOCTYPE", "DOCTYPE"),
    ):
        if token in text:
            raise UnsupportedConstruct(f"{path.name}: {why} is not implemented")
    try:
        root = etree.fromstring(f"<fragment>{text}</fragment>".encode())
    except etree.XMLSyntaxError as exc:
        raise RulesetError(f"{path.name}: not well-formed: {exc}") from exc
    if (root.text or "").strip():
        raise RulesetError(f"{path.name}: stray text at top level")
    out = []
    for node in root:
        if (node.tail or "").strip():
            raise RulesetError(f"{path.name}: stray text at top level")
        if isinstance(node, etree._Comment):
            continue
        out.append(node)
    return out


def elements(node: etree._Element) -> Iterable[etree._Element]:
    """Child elements, without comments."""
    return (child for child in node if not isinstance(child, etree._Comment))


def content(node: etree._Element, where: str) -> str:
    """An element's text, verbatim (analysisd keeps spaces: `^wazuh: ` needs its trailing one).
    Child elements, empty content and line breaks are refused."""
    if len(list(elements(node))):
        raise UnsupportedConstruct(f"{where}: <{node.tag}> with child elements")
    text = node.text or ""
    if not text.strip():
        raise RulesetError(f"{where}: <{node.tag}> is empty")
    if "\n" in text or "\r" in text:
        raise UnsupportedConstruct(f"{where}: <{node.tag}> content spans lines")
    return text


def check_attributes(node: etree._Element, allowed: set[str], where: str) -> None:
    extra = set(node.attrib) - allowed
    if extra:
        raise UnsupportedConstruct(f"{where}: attribute(s) {sorted(extra)} on <{node.tag}> not implemented")
