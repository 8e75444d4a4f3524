"""Counters for one pass, per group and in total: the pass-summary line and the --run-once table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GroupStats:
    region: str
    log_group: str
    pages: int = 0
    streams: set[str] = field(default_factory=set)
    findings: int = 0
    summaries: int = 0
    unparsed: int = 0
    discarded: int = 0
    already_sent: int = 0
    errors: int = 0  # messages skipped on an internal error
    seconds: float = 0.0
    skipped: str = ""

    def count(self, event_type: str) -> None:
        if event_type == "finding":
            self.findings += 1
        elif event_type == "scan_summary":
            self.summaries += 1
        else:
            self.unparsed += 1


@dataclass
class PassStats:
    groups: list[GroupStats] = field(default_factory=list)
    api_calls: int = 0
    duration: float = 0.0
    errors: int = 0
    warnings: int = 0
    listed: int = 0  # groups listed for reading in this pass
    completed: int = 0  # groups read to the end (their window moved)
    interrupted: bool = False  # a stop signal ended the pass before every listed group was read

    def total(self, name: str) -> int:
        return sum(getattr(g, name) for g in self.groups)

    @property
    def skipped_groups(self) -> int:
        return sum(1 for g in self.groups if g.skipped)

    def summary_line(self) -> str:
        streams = sum(len(g.streams) for g in self.groups)
        return (
            f"pass done: groups={len(self.groups)} streams={streams} findings={self.total('findings')}"
            f" summaries={self.total('summaries')} unparsed={self.total('unparsed')}"
            f" discarded={self.total('discarded')} skipped_groups={self.skipped_groups}"
            f" api_calls={self.api_calls} duration={self.duration:.1f}s"
        )

    def table(self) -> str:
        header = ("region", "log group", "streams", "findings", "summaries", "unparsed", "seconds", "note")
        rows = [
            (
                g.region,
                g.log_group,
                str(len(g.streams)),
                str(g.findings),
                str(g.summaries),
                str(g.unparsed),
                f"{g.seconds:.2f}",
                g.skipped or "",
            )
            for g in self.groups
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])
        return "\n".join(line.rstrip() for line in lines)
