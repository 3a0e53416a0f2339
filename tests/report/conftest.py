"""Fixtures for the report tests: a state store filled as the engine fills it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_fixtures import fill

from migrations.core.store import StateStore


@pytest.fixture
def filled_store(tmp_path: Path) -> Iterator[StateStore]:
    store = StateStore.open(tmp_path / "state.db")
    fill(store)
    yield store
    store.close()
