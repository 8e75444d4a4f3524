"""What the ECR logger Lambda encodes in log group and stream names."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_GROUP_PREFIX = "/aws/ecr/image-scan-findings/"

STREAM_KINDS = ("SUMMARY", "INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNDEFINED", "UNTRIAGED")

# Tags may contain "-" and ".", so the tag is whatever lies between the kind and the digest.
# An empty tag is accepted: it is what an untagged image would give if the Lambda got that far.
_STREAM_RE = re.compile(
    r"^(?P<kind>" + "|".join(STREAM_KINDS) + r")-(?P<tag>.*)-(?P<digest>[0-9a-f]{64})"
    r"-(?P<date>\d{4}-\d{2}-\d{2})T(?P<h>\d{2})-(?P<m>\d{2})-(?P<s>\d{2})Z\Z",
    re.ASCII,
)


@dataclass(frozen=True)
class StreamName:
    kind: str
    image_tag: str
    image_digest: str
    scan_time: str


def repository_of(log_group: str, prefix: str = DEFAULT_GROUP_PREFIX) -> str:
    """Everything after the Lambda's prefix (or else the discovery prefix), exactly as the group gives
    it: repository names may contain '/', and `...findings//prod/api` is repository `/prod/api`, not
    `prod/api` (another group's repository). A group under neither gives its last path segment."""
    for each in (DEFAULT_GROUP_PREFIX, prefix):
        if not each or not log_group.startswith(each):
            continue
        rest = log_group[len(each) :]
        if not each.endswith("/") and rest.startswith("/"):
            rest = rest[1:]  # a prefix given without its trailing slash
        if rest:
            return rest
    return log_group.rstrip("/").rsplit("/", 1)[-1] or log_group


def parse_stream_name(name: str) -> StreamName | None:
    """`<KIND>-<tag>-<digest hex>-<YYYY-MM-DDTHH-MM-SSZ>`, or None when the name has another shape."""
    match = _STREAM_RE.match(name)
    if match is None:
        return None
    return StreamName(
        kind=match["kind"],
        image_tag=match["tag"],
        image_digest="sha256:" + match["digest"],
        scan_time=f"{match['date']}T{match['h']}:{match['m']}:{match['s']}Z",
    )
