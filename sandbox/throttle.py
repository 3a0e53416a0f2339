"""Sliding-window throttling with Microsoft's published budgets.

Identity and access (learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits):
resource units per 10 s per app + tenant by tenant size, 3,000 writes per 150 s per app + tenant and
18,000 writes per 5 min per tenant. SharePoint / OneDrive: resource units per minute per app + tenant by
licence count, per day per app + tenant, per 5 minutes per tenant (every app), and 400 GB an hour each way
per app + tenant (learn.microsoft.com/sharepoint/dev/general-development/
how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online).

SharePoint counts throttled requests too ("Throttled requests count towards usage limits, so failure to
honor Retry-After may result in more throttling"): a refused SharePoint request still spends its units, and
its Retry-After is reckoned after that, so a client that waits it out is admitted while one that retries
early pushes its own window further. Identity refusals spend nothing (Graph's identity page says no such
thing). When an app has used 80% of its minute, SharePoint answers carry RateLimit-Limit, -Remaining and
-Reset (IETF draft-03, as the same page describes); a refusal by any other limit carries none.
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
    SHAREPOINT_REST_RU_READ,
    SHAREPOINT_REST_RU_WRITE,
    SHAREPOINT_TENANT_FACTOR,
    SHAREPOINT_TENANT_WINDOW_S,
    SHAREPOINT_WINDOW_S,
    Budget,
    Settings,
    identity_ru_for_users,
    sharepoint_daily_for_licences,
    sharepoint_ru_for_licences,
    sharepoint_tenant_for_licences,
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

    def reset_in(self, now: float) -> float:
        """Seconds until the oldest units still counted leave the window (0 when it is empty)."""
        self._expire(now)
        if not self._entries:
            return 0.0
        return max(self._entries[0][0] + self._resolution + self.seconds - now, 0.0)

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
    # (limit, remaining, seconds to reset) of the app's SharePoint minute, sent as RateLimit-* headers.
    rate_limit: tuple[int, int, int] | None = None


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
        # SharePoint units admitted per tenant since start (all apps): benches read it to see how full the
        # budget was kept over time (GET /sandbox/settings, budgets).
        self._sp_admitted: dict[str, float] = {}

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

    def _licences(self, tenant_id: str) -> int:
        return self._tenant_licences.get(tenant_id, 0)

    def sharepoint_daily(self, tenant_id: str) -> Budget:
        s = self._settings
        if s.sharepoint_ru is not None:
            return Budget(s.sharepoint_ru.limit * SHAREPOINT_DAILY_FACTOR, 86_400.0)
        return Budget(sharepoint_daily_for_licences(self._licences(tenant_id)), 86_400.0)

    def sharepoint_tenant(self, tenant_id: str) -> Budget:
        s = self._settings
        if s.sharepoint_tenant_ru is not None:
            return s.sharepoint_tenant_ru
        if s.sharepoint_ru is not None:
            return Budget(
                s.sharepoint_ru.limit * SHAREPOINT_TENANT_FACTOR,
                s.sharepoint_ru.seconds * SHAREPOINT_TENANT_WINDOW_S / SHAREPOINT_WINDOW_S,
            )
        return Budget(sharepoint_tenant_for_licences(self._licences(tenant_id)), SHAREPOINT_TENANT_WINDOW_S)

    def budgets(self, tenant_id: str) -> dict[str, str]:
        s = self._settings
        return {
            "identity_ru": str(self.identity_budget(tenant_id)),
            "writes": str(s.write_budget),
            "tenant_writes": str(s.tenant_write_budget),
            "sharepoint_ru": str(self.sharepoint_budget(tenant_id)),
            "sharepoint_daily_ru": str(self.sharepoint_daily(tenant_id)),
            "sharepoint_tenant_ru": str(self.sharepoint_tenant(tenant_id)),
            "sharepoint_transfer": str(s.sharepoint_transfer),
            "sharepoint_ru_admitted": str(int(self._sp_admitted.get(tenant_id, 0))),
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
    def decide(
        self, tenant_id: str, kind: str, ru: int, write: bool, app_id: str = "app", ingress: int = 0
    ) -> Decision:
        """Admit (and consume) or refuse with the seconds to wait and the headers' values. `ingress`: the
        request body's declared size, for SharePoint's hourly ingress limit."""
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
                checks.extend(self._sharepoint_checks(tenant_id, app_id, ru))
            worst: tuple[float, str, str] | None = None
            for window, units, scope, info in checks:
                wait = window.wait_for(now, units)
                if wait > 0 and (worst is None or wait > worst[0]):
                    worst = (wait, scope, info)
            if worst is None and kind == "sharepoint":
                worst = self._transfer_refusal(tenant_id, now, ingress)
            if worst is not None:
                if kind == "sharepoint":
                    # Throttled SharePoint requests count towards usage: spend the units, then reckon when
                    # a retry of the same cost fits.
                    for window, units, _, _ in checks:
                        window.add(now, units)
                    worst = max(
                        ((w.wait_for(now, u), sc, inf) for w, u, sc, inf in checks if w.wait_for(now, u) > 0),
                        default=worst,
                        key=lambda t: t[0],
                    )
                # Kept to the millisecond here; the Retry-After header rounds up to whole seconds.
                retry = math.ceil(worst[0] * 1000) / 1000
                rate_limit = None
                if kind == "sharepoint" and worst[1] == checks[0][2]:
                    minute = checks[0][0]
                    rate_limit = (minute.limit, 0, int(retry_after_header(retry)))
                return Decision(retry, worst[1], worst[2], 100.0, rate_limit)
            pct = 0.0
            for window, units, _, _ in checks:
                window.add(now, units)
                pct = max(pct, window.percentage(now))
            rate_limit = None
            if kind == "sharepoint":
                self._sp_admitted[tenant_id] = self._sp_admitted.get(tenant_id, 0) + ru
                minute = checks[0][0]
                if minute.percentage(now) >= 80.0:
                    rate_limit = (
                        minute.limit,
                        max(0, int(minute.limit - minute.used)),
                        max(1, math.ceil(minute.reset_in(now) - 1e-9)),
                    )
            return Decision(None, limit_percentage=pct, rate_limit=rate_limit)

    def _sharepoint_checks(
        self, tenant_id: str, app_id: str, ru: int
    ) -> list[tuple[SlidingWindow, float, str, str]]:
        """The resource-unit windows a SharePoint request spends in; the app's minute first (the one the
        RateLimit headers describe)."""
        return [
            (
                self._window((tenant_id, app_id, "sp"), self.sharepoint_budget(tenant_id)),
                ru,
                f"Tenant_Application/SharePoint/{app_id}/{tenant_id}",
                "ResourceUnitLimitExceeded",
            ),
            (
                self._window((tenant_id, app_id, "spday"), self.sharepoint_daily(tenant_id)),
                ru,
                f"Tenant_Application/SharePointDaily/{app_id}/{tenant_id}",
                "ResourceUnitLimitExceeded",
            ),
            (
                self._window((tenant_id, "*", "sp5m"), self.sharepoint_tenant(tenant_id)),
                ru,
                f"Tenant/SharePoint/{tenant_id}",
                "ResourceUnitLimitExceeded",
            ),
        ]

    def _transfer_refusal(self, tenant_id: str, now: float, ingress: int) -> tuple[float, str, str] | None:
        """Ingress or egress spent for the hour: the request is refused until enough bytes leave. The
        sandbox keys bytes by tenant, not app, because pre-authenticated upload and download URLs carry no
        app (with one app a tenant, as trustfold runs, the two are the same; with more it is stricter)."""
        budget = self._settings.sharepoint_transfer
        for way, need in (("Ingress", max(ingress, 1)), ("Egress", 1)):
            window = self._window((tenant_id, "*", way.lower()), budget)
            # A body larger than the whole budget is judged by what is already spent, as no wait helps it.
            wait = window.wait_for(now, min(need, budget.limit))
            if wait > 0:
                return wait, f"Tenant_Application/{way}/{tenant_id}", f"{way}LimitExceeded"
        return None

    def decide_transfer(self, tenant_id: str, ingress: int) -> Decision:
        """A pre-authenticated upload or download (no resource units): refused while its tenant's hourly
        ingress or egress is spent."""
        if not self._settings.throttling:
            return Decision(None)
        with self._lock:
            worst = self._transfer_refusal(tenant_id, self._clock(), ingress)
        if worst is None:
            return Decision(None)
        return Decision(math.ceil(worst[0] * 1000) / 1000, worst[1], worst[2], 100.0)

    def record_transfer(self, tenant_id: str, bytes_in: int, bytes_out: int) -> None:
        """Bytes a SharePoint request carried in and out, once known."""
        if not self._settings.throttling or not (bytes_in or bytes_out):
            return
        budget = self._settings.sharepoint_transfer
        with self._lock:
            now = self._clock()
            if bytes_in:
                self._window((tenant_id, "*", "ingress"), budget).add(now, bytes_in)
            if bytes_out:
                self._window((tenant_id, "*", "egress"), budget).add(now, bytes_out)

    def spend_refused(self, tenant_id: str, ru: int, app_id: str = "app") -> None:
        """A SharePoint request refused by another limit (the sharing APIs') still spends its units."""
        if not self._settings.throttling:
            return
        with self._lock:
            now = self._clock()
            for window, units, _, _ in self._sharepoint_checks(tenant_id, app_id, ru):
                window.add(now, units)

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
                window.add(now, 1)  # a throttled call counts towards the limit it broke
                wait = window.wait_for(now, 1)
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


def rest_ru(method: str) -> int:
    """Resource units the sandbox charges a SharePoint REST call (see settings.SHAREPOINT_REST_RU_READ)."""
    return SHAREPOINT_REST_RU_READ if method.upper() in ("GET", "HEAD") else SHAREPOINT_REST_RU_WRITE


def throttle_headers(decision: Decision, ru: int) -> dict[str, str]:
    """Headers Graph puts on answers: resource units always, the limit percentage above 80%, scope when
    refused, RateLimit-* for the SharePoint minute at 80% and above."""
    headers = {"x-ms-resource-unit": str(ru)}
    if decision.rate_limit is not None:
        limit, remaining, reset = decision.rate_limit
        headers["RateLimit-Limit"] = str(limit)
        headers["RateLimit-Remaining"] = str(remaining)
        headers["RateLimit-Reset"] = str(reset)
    if decision.retry_after is not None:
        headers["Retry-After"] = retry_after_header(decision.retry_after)
        headers["x-ms-throttle-scope"] = decision.scope
        headers["x-ms-throttle-information"] = decision.information
    elif decision.limit_percentage >= 80.0:
        headers["x-ms-throttle-limit-percentage"] = f"{decision.limit_percentage / 100:.1f}"
    return headers
