"""Drive, site and file-content routes of the sandbox.

Graph paths (authenticated and throttled by the core pipeline): /drives/{id}..., /users/{id}/drive...,
/sites/... Item addressing follows Graph: `root`, `items/{id}`, and path segments `root:/a/b:` or
`items/{id}:/name:` followed by an action (children, content, createUploadSession, delta).

Content moves outside Graph's paths, as on SharePoint: `/_download/...` (the pre-authenticated URL a
`content` request redirects to; Range supported) and `/_upload/...` (upload session URLs; chunk PUTs carrying
Authorization are refused). Both are paced by the configured bandwidth, per tenant and direction.
References: learn.microsoft.com/graph/api/driveitem-get-content, driveitem-put-content,
driveitem-createuploadsession, driveitem-delta, driveitem-post-children, driveitem-update, driveitem-delete,
site-getbypath, drive-get.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox import drives_content as content_mod
from sandbox import permissions_state as sharing
from sandbox.drives_state import MAX_FILE_SIZE, SIMPLE_UPLOAD_MAX, DriveStore, check_file_system_info
from sandbox.errors import GraphError, from_exception, graph_error
from sandbox.world import TenantState, World

ITEM_RE = re.compile(r"^/(?:root|items/(?P<id>[^/:]+))(?::(?P<path>[^:]*):?)?(?P<action>/[^/]+)?/?$")
SITE_PATH_RE = re.compile(r"^/(?P<host>[^/:]+):/sites/(?P<name>[^/:]+):?(?P<tail>/.*)?$")
# The SDK calls delta as an OData function: delta() and delta(token='...'); Graph answers both.
DELTA_FN_RE = re.compile(r"^delta\((?:token='(?P<token>[^']*)')?\)$")
# .../versions, .../versions/{id}, .../versions/{id}/restoreVersion on an item addressed by id or path.
VERSIONS_RE = re.compile(
    r"^(?P<item>/(?:root|items/[^/:]+)(?::[^:]*:)?)/versions(?:/(?P<vid>[^/]+)(?P<restore>/restoreVersion)?)?/?$"
)
COPY_DELAY_S = 0.3  # "In many cases the copy action is performed asynchronously" (driveitem-copy)
SITE_ID_RE = re.compile(r"^/(?P<sid>[^/]+)(?P<tail>/.*)?$")
CHUNK_UNIT = 320 * 1024
MAX_CHUNK = 60 * 1024 * 1024
PAGE = 200
DOWNLOAD_LIFETIME_S = 3600
SESSION_LIFETIME_S = 2 * 24 * 3600
CONFLICT = "@microsoft.graph.conflictBehavior"
LINK_SLACK_S = 0.05


# ---- helpers --------------------------------------------------------------------------------------------
def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _sign(world: World, *parts: str) -> str:
    mac = hmac.new(world.token_key, "|".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _download_url(request: Request, tenant: TenantState, item: dict[str, Any]) -> str:
    world: World = request.state.world
    exp = str(int(time.time()) + DOWNLOAD_LIFETIME_S)
    v = str(item["_cv"])
    sig = _sign(world, "dl", tenant.id, item["id"], v, exp)
    return f"{_base(request)}/_download/{tenant.id}/{item['id']}?v={v}&exp={exp}&tempauth={sig}"


def _item_json(request: Request, store: DriveStore, item: dict[str, Any]) -> dict[str, Any]:
    download = None if item.get("_folder") else _download_url(request, request.state.tenant, item)
    out = store.render(item, download=download)
    select = request.query_params.get("$select")
    if select:
        keep = {s.strip() for s in select.split(",")} | {"id"}
        if "content.downloadUrl" in keep:
            keep.add("@microsoft.graph.downloadUrl")
        # Graph returns the download URL under $select only when it is selected.
        out = {k: v for k, v in out.items() if k in keep or k.startswith("@odata.")}
    return out


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise GraphError(400, "invalidRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "invalidRequest", "The request body must be a JSON object.")
    return body


def _int_param(request: Request, name: str, default: int, low: int) -> int:
    """An integer query option ($top, $skiptoken); Graph answers 400 for one that is not a number in range."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise GraphError(400, "invalidRequest", f"Invalid value '{raw}' for query option {name}.")
    return value


def _conflict(value: Any, default: str) -> str:
    value = value or default
    if value not in ("fail", "replace", "rename"):
        raise GraphError(
            400, "invalidRequest", f"Invalid {CONFLICT} '{value}': expected fail, replace or rename."
        )
    return str(value)


