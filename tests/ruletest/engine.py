"""Pre-decoding, decoding and rule matching of one analysisd input line, as wazuh-logtest shows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .decoders import DecoderSet
from .errors import CaseFileError, UnsupportedConstruct
from .event import Event
from .rules import Rule, RuleTree

LOG_ALERT_LEVEL = 3  # ossec.conf <alerts><log_alert_level> default
OS_COMMENT_MAX = 1024  # eventinfo.c
COMPLIANCE_PREFIXES = (  # json_extended.c W_JSON_ParseGroups, in its order
    ("pci_dss_", "pci_dss"),
    ("cis_", "cis"),
    ("gdpr_", "gdpr"),
    ("gpg13_", "gpg13"),
    ("hipaa_", "hipaa"),
    ("nist_800_53_", "nist_800_53"),
    ("tsc_", "tsc"),
)
# ParseRuleComment: $(name) for these reads a static Eventinfo member.
_STATIC_DESCRIPTION_NAMES = {
    "dstuser": "dstuser",
    "srcuser": "srcuser",
    "srcip": "srcip",
    "dstip": "dstip",
    "srcport": "srcport",
    "protocol": "protocol",
    "action": "action",
    "id": "id",
    "url": "url",
    "data": "data",
    "extra_data": "data",
    "status": "status",
    "system_name": "systemname",
}


@dataclass(frozen=True)
class Result:
    rule_id: int | None
    level: int | None
    description: str | None
    groups: tuple[str, ...]
    compliance: dict[str, tuple[str, ...]]
    decoder: str | None
    fields: tuple[tuple[str, str], ...]
    location: str
    full_log: str
    options: tuple[str, ...] = ()

    @property
    def alert(self) -> bool:
        return self.level is not None and self.level >= LOG_ALERT_LEVEL

    @property
    def ut(self) -> tuple[str, str, str]:
        """wazuh-logtest's unit-test triple: rule id, level, decoder name ('' when absent)."""
        rule = "" if self.rule_id is None else str(self.rule_id)
        level = "" if self.level is None else str(self.level)
        return rule, level, self.decoder or ""

    def field(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k.lower() == name.lower()), None)


class Engine:
    def __init__(self, decoders: DecoderSet, rules: RuleTree) -> None:
        self.decoders = decoders
        self.rules = rules

    @classmethod
    def load(cls, decoder_files: list[Path], rule_files: list[Path]) -> Engine:
        """Files load in the order given, like ruleset/ then etc/ directories."""
        decoders = DecoderSet()
        for path in decoder_files:
            decoders.load(path)
        rules = RuleTree()
        for path in rule_files:
            rules.load(path, decoders)
        return cls(decoders, rules)

    def process(self, datagram: str) -> Result:
        """One analysisd queue message, `<queue>:<location>:<log>`."""
        event = predecode(datagram)
        self.decoders.decode(event)
        rule = self.rules.evaluate(event)
        return _result(event, rule)

    def logtest(self, line: str, location: str = "stdin") -> Result:
        """What `wazuh-logtest` (default location "stdin") reports for one typed line."""
        return self.process(f"1:{location}:{line}")


def predecode(datagram: str) -> Event:
    """OS_CleanMSG for manager-local messages whose text carries no syslog-style header."""
    if len(datagram) < 2 or datagram[1] != ":":
        raise CaseFileError(f"not an analysisd message: {datagram[:40]!r}")
    rest = datagram[2:]
    if rest[:1] in ("[", "("):
        raise UnsupportedConstruct("agent-forwarded locations are not implemented")
    location, sep, log = rest.partition(":")
    if not sep:
        raise CaseFileError(f"no location in {datagram[:40]!r}")
    if has_timestamp_header(log):
        raise UnsupportedConstruct(
            f"pre-decoding of a timestamp/hostname header is not implemented: {log[:40]!r}"
        )
    return Event(location=location, full_log=log, log=log)


