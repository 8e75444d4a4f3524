"""The aws-s3 wodle's XML dialect: `<wodle name="aws-s3">` blocks with `<service type="cloudwatchlogs">`.

Accepts a file holding one or more such blocks, or a whole ossec.conf (other wodles are skipped). Tags and
validation follow Wazuh's own reader (src/config/wmodules-aws.c, wodles/aws/aws_tools.py); an unknown tag or
a bad value is a ConfigError naming the file, the line and the tag. Services other than cloudwatchlogs,
buckets and subscribers are skipped with an info line: Wazuh's wodle reads those.

`ossec_conf_report` is what `install` and `uninstall` learn from ossec.conf (the stock wodle reading ECR
groups, the command block running the module, the <ruleset> lines): `install` runs without lxml, so it
gets that report as JSON from a Python that has lxml when its own has not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from lxml import etree

from wazuh_ecr_scan import values
from wazuh_ecr_scan.discard import DiscardRule
from wazuh_ecr_scan.errors import ConfigError
from wazuh_ecr_scan.logs import log
from wazuh_ecr_scan.values import compile_pattern, date_ms, interval_seconds, split_list, yes_no

MODULE = "aws-s3"
CLOUDWATCHLOGS = "cloudwatchlogs"
SERVICE_TYPES = ("inspector", CLOUDWATCHLOGS)
MONTH_S = 30 * 86400
# Wazuh's scheduling tags (wm_scheduling.c); this module's passes follow <interval> only.
SCHEDULING_TAGS = ("day", "wday", "time")
DEPRECATED_KEYS = ("access_key", "secret_key")
# aws_tools.arg_valid_key: characters S3/CloudWatch names must avoid.
_GROUP_BAD_CHARS = set("\\{}^%`[]'\"<>~#|")
_BARE_AMPERSAND = re.compile(rb"&(?!(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);)")
_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")
# Wazuh's os_xml skips a comment up to the first "-->", whatever it holds ("--", any bytes).
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True)
class ServiceBlock:
    """One `<service type="cloudwatchlogs">`, validated."""

    line: int
    aws_account_id: str | None = None
    aws_account_alias: str | None = None
    aws_profile: str | None = None
    iam_role_arn: str | None = None
    iam_role_duration: int | None = None
    only_logs_after_ms: int | None = None
    regions: tuple[str, ...] = ()
    aws_log_groups: tuple[str, ...] = ()
    remove_log_streams: bool = False
    discard: DiscardRule | None = None
    sts_endpoint: str | None = None
    service_endpoint: str | None = None


@dataclass(frozen=True)
class WodleBlock:
    """One `<wodle name="aws-s3">`: the module tags and its cloudwatchlogs services."""

    line: int
    disabled: bool = False
    interval_s: int | None = None
    run_on_start: bool = True
    skip_on_error: bool = False
    services: tuple[ServiceBlock, ...] = ()


@dataclass(frozen=True)
class AwsS3Config:
    path: str
    blocks: tuple[WodleBlock, ...] = field(default_factory=tuple)


def load(path: str) -> AwsS3Config:
    """Every `<wodle name="aws-s3">` block of `path`; ConfigError if there is none or one is invalid."""
    root = parse_file(path)
    reader = _Reader(path)
    blocks = tuple(reader.wodle(element) for element in aws_s3_wodles(root))
    if not blocks:
        raise ConfigError(f"configuration error at '{path}': no <wodle name=\"{MODULE}\"> block found")
    return AwsS3Config(path, blocks)


def parse_file(path: str, recover: bool = False) -> etree._Element:
    """The file's elements under one synthetic root (a file may hold several top-level blocks).

    Line numbers are those of the file. Bare `&` (which Wazuh's own parser takes literally, e.g. in a
    regex) is read as `&amp;`; DTDs and external entities are refused.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
    data = _XML_DECLARATION.sub(b"", data.lstrip(b"\xef\xbb\xbf"), count=1)
    data = _COMMENT.sub(lambda m: b"\n" * m[0].count(b"\n"), data)  # keep line numbers
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")  # os_xml reads bytes, any encoding
    data = _BARE_AMPERSAND.sub(b"&amp;", data)
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, recover=recover
    )
    try:
        root = etree.fromstring(b"<wazuh-ecr-scan>" + data + b"</wazuh-ecr-scan>", parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"configuration error at '{path}' line {exc.lineno}: bad XML: {exc.msg}") from exc
    if root is None:
        raise ConfigError(f"configuration error at '{path}': not an XML file")
    return root


def aws_s3_wodles(root: etree._Element) -> Iterator[etree._Element]:
    return (e for e in root.iter("wodle") if e.get("name") == MODULE)


