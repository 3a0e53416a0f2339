"""The SharePoint budget's client window (docs/rate-limits.md): units reserved before a request and stamped
on its answer, a refused attempt's units counted (SharePoint counts throttled requests), RateLimit-* headers
taken in so the client slows before a 429, and REST calls counted at their cost."""

from __future__ import annotations

import asyncio

import pytest

from migrations.graph.client import open_connections
from migrations.graph.sharepoint_window import SharePointBudget, SharePointWindow, rest_ru
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG, TARGET
from trust import load_trust


async def test_units_stay_in_flight_until_the_answer_and_a_429_spends_them_again() -> None:
    budget = SharePointBudget((100, 60.0))
    budget.windows["t"] = window = SharePointWindow(100, 60.0)
    async with budget.spend("t", 2):
        assert window.in_flight == 2 and len(window.sent) == 0
        budget.observe("t", 429, {"retry-after": "3"})  # the refused attempt was counted by the server
        assert len(window.sent) == 2 and window.in_flight == 2  # the retry is still to come
    assert len(window.sent) == 4 and window.in_flight == 0
    assert budget.spent["t"] == 4
    assert window.limit < window.full  # shrunk until a quiet window passes


def test_rest_calls_cost_more_than_graph() -> None:
    assert rest_ru("GET") == 2 and rest_ru("POST") == 4


async def test_ratelimit_headers_bring_the_window_level_with_the_server() -> None:
    """Units spent outside this window (an earlier process whose window file is gone, another tool under the
    same app) show in RateLimit-Remaining from 80% of the minute: the window takes them in and waits instead
    of sending into a 429."""
    with running_sandbox(CONFIG, size=20, seed=5, sharepoint_ru="10/60") as url:
        async with open_connections(load_trust(CONFIG), str(url)) as conns:
            conn = conns.target
            budget = SharePointBudget((10, 60.0))
            await budget.prepare(conn)
            assert conn.tenant_id == TARGET
            for _ in range(8):  # not through the budget: it cannot know of these but by the headers
                resp = await conn.request("GET", "/sites", params={"search": "x"})
                assert resp.status == 200
            window = budget.windows[TARGET]
            assert len(window.sent) == 8  # RateLimit-Remaining: 2 on the eighth answer
            for _ in range(2):
                async with budget.spend(TARGET, 1):
                    assert (await conn.request("GET", "/sites", params={"search": "x"})).status == 200
            # 10 of 10 spent: the next unit waits for the window to turn.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5), budget.spend(TARGET, 1):
                    await conn.request("GET", "/sites", params={"search": "x"})
            assert conn.stats.throttled == 0
