"""Client-side copy of Microsoft Teams' per-team and per-channel limits, so the teams phase spends them
without 429s.

Microsoft's "Microsoft Teams service limits" (learn.microsoft.com/graph/throttling-limits, Teams section):
any Graph request naming a team or a channel is limited to 4 a second per team or channel (per app and
tenant), `POST /teams` to 10 a second, and importing messages ("Import third-party platform messages to
Teams", teams-import-messages) to about 5 a second per channel. A request is counted under the narrowest key
its path names: the channel when it names one (and its team too), else the team.

Reserve-and-settle, as ru_window.py does: `reserve(path)` waits until one more request fits every window
the path falls under and stamps it as sent; `settle(path, retry_after)` after the answer: a 429 closes that
key's window for the Retry-After Microsoft gave (another app on the same team spends the same limit).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW_S = 1.0
PER_TEAM = 4  # requests a second per team, per app and tenant
PER_CHANNEL = 4  # requests a second per channel
CREATE_TEAMS = 10  # POST /teams a second, per app and tenant
IMPORT_PER_CHANNEL = 5  # message imports a second per channel (Microsoft: "about 5")

_TEAMS_PATH = re.compile(r"^/teams/([^/?]+)")
_GROUP_TEAM = re.compile(r"^/groups/([^/?]+)/team(?:/|$|\?)")
_CHANNEL = re.compile(r"^/teams/([^/?]+)/channels/([^/?]+)")
_IMPORT = re.compile(r"^/teams/[^/?]+/channels/[^/?]+/messages(?:/[^/?]+/replies)?/?$")


def keys_of(method: str, path: str) -> list[tuple[str, int]]:
    """The windows a request falls under: (key, requests allowed a second)."""
    path = re.sub(r"^/v1\.0", "", path.split("?", 1)[0])
    out: list[tuple[str, int]] = []
    if method.upper() == "POST" and path.rstrip("/") == "/teams":
        out.append(("create-teams", CREATE_TEAMS))
    team = _TEAMS_PATH.match(path) or _GROUP_TEAM.match(path)
    if team:
        out.append((f"team:{team.group(1)}", PER_TEAM))
    channel = _CHANNEL.match(path)
    if channel:
        out.append((f"channel:{channel.group(2)}", PER_CHANNEL))
        if method.upper() == "POST" and _IMPORT.match(path):
            out.append((f"import:{channel.group(2)}", IMPORT_PER_CHANNEL))
    return out


@dataclass
class _Key:
    limit: int
    sent: deque[float] = field(default_factory=deque)
    closed_until: float = 0.0


class TeamsWindow:
    """Requests sent in the last second, per team, channel and `POST /teams`; waits until one more fits."""

    def __init__(self, seconds: float = WINDOW_S, clock: Any = time.monotonic, sleep: Any = asyncio.sleep):
        self.seconds = seconds
        # Stamps expire a little later than the server's window: requests reach it after we stamp them.
        self.expiry = seconds * 1.05 + 0.02
        self._clock, self._sleep = clock, sleep
        self._keys: dict[str, _Key] = {}
        self._lock = asyncio.Lock()
        self.waited = 0.0
        self.throttled = 0

    def _key(self, name: str, limit: int) -> _Key:
        return self._keys.setdefault(name, _Key(limit))

    def _delay(self, names: list[tuple[str, int]], now: float) -> float:
        delay = 0.0
        for name, limit in names:
            k = self._key(name, limit)
            while k.sent and now - k.sent[0] >= self.expiry:
                k.sent.popleft()
            if k.closed_until > now:
                delay = max(delay, k.closed_until - now)
            if len(k.sent) >= k.limit:
                delay = max(delay, k.sent[0] + self.expiry - now)
        return delay

    async def reserve(self, method: str, path: str) -> float:
        """Wait until this request fits every window it falls under; stamp it. Returns seconds waited."""
        names = keys_of(method, path)
        if not names:
            return 0.0
        waited = 0.0
        while True:
            # Decided and stamped under the lock; slept outside it, so a request waiting for one team's
            # window never holds up another team's.
            async with self._lock:
                now = self._clock()
                delay = self._delay(names, now)
                if delay <= 0:
                    for name, limit in names:
                        self._key(name, limit).sent.append(now)
                    break
            waited += delay
            await self._sleep(delay)
        self.waited += waited
        return waited

    def settle(self, method: str, path: str, status: int, retry_after: float | None) -> None:
        """After the answer: a 429 closes each of the request's windows for Microsoft's Retry-After."""
        if status != 429:
            return
        self.throttled += 1
        until = self._clock() + (retry_after if retry_after else self.seconds)
        for name, limit in keys_of(method, path):
            k = self._key(name, limit)
            k.closed_until = max(k.closed_until, until)


class WindowedConnection:
    """A TenantConnection whose single requests wait for the Teams window first (everything else passes
    through): what the teams phase gives the runner as its target."""

    def __init__(self, conn: Any, window: TeamsWindow):
        self._conn, self.window = conn, window

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        rel = self._conn.relative(path) if hasattr(self._conn, "relative") else path
        if keys_of(method, rel):
            # Teams' own limits govern it (this window), not the directory's write budget: spending that
            # budget on channel messages would slow the run to the directory's pace for nothing.
            kwargs.setdefault("counts_as_write", False)
        await self.window.reserve(method, rel)
        resp = await self._conn.request(method, path, **kwargs)
        self.window.settle(method, rel, resp.status, resp.retry_after())
        return resp

    async def get(self, path: str, params: Any = None, headers: Any = None) -> Any:
        from migrations.graph.client import GraphError

        resp = await self.request("GET", path, params=params, headers=headers)
        if not resp.ok:
            raise GraphError("GET", path, resp)
        return resp.body
