"""Sliding-window throttling with Microsoft's published budgets.

Identity and access (learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits):
resource units per 10 s per app + tenant by tenant size, 3,000 writes per 150 s per app + tenant and
18,000 writes per 5 min per tenant. SharePoint / OneDrive: resource units per minute per app + tenant by
licence count, plus a daily budget of 1,000 x the per-minute figure.

Only admitted requests consume budget: a throttled request is refused before it does any work, so a client
that honours Retry-After gets exactly the budget (which is what the throttle bench measures).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.settings import (
    IDENTITY_RU_WINDOW_S,
    SHAREPOINT_DAILY_FACTOR,
    SHAREPOINT_WINDOW_S,
    Budget,
    Settings,
    identity_ru_for_users,
    sharepoint_ru_for_licences,
)

Clock = Callable[[], float]


class SlidingWindow:
    """At most `limit` units in any `seconds`-long window; entries are merged into 1/1000-window buckets."""

    __slots__ = ("_entries", "_resolution", "limit", "seconds", "used")

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._resolution = seconds / 1000.0
        self._entries: deque[list[float]] = deque()  # [bucket start, units]
        self.used = 0.0

    def _expire(self, now: float) -> None:
        # A bucket leaves the window only when its last possible instant has: never admit above the limit.
        horizon = now - self.seconds
        entries = self._entries
        while entries and entries[0][0] + self._resolution <= horizon + 1e-9:
            self.used -= entries.popleft()[1]

    def wait_for(self, now: float, units: float) -> float:
        """Seconds until `units` fit (0 if they fit now)."""
        self._expire(now)
        if self.used + units <= self.limit:
            return 0.0
        if units > self.limit:
            return self.seconds
        need = self.used + units - self.limit
        freed = 0.0
        for start, amount in self._entries:
            freed += amount
            if freed >= need:
                return max(start + self._resolution + self.seconds - now, 0.001)
        return self.seconds

    def add(self, now: float, units: float) -> None:
        bucket = now - (now % self._resolution) if self._resolution > 0 else now
        if self._entries and self._entries[-1][0] == bucket:
            self._entries[-1][1] += units
        else:
            self._entries.append([bucket, units])
        self.used += units

    def percentage(self, now: float) -> float:
        self._expire(now)
        return 100.0 * self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class Decision:
    """The throttle's answer: retry_after None means admitted."""

    retry_after: float | None
    scope: str = ""
    information: str = ""
    limit_percentage: float = 0.0


