"""What analysisd knows about one event while decoding and matching rules (a slice of Eventinfo)."""

from __future__ import annotations

from dataclasses import dataclass, field

# JSON keys the JSON decoder stores in static Eventinfo members instead of dynamic fields
# (fillData in json_decoder.c).
JSON_STATIC_KEYS = frozenset(
    {
        "srcip",
        "dstip",
        "dstport",
        "srcport",
        "protocol",
        "action",
        "srcuser",
        "dstuser",
        "id",
        "status",
        "command",
        "url",
        "data",
        "systemname",
    }
)


@dataclass
class Event:
    location: str
    full_log: str
    log: str
    program_name: str | None = None
    decoder: str | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    static: dict[str, str] = field(default_factory=dict)

    def find_field(self, name: str) -> str | None:
        """FindField: the first dynamic field whose key equals `name`, ignoring ASCII case."""
        wanted = name.lower()
        for key, value in self.fields:
            if key.lower() == wanted:
                return value
        return None
