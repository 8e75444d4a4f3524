"""A small, strict model of Wazuh 4.x analysisd for this project's decoders and rules.

It implements exactly the XML constructs the project's files (and the stock-parent fixtures) use,
with analysisd's semantics, and raises on anything else so a case can never pass by accident.
"""

from .engine import Engine, Result, predecode
from .errors import CaseFileError, RulesetError, UndefinedBehaviour, UnsupportedConstruct
from .inicases import Case, load_case_dir, load_cases
from .project import project_engine

__all__ = [
    "Case",
    "CaseFileError",
    "Engine",
    "Result",
    "RulesetError",
    "UndefinedBehaviour",
    "UnsupportedConstruct",
    "load_case_dir",
    "load_cases",
    "predecode",
    "project_engine",
]