class Throttle:
    """Budgets for every (tenant, app) pair; thread-safe so drive routes and tests may call it from
    anywhere."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = time.monotonic,
        user_count: Callable[[str], int | None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        # The tenant's size now (users), asked at every decision: the identity tier follows the tenant as it
        # grows or shrinks, as Microsoft's tiers are defined by tenant size, not by size at some start.
        self._user_count = user_count
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, ...], SlidingWindow] = {}
        self._tenant_users: dict[str, int] = {}
        self._tenant_licences: dict[str, int] = {}

    # Configuration -------------------------------------------------------------------------------------
    def configure(self, settings: Settings) -> None:
        """New budgets start with empty windows (as after a reset)."""
        with self._lock:
            self._settings = settings
            self._windows.clear()

    def set_tenant_size(self, tenant_id: str, users: int, licences: int) -> None:
        with self._lock:
            self._tenant_users[tenant_id] = users
            self._tenant_licences[tenant_id] = licences

    def identity_budget(self, tenant_id: str) -> Budget:
        s = self._settings
        if s.identity_ru is not None:
            return s.identity_ru
        users = self._user_count(tenant_id) if self._user_count else None
        if users is None:
            users = self._tenant_users.get(tenant_id, 0)
        return Budget(identity_ru_for_users(users), IDENTITY_RU_WINDOW_S)

    def sharepoint_budget(self, tenant_id: str) -> Budget:
        s = self._settings
        if s.sharepoint_ru is not None:
            return s.sharepoint_ru
        return Budget(
            sharepoint_ru_for_licences(self._tenant_licences.get(tenant_id, 0)), SHAREPOINT_WINDOW_S
        )

    def budgets(self, tenant_id: str) -> dict[str, str]:
        s = self._settings
        return {
            "identity_ru": str(self.identity_budget(tenant_id)),
            "writes": str(s.write_budget),
            "tenant_writes": str(s.tenant_write_budget),
            "sharepoint_ru": str(self.sharepoint_budget(tenant_id)),
        }

    def _window(self, key: tuple[str, ...], budget: Budget) -> SlidingWindow:
        w = self._windows.get(key)
        if w is None or w.seconds != budget.seconds:
            w = SlidingWindow(budget.limit, budget.seconds)
            self._windows[key] = w
        elif w.limit != budget.limit:
            # A tier change (the tenant grew) keeps what the window already holds: only the ceiling moves.
            w.limit = budget.limit
        return w

    # Charging -------------------------------------------------------------------------------------------
    def decide(self, tenant_id: str, kind: str, ru: int, write: bool, app_id: str = "app") -> Decision:
        """Admit (and consume) or refuse with the seconds to wait and the headers' values."""
        if kind not in ("identity", "sharepoint"):
            raise ValueError(f"unknown throttle kind {kind!r}")
        if not self._settings.throttling:
            return Decision(None)
        s = self._settings
        with self._lock:
            now = self._clock()
            checks: list[tuple[SlidingWindow, float, str, str]] = []
            if kind == "identity":
                checks.append(
                    (
                        self._window((tenant_id, app_id, "ru"), self.identity_budget(tenant_id)),
                        ru,
                        f"Tenant_Application/ReadWrite/{app_id}/{tenant_id}",
                        "ResourceUnitLimitExceeded",
                    )
                )
                if write:
                    checks.append(
                        (
                            self._window((tenant_id, app_id, "writes"), s.write_budget),
                            1,
                            f"Tenant_Application/Write/{app_id}/{tenant_id}",
                            "WriteLimitExceeded",
                        )
                    )
                    checks.append(
                        (
                            self._window((tenant_id, "*", "writes"), s.tenant_write_budget),
                            1,
                            f"Tenant/Write/{tenant_id}",
                            "WriteLimitExceeded",
                        )
                    )
            else:
                minute = self.sharepoint_budget(tenant_id)
                daily = Budget(minute.limit * SHAREPOINT_DAILY_FACTOR, 86_400.0)
                checks.append(
                    (
                        self._window((tenant_id, app_id, "sp"), minute),
                        ru,
                        f"Tenant_Application/SharePoint/{app_id}/{tenant_id}",
                        "ResourceUnitLimitExceeded",
                    )
                )
                checks.append(
                    (
                        self._window((tenant_id, app_id, "spday"), daily),
                        ru,
                        f"Tenant_Application/SharePointDaily/{app_id}/{tenant_id}",
                        "ResourceUnitLimitExceeded",
                    )
                )
            worst: tuple[float, str, str] | None = None
            for window, units, scope, info in checks:
                wait = window.wait_for(now, units)
                if wait > 0 and (worst is None or wait > worst[0]):
                    worst = (wait, scope, info)
            if worst is not None:
                # Kept to the millisecond here; the Retry-After header rounds up to whole seconds.
                retry = math.ceil(worst[0] * 1000) / 1000
                return Decision(retry, worst[1], worst[2], 100.0)
            pct = 0.0
            for window, units, _, _ in checks:
                window.add(now, units)
                pct = max(pct, window.percentage(now))
            return Decision(None, limit_percentage=pct)

    def decide_sharing(self, tenant_id: str, app_id: str = "app") -> Decision:
        """One call of the "Specific Sharing APIs" (300 per 5 minutes per app per tenant by default): admitted
        and counted, or refused with the seconds until the window frees."""
        if not self._settings.throttling:
            return Decision(None)
        with self._lock:
            now = self._clock()
            window = self._window((tenant_id, app_id, "sharing"), self._settings.sharing_api)
            wait = window.wait_for(now, 1)
            if wait > 0:
                return Decision(
                    math.ceil(wait * 1000) / 1000,
                    f"Tenant_Application/Sharing/{app_id}/{tenant_id}",
                    "RequestLimitExceeded",
                    100.0,
                )
            window.add(now, 1)
            return Decision(None, limit_percentage=window.percentage(now))

    def charge(self, tenant_id: str, kind: str, ru: int, write: bool, app_id: str = "app") -> float | None:
        """None when admitted, else the Retry-After seconds (fractional)."""
        return self.decide(tenant_id, kind, ru, write, app_id).retry_after

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()


def retry_after_header(seconds: float) -> str:
    """RFC 9110 section 10.2.3: Retry-After is delay-seconds, a non-negative whole number. Round up (never
    invite a retry before the budget frees) and send at least 1; real clients (rclone) reject fractions."""
    return str(max(1, math.ceil(seconds - 1e-9)))


def throttle_headers(decision: Decision, ru: int) -> dict[str, str]:
    """Headers Graph puts on answers: resource units always, the limit percentage above 80%, scope when
    refused."""
    headers = {"x-ms-resource-unit": str(ru)}
    if decision.retry_after is not None:
        headers["Retry-After"] = retry_after_header(decision.retry_after)
        headers["x-ms-throttle-scope"] = decision.scope
        headers["x-ms-throttle-information"] = decision.information
    elif decision.limit_percentage >= 80.0:
        headers["x-ms-throttle-limit-percentage"] = f"{decision.limit_percentage / 100:.1f}"
    return headers
