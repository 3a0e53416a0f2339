"""Graph v1.0 mail endpoints: the mailbox import and export APIs under /admin/exchange/mailboxes, a user's
Exchange settings, the ordinary mail, calendar and contact reads, and the pre-authenticated import URL.

Each handler names the page it reproduces; the rules live in sandbox/mail_state.py, the Outlook limits in
sandbox/mail_limits.py. Every request to a mailbox holds one of its app's concurrency slots while Exchange
"works" (settings.mail_service_ms) and counts against its request and upload budgets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox import mail_state as ms
from sandbox import mail_views as mv
from sandbox.errors import GraphError, from_exception, graph_error
from sandbox.odata import decode_token, encode_token, parse_top
from sandbox.world import TenantState, World

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"
IMPORT_PREFIX = "/outlook/api/gv1.0/"
DEFAULT_PAGE = 10  # Outlook's default page size for mail collections (learn.microsoft.com/graph/paging)
MAX_PAGE = 1000
Handler = Callable[[Request], Any]


def _world(request: Request) -> World:
    return request.app.state.world


def store_of(t: TenantState) -> ms.MailStore:
    store: ms.MailStore = t.mail
    return store


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"OData-Version": "4.0"})


def _base(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


@contextlib.asynccontextmanager
async def _slot(request: Request, mailbox: str, upload: int = 0) -> AsyncIterator[None]:
    """One request against the mailbox's Outlook limits, holding a concurrency slot while Exchange works."""
    world = _world(request)
    app_id = str(getattr(request.state, "app_id", "app"))
    world.mail_limiter.enter(app_id, mailbox, upload)
    try:
        service = world.settings.mail_service_ms
        if service:
            await asyncio.sleep(service / 1000)
        yield
    finally:
        world.mail_limiter.leave(app_id, mailbox)


def mail_route(fn: Callable[[Request, TenantState, ms.MailStore], Any]) -> Handler:
    @wraps(fn)
    async def handler(request: Request) -> Response:
        t: TenantState = request.state.tenant
        try:
            response: Response = await fn(request, t, store_of(t))
            return response
        except GraphError as exc:
            return from_exception(exc)

    return handler


def _select(request: Request, obj: dict[str, Any]) -> dict[str, Any]:
    raw = request.query_params.get("$select")
    if not raw:
        return obj
    keep = {s.strip() for s in raw.split(",") if s.strip()}
    return {k: v for k, v in obj.items() if k == "id" or k.startswith("@odata") or k in keep}


