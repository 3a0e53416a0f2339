"""Tenant connections: one Graph client per tenant, one retry layer, Microsoft's throttling respected.

Every request goes through msgraph-sdk's GraphRequestAdapter (auth provider, default middleware, the SDK's
own RetryHandler switched off) so credentials and telemetry behave as with the SDK's request builders; the
single retry layer here (tenacity) honours Retry-After to the millisecond, pauses every worker of a tenant
while it is throttled, and never blindly re-sends a write whose outcome is unknown: it raises MaybeApplied so
the step reconciles by provenance marker instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.wait import wait_random_exponential

from migrations.graph.outlook_gate import OutlookGate, OutlookGates
from migrations.graph.ru_window import ResourceUnitWindow, identity_cost, is_sharepoint_path
from migrations.safety.private import write_private_text
from migrations.safety.redaction import register_secret
from trust.errors import ConfigError

if TYPE_CHECKING:
    from trust import Trust
    from trust.model import CredentialRef

log = logging.getLogger("trustfold.graph")
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MICROSOFT_GRAPH = "https://graph.microsoft.com"
MAX_BATCH = 20
DEFAULT_WRITE_BUDGET = (3000, 150.0)
MAX_TOTAL_WAIT = 600.0


def _version() -> str:
    try:
        return version("trustfold")
    except PackageNotFoundError:
        return "0"


USER_AGENT = f"NONISV|trustfold|trustfold/{_version()}"


@dataclass
class GraphResponse:
    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes = b""  # the bytes of an answer that is not JSON (a hosted content's $value)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_code(self) -> str:
        err = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        return str((err or {}).get("code", ""))

    @property
    def error_message(self) -> str:
        err = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        return str((err or {}).get("message", ""))

    @property
    def conflict(self) -> bool:
        """Graph's ObjectConflict: another object already holds this unique value."""
        err = (self.body or {}).get("error") if isinstance(self.body, dict) else None
        details = (err or {}).get("details") or []
        return (
            any(d.get("code") == "ObjectConflict" for d in details) or "already exist" in self.error_message
        )

    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after") or self.headers.get("Retry-After"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait. RFC 9110 allows delay-seconds or an HTTP-date; Graph's documentation shows fractions
    (2.128) while the service sends whole seconds: accept all three, never a negative wait."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN and infinities
        return None
    return max(0.0, seconds)


class GraphError(Exception):
    def __init__(self, method: str, path: str, response: GraphResponse):
        self.response = response
        super().__init__(
            f"{method} {path}: {response.status} {response.error_code} {response.error_message}".strip()
        )