class _Links:
    """Bandwidth per tenant and direction: each piece reserves the link for size*8/bandwidth seconds."""

    def __init__(self) -> None:
        self.free: dict[tuple[str, str], float] = {}

    async def pace(self, world: World, tid: str, direction: str, n: int) -> None:
        bw = world.settings.bandwidth_mbps
        if not bw or n <= 0:
            return
        now = time.monotonic()
        # A 50 ms allowance lets time spent handling a piece overlap its transmit time (as on a real link)
        # while the average rate stays at the configured bandwidth.
        start = max(now - LINK_SLACK_S, self.free.get((tid, direction), 0.0))
        end = start + n * 8 / (bw * 1_000_000)
        self.free[(tid, direction)] = end
        if end - now > 0:
            await asyncio.sleep(end - now)


# ---- addressing -----------------------------------------------------------------------------------------
def _resolve(
    store: DriveStore,
    drive: dict[str, Any],
    rest: str,
    *,
    creating: bool = False,
    make_parents: bool = False,
) -> tuple[dict[str, Any] | None, dict[str, Any], str | None, str]:
    """(item or None, parent folder, new name, action) for a drive-relative path."""
    m = ITEM_RE.match(rest)
    if not m:
        raise GraphError(400, "invalidRequest", f"Unsupported drive item path '{rest}'.")
    base = store.item(drive["id"], m["id"] or "root")
    action = (m["action"] or "").lstrip("/")
    path = m["path"]
    if path is None or path.strip("/") == "":
        return base, base, None, action
    parts = [p for p in path.split("/") if p]
    try:
        return store.by_path(base, path), base, None, action
    except GraphError:
        if not creating:
            raise
    if make_parents:
        # Simple upload by path creates the missing folders on the way (learn.microsoft.com/graph/api/
        # driveitem-put-content); an upload session does not, so only the content PUT asks for this.
        parent = base
        for part in parts[:-1]:
            found = store.child(parent, part)
            if found is None:
                found, _ = store.create_item(parent, part, folder=True, conflict="fail")
            elif not found.get("_folder"):
                raise GraphError(409, "nameAlreadyExists", f"'{part}' exists and is not a folder.")
            parent = found
        return None, parent, parts[-1], action
    parent = store.by_path(base, "/".join(parts[:-1]))
    return None, parent, parts[-1], action


# ---- Graph handlers -------------------------------------------------------------------------------------
async def _drive_request(request: Request, store: DriveStore, drive: dict[str, Any], rest: str) -> Response:
    method = request.method
    if rest in ("", "/"):
        if method != "GET":
            raise GraphError(405, "invalidRequest", f"The HTTP method '{method}' is not allowed.")
        return JSONResponse(store.render_drive(drive))
    vm = VERSIONS_RE.match(rest)
    if vm:
        return await _versions(request, store, drive, vm)
    creating = method in ("PUT", "POST")
    make_parents = method == "PUT" and rest.rstrip("/").endswith(":/content")
    item, parent, new_name, action = _resolve(
        store, drive, rest, creating=creating, make_parents=make_parents
    )
    tenant: TenantState = request.state.tenant
    world: World = request.state.world
    fn = DELTA_FN_RE.match(action)
    if fn and method == "GET":
        return _delta(request, tenant, store, drive, item, fn["token"])
    if action == "delta" and method == "GET":
        return _delta(request, tenant, store, drive, item)
    if action == "children":
        if item is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        if method == "GET":
            return _children(request, store, item)
        if method == "POST":
            return _create_folder(store, item, await _json_body(request), _caller(request))
    if action == "content":
        if method == "GET":
            if item is None or item.get("_folder"):
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            return Response(status_code=302, headers={"Location": _download_url(request, tenant, item)})
        if method == "PUT":
            return await _simple_upload(request, world, tenant, store, item, parent, new_name)
    if action == "copy" and method == "POST":
        if item is None:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return _copy(request, world, tenant, store, item, await _json_body(request))
    if action == "createUploadSession" and method == "POST":
        return _create_session(
            request, world, tenant, store, item, parent, new_name, await _json_body(request)
        )
    if action == "" and item is not None:
        if method == "GET":
            return JSONResponse(_item_json(request, store, item))
        if method == "PATCH":
            return JSONResponse(_item_json(request, store, store.update(item, await _json_body(request))))
        if method == "DELETE":
            if_match = request.headers.get("if-match")
            if if_match and if_match not in (store.render(item)["eTag"], "*"):
                raise GraphError(
                    412, "preconditionFailed", "The resource has changed since the caller last read it."
                )
            store.delete(item)
            return Response(status_code=204)
    if item is None:
        raise GraphError(404, "itemNotFound", "The resource could not be found.")
    raise GraphError(400, "invalidRequest", f"Unsupported request {method} {action or 'item'}.")


