"""Graph v1.0 Teams endpoints: teams, channels, files folders, tabs, members, messages, migration mode; the
Teams service limits; admin routes tests use (post at the source, read what was imported, approve an app
for protected APIs).

Each handler names the Microsoft page it follows (docs/sandbox.md, "Teams").
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import teams_messages as tm
from sandbox import teams_ops as ops
from sandbox.errors import GraphError, from_exception
from sandbox.teams_state import TeamsStore
from sandbox.throttle import SlidingWindow
from sandbox.world import TenantState, World

V = "/v1.0"
CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"
MESSAGES_DEFAULT_TOP = 20
MESSAGES_MAX_TOP = 50

Handler = Callable[[Request], Awaitable[Response]]


# ---- Teams service limits -----------------------------------------------------------------------------
class TeamsLimits:
    """learn.microsoft.com/graph/throttling-limits, "Microsoft Teams service limits": per app, a few requests
    a second per team and per channel, POST /teams per tenant, message import per channel. Budgets come from
    the settings (teams_per_team, teams_create, teams_import); throttling off turns them off."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, ...], SlidingWindow] = {}

    def check(self, world: World, key: tuple[str, ...], budget: Any) -> float | None:
        if not world.settings.throttling:
            return None
        now = time.monotonic()
        with self._lock:
            w = self._windows.get(key)
            if w is None or (w.limit, w.seconds) != (budget.limit, budget.seconds):
                w = self._windows[key] = SlidingWindow(budget.limit, budget.seconds)
            wait = w.wait_for(now, 1)
            if wait > 0:
                return wait
            w.add(now, 1)
            return None


LIMITS = TeamsLimits()


def _throttled(wait: float, scope: str) -> GraphError:
    return GraphError(
        429,
        "TooManyRequests",
        "Too many requests.",
        headers={"Retry-After": str(max(1, math.ceil(wait))), "x-ms-throttle-scope": scope},
    )


def _limit(request: Request, t: TenantState) -> None:
    world: World = request.state.world
    s = world.settings
    app = str(request.state.app_id).lower()
    p = request.path_params
    path = request.url.path
    if request.method == "POST" and path.rstrip("/") == f"{V}/teams":
        wait = LIMITS.check(world, ("create", t.id, app), s.teams_create)
        if wait is not None:
            raise _throttled(wait, f"Tenant_Application/TeamsCreate/{app}/{t.id}")
    if "cid" in p:
        key: tuple[str, ...] = ("channel", t.id, app, p["cid"])
        if request.method == "POST" and (path.endswith("/messages") or path.endswith("/replies")):
            wait = LIMITS.check(world, ("import", t.id, app, p["cid"]), s.teams_import)
            if wait is not None:
                raise _throttled(wait, f"Channel_Application/Import/{app}/{p['cid']}")
    elif "tid_" in p:
        key = ("team", t.id, app, p["tid_"])
    else:
        return
    wait = LIMITS.check(world, key, s.teams_per_team)
    if wait is not None:
        raise _throttled(wait, f"Team_Application/{app}/{key[-1]}")


def teams_route(fn: Callable[[Request, TenantState, TeamsStore], Awaitable[Response]]) -> Handler:
    @wraps(fn)
    async def handler(request: Request) -> Response:
        t: TenantState = request.state.tenant
        try:
            _limit(request, t)
            return await fn(request, t, ops.store_of(t))
        except GraphError as exc:
            return from_exception(exc)

    return handler


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    try:
        return json.loads(raw)
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None


def _ok(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"OData-Version": "4.0", **(headers or {})})


def _app(request: Request) -> str:
    return str(request.state.app_id).lower()


def _roles(request: Request) -> list[str]:
    return list(request.state.roles)


def _world(request: Request) -> World:
    world: World = request.state.world
    return world


def _changed(request: Request) -> None:
    _world(request).dirty = True


