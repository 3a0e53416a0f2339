"""Admin (sandbox-only) mail routes under /sandbox, for tests, benchmarks and the demo: see mailboxes and
their items, add, change and delete items as a user or a sender would (incremental passes, the pass after
the domain cut-over), make shared and archive mailboxes (Exchange admin work Graph cannot do), set the
Outlook limits, expire import sessions and delta tokens. Bad input answers 400 with one line."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import mail_state as ms
from sandbox.admin_api import _body, _problem, _world
from sandbox.errors import GraphError, now_iso
from sandbox.generator_mail import shared_mailbox_user
from sandbox.settings import parse_budget
from sandbox.world import TenantState, World


def _tenant(request: Request) -> TenantState:
    t = _world(request).tenant(request.path_params["tid"])
    if t is None:
        raise LookupError(f"no tenant {request.path_params['tid'][:60]}")
    return t


def _mailbox(t: TenantState, mbx_id: str) -> dict[str, Any]:
    mbx = t.mail.mailboxes.get(mbx_id)
    if mbx is None:
        raise LookupError(f"no mailbox {mbx_id[:80]} in tenant {t.id}")
    return mbx


def _folder_by(mbx: dict[str, Any], key: str) -> dict[str, Any]:
    """A folder by id, well-known name or path ("Inbox/Projects")."""
    for f in mbx["folders"].values():
        if f["id"] == key or f.get("wellKnownName") == key.lower() or ms.folder_path(mbx, f["id"]) == key:
            return f
    raise LookupError(f"no folder {key[:80]} in mailbox {mbx['id']}")


def _item_view(mbx: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "folder": ms.folder_path(mbx, item["folderId"]),
        "folderId": item["folderId"],
        "type": item["type"],
        "changeKey": item["changeKey"],
        "size": item["size"],
        "createdDateTime": item["createdDateTime"],
        "lastModifiedDateTime": item["lastModifiedDateTime"],
        "props": item["props"],
    }


def _guard(fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            response: Response = await fn(request)
            return response
        except LookupError as exc:
            return _problem(str(exc).strip("'\""), 404)
        except (ValueError, TypeError) as exc:
            return _problem(str(exc))
        except GraphError as exc:
            return _problem(exc.message, exc.status)

    return handler


@_guard
async def mailboxes(request: Request) -> Response:
    """GET: the tenant's mailboxes. POST {"owner": user id, "kind": "shared"|"archive"|"primary",
    "delay_seconds": n}: make one (a shared mailbox needs no licence; an archive needs the owner's
    primary); POST {"kind": "shared", "address", "displayName"}: a shared mailbox with its own account, as
    the admin centre makes one."""
    world = _world(request)
    t = _tenant(request)
    store: ms.MailStore = t.mail
    if request.method == "GET":
        return JSONResponse(
            {
                "mailboxes": [
                    {
                        "id": m["id"],
                        "kind": m["kind"],
                        "owner": m["owner"],
                        "displayName": m["displayName"],
                        "address": m["address"],
                        "ready": store.ready(m),
                        "folders": len(m["folders"]) - 1,
                        "items": len(m["items"]),
                    }
                    for m in sorted(store.mailboxes.values(), key=lambda m: m["id"])
                ]
            }
        )
    body = await _body(request)
    kind = body.get("kind", "shared")
    if kind not in ms.KINDS:
        raise ValueError(f"kind must be one of {', '.join(ms.KINDS)}")
    if kind == "shared" and "owner" not in body:
        return _new_shared(world, t, body)
    if "owner" not in body:
        raise ValueError(f"kind {kind} needs an owner (a user id)")
    user = t.users.get(str(body.get("owner", "")))
    if user is None:
        raise LookupError(f"no user {str(body.get('owner'))[:60]} in tenant {t.id}")
    if kind == "archive" and "primary" not in store.by_user.get(user["id"], {}):
        raise ValueError("an archive mailbox needs the owner's primary mailbox first")
    delay = float(body.get("delay_seconds", 0))
    mbx = store.create_mailbox(
        user["id"],
        kind,
        str(user.get("displayName") or ""),
        str(user.get("mail") or user["userPrincipalName"]),
        ready_at=time.time() + delay,
    )
    world.dirty = True
    return JSONResponse({"id": mbx["id"], "kind": kind, "owner": user["id"]}, status_code=201)


def _new_shared(world: World, t: TenantState, body: dict[str, Any]) -> Response:
    """A shared mailbox as the Microsoft 365 admin centre makes one (Teams & groups > Shared mailboxes > Add a
    shared mailbox: a name and an address): Exchange creates its user account too, with a system password
    nobody knows, sign-in blocked and no licence (microsoft-365/admin/email/create-a-shared-mailbox,
    about-shared-mailboxes). Graph has no API for this; a trust names the mailboxes it made."""
    address = str(body.get("address") or "").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("address must be an email address (local@domain)")
    if domain.lower() not in t.verified_domains:
        raise ValueError(f"the address's domain {domain[:80]} is not a verified domain of tenant {t.id}")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("displayName is required (the shared mailbox's name)")
    if t.user_by_key(address) is not None:
        raise GraphError(409, "Conflict", f"a recipient with the address {address[:80]} already exists")
    user = shared_mailbox_user(t, str(uuid.uuid4()), now_iso(), name.strip(), address)
    mbx = t.mail.create_mailbox(user["id"], "shared", user["displayName"], address)
    world.dirty = True
    return JSONResponse(
        {"id": mbx["id"], "kind": "shared", "owner": user["id"], "address": address}, status_code=201
    )


@_guard
async def items(request: Request) -> Response:
    """GET ?folder=: a mailbox's items (all, or one folder's by id, well-known name or path).
    POST {"folder", "props": {"class": "IPM.Note", ...}}: a new item, as mail arriving or a user adding it."""
    world = _world(request)
    t = _tenant(request)
    mbx = _mailbox(t, request.path_params["mbx"])
    if request.method == "GET":
        want = request.query_params.get("folder")
        fid = _folder_by(mbx, want)["id"] if want else None
        out = [
            _item_view(mbx, it)
            for it in sorted(mbx["items"].values(), key=lambda it: it["_seq"])
            if fid is None or it["folderId"] == fid
        ]
        return JSONResponse({"mailbox": mbx["id"], "items": out})
    body = await _body(request)
    props = body.get("props")
    if not isinstance(props, dict):
        raise ValueError("props must be an object with a class (IPM.Note, IPM.Appointment, IPM.Contact, ...)")
    f = _folder_by(mbx, str(body.get("folder", "inbox")))
    item = ms.add_item(mbx, f["id"], props)
    world.dirty = True
    return JSONResponse(_item_view(mbx, item), status_code=201)


@_guard
async def item(request: Request) -> Response:
    """PATCH {"props": {...}}: change fields (merged; new change key). DELETE: remove (a delta tombstone)."""
    world = _world(request)
    t = _tenant(request)
    mbx = _mailbox(t, request.path_params["mbx"])
    current = mbx["items"].get(request.path_params["iid"])
    if current is None:
        raise LookupError(f"no item {request.path_params['iid'][:80]} in mailbox {mbx['id']}")
    if request.method == "DELETE":
        ms.remove_item(mbx, current["id"])
        world.dirty = True
        return Response(status_code=204)
    body = await _body(request)
    changes = body.get("props")
    if not isinstance(changes, dict):
        raise ValueError("props must be an object of fields to change")
    updated = ms.replace_item(mbx, current, {**current["props"], **changes})
    world.dirty = True
    return JSONResponse(_item_view(mbx, updated))


@_guard
async def expire(request: Request) -> Response:
    """POST {"sessions": true, "delta": true}: every import URL expires now; every delta token goes stale
    (410 SyncStateNotFound), as after Exchange loses sync state."""
    world = _world(request)
    t = _tenant(request)
    body = await _body(request)
    if body.get("sessions"):
        for s in t.mail.sessions.values():
            s["expires"] = 0.0
    if body.get("delta"):
        for m in t.mail.mailboxes.values():
            m["epoch"] = int(m.get("epoch", 0)) + 1
    world.dirty = True
    return JSONResponse(
        {"tenant": t.id, "sessions": bool(body.get("sessions")), "delta": bool(body.get("delta"))}
    )


_LIMIT_KEYS = (
    "outlook_requests",
    "outlook_concurrency",
    "outlook_upload",
    "mail_service_ms",
    "mail_provision_delay_s",
    "mail_import_session_s",
)


@_guard
async def limits(request: Request) -> Response:
    """POST {"outlook_requests": "N/S", "outlook_concurrency": n, "outlook_upload": "BYTES/S",
    "mail_service_ms": ms, "mail_provision_delay_s": s, "mail_import_session_s": s}; GET: the current ones."""
    world = _world(request)
    if request.method == "POST":
        body = await _body(request)
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key not in _LIMIT_KEYS:
                raise ValueError(f"unknown mail setting {key!r}")
            if key in ("outlook_requests", "outlook_upload"):
                changes[key] = parse_budget(value, key.replace("_", " "))
            elif key == "outlook_concurrency":
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
                    raise ValueError("outlook_concurrency must be a whole number from 1 to 100")
                changes[key] = value
            else:
                if (
                    not isinstance(value, int | float)
                    or isinstance(value, bool)
                    or not 0 <= value <= 86_400_000
                ):
                    raise ValueError(f"{key} must be a non-negative number")
                changes[key] = float(value)
        world.apply_settings(world.settings.replace(**changes))
    s = world.settings.public()
    return JSONResponse({k: s[k] for k in _LIMIT_KEYS} | {"refused": dict(world.mail_limiter.refused)})


def mail_admin_routes() -> list[Route]:
    base = "/sandbox/tenants/{tid}/mail"
    return [
        Route("/sandbox/mail/limits", limits, methods=["GET", "POST"]),
        Route(base + "/mailboxes", mailboxes, methods=["GET", "POST"]),
        Route(base + "/mailboxes/{mbx}/items", items, methods=["GET", "POST"]),
        Route(base + "/mailboxes/{mbx}/items/{iid}", item, methods=["PATCH", "DELETE"]),
        Route(base + "/expire", expire, methods=["POST"]),
    ]