async def _versions(request: Request, store: DriveStore, drive: dict[str, Any], m: re.Match[str]) -> Response:
    """driveitem-list-versions, driveitemversion-get, driveitemversion-delete, driveitemversion-restore."""
    item, _, _, action = _resolve(store, drive, m["item"])
    if item is None or action:
        raise GraphError(404, "itemNotFound", "The resource could not be found.")
    vid, method = m["vid"], request.method
    if vid is None:
        if method != "GET":
            raise GraphError(405, "invalidRequest", f"The HTTP method '{method}' is not allowed.")
        return JSONResponse({"value": store.versions(item)})
    if m["restore"]:
        if method != "POST":
            raise GraphError(405, "invalidRequest", f"The HTTP method '{method}' is not allowed.")
        store.restore_version(item, vid)
        return Response(status_code=204)
    if method == "GET":
        return JSONResponse(store.version(item, vid))
    if method == "DELETE":
        store.delete_version(item, vid)
        return Response(status_code=204)
    raise GraphError(405, "invalidRequest", f"The HTTP method '{method}' is not allowed.")


# Copy operations by monitor id: what the monitor URL answers (long-running-actions-overview).
_COPIES: dict[str, dict[str, Any]] = {}


def _copy(
    request: Request,
    world: World,
    tenant: TenantState,
    store: DriveStore,
    item: dict[str, Any],
    body: dict[str, Any],
) -> Response:
    """driveitem-copy: checked at once (a name in use under `fail` is rejected), done asynchronously; 202 with
    a Location monitor URL. The destination must be a drive of this tenant (its Graph addresses no other)."""
    ref = body.get("parentReference") or {}
    if not isinstance(ref, dict):
        raise GraphError(400, "invalidRequest", "parentReference must be an object.")
    name = body.get("name", item["name"])
    if not isinstance(name, str) or not name:
        raise GraphError(400, "invalidRequest", "name must be a non-empty string.")
    did = str(ref.get("driveId") or item["_drive"])
    dest_drive = store.drive(did)  # 404 itemNotFound for a drive this tenant does not hold
    if ref.get("id"):
        parent = store.item(dest_drive["id"], str(ref["id"]))
    elif ref.get("driveId"):
        parent = store.items[dest_drive["_root"]]
    else:
        parent = store.items[item["_parent"]] if item["_parent"] else item
    conflict = _conflict(request.query_params.get(CONFLICT), "fail")
    store.check_copy(item, parent, name, conflict)
    op = uuid.uuid4().hex
    job: dict[str, Any] = {"tenant": tenant.id, "status": "inProgress", "polled": False}
    _COPIES[op] = job

    def finish() -> None:
        try:
            made = store.copy(item, parent, name, conflict)
        except GraphError as exc:
            job.update(status="failed", error={"code": exc.code, "message": exc.message})
        else:
            job.update(status="completed", resourceId=made["id"])
        world.dirty = True

    asyncio.get_running_loop().call_later(COPY_DELAY_S, finish)
    return Response(status_code=202, headers={"Location": f"{_base(request)}/_api/v2.0/monitor/{op}"})


async def copy_monitor(request: Request) -> Response:
    """The monitor URL: no credentials needed (long-running-actions-overview); 202 while in progress, 200
    with `resourceId` once completed (or the error once failed)."""
    job = _COPIES.get(request.path_params["op"])
    if job is None:
        return JSONResponse({"error": {"code": "itemNotFound", "message": "No such operation."}}, 404)
    # The first poll always sees the copy in progress: a client must follow the monitor, whatever the timing
    # (SharePoint gives no promise of how soon a copy completes).
    status = job["status"] if job["polled"] else "inProgress"
    job["polled"] = True
    body: dict[str, Any] = {"operation": "itemCopy", "status": status}
    if status == "inProgress":
        body["percentageComplete"] = 0.0
        return JSONResponse(body, status_code=202)
    body["percentageComplete"] = 100.0
    if "resourceId" in job:
        body["resourceId"] = job["resourceId"]
    if "error" in job:
        body["error"] = job["error"]
    return JSONResponse(body, status_code=200)


