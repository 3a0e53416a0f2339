"""What the legacy tenant holds of an academy's teams: each migrated group's team (if it has one), its
channels, and each channel's messages with their replies.

Shapes (learn.microsoft.com/graph/api/...): team-get (`GET /groups/{id}/team`, 404 when the group has no
team), team `specialization` (`educationClass` for a class team), channel-list (`membershipType` standard /
private / shared), channel-list-messages and chatmessage-list-replies. Reading channel messages with
application permissions is a protected API (Microsoft approves it per app): the read answers 403 until it is,
and the phase records that per channel instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrations.graph.client import GraphError, TenantConnection
from migrations.teams.hosted import hosted_ids

# Team settings Graph exposes on team-update: carried as they are.
SETTINGS = ("memberSettings", "guestSettings", "messagingSettings", "funSettings", "discoverySettings")


@dataclass
class SourceMessage:
    id: str
    created: str
    author_id: str | None
    author_name: str
    content_type: str
    content: str
    reply_to: str | None = None
    path: str = ""  # the message's own path in the legacy tenant (its hostedContents are under it)
    images: list[str] = field(default_factory=list)  # hosted content ids its body refers to (inline images)


@dataclass
class SourceChannel:
    id: str
    name: str
    description: str | None
    kind: str  # standard | private | shared
    created: str | None
    general: bool
    messages: list[SourceMessage] = field(default_factory=list)
    readable: bool = True  # False: the protected-API read was refused (403)
    refusal: str = ""
    owners: list[str] = field(default_factory=list)  # a private or shared channel's owners (source user ids)
    tabs: list[dict[str, Any]] = field(default_factory=list)  # {id, name, app, config}


@dataclass
class SourceTeam:
    group_id: str
    display_name: str
    description: str | None
    specialization: str
    settings: dict[str, Any]
    channels: list[SourceChannel] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)

    @property
    def is_class(self) -> bool:
        return self.specialization == "educationClass"


def _message(m: dict[str, Any], reply_to: str | None, path: str) -> SourceMessage | None:
    # System events (member added, channel renamed) are Teams' own; they are not imported.
    if m.get("messageType", "message") != "message" or m.get("deletedDateTime"):
        return None
    user = ((m.get("from") or {}).get("user")) or {}
    body = m.get("body") or {}
    content = str(body.get("content") or "")
    return SourceMessage(
        id=str(m["id"]),
        created=str(m["createdDateTime"]),
        author_id=user.get("id"),
        author_name=str(user.get("displayName") or "unknown"),
        content_type=str(body.get("contentType") or "html"),
        content=content,
        reply_to=reply_to,
        path=path,
        # The body refers to each inline image by its hosted content's URL (chatmessage-list-hostedcontents).
        images=hosted_ids(content) if str(body.get("contentType") or "html") == "html" else [],
    )


async def read_messages(conn: TenantConnection, team_id: str, channel: SourceChannel) -> None:
    base = f"/teams/{team_id}/channels/{channel.id}/messages"
    try:
        async for m in conn.pages(base, {"$top": 50}):
            top = _message(m, None, f"{base}/{m['id']}")
            if top is None:
                continue
            channel.messages.append(top)
            async for r in conn.pages(f"{base}/{top.id}/replies", {"$top": 50}):
                reply = _message(r, top.id, f"{base}/{top.id}/replies/{r['id']}")
                if reply is not None:
                    channel.messages.append(reply)
    except GraphError as exc:
        if exc.response.status != 403:
            raise
        channel.readable = False
        channel.refusal = exc.response.error_message or "403 Forbidden"
        channel.messages.clear()


async def read_team(conn: TenantConnection, group_id: str) -> SourceTeam | None:
    """The group's team with its channels and their messages, or None when the group has no team."""
    resp = await conn.request("GET", f"/groups/{group_id}/team")
    if resp.status == 404:
        return None
    if not resp.ok:
        raise GraphError("GET", f"/groups/{group_id}/team", resp)
    body = resp.body or {}
    team = SourceTeam(
        group_id=group_id,
        display_name=str(body.get("displayName") or ""),
        description=body.get("description"),
        specialization=str(body.get("specialization") or "none"),
        settings={k: body[k] for k in SETTINGS if isinstance(body.get(k), dict)},
    )
    primary = await conn.request("GET", f"/teams/{group_id}/primaryChannel", params={"$select": "id"})
    general_id = (primary.body or {}).get("id") if primary.ok else None
    async for c in conn.pages(f"/teams/{group_id}/channels"):
        channel = SourceChannel(
            id=str(c["id"]),
            name=str(c.get("displayName") or ""),
            description=c.get("description"),
            kind=str(c.get("membershipType") or "standard"),
            created=c.get("createdDateTime"),
            general=c["id"] == general_id or c.get("displayName") == "General",
        )
        team.channels.append(channel)
        if channel.kind in ("private", "shared"):
            # channel-list-members: its owners; one owns the copy (an app-made private channel needs one).
            async for m in conn.pages(f"/teams/{group_id}/channels/{channel.id}/members"):
                if "owner" in (m.get("roles") or []) and m.get("userId"):
                    channel.owners.append(str(m["userId"]))
        await read_messages(conn, group_id, channel)
        tabs = await conn.request(
            "GET", f"/teams/{group_id}/channels/{channel.id}/tabs", params={"$expand": "teamsApp"}
        )
        for tab in (tabs.body or {}).get("value", []) if tabs.ok else []:
            channel.tabs.append(
                {
                    "id": str(tab["id"]),
                    "name": str(tab.get("displayName") or ""),
                    "app": str((tab.get("teamsApp") or {}).get("id") or ""),
                    "config": dict(tab.get("configuration") or {}),
                }
            )
    apps = await conn.request(
        "GET", f"/teams/{group_id}/installedApps", params={"$expand": "teamsAppDefinition"}
    )
    if apps.ok:
        for a in (apps.body or {}).get("value", []):
            definition = a.get("teamsAppDefinition") or {}
            name = definition.get("displayName")
            if name and definition.get("distributionMethod", "store") != "store":
                team.apps.append(str(name))
    return team
