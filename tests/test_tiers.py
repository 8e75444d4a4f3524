"""The tier marker set in conftest: a test that starts a process, directly or through helpers of its
module, is `integration`; a test that does not stays in the fast tier."""

from __future__ import annotations

import subprocess

import pytest
from conftest import INTEGRATION_NAMES, _names_any, run_cli


def _runs_the_cli() -> None:
    run_cli("--help")


def _two_helpers_down() -> None:
    _runs_the_cli()


def _in_a_comprehension() -> None:
    [subprocess.run(["true"], check=True) for _ in range(1)]


def _adds_one(x: int) -> int:
    return x + 1


def _in_process() -> None:
    assert _adds_one(1) == 2


# Looked up by name, so that the tests below do not name these functions (they would be marked too).
SAMPLES = {f.__name__: f for f in (_two_helpers_down, _in_a_comprehension, _in_process)}


@pytest.mark.parametrize(
    ("sample", "starts_a_process"),
    [
        ("_two_helpers_down", True),
        ("_in_a_comprehension", True),
        ("_in_process", False),
    ],
)
def test_a_process_is_found_through_the_helpers_of_the_module(sample, starts_a_process):
    assert _names_any(SAMPLES[sample], INTEGRATION_NAMES, set()) is starts_a_process


def test_these_tests_stay_in_the_fast_tier(request):
    mine = [item for item in request.session.items if item.path.name == "test_tiers.py"]
    assert mine and not [item.nodeid for item in mine if item.get_closest_marker("integration")]