def _children(request: Request, store: DriveStore, folder: dict[str, Any]) -> Response:
    if not folder.get("_folder"):
        return JSONResponse({"value": []})
    top = min(_int_param(request, "$top", PAGE, 1), 1000)
    skip = _int_param(request, "$skiptoken", 0, 0)
    kids = store.list_children(folder)
    page = kids[skip : skip + top]
    body: dict[str, Any] = {"value": [_item_json(request, store, k) for k in page]}
    if skip + top < len(kids):
        body["@odata.nextLink"] = str(
            request.url.include_query_params(**{"$skiptoken": skip + top, "$top": top})
        )
    return JSONResponse(body)


def _create_folder(
    store: DriveStore, parent: dict[str, Any], body: dict[str, Any], by: dict[str, Any]
) -> Response:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise GraphError(400, "invalidRequest", "A name is required to create an item.")
    if "folder" not in body:
        raise GraphError(400, "invalidRequest", "Only folders can be created here; upload files to content.")
    conflict = _conflict(body.get(CONFLICT), "fail")
    item, created = store.create_item(
        parent,
        name,
        folder=True,
        conflict=conflict,
        fs=check_file_system_info(body.get("fileSystemInfo")),
        by=by,
    )
    return JSONResponse(store.render(item), status_code=201 if created else 200)


def _delta(
    request: Request,
    tenant: TenantState,
    store: DriveStore,
    drive: dict[str, Any],
    item: dict[str, Any] | None,
    fn_token: str | None = None,
) -> Response:
    if item is None or item["_parent"] is not None:
        raise GraphError(400, "invalidRequest", "Delta is supported on the drive root only.")
    raw = fn_token if fn_token else request.query_params.get("token")
    upto = drive["_seq"]
    since, after = 0, 0
    if raw == "latest":
        since = after = upto
    elif raw:
        try:
            tok = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=="))
            since, after, epoch = int(tok["s"]), int(tok["a"]), int(tok["e"])
            upto = int(tok.get("u", upto)) if tok.get("p") else upto
            if tok["d"] != drive["id"]:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "invalidRequest", "The delta token is not valid.") from None
        if epoch != tenant.delta_epoch:
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) "
                "if you're sure that the service was up to date with your local changes when you last "
                "sync'd. Upload any local changes that the server doesn't know about.",
            )
    top = min(_int_param(request, "$top", PAGE, 1), 1000)
    page = store.changes(drive["id"], since, upto, after, top + 1)
    more = len(page) > top
    page = page[:top]
    last = page[-1]["_seq"] if page else after
    full_control = sharing.FULL_CONTROL in (getattr(request.state, "roles", None) or ())
    if not full_control:
        page = [i for i in page if not sharing.scoped_out(i, since)]
    body: dict[str, Any] = {"value": [store.render(i, with_path=False) for i in page]}
    sharing.annotate_delta(
        store, request.headers.get("prefer", ""), page, body["value"], since, full_control=full_control
    )
    link = f"{_base(request)}/v1.0/drives/{drive['id']}/root/delta?token="
    if more:
        tok = {
            "d": drive["id"],
            "s": since,
            "a": last,
            "u": upto,
            "e": tenant.delta_epoch,
            "p": 1,
        }
        # The next page keeps the caller's page size, as Graph's nextLink does.
        paging = f"&$top={top}" if "$top" in request.query_params else ""
        body["@odata.nextLink"] = link + _token(tok) + paging
    else:
        tok = {"d": drive["id"], "s": upto, "a": upto, "e": tenant.delta_epoch}
        body["@odata.deltaLink"] = link + _token(tok)
    return JSONResponse(body)


def _caller(request: Request) -> dict[str, Any]:
    """The identitySet Graph stamps on what an app-only request creates or changes (driveItem createdBy,
    lastModifiedBy): the calling application, by its id (the token's appid)."""
    return {"application": {"id": str(request.state.app_id), "displayName": "trustfold sandbox"}}


def _token(tok: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(tok, separators=(",", ":")).encode()).decode().rstrip("=")


