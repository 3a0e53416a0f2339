"""Outlook's concurrency limit, kept on the client per app id.

learn.microsoft.com/graph/throttling-limits, "Outlook service limits" / "Limits per app ID": "Outlook can
execute up to 4 concurrent requests. ... regardless of whether the requests all access the same mailbox, or
access different mailboxes" (a Microsoft answer, learn.microsoft.com/answers/questions/1660054:
"irrespective of the target mailboxes"). So the four slots belong to the app (its client id), not to a
mailbox or a tenant: every connection authenticating as that app, source or target, shares one OutlookGate. A
request holds a slot only while it is on the wire; pauses, budget waits and retry back-offs happen outside,
so a throttled mailbox never sits on a slot the app's other mailboxes could use.

The rehearsal's limits: TRUSTFOLD_OUTLOOK_LIMITS="requests=N/S,upload=BYTES/S,concurrent=N" (bench/mail.py
shrinks the sandbox's and tells the client the same); unset, the published ones.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trust.errors import ConfigError

CONCURRENT = 4
LIMITS_ENV = "TRUSTFOLD_OUTLOOK_LIMITS"


def limits_from_env(text: str | None) -> dict[str, object]:
    """TRUSTFOLD_OUTLOOK_LIMITS="requests=N/S,upload=BYTES/S,concurrent=N": the Outlook limits a rehearsal's
    sandbox was set to, so the client's windows match what it faces. Unset: the published limits. A malformed
    value is refused with the variable named."""
    out: dict[str, object] = {}
    if not text:
        return out
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        try:
            if key in ("requests", "upload"):
                n, s = value.split("/")
                budget = (int(n), float(s))
                if budget[0] < 1 or budget[1] <= 0:
                    raise ValueError
                out[key] = budget
            elif key == "concurrent":
                out[key] = int(value)
                if int(value) < 1:
                    raise ValueError
            else:
                raise ValueError
        except ValueError:
            raise ConfigError(
                None,
                f"environment variable {LIMITS_ENV}: '{part.strip()[:60]}' is not requests=N/SECONDS, "
                "upload=BYTES/SECONDS or concurrent=N",
                field=LIMITS_ENV,
            ) from None
    return out


class OutlookGate:
    """At most `limit` Outlook requests of one app in flight, across all its mailboxes and tenants."""

    def __init__(self, limit: int = CONCURRENT) -> None:
        self.limit = max(1, limit)
        # asyncio.Semaphore wakes waiters in arrival order: no mailbox is starved by the others.
        self._free = asyncio.Semaphore(self.limit)
        self.in_flight = 0
        self.peak = 0
        self.waited = 0.0

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """One slot, from just before the request is sent until its answer is in."""
        start = time.monotonic()
        async with self._free:
            self.waited += time.monotonic() - start
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1


class OutlookGates:
    """One gate per app id, shared by every connection that authenticates as that app."""

    def __init__(self) -> None:
        self.gates: dict[str, OutlookGate] = {}

    def of(self, app_id: str) -> OutlookGate:
        key = app_id.lower()
        if key not in self.gates:
            concurrent = limits_from_env(os.environ.get(LIMITS_ENV)).get("concurrent", CONCURRENT)
            self.gates[key] = OutlookGate(concurrent if isinstance(concurrent, int) else CONCURRENT)
        return self.gates[key]