def stock_wodle_ecr_groups(path: str) -> list[tuple[int, str]]:
    """(line, its /aws/ecr/ groups) of each `<aws_log_groups>` naming some in an enabled aws-s3 block of
    `path`, a file Wazuh's own aws-s3 wodle reads (ossec.conf): that wodle then forwards every finding
    message raw, besides this module's events. [] when the file is unreadable. Used by `--check-config`
    (`install` reads the same through `ossec_conf_report`)."""
    try:
        root = parse_file(path, recover=True)
    except ConfigError:
        return []
    return [(tag.sourceline, ", ".join(_ecr_groups(tag))) for tag in _stock_ecr_group_tags(root)]


def _stock_ecr_group_tags(root: etree._Element) -> Iterator[etree._Element]:
    for wodle in enabled_wodles(root, MODULE):
        for tag in wodle.iter("aws_log_groups"):
            if _ecr_groups(tag):
                yield tag


def _ecr_groups(tag: etree._Element) -> list[str]:
    """The /aws/ecr/ groups of an `<aws_log_groups>` (other groups are the stock wodle's business)."""
    return [group for group in split_list(tag.text or "") if "/aws/ecr/" in group]


def enabled_wodles(root: etree._Element, name: str) -> Iterator[etree._Element]:
    """Every `<wodle name=name>` of `root` but those whose (last) `<disabled>` is yes: Wazuh does not run
    them (its readers, src/config/wmodules-command.c and wmodules-aws.c, keep a repeated tag's last)."""
    for wodle in root.iter("wodle"):
        disabled = wodle.findall("disabled")
        if wodle.get("name") == name and not (disabled and (disabled[-1].text or "").strip() == "yes"):
            yield wodle


# -- what `install` and `uninstall` read in ossec.conf --------------------------------------------

# The launcher `install` puts in wodles/ecr-scan (install.WODLE_DIR / install.LAUNCHER).
LAUNCHER_PATH = "wodles/ecr-scan/ecr-scan"
# The <ruleset> lines that load the directories `install` copies the rules and decoders into.
RULESET_LINES = (("decoder_dir", "etc/decoders"), ("rule_dir", "etc/rules"))


@dataclass(frozen=True)
class OssecConfReport:
    """What `install` and `uninstall` tell the administrator about ossec.conf. Plain values: `install`,
    which runs without lxml, gets it as JSON from a Python that has lxml (`ossec_conf_report_json`)."""

    stock_wodle_groups: list[tuple[int, str]]  # (line, group): an /aws/ecr/ group a stock aws-s3 block reads
    module_line: int | None  # line of the <command> of an enabled command wodle running the launcher
    missing_ruleset_lines: list[str]  # RULESET_LINES that no <ruleset> holds, as XML lines
    bad_xml: str | None = None  # the parser's complaint (file and line); the rest was read in recover mode