async def _simple_upload(
    request: Request,
    world: World,
    tenant: TenantState,
    store: DriveStore,
    item: dict[str, Any] | None,
    parent: dict[str, Any],
    new_name: str | None,
) -> Response:
    length = int(request.headers.get("content-length", "0") or 0)
    if length > SIMPLE_UPLOAD_MAX:
        raise GraphError(
            413, "invalidRequest", "Simple upload is limited to 250 MB; use an upload session for this file."
        )
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > SIMPLE_UPLOAD_MAX:
            raise GraphError(413, "invalidRequest", "Simple upload is limited to 250 MB.")
        await _LINKS.pace(world, tenant.id, "in", len(piece))
    world.stats.add_bytes(tenant.id, bytes_in=len(data))
    content = content_mod.in_memory(bytes(data))
    digest = content_mod.quick_xor(content)
    conflict = _conflict(request.query_params.get(CONFLICT), "replace")
    if item is not None:
        if item.get("_folder"):
            raise GraphError(409, "nameAlreadyExists", "A folder with this name already exists.")
        target_parent, name = store.items[item["_parent"]], item["name"]
    else:
        target_parent, name = parent, str(new_name)
    created_item, created = store.create_item(
        target_parent,
        name,
        folder=False,
        content=content,
        quick_xor=digest,
        conflict=conflict,
        by=_caller(request),
    )
    return JSONResponse(_item_json(request, store, created_item), status_code=201 if created else 200)


def _create_session(
    request: Request,
    world: World,
    tenant: TenantState,
    store: DriveStore,
    item: dict[str, Any] | None,
    parent: dict[str, Any],
    new_name: str | None,
    body: dict[str, Any],
) -> Response:
    props = body.get("item") or {}
    if not isinstance(props, dict):
        raise GraphError(400, "invalidRequest", "'item' must be an object.")
    if item is not None:
        if item.get("_folder"):
            raise GraphError(400, "invalidRequest", "An upload session targets a file, not a folder.")
        target_parent, name, default = store.items[item["_parent"]], item["name"], "replace"
    else:
        target_parent, name, default = parent, str(props.get("name") or new_name or ""), "fail"
    conflict = _conflict(props.get(CONFLICT), default)
    store.validate_name(target_parent, name)
    if conflict == "fail" and store.child(target_parent, name) is not None:
        raise GraphError(409, "nameAlreadyExists", "The specified item name already exists.")
    size = props.get("fileSize")
    if size is not None and (not isinstance(size, int) or size < 0 or size > MAX_FILE_SIZE):
        raise GraphError(400, "invalidRequest", "fileSize must be between 0 and 250 GB.")
    sid = uuid.uuid4().hex
    expires = time.time() + SESSION_LIFETIME_S
    store.sessions[sid] = {
        "parent": target_parent["id"],
        "drive": target_parent["_drive"],
        "name": name,
        "conflict": conflict,
        "fs": check_file_system_info(props.get("fileSystemInfo")),
        "by": _caller(request),
        "total": size,
        "next": 0,
        "spool": None,
        "expires": expires,
        "busy": False,
    }
    sig = _sign(world, "up", tenant.id, sid)
    return JSONResponse(
        {
            "uploadUrl": f"{_base(request)}/_upload/{tenant.id}/{sid}?tempauth={sig}",
            "expirationDateTime": _iso(expires),
            "nextExpectedRanges": ["0-"],
        }
    )


# ---- content URLs ---------------------------------------------------------------------------------------
def _content_error(status: int, code: str, message: str) -> Response:
    return graph_error(status, code, message)


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def download(request: Request) -> Response:
    world: World = request.app.state.world
    tid, iid = request.path_params["tid"], request.path_params["iid"]
    q = request.query_params
    v, exp, sig = q.get("v", ""), q.get("exp", "0"), q.get("tempauth", "")
    if not hmac.compare_digest(sig, _sign(world, "dl", tid, iid, v, exp)):
        return _content_error(401, "unauthenticated", "The download URL is not valid.")
    if int(exp) < time.time():
        return _content_error(401, "unauthenticated", "The download URL has expired; request the item again.")
    tenant = world.tenant(tid)
    item = tenant.drives.items.get(iid) if tenant else None
    if tenant is None or item is None or item.get("_deleted") or item.get("_folder"):
        return _content_error(404, "itemNotFound", "The resource could not be found.")
    if str(item["_cv"]) != v:
        return _content_error(404, "itemNotFound", "This version of the file is no longer available.")
    content = item["_content"]
    size = int(content["size"])
    start, end, status = 0, size, 200
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{{{iid}}},{item["_cv"]}"'}
    rng = request.headers.get("range")
    if rng:
        m = _RANGE_RE.match(rng.strip())
        if not m or (not m[1] and not m[2]):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]) + 1, size) if m[2] else size
        else:
            start = max(size - int(m[2]), 0)
        if start >= size or start >= end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    world.stats.record(tid, method="GET")
    drop_at = None
    if world.settings.faults.drop and _RNG.random() < world.settings.faults.drop and end - start > 1:
        drop_at = start + (end - start) // 2

    async def body() -> AsyncIterator[bytes]:
        sent = start
        for piece in content_mod.read(content, start, end):
            if drop_at is not None and sent + len(piece) > drop_at:
                raise ConnectionResetError("injected fault: download dropped")
            await _LINKS.pace(world, tid, "out", len(piece))
            world.stats.add_bytes(tid, bytes_out=len(piece))
            sent += len(piece)
            yield piece

    return StreamingResponse(
        body(), status_code=status, headers=headers, media_type="application/octet-stream"
    )


