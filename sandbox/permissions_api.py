"""Item permission routes: list, get, update and delete permissions; invite; createLink.

Graph paths (authenticated and throttled as SharePoint requests by the core pipeline, 5 resource units each):
/drives/{drive-id}/items/{item-id}/permissions[/{perm-id}], .../invite, .../createLink, and the same under
/users/{user-id}/drive/items/{item-id}. Outside Graph:
/sandbox/tenants/{tid}/sharing (GET: the policy and every invitation requested; POST: set the policy).
Sources: learn.microsoft.com/graph/api/driveitem-list-permissions, permission-get, permission-update,
permission-delete, driveitem-invite, driveitem-createlink, resources/permission (see docs/sandbox.md).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import permissions_state as ps
from sandbox.drives_state import DriveStore
from sandbox.errors import GraphError, from_exception, now_iso
from sandbox.world import TenantState, World


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise GraphError(400, "invalidRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "invalidRequest", "The request body must be a JSON object.")
    return body


def _item(request: Request) -> tuple[TenantState, DriveStore, dict[str, Any]]:
    tenant: TenantState = request.state.tenant
    store: DriveStore = tenant.drives
    did = request.path_params.get("did")
    if did is None:
        # /users/{id}/drive/items/{id}/...: an address each of these pages lists beside /drives/{id}/...
        from sandbox.drives_api import _user_drive

        did = _user_drive(tenant, request.path_params["uid"])["id"]
    item = store.item(did, request.path_params["iid"])
    return tenant, store, item


def _retain(item: dict[str, Any], body: dict[str, Any]) -> None:
    """retainInheritedPermissions: optional, true by default (driveitem-invite, driveitem-createlink)."""
    retain = body.get("retainInheritedPermissions", True)
    if not isinstance(retain, bool):
        raise GraphError(400, "invalidRequest", "retainInheritedPermissions must be a boolean.")
    if not retain:
        ps.start_afresh(item)


def _dirty(request: Request) -> None:
    world: World = request.state.world
    world.dirty = True


async def permissions(request: Request) -> Response:
    _, store, item = _item(request)
    pid = request.path_params.get("pid")
    if pid is None:
        if request.method != "GET":
            raise GraphError(405, "invalidRequest", f"The HTTP method '{request.method}' is not allowed.")
        return JSONResponse({"value": [ps.render(store, p, src) for p, src in ps.effective(store, item)]})
    found = next(((p, src) for p, src in ps.effective(store, item) if p["id"] == pid), None)
    if found is None:
        raise GraphError(404, "itemNotFound", "The permission could not be found.")
    perm, source = found
    if request.method == "GET":
        return JSONResponse(ps.render(store, perm, source))
    if source is not None or ps.find(item, pid) is None:
        raise GraphError(
            400, "invalidRequest", "Only permissions that are not inherited can be changed or deleted."
        )
    if request.method == "DELETE":
        ps.remove(store, item, pid)
        _dirty(request)
        return Response(status_code=204)
    if request.method == "PATCH":
        body = await _body(request)
        if set(body) - {"roles"} or not _roles_ok(body.get("roles")):
            raise GraphError(400, "invalidRequest", "Only roles ('read' or 'write') can be updated.")
        if perm["kind"] == "link":
            raise GraphError(400, "invalidRequest", "The roles of a sharing link cannot be changed.")
        ps.set_roles(store, item, perm, body["roles"])
        _dirty(request)
        return JSONResponse(ps.render(store, perm, None))
    raise GraphError(405, "invalidRequest", f"The HTTP method '{request.method}' is not allowed.")


def _roles_ok(roles: Any) -> bool:
    return isinstance(roles, list) and bool(roles) and all(r in ps.ROLES for r in roles)


def _recipient(tenant: TenantState, r: Any) -> tuple[dict[str, Any], bool]:
    """(grant template, external) for one driveRecipient: objectId of a user or group, or an e-mail."""
    if not isinstance(r, dict):
        raise GraphError(400, "invalidRequest", "Each recipient must be a driveRecipient object.")
    if r.get("objectId"):
        oid = str(r["objectId"])
        if oid in tenant.users:
            user = tenant.users[oid]
            return ps.user_grant(user, []), user.get("userType") == "Guest"
        if oid in tenant.groups:
            return ps.group_grant(tenant.groups[oid], []), False
        raise GraphError(400, "invalidRequest", "One or more users could not be resolved.")
    email = str(r.get("email") or r.get("alias") or "")
    if not email or "@" not in email:
        raise GraphError(400, "invalidRequest", "A recipient needs an objectId or an email address.")
    lower = email.lower()
    user = tenant.user_by_key(email) or next(
        (u for u in tenant.users.values() if str(u.get("mail") or "").lower() == lower), None
    )
    if user is not None:
        return ps.user_grant(user, []), user.get("userType") == "Guest"
    external = {"id": None, "displayName": email, "mail": email, "userPrincipalName": email}
    return ps.user_grant(external, []), True


async def invite(request: Request) -> Response:
    tenant, store, item = _item(request)
    body = await _body(request)
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise GraphError(400, "invalidRequest", "recipients must name at least one driveRecipient.")
    if not _roles_ok(body.get("roles")):
        raise GraphError(400, "invalidRequest", "roles must be a non-empty list of 'read' or 'write'.")
    for key in ("requireSignIn", "sendInvitation"):
        if key in body and not isinstance(body[key], bool):
            raise GraphError(400, "invalidRequest", f"{key} must be a boolean.")
    # Stricter reading: an absent sendInvitation is an invitation e-mail (the docs give no default).
    send = body.get("sendInvitation", True)
    sign_in = body.get("requireSignIn", False)
    if not send and not sign_in:
        raise GraphError(400, "invalidRequest", "requireSignIn must be true when sendInvitation is false.")
    resolved = [_recipient(tenant, r) for r in recipients]
    capability = ps.policy(store)["sharingCapability"]
    if any(ext for _, ext in resolved) and capability == "disabled":
        raise GraphError(403, "accessDenied", "External sharing is disabled by the tenant's sharing policy.")
    ps.check_scope_limit(store, item)
    _retain(item, body)
    ps.invitations(store).append(
        {
            "item": item["id"],
            "drive": item["_drive"],
            "recipients": recipients,
            "roles": body["roles"],
            "sendInvitation": send,
            "requireSignIn": sign_in,
            "at": now_iso(),
        }
    )
    out = []
    for grant, external in resolved:
        grant["roles"] = list(body["roles"])
        if external:
            grant["invitation"] = {"email": grant["principal"]["email"], "signInRequired": sign_in}
        out.append(ps.render(store, ps.add(store, item, grant), None))
    _dirty(request)
    return JSONResponse({"value": out})


_EXPIRY = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z")


def _expiry(value: Any) -> str | None:
    """createLink's expirationDateTime: "yyyy-MM-ddTHH:mm:ssZ"; stricter reading: a time already past is
    refused (such a link would grant nothing)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _EXPIRY.fullmatch(value):
        raise GraphError(
            400, "invalidRequest", "expirationDateTime must be a date-time like 2026-07-15T14:00:00Z."
        )
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when <= datetime.now(UTC):
        raise GraphError(400, "invalidRequest", "expirationDateTime must be in the future.")
    return value


