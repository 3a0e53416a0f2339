"""The "Specific Sharing APIs" limit (300 calls that change sharing per 5 minutes per app per tenant,
learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online):
the apply path reserves a place before each invite, createLink or grant removal, and the places taken outlive
the process, as the server's window does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from migrations.graph import sharepoint_window
from migrations.graph.sharepoint_window import SharePointBudget


async def test_sharing_calls_wait_for_a_place_and_the_window_outlives_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sharepoint_window, "SHARING_PER_APP", (100, 300.0))
    budget = SharePointBudget(window_dir=tmp_path / "run")
    for _ in range(99):  # 1% kept back, as for the resource units
        await budget.reserve_sharing("tenant")
        budget.settle_sharing("tenant")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(budget.reserve_sharing("tenant"), 0.2)
    assert await asyncio.wait_for(budget.reserve_sharing("other"), 0.2) == 0.0  # per tenant
    budget.save()
    again = SharePointBudget(window_dir=tmp_path / "run")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(again.reserve_sharing("tenant"), 0.2)