def _session(
    world: World, request: Request
) -> tuple[TenantState, DriveStore, str, dict[str, Any]] | Response:
    tid, sid = request.path_params["tid"], request.path_params["sid"]
    sig = request.query_params.get("tempauth", "")
    if not hmac.compare_digest(sig, _sign(world, "up", tid, sid)):
        return _content_error(401, "unauthenticated", "The upload URL is not valid.")
    tenant = world.tenant(tid)
    session = tenant.drives.sessions.get(sid) if tenant else None
    if tenant is None or session is None or session["expires"] < time.time():
        if tenant is not None and session is not None:
            _discard(tenant.drives, sid)
        return _content_error(404, "itemNotFound", "The upload session was not found or has expired.")
    return tenant, tenant.drives, sid, session


def _discard(store: DriveStore, sid: str) -> None:
    session = store.sessions.pop(sid, None)
    if session and session["spool"] is not None:
        session["spool"].discard()


def _status_body(session: dict[str, Any]) -> dict[str, Any]:
    total = session["total"]
    nxt = session["next"]
    ranges = [f"{nxt}-{total - 1}"] if total else [f"{nxt}-"]
    return {"expirationDateTime": _iso(session["expires"]), "nextExpectedRanges": ranges}


_CR_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


async def upload(request: Request) -> Response:
    world: World = request.app.state.world
    found = _session(world, request)
    if isinstance(found, Response):
        return found
    tenant, store, sid, session = found
    world.stats.record(tenant.id, method=request.method)
    if "authorization" in request.headers:
        # The upload URL is pre-authenticated for every method (learn.microsoft.com/graph/api/
        # driveitem-createuploadsession): an Authorization header is refused alike on PUT, GET and DELETE.
        return _content_error(
            401,
            "unauthenticated",
            "Upload URLs are pre-authenticated: do not send an Authorization header to them.",
        )
    if request.method == "GET":
        return JSONResponse(_status_body(session))
    if request.method == "DELETE":
        _discard(store, sid)
        return Response(status_code=204)
    m = _CR_RE.match(request.headers.get("content-range", "").strip())
    if not m:
        return _content_error(400, "invalidRequest", "Content-Range must be 'bytes first-last/total'.")
    first, last, total = int(m[1]), int(m[2]), int(m[3])
    length = last - first + 1
    if last < first or last >= total or total > MAX_FILE_SIZE:
        return _content_error(400, "invalidRequest", "The Content-Range is not valid for this file.")
    if session["total"] is not None and session["total"] != total:
        return _content_error(400, "invalidRequest", "The total size differs from the session's file size.")
    if int(request.headers.get("content-length", "-1")) != length:
        return _content_error(400, "invalidRequest", "Content-Length does not match the Content-Range.")
    if length >= MAX_CHUNK:  # "less than 60 MiB" per request
        return _content_error(413, "invalidRequest", "Fragments must be smaller than 60 MiB.")
    if last != total - 1 and length % CHUNK_UNIT:
        return _content_error(
            400,
            "invalidRequest",
            "Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).",
        )
    if first != session["next"] or session["busy"]:
        return JSONResponse(
            {
                "error": {
                    "code": "invalidRange",
                    "message": "The uploaded fragment overlaps with data that has already been received "
                    "or does not start at the next expected byte.",
                },
                **_status_body(session),
            },
            status_code=416,
        )
    if world.settings.faults.r503 and _RNG.random() < world.settings.faults.r503:
        return _content_error(503, "serviceNotAvailable", "Service unavailable. Try again later.")
    session["busy"] = True
    try:
        # A fragment is kept only once all of it arrived: a connection lost mid-fragment leaves no trace.
        data = bytearray()
        async for piece in request.stream():
            data += piece
            await _LINKS.pace(world, tenant.id, "in", len(piece))
        world.stats.add_bytes(tenant.id, bytes_in=len(data))
        if len(data) != length:
            return _content_error(400, "invalidRequest", "The fragment is shorter than its Content-Range.")
        if session["spool"] is None:
            session["total"] = total
            session["spool"] = content_mod.Spool(f"{tenant.id}-{sid}", total)
        session["spool"].write(bytes(data))
        session["next"] = last + 1
    finally:
        session["busy"] = False
    if session["next"] < total:
        return JSONResponse(_status_body(session), status_code=202)
    content, digest = session["spool"].finish()
    session["spool"] = None
    store.sessions.pop(sid, None)
    parent = store.items.get(session["parent"])
    if parent is None or parent.get("_deleted"):
        return _content_error(404, "itemNotFound", "The destination folder no longer exists.")
    try:
        item, created = store.create_item(
            parent,
            session["name"],
            folder=False,
            content=content,
            quick_xor=digest,
            conflict=session["conflict"],
            fs=session["fs"],
            by=session.get("by"),
        )
    except GraphError as exc:
        return from_exception(exc)
    world.dirty = True
    request.state.tenant = tenant
    request.state.world = world
    return JSONResponse(_item_json(request, store, item), status_code=201 if created else 200)


