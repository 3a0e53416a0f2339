"""What Teams does to a tenant: make a team from a group, create channels with their SharePoint folders and
sites, tabs, and the async operations of POST /teams. Pure state logic; sandbox/teams_api.py serves it.

Every rule names the Microsoft page it follows; docs/sandbox.md lists them under "Teams".
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox import directory as d
from sandbox.errors import GraphError, now_iso
from sandbox.teams_state import (
    ASSIGNMENTS_APP,
    CLASS_NOTEBOOK_APP,
    GIPHY_RATINGS,
    MEMBERSHIP_TYPES,
    SETTINGS_DEFAULTS,
    SPECIALIZATION,
    TAB_APPS,
    TEMPLATES,
    TeamsStore,
    channel_name_problem,
    drive_stamp,
    iso_ms,
    now_ms,
    parse_time,
)
from sandbox.world import TenantState

MIGRATE_ROLE = "Teamwork.Migrate.All"
_TEMPLATE_RE = re.compile(r"teamsTemplates\('([A-Za-z]+)'\)$")
_GROUP_BIND_RE = re.compile(r"/groups\('([0-9a-fA-F-]{36})'\)$")
_USER_BIND_RE = re.compile(r"/users(?:\('|/)([^')/]+)'?\)?$")
_APP_BIND_RE = re.compile(r"/appCatalogs/teamsApps/([^/]+)$")
TEAM_WRITABLE = frozenset({"displayName", "description", "visibility", "classification", *SETTINGS_DEFAULTS})
CLASS_CHANNEL_FOLDER = "Class Materials"


def store_of(t: TenantState) -> TeamsStore:
    if getattr(t, "teams", None) is None:
        t.teams = TeamsStore()
    store: TeamsStore = t.teams
    store.tenant_id = t.id
    return store


# ---- teams -------------------------------------------------------------------------------------------------
def team_of(t: TenantState, team_id: str) -> dict[str, Any]:
    """The team, while its group exists and any async creation has finished (404 otherwise: the team is
    the group's, team-delete)."""
    store = store_of(t)
    team = store.teams.get(team_id)
    if team is None or team_id not in t.groups or time.time() < float(team.get("_ready", 0)):
        raise GraphError(404, "NotFound", f"No team found with Group Id {team_id[:40]}")
    return team


def _check_settings(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, defaults in SETTINGS_DEFAULTS.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise GraphError(400, "BadRequest", f"Invalid value for '{key}'.")
        for prop, v in value.items():
            if prop.startswith("@odata."):
                continue
            if prop not in defaults:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Property '{prop}' does not exist on type 'microsoft.graph.team{key}'.",
                )
            if prop == "giphyContentRating":
                if v not in GIPHY_RATINGS:
                    raise GraphError(400, "BadRequest", f"Invalid value '{v}' for 'giphyContentRating'.")
            elif not isinstance(v, bool):
                raise GraphError(
                    400, "BadRequest", f"Invalid value for '{key}.{prop}': a boolean is expected."
                )
        out[key] = {p: v for p, v in value.items() if not p.startswith("@odata.")}
    return out


def create_team_from_group(
    t: TenantState,
    gid: str,
    body: dict[str, Any],
    *,
    template: str = "standard",
    provisioning_delay_s: float = 0.0,
    migration: dict[str, Any] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """PUT /groups/{id}/team (learn.microsoft.com/graph/api/team-put-teams): the group needs at least one
    owner; a group created less than `provisioning_delay_s` ago answers 404 (Microsoft: up to 15 minutes,
    "retry up to three times, with a 10-second delay"); a group with a team already answers 409."""
    group = t.groups.get(gid)
    if group is None:
        raise GraphError(404, "NotFound", f"No Group found with Group Id {gid[:40]}")
    born = parse_time(group["createdDateTime"], "createdDateTime")
    if (datetime.now(UTC) - born).total_seconds() < provisioning_delay_s:
        raise GraphError(
            404,
            "NotFound",
            f"Failed to execute Templates backend request CreateTeamFromGroupWithTemplateRequest. "
            f"Group {gid} was not found: it has not replicated yet.",
        )
    if "Unified" not in group.get("groupTypes", []):
        raise GraphError(
            400, "BadRequest", "A team can only be created from a Microsoft 365 (Unified) group."
        )
    if not t.owners.get(gid):
        raise GraphError(
            400,
            "BadRequest",
            "Group has no owners. In order to create a team, the group must have at least one owner.",
        )
    store = store_of(t)
    if gid in store.teams:
        raise GraphError(409, "Conflict", "Team already exists for this group.")
    unknown = [
        k for k in body if not k.startswith("@") and k not in TEAM_WRITABLE and k not in ("template", "group")
    ]
    if unknown:
        raise GraphError(
            400, "BadRequest", f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.team'."
        )
    settings = _check_settings(body)
    if template == "educationClass" and gid not in store.classes:
        raise GraphError(
            400, "BadRequest", "The educationClass template needs a group that is an education class."
        )
    stamp = (
        iso_ms(parse_time(migration["createdDateTime"], "createdDateTime"))
        if migration
        else created or now_ms()
    )
    team: dict[str, Any] = {
        "id": gid,
        "createdDateTime": stamp,
        "displayName": body.get("displayName") or group.get("displayName"),
        "description": body.get("description") or group.get("description"),
        "internalId": f"19:{uuid.uuid5(uuid.NAMESPACE_URL, gid).hex}@thread.tacv2",
        "classification": body.get("classification"),
        "specialization": SPECIALIZATION[template],
        "visibility": (group.get("visibility") or "private").lower(),
        "webUrl": (
            f"https://teams.microsoft.com/l/team/19%3a{gid.replace('-', '')}%40thread.tacv2/conversations"
        ),
        "isArchived": False,
        # Class teams start with membership visible to owners only until the teacher activates the class
        # (learn.microsoft.com/graph/api/resources/team, isMembershipLimitedToOwners).
        "isMembershipLimitedToOwners": template == "educationClass",
        "tenantId": t.id,
    }
    for key, defaults in SETTINGS_DEFAULTS.items():
        team[key] = {**defaults, **settings.get(key, {})}
    if migration:
        team["_migration"] = migration["app"]
    store.teams[gid] = team
    if "Team" not in group.setdefault("resourceProvisioningOptions", []):
        group["resourceProvisioningOptions"].append("Team")
        t.touch(gid)
    _team_site(t, team, group)
    general = _new_channel(
        t,
        team,
        {"displayName": "General", "description": team.get("description"), "membershipType": "standard"},
        general=True,
        stamp=stamp,
    )
    if migration:
        general["migrationMode"] = "inProgress"
        general["_migration"] = migration["app"]
    if template == "educationClass":
        _class_features(t, team, general)
    return team


def _team_site(t: TenantState, team: dict[str, Any], group: dict[str, Any]) -> None:
    """The team's SharePoint site and its Documents library (teams-connected-sites: every team has a
    group-connected site; standard channels' files live in it)."""
    drives = t.drives
    name = re.sub(r"[^A-Za-z0-9-]", "", group.get("mailNickname") or team["id"])[:60] or team["id"]
    created = drive_stamp(team["createdDateTime"])
    site = drives.add_site(name, team["displayName"], created)
    library = drives.add_library(site, "Documents", created)
    team["_site"] = site["id"]
    team["_drive"] = library["id"]


def _class_features(t: TenantState, team: dict[str, Any], general: dict[str, Any]) -> None:
    """What the educationClass template adds that Graph shows: the Assignments and Class Notebook apps
    installed, their tabs in General, and the read-only Class Materials folder in General's files."""
    store = store_of(t)
    team["_installedApps"] = [ASSIGNMENTS_APP, CLASS_NOTEBOOK_APP]
    for app, name in ((CLASS_NOTEBOOK_APP, "Class Notebook"), (ASSIGNMENTS_APP, "Assignments")):
        tab_id = store.new_id("tab")
        store.tabs.setdefault(general["id"], {})[tab_id] = {
            "id": tab_id,
            "displayName": name,
            "webUrl": f"https://teams.microsoft.com/l/entity/{app['id']}/{tab_id}",
            "configuration": {"entityId": tab_id, "contentUrl": None, "websiteUrl": None, "removeUrl": None},
            "_app": app["id"],
        }
    folder = files_folder(t, general)
    drives = t.drives
    if drives.child(folder, CLASS_CHANNEL_FOLDER) is None:
        drives.create_item(
            folder,
            CLASS_CHANNEL_FOLDER,
            folder=True,
            validate=False,
            created=drive_stamp(team["createdDateTime"]),
        )


def update_team(t: TenantState, team: dict[str, Any], body: Any) -> None:
    """PATCH /teams/{id} (team-update): settings and the few writable properties."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    unknown = [k for k in body if not k.startswith("@") and k not in TEAM_WRITABLE]
    if unknown:
        raise GraphError(
            400, "BadRequest", f"Property '{unknown[0]}' does not exist on type 'microsoft.graph.team'."
        )
    settings = _check_settings(body)
    for key, values in settings.items():
        team[key].update(values)
    for key in ("displayName", "description", "classification", "visibility"):
        if key in body:
            team[key] = body[key]


def parse_template(body: dict[str, Any]) -> str:
    bind = body.get("template@odata.bind")
    m = _TEMPLATE_RE.search(bind) if isinstance(bind, str) else None
    if m is None:
        raise GraphError(
            400, "BadRequest", "The template@odata.bind property is required and must name a teamsTemplate."
        )
    if m.group(1) not in TEMPLATES:
        raise GraphError(400, "BadRequest", f"Template '{m.group(1)}' is not supported.")
    return m.group(1)


def create_team(
    t: TenantState,
    body: Any,
    *,
    app_id: str,
    roles: list[str],
    provisioning_delay_s: float,
    operation_s: float,
) -> tuple[str, str]:
    """POST /teams (learn.microsoft.com/graph/api/team-post): 202 with a teamsAsyncOperation; from an
    existing group (`group@odata.bind`) or new, with an owner among `members` when app-only; in migration
    mode with `@microsoft.graph.teamCreationMode` and Teamwork.Migrate.All. (team id, operation id)."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    template = parse_template(body)
    migration = None
    if body.get("@microsoft.graph.teamCreationMode") is not None:
        if body["@microsoft.graph.teamCreationMode"] != "migration":
            raise GraphError(400, "BadRequest", "Invalid value for '@microsoft.graph.teamCreationMode'.")
        if MIGRATE_ROLE not in roles:
            raise GraphError(
                403, "Forbidden", "Creating a team in migration mode requires Teamwork.Migrate.All."
            )
        if "group@odata.bind" in body:
            raise GraphError(
                400, "BadRequest", "A team in migration mode must be a new team, not made from a group."
            )
        when = parse_time(body.get("createdDateTime"), "createdDateTime")
        if when > datetime.now(UTC):
            raise GraphError(400, "BadRequest", "createdDateTime cannot be in the future.")
        migration = {"app": app_id, "createdDateTime": body["createdDateTime"]}
    rest = {
        k: v
        for k, v in body.items()
        if k
        not in (
            "template@odata.bind",
            "group@odata.bind",
            "members",
            "createdDateTime",
            "@microsoft.graph.teamCreationMode",
        )
    }
    if "group@odata.bind" in body:
        m = _GROUP_BIND_RE.search(str(body["group@odata.bind"]))
        if m is None:
            raise GraphError(400, "BadRequest", "Invalid URL format specified in @odata.bind for group.")
        gid = m.group(1)
        create_team_from_group(t, gid, rest, template=template, provisioning_delay_s=provisioning_delay_s)
    else:
        if not body.get("displayName"):
            raise GraphError(400, "BadRequest", "displayName is required to create a team.")
        owners = _owner_members(t, body.get("members"))
        if not owners and migration is None:
            raise GraphError(
                400,
                "BadRequest",
                "An owner must be specified in members when a team is created in application context.",
            )
        nick = re.sub(r"[^A-Za-z0-9]", "", str(body["displayName"]))[:50] or "team"
        nick = f"{nick}{uuid.uuid4().hex[:4]}"
        group = d.create_group(
            t,
            {
                "displayName": body["displayName"],
                "description": body.get("description"),
                "mailNickname": nick,
                "mailEnabled": True,
                "securityEnabled": False,
                "groupTypes": ["Unified"],
            },
        )
        gid = group["id"]
        for oid in owners:
            t.owners[gid][oid] = None
            t.members[gid][oid] = None
            t.member_changed(gid, oid, True)
        if template == "educationClass":
            raise GraphError(
                400, "BadRequest", "Class teams are made from education classes (group@odata.bind)."
            )
        create_team_from_group(t, gid, rest, template=template, migration=migration)
    store = store_of(t)
    op_id = str(uuid.uuid4())
    ready = time.time() + operation_s
    store.teams[gid]["_ready"] = ready
    store.operations[op_id] = {
        "id": op_id,
        "operationType": "createTeam",
        "createdDateTime": now_iso(),
        "attemptsCount": 1,
        "targetResourceId": gid,
        "targetResourceLocation": f"/teams('{gid}')",
        "error": None,
        "_team": gid,
        "_ready": ready,
    }
    return gid, op_id


def render_operation(op: dict[str, Any]) -> dict[str, Any]:
    """teamsAsyncOperation (learn.microsoft.com/graph/api/resources/teamsasyncoperation): inProgress until
    the team is provisioned, then succeeded."""
    done = time.time() >= float(op["_ready"])
    out = {k: v for k, v in op.items() if not k.startswith("_")}
    out["status"] = "succeeded" if done else "inProgress"
    out["lastActionDateTime"] = now_iso()
    return out


def _owner_members(t: TenantState, members: Any) -> list[str]:
    if members is None:
        return []
    if not isinstance(members, list):
        raise GraphError(400, "BadRequest", "Invalid value for 'members'.")
    owners: list[str] = []
    for m in members:
        uid = _member_user(t, m)
        if "owner" in (m.get("roles") or []):
            owners.append(uid)
    return owners


def _member_user(t: TenantState, m: Any) -> str:
    if not isinstance(m, dict) or m.get("@odata.type") != "#microsoft.graph.aadUserConversationMember":
        raise GraphError(
            400, "BadRequest", "Members must be of type #microsoft.graph.aadUserConversationMember."
        )
    bind = m.get("user@odata.bind")
    match = _USER_BIND_RE.search(bind) if isinstance(bind, str) else None
    user = t.user_by_key(match.group(1)) if match else None
    if user is None:
        raise GraphError(404, "NotFound", "The member's user was not found in this tenant.")
    roles = m.get("roles") or []
    if not isinstance(roles, list) or any(r not in ("owner", "member", "guest") for r in roles):
        raise GraphError(400, "BadRequest", "Invalid value for 'roles'.")
    return str(user["id"])


def render_team(team: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in team.items() if not k.startswith("_")}


def conversation_member(t: TenantState, uid: str, owner: bool) -> dict[str, Any]:
    user = t.users.get(uid) or {}
    return {
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "id": uid,
        "roles": ["owner"] if owner else [],
        "displayName": user.get("displayName"),
        "userId": uid,
        "email": user.get("mail") or user.get("userPrincipalName"),
        "tenantId": t.id,
    }


def team_members(t: TenantState, team_id: str) -> list[dict[str, Any]]:
    owners = t.owners.get(team_id, {})
    ids = list(dict.fromkeys([*owners, *t.members.get(team_id, {})]))
    return [conversation_member(t, uid, uid in owners) for uid in ids if uid in t.users]


# ---- channels ----------------------------------------------------------------------------------------------
def create_channel(
    t: TenantState,
    team: dict[str, Any],
    body: Any,
    *,
    app_id: str,
    roles: list[str],
    created: str | None = None,
) -> dict[str, Any]:
    """POST /teams/{id}/channels (channel-post): names unique in the team (case-insensitive, deleted ones
    included), private and shared channels need an owner among `members` in application context; migration
    mode with `@microsoft.graph.channelCreationMode` (Teamwork.Migrate.All; import-messages)."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    if team.get("_migration") and not body.get("@microsoft.graph.channelCreationMode"):
        # A team in migration mode takes channels in migration mode only.
        pass
    kind = body.get("membershipType", "standard")
    if kind not in MEMBERSHIP_TYPES:
        raise GraphError(400, "BadRequest", f"Invalid value '{kind}' for 'membershipType'.")
    migration = None
    mode = body.get("@microsoft.graph.channelCreationMode")
    if mode is not None:
        if mode != "migration":
            raise GraphError(400, "BadRequest", "Invalid value for '@microsoft.graph.channelCreationMode'.")
        if MIGRATE_ROLE not in roles:
            raise GraphError(
                403, "Forbidden", "Creating a channel in migration mode requires Teamwork.Migrate.All."
            )
        when = parse_time(body.get("createdDateTime"), "createdDateTime")
        if when > datetime.now(UTC):
            raise GraphError(400, "BadRequest", "createdDateTime cannot be in the future.")
        migration = iso_ms(when)
    owners: list[str] = []
    members: list[str] = []
    if kind != "standard":
        for m in body.get("members") or []:
            uid = _member_user(t, m)
            (owners if "owner" in (m.get("roles") or []) else members).append(uid)
        if not owners:
            raise GraphError(
                400,
                "BadRequest",
                f"A {kind} channel created in application context needs an owner in 'members'.",
            )
        team_people = set(t.members.get(team["id"], {})) | set(t.owners.get(team["id"], {}))
        if kind == "private" and not set(owners + members) <= team_people:
            raise GraphError(400, "BadRequest", "Members of a private channel must be members of the team.")
    elif body.get("members"):
        raise GraphError(400, "BadRequest", "Members can only be given for private and shared channels.")
    channel = _new_channel(t, team, body, stamp=migration or created or now_ms())
    if kind != "standard":
        channel["_owners"] = dict.fromkeys(owners)
        channel["_members"] = dict.fromkeys(members)
    if migration:
        channel["migrationMode"] = "inProgress"
        channel["_migration"] = app_id
    return channel


def _new_channel(
    t: TenantState, team: dict[str, Any], body: dict[str, Any], *, general: bool = False, stamp: str
) -> dict[str, Any]:
    name = body.get("displayName")
    problem = channel_name_problem(name)
    if problem:
        raise GraphError(400, "BadRequest", problem)
    store = store_of(t)
    if any(c["displayName"].lower() == str(name).lower() for c in store.channels_of(team["id"])):
        raise GraphError(400, "NameAlreadyExists", "Channel name already existed, please use other name.")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 1024):
        raise GraphError(400, "BadRequest", "Channel description cannot be longer than 1024 characters.")
    cid = store.new_channel_id()
    kind = body.get("membershipType", "standard")
    channel: dict[str, Any] = {
        "id": cid,
        "createdDateTime": stamp,
        "displayName": name,
        "description": description,
        "email": "",
        "isFavoriteByDefault": None,
        "membershipType": kind,
        "tenantId": t.id,
        "webUrl": f"https://teams.microsoft.com/l/channel/{cid}/{name}?groupId={team['id']}&tenantId={t.id}",
        "_team": team["id"],
    }
    if general:
        channel["_general"] = True
    store.channels[cid] = channel
    store.messages[cid] = {}
    files_folder(t, channel)
    return channel


def files_folder(t: TenantState, channel: dict[str, Any]) -> dict[str, Any]:
    """channel-get-filesfolder: a standard channel's folder is named after the channel in the team site's
    Documents library; a private or shared channel has a site of its own (teams-connected-sites) holding
    it."""
    drives = t.drives
    store = store_of(t)
    team = store.teams[channel["_team"]]
    if channel["membershipType"] == "standard":
        library = drives.drives[team["_drive"]]
    else:
        if "_drive" not in channel:
            base = drives.sites[team["_site"]]["name"]
            suffix = re.sub(r"[^A-Za-z0-9]", "", channel["displayName"]) or channel["id"][3:11]
            created = drive_stamp(channel["createdDateTime"])
            site = drives.add_site(
                f"{base}-{suffix}"[:90], f"{team['displayName']} - {channel['displayName']}", created
            )
            channel["_site"] = site["id"]
            channel["_drive"] = drives.add_library(site, "Documents", created)["id"]
        library = drives.drives[channel["_drive"]]
    root = drives.items[library["_root"]]
    folder = drives.child(root, channel["displayName"])
    if folder is None:
        folder = drives.create_item(
            root,
            channel["displayName"],
            folder=True,
            validate=False,
            created=drive_stamp(channel["createdDateTime"]),
        )[0]
    return dict(folder)


def render_channel(channel: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in channel.items() if not k.startswith("_")}


def delete_channel(t: TenantState, channel: dict[str, Any]) -> None:
    """channel-delete: the General channel cannot be deleted; the name stays taken (the channel is
    soft-deleted for 30 days), so it is kept, marked."""
    if channel.get("_general"):
        raise GraphError(400, "BadRequest", "The General channel cannot be deleted.")
    store = store_of(t)
    store.channels.pop(channel["id"], None)
    store.messages.pop(channel["id"], None)
    store.tabs.pop(channel["id"], None)


def update_channel(channel: dict[str, Any], body: Any) -> None:
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    for key in body:
        if key not in ("displayName", "description", "isFavoriteByDefault"):
            raise GraphError(400, "BadRequest", f"Property '{key}' cannot be updated on a channel.")
    if "displayName" in body:
        if channel.get("_general"):
            raise GraphError(400, "BadRequest", "The General channel cannot be renamed.")
        problem = channel_name_problem(body["displayName"])
        if problem:
            raise GraphError(400, "BadRequest", problem)
    channel.update(body)


def start_migration(channel: dict[str, Any], body: Any, *, app_id: str) -> None:
    """channel-startmigration: the calling app owns the session; the optional conversationCreationDateTime
    must be older than the channel's createdDateTime and replaces it."""
    if channel.get("migrationMode") == "inProgress":
        if channel.get("_migration") != app_id:
            raise GraphError(403, "Forbidden", "Another application owns this channel's migration session.")
        raise GraphError(409, "Conflict", "The channel is already in migration mode.")
    when = (body or {}).get("conversationCreationDateTime") if isinstance(body, dict) else None
    if when is not None:
        stamp = parse_time(when, "conversationCreationDateTime")
        if stamp >= parse_time(channel["createdDateTime"], "createdDateTime"):
            raise GraphError(
                400,
                "BadRequest",
                "conversationCreationDateTime must be older than the channel's createdDateTime.",
            )
        channel["createdDateTime"] = iso_ms(stamp)
    channel["migrationMode"] = "inProgress"
    channel["_migration"] = app_id


def complete_migration(channel: dict[str, Any], *, app_id: str) -> None:
    """channel-completemigration: only the app that started the session; migrationMode becomes completed."""
    if channel.get("migrationMode") != "inProgress":
        raise GraphError(400, "BadRequest", "The channel is not in migration mode.")
    if channel.get("_migration") != app_id:
        raise GraphError(403, "Forbidden", "Only the application that started the migration can complete it.")
    channel["migrationMode"] = "completed"


def complete_team_migration(t: TenantState, team: dict[str, Any], *, app_id: str) -> None:
    """team-completemigration: ends a team's migration mode; its channels are completed first (stricter
    reading), and only by the app that created it in migration mode."""
    if not team.get("_migration"):
        raise GraphError(400, "BadRequest", "The team is not in migration mode.")
    if team["_migration"] != app_id:
        raise GraphError(403, "Forbidden", "Only the application that started the migration can complete it.")
    open_channels = [
        c
        for c in store_of(t).channels_of(team["id"])
        if c.get("migrationMode") == "inProgress" and not c.get("_general")
    ]
    if open_channels:
        raise GraphError(
            400, "BadRequest", f"Complete the migration of channel '{open_channels[0]['displayName']}' first."
        )
    general = store_of(t).general(team["id"])
    if general.get("migrationMode") == "inProgress":
        general["migrationMode"] = "completed"
    team.pop("_migration", None)


# ---- tabs --------------------------------------------------------------------------------------------------
def create_tab(t: TenantState, channel: dict[str, Any], body: Any) -> dict[str, Any]:
    """POST /teams/{id}/channels/{id}/tabs (channel-post-tabs, teams-configuring-builtin-tabs): a known
    teamsApp, a display name, and for website tabs an https contentUrl and websiteUrl; file tabs need the
    file's entityId and contentUrl."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    bind = body.get("teamsApp@odata.bind")
    m = _APP_BIND_RE.search(bind) if isinstance(bind, str) else None
    if m is None:
        raise GraphError(400, "BadRequest", "teamsApp@odata.bind is required.")
    app = m.group(1)
    if app not in TAB_APPS:
        raise GraphError(404, "NotFound", f"App {app[:60]} is not installed in this team.")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise GraphError(400, "BadRequest", "A tab needs a displayName of at most 128 characters.")
    config = body.get("configuration") or {}
    if not isinstance(config, dict):
        raise GraphError(400, "BadRequest", "Invalid value for 'configuration'.")
    if app == "com.microsoft.teamspace.tab.web":
        for key in ("contentUrl", "websiteUrl"):
            if not str(config.get(key) or "").startswith("https://"):
                raise GraphError(400, "BadRequest", f"A website tab needs an https '{key}'.")
    elif app.startswith("com.microsoft.teamspace.tab.file.") and (
        not config.get("entityId") or not str(config.get("contentUrl") or "").startswith("https://")
    ):
        raise GraphError(400, "BadRequest", "A file tab needs the file's entityId and an https contentUrl.")
    tab_id = store_of(t).new_id("tab")
    tab = {
        "id": tab_id,
        "displayName": name,
        "webUrl": f"https://teams.microsoft.com/l/entity/{app}/{tab_id}",
        "configuration": {
            "entityId": config.get("entityId"),
            "contentUrl": config.get("contentUrl"),
            "websiteUrl": config.get("websiteUrl"),
            "removeUrl": config.get("removeUrl"),
        },
        "_app": app,
    }
    store_of(t).tabs.setdefault(channel["id"], {})[tab_id] = tab
    return tab


def render_tab(tab: dict[str, Any], expand: bool) -> dict[str, Any]:
    out = {k: v for k, v in tab.items() if not k.startswith("_")}
    if expand:
        out["teamsApp"] = {
            "id": tab["_app"],
            "externalId": None,
            "displayName": TAB_APPS.get(tab["_app"]),
            "distributionMethod": "store",
        }
    return out
