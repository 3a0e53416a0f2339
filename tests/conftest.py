"""Test-wide settings. Randomised tests use a fixed seed in CI (`CI` set): Hypothesis derandomises, so a CI
run is reproducible. A seed given with `--hypothesis-seed` wins, also in CI, to try other seeds on purpose
(Hypothesis's own CI profile would otherwise ignore it: derandomize takes precedence over the seed)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("trustfold-ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile(
    "trustfold-seeded", derandomize=False, database=None, print_blob=True, deadline=None
)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--hypothesis-profile", None) is not None:
        return  # an explicit choice on the command line
    if config.getoption("--hypothesis-seed", None) is not None:
        settings.load_profile("trustfold-seeded")
    elif os.environ.get("CI"):
        settings.load_profile("trustfold-ci")