# ---- entry points ---------------------------------------------------------------------------------------
def _guard(fn: Any) -> Any:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except GraphError as exc:
            return from_exception(exc)

    return handler


def _user_drive(tenant: TenantState, key: str) -> dict[str, Any]:
    user = tenant.user_by_key(key)
    if user is None:
        raise GraphError(404, "itemNotFound", "The user could not be found.")
    store: DriveStore = tenant.drives
    did = store.user_drive.get(user["id"])
    if did:
        return store.drives[did]
    # A licensed user's OneDrive exists only once SharePoint created the personal site: after the user's first
    # sign-in or an administrator's request (CreatePersonalSiteEnqueueBulk) and the timer job's delay
    # (learn.microsoft.com/sharepoint/pre-provision-accounts). Until then, and for users who may not sign in
    # or hold no SharePoint licence, 404; while the timer job holds the request, Graph's other answer, 400
    # "Unable to retrieve user's mysite URL." (microsoft-graph-docs#1354), so clients meet both.
    from sandbox.tenancy import can_have_onedrive, onedrive_pending, onedrive_ready

    if not can_have_onedrive(tenant, user) or not onedrive_ready(tenant, user["id"]):
        if can_have_onedrive(tenant, user) and onedrive_pending(tenant, user["id"]):
            raise GraphError(400, "BadRequest", "Unable to retrieve user's mysite URL.")
        raise GraphError(404, "ResourceNotFound", "User's mysite not found.")
    return store.add_user_drive(user)


async def users_drive(request: Request) -> Response:
    tenant: TenantState = request.state.tenant
    rest = request.path_params["rest"]
    if rest == "s":
        drive = _user_drive(tenant, request.path_params["uid"])
        return JSONResponse({"value": [tenant.drives.render_drive(drive)]})
    if rest and not rest.startswith("/"):
        raise GraphError(400, "BadRequest", f"Resource not found for the segment 'drive{rest}'.")
    drive = _user_drive(tenant, request.path_params["uid"])
    return await _drive_request(request, tenant.drives, drive, rest)


async def drives(request: Request) -> Response:
    tenant: TenantState = request.state.tenant
    drive = tenant.drives.drive(request.path_params["did"])
    return await _drive_request(request, tenant.drives, drive, request.path_params["rest"])