def ossec_conf_report(path: str) -> OssecConfReport:
    """Read `path` (ossec.conf) as Wazuh's os_xml does: comments skipped, several top-level
    `<ossec_config>` blocks, disabled wodles ignored. Malformed XML is read in recover mode (`bad_xml`
    says where it broke); ConfigError only when the file cannot be read at all."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    bad_xml = None
    try:
        root = parse_file(path)
    except ConfigError as exc:
        bad_xml = str(exc)
        root = parse_file(path, recover=True)
    return OssecConfReport(
        stock_wodle_groups=[
            (tag.sourceline, group) for tag in _stock_ecr_group_tags(root) for group in _ecr_groups(tag)
        ],
        module_line=module_command_line(root),
        missing_ruleset_lines=missing_ruleset_lines(root),
        bad_xml=bad_xml,
    )


def module_command_line(root: etree._Element) -> int | None:
    """Line of the `<command>` of the first enabled `<wodle name="command">` that runs the launcher (the
    last `<command>` of a block: the one modulesd runs)."""
    for wodle in enabled_wodles(root, "command"):
        commands = wodle.findall("command")
        if commands and LAUNCHER_PATH in (commands[-1].text or ""):
            return commands[-1].sourceline
    return None


def missing_ruleset_lines(root: etree._Element) -> list[str]:
    """The RULESET_LINES that no `<ruleset>` of `root` holds, as the lines to add."""
    present = {
        (child.tag, (child.text or "").strip())
        for ruleset in root.iter("ruleset")
        for child in elements(ruleset)
    }
    return [f"<{tag}>{path}</{tag}>" for tag, path in RULESET_LINES if (tag, path) not in present]


def ossec_conf_report_json(path: str) -> str:
    """`ossec_conf_report` as one JSON object for `install`: {"report": {...}} or {"error": "..."}."""
    try:
        return json.dumps({"report": asdict(ossec_conf_report(path))})
    except ConfigError as exc:
        return json.dumps({"error": str(exc)})


def elements(parent: etree._Element) -> Iterator[etree._Element]:
    return (child for child in parent if isinstance(child.tag, str))


class _Reader:
    """Turns elements into blocks; every error names the file and line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, element: etree._Element, message: str) -> ConfigError:
        return ConfigError(f"configuration error at '{self.path}' line {element.sourceline}: {message}")

    # -- <wodle name="aws-s3"> -------------------------------------------------------------------

    def wodle(self, wodle: etree._Element) -> WodleBlock:
        values: dict = {"line": wodle.sourceline}
        services: list[ServiceBlock] = []
        for child in elements(wodle):
            tag = child.tag
            if tag in ("disabled", "run_on_start", "skip_on_error", "remove_from_bucket"):
                values[tag] = self.yes_no(child)
            elif tag == "interval":
                values["interval_s"] = self.interval(child)
            elif tag in SCHEDULING_TAGS:
                self.text(child)
                log.warning(
                    "%s line %d: <%s> is not used: passes are scheduled by <interval> or by modulesd's "
                    '<wodle name="command">',
                    self.path,
                    child.sourceline,
                    tag,
                )
            elif tag == "service":
                service = self.service(child)
                if service is not None:
                    services.append(service)
            elif tag in ("bucket", "subscriber"):
                log.info(
                    '%s line %d: <%s> ignored: wazuh-ecr-scan reads <service type="%s"> only',
                    self.path,
                    child.sourceline,
                    tag,
                    CLOUDWATCHLOGS,
                )
            elif tag in DEPRECATED_KEYS:
                raise self.deprecated_key(child)
            else:
                raise self.error(child, f"No such tag '{tag}' at module '{MODULE}'.")
        values.pop("remove_from_bucket", None)
        return WodleBlock(services=tuple(services), **values)

    # -- <service type="..."> --------------------------------------------------------------------

    def service(self, service: etree._Element) -> ServiceBlock | None:
        kind = self.service_type(service)
        if kind != CLOUDWATCHLOGS:
            log.info(
                '%s line %d: <service type="%s"> ignored: wazuh-ecr-scan reads type="%s" only',
                self.path,
                service.sourceline,
                kind,
                CLOUDWATCHLOGS,
            )
            return None
        values: dict = {"line": service.sourceline}
        seen: dict[str, int] = {}
        for child in elements(service):
            if child.tag in seen:
                log.warning(
                    "%s line %d: <%s> given again (first at line %d): the last one is used, as in Wazuh",
                    self.path,
                    child.sourceline,
                    child.tag,
                    seen[child.tag],
                )
            seen[child.tag] = child.sourceline
            values.update(self.service_child(child))
        if values.get("iam_role_duration") is not None and not values.get("iam_role_arn"):
            raise self.error(service, "<iam_role_duration> needs an <iam_role_arn> in the same service.")
        return ServiceBlock(**values)

    def service_type(self, service: etree._Element) -> str:
        attributes = dict(service.attrib)
        if not attributes:
            raise self.error(service, "Undefined type for service.")
        if set(attributes) != {"type"}:
            name = next(a for a in attributes if a != "type")
            raise self.error(service, f"Attribute name '{name}' is not valid. The valid one is 'type'.")
        kind = attributes["type"]
        if kind not in SERVICE_TYPES:
            raise self.error(
                service, f"Invalid service type '{kind}'. Valid ones are 'inspector' or '{CLOUDWATCHLOGS}'"
            )
        return kind

    def service_child(self, child: etree._Element) -> dict:
        handler = self.service_handlers().get(child.tag)
        if handler is not None:
            return handler(child)
        if child.tag in DEPRECATED_KEYS:
            raise self.deprecated_key(child)
        raise self.error(child, f"No such child tag '{child.tag}' of service at module '{MODULE}'.")

    def service_handlers(self) -> dict[str, Callable[[etree._Element], dict]]:
        return {
            "aws_account_id": self.account_id,
            "aws_account_alias": lambda e: self.optional(e, "aws_account_alias"),
            "aws_profile": lambda e: self.optional(e, "aws_profile"),
            "iam_role_arn": self.role_arn,
            "iam_role_duration": self.role_duration,
            "only_logs_after": self.only_logs_after,
            "regions": self.regions,
            "aws_log_groups": self.log_groups,
            "remove_log_streams": lambda e: {"remove_log_streams": self.yes_no(e)},
            "discard_regex": self.discard,
            "sts_endpoint": lambda e: self.endpoint(e, "sts_endpoint"),
            "service_endpoint": lambda e: self.endpoint(e, "service_endpoint"),
        }

    # -- values ----------------------------------------------------------------------------------

    def text(self, element: etree._Element) -> str:
        if next(elements(element), None) is not None:
            raise self.error(element, f"<{element.tag}> must hold a value, not other tags.")
        return (element.text or "").strip()

    def yes_no(self, element: etree._Element) -> bool:
        try:
            return yes_no(self.text(element))
        except ValueError as exc:
            raise self.invalid(element, str(exc)) from exc

    def interval(self, element: etree._Element) -> int:
        value = self.text(element)
        if value.endswith("M") and value[:-1].isdigit() and int(value[:-1]) > 0:
            return int(value[:-1]) * MONTH_S
        try:
            return interval_seconds(value)
        except ValueError as exc:
            raise self.error(element, f"Invalid interval value at module '{MODULE}': {exc}") from exc

    def optional(self, element: etree._Element, name: str) -> dict:
        value = self.text(element)
        return {name: value} if value else {}

    def account_id(self, element: etree._Element) -> dict:
        value = self.text(element)
        if not value:
            raise self.error(element, f"Empty content for tag 'aws_account_id' at module '{MODULE}'.")
        return {"aws_account_id": self.checked(element, values.account_id, value)}

    def role_arn(self, element: etree._Element) -> dict:
        value = self.text(element)
        return {"iam_role_arn": self.checked(element, values.role_arn, value)} if value else {}

    def role_duration(self, element: etree._Element) -> dict:
        value = self.text(element)
        if not value:
            return {}
        return {"iam_role_duration": self.checked(element, values.role_duration, value)}

    def only_logs_after(self, element: etree._Element) -> dict:
        value = self.text(element)
        if not value:
            log.warning("%s line %d: Empty content for tag 'only_logs_after'.", self.path, element.sourceline)
            return {}
        try:
            return {"only_logs_after_ms": date_ms(value)}
        except ValueError as exc:
            raise self.invalid(element, str(exc)) from exc

    def regions(self, element: etree._Element) -> dict:
        regions = split_list(self.text(element))
        if not regions:
            log.warning("%s line %d: Empty content for tag 'regions'.", self.path, element.sourceline)
            return {}
        for region in regions:
            self.checked(element, values.region, region)
        return {"regions": tuple(dict.fromkeys(regions))}

    def log_groups(self, element: etree._Element) -> dict:
        groups = split_list(self.text(element))
        if not groups:
            raise self.error(element, f"Empty content for tag 'aws_log_groups' at module '{MODULE}'.")
        for group in groups:
            bad = sorted(_GROUP_BAD_CHARS.intersection(group)) or ("*" if "*" in group[:-1] else None)
            if bad:
                raise self.invalid(
                    element, f"{group!r} has {''.join(bad)!r}: only a final '*' (a name prefix) is allowed"
                )
        return {"aws_log_groups": tuple(dict.fromkeys(groups))}

    def discard(self, element: etree._Element) -> dict:
        pattern = self.text(element)
        extra = sorted(set(element.attrib) - {"field"})
        if extra:
            raise self.error(element, f"Attribute name '{extra[0]}' is not valid. The valid one is 'field'.")
        if not pattern:
            log.warning(
                "%s line %d: No value was provided for 'discard_regex'. No event will be skipped.",
                self.path,
                element.sourceline,
            )
            return {}
        try:
            regex = compile_pattern(pattern)
        except ValueError as exc:
            raise self.invalid(element, str(exc)) from exc
        # Without `field` Wazuh's cloudwatchlogs service tests the raw message; so does this module.
        return {"discard": DiscardRule(regex, (element.get("field") or "").strip() or None)}

    def endpoint(self, element: etree._Element, name: str) -> dict:
        value = self.text(element)
        if not value:
            return {}
        return {name: self.checked(element, values.endpoint_url, value)}

    def checked(self, element: etree._Element, check: Callable[[Any], Any], value: Any) -> Any:
        """`check(value)`, its ValueError refused as invalid content of `element`."""
        try:
            return check(value)
        except ValueError as exc:
            raise self.invalid(element, str(exc)) from exc

    def invalid(self, element: etree._Element, reason: str) -> ConfigError:
        return self.error(element, f"Invalid content for tag '{element.tag}' at module '{MODULE}': {reason}.")

    def deprecated_key(self, element: etree._Element) -> ConfigError:
        return self.error(
            element,
            f"<{element.tag}> is not supported (Wazuh deprecated it in 4.4): give credentials with "
            "<aws_profile>, <iam_role_arn>, environment variables or an instance role.",
        )
