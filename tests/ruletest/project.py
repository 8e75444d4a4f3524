"""Where this project's XML and cases live, and the stock fixtures they are evaluated with."""

from __future__ import annotations

from pathlib import Path

from .engine import Engine

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
RULES_DIR = REPO_ROOT / "rules"
DECODERS_DIR = REPO_ROOT / "decoders"
CASES_DIR = REPO_ROOT / "tests" / "rules"
FIXTURES_DIR = PACKAGE_DIR / "fixtures"
ID_RANGE = range(110200, 110300)


def project_rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.xml"))


def project_decoder_files() -> list[Path]:
    return sorted(DECODERS_DIR.glob("*.xml"))


def fixture_files(kind: str) -> list[Path]:
    return sorted(FIXTURES_DIR.glob(f"*_{kind}.xml"))


def project_engine() -> Engine:
    """Stock fixtures first (analysisd reads ruleset/ before etc/), then this project's files."""
    return Engine.load(
        fixture_files("decoders") + project_decoder_files(),
        fixture_files("rules") + project_rule_files(),
    )