async def sites(request: Request) -> Response:
    tenant: TenantState = request.state.tenant
    store: DriveStore = tenant.drives
    rest = request.path_params["rest"]
    if rest in ("", "/"):
        q = (request.query_params.get("search") or "").strip('"').lower()
        found = [s for s in store.sites.values() if q in s["name"].lower() or q in s["displayName"].lower()]
        return JSONResponse({"value": [store.render_site(s) for s in sorted(found, key=lambda s: s["name"])]})
    m = SITE_PATH_RE.match(rest)
    if m:
        site, tail = store.site_by_path(m["host"], m["name"]), m["tail"] or ""
    else:
        m = SITE_ID_RE.match(rest)
        if not m:
            raise GraphError(400, "invalidRequest", f"Unsupported site path '{rest}'.")
        site, tail = store.site(m["sid"]), m["tail"] or ""
    if tail in ("", "/"):
        return JSONResponse(store.render_site(site))
    if tail == "/drives":
        return JSONResponse({"value": [store.render_drive(store.drives[d]) for d in site["_drives"]]})
    if tail.startswith("/drives/"):
        did, _, more = tail.removeprefix("/drives/").partition("/")
        if did not in site["_drives"]:
            raise GraphError(404, "itemNotFound", "The requested drive was not found.")
        return await _drive_request(request, store, store.drives[did], f"/{more}" if more else "")
    if tail == "/drive" or tail.startswith("/drive/"):
        if not site["_drives"]:
            raise GraphError(404, "itemNotFound", "The site has no document library.")
        return await _drive_request(
            request, store, store.drives[site["_drives"][0]], tail.removeprefix("/drive")
        )
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{tail.strip('/')}'.")


# ---- admin (outside Graph) ------------------------------------------------------------------------------
async def admin_add_file(request: Request) -> Response:
    """POST /sandbox/tenants/{tid}/files {"drive": id | "user:<upn>" | "site:<name>/<library>", "path",
    "size" with "seed" (generated content) or "content_b64", optional "fileSystemInfo"}: tests and benches
    put large or awkward files straight into a tenant, bypassing Graph's name rules as legacy content may."""
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse({"error": "unknown tenant"}, status_code=404)
    try:
        body = json.loads(await request.body() or b"{}")
        store: DriveStore = tenant.drives
        ref = str(body["drive"])
        if ref.startswith("user:"):
            drive = _user_drive(tenant, ref[5:])
        elif ref.startswith("site:"):
            site_name, _, lib = ref[5:].partition("/")
            site = store.site_by_path(store.host, site_name)
            drive = next(
                store.drives[d] for d in site["_drives"] if store.drives[d]["name"] == (lib or "Documents")
            )
        else:
            drive = store.drive(ref)
        parts = [p for p in str(body["path"]).split("/") if p]
        folder = store.items[drive["_root"]]
        for part in parts[:-1]:
            folder = (
                store.child(folder, part) or store.create_item(folder, part, folder=True, validate=False)[0]
            )
        if "content_b64" in body:
            content = content_mod.in_memory(base64.b64decode(body["content_b64"]))
        else:
            content = content_mod.generated(str(body.get("seed") or uuid.uuid4().hex), int(body["size"]))
        item, _ = store.create_item(
            folder,
            parts[-1],
            folder=False,
            content=content,
            conflict="replace",
            fs=body.get("fileSystemInfo"),
            validate=False,
        )
    except GraphError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    except (KeyError, ValueError, TypeError, StopIteration) as exc:
        return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
    world.dirty = True
    return JSONResponse(
        {"id": item["id"], "driveId": drive["id"], "name": item["name"], "size": content["size"]}
    )


async def admin_expire_uploads(request: Request) -> Response:
    world: World = request.app.state.world
    tenant = world.tenant(request.path_params["tid"])
    if tenant is None:
        return JSONResponse({"error": "unknown tenant"}, status_code=404)
    n = 0
    for session in tenant.drives.sessions.values():
        session["expires"] = 0
        n += 1
    return JSONResponse({"expired": n})


_LINKS = _Links()
_RNG = random.Random()
ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def drive_routes(world: Any) -> list[Any]:
    """Starlette routes mounted under /v1.0 and for download/upload URLs."""
    return [
        Route("/v1.0/drives/{did}{rest:path}", _guard(drives), methods=ALL),
        Route("/v1.0/users/{uid}/drive{rest:path}", _guard(users_drive), methods=ALL),
        Route("/v1.0/sites{rest:path}", _guard(sites), methods=ALL),
        Route("/_download/{tid}/{iid}", download, methods=["GET"]),
        Route("/_api/v2.0/monitor/{op}", copy_monitor, methods=["GET"]),
        Route("/_upload/{tid}/{sid}", upload, methods=["GET", "PUT", "DELETE"]),
        Route("/sandbox/tenants/{tid}/files", admin_add_file, methods=["POST"]),
        Route("/sandbox/tenants/{tid}/expire-uploads", admin_expire_uploads, methods=["POST"]),
    ]