def _page(
    request: Request,
    objs: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    context: str,
) -> JSONResponse:
    """Outlook collections: $top (default 10, at most 1000) and $skip, nextLink carrying the query."""
    top = parse_top(request.query_params.get("$top"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    skip_text = request.query_params.get("$skip", "0")
    if not skip_text.isdigit():
        raise GraphError(400, "ErrorInvalidUrlQuery", f"The value '{skip_text[:20]}' of $skip is invalid.")
    skip = int(skip_text)
    chunk = objs[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": CONTEXT + context,
        "value": [_select(request, render(o)) for o in chunk],
    }
    if skip + top < len(objs):
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "$skip"]
        params.append(("$skip", str(skip + top)))
        body["@odata.nextLink"] = f"{_base(request)}{request.url.path}?{urlencode(params)}"
    return _json(body)


def _filter_folders(request: Request, folders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mailbox-list-folders' documented filter, `type eq 'IPF.Appointment'` (and wellKnownName eq '…')."""
    text = request.query_params.get("$filter")
    if not text:
        return folders
    parts = text.split(" ", 2)
    if len(parts) != 3 or parts[0] not in ("type", "wellKnownName") or parts[1] != "eq":
        raise GraphError(
            400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
        )
    value = parts[2].strip()
    if not (len(value) >= 2 and value[0] == value[-1] == "'"):
        raise GraphError(
            400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
        )
    return [f for f in folders if f.get(parts[0]) == value[1:-1]]


# ---- exchangeSettings ------------------------------------------------------------------------------------
def _user(t: TenantState, key: str) -> dict[str, Any]:
    user = t.user_by_key(key)
    if user is None:
        raise GraphError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{key[:80]}' does not exist or one of its queried reference-property objects are not "
            "present.",
        )
    return user


@mail_route
async def exchange_settings(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """GET /users/{id}/settings/exchange (usersettings-list-exchange): primaryMailboxId (a shared mailbox's
    own user answers with the shared mailbox); inPlaceArchiveMailboxId, from the beta exchangeSettings
    resource, only when the user has an archive."""
    user = _user(t, request.path_params["uid"])
    boxes = store.user_mailboxes(t, user)
    primary = boxes.get("primary") or boxes["shared"]
    body: dict[str, Any] = {
        "@odata.context": CONTEXT + f"users('{user['id']}')/settings/exchange/$entity",
        "id": user["id"],
        "primaryMailboxId": primary["id"],
    }
    if "archive" in boxes:
        body["inPlaceArchiveMailboxId"] = boxes["archive"]["id"]
    # Exchange answers it (an Outlook path, outside the identity budget): it counts against the Outlook
    # limits of the user's mailbox and holds one of the app's four slots, the stricter reading.
    async with _slot(request, primary["id"]):
        return _json(body)


# ---- /admin/exchange/mailboxes ---------------------------------------------------------------------------
@mail_route
async def get_mailbox(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """GET /admin/exchange/mailboxes/{id} (resources/mailbox): the id."""
    mbx = store.mailbox(request.path_params["mbx"], t)
    async with _slot(request, mbx["id"]):
        return _json(
            {
                "@odata.context": CONTEXT + "admin/exchange/mailboxes/$entity",
                "@odata.type": "#microsoft.graph.mailbox",
                "id": mbx["id"],
                "deletedDateTime": None,
            }
        )


def _delta_token_error() -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state could not be found or is no longer valid. Start a new sync without a delta token.",
    )


def _delta(
    request: Request, mbx: dict[str, Any], folder_id: str | None, under: str | None = None
) -> Response:
    """mailboxfolder-delta / mailboxitem-delta: nextLink ($skiptoken) until a deltaLink ($deltatoken);
    deletions as {"id", "@removed": {"reason": "deleted"}}; page size from Prefer: odata.maxpagesize."""
    qp = request.query_params
    size = DEFAULT_PAGE
    for part in request.headers.get("prefer", "").split(","):
        key, _, wanted = part.strip().partition("=")
        if key.lower() == "odata.maxpagesize" and wanted.strip().isdigit():
            size = max(1, min(MAX_PAGE, int(wanted)))
    if "$top" in qp:
        size = parse_top(qp.get("$top"), default=DEFAULT_PAGE, maximum=MAX_PAGE)
    scope = {"m": mbx["id"], "f": folder_id or "", "d": under or "", "e": mbx.get("epoch", 0)}
    since, upto = -1, int(mbx["seq"])  # a first round: everything, generated objects (seq 0) too
    after: tuple[int, str] | None = None
    for name in ("$skiptoken", "$deltatoken"):
        if name in qp:
            tok = decode_token(qp[name])
            if tok is None or any(tok.get(k) != v for k, v in scope.items()):
                raise _delta_token_error()
            since = int(tok["s"])
            if name == "$skiptoken":
                upto = int(tok["u"])
                size = int(tok.get("p", size))
                after = (int(tok["a"]), str(tok["i"]))
                since = int(tok["b"])
    changes = ms.changes_since(mbx, since, upto, folder_id)
    if after is not None:
        changes = [c for c in changes if (c[0], c[1]) > after]
    if under is not None:
        inside = _descendants(mbx, under)
        changes = [c for c in changes if c[1] in inside or (c[2] is None and c[1] not in mbx["folders"])]
    chunk = changes[:size]
    counts = ms.folder_counts(mbx) if folder_id is None else ({}, {})
    value: list[dict[str, Any]] = []
    for _, oid, obj in chunk:
        if obj is None:
            value.append({"id": oid, "@removed": {"reason": "deleted"}})
        elif folder_id is None:
            value.append(_select(request, ms.folder_out(mbx, obj, counts)))
        else:
            value.append(_select(request, ms.item_out(obj)))
    body: dict[str, Any] = {
        "@odata.context": CONTEXT
        + ("Collection(mailboxFolder)" if folder_id is None else "Collection(mailboxItem)"),
        "value": value,
    }
    keep = [(k, v) for k, v in qp.multi_items() if k not in ("$skiptoken", "$deltatoken", "$top")]
    url = f"{_base(request)}{request.url.path}"
    if len(changes) > size:
        token = encode_token(
            {**scope, "s": since, "b": since, "a": chunk[-1][0], "i": chunk[-1][1], "u": upto, "p": size}
        )
        body["@odata.nextLink"] = f"{url}?{urlencode([*keep, ('$skiptoken', token)])}"
    else:
        token = encode_token({**scope, "s": upto})
        body["@odata.deltaLink"] = f"{url}?{urlencode([*keep, ('$deltatoken', token)])}"
    return _json(body)


def _descendants(mbx: dict[str, Any], fid: str) -> set[str]:
    found: set[str] = set()
    frontier = {fid}
    while frontier:
        frontier = {f["id"] for f in mbx["folders"].values() if f["parentFolderId"] in frontier} - found
        found |= frontier
    return found


@mail_route
async def mailbox_folders(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """Everything under /admin/exchange/mailboxes/{id}/folders: list (mailbox-list-folders, the folders
    directly under the root), create (mailbox-post-folders), get/update/delete one (mailboxfolder-get,
    mailboxfolder-update, mailbox-delete-folders), childFolders (mailboxfolder-list-childfolders), folder and
    item delta (mailboxfolder-delta, mailboxitem-delta), items (mailboxfolder-list-items, mailboxitem-get,
    mailboxfolder-delete-items)."""
    mbx = store.mailbox(request.path_params["mbx"], t)
    # The SDK calls delta as a function, "delta()"; Graph answers both spellings.
    rest = ["delta" if p == "delta()" else p for p in request.path_params.get("rest", "").split("/") if p]
    method = request.method
    body: Any = None
    if method in ("POST", "PATCH"):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    async with _slot(request, mbx["id"]):
        return _folders_dispatch(request, mbx, rest, method, body)


def _bad_segment(seg: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{seg[:60]}'.")


def _folders_dispatch(
    request: Request, mbx: dict[str, Any], rest: list[str], method: str, body: Any
) -> Response:
    ctx = f"admin/exchange/mailboxes('{mbx['id']}')/folders"
    counts = ms.folder_counts(mbx)
    if not rest:
        if method == "GET":
            top = [f for f in mbx["folders"].values() if f["parentFolderId"] == mbx["rootId"]]
            return _page(request, _filter_folders(request, top), lambda f: ms.folder_out(mbx, f, counts), ctx)
        if method == "POST":
            f = ms.create_folder(mbx, mbx["rootId"], body)
            return _json({"@odata.context": CONTEXT + ctx + "/$entity", **ms.folder_out(mbx, f, counts)}, 201)
        raise _method_not_allowed(method)
    if rest == ["delta"] and method == "GET":
        return _delta(request, mbx, None)
    # folders/{id}(/childFolders/{id})* then an optional tail.
    f = ms.folder(mbx, rest[0], names=False)
    i = 1
    while i + 1 < len(rest) and rest[i] == "childFolders" and rest[i + 1] not in ("delta",):
        child = ms.folder(mbx, rest[i + 1], names=False)
        if child["parentFolderId"] != f["id"]:
            raise ms.folder_not_found()
        f = child
        i += 2
    tail = rest[i:]
    if not tail:
        if method == "GET":
            return _json({"@odata.context": CONTEXT + ctx + "/$entity", **ms.folder_out(mbx, f, counts)})
        if method == "DELETE":
            ms.delete_folder(mbx, f["id"])
            return Response(status_code=204)
        if method == "PATCH":
            return _json(_rename(mbx, f, body, counts))
        raise _method_not_allowed(method)
    if tail[0] == "childFolders":
        if tail == ["childFolders"] and method == "GET":
            kids = [x for x in mbx["folders"].values() if x["parentFolderId"] == f["id"]]
            return _page(
                request, _filter_folders(request, kids), lambda x: ms.folder_out(mbx, x, counts), ctx
            )
        if tail == ["childFolders"] and method == "POST":
            new = ms.create_folder(mbx, f["id"], body)
            return _json(
                {"@odata.context": CONTEXT + ctx + "/$entity", **ms.folder_out(mbx, new, counts)}, 201
            )
        if tail == ["childFolders", "delta"] and method == "GET":
            return _delta(request, mbx, None, under=f["id"])
        raise _bad_segment(tail[-1])
    if tail[0] == "items":
        if tail == ["items"] and method == "GET":
            items = sorted(
                (it for it in mbx["items"].values() if it["folderId"] == f["id"]), key=lambda it: it["_seq"]
            )
            return _page(request, items, ms.item_out, ctx + "('" + f["id"] + "')/items")
        if tail == ["items", "delta"] and method == "GET":
            return _delta(request, mbx, f["id"])
        if len(tail) == 2:
            item = mbx["items"].get(tail[1])
            if item is None or item["folderId"] != f["id"]:
                raise ms.item_not_found()
            if method == "GET":
                return _json({"@odata.context": CONTEXT + "mailboxItem/$entity", **ms.item_out(item)})
            if method == "DELETE":
                ms.remove_item(mbx, item["id"])
                return Response(status_code=204)
            raise _method_not_allowed(method)
    raise _bad_segment(tail[-1])


def _rename(mbx: dict[str, Any], f: dict[str, Any], body: Any, counts: Any) -> dict[str, Any]:
    """PATCH a folder (mailboxfolder-update): displayName only; distinguished folders keep theirs."""
    if (
        not isinstance(body, dict)
        or set(body) - {"displayName"}
        or not isinstance(body.get("displayName"), str)
    ):
        raise ms.invalid_request("Only displayName can be updated.")
    if f.get("wellKnownName"):
        raise GraphError(
            400, "ErrorCannotRenameDistinguishedFolder", "Distinguished folders cannot be renamed."
        )
    f["displayName"] = body["displayName"]
    f["_seq"] = ms.bump(mbx)
    return ms.folder_out(mbx, f, counts)


def _method_not_allowed(method: str) -> GraphError:
    return GraphError(
        405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed for this resource."
    )


# ---- exportItems -----------------------------------------------------------------------------------------
def _b64_pieces(parts: Iterator[bytes]) -> Iterator[bytes]:
    """Base64 of a byte stream, a piece at a time (pieces re-cut at multiples of 3 bytes)."""
    carry = b""
    for part in parts:
        data = carry + part
        cut = len(data) - len(data) % 3
        if cut:
            yield base64.b64encode(data[:cut])
        carry = data[cut:]
    if carry:
        yield base64.b64encode(carry)


def _export_body(results: list[dict[str, Any]]) -> Iterator[bytes]:
    yield b'{"@odata.context":"' + (CONTEXT + "Collection(microsoft.graph.exportItemResponse)").encode()
    yield b'","value":['
    for n, r in enumerate(results):
        if n:
            yield b","
        if "error" in r:
            yield json.dumps(r).encode()
            continue
        head = {"itemId": r["itemId"], "changeKey": r["changeKey"]}
        yield json.dumps(head).encode()[:-1] + b',"data":"'
        yield from _b64_pieces(ms.stream_parts(r["item"]["props"]))
        yield b'"}'
    yield b"]}"


@mail_route
async def export_items(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """POST /admin/exchange/mailboxes/{id}/exportItems (mailbox-exportitems): 200 and a collection of
    exportItemResponse, each item's data the base64 opaque stream, streamed (a 150 MB item is never held)."""
    mbx = store.mailbox(request.path_params["mbx"], t)
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise ms.invalid_request("The request body must be a JSON object with itemIds.")
    async with _slot(request, mbx["id"]):
        # The page spells the parameter itemIds; Graph's metadata (and so msgraph-sdk 1.65) spells it ItemIds.
        results = ms.export_items(mbx, body.get("itemIds", body.get("ItemIds")))
    # The answer streams after the slot is given back (the items were taken while it was held).
    return StreamingResponse(
        _export_body(results), media_type="application/json", headers={"OData-Version": "4.0"}
    )


# ---- import sessions -----------------------------------------------------------------------------------
def _iso7(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@mail_route
async def create_import_session(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """POST /admin/exchange/mailboxes/{id}/createImportSession (mailbox-createimportsession): 200 with a
    mailboxItemImportSession, an opaque pre-authenticated importUrl and its expirationDateTime."""
    mbx = store.mailbox(request.path_params["mbx"], t)
    world = _world(request)
    async with _slot(request, mbx["id"]):
        token = f"{t.id}~{secrets.token_urlsafe(32)}"
        expires = time.time() + world.settings.mail_import_session_s
        # Expired sessions are forgotten as new ones are made (Exchange deletes them, the page says).
        now = time.time()
        for old in [k for k, s in store.sessions.items() if s["expires"] <= now]:
            del store.sessions[old]
        store.sessions[token] = {
            "mailbox": mbx["id"],
            "expires": expires,
            "app": str(getattr(request.state, "app_id", "app")),
        }
        world.dirty = True
        url = f"{_base(request)}{IMPORT_PREFIX}Mailboxes('{mbx['id']}')/importItem?authtoken={token}"
        return _json(
            {
                "@odata.context": CONTEXT + "microsoft.graph.mailboxItemImportSession",
                "importUrl": url,
                "expirationDateTime": _iso7(expires),
            }
        )


async def import_item(request: Request) -> Response:
    """POST {importUrl} (import-exchange-mailbox-item): no Authorization header (the URL carries it); body
    FolderId, Mode, Data (+ ItemId, ChangeKey for update); 200 with importMailboxItemResponse {itemId,
    changeKey}. An expired or unknown session answers 401."""
    world = _world(request)
    token = request.query_params.get("authtoken", "")
    tid = token.split("~", 1)[0]
    t = world.tenant(tid) if "~" in token else None
    session = store_of(t).sessions.get(token) if t is not None else None
    path_mbx = request.path_params.get("rest", "")
    if request.headers.get("authorization"):
        # The URL is pre-authenticated; a Graph bearer token sent to Exchange's host is refused.
        return graph_error(
            401, "InvalidAuthenticationToken", "The audience claim value is invalid for this resource."
        )
    if t is None or session is None or session["expires"] <= time.time():
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "The import session has expired or does not exist. Create a new import session.",
        )
    if path_mbx != f"Mailboxes('{session['mailbox']}')/importItem":
        # "Don't customize this URL" (mailbox-createimportsession).
        return graph_error(404, "ErrorInvalidRequest", "The import URL was altered.")
    store = store_of(t)
    length = int(request.headers.get("content-length") or 0)
    app_id = session["app"]
    try:
        world.mail_limiter.enter(app_id, session["mailbox"], upload_bytes=length * 3 // 4)
    except GraphError as exc:
        world.stats.record(t.id, method="POST", throttled=True)
        return from_exception(exc)
    try:
        if world.settings.mail_service_ms:
            await asyncio.sleep(world.settings.mail_service_ms / 1000)
        body, props = await _read_import(request)
        mbx = store.mailbox(session["mailbox"], t)
        item = ms.import_item(mbx, body, props)
        world.dirty = True
        world.stats.record(t.id, method="POST", write=True, bytes_in=length)
        return _json(
            {
                "@odata.context": _base(request)
                + IMPORT_PREFIX
                + "$metadata#microsoft.graph.importMailboxItemResponse",
                "itemId": item["id"],
                "changeKey": item["changeKey"],
            }
        )
    except GraphError as exc:
        world.stats.record(t.id, method="POST")
        return from_exception(exc)
    finally:
        world.mail_limiter.leave(app_id, session["mailbox"])


async def _read_import(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The import body's fields and the item its Data carries. The Data string is decoded and checked as it
    arrives (a 150 MB item's 200 MB of base64 is never held whole); the other fields are small."""
    scanner = _ImportScanner()
    async for chunk in request.stream():
        scanner.feed(chunk)
    return scanner.finish()


class _ImportScanner:
    """A JSON object scanned in pieces: the value of "Data" goes to a StreamReader through base64, the rest
    is kept and parsed at the end."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.reader = ms.StreamReader()
        self.in_data = False
        self.saw_data = False
        self.b64carry = b""
        self.in_string = False
        self.escape = False

    def feed(self, chunk: bytes) -> None:
        i = 0
        n = len(chunk)
        while i < n:
            if self.in_data:
                end = chunk.find(b'"', i)
                piece = chunk[i:] if end < 0 else chunk[i:end]
                if b"\\" in piece:
                    piece = piece.replace(b"\\/", b"/")
                self._data(piece)
                if end < 0:
                    return
                self.in_data = False
                self.kept += b'""'
                i = end + 1
                continue
            c = chunk[i]
            self.kept.append(c)
            if len(self.kept) > 1_000_000:
                raise ms.invalid_request("The import request body is malformed.")
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif c == 0x5C:
                    self.escape = True
                elif c == 0x22:
                    self.in_string = False
            elif c == 0x22:
                self.in_string = True
            elif c == 0x3A and self.kept.rstrip(b": \t\r\n").endswith(b'"Data"'):
                # The value of Data starts at the next quote.
                j = i + 1
                while j < n and chunk[j] in b" \t\r\n":
                    j += 1
                if j < n and chunk[j] == 0x22:
                    self.in_data = True
                    self.saw_data = True
                    i = j + 1
                    continue
            i += 1

    def _data(self, piece: bytes) -> None:
        data = self.b64carry + piece
        cut = len(data) - len(data) % 4
        self.b64carry = data[cut:]
        if cut:
            try:
                self.reader.feed(base64.b64decode(data[:cut], validate=True))
            except ValueError:
                raise ms.corrupt_data() from None

    def finish(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            body = json.loads(bytes(self.kept))
        except ValueError:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(body, dict):
            raise ms.invalid_request("The request body must be a JSON object.")
        if not self.saw_data:
            raise ms.invalid_request("The Data field is required and must be a base64 string.")
        if self.b64carry:
            raise ms.corrupt_data()
        return body, self.reader.finish()


# ---- ordinary mail, calendar and contact reads -------------------------------------------------------------
def _primary(t: TenantState, store: ms.MailStore, key: str) -> dict[str, Any]:
    boxes = store.user_mailboxes(t, _user(t, key))
    return boxes.get("primary") or boxes["shared"]


@mail_route
async def user_mail(request: Request, t: TenantState, store: ms.MailStore) -> Response:
    """GET /users/{id}/mailFolders[/{id}[/childFolders|/messages[/{id}]]] (user-list-mailfolders,
    mailfolder-get, mailfolder-list-childfolders, mailfolder-list-messages, message-get), /users/{id}/messages
    (user-list-messages: every mail folder), /users/{id}/events (user-list-events: the default calendar) and
    /users/{id}/contacts (user-list-contacts: the default contacts folder)."""
    mbx = _primary(t, store, request.path_params["uid"])
    what = request.url.path.split("/")[4]
    rest = [p for p in request.path_params.get("rest", "").split("/") if p]
    uid = request.path_params["uid"]
    async with _slot(request, mbx["id"]):
        items = sorted(mbx["items"].values(), key=lambda it: it["_seq"])
        if what == "events":
            cal = ms.folder(mbx, "calendar")
            return _collection(
                request,
                [i for i in items if i["folderId"] == cal["id"]],
                rest,
                mv.event_out,
                f"users('{uid}')/events",
            )
        if what == "contacts":
            con = ms.folder(mbx, "contacts")
            return _collection(
                request,
                [i for i in items if i["folderId"] == con["id"]],
                rest,
                mv.contact_out,
                f"users('{uid}')/contacts",
            )
        mail_ids = {
            f["id"] for f in mbx["folders"].values() if f["type"] == "IPF.Note" and f["id"] != mbx["rootId"]
        }
        if what == "messages":
            msgs = [i for i in items if i["folderId"] in mail_ids]
            return _collection(request, msgs, rest, mv.message_out, f"users('{uid}')/messages")
        # mailFolders
        children, totals = ms.folder_counts(mbx)
        unread: dict[str, int] = {}
        for it in items:
            if not it["props"].get("isRead", True):
                unread[it["folderId"]] = unread.get(it["folderId"], 0) + 1

        def render(f: dict[str, Any]) -> dict[str, Any]:
            return mv.mail_folder_out(
                f, children.get(f["id"], 0), totals.get(f["id"], 0), unread.get(f["id"], 0)
            )

        ctx = f"users('{uid}')/mailFolders"
        if not rest:
            top = [
                f
                for f in mbx["folders"].values()
                if f["parentFolderId"] == mbx["rootId"] and f["id"] in mail_ids
            ]
            return _page(request, top, render, ctx)
        f = ms.folder(mbx, rest[0])
        if f["id"] not in mail_ids:
            raise ms.folder_not_found()
        if len(rest) == 1:
            return _json({"@odata.context": CONTEXT + ctx + "/$entity", **render(f)})
        if rest[1] == "childFolders" and len(rest) == 2:
            kids = [
                x for x in mbx["folders"].values() if x["parentFolderId"] == f["id"] and x["id"] in mail_ids
            ]
            return _page(request, kids, render, ctx)
        if rest[1] == "messages":
            msgs = [i for i in items if i["folderId"] == f["id"]]
            return _collection(request, msgs, rest[2:], mv.message_out, ctx + f"('{f['id']}')/messages")
        raise _bad_segment(rest[-1])


def _collection(
    request: Request,
    items: list[dict[str, Any]],
    rest: list[str],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    ctx: str,
) -> Response:
    if not rest:
        return _page(request, items, render, ctx)
    if len(rest) == 1:
        found = next((i for i in items if i["id"] == rest[0]), None)
        if found is None:
            raise ms.item_not_found()
        return _json({"@odata.context": CONTEXT + ctx + "/$entity", **_select(request, render(found))})
    raise _bad_segment(rest[-1])


def mail_routes() -> list[Route]:
    mbx = "/v1.0/admin/exchange/mailboxes/{mbx}"
    user_mail_routes = [
        Route(f"/v1.0/users/{{uid}}/{what}{tail}", user_mail, methods=["GET"])
        for what in ("mailFolders", "messages", "events", "contacts")
        for tail in ("", "/{rest:path}")
    ]
    return [
        Route("/v1.0/users/{uid}/settings/exchange", exchange_settings, methods=["GET"]),
        Route(mbx, get_mailbox, methods=["GET"]),
        Route(mbx + "/exportItems", export_items, methods=["POST"]),
        Route(mbx + "/createImportSession", create_import_session, methods=["POST"]),
        Route(mbx + "/folders", mailbox_folders, methods=["GET", "POST"]),
        Route(mbx + "/folders/{rest:path}", mailbox_folders, methods=["GET", "POST", "PATCH", "DELETE"]),
        *user_mail_routes,
        Route(IMPORT_PREFIX + "{rest:path}", import_item, methods=["POST"]),
    ]