# ---- teams -------------------------------------------------------------------------------------------------
@teams_route
async def put_group_team(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """PUT /groups/{id}/team (team-put-teams): 201 with the team."""
    body = await _json(request)
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    template = ops.parse_template(body) if "template@odata.bind" in body else "standard"
    team = ops.create_team_from_group(
        t,
        request.path_params["gid"],
        {k: v for k, v in body.items() if k != "template@odata.bind"},
        template=template,
        provisioning_delay_s=_world(request).settings.teams_group_delay_s,
    )
    _changed(request)
    return _ok({"@odata.context": f"{CONTEXT}teams/$entity", **ops.render_team(team)}, 201)


@teams_route
async def get_group_team(request: Request, t: TenantState, store: TeamsStore) -> Response:
    return _ok(ops.render_team(ops.team_of(t, request.path_params["gid"])))


@teams_route
async def post_teams(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """POST /teams (team-post): 202 Accepted, Location the teamsAsyncOperation, Content-Location the team."""
    s = _world(request).settings
    gid, op = ops.create_team(
        t,
        await _json(request),
        app_id=_app(request),
        roles=_roles(request),
        provisioning_delay_s=s.teams_group_delay_s,
        operation_s=s.teams_operation_s,
    )
    _changed(request)
    return Response(
        status_code=202,
        headers={"Location": f"/teams('{gid}')/operations('{op}')", "Content-Location": f"/teams('{gid}')"},
    )


@teams_route
async def list_teams(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /teams (teams-list): id, displayName, description of every team."""
    out = []
    for gid in sorted(store.teams):
        try:
            team = ops.team_of(t, gid)
        except GraphError:
            continue
        out.append({k: team.get(k) for k in ("id", "displayName", "description", "isArchived", "tenantId")})
    return _ok({"@odata.context": f"{CONTEXT}teams", "value": out})


@teams_route
async def get_team(request: Request, t: TenantState, store: TeamsStore) -> Response:
    return _ok(ops.render_team(ops.team_of(t, request.path_params["tid_"])))


@teams_route
async def patch_team(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ops.update_team(t, ops.team_of(t, request.path_params["tid_"]), await _json(request))
    _changed(request)
    return Response(status_code=204)


@teams_route
async def get_operation(request: Request, t: TenantState, store: TeamsStore) -> Response:
    op = store.operations.get(request.path_params["op"])
    if op is None or op["_team"] != request.path_params["tid_"]:
        raise GraphError(404, "NotFound", "Operation not found.")
    return _ok(ops.render_operation(op))


@teams_route
async def team_members(request: Request, t: TenantState, store: TeamsStore) -> Response:
    team = ops.team_of(t, request.path_params["tid_"])
    return _ok({"value": ops.team_members(t, team["id"])})


@teams_route
async def installed_apps(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /teams/{id}/installedApps (team-list-installedapps), with $expand=teamsApp."""
    team = ops.team_of(t, request.path_params["tid_"])
    expand = "teamsApp" in (request.query_params.get("$expand") or "")
    out = []
    for app in team.get("_installedApps", []):
        item: dict[str, Any] = {"id": f"{team['id']}##{app['id']}"}
        if expand:
            item["teamsApp"] = {
                "id": app["id"],
                "displayName": app["displayName"],
                "distributionMethod": "store",
            }
        out.append(item)
    return _ok({"value": out})


@teams_route
async def complete_team_migration(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ops.complete_team_migration(t, ops.team_of(t, request.path_params["tid_"]), app_id=_app(request))
    _changed(request)
    return Response(status_code=204)


# ---- channels ----------------------------------------------------------------------------------------------
def _channel(request: Request, t: TenantState, store: TeamsStore) -> dict[str, Any]:
    team = ops.team_of(t, request.path_params["tid_"])
    return store.channel(team["id"], request.path_params["cid"])


@teams_route
async def list_channels(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /teams/{id}/channels (channel-list); $filter=membershipType eq '...'."""
    team = ops.team_of(t, request.path_params["tid_"])
    found = [ops.render_channel(c) for c in store.channels_of(team["id"])]
    flt = request.query_params.get("$filter")
    if flt:
        parts = flt.split()
        if len(parts) != 3 or parts[0] != "membershipType" or parts[1] != "eq":
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {flt[:80]}")
        found = [c for c in found if c["membershipType"] == parts[2].strip("'")]
    return _ok({"@odata.context": f"{CONTEXT}teams('{team['id']}')/channels", "value": found})


@teams_route
async def post_channel(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """POST /teams/{id}/channels (channel-post): 201 with the channel."""
    team = ops.team_of(t, request.path_params["tid_"])
    channel = ops.create_channel(t, team, await _json(request), app_id=_app(request), roles=_roles(request))
    _changed(request)
    return _ok(ops.render_channel(channel), 201)


@teams_route
async def get_channel(request: Request, t: TenantState, store: TeamsStore) -> Response:
    return _ok(ops.render_channel(_channel(request, t, store)))


@teams_route
async def primary_channel(request: Request, t: TenantState, store: TeamsStore) -> Response:
    team = ops.team_of(t, request.path_params["tid_"])
    return _ok(ops.render_channel(store.general(team["id"])))


@teams_route
async def patch_channel(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ops.update_channel(_channel(request, t, store), await _json(request))
    _changed(request)
    return Response(status_code=204)


@teams_route
async def delete_channel(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ops.delete_channel(t, _channel(request, t, store))
    _changed(request)
    return Response(status_code=204)


@teams_route
async def files_folder(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /teams/{id}/channels/{id}/filesFolder (channel-get-filesfolder): the channel's driveItem."""
    folder = ops.files_folder(t, _channel(request, t, store))
    return _ok(t.drives.render(t.drives.items[folder["id"]]))


@teams_route
async def channel_members(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /teams/{id}/channels/{id}/members (channel-list-members): a standard channel has the team's."""
    ch = _channel(request, t, store)
    if ch["membershipType"] == "standard":
        return _ok({"value": ops.team_members(t, ch["_team"])})
    owners = ch.get("_owners", {})
    ids = [*owners, *ch.get("_members", {})]
    return _ok({"value": [ops.conversation_member(t, uid, uid in owners) for uid in ids]})


@teams_route
async def start_migration(request: Request, t: TenantState, store: TeamsStore) -> Response:
    raw = await request.body()
    ops.start_migration(_channel(request, t, store), json.loads(raw) if raw else {}, app_id=_app(request))
    _changed(request)
    return Response(status_code=204)


@teams_route
async def complete_migration(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ops.complete_migration(_channel(request, t, store), app_id=_app(request))
    _changed(request)
    return Response(status_code=204)


# ---- tabs --------------------------------------------------------------------------------------------------
@teams_route
async def list_tabs(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    expand = "teamsApp" in (request.query_params.get("$expand") or "")
    return _ok({"value": [ops.render_tab(tab, expand) for tab in store.tabs.get(ch["id"], {}).values()]})


@teams_route
async def post_tab(request: Request, t: TenantState, store: TeamsStore) -> Response:
    tab = ops.create_tab(t, _channel(request, t, store), await _json(request))
    _changed(request)
    return _ok(ops.render_tab(tab, True), 201)


@teams_route
async def get_tab(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    tab = store.tabs.get(ch["id"], {}).get(request.path_params["tab"])
    if tab is None:
        raise GraphError(404, "NotFound", "Tab not found.")
    return _ok(ops.render_tab(tab, "teamsApp" in (request.query_params.get("$expand") or "")))


@teams_route
async def delete_tab(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    if store.tabs.get(ch["id"], {}).pop(request.path_params["tab"], None) is None:
        raise GraphError(404, "NotFound", "Tab not found.")
    _changed(request)
    return Response(status_code=204)


# ---- messages ----------------------------------------------------------------------------------------------
def _protected(request: Request, store: TeamsStore) -> None:
    tm.check_protected(store, _app(request), _world(request).settings.teams_protected_api_approved)


def _page(request: Request, items: list[dict[str, Any]], default_top: int = MESSAGES_DEFAULT_TOP) -> Response:
    raw = request.query_params.get("$top")
    try:
        top = int(raw) if raw is not None else default_top
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw[:20]}' for $top.") from None
    if not 1 <= top <= MESSAGES_MAX_TOP:
        raise GraphError(400, "BadRequest", f"The $top value must be between 1 and {MESSAGES_MAX_TOP}.")
    start = int(request.query_params.get("$skiptoken") or 0)
    body: dict[str, Any] = {"value": [tm.render_message(m) for m in items[start : start + top]]}
    if start + top < len(items):
        q = dict(request.query_params)
        q["$skiptoken"] = str(start + top)
        from urllib.parse import urlencode

        host = request.headers.get("host") or "graph.microsoft.com"
        body["@odata.nextLink"] = f"{request.url.scheme}://{host}{request.url.path}?{urlencode(q)}"
    return _ok(body)


@teams_route
async def list_messages(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET .../messages (channel-list-messages): root messages, newest first, $top up to 50, protected."""
    ch = _channel(request, t, store)
    _protected(request, store)
    return _page(request, store.top_level(ch["id"]))


@teams_route
async def get_message(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    _protected(request, store)
    return _ok(tm.render_message(store.message(ch["id"], request.path_params["mid"])))


@teams_route
async def list_replies(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    _protected(request, store)
    store.message(ch["id"], request.path_params["mid"])
    return _page(request, store.replies(ch["id"], request.path_params["mid"]))


@teams_route
async def get_reply(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    _protected(request, store)
    reply = store.message(ch["id"], request.path_params["rid"])
    if reply.get("replyToId") != request.path_params["mid"]:
        raise GraphError(404, "NotFound", "Reply not found.")
    return _ok(tm.render_message(reply))


@teams_route
async def post_message(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """POST .../messages (chatmessage-post; teams-import-messages in migration mode): 201 with the message."""
    ch = _channel(request, t, store)
    msg = tm.import_message(t, store, ch, await _json(request), app_id=_app(request))
    _changed(request)
    return _ok(tm.render_message(msg), 201)


@teams_route
async def post_reply(request: Request, t: TenantState, store: TeamsStore) -> Response:
    ch = _channel(request, t, store)
    parent = store.message(ch["id"], request.path_params["mid"])
    if parent.get("replyToId"):
        raise GraphError(400, "BadRequest", "Replies can only be made to a root message.")
    msg = tm.import_message(t, store, ch, await _json(request), app_id=_app(request), reply_to=parent)
    _changed(request)
    return _ok(tm.render_message(msg), 201)


def _hosted_of(request: Request, t: TenantState, store: TeamsStore) -> tuple[dict[str, Any], str]:
    ch = _channel(request, t, store)
    _protected(request, store)
    msg = store.message(ch["id"], request.path_params.get("rid") or request.path_params["mid"])
    return msg, f"{ch['id']}/{msg['id']}"


@teams_route
async def list_hosted(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET .../hostedContents (chatmessage-list-hostedcontents): ids and types; bytes through $value."""
    msg, _ = _hosted_of(request, t, store)
    return _ok(
        {"value": [{"id": hid, "contentBytes": None, "contentType": None} for hid in msg.get("_hosted", [])]}
    )


@teams_route
async def hosted_value(request: Request, t: TenantState, store: TeamsStore) -> Response:
    import base64

    _, key = _hosted_of(request, t, store)
    data = store.hosted.get(f"{key}/{request.path_params['hid']}")
    if data is None:
        raise GraphError(404, "NotFound", "Hosted content not found.")
    return Response(base64.b64decode(data["bytes"]), media_type=data["contentType"])


# ---- admin (outside Graph) ---------------------------------------------------------------------------------
def _admin_tenant(request: Request) -> TenantState:
    world: World = request.app.state.world
    t = world.tenant(request.path_params["tid"])
    if t is None:
        raise GraphError(404, "NotFound", "unknown tenant")
    return t


def _admin(fn: Callable[[Request, TenantState, TeamsStore], Awaitable[Response]]) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            t = _admin_tenant(request)
            response = await fn(request, t, ops.store_of(t))
        except GraphError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        request.app.state.world.dirty = True
        return response

    return handler


@_admin
async def admin_post_message(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """POST /sandbox/tenants/{tid}/teams/{team}/channels/{cid}/messages {"from": user id or UPN, "content",
    optional "createdDateTime", "replyToId", "hostedContents"}: a message at the source, as a user posts
    it."""
    ch = store.channel(request.path_params["team"], request.path_params["cid"])
    body = json.loads(await request.body() or b"{}")
    return JSONResponse(tm.render_message(tm.admin_post(t, store, ch, body)), status_code=201)


@_admin
async def admin_messages(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """GET /sandbox/tenants/{tid}/teams/{team}/channels/{cid}/messages: every message and reply, oldest
    first, with the channel's migrationMode, for assertions (no protected-API check)."""
    ch = store.channel(request.path_params["team"], request.path_params["cid"])
    msgs = sorted(store.messages.get(ch["id"], {}).values(), key=lambda m: m["id"])
    return JSONResponse(
        {
            "migrationMode": ch.get("migrationMode"),
            "value": [tm.render_message(m) for m in msgs],
        }
    )


@_admin
async def admin_protected(request: Request, t: TenantState, store: TeamsStore) -> Response:
    """POST /sandbox/tenants/{tid}/teams/protected-api {"appId", "approved": bool}: Microsoft's approval of an
    app for protected Teams APIs (teams-protected-apis)."""
    body = json.loads(await request.body() or b"{}")
    app = str(body["appId"]).lower()
    if body.get("approved", True):
        store.approved_apps[app] = None
    else:
        store.approved_apps.pop(app, None)
    return JSONResponse({"approved": sorted(store.approved_apps)})


def teams_routes() -> list[Route]:
    team = f"{V}/teams/{{tid_}}"
    ch = f"{team}/channels/{{cid}}"
    msg = f"{ch}/messages/{{mid}}"
    return [
        Route(f"{V}/groups/{{gid}}/team", put_group_team, methods=["PUT"]),
        Route(f"{V}/groups/{{gid}}/team", get_group_team, methods=["GET"]),
        Route(f"{V}/teams", post_teams, methods=["POST"]),
        Route(f"{V}/teams", list_teams, methods=["GET"]),
        Route(team, get_team, methods=["GET"]),
        Route(team, patch_team, methods=["PATCH"]),
        Route(f"{team}/operations/{{op}}", get_operation, methods=["GET"]),
        Route(f"{team}/members", team_members, methods=["GET"]),
        Route(f"{team}/installedApps", installed_apps, methods=["GET"]),
        Route(f"{team}/completeMigration", complete_team_migration, methods=["POST"]),
        Route(f"{team}/primaryChannel", primary_channel, methods=["GET"]),
        Route(f"{team}/channels", list_channels, methods=["GET"]),
        Route(f"{team}/channels", post_channel, methods=["POST"]),
        Route(ch, get_channel, methods=["GET"]),
        Route(ch, patch_channel, methods=["PATCH"]),
        Route(ch, delete_channel, methods=["DELETE"]),
        Route(f"{ch}/filesFolder", files_folder, methods=["GET"]),
        Route(f"{ch}/members", channel_members, methods=["GET"]),
        Route(f"{ch}/startMigration", start_migration, methods=["POST"]),
        Route(f"{ch}/completeMigration", complete_migration, methods=["POST"]),
        Route(f"{ch}/tabs", list_tabs, methods=["GET"]),
        Route(f"{ch}/tabs", post_tab, methods=["POST"]),
        Route(f"{ch}/tabs/{{tab}}", get_tab, methods=["GET"]),
        Route(f"{ch}/tabs/{{tab}}", delete_tab, methods=["DELETE"]),
        Route(f"{ch}/messages", list_messages, methods=["GET"]),
        Route(f"{ch}/messages", post_message, methods=["POST"]),
        Route(msg, get_message, methods=["GET"]),
        Route(f"{msg}/replies", list_replies, methods=["GET"]),
        Route(f"{msg}/replies", post_reply, methods=["POST"]),
        Route(f"{msg}/replies/{{rid}}", get_reply, methods=["GET"]),
        Route(f"{msg}/hostedContents", list_hosted, methods=["GET"]),
        Route(f"{msg}/hostedContents/{{hid}}/$value", hosted_value, methods=["GET"]),
        Route(f"{msg}/replies/{{rid}}/hostedContents", list_hosted, methods=["GET"]),
        Route(f"{msg}/replies/{{rid}}/hostedContents/{{hid}}/$value", hosted_value, methods=["GET"]),
        Route("/sandbox/teams/settings", admin_teams_settings, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/teams/protected-api", admin_protected, methods=["POST"]),
        Route(
            "/sandbox/tenants/{tid}/teams/{team}/channels/{cid}/messages",
            admin_post_message,
            methods=["POST"],
        ),
        Route("/sandbox/tenants/{tid}/teams/{team}/channels/{cid}/messages", admin_messages, methods=["GET"]),
    ]


async def admin_teams_settings(request: Request) -> Response:
    """POST /sandbox/teams/settings {"teams_per_team": "N/S", "teams_create": "N/S", "teams_import": "N/S",
    "teams_group_delay_s", "teams_operation_s", "teams_protected_api_approved": bool}: the Teams knobs."""
    from sandbox.settings import parse_budget

    world: World = request.app.state.world
    try:
        body = json.loads(await request.body() or b"{}")
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key in ("teams_per_team", "teams_create", "teams_import"):
                changes[key] = parse_budget(str(value), key.replace("_", " "))
            elif key in ("teams_group_delay_s", "teams_operation_s"):
                seconds = float(value)
                if not 0 <= seconds <= 900:
                    raise ValueError(f"{key} must be between 0 and 900 seconds")
                changes[key] = seconds
            elif key == "teams_protected_api_approved":
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                changes[key] = value
            else:
                raise ValueError(f"unknown Teams setting {key!r}")
    except (ValueError, TypeError, AttributeError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    world.apply_settings(world.settings.replace(**changes))
    return JSONResponse({k: v for k, v in world.settings.public().items() if k.startswith("teams_")})
