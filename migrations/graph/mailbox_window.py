"""Outlook's per-mailbox limits, kept on the client so a mail copy spends them without earning 429s.

Microsoft publishes the Outlook service limits per app per mailbox
(learn.microsoft.com/graph/throttling-limits, "Outlook service limits"): 10,000 requests in 10 minutes, 4
concurrent requests, 150 MB uploaded in 5 minutes. They hold for each mailbox apart, so every mailbox gets its
own window and many mailboxes run side by side without one slowing another. The server stays the authority: a
429 pauses that mailbox for its Retry-After and shrinks its windows for a while (as the identity write window
does).

Reserve-and-settle, like graph.WriteWindow: a request is reserved before it is sent (it counts at once) and
stamped when its answer arrives, so a slot is never freed before the server's own window frees it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from migrations.graph.client import WriteWindow

REQUESTS = (10_000, 600.0)
CONCURRENT = 4
UPLOAD_BYTES = (150 * 1024 * 1024, 300.0)


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
    """One mailbox's Outlook limits: requests per 10 minutes, requests in flight, bytes uploaded per 5."""

    def __init__(
        self,
        requests: tuple[int, float] = REQUESTS,
        concurrent: int = CONCURRENT,
        upload: tuple[int, float] = UPLOAD_BYTES,
        headroom: float = 0.97,
    ):
        self.requests = WriteWindow(requests[0], requests[1], headroom)
        self.bytes = ByteWindow(int(upload[0] * headroom), upload[1])
        self.gate = asyncio.Semaphore(max(1, concurrent))
        self.paused_until = 0.0
        self.waited = 0.0
        self.throttled = 0

    @asynccontextmanager
    async def slot(self, upload: int = 0) -> AsyncIterator[None]:
        """Hold one request of this mailbox (and `upload` bytes) while it is sent and answered."""
        async with self.gate:
            delay = self.paused_until - time.monotonic()
            if delay > 0:
                self.waited += delay
                await asyncio.sleep(delay)
            self.waited += await self.requests.reserve(1)
            if upload:
                self.waited += await self.bytes.reserve(upload)
            try:
                yield
            finally:
                self.requests.settle(1)
                if upload:
                    self.bytes.settle(upload)

    def throttle(self, retry_after: float | None) -> None:
        """The mailbox answered 429: everyone on it waits its Retry-After, and the window narrows a while."""
        self.throttled += 1
        self.requests.throttled()
        self.paused_until = max(self.paused_until, time.monotonic() + (retry_after or 1.0))


class MailboxWindows:
    """A window per mailbox id, made on first use."""

    def __init__(self, **kwargs: object) -> None:
        self._kwargs = kwargs
        self.windows: dict[str, MailboxWindow] = {}

    def of(self, mailbox_id: str) -> MailboxWindow:
        if mailbox_id not in self.windows:
            self.windows[mailbox_id] = MailboxWindow(**self._kwargs)  # type: ignore[arg-type]
        return self.windows[mailbox_id]
