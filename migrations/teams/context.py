"""What the teams phase's operations share during a run: the target (behind the Teams window), the target ids
of steps done so far (team, channel, message), and a read cache of each target channel's imported messages
(what reconciliation matches a message by: createdDateTime and author)."""

from __future__ import annotations

from typing import Any

from migrations.graph.client import GraphError

BIND_ROOT = "https://graph.microsoft.com/v1.0"


def millis(stamp: str) -> str:
    """A createdDateTime to the millisecond, as Teams keeps it (the uniqueness it enforces on import)."""
    head, _, rest = stamp.rstrip("Z").partition(".")
    frac = (rest.split("+")[0] + "000")[:3]
    return f"{head}.{frac}Z"


class TeamsContext:
    def __init__(
        self, target: Any, ids: dict[str, str] | None = None, *, purge: bool = False, source: Any = None
    ):
        self.target = target
        self.source = source  # the legacy tenant: inline images are read from it as their message is sent
        # Step key -> the hostedContents entries read for it (None: an image the legacy tenant did not give).
        self.images: dict[str, list[dict[str, str] | None]] = {}
        self.purge = purge  # rollback --purge: a deleted class's group is purged from deletedItems too
        self.ids: dict[str, str] = dict(ids or {})
        self._seen: dict[str, dict[tuple[str, str], str]] = {}

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        if target_id:
            self.ids[key] = target_id

    def target_id(self, key: str) -> str | None:
        return self.ids.get(key)

    async def imported(
        self, team_id: str, channel_id: str, parent_id: str | None
    ) -> dict[tuple[str, str], str]:
        """(createdDateTime to the ms, author id) -> message id of what the target channel (or thread) holds.
        Read afresh each time it is asked: a message imported moments ago must be seen."""
        base = f"/teams/{team_id}/channels/{channel_id}/messages"
        path = f"{base}/{parent_id}/replies" if parent_id else base
        found: dict[tuple[str, str], str] = {}
        try:
            async for m in self.target.pages(path, {"$top": 50}):
                user = ((m.get("from") or {}).get("user")) or {}
                found[(millis(str(m.get("createdDateTime", ""))), str(user.get("id") or ""))] = str(m["id"])
        except GraphError as exc:
            if exc.response.status != 404:
                raise
        return found
