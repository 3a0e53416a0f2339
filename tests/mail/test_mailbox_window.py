"""The Outlook windows (graph/mailbox_window.py) and the app's gate (graph/outlook_gate.py): each limit holds,
mailboxes are apart in their request and upload windows, and their requests in flight share the app's four.

No timings: the windows take a fake clock and a fake sleep that advances it, so every wait is computed; the
isolation test against the sandbox compares the order in which answers arrive."""

from __future__ import annotations

import asyncio
from typing import cast

import httpx
import pytest

from migrations.graph.client import TenantConnection, WriteWindow, app_id_of, open_connections
from migrations.graph.mailbox_window import (
    CONCURRENT,
    LIMITS_ENV,
    REQUESTS,
    UPLOAD_BYTES,
    ByteWindow,
    MailboxWindow,
    MailboxWindows,
)
from migrations.graph.outlook_gate import OutlookGates
from sandbox.testing import running_sandbox
from tests.identity.conftest import CONFIG
from tests.mail.conftest import ACADEMY
from trust import load_trust
from trust.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_the_published_limits() -> None:
    # learn.microsoft.com/graph/throttling-limits, "Outlook service limits".
    assert REQUESTS == (10_000, 600.0)
    assert CONCURRENT == 4
    assert UPLOAD_BYTES == (150 * 1024 * 1024, 300.0)


