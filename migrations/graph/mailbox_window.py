"""Outlook's limits, kept on the client so a mail copy spends them without earning 429s.

learn.microsoft.com/graph/throttling-limits, "Outlook service limits": per app ID and mailbox, 10,000 requests
in 10 minutes and 150 MB uploaded in 5 minutes; per app ID, 4 concurrent requests whatever the mailboxes. So
every mailbox gets its own request and upload windows (one mailbox over them does not slow another), while its
requests in flight take slots from its app's one gate (graph.outlook_gate, the connection's outlook_gate),
shared by all the app's mailboxes. The server stays the authority: a 429 pauses that mailbox for its
Retry-After and shrinks its windows for a while (as the identity write window does).

Throttling stays with the mailbox: requests go out with TenantConnection.request(own_throttling=True), which
hands a 429 back instead of pausing the whole tenant, and MailboxWindow.request retries it (tenacity, the
Retry-After honoured) after pausing only this mailbox. Another mailbox of the same tenant never waits for it.

Reserve-and-settle, like graph.WriteWindow: a request is reserved before it is sent (it counts at once) and
stamped when its answer arrives, so a slot is never freed before the server's own window frees it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay
from tenacity.wait import wait_random_exponential

from migrations.graph.client import GraphResponse, TenantConnection, Transient, WriteWindow
from migrations.graph.outlook_gate import CONCURRENT, LIMITS_ENV, limits_from_env

__all__ = ["CONCURRENT", "LIMITS_ENV", "ByteWindow", "MailboxThrottled", "MailboxWindow", "MailboxWindows"]

REQUESTS = (10_000, 600.0)
UPLOAD_BYTES = (150 * 1024 * 1024, 300.0)
# A throttled mailbox is slowed, never failed: it keeps retrying for this long (Exchange's Retry-After values
# are seconds to minutes) before its request is given up as failed.
PATIENCE_S = 3600.0


class MailboxThrottled(Transient):
    """A mailbox answered 429 (or 503 with Retry-After): retried by its own window's retry layer."""

    def __init__(self, response: GraphResponse):
        self.response = response
        super().__init__(f"mailbox throttled ({response.status})", response.retry_after())


