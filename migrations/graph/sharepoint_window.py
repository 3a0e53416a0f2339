"""SharePoint's resource-unit budget, kept on the client so copies spend it without earning 429s.

Microsoft publishes the budget per app per tenant by licence count (1,200 / 2,400 / 3,600 / 4,800 / 6,000 RU
a minute below 1k / 5k / 15k / 50k / above) and the costs: 1 RU to read an item or download, a delta call
with a token; 2 RU to list children, delta without a token, create, update, delete or upload.
(learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online)
The server stays the authority: a 429 still pauses the tenant for its Retry-After and shrinks the window.
"""

from __future__ import annotations

from pathlib import Path

from migrations.graph.client import TenantConnection, WriteWindow

BY_LICENCES = ((1_000, 1_200), (5_000, 2_400), (15_000, 3_600), (50_000, 4_800))
LARGE = 6_000
WINDOW_S = 60.0
SHARING_PER_APP = (300, 300.0)  # "Specific Sharing APIs": requests per 5 minutes per app per tenant


def ru_per_minute(licences: int) -> int:
    for below, ru in BY_LICENCES:
        if licences < below:
            return ru
    return LARGE


class SharePointBudget:
    """One sliding RU window per tenant."""

    def __init__(self, override: tuple[int, float] | None = None, window_dir: Path | None = None):
        self.override = override
        self.window_dir = window_dir
        self.windows: dict[str, WriteWindow] = {}
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
        for tid, window in self.sharing.items():
            path = self._path(tid)
            if path is not None:
                window.save(path.with_name(f"sharing-window-{tid}.json"))

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
        # SharePoint's window is exact and the sandbox's too: less padding than the identity window needs.
        window = WriteWindow(limit, seconds, headroom=0.99)
        window.expiry = seconds + 0.25
        path = self._path(conn.tenant_id)
        if path is not None:
            window.load(path)
        self.windows[conn.tenant_id] = window

    async def acquire(self, tenant_id: str, ru: int) -> float:
        self.spent[tenant_id] = self.spent.get(tenant_id, 0) + ru
        window = self.windows.get(tenant_id)
        return await window.acquire(ru) if window else 0.0

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
