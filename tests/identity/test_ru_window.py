"""The client-side identity resource-unit window: Microsoft's cost table and tiers, waits, shrink and restore.

learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits
"""

from __future__ import annotations

import asyncio

import pytest

from migrations.graph import ru_window
from migrations.graph.ru_window import ResourceUnitWindow, identity_cost, tier_for


@pytest.mark.parametrize(
    ("method", "url", "cost"),
    [
        ("GET", "/users", 2),
        ("GET", "/users?$select=id", 1),
        ("GET", "/users/abc?$select=id,assignedLicenses", 1),
        ("GET", "/groups/g1/members?$select=id&$top=999", 2),
        ("GET", "/groups/g1/members", 3),
        ("GET", "/groups/g1?$expand=members", 2),
        ("GET", "/subscribedSkus", 3),
        ("GET", "/subscribedSkus?$select=skuId", 2),
        ("GET", "/domains/school.org.uk/domainNameReferences", 4),
        ("GET", "/applications/a1/extensionProperties", 2),
        ("GET", "/applications", 2),
        ("GET", "/groups/g1/transitiveMembers", 5),
        ("GET", "/domains/school.org.uk", 1),
        ("POST", "/users", 1),
        ("PATCH", "/groups/g1", 1),
        ("POST", "/groups/g1/assignLicense", 1),
        ("GET", "http://127.0.0.1:9/v1.0/users?$select=id&$skiptoken=x", 1),
        ("POST", "/$batch", 0),
        ("GET", "/drives/d1/root/children", 0),
        ("GET", "/users/u1/drive", 0),
        # Teams' own limits govern these (throttling-limits, "Microsoft Teams service limits").
        ("GET", "/teams/t1/channels", 0),
        ("PUT", "/groups/g1/team", 0),
        ("POST", "/teams/t1/channels/c1/messages", 0),
        ("GET", "/groups/g1", 1),
    ],
)
def test_cost_table(method: str, url: str, cost: int) -> None:
    assert identity_cost(method, url) == cost


def test_tiers_by_tenant_size() -> None:
    assert [tier_for(n) for n in (0, 49, 50, 500, 501, 40_000)] == [3500, 3500, 5000, 5000, 8000, 8000]


def test_window_follows_size_and_waits_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    slept: list[float] = []
    monkeypatch.setattr(ru_window.time, "monotonic", lambda: clock[0])
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)
        clock[0] += delay
        await real_sleep(0)

    monkeypatch.setattr(ru_window.asyncio, "sleep", fake_sleep)
    w = ResourceUnitWindow(headroom=1.0)
    assert w.limit == 3500 and w.needs_size()
    w.set_users(5, checked=True)
    assert not w.needs_size()

    async def go() -> None:
        assert await w.acquire(3500) == 0.0
        waited = await w.acquire(10)
        assert waited == pytest.approx(w.expiry + 0.001)  # until the first stamp leaves the window
        w.grew(600)  # the client created 600 users: the large tier
        assert w.limit == 8000
        assert await w.acquire(7890) == 0.0
        # A waiter sees a raised tier at once instead of sleeping out the old ceiling.
        w.set_users(10)
        start = clock[0]
        waiter = asyncio.create_task(w.acquire(100))
        await asyncio.sleep(0)
        w.set_users(5000)
        await waiter
        assert clock[0] - start < 1.0

    asyncio.run(go())
    assert slept
    w.grew(-4000)
    assert w.users == 1000 and w.limit == 8000
    w.throttled()
    assert w.limit == int(8000 * 0.8)
    w.set_users(5)  # back to a small tenant: the shrunk limit never exceeds the new tier
    assert w.limit <= 3500
    clock[0] += 60
    w.recovered()
    assert w.limit == w.full == 3500


def test_only_sharepoint_answers_reach_the_sharepoint_budget() -> None:
    """Teams paths cost nothing in the identity budget either, but their 429s are Teams'
    (graph/teams_window.py): handed to the SharePoint budget they would shrink its window for nothing."""
    import httpx

    from migrations.graph.client import GraphResponse, TenantConnection
    from migrations.graph.ru_window import is_sharepoint_path

    assert is_sharepoint_path("/drives/d1/root/children")
    assert is_sharepoint_path("http://127.0.0.1:9/v1.0/users/u1/drive/root")
    assert not is_sharepoint_path("/teams/t1/channels/c1/messages")
    assert not is_sharepoint_path("/$batch")
    base = "http://127.0.0.1:9/v1.0"
    conn = TenantConnection("t", "target", base, None, None, httpx.AsyncClient(), (1000, 1.0), 30.0)  # type: ignore[arg-type]
    heard: list[int] = []
    conn.sharepoint_hook = lambda tenant, status, headers: heard.append(status)
    refused = GraphResponse(429, {"retry-after": "1"}, None)
    assert not conn._sharepoint_news("POST", f"{base}/teams/t1/channels/c1/messages", refused)
    assert heard == []
    assert conn._sharepoint_news("GET", f"{base}/drives/d1/root/children", refused)
    assert heard == [429]
