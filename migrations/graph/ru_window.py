"""Client-side copy of the identity resource-unit (RU) window, so trustfold spends the budget without 429s.

Microsoft Graph's identity and access service (users, groups, subscribedSkus, ...) charges every request in
resource units against a sliding 10-second budget per app and tenant, whose size follows the tenant's size
(learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits): 3,500 RU for tenants of
fewer than 50 users, 5,000 for 50-500, 8,000 above. The write window (graph.WriteWindow) only bounds writes;
with it lifted (`--write-budget` raised), this window is what keeps a fast run inside the RU budget.

Costs are Microsoft's published table: any write 1 RU; GET /users 2; GET /groups/{id}/members 3;
transitiveMembers 5; domainNameReferences 4; subscribedSkus 3; applications and their extensionProperties
2; other GETs 1; `$select` -1, `$expand` +1, at least 1. SharePoint and OneDrive paths are a different
budget (0 here).
The tenant's size is read once (`GET /users?$count=true`, 1 RU), kept current from the users this client
creates and deletes, and read again every minute (other writers).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from urllib.parse import parse_qsl, urlsplit

WINDOW_S = 10.0
TIERS: tuple[tuple[int, int], ...] = ((50, 3_500), (501, 5_000))
LARGE = 8_000
SIZE_REFRESH_S = 60.0
_SHAREPOINT = re.compile(r"^/(?:drives|sites|shares)(?:/|$)|^/(?:users|groups|me)/[^/]+/drives?(?:/|$)")
# Microsoft Teams serves these, under its own limits (graph/teams_window.py), outside the identity budget.
_TEAMS = re.compile(
    r"^/(?:teams|chats|appCatalogs|teamwork|teamsTemplates)(?:/|$|\()|^/groups/[^/]+/team(?:/|$)"
    r"|^/(?:users/[^/]+|me)/(?:joinedTeams|chats|teamwork)(?:/|$)"
)
# The cost table's GETs above 1 RU, as the server charges them (its users row is handled below).
_LISTED: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^/groups/[^/]+/transitiveMembers(?:/|$)"), 5),
    (re.compile(r"^/domains/[^/]+/domainNameReferences(?:/|$)"), 4),
    (re.compile(r"^/groups/[^/]+/members(?:/|$)"), 3),
    (re.compile(r"^/subscribedSkus(?:/|$)"), 3),
    (re.compile(r"^/applications/?$"), 2),
    (re.compile(r"^/applications(?:\([^)]*\)|/[^/]+)/extensionProperties(?:/|$)"), 2),
)


def tier_for(users: int) -> int:
    for below, ru in TIERS:
        if users < below:
            return ru
    return LARGE


def _graph_path(url: str) -> str:
    parts = urlsplit(url)
    path = re.sub(r"^/v1\.0", "", parts.path if parts.scheme else url.split("?", 1)[0])
    return re.sub(r"/{2,}", "/", path) or "/"


def is_sharepoint_path(url: str) -> bool:
    """Whether SharePoint serves this request (its own budget, graph/sharepoint_window.py)."""
    return bool(_SHAREPOINT.match(_graph_path(url)))


def identity_cost(method: str, url: str) -> int:
    """RU this request costs in the identity budget (0 for $batch envelopes, SharePoint and Teams paths)."""
    parts = urlsplit(url)
    path = _graph_path(url)
    if path == "/$batch" or _SHAREPOINT.match(path) or _TEAMS.match(path):
        return 0
    if method.upper() != "GET":
        return 1
    query = dict(parse_qsl(parts.query if parts.scheme else url.partition("?")[2]))
    listed = next((c for pattern, c in _LISTED if pattern.match(path)), None)
    users = path == "/users" or path.startswith("/users/")
    cost = listed if listed is not None else 2 if users else 1
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    return max(cost, 1)


class ResourceUnitWindow:
    """Units sent in the last window, stamped as sent; waits until a request's units fit under the tier.

    Entries expire a little later than the server's (requests reach it after we stamp them). A 429 for
    resource units (another app on the tenant, a cost we under-estimated) shrinks the limit for a while, as
    the write window does; a whole quiet window restores it.
    """

    def __init__(self, headroom: float = 0.95, seconds: float = WINDOW_S):
        self.headroom = headroom
        self.seconds = seconds
        self.expiry = seconds * 1.02 + 0.25
        self.users: int | None = None
        self.checked_at = -1e9
        self.full = max(1, int(tier_for(0) * headroom))
        self.limit = self.full
        self.sent: deque[tuple[float, int]] = deque()
        self.used = 0
        self._lock = asyncio.Lock()
        self._last_throttle = -1e9

    def set_users(self, users: int, checked: bool = False) -> None:
        self.users = max(0, users)
        if checked:
            self.checked_at = time.monotonic()
        full = max(1, int(tier_for(self.users) * self.headroom))
        shrunk = self.limit < self.full
        self.full = full
        self.limit = min(self.limit, full) if shrunk else full

    def grew(self, n: int) -> None:
        if self.users is not None:
            self.set_users(self.users + n)

    def needs_size(self) -> bool:
        return time.monotonic() - self.checked_at >= SIZE_REFRESH_S

    def _expire(self, now: float) -> None:
        while self.sent and now - self.sent[0][0] >= self.expiry:
            self.used -= self.sent.popleft()[1]

    async def acquire(self, units: int) -> float:
        """Wait until `units` fit; the seconds waited."""
        if units <= 0:
            return 0.0
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                self._expire(now)
                if self.used + units <= self.limit or not self.sent:
                    self.sent.append((now, units))
                    self.used += units
                    return waited
                need, freed, delay = self.used + units - self.limit, 0, self.expiry
                for stamp, amount in self.sent:
                    freed += amount
                    if freed >= need:
                        delay = self.expiry - (now - stamp) + 0.001
                        break
                # Short naps: the tier can rise meanwhile (the run's own creates grow the tenant), and a
                # waiter must see the new ceiling at once rather than sleep out the old one.
                nap = min(delay, 0.2)
                waited += nap
                await asyncio.sleep(nap)

    def throttled(self) -> None:
        now = time.monotonic()
        if now - self._last_throttle >= 1.0:
            self.limit = max(self.full // 2, int(self.limit * 0.8), 1)
        self._last_throttle = now

    def recovered(self) -> None:
        if self.limit < self.full and time.monotonic() - self._last_throttle > self.seconds:
            self.limit = self.full