class ByteWindow:
    """Bytes uploaded in a sliding window, reserved before the upload and stamped when it is answered."""

    def __init__(
        self,
        limit: int,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.full = self.limit = max(1, limit)
        self.seconds = seconds
        self.expiry = seconds + seconds / 200 + 0.05
        self.sent: deque[tuple[float, int]] = deque()
        self.used = 0  # stamped and reserved bytes together
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self.sent and now - self.sent[0][0] >= self.expiry:
            self.used -= self.sent.popleft()[1]

    async def reserve(self, n: int) -> float:
        """Wait until `n` bytes fit (an item larger than the whole window goes alone once it is empty)."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if self.used + n <= self.limit or self.used == 0:
                    self.used += n
                    return waited
                delay = self.expiry - (now - self.sent[0][0]) + 0.001 if self.sent else 0.05
                delay = min(max(delay, 0.001), 1.0)
                waited += delay
                await self._sleep(delay)

    def settle(self, n: int) -> None:
        """The reserved bytes were answered: they leave the window one window from now."""
        self.sent.append((self._clock(), n))


class MailboxWindow:
    """One mailbox's Outlook limits: requests per 10 minutes, bytes uploaded per 5 (its requests in flight
    count against its app's gate, the connection's outlook_gate)."""

    def __init__(
        self,
        requests: tuple[int, float] = REQUESTS,
        upload: tuple[int, float] = UPLOAD_BYTES,
        headroom: float = 0.97,
    ):
        self.requests = WriteWindow(requests[0], requests[1], headroom)
        # Bytes are stamped when the import is answered, after Exchange counted them, and leave a little
        # after the window: already the safe side. A headroom on top would waste a whole item's worth of
        # budget when items are large next to the window (bench/mail.py: 0.74 of the limit with 1 MB items in
        # 4 MB windows), so the upload window is the full limit.
        self.bytes = ByteWindow(upload[0], upload[1])
        self.paused_until = 0.0
        self.waited = 0.0
        self.throttled = 0
        self.sent = 0

    @asynccontextmanager
    async def budget(self, upload: int = 0) -> AsyncIterator[None]:
        """One request of this mailbox (and `upload` bytes) reserved in its windows, stamped when answered.
        Holds no gate slot: the pause and window waits here happen before the request claims one."""
        while (delay := self.paused_until - time.monotonic()) > 0:
            self.waited += delay
            await asyncio.sleep(delay)
        self.waited += await self.requests.reserve(1)
        reserved = 0
        try:
            if upload:
                self.waited += await self.bytes.reserve(upload)
                reserved = upload
            yield
        finally:
            self.requests.settle(1)
            if reserved:
                self.bytes.settle(reserved)

    @asynccontextmanager
    async def slot(self, conn: TenantConnection, upload: int = 0) -> AsyncIterator[None]:
        """One request of this mailbox sent through `conn` outside its request layer (an import URL, a
        streamed export): the mailbox's windows, then one of the app's gate slots while it is answered."""
        async with self.budget(upload), conn.outlook_gate.held():
            yield

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = wait_random_exponential(multiplier=0.5, max=30)(state)
        self.waited += delay
        return delay

    def retrying(self, patience: float = PATIENCE_S) -> AsyncRetrying:
        """This mailbox's retry policy: raise Transient (MailboxThrottled for a 429) inside an attempt to
        repeat it after its Retry-After (else a jittered backoff); the last Transient is re-raised."""
        return AsyncRetrying(
            retry=retry_if_exception_type(Transient),
            wait=self._wait,
            reraise=True,
            stop=stop_after_delay(patience),
        )

    async def request(
        self,
        conn: TenantConnection,
        method: str,
        path: str,
        *,
        sent: Callable[[], None] = lambda: None,
        **kw: Any,
    ) -> GraphResponse:
        """One Graph request on this mailbox, inside its limits; a 429 pauses this mailbox alone and is
        retried here (the tenant's other mailboxes and workloads go on). A mailbox still throttled after
        PATIENCE_S answers its last 429 to the caller. `sent` is told of every attempt sent."""
        try:
            async for attempt in self.retrying():
                with attempt:
                    async with self.budget():
                        resp = await conn.request(
                            method,
                            path,
                            counts_as_write=False,
                            own_throttling=True,
                            gate=conn.outlook_gate.held,
                            **kw,
                        )
                    self.sent += 1
                    sent()
                    if resp.status == 429 or (resp.status == 503 and resp.retry_after() is not None):
                        self.throttle(resp.retry_after())
                        raise MailboxThrottled(resp)
                    return resp
        except MailboxThrottled as exc:
            return exc.response
        raise AssertionError("unreachable")

    def throttle(self, retry_after: float | None) -> None:
        """The mailbox answered 429: everyone on it waits its Retry-After, and the window narrows a while."""
        self.throttled += 1
        self.requests.throttled()
        self.paused_until = max(self.paused_until, time.monotonic() + (retry_after or 1.0))


class MailboxWindows:
    """A window per mailbox id, made on first use."""

    def __init__(self, **kwargs: object) -> None:
        # The concurrency is the app's, kept by its gate (graph.outlook_gate), not by any mailbox's window.
        limits = {**limits_from_env(os.environ.get(LIMITS_ENV)), **kwargs}
        self._kwargs = {k: v for k, v in limits.items() if k != "concurrent"}
        self.windows: dict[str, MailboxWindow] = {}

    def of(self, mailbox_id: str) -> MailboxWindow:
        if mailbox_id not in self.windows:
            self.windows[mailbox_id] = MailboxWindow(**self._kwargs)  # type: ignore[arg-type]
        return self.windows[mailbox_id]
