"""The runner itself: analysisd semantics it must get right, and constructs it must refuse."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ruletest import Engine, RulesetError, UndefinedBehaviour, UnsupportedConstruct, predecode
from ruletest.engine import OS_COMMENT_MAX, split_groups
from ruletest.osregex import compile_match, compile_regex
from ruletest.project import fixture_files

JSON_DECODER = (
    '<decoder name="json"><prematch>^{\\s*"</prematch><plugin_decoder>JSON_Decoder</plugin_decoder></decoder>'
)


def make_engine(tmp_path: Path, rules: str, decoders: str = JSON_DECODER) -> Engine:
    (tmp_path / "d.xml").write_text(decoders)
    (tmp_path / "r.xml").write_text(rules)
    return Engine.load([tmp_path / "d.xml"], [tmp_path / "r.xml"])


def rule(rid: int, level: int, body: str, group: str = "") -> str:
    extra = f"<group>{group}</group>" if group else ""
    return f'<rule id="{rid}" level="{level}">{body}<description>r{rid} $(x)</description>{extra}</rule>'


def doc(*rules: str, name: str = "test,") -> str:
    return f'<group name="{name}">{"".join(rules)}</group>'


def send(engine: Engine, event: dict) -> tuple[str, str, str]:
    return engine.process("1:test:" + json.dumps(event)).ut


# --- OS_Regex, the default for <field> -------------------------------------------------------

# Wazuh's own OS_Regex test list (src/os_regex/examples/tests/true.regex and false.regex).
TRUE_REGEX = [
    (r"\s+123", "  123"),
    (r"\s*123", "123"),
    (r"\s123", " 123"),
    (r"\w+\s+\w+", "a 1"),
    (r"\w+\d+\w+\s+", "ab12fb12fd12 "),
    (r"^\s*\w\s*\w+", "a   l a  a"),
    (r"\w+\s+\w+\d+\s$", "a aa11 "),
    (r"^su\S*: BAD su", "su: BAD SU dcid to root on /dev/ttyp0"),
    (r"^su\s*: BAD su", "su: BAD SU dcid to root"),
    (r"^abc\sabc", "abc abcd"),
    (r"^abc\s\s*abc", "abc abcd"),
    (r"^\s+\sl", "     lala"),
    (r"^\s*\sl", "     lala"),
    (r"^\s\s+l", "     lala"),
    (r"^\s+\s l", "     lala"),
    (r"^\s*\s lal\w$", "  lala"),
    (r"test123test\d+$", "test123test123"),
    (
        r"^kernel: \S+ \.+ SRC=\S+ DST=\S+ \.+ PROTO=\w+ SPT=\d+ DPT=\d+ ",
        "kernel: IPTABLE IN=eth0 OUT= MAC=ff:ff SRC=10.4.11.40 DST=255.255.255.255 LEN=180 "
        "PROTO=UDP SPT=49320 DPT=2222 LEN=160",
    ),
    (r"test (\w+)la", "test abclala"),
    (r"(\w+) (\w+)", "wofl wofl"),
    (
        r"^\S+ [(\d+:\d+:\d+)] \.+ (\d+.\d+.\d+.\d+)\p*\d* -> (\d+.\d+.\d+.\d+)\p*",
        "snort: [1:1420:11] SNMP trap tcp [Classification: Attempted Information Leak] [Priority: 2]: "
        "{TCP} 10.4.12.26:37020 -> 10.4.10.231:162",
    ),
]


@pytest.mark.parametrize(("pattern", "subject"), TRUE_REGEX)
def test_os_regex_port_matches_wazuh_true_list(pattern: str, subject: str) -> None:
    assert compile_regex(pattern).execute(subject)[0] is not None


def test_os_regex_port_rejects_wazuh_false_list() -> None:
    assert compile_regex(r"\w+\s+\w+\d+\s$").execute("a aa11  ")[0] is None


def test_os_regex_captures() -> None:
    regex = compile_regex(
        r"^\S+ [(\d+:\d+:\d+)] \.+ (\d+.\d+.\d+.\d+)\p*\d* -> (\d+.\d+.\d+.\d+)\p*", substrings=True
    )
    _, groups = regex.execute("snort: [1:590:12] RPC [Priority: 2]: {UDP} 10.4.11.94:669 -> 10.4.3.20:111")
    assert groups == ["1:590:12", "10.4.11.94", "10.4.3.20"]


def test_os_regex_keeps_last_literal_in_group_at_end_of_line() -> None:
    """A quirk the decoder works around: `(\\S+)s` keeps the "s" when it ends the line."""
    regex = compile_regex(r"duration=(\S+)s", substrings=True)
    assert regex.execute("duration=2.4s")[1] == ["2.4s"]
    assert regex.execute("duration=2.4s more")[1] == ["2.4"]


def test_os_regex_on_empty_string_is_refused() -> None:
    with pytest.raises(UndefinedBehaviour):
        compile_regex(r"\.+").execute("")


def test_field_default_is_case_insensitive_and_unanchored(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path, doc(rule(100, 5, '<decoded_as>json</decoded_as><field name="x">aws</field>'))
    )
    assert send(engine, {"x": "AWS"})[0] == "100"
    assert send(engine, {"x": "not-aws-at-all"})[0] == "100"
    assert send(engine, {"x": "amazon"})[0] == ""


def test_field_anchors_and_pcre2_are_exact(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 5, '<decoded_as>json</decoded_as><field name="x">^aws$</field>'),
            rule(101, 6, '<decoded_as>json</decoded_as><field name="y" type="pcre2">^aws$</field>'),
        ),
    )
    assert send(engine, {"x": "AWS"})[0] == "100"
    assert send(engine, {"x": "awss"})[0] == ""
    assert send(engine, {"y": "aws"})[0] == "101"
    assert send(engine, {"y": "AWS"})[0] == ""


def test_missing_field_does_not_match_even_negated(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path, doc(rule(100, 5, '<decoded_as>json</decoded_as><field name="x" negate="yes">a</field>'))
    )
    assert send(engine, {"x": "b"})[0] == "100"
    assert send(engine, {"x": "a"})[0] == ""
    assert send(engine, {"y": "b"})[0] == ""


# --- rule tree order --------------------------------------------------------------------------


def test_children_level_zero_first_then_level_descending_ties_in_file_order(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 0, "<decoded_as>json</decoded_as>"),
            rule(101, 3, "<if_sid>100</if_sid>"),
            rule(102, 9, "<if_sid>100</if_sid>"),
            rule(103, 0, "<if_sid>100</if_sid>"),
            rule(104, 9, "<if_sid>100</if_sid>"),
        ),
    )
    assert [r.id for r in engine.rules.by_id[100].children] == [103, 102, 104, 101]
    assert send(engine, {"a": "1"})[0] == "103"


def test_deepest_first_match_wins(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 0, "<decoded_as>json</decoded_as>"),
            rule(101, 5, '<if_sid>100</if_sid><field name="a">1</field>'),
            rule(102, 2, '<if_sid>101</if_sid><field name="b">1</field>'),
            rule(103, 9, '<if_sid>100</if_sid><field name="c">1</field>'),
        ),
    )
    assert send(engine, {"a": "1", "b": "1"}) == ("102", "2", "json")
    assert send(engine, {"a": "1", "c": "1"}) == ("103", "9", "json")
    assert send(engine, {"a": "1"}) == ("101", "5", "json")
    assert send(engine, {"z": "1"}) == ("100", "0", "json")


def test_first_matching_top_level_rule_ends_the_search(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 0, '<decoded_as>json</decoded_as><field name="a">1</field>'),
            rule(200, 12, '<decoded_as>json</decoded_as><field name="b">1</field>'),
        ),
    )
    assert send(engine, {"a": "1", "b": "1"}) == ("100", "0", "json")
    assert send(engine, {"b": "1"}) == ("200", "12", "json")


def test_stock_aws_parent_is_tried_before_vulnerability_detector() -> None:
    engine = Engine.load(fixture_files("decoders"), fixture_files("rules"))
    event = {
        "integration": "aws",
        "vulnerability": {"cve": "CVE-1", "status": "Active", "severity": "Critical"},
    }
    assert send(engine, event)[0] == "80200"
    del event["integration"]
    assert send(engine, event)[0] == "23506"


# --- JSON decoder ------------------------------------------------------------------------------


def test_json_values_become_strings(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")))
    payload = (
        '{"i":5,"f":7.5,"t":true,"n":false,"z":null,"a":[1,"x",2.5],"o":{"p":{"q":"r"}},'
        '"big":3000000000,"e":1e2}'
    )
    fields = dict(engine.process("1:test:" + payload).fields)
    assert fields == {
        "i": "5",
        "f": "7.500000",
        "t": "true",
        "n": "false",
        "z": "null",
        "a": '[1,"x",2.5]',
        "o.p.q": "r",
        "big": "3000000000.000000",
        "e": "100",
    }


def test_malformed_json_keeps_decoder_without_fields(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")))
    result = engine.process('1:test:{"a": ')
    assert result.decoder == "json" and result.fields == ()


# --- descriptions, groups, alerts ----------------------------------------------------------------


def test_missing_description_field_expands_to_empty(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")))
    assert engine.process('1:test:{"x":"v"}').description == "r100 v"
    assert engine.process('1:test:{"y":"v"}').description == "r100 "


def test_description_too_long_falls_back_to_template(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")))
    assert engine.process('1:test:{"x":"%s"}' % ("a" * OS_COMMENT_MAX)).description == "r100 $(x)"


def test_groups_are_the_rules_own_not_its_parents(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 0, "<decoded_as>json</decoded_as>", group="parent_only,"),
            rule(101, 5, "<if_sid>100</if_sid>", group="child,pci_dss_11.2.1,tsc_CC7.1,"),
            name="top,",
        ),
    )
    result = engine.process('1:test:{"a":"1"}')
    assert result.groups == ("top", "child")
    assert result.compliance == {"pci_dss": ("11.2.1",), "tsc": ("CC7.1",)}


def test_group_lists_are_concatenated_without_separator() -> None:
    assert split_groups("amazon,aws" + "vulnerability,")[0] == ("amazon", "awsvulnerability")


def test_alerts_from_level_three(tmp_path: Path) -> None:
    engine = make_engine(
        tmp_path,
        doc(
            rule(100, 2, '<decoded_as>json</decoded_as><field name="a">1</field>'),
            rule(101, 3, '<decoded_as>json</decoded_as><field name="b">1</field>'),
        ),
    )
    assert not engine.process('1:test:{"a":"1"}').alert
    assert engine.process('1:test:{"b":"1"}').alert


# --- pre-decoding and decoders -------------------------------------------------------------------


def test_predecoding_of_a_status_line() -> None:
    event = predecode("1:wazuh-ecr-scan:wazuh-ecr-scan: ERROR: region us-east-1: x")
    assert (event.location, event.full_log, event.program_name) == (
        "wazuh-ecr-scan",
        "wazuh-ecr-scan: ERROR: region us-east-1: x",
        None,
    )


def test_predecoding_with_a_syslog_header_is_refused() -> None:
    with pytest.raises(UnsupportedConstruct):
        predecode("1:/var/log/syslog:Dec 29 10:00:01 host wazuh-ecr-scan: ERROR: x")


def test_child_decoders_report_the_parent_name(tmp_path: Path) -> None:
    decoders = (
        '<decoder name="p"><prematch>^p: </prematch></decoder>'
        '<decoder name="p-child"><parent>p</parent><regex offset="after_parent">^(\\w+)</regex>'
        "<order>p.word</order></decoder>"
    )
    engine = make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>p</decoded_as>")), decoders)
    result = engine.process("1:test:p: hello world")
    assert result.decoder == "p" and result.fields == (("p.word", "hello"),)


def test_os_match_for_stock_rule_1002() -> None:
    match = compile_match("core_dumped|failure|error| bad ")
    assert match.execute("something ERROR here") and not match.execute("all good")


# --- refusing what is not implemented --------------------------------------------------------

REFUSED_RULE_BODIES = [
    ('frequency="2"', "<decoded_as>json</decoded_as>"),
    ("", "<if_matched_sid>5</if_matched_sid>"),
    ("", "<decoded_as>json</decoded_as><regex>x</regex>"),
    ("", '<decoded_as>json</decoded_as><field name="a" type="osmatch">x</field>'),
    ("", '<decoded_as>json</decoded_as><field name="a" type="pcre2">(?=x)y</field>'),
    ("", "<decoded_as>json</decoded_as><options>alert_by_email</options>"),
    ("", "<if_sid>1, 2</if_sid>"),
    ("", '<decoded_as>json</decoded_as><list field="a" lookup="match_key">x</list>'),
]


@pytest.mark.parametrize(("attrs", "body"), REFUSED_RULE_BODIES)
def test_unimplemented_rule_constructs_fail_loudly(tmp_path: Path, attrs: str, body: str) -> None:
    xml = f'<rule id="100" level="3" {attrs}>{body}<description>d</description></rule>'
    with pytest.raises(UnsupportedConstruct):
        make_engine(tmp_path, doc(xml))


REFUSED_DECODERS = [
    '<decoder name="x"><program_name>x</program_name></decoder>',
    '<decoder name="x"><prematch>^x</prematch><type>syslog</type></decoder>',
    '<decoder name="x"><prematch>^x</prematch></decoder><decoder name="c"><parent>x</parent>'
    '<regex offset="after_regex">(\\w+)</regex><order>x.a</order></decoder>',
    '<decoder name="x"><prematch>^x</prematch></decoder><decoder name="c"><parent>x</parent>'
    "<regex>(\\w+)</regex><order>user</order></decoder>",
    '<decoder name="x"><prematch>^x</prematch></decoder>'
    '<decoder name="c"><parent>x</parent><regex>a</regex><order>x.a</order></decoder>'
    '<decoder name="c"><parent>x</parent><regex>b</regex><order>x.b</order></decoder>',
]


@pytest.mark.parametrize("xml", REFUSED_DECODERS)
def test_unimplemented_decoder_constructs_fail_loudly(tmp_path: Path, xml: str) -> None:
    with pytest.raises(UnsupportedConstruct):
        make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")), JSON_DECODER + xml)


def test_ruleset_errors_analysisd_would_reject(tmp_path: Path) -> None:
    with pytest.raises(RulesetError):  # if_sid to a rule that is not loaded
        make_engine(tmp_path, doc(rule(100, 3, "<if_sid>99</if_sid>")))
    with pytest.raises(RulesetError):  # static field name
        make_engine(tmp_path, doc(rule(100, 3, '<decoded_as>json</decoded_as><field name="srcip">x</field>')))
    with pytest.raises(RulesetError):  # duplicate id
        make_engine(
            tmp_path,
            doc(rule(100, 3, "<decoded_as>json</decoded_as>"), rule(100, 4, "<decoded_as>json</decoded_as>")),
        )
    with pytest.raises(RulesetError):  # not well-formed
        make_engine(tmp_path, doc(rule(100, 3, "<decoded_as>json</decoded_as>")) + "<group")
