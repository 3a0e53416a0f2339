"""SharePoint's resource-unit budget, kept on the client so copies spend it without earning 429s.

Microsoft publishes the budget per app per tenant by licence count (1,250 / 2,500 / 3,750 / 5,000 / 6,250 RU
a minute for 0-1,000 / 1,001-5,000 / 5,001-15,000 / 15,001-50,000 / more) and the Graph costs: 1 RU to read
an item or download, a delta call with a token; 2 RU to list children, delta without a token, create,
update, delete or upload; 5 RU for permission operations. REST and CSOM calls count in the same budget and
"usually consume more"; no figure is published, so trustfold counts them at twice Graph's (REST_READ_RU,
REST_WRITE_RU), as the sandbox charges them.
(learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online)

Every call site spends through `spend()`: its units are reserved before the request is sent and stamped
when the answer is in (the identity write window's reserve-and-settle, docs/rate-limits.md), so requests in
flight always fit the budget. The server stays the authority: its throttled requests count towards usage,
so a 429 stamps the refused attempt's units at once (the retry, still in flight, spends them again), shrinks
the window and pauses the tenant for its Retry-After; RateLimit-* headers (sent from 80% of the minute) that
show more spent than this copy knows of are taken in before the next request is sent.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from migrations.graph.client import TenantConnection, WriteWindow

BY_LICENCES = ((1_000, 1_250), (5_000, 2_500), (15_000, 3_750), (50_000, 5_000))  # (most licences, RU)
LARGE = 6_250
WINDOW_S = 60.0
SHARING_PER_APP = (300, 300.0)  # "Specific Sharing APIs": requests per 5 minutes per app per tenant
REST_READ_RU = 2
REST_WRITE_RU = 4

# The spend a request is sent under (budget, tenant, units), so the connection's 429 hook knows what a
# refused attempt cost. Context variables follow each asyncio task: concurrent spends never mix.
_SPENDING: contextvars.ContextVar[tuple[SharePointBudget, str, int] | None] = contextvars.ContextVar(
    "sharepoint_spending", default=None
)


def ru_per_minute(licences: int) -> int:
    for most, ru in BY_LICENCES:
        if licences <= most:
            return ru
    return LARGE


def rest_ru(method: str) -> int:
    """Units a SharePoint REST call is counted at (see the module's note)."""
    return REST_READ_RU if method.upper() in ("GET", "HEAD") else REST_WRITE_RU


class SharePointWindow(WriteWindow):
    """The minute window, with what the server tells us beyond our own answers."""

    def charge(self, units: int) -> None:
        """Units the server counted with no reservation of ours (a refused attempt): stamped now."""
        self.sent.extend([self._clock()] * units)

    def align(self, limit: int, remaining: int) -> None:
        """The server's RateLimit headers: if it counts more units than this copy holds (answered plus in
        flight, all of which it may have admitted already), take the difference in, stamped now (the
        stricter guess: they leave one whole window from now)."""
        self._expire(self._clock())
        missing = (limit - remaining) - (len(self.sent) + self.in_flight)
        # The server's limit may be below ours (a smaller tenant than configured): follow it down.
        if limit < self.full:
            self.full = limit
            self.limit = min(self.limit, self.full)
        if missing > 0:
            self.charge(missing)


class SharePointBudget:
    """One sliding RU window per tenant."""

    def __init__(self, override: tuple[int, float] | None = None, window_dir: Path | None = None):
        self.override = override
        self.window_dir = window_dir
        self.windows: dict[str, SharePointWindow] = {}
        self.sharing: dict[str, WriteWindow] = {}
        self.spent: dict[str, int] = {}

    def _path(self, tenant_id: str) -> Path | None:
        return self.window_dir / f"sharepoint-window-{tenant_id}.json" if self.window_dir else None

    def save(self) -> None:
        """Units spent stay in the server's window after this process ends: the next command starts from them
        (as the identity write window does)."""
        for tid, window in self.windows.items():
            path = self._path(tid)
            if path is not None:
                window.save(path)  # owner-only, its folder made or tightened (WriteWindow.save)
        for tid, sharing in self.sharing.items():
            path = self._path(tid)
            if path is not None:
                sharing.save(path.with_name(f"sharing-window-{tid}.json"))

    async def prepare(self, conn: TenantConnection) -> None:
        if conn.tenant_id in self.windows:
            return
        if self.override:
            limit, seconds = self.override
        else:
            body = await conn.get("/subscribedSkus", {"$select": "skuPartNumber,prepaidUnits"})
            licences = sum(
                int((s.get("prepaidUnits") or {}).get("enabled", 0)) for s in body.get("value", [])
            )
            limit, seconds = ru_per_minute(licences), WINDOW_S
        # The whole budget: stamps taken at the answer are later than the server's own, so they never free a
        # slot early; units this copy cannot know of (another process, REST costs guessed low) come in by
        # the RateLimit headers and 429s (observe). Expiry: the window plus a little for the server's buckets.
        window = SharePointWindow(limit, seconds, headroom=1.0)
        window.expiry = seconds + 0.1
        path = self._path(conn.tenant_id)
        if path is not None:
            window.load(path)
        self.windows[conn.tenant_id] = window
        conn.sharepoint_hook = self.observe

    @asynccontextmanager
    async def spend(self, tenant_id: str, ru: int) -> AsyncIterator[float]:
        """Reserve `ru` units before the request(s) inside are sent, stamp them when the block ends (the
        answer is in, or the request given up); yields the seconds waited for room."""
        self.spent[tenant_id] = self.spent.get(tenant_id, 0) + ru
        window = self.windows.get(tenant_id)
        if window is None or ru <= 0:
            yield 0.0
            return
        waited = await window.reserve(ru)
        token = _SPENDING.set((self, tenant_id, ru))
        try:
            yield waited
        finally:
            _SPENDING.reset(token)
            window.settle(ru)

    @asynccontextmanager
    async def spend_sharing(self, tenant_id: str, ru: int) -> AsyncIterator[float]:
        """`spend` for a "Specific Sharing APIs" call: its resource units and one of the 300 sharing calls
        per 5 minutes, both reserved before sending and settled on the answer."""
        waited = await self.reserve_sharing(tenant_id)
        try:
            async with self.spend(tenant_id, ru) as more:
                yield waited + more
        finally:
            self.settle_sharing(tenant_id)

    def observe(self, tenant_id: str, status: int, headers: Mapping[str, str]) -> None:
        """A SharePoint answer's throttling news, from the connection: a 429 (the refused attempt spent its
        units) or RateLimit-* headers."""
        window = self.windows.get(tenant_id)
        if window is None:
            return
        if status == 429:
            window.throttled()
            spending = _SPENDING.get()
            if spending is not None and spending[0] is self and spending[1] == tenant_id:
                window.charge(spending[2])
                self.spent[tenant_id] = self.spent.get(tenant_id, 0) + spending[2]
        limit, remaining = headers.get("ratelimit-limit"), headers.get("ratelimit-remaining")
        if limit and remaining and limit.isdigit() and remaining.isdigit():
            window.align(int(limit), int(remaining))
        elif status != 429:
            window.recovered()

    def throttled(self, tenant_id: str) -> None:
        window = self.windows.get(tenant_id)
        if window:
            window.throttled()

    # ---- the "Specific Sharing APIs" limit -------------------------------------------------------------
    def _sharing(self, tenant_id: str) -> WriteWindow:
        """300 sharing calls (invite, createLink, removing a grant) per 5 minutes per app per tenant, beside
        the resource units (how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online). Its stamps are
        saved with the budget's: a resumed run starts inside the same server window."""
        window = self.sharing.get(tenant_id)
        if window is None:
            window = WriteWindow(*SHARING_PER_APP, headroom=0.99)
            window.expiry = SHARING_PER_APP[1] + 0.25
            path = self._path(tenant_id)
            if path is not None:
                window.load(path.with_name(f"sharing-window-{tenant_id}.json"))
            self.sharing[tenant_id] = window
        return window

    async def reserve_sharing(self, tenant_id: str) -> float:
        """Reserve one sharing call before sending it (it counts at once); `settle_sharing` when answered."""
        return await self._sharing(tenant_id).reserve(1)

    def settle_sharing(self, tenant_id: str) -> None:
        self._sharing(tenant_id).settle(1)