class MaybeApplied(Exception):
    """A write whose answer was lost (504, dropped connection): reconcile before sending it again."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(reason)


# Raised by callers of TenantConnection.retrying() (pre-authenticated download and upload URLs) for an
# attempt worth repeating; the same class the request layer uses, so there is one retry policy.
Transient = _Retryable


@dataclass
class BatchItem:
    method: str
    url: str  # relative to the version root, e.g. "/users"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)

    @property
    def is_write(self) -> bool:
        return self.method.upper() != "GET"


@dataclass
class ConnectionStats:
    requests: int = 0
    writes: int = 0
    throttled: int = 0
    wait_seconds: float = 0.0
    failures: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "writes": self.writes,
            "throttled": self.throttled,
            "wait_seconds": round(self.wait_seconds, 3),
            "failures": self.failures,
        }


class WriteWindow:
    """Client-side copy of the tenant's sliding write window, so we spend the budget without earning 429s.

    A write is reserved before it is sent (it counts at once) and stamped when its answer arrives: the
    server admitted it at some instant before answering, so a stamp taken then never frees a slot before
    the server's window has. That is what lets the client use the whole budget with only a small margin (the
    server's window is kept in coarse buckets); stamping at send time instead needs padding as long as the
    slowest answer, which leaves the budget idle at every window turn.

    Other apps share the tenant's budget, so the server may still throttle: then Retry-After rules and the
    window shrinks (at most once a second, never below half), and it is restored once a whole window passes
    without a 429. Stamps are saved between processes: the server's window outlives ours.
    """

    def __init__(
        self,
        limit: int,
        seconds: float,
        headroom: float = 1.0,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.full = max(1, int(limit * headroom))
        self.limit = self.full
        self.seconds = seconds
        self.expiry = seconds + seconds / 200 + 0.05
        self.sent: deque[float] = deque()  # answered writes, oldest first
        self.in_flight = 0  # reserved, not yet answered: they count and cannot expire
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._last_throttle = -1e9

    def _expire(self, now: float) -> None:
        while self.sent and now - self.sent[0] >= self.expiry:
            self.sent.popleft()

    async def reserve(self, n: int = 1) -> float:
        """Wait until `n` more writes fit, and count them as in flight; the seconds waited. Call `settle(n)`
        once their answers (or failures) are in."""
        _, waited = await self.reserve_some(n, patience=float("inf"))
        return waited

    async def reserve_some(self, n: int, patience: float = 0.5) -> tuple[int, float]:
        """Like `reserve(n)`, but when all `n` would fit only after more than `patience` seconds and some fit
        now, take those: (writes granted, seconds waited). A $batch then sends what fits now and the rest
        later, rather than leaving free budget unused while it waits for the last slot."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                used = len(self.sent) + self.in_flight
                free = self.limit - used
                if free >= n or used == 0:
                    self.in_flight += n
                    return n, waited
                excess = n - free
                if excess <= len(self.sent):
                    delay = self.expiry - (now - self.sent[excess - 1]) + 0.001
                else:
                    delay = 0.05  # only answers still to come can free room: look again shortly
                if free > 0 and delay > patience:
                    self.in_flight += free
                    return free, waited
                waited += delay
                await self._sleep(delay)

    def settle(self, n: int = 1) -> None:
        """`n` reserved writes were answered (or given up on): they leave the window one window from now."""
        n = min(n, self.in_flight)
        self.in_flight -= n
        self.sent.extend([self._clock()] * n)

    async def acquire(self, n: int = 1) -> float:
        """Reserve and stamp at once (units whose answer time is not tracked); the seconds waited."""
        waited = await self.reserve(n)
        self.settle(n)
        return waited

    def load(self, path: Path) -> None:
        """Writes an earlier process made still count in the server's window: start from them."""
        try:
            stamps = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        now = self._clock()
        old = [t for t in stamps if isinstance(t, int | float) and now - t < self.expiry]
        self.sent = deque(sorted([*old, *self.sent]))

    def save(self, path: Path) -> None:
        now = self._clock()
        recent = [t for t in self.sent if now - t < self.expiry] + [now] * self.in_flight
        write_private_text(path, json.dumps(recent))

    def throttled(self) -> None:
        now = self._clock()
        if now - self._last_throttle >= 1.0:
            self.limit = max(self.full // 2, int(self.limit * 0.8), 1)
        self._last_throttle = now

    def recovered(self) -> None:
        if self.limit < self.full and self._clock() - self._last_throttle > self.seconds:
            self.limit = self.full


class TenantConnection:
    def __init__(
        self,
        tenant_id: str,
        role: str,
        base_url: str,
        adapter: Any,
        http: httpx.AsyncClient,
        raw_http: httpx.AsyncClient,
        write_budget: tuple[int, float],
        max_total_wait: float,
        app_id: str = "",
        outlook_gates: OutlookGates | None = None,
    ):
        self.tenant_id = tenant_id
        # The app (client id) this connection authenticates as: Outlook's concurrency is counted per app,
        # across tenants, so connections of one app share its gate (graph.outlook_gate).
        self.app_id = app_id or f"tenant:{tenant_id}"
        self._outlook_gates = outlook_gates if outlook_gates is not None else OutlookGates()
        self.role = role
        self.base_url = base_url.rstrip("/")
        self.adapter = adapter
        self._http = http
        self.http = raw_http
        self.writes = WriteWindow(*write_budget)
        # The identity resource-unit budget, kept client-side too (TRUSTFOLD_IDENTITY_RU_WINDOW=off only to
        # measure what it saves): raising the write budget must not turn into a stream of 429s.
        self.ru = ResourceUnitWindow()
        self.ru_enabled = os.environ.get("TRUSTFOLD_IDENTITY_RU_WINDOW", "on").lower() != "off"
        self._sizing = False
        self.stats = ConnectionStats()
        self.max_total_wait = max_total_wait
        self._paused_until = 0.0
        # Set by the SharePoint budget (graph.sharepoint_window) that spends for this tenant: told of every
        # SharePoint 429 and RateLimit-* header, which its window takes in.
        self.sharepoint_hook: Callable[[str, int, Mapping[str, str]], None] | None = None

    # ---- transport --------------------------------------------------------------------------------------
    @property
    def outlook_gate(self) -> OutlookGate:
        """This app's Outlook concurrency gate (shared with every connection of the same app)."""
        return self._outlook_gates.of(self.app_id)

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, quote_via=quote, safe="$,'()/:")
        return url

    def relative(self, url: str) -> str:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else url

    async def _pause(self) -> None:
        delay = self._paused_until - time.time()
        if delay > 0:
            self.stats.wait_seconds += delay
            await asyncio.sleep(delay)

    def _throttled(
        self, retry_after: float | None, headers: dict[str, str] | None = None, sharepoint: bool = False
    ) -> None:
        self.stats.throttled += 1
        reset = (headers or {}).get("ratelimit-reset", "")
        if reset.isdigit() and (retry_after is None or int(reset) > retry_after):
            retry_after = float(reset)  # SharePoint: "honor the greater of the two values"
        # A SharePoint 429 went to its own window (sharepoint_hook): the identity windows are not its.
        if not sharepoint:
            if "ResourceUnit" in (headers or {}).get("x-ms-throttle-information", ""):
                self.ru.throttled()
            else:
                self.writes.throttled()
        if retry_after:
            # One pause for every worker of this tenant: throttled requests still count against the budget.
            self._paused_until = max(self._paused_until, time.time() + retry_after)

    async def _refresh_size(self) -> None:
        """The tenant's user count, for the identity RU tier (1 RU; failures keep the smallest tier)."""
        self._sizing = True
        try:
            url = self.url("/users", {"$count": "true", "$top": 1, "$select": "id"})
            resp = await self._send_once("GET", url, None, {"ConsistencyLevel": "eventual"}, cost=1)
            count = resp.body.get("@odata.count") if resp.ok and isinstance(resp.body, dict) else None
            if isinstance(count, int):
                self.ru.set_users(count, checked=True)
            else:
                self.ru.checked_at = time.monotonic()
        except (httpx.TransportError, httpx.StreamError):
            self.ru.checked_at = time.monotonic()
        finally:
            self._sizing = False

    def _count_users(self, method: str, url: str, status: int) -> None:
        """Keep the RU tier's user count current from this client's own creates and deletes."""
        path = self.relative(url).split("?", 1)[0]
        if method == "POST" and status == 201 and path == "/users":
            self.ru.grew(1)
        elif method == "DELETE" and status == 204 and path.startswith("/users/"):
            self.ru.grew(-1)

    async def _send_once(
        self,
        method: str,
        url: str,
        body: Any,
        headers: dict[str, str] | None,
        content: bytes | None = None,
        cost: int | None = None,
        pause: bool = True,
        gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> GraphResponse:
        from kiota_abstractions.method import Method
        from kiota_abstractions.request_information import RequestInformation
        from opentelemetry import trace

        if pause:
            await self._pause()
        units = identity_cost(method, self.relative(url)) if cost is None else cost
        if units and self.ru_enabled:
            if not self._sizing and self.ru.needs_size():
                await self._refresh_size()
            self.stats.wait_seconds += await self.ru.acquire(units)
        info = RequestInformation()
        info.http_method = Method[method.upper()]
        info.url = url
        info.headers.try_add("User-Agent", USER_AGENT)
        info.headers.try_add("x-ms-throttle-priority", "Low")
        for k, v in (headers or {}).items():
            info.headers.try_add(k, v)
        if body is not None:
            info.headers.try_add("Content-Type", "application/json")
            info.content = json.dumps(body).encode()
        elif content is not None:
            info.headers.try_add("Content-Type", "application/octet-stream")
            info.content = content
        self.stats.requests += 1
        span = trace.get_current_span()
        # The gate (Outlook's per-app concurrency) is held only while the request is on the wire: the pause
        # and resource-unit waits above, and any retry back-off, never sit on a slot.
        async with gate() if gate is not None else nullcontext():
            resp: httpx.Response = await self.adapter.get_http_response_message(info, span)
            try:
                answer = resp.content
                parsed: Any = (
                    json.loads(answer) if answer and "json" in resp.headers.get("content-type", "") else None
                )
            finally:
                await resp.aclose()
        self._count_users(method.upper(), url, resp.status_code)
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return GraphResponse(resp.status_code, headers, parsed, answer if parsed is None else b"")

    def _sharepoint_news(self, method: str, url: str, resp: GraphResponse) -> bool:
        """Hand a SharePoint answer's throttling news to the SharePoint budget; whether it was SharePoint's
        (not a $batch envelope, nor a Teams path, which also cost nothing in the identity budget)."""
        rel = self.relative(url).split("?", 1)[0]
        sharepoint = is_sharepoint_path(rel)
        hook = self.sharepoint_hook
        if hook is not None and sharepoint and (resp.status == 429 or "ratelimit-limit" in resp.headers):
            hook(self.tenant_id, resp.status, resp.headers)
        return sharepoint

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = wait_random_exponential(multiplier=0.5, max=30)(state)
        self.stats.wait_seconds += delay
        return delay

    def retrying(self, attempts: int = 12) -> AsyncRetrying:
        """This connection's retry policy (Retry-After honoured, else jittered backoff; waits counted in
        stats) for work the request layer cannot carry, such as pre-authenticated transfer URLs: raise
        Transient inside an attempt to repeat it; after the last attempt the Transient is re-raised."""
        return AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            reraise=True,
            stop=stop_after_delay(self.max_total_wait) | stop_after_attempt(attempts),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        counts_as_write: bool = True,
        content: bytes | None = None,
        own_throttling: bool = False,
        gate: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> GraphResponse:
        """Send one request; 4xx answers are returned (callers decide), throttling and 5xx are retried.

        gate: held around each attempt's send only (e.g. OutlookGate.held), never across a retry's wait.

        own_throttling: the caller keeps its own limits (Outlook's are per mailbox: graph.mailbox_window), so
        a 429 (or 503 with Retry-After) is handed back untouched, neither retried here nor pausing the tenant,
        and the request neither waits out the tenant's pause nor spends the identity resource units."""
        method = method.upper()
        idempotent = method in ("GET", "PUT", "DELETE", "PATCH") if idempotent is None else idempotent
        url = self.url(path, params)
        reserved = 0
        if method != "GET" and counts_as_write:
            self.stats.wait_seconds += await self.writes.reserve(1)
            reserved = 1
            self.stats.writes += 1
        try:
            try:
                async for attempt in self.retrying():
                    with attempt:
                        try:
                            resp = await self._send_once(
                                method,
                                url,
                                json,
                                headers,
                                content,
                                cost=0 if own_throttling else None,
                                pause=not own_throttling,
                                gate=gate,
                            )
                        except (httpx.TransportError, httpx.StreamError) as exc:
                            if not idempotent:
                                raise MaybeApplied(
                                    f"{method} {path}: connection lost ({type(exc).__name__})"
                                ) from exc
                            raise _Retryable(f"transport error {type(exc).__name__}") from exc
                        throttled = resp.status == 429 or (
                            resp.status == 503 and resp.retry_after() is not None
                        )
                        if own_throttling and throttled:
                            return resp
                        sharepoint = self._sharepoint_news(method, url, resp)
                        if throttled:
                            # Throttled and unavailable-with-Retry-After requests were not processed: resend.
                            self._throttled(resp.retry_after(), resp.headers, sharepoint)
                            raise _Retryable(f"throttled ({resp.status})", resp.retry_after())
                        if resp.status in (500, 502, 503, 504):
                            if not idempotent:
                                raise MaybeApplied(f"{method} {path}: {resp.status} {resp.error_code}")
                            raise _Retryable(f"server error {resp.status}", resp.retry_after())
                        self.writes.recovered()
                        self.ru.recovered()
                        return resp
            except _Retryable as exc:
                self.stats.failures += 1
                raise GraphError(
                    method,
                    path,
                    GraphResponse(599, {}, {"error": {"code": "retriesExhausted", "message": str(exc)}}),
                ) from exc
            raise AssertionError("unreachable")
        finally:
            self.writes.settle(reserved)  # stamped when its answer is in (or it was given up)

    async def get(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        resp = await self.request("GET", path, params=params, headers=headers)
        if not resp.ok:
            raise GraphError("GET", path, resp)
        return resp.body

    async def pages(
        self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        body = await self.get(path, params, headers)
        while True:
            for item in body.get("value", []):
                yield item
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            body = await self.get(next_link, headers=headers)

    async def batch(self, items: list[BatchItem]) -> list[GraphResponse | MaybeApplied]:
        """Send up to 20 requests as one $batch; throttled items are re-sent after their own Retry-After.

        A write item answered 5xx, or every write item when the envelope itself was lost, comes back as a
        MaybeApplied instance for the caller to reconcile.
        """
        if len(items) > MAX_BATCH:
            raise ValueError(f"a $batch holds at most {MAX_BATCH} requests")
        results: dict[int, GraphResponse | MaybeApplied] = {}
        pending = list(range(len(items)))
        deadline = time.time() + self.max_total_wait
        while pending:
            writes = sum(1 for i in pending if items[i].is_write)
            later: list[int] = []
            if writes:
                if any(items[i].depends_on for i in pending):
                    granted = writes  # a dependency chain goes whole, in one request
                    self.stats.wait_seconds += await self.writes.reserve(writes)
                else:
                    granted, waited = await self.writes.reserve_some(writes)
                    self.stats.wait_seconds += waited
                if granted < writes:
                    # Send the writes that fit now; the rest go in the next round, as soon as they fit.
                    later = [i for i in pending if items[i].is_write][granted:]
                    pending = [i for i in pending if i not in later]
                    writes = granted
                self.stats.writes += writes
            try:
                units = sum(identity_cost(items[i].method, items[i].url) for i in pending)
                if units and self.ru_enabled:
                    if not self._sizing and self.ru.needs_size():
                        await self._refresh_size()
                    self.stats.wait_seconds += await self.ru.acquire(units)
                body = {"requests": [self._batch_entry(str(i), items[i], pending) for i in pending]}
                envelope = await self.request(
                    "POST", "/$batch", json=body, idempotent=not writes, counts_as_write=False
                )
            except MaybeApplied as exc:
                for i in pending:
                    results[i] = exc if items[i].is_write else GraphResponse(599, {}, None)
                pending = later  # not sent yet: they go as usual
                continue
            finally:
                self.writes.settle(writes)  # the items were admitted (or refused) before the answer came
            if not envelope.ok:
                raise GraphError("POST", "/$batch", envelope)
            by_id = {r["id"]: r for r in envelope.body.get("responses", [])}
            retry: list[int] = []
            wait = 0.0
            for i in pending:
                r = by_id.get(str(i))
                resp = (
                    GraphResponse(
                        int(r["status"]),
                        {k.lower(): v for k, v in (r.get("headers") or {}).items()},
                        r.get("body"),
                    )
                    if r
                    else GraphResponse(599, {}, None)
                )
                blocked = resp.status == 424 and any(d in retry for d in self._deps(items[i]))
                self._count_users(items[i].method.upper(), items[i].url, resp.status)
                if resp.status == 429 or blocked:
                    if resp.status == 429:
                        self._throttled(resp.retry_after(), resp.headers)
                        wait = max(wait, resp.retry_after() or 1.0)
                    retry.append(i)
                elif resp.status in (500, 502, 503, 504) and items[i].is_write:
                    results[i] = MaybeApplied(f"{items[i].method} {items[i].url}: {resp.status} in $batch")
                else:
                    results[i] = resp
            pending = sorted(retry + later)
            if pending:
                if time.time() + wait > deadline:
                    for i in pending:
                        results[i] = GraphResponse(429, {}, {"error": {"code": "retriesExhausted"}})
                    break
                self.stats.wait_seconds += wait
                await asyncio.sleep(wait)
        return [results[i] for i in range(len(items))]

    @staticmethod
    def _deps(item: BatchItem) -> list[int]:
        return [int(d) for d in item.depends_on if d.isdigit()]

    @staticmethod
    def _batch_entry(key: str, item: BatchItem, pending: list[int]) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": key, "method": item.method.upper(), "url": item.url}
        headers = dict(item.headers)
        if item.body is not None:
            headers.setdefault("Content-Type", "application/json")
            entry["body"] = item.body
        if headers:
            entry["headers"] = headers
        deps = [d for d in item.depends_on if d.isdigit() and int(d) in pending]
        if deps:
            entry["dependsOn"] = deps
        return entry


def _check_key_file(path: str, env: str, tenant_id: str) -> None:
    """The PEM file holds the app's private key: others on the machine must not be able to read it."""
    try:
        mode = os.stat(path).st_mode & 0o077
    except OSError as exc:
        raise ConfigError(
            None,
            f"environment variable {env} names {path}, which cannot be read for tenant {tenant_id}: "
            f"{exc.strerror}",
            field="credential.certificate_path_env",
        ) from None
    if mode:
        raise ConfigError(
            None,
            f"environment variable {env} names {path}, which holds tenant {tenant_id}'s private key and is "
            f"readable by others (mode {oct(mode)}); make it owner-only: chmod 600 {path}",
            field="credential.certificate_path_env",
        )


def _credential(ref: CredentialRef, tenant_id: str, graph_url: str | None) -> Any:
    if graph_url:
        from migrations.graph.sandbox_credential import AsyncSandboxCredential

        # A certificate credential authenticates with a signed assertion the sandbox verifies (SharePoint
        # REST refuses app-only tokens obtained with a secret): the configured PEM file when there is one,
        # as in production, else a throwaway key made for the rehearsal.
        certificate = ref.kind.value == "certificate"
        path = os.environ.get(ref.certificate_path_env or "") if certificate else None
        if path:
            _check_key_file(path, ref.certificate_path_env or "", tenant_id)
        try:
            return AsyncSandboxCredential(
                graph_url,
                tenant_id,
                *([ref.client_id] if ref.client_id else []),
                certificate=certificate,
                certificate_path=path or None,
            )
        except ValueError as exc:
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise ConfigError(
                None,
                f"environment variable {ref.certificate_path_env} names {path}, which is not a usable "
                f"certificate for tenant {tenant_id} (a PEM file holding the certificate and its unencrypted "
                f"private key): {reason}",
                field="credential.certificate_path_env",
            ) from None
    kind = ref.kind.value
    if not ref.client_id:
        raise ConfigError(
            None, f"a {kind} credential needs client_id (tenant {tenant_id})", field="credential.client_id"
        )
    if kind == "client_secret":
        secret = os.environ.get(ref.secret_env or "")
        if not secret:
            raise ConfigError(
                None,
                f"environment variable {ref.secret_env} (client secret for tenant {tenant_id}) is not set",
                field="credential.secret_env",
            )
        register_secret(secret)
        from azure.identity.aio import ClientSecretCredential

        return ClientSecretCredential(tenant_id, ref.client_id, secret)
    if kind == "certificate":
        path = os.environ.get(ref.certificate_path_env or "")
        if not path or not os.path.isfile(path):
            raise ConfigError(
                None,
                f"environment variable {ref.certificate_path_env} must name a PEM certificate "
                f"file for tenant {tenant_id}",
                field="credential.certificate_path_env",
            )
        from azure.identity.aio import CertificateCredential

        try:
            credential = CertificateCredential(tenant_id, ref.client_id, certificate_path=path)
        except ValueError as exc:
            # azure-identity reads the file here and raises a bare ValueError (wrong format, no private key,
            # encrypted): bad input, so say which tenant, which variable and which file.
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise ConfigError(
                None,
                f"environment variable {ref.certificate_path_env} names {path}, which is not a usable "
                f"certificate for tenant {tenant_id} (a PEM file holding the certificate and its unencrypted "
                f"private key, or PKCS12): {reason}",
                field="credential.certificate_path_env",
            ) from None
        _check_key_file(path, ref.certificate_path_env or "", tenant_id)
        return credential
    if kind == "managed_identity":
        from azure.identity.aio import ManagedIdentityCredential

        return (
            ManagedIdentityCredential(client_id=ref.client_id)
            if ref.client_id
            else ManagedIdentityCredential()
        )
    from azure.identity.aio import AzureCliCredential

    return AzureCliCredential(tenant_id=tenant_id)


def app_id_of(ref: CredentialRef, graph_url: str | None) -> str:
    """The app a credential authenticates as, as Graph counts it (the token's appid). Without a client id:
    the sandbox credential's default app in a rehearsal; otherwise the credential kind, one app wherever it is
    used (Azure CLI signs in as Microsoft's one CLI app), the stricter reading for a shared limit."""
    if ref.client_id:
        return str(ref.client_id).lower()
    if graph_url:
        from migrations.graph.sandbox_credential import DEFAULT_CLIENT_ID

        return DEFAULT_CLIENT_ID
    return f"credential:{ref.kind.value}"


class Connections:
    def __init__(
        self,
        trust: Trust,
        graph_url: str | None,
        write_budget: tuple[int, float],
        max_total_wait: float,
        window_dir: Path | None = None,
    ):
        self.window_dir = window_dir
        self.trust = trust
        self.graph_url = graph_url.rstrip("/") if graph_url else None
        self.write_budget = write_budget
        self.max_total_wait = max_total_wait
        self._open: dict[str, TenantConnection] = {}
        self.outlook_gates = OutlookGates()  # one per app id, across the source and target connections
        self._closers: list[Any] = []
        self.raw_http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64),
        )

    @property
    def target(self) -> TenantConnection:
        t = self.trust.settings.tenant
        return self._connect(t.id, "target", t.credential)

    def source(self, academy_code: str) -> TenantConnection:
        a = self.trust.academy(academy_code)
        return self._connect(a.legacy_tenant.id, "source", a.legacy_tenant.credential)

    def all(self) -> list[TenantConnection]:
        return list(self._open.values())

    def _connect(self, tenant_id: str, role: str, ref: CredentialRef) -> TenantConnection:
        if tenant_id in self._open:
            return self._open[tenant_id]
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph import GraphRequestAdapter
        from msgraph_core import GraphClientFactory

        credential = _credential(ref, tenant_id, self.graph_url)
        host = httpx.URL(self.graph_url).host if self.graph_url else "graph.microsoft.com"
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(
                timeout=httpx.Timeout(120.0, connect=10.0), limits=httpx.Limits(max_connections=32)
            ),
            options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)},
        )
        adapter = GraphRequestAdapter(auth, client=http)
        base = f"{self.graph_url or MICROSOFT_GRAPH}/v1.0"
        adapter.base_url = base
        conn = TenantConnection(
            tenant_id,
            role,
            base,
            adapter,
            http,
            self.raw_http,
            self.write_budget,
            self.max_total_wait,
            app_id=app_id_of(ref, self.graph_url),
            outlook_gates=self.outlook_gates,
        )
        if self.window_dir is not None:
            conn.writes.load(self.window_dir / f"write-window-{tenant_id}.json")
        self._open[tenant_id] = conn
        self._closers.extend([http.aclose, getattr(credential, "close", None)])
        return conn

    async def aclose(self) -> None:
        if self.window_dir is not None:
            for tid, conn in self._open.items():
                conn.writes.save(self.window_dir / f"write-window-{tid}.json")
        for close in self._closers:
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.debug("close failed", exc_info=True)
        await self.raw_http.aclose()


@asynccontextmanager
async def open_connections(
    trust: Trust,
    graph_url: str | None,
    *,
    write_budget: tuple[int, float] = DEFAULT_WRITE_BUDGET,
    max_total_wait: float = MAX_TOTAL_WAIT,
    academies: tuple[str, ...] = (),
    window_dir: Path | None = None,
) -> AsyncIterator[Connections]:
    """Connections for the trust tenant and the named academies' tenants. Every credential is resolved
    before the first request, so a missing secret is reported before anything is read or written."""
    conns = Connections(trust, graph_url, write_budget, max_total_wait, window_dir)
    try:
        conns.target  # noqa: B018 - resolve the credential now
        for code in academies:
            conns.source(code)
        yield conns
    finally:
        await conns.aclose()


def parse_budget(text: str) -> tuple[int, float]:
    """'3000/150' -> (3000, 150.0)."""
    try:
        n, s = text.split("/")
        value = (int(n), float(s))
    except ValueError:
        raise ValueError(f"'{text}' is not N/SECONDS (e.g. 3000/150)") from None
    if value[0] < 1 or value[1] <= 0:
        raise ValueError(f"'{text}': N and SECONDS must be positive")
    return value