async def create_link(request: Request) -> Response:
    _, store, item = _item(request)
    body = await _body(request)
    link_type = body.get("type")
    if link_type == "embed":
        raise GraphError(400, "notSupported", "Embed links are supported in OneDrive personal only.")
    if link_type not in ps.LINK_ROLES:
        # v1.0 documents view, edit and embed only (blocksDownload and the other variants are beta).
        raise GraphError(400, "invalidRequest", "type must be 'view' or 'edit'.")
    if "password" in body:
        # "The password of the sharing link ... Optional and OneDrive Personal only."
        raise GraphError(
            400, "invalidRequest", "A password can be set on sharing links in OneDrive personal only."
        )
    retain = body.get("retainInheritedPermissions", True)
    if retain is not None and not isinstance(retain, bool):
        raise GraphError(400, "invalidRequest", "retainInheritedPermissions must be a boolean.")
    # false (msgraph-sdk sends it unless told otherwise) is accepted and not emulated: inheritance is not
    # broken on first share (docs/sandbox.md names the gap; trustfold never sends false).
    expires = _expiry(body.get("expirationDateTime"))
    scope = body.get("scope") or "organization"
    if scope not in ps.SCOPES:
        raise GraphError(400, "invalidRequest", "scope must be 'anonymous', 'organization' or 'users'.")
    pol = ps.policy(store)
    if scope == "anonymous" and pol["sharingCapability"] != "externalUserAndGuestSharing":
        raise GraphError(403, "accessDenied", "Anyone links are disabled by the tenant's sharing policy.")
    if scope == "organization" and not pol.get("organizationLinks", True):
        raise GraphError(
            403, "accessDenied", "Organization links are disabled by the tenant's sharing policy."
        )
    if not isinstance(body.get("retainInheritedPermissions", True), bool):
        raise GraphError(400, "invalidRequest", "retainInheritedPermissions must be a boolean.")
    app_id = str(getattr(request.state, "app_id", "") or "app")
    for perm in item.get("_perms", []):
        link = perm.get("link") or {}
        if link.get("type") == link_type and link.get("scope") == scope and perm.get("_app") == app_id:
            # Documented: an existing link of that type for the calling application is returned.
            return JSONResponse(ps.render(store, perm, None), status_code=200)
    ps.check_scope_limit(store, item)
    _retain(item, body)
    perm = ps.add(store, item, ps.link_grant(link_type, scope, expires=expires, _app=app_id))
    _dirty(request)
    return JSONResponse(ps.render(store, perm, None), status_code=201)