# Character positions OS_CleanMSG tests for each header format it strips (cleanevent.c).
_HEADER_SHAPES: tuple[dict[int, str], ...] = (
    {3: " ", 6: " ", 9: ":", 12: ":", 15: " "},  # Dec 29 10:00:01
    {4: "-", 7: "-", 10: " ", 13: ":", 16: ":", 19: ","},  # 2015-04-16 21:51:02,805
    {4: "-", 7: "-", 10: "T", 13: ":", 16: ":"},  # ISO 8601 (syslog-ng, rsyslog)
    {4: " ", 8: " ", 11: " ", 14: ":", 17: ":", 20: " "},  # 2015 Dec 29 10:00:01
    {4: ":", 7: ":", 10: "-", 13: ":", 16: ":"},  # 2019:11:06-00:08:03
    {3: " ", 7: " ", 10: " ", 13: ":", 16: ":", 19: " ", 24: " ", 26: " "},  # xferlog
    {2: "/", 5: "-", 8: ":", 11: ":", 14: ".", 21: " "},  # snort
    {2: "/", 5: "/", 10: "-", 13: ":", 16: ":", 19: "."},  # suricata
    {0: "[", 4: " ", 8: " ", 11: " ", 14: ":", 17: ":", 20: " ", 25: "]"},  # apache error log
    {0: "[", 1: "T", 5: " ", 10: ".", 13: ".", 16: " ", 19: ":"},  # macOS ASL
    {0: "1", 10: ".", 14: " "},  # squid
)


def has_timestamp_header(log: str) -> bool:
    data = log.encode("utf-8", "surrogateescape")
    if len(data) > 2 and data[1] == 195:
        return True  # the "Mär" repair shifts the text before the checks
    return any(
        all(pos < len(data) and data[pos] == ord(ch) for pos, ch in shape.items()) for shape in _HEADER_SHAPES
    )


def _result(event: Event, rule: Rule | None) -> Result:
    if rule is None:
        return Result(
            None, None, None, (), {}, event.decoder, tuple(event.fields), event.location, event.full_log
        )
    groups, compliance = split_groups(rule.groups)
    return Result(
        rule.id,
        rule.level,
        expand_description(rule.description, event),
        groups,
        compliance,
        event.decoder,
        tuple(event.fields),
        event.location,
        event.full_log,
        rule.options,
    )


def split_groups(group_string: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """strtok on ',' (empty items vanish); compliance prefixes go to their own lists."""
    groups: list[str] = []
    compliance: dict[str, list[str]] = {}
    for token in (t for t in group_string[: OS_COMMENT_MAX - 1].split(",") if t):
        for prefix, key in COMPLIANCE_PREFIXES:
            if token.startswith(prefix):
                compliance.setdefault(key, []).append(token[len(prefix) :])
                break
        else:
            groups.append(token)
    return tuple(groups), {k: tuple(v) for k, v in compliance.items()}


def expand_description(template: str, event: Event) -> str:
    """ParseRuleComment: $(name) becomes the field's value, or nothing when the field is absent;
    if the result would reach OS_COMMENT_MAX bytes the unexpanded template is used instead."""
    original = template.encode("utf-8")
    rest = original[:OS_COMMENT_MAX]
    out = b""
    while (tok := rest.find(b"$(")) >= 0:
        out += rest[:tok]
        if len(out) >= OS_COMMENT_MAX:
            return template
        close = rest.find(b")", tok + 2)
        if close < 0:
            rest = rest[tok:]
            break
        name = rest[tok + 2 : close].decode("utf-8", "surrogateescape")
        rest = rest[close + 1 :]
        value = _description_value(name, event)
        if value is not None:
            out += value.encode("utf-8", "surrogateescape")
            if len(out) >= OS_COMMENT_MAX:
                return template
    if len(out) + len(rest) >= OS_COMMENT_MAX:
        return template
    return (out + rest).decode("utf-8", "surrogateescape")


def _description_value(name: str, event: Event) -> str | None:
    if name in _STATIC_DESCRIPTION_NAMES:
        return event.static.get(_STATIC_DESCRIPTION_NAMES[name])
    return event.find_field(name)