def test_bytes_beyond_the_window_wait_until_the_oldest_upload_leaves() -> None:
    clock = FakeClock()
    w = ByteWindow(100, 300.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        assert await w.reserve(60) == 0.0
        w.settle(60)
        clock.t += 10
        waited = await w.reserve(60)  # 120 > 100: waits until the first 60 expire (300 s after its stamp)
        assert waited >= 290.0
        assert clock.t - 1000.0 >= w.expiry

    asyncio.run(go())


def test_an_item_larger_than_the_window_goes_alone() -> None:
    clock = FakeClock()
    w = ByteWindow(100, 300.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        assert await w.reserve(500) == 0.0  # a 150 MB message in a window of 150 MB: never stuck

    asyncio.run(go())


def test_requests_beyond_the_ten_minute_budget_wait() -> None:
    clock = FakeClock()
    w = WriteWindow(3, 600.0, clock=clock, sleep=clock.sleep)

    async def go() -> None:
        for _ in range(3):
            await w.reserve(1)
            w.settle(1)
        assert await w.reserve(1) >= 600.0

    asyncio.run(go())


def connection(tenant: str, app: str, gates: OutlookGates) -> TenantConnection:
    """A connection that is never sent on: what the windows read of it is its app's gate."""
    return TenantConnection(
        tenant,
        "source",
        "http://unused",
        None,
        cast(httpx.AsyncClient, None),
        cast(httpx.AsyncClient, None),
        (10, 1.0),
        1.0,
        app_id=app,
        outlook_gates=gates,
    )


def test_at_most_four_requests_of_one_app_in_flight_across_its_mailboxes_and_tenants() -> None:
    """throttling-limits "Limits per app ID": four in flight whatever the mailboxes; another app its own."""
    windows = MailboxWindows()
    gates = OutlookGates()
    conns = {
        "a": connection("t1", "app-1", gates),
        "b": connection("t1", "app-1", gates),
        "c": connection("t2", "APP-1", gates),  # the same app in another tenant
        "d": connection("t2", "app-2", gates),
    }
    now = {"app-1": 0, "app-2": 0}

    async def call(box: str, release: asyncio.Event) -> None:
        app = "app-2" if box == "d" else "app-1"
        async with windows.of(box).slot(conns[box]):
            now[app] += 1
            await release.wait()
            now[app] -= 1

    async def go() -> None:
        release = asyncio.Event()
        tasks = [asyncio.create_task(call(b, release)) for b in "abcd" for _ in range(6)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert now == {"app-1": 4, "app-2": 4}  # app-1's three mailboxes share four; app-2 has its own
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert gates.of("app-1").peak == 4 and gates.of("app-2").peak == 4
    assert conns["a"].outlook_gate is conns["c"].outlook_gate is not conns["d"].outlook_gate
    assert windows.of("a") is not windows.of("b")


def test_a_paused_mailbox_holds_no_slot_of_its_app() -> None:
    """A mailbox waiting out its Retry-After (or its request window) waits outside the gate: with one slot,
    another mailbox of the app is sent meanwhile."""
    windows = MailboxWindows()
    conn = connection("t1", "app", OutlookGates())
    gate = conn.outlook_gate
    gate.limit = 1
    gate._free = asyncio.Semaphore(1)

    async def go() -> None:
        windows.of("a").throttle(600.0)
        paused = asyncio.create_task(_hold(windows.of("a"), conn))
        for _ in range(5):
            await asyncio.sleep(0)
        async with windows.of("b").slot(conn):
            assert gate.in_flight == 1 and not paused.done()
        paused.cancel()
        with pytest.raises(asyncio.CancelledError):
            await paused
        assert gate.in_flight == 0

    asyncio.run(go())


async def _hold(window: MailboxWindow, conn: TenantConnection) -> None:
    async with window.slot(conn):
        pass


def test_a_connection_counts_as_its_configured_app() -> None:
    trust = load_trust(CONFIG)
    target = trust.settings.tenant.credential
    assert app_id_of(target, None) == str(target.client_id).lower()
    source = trust.academy(ACADEMY).legacy_tenant.credential
    assert app_id_of(source, "http://127.0.0.1:1") == str(source.client_id).lower()


async def test_a_throttled_mailbox_does_not_hold_up_another_mailbox_of_the_same_tenant() -> None:
    """Mailbox A spends its request budget and is answered 429; mailbox B, on the same tenant connection,
    sends all its requests before A's retried one is answered, and the tenant itself is never paused."""
    budget = 4
    with running_sandbox(CONFIG, size=20, seed=3, mail_provision_delay_s=0.0) as url:
        world = url.world
        source = next(t["id"] for t in world.tenant_list() if t["academy"] == ACADEMY)
        boxes = httpx.get(f"{url}/sandbox/tenants/{source}/mail/mailboxes").json()["mailboxes"]
        a, b = (m["id"] for m in boxes[:2])
        # Retry-After is the rest of the 3 s window: B's requests (milliseconds each) are all in before it.
        r = httpx.post(f"{url}/sandbox/mail/limits", json={"outlook_requests": f"{budget}/3"})
        assert r.status_code == 200, r.text
        async with open_connections(load_trust(CONFIG), str(url), academies=(ACADEMY,)) as conns:
            conn = conns.source(ACADEMY)
            # The client's own window would avoid the 429 altogether: give it room so the server decides.
            windows = MailboxWindows(requests=(1000, 600.0))
            order: list[str] = []

            async def call(box: str) -> None:
                resp = await windows.of(box).request(conn, "GET", f"/admin/exchange/mailboxes/{box}/folders")
                assert resp.status == 200, resp.body
                order.append(box)

            for _ in range(budget):
                await call(a)
            order.clear()
            throttled_a = asyncio.create_task(call(a))
            for _ in range(500):  # until A's 429 is in (counted, not timed)
                if windows.of(a).throttled:
                    break
                await asyncio.sleep(0.01)
            assert windows.of(a).throttled == 1
            for _ in range(budget):
                await call(b)
            await throttled_a
        assert order == [b] * budget + [a]
        assert conn.stats.throttled == 0  # the tenant was never paused for A's 429
        assert world.mail_limiter.refused["MailboxRequests"] >= 1


def test_a_rehearsal_sets_the_client_windows_to_the_sandbox_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMITS_ENV, "requests=120/10, upload=4000000/5,concurrent=2")
    w = MailboxWindows().of("a")
    assert w.requests.limit < 120  # a little headroom under the request limit
    assert w.bytes.limit == 4_000_000
    assert OutlookGates().of("app").limit == 2  # the app's gate, not a mailbox's


def test_malformed_rehearsal_limits_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMITS_ENV, "requests=lots")
    with pytest.raises(ConfigError) as err:
        MailboxWindows()
    assert err.value.field == LIMITS_ENV
    assert str(err.value).count("\n") == 0 and "requests=lots" in str(err.value)


async def test_eight_mailboxes_at_once_stay_within_the_apps_four_at_the_sandbox() -> None:
    """Eight mailboxes of one source read at once, each request held by Exchange a while (mail_service_ms):
    the sandbox, counting four per app across mailboxes, never refuses one (MailboxConcurrency) and never
    holds more than four of the app; the app's four are all used."""
    with running_sandbox(CONFIG, size=20, seed=3, mail_provision_delay_s=0.0) as url:
        world = url.world
        source = next(t["id"] for t in world.tenant_list() if t["academy"] == ACADEMY)
        boxes = [
            m["id"] for m in httpx.get(f"{url}/sandbox/tenants/{source}/mail/mailboxes").json()["mailboxes"]
        ]
        assert len(boxes) >= 8
        r = httpx.post(f"{url}/sandbox/mail/limits", json={"mail_service_ms": 50})
        assert r.status_code == 200, r.text
        limiter = world.mail_limiter
        async with open_connections(load_trust(CONFIG), str(url), academies=(ACADEMY,)) as conns:
            conn = conns.source(ACADEMY)
            windows = MailboxWindows()
            seen: list[int] = []

            async def reads(box: str) -> None:
                for _ in range(3):
                    resp = await windows.of(box).request(
                        conn,
                        "GET",
                        f"/admin/exchange/mailboxes/{box}/folders",
                        sent=lambda: seen.append(limiter.in_flight(conn.app_id)),
                    )
                    assert resp.status == 200, resp.body

            await asyncio.gather(*(reads(b) for b in boxes[:8]))
        assert limiter.refused["MailboxConcurrency"] == 0
        assert sum(w.throttled for w in windows.windows.values()) == 0
        assert conn.outlook_gate.peak == 4  # the app's four were in use, never more
        assert max(seen) <= 4