# ---- admin (outside Graph) ------------------------------------------------------------------------------
def _seed_grant(tenant: TenantState, body: dict[str, Any]) -> dict[str, Any]:
    """A legacy tenant's grant as people made it in SharePoint's UI (what Graph cannot create: passwords,
    block-download, site groups); ValueError names the bad field."""
    kind = body.get("kind")
    if kind == "link":
        if body.get("type") not in ps.LINK_ROLES:
            raise ValueError("type must be 'view' or 'edit'")
        if body.get("scope") not in ps.SCOPES:
            raise ValueError("scope must be 'anonymous', 'organization' or 'users'")
        for key in ("preventsDownload", "hasPassword"):
            if not isinstance(body.get(key, False), bool):
                raise ValueError(f"{key} must be a boolean")
        expires = body.get("expirationDateTime")
        if expires is not None and (not isinstance(expires, str) or not _EXPIRY.fullmatch(expires)):
            raise ValueError("expirationDateTime must be a date-time like 2026-07-15T14:00:00Z")
        people = []
        for uid in body.get("people") or []:
            if uid not in tenant.users:
                raise ValueError(f"people: no user {uid} in the tenant")
            people.append(tenant.users[uid])
        if people and body["scope"] != "users":
            raise ValueError("people: only a users-scope link names people")
        return ps.link_grant(
            body["type"],
            body["scope"],
            prevents_download=bool(body.get("preventsDownload", False)),
            has_password=bool(body.get("hasPassword", False)),
            expires=expires,
            people=people,
        )
    roles = body.get("roles")
    if not isinstance(roles, list) or not _roles_ok(roles):
        raise ValueError("roles must be a non-empty list of 'read' or 'write'")
    if kind == "user" and body.get("id") in tenant.users:
        return ps.user_grant(tenant.users[body["id"]], roles)
    if kind == "group" and body.get("id") in tenant.groups:
        return ps.group_grant(tenant.groups[body["id"]], roles)
    if kind in ("user", "group"):
        raise ValueError(f"id: no {kind} {body.get('id')} in the tenant")
    if kind == "siteGroup" and isinstance(body.get("displayName"), str) and body["displayName"]:
        return ps.site_group_grant(body["displayName"], roles)
    raise ValueError("kind must be link, user, group or siteGroup (with displayName)")


async def admin_seed_permission(request: Request) -> Response:
    """POST /sandbox/tenants/{tid}/drives/{did}/items/{iid}/permissions: add one grant to an item."""
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse({"error": "unknown tenant"}, status_code=404)
    try:
        body = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        item = tenant.drives.item(request.path_params["did"], request.path_params["iid"])
        perm = ps.add(tenant.drives, item, _seed_grant(tenant, body))
    except GraphError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except ValueError as exc:
        return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
    world.dirty = True
    return JSONResponse(ps.render(tenant.drives, perm, None), status_code=201)


# ---- admin (outside Graph) ------------------------------------------------------------------------------
async def admin_sharing(request: Request) -> Response:
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse({"error": "unknown tenant"}, status_code=404)
    store: DriveStore = tenant.drives
    pol = ps.policy(store)
    if request.method == "POST":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": "bad request: body is not JSON"}, status_code=400)
        cap = body.get("sharingCapability", pol["sharingCapability"])
        if cap not in ps.CAPABILITIES:
            return JSONResponse(
                {"error": f"sharingCapability must be one of {', '.join(ps.CAPABILITIES)}"}, status_code=400
            )
        limit = body.get("uniqueScopesLimit", pol.get("uniqueScopesLimit", ps.UNIQUE_SCOPES_LIMIT))
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= ps.UNIQUE_SCOPES_LIMIT:
            return JSONResponse(
                {"error": f"uniqueScopesLimit must be a whole number from 1 to {ps.UNIQUE_SCOPES_LIMIT}"},
                status_code=400,
            )
        pol["sharingCapability"] = cap
        pol["organizationLinks"] = bool(body.get("organizationLinks", pol["organizationLinks"]))
        if "uniqueScopesLimit" in body or "uniqueScopesLimit" in pol:
            pol["uniqueScopesLimit"] = limit
        world.dirty = True  # saved with --state like every other change
    shown = {**pol, "uniqueScopesLimit": pol.get("uniqueScopesLimit", ps.UNIQUE_SCOPES_LIMIT)}
    return JSONResponse({"policy": shown, "invitations": ps.invitations(store)})


def _guard(fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except GraphError as exc:
            return from_exception(exc)

    return handler


ITEM = "/v1.0/drives/{did}/items/{iid}"
USER_ITEM = "/v1.0/users/{uid}/drive/items/{iid}"


def permission_routes() -> list[Route]:
    """Mounted ahead of the drive routes (whose catch-all path would take these)."""
    routes = []
    for base in (ITEM, USER_ITEM):
        routes += [
            Route(f"{base}/permissions", _guard(permissions), methods=["GET", "POST"]),
            Route(f"{base}/permissions/{{pid}}", _guard(permissions), methods=["GET", "PATCH", "DELETE"]),
            Route(f"{base}/invite", _guard(invite), methods=["POST"]),
            Route(f"{base}/createLink", _guard(create_link), methods=["POST"]),
        ]
    return [
        *routes,
        Route("/sandbox/tenants/{tid}/sharing", admin_sharing, methods=["GET", "POST"]),
        Route(
            "/sandbox/tenants/{tid}/drives/{did}/items/{iid}/permissions",
            admin_seed_permission,
            methods=["POST"],
        ),
    ]
