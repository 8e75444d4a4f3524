"""`cd tests && python -m ruletest` runs the .ini cases; `--line TEXT` shows one line's outcome."""

from __future__ import annotations

import argparse
import sys

from .inicases import load_case_dir
from .project import CASES_DIR, project_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ruletest", description=__doc__)
    parser.add_argument("--line", help="one log line, as typed into wazuh-logtest")
    parser.add_argument("--location", default="stdin", help='the location (wazuh-logtest: "stdin")')
    args = parser.parse_args(argv)
    engine = project_engine()
    if args.line is not None:
        result = engine.logtest(args.line, args.location)
        print(f"decoder: {result.decoder!r}")
        for key, value in result.fields:
            print(f"  {key}: {value!r}")
        print(f"rule: {result.rule_id} level: {result.level} alert: {result.alert}")
        print(f"description: {result.description}")
        print(f"groups: {list(result.groups)} {result.compliance}")
        return 0
    failures = 0
    cases = load_case_dir(CASES_DIR)
    for case in cases:
        actual = engine.logtest(case.log).ut
        if not case.holds_for(actual):
            failures += 1
            print(f"FAIL {case.id}: expected {case.expected}, got {actual}")
    print(f"{len(cases) - failures}/{len(cases)} cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
