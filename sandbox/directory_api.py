"""Graph v1.0 directory endpoints: users, groups, memberships, deleted items, domains, SKUs, organization.

Each handler names the Microsoft documentation page whose behaviour it reproduces.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox import directory as d
from sandbox import licensing
from sandbox.errors import GraphError, from_exception
from sandbox.odata import (
    FilterContext,
    decode_token,
    encode_token,
    parse_filter,
    parse_select,
    parse_top,
    unsupported,
)
from sandbox.schema import (
    EXTENSION_RE,
    GROUP_COLLECTIONS,
    GROUP_FILTERABLE,
    GROUP_PROPERTIES,
    USER_COLLECTIONS,
    USER_FILTERABLE,
    USER_PROPERTIES,
)
from sandbox.world import TenantState

Handler = Callable[[Request], Awaitable[Response]]
CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#"
DELTA_PAGE = 100
DELTA_LIFETIME_S = 7 * 86_400
MAX_EXPAND = 20


def graph_route(fn: Callable[[Request, TenantState], Awaitable[Response]]) -> Handler:
    """Give the handler its tenant and turn GraphError into Graph's error body."""

    @wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            return await fn(request, request.state.tenant)
        except GraphError as exc:
            return from_exception(exc)

    return handler


def base_url(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}/v1.0"


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    try:
        return json.loads(raw)
    except ValueError:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
        ) from None


def advanced(request: Request) -> bool:
    return request.headers.get("consistencylevel", "").lower() == "eventual"


def _check_options(request: Request, allowed: set[str]) -> None:
    for key in request.query_params:
        if key == "$skip":
            raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
        if key.startswith("$") and key not in allowed:
            raise GraphError(400, "BadRequest", f"Query option '{key}' is not allowed.")


def _count_flag(request: Request) -> bool:
    value = request.query_params.get("$count")
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise GraphError(400, "BadRequest", f"Invalid value '{value}' for $count query option.")
    if value.lower() == "true" and not advanced(request):
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "$count is not supported because the 'ConsistencyLevel:eventual' header is missing. "
            "Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        )
    return value.lower() == "true"


def json_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"OData-Version": "4.0"})


def paged(
    request: Request,
    items: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]],
    context: str,
    count: bool,
) -> JSONResponse:
    """A page of `items` in stable order, cursor in $skiptoken, nextLink carrying the original query."""
    top = parse_top(request.query_params.get("$top"))
    start = 0
    token = request.query_params.get("$skiptoken")
    if token is not None:
        cursor = decode_token(token)
        if cursor is None or "n" not in cursor:
            raise GraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        start = int(cursor["n"])
        # Resume after the last object served, even if objects before it were deleted meanwhile.
        if not (0 < start <= len(items) and items[start - 1]["id"] == cursor.get("a")):
            ids = [o["id"] for o in items]
            if cursor.get("a") in ids:
                start = ids.index(cursor["a"]) + 1
    chunk = items[start : start + top]
    body: dict[str, Any] = {"@odata.context": CONTEXT + context}
    if count:
        body["@odata.count"] = len(items)
    body["value"] = [render(o) for o in chunk]
    if start + top < len(items) and chunk:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "$skiptoken"]
        params.append(("$skiptoken", encode_token({"n": start + len(chunk), "a": chunk[-1]["id"]})))
        body["@odata.nextLink"] = (
            f"{base_url(request)}{request.url.path.removeprefix('/v1.0')}?{urlencode(params)}"
        )
    return json_response(body)


def _filter_ctx(request: Request, kind: str) -> FilterContext:
    from sandbox.tenancy import registered_extensions

    tenant: TenantState = request.state.tenant
    if kind == "user":
        return FilterContext(
            "User",
            USER_FILTERABLE,
            USER_COLLECTIONS,
            advanced(request) and "$count" in request.query_params,
            registered_extensions(tenant, "User"),
        )
    return FilterContext(
        "Group",
        GROUP_FILTERABLE,
        GROUP_COLLECTIONS,
        advanced(request) and "$count" in request.query_params,
        registered_extensions(tenant, "Group"),
    )


def _order(request: Request, items: list[dict[str, Any]], allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    spec = request.query_params.get("$orderby")
    if not spec:
        return items
    prop, _, direction = spec.strip().partition(" ")
    if prop not in allowed and not advanced(request):
        raise unsupported(
            f"Sorting by '{prop}' requires advanced query parameters (ConsistencyLevel: eventual "
            f"and $count=true)."
        )
    return sorted(
        items, key=lambda o: str(o.get(prop) or "").lower(), reverse=direction.strip().lower() == "desc"
    )


# Users -----------------------------------------------------------------------------------------------------
def _user_select(request: Request) -> list[str] | None:
    return parse_select(request.query_params.get("$select"), USER_PROPERTIES, "user", EXTENSION_RE)


def _get_user(t: TenantState, key: str) -> dict[str, Any]:
    user = t.user_by_key(key)
    if user is None or t.is_fresh(user["id"]):
        raise d.not_found(key)
    return user


@graph_route
async def list_users(request: Request, t: TenantState) -> Response:
    """GET /users (learn.microsoft.com/graph/api/user-list)."""
    _check_options(request, {"$top", "$select", "$filter", "$count", "$skiptoken", "$orderby", "$search"})
    select = _user_select(request)
    count = _count_flag(request)
    # Replication lag covers lists and $filter too: a just-created user is not yet in the index they read.
    items: list[dict[str, Any]] = [u for u in t.users.values() if not t.is_fresh(u["id"])]
    if request.query_params.get("$filter"):
        pred = parse_filter(request.query_params["$filter"], _filter_ctx(request, "user"))
        items = [u for u in items if pred(u)]
    if "$search" in request.query_params:
        items = _search(request, items)
    items = _order(request, items, ("displayName", "userPrincipalName"))
    ctx = "users" if not select else f"users({','.join(select)})"
    return paged(request, items, lambda u: d.user_out(u, select), ctx, count)


def _search(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """$search="displayName:term"
    (learn.microsoft.com/graph/search-query-parameter#using-search-on-directory-object-collections)."""
    if not advanced(request):
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request "
            "header: 'ConsistencyLevel: eventual'",
        )
    raw = request.query_params["$search"].strip().strip('"')
    prop, sep, term = raw.partition(":")
    if not sep:
        raise GraphError(400, "Request_UnsupportedQuery", 'Syntax error: $search must be "property:value".')
    term = term.lower()
    return [o for o in items if term in str(o.get(prop) or "").lower()]


@graph_route
async def count_users(request: Request, t: TenantState) -> Response:
    """GET /users/$count (learn.microsoft.com/graph/query-parameters#count-parameter)."""
    return await _count(request, t.users.values(), "user")


async def _count(request: Request, objs: Iterable[dict[str, Any]], kind: str) -> Response:
    if not advanced(request):
        # Graph's wording (seen in 2025 answers to /users/$count without the header).
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "Raw count (/$count) is not supported because the 'ConsistencyLevel:eventual' header is missing. "
            "Refer to https://aka.ms/graph-docs/advanced-queries for more information",
        )
    items = list(objs)
    if request.query_params.get("$filter"):
        ctx = _filter_ctx(request, kind)
        ctx.advanced = True
        pred = parse_filter(request.query_params["$filter"], ctx)
        items = [o for o in items if pred(o)]
    return PlainTextResponse(str(len(items)))


@graph_route
async def create_user(request: Request, t: TenantState) -> Response:
    """POST /users (learn.microsoft.com/graph/api/user-post-users)."""
    user = d.create_user(t, await read_json(request))
    return json_response({"@odata.context": CONTEXT + "users/$entity", **d.user_out(user, None)}, 201)


@graph_route
async def get_user(request: Request, t: TenantState) -> Response:
    """GET /users/{id | userPrincipalName} (learn.microsoft.com/graph/api/user-get)."""
    _check_options(request, {"$select", "$expand"})
    user = _get_user(t, request.path_params["key"])
    select = _user_select(request)
    body = {"@odata.context": CONTEXT + "users/$entity", **d.user_out(user, select)}
    expand = request.query_params.get("$expand")
    if expand:
        if expand.split("(")[0] != "memberOf":
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{expand}' on type 'microsoft.graph.user'.",
            )
        body["memberOf"] = [
            {"@odata.type": "#microsoft.graph.group", **d.group_out(t.groups[g], None)}
            for g, m in t.members.items()
            if user["id"] in m
        ][:MAX_EXPAND]
    return json_response(body)


@graph_route
async def update_user(request: Request, t: TenantState) -> Response:
    """PATCH /users/{id} (learn.microsoft.com/graph/api/user-update)."""
    d.update_user(t, _get_user(t, request.path_params["key"]), await read_json(request))
    return Response(status_code=204)


@graph_route
async def delete_user(request: Request, t: TenantState) -> Response:
    """DELETE /users/{id} (learn.microsoft.com/graph/api/user-delete)."""
    d.delete_user(t, _get_user(t, request.path_params["key"]))
    return Response(status_code=204)


@graph_route
async def assign_license(request: Request, t: TenantState) -> Response:
    """POST /users/{id}/assignLicense (learn.microsoft.com/graph/api/user-assignlicense)."""
    user = _get_user(t, request.path_params["key"])
    d.assign_license(t, user, await read_json(request))
    return json_response({"@odata.context": CONTEXT + "users/$entity", **d.user_out(user, None)})


@graph_route
async def user_member_of(request: Request, t: TenantState) -> Response:
    """GET /users/{id}/memberOf (learn.microsoft.com/graph/api/user-list-memberof)."""
    _check_options(request, {"$top", "$select", "$skiptoken", "$count", "$filter"})
    user = _get_user(t, request.path_params["key"])
    select = parse_select(request.query_params.get("$select"), GROUP_PROPERTIES, "group", EXTENSION_RE)
    groups = [t.groups[g] for g, m in t.members.items() if user["id"] in m and g in t.groups]
    return paged(
        request,
        groups,
        lambda g: {"@odata.type": "#microsoft.graph.group", **d.group_out(g, select)},
        "directoryObjects",
        _count_flag(request),
    )


# Groups ----------------------------------------------------------------------------------------------------
def _group_select(request: Request) -> list[str] | None:
    return parse_select(request.query_params.get("$select"), GROUP_PROPERTIES, "group", EXTENSION_RE)


def _get_group(t: TenantState, gid: str) -> dict[str, Any]:
    group = t.groups.get(gid)
    if group is None or t.is_fresh(gid):
        raise d.not_found(gid)
    return group


@graph_route
async def list_groups(request: Request, t: TenantState) -> Response:
    """GET /groups (learn.microsoft.com/graph/api/group-list)."""
    _check_options(request, {"$top", "$select", "$filter", "$count", "$skiptoken", "$orderby", "$search"})
    select = _group_select(request)
    count = _count_flag(request)
    items: list[dict[str, Any]] = [g for g in t.groups.values() if not t.is_fresh(g["id"])]
    if request.query_params.get("$filter"):
        pred = parse_filter(request.query_params["$filter"], _filter_ctx(request, "group"))
        items = [g for g in items if pred(g)]
    if "$search" in request.query_params:
        items = _search(request, items)
    items = _order(request, items, ("displayName",))
    ctx = "groups" if not select else f"groups({','.join(select)})"
    return paged(request, items, lambda g: d.group_out(g, select), ctx, count)


@graph_route
async def count_groups(request: Request, t: TenantState) -> Response:
    return await _count(request, t.groups.values(), "group")


@graph_route
async def create_group(request: Request, t: TenantState) -> Response:
    """POST /groups (learn.microsoft.com/graph/api/group-post-groups)."""
    group = d.create_group(t, await read_json(request))
    return json_response({"@odata.context": CONTEXT + "groups/$entity", **d.group_out(group, None)}, 201)


def _member_out(t: TenantState, oid: str, select: list[str] | None) -> dict[str, Any]:
    if oid in t.users:
        return {"@odata.type": "#microsoft.graph.user", **d.user_out(t.users[oid], select)}
    return {"@odata.type": "#microsoft.graph.group", **d.group_out(t.groups[oid], select)}


@graph_route
async def get_group(request: Request, t: TenantState) -> Response:
    """GET /groups/{id} (learn.microsoft.com/graph/api/group-get), $expand=members|owners up to 20."""
    _check_options(request, {"$select", "$expand"})
    group = _get_group(t, request.path_params["gid"])
    body = {"@odata.context": CONTEXT + "groups/$entity", **d.group_out(group, _group_select(request))}
    expand = request.query_params.get("$expand")
    if expand:
        nav = expand.split("(")[0]
        if nav not in ("members", "owners"):
            raise GraphError(
                400, "BadRequest", f"Could not find a property named '{nav}' on type 'microsoft.graph.group'."
            )
        ids = list((t.members if nav == "members" else t.owners).get(group["id"], {}))[:MAX_EXPAND]
        body[nav] = [_member_out(t, oid, ["id", "displayName"]) for oid in ids]
    return json_response(body)


@graph_route
async def update_group(request: Request, t: TenantState) -> Response:
    """PATCH /groups/{id} (learn.microsoft.com/graph/api/group-update); members@odata.bind for bulk adds."""
    d.update_group(t, _get_group(t, request.path_params["gid"]), await read_json(request))
    return Response(status_code=204)


@graph_route
async def assign_group_license(request: Request, t: TenantState) -> Response:
    """POST /groups/{id}/assignLicense (learn.microsoft.com/graph/api/group-assignlicense): 202 Accepted
    with the group."""
    group = _get_group(t, request.path_params["gid"])
    licensing.assign_group(t, group, await read_json(request))
    return json_response({"@odata.context": CONTEXT + "groups/$entity", **d.group_out(group, None)}, 202)


@graph_route
async def delete_group(request: Request, t: TenantState) -> Response:
    """DELETE /groups/{id} (learn.microsoft.com/graph/api/group-delete)."""
    d.delete_group(t, _get_group(t, request.path_params["gid"]))
    return Response(status_code=204)


def _nav_list(nav: str) -> Handler:
    @graph_route
    async def handler(request: Request, t: TenantState) -> Response:
        """GET /groups/{id}/members|owners (learn.microsoft.com/graph/api/group-list-members)."""
        _check_options(request, {"$top", "$select", "$skiptoken", "$count", "$filter"})
        group = _get_group(t, request.path_params["gid"])
        select = parse_select(
            request.query_params.get("$select"),
            USER_PROPERTIES | GROUP_PROPERTIES,
            "directoryObject",
            EXTENSION_RE,
        )
        ids = (t.members if nav == "members" else t.owners).get(group["id"], {})
        items = [{"id": oid} for oid in ids if t.object_kind(oid) and not t.is_fresh(oid)]
        return paged(
            request,
            items,
            lambda o: _member_out(t, o["id"], select),
            "directoryObjects",
            _count_flag(request),
        )

    return handler


def _nav_add(nav: str) -> Handler:
    @graph_route
    async def handler(request: Request, t: TenantState) -> Response:
        """POST /groups/{id}/members/$ref (learn.microsoft.com/graph/api/group-post-members)."""
        d.add_ref(t, _get_group(t, request.path_params["gid"]), nav, await read_json(request))
        return Response(status_code=204)

    return handler


def _nav_remove(nav: str) -> Handler:
    @graph_route
    async def handler(request: Request, t: TenantState) -> Response:
        """DELETE /groups/{id}/members/{id}/$ref (learn.microsoft.com/graph/api/group-delete-members)."""
        d.remove_ref(t, _get_group(t, request.path_params["gid"]), nav, request.path_params["oid"])
        return Response(status_code=204)

    return handler


# Delta -----------------------------------------------------------------------------------------------------
def _delta(request: Request, t: TenantState, kind: str) -> Response:
    """GET /users/delta and /groups/delta (learn.microsoft.com/graph/api/user-delta, group-delta)."""
    for key in request.query_params:
        if key in ("$top", "$expand", "$orderby", "$count", "$search"):
            raise GraphError(400, "Request_UnsupportedQuery", f"'{key}' is not supported with delta queries.")
    pool = t.users if kind == "user" else t.groups
    props = USER_PROPERTIES if kind == "user" else GROUP_PROPERTIES | {"members"}
    token_text = request.query_params.get("$skiptoken") or request.query_params.get("$deltatoken")
    if token_text is not None:
        token = decode_token(token_text)
        if token is None or token.get("k") != kind:
            raise GraphError(400, "Request_BadRequest", "Invalid delta token or skip token.")
        if token.get("tenant") != t.id:
            raise GraphError(400, "Request_BadRequest", "Invalid delta token or skip token.")
        expired = time.time() - float(token.get("t", 0)) > DELTA_LIFETIME_S
        if expired or int(token.get("e", 0)) != t.delta_epoch:
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required: the delta token has expired or is no longer valid; start a full "
                "synchronisation.",
            )
        select = token.get("sel")
        since = int(token["s"])
        upto = int(token.get("u", t.seq)) if "$skiptoken" in request.query_params else t.seq
        after = int(token.get("a", since)) if "$skiptoken" in request.query_params else since
        started = float(token.get("t", time.time()))
    else:
        select = parse_select(request.query_params.get("$select"), props, kind, EXTENSION_RE)
        since, upto, after, started = 0, t.seq, 0, time.time()
    with_members = kind == "group" and select is not None and "members" in select
    plain_select = [p for p in select if p != "members"] if select else None
    if plain_select == [] and select:
        plain_select = ["id"]
    page_size = DELTA_PAGE
    prefer = request.headers.get("prefer", "")
    if "odata.maxpagesize=" in prefer:
        with contextlib.suppress(ValueError):
            page_size = max(1, min(999, int(prefer.split("odata.maxpagesize=")[1].split(",")[0].strip())))
    out: list[dict[str, Any]] = []
    last = after
    more = False
    # Objects changed in (after, upto], in change order; removals only after the first round.
    changed = ((seq, oid, None) for oid, seq in t.changed.items() if after < seq <= upto and oid in pool)
    removed = (
        (v[1], oid, v[2])
        for oid, v in t.removed.items()
        if since > 0 and after < v[1] <= upto and v[0] == kind
    )
    import heapq

    for seq, oid, reason in heapq.merge(changed, removed):
        if len(out) >= page_size:
            more = True
            break
        last = seq
        if reason is not None:
            out.append({"id": oid, "@removed": {"reason": reason}})
            continue
        obj = pool[oid]
        render = d.user_out(obj, plain_select) if kind == "user" else d.group_out(obj, plain_select)
        render.setdefault("id", oid)
        if with_members:
            render["members@delta"] = _members_delta(t, oid, since, upto)
        out.append(render)
    context = ("users" if kind == "user" else "groups") + (f"({','.join(select)})" if select else "")
    body: dict[str, Any] = {"@odata.context": CONTEXT + context, "value": out}
    base = f"{base_url(request)}/{'users' if kind == 'user' else 'groups'}/delta"
    common = {"k": kind, "s": since, "sel": select, "t": started, "tenant": t.id, "e": t.delta_epoch}
    if more:
        body["@odata.nextLink"] = f"{base}?$skiptoken={encode_token({**common, 'u': upto, 'a': last})}"
    else:
        body["@odata.deltaLink"] = (
            f"{base}?$deltatoken={encode_token({**common, 's': upto, 't': time.time()})}"
        )
    return json_response(body)


def _members_delta(t: TenantState, gid: str, since: int, upto: int) -> list[dict[str, Any]]:
    def kind_of(oid: str) -> str:
        return "#microsoft.graph.group" if oid in t.groups else "#microsoft.graph.user"

    if since == 0:
        return [{"@odata.type": kind_of(m), "id": m} for m in t.members.get(gid, {})]
    entries = []
    for mid, (seq, present) in t.member_changes.get(gid, {}).items():
        if since < seq <= upto:
            entry: dict[str, Any] = {"@odata.type": kind_of(mid), "id": mid}
            if not present:
                entry["@removed"] = {"reason": "deleted"}
            entries.append(entry)
    return entries


@graph_route
async def users_delta(request: Request, t: TenantState) -> Response:
    return _delta(request, t, "user")


@graph_route
async def groups_delta(request: Request, t: TenantState) -> Response:
    return _delta(request, t, "group")


# Deleted items ---------------------------------------------------------------------------------------------
def _deleted_list(kind: str) -> Handler:
    @graph_route
    async def handler(request: Request, t: TenantState) -> Response:
        """GET /directory/deletedItems/microsoft.graph.user|group
        (learn.microsoft.com/graph/api/directory-deleteditems-list)."""
        _check_options(request, {"$top", "$select", "$skiptoken", "$filter", "$count", "$orderby"})
        items = [v["object"] for v in t.deleted.values() if v["kind"] == kind]
        select = _user_select(request) if kind == "user" else _group_select(request)

        def render(o: dict[str, Any]) -> dict[str, Any]:
            shown = d.user_out(o, select) if kind == "user" else d.group_out(o, select)
            return {
                "@odata.type": f"#microsoft.graph.{kind}",
                **shown,
                "deletedDateTime": o.get("deletedDateTime"),
            }

        if request.query_params.get("$filter"):
            pred = parse_filter(request.query_params["$filter"], _filter_ctx(request, kind))
            items = [o for o in items if pred(o)]
        return paged(
            request, items, render, f"directory/deletedItems/microsoft.graph.{kind}", _count_flag(request)
        )

    return handler


@graph_route
async def deleted_untyped(request: Request, t: TenantState) -> Response:
    raise GraphError(
        400,
        "Request_BadRequest",
        "Unsupported request: please cast to microsoft.graph.user or microsoft.graph.group, e.g. "
        "/directory/deletedItems/microsoft.graph.user.",
    )


def _deleted_out(t: TenantState, item: dict[str, Any]) -> dict[str, Any]:
    obj = item["object"]
    if item["kind"] == "user":
        return {
            "@odata.type": "#microsoft.graph.user",
            **d.user_out(obj, None),
            "deletedDateTime": obj.get("deletedDateTime"),
        }
    return {"@odata.type": "#microsoft.graph.group", **d.group_out(obj, None)}


@graph_route
async def get_deleted(request: Request, t: TenantState) -> Response:
    """GET /directory/deletedItems/{id} (learn.microsoft.com/graph/api/directory-deleteditems-get)."""
    item = t.deleted.get(request.path_params["oid"])
    if item is None:
        raise d.not_found(request.path_params["oid"])
    return json_response(
        {"@odata.context": CONTEXT + "directory/deletedItems/$entity", **_deleted_out(t, item)}
    )


@graph_route
async def restore_deleted(request: Request, t: TenantState) -> Response:
    """POST /directory/deletedItems/{id}/restore
    (learn.microsoft.com/graph/api/directory-deleteditems-restore)."""
    oid = request.path_params["oid"]
    kind = t.deleted.get(oid, {}).get("kind")
    obj = d.restore(t, oid)
    shown = d.user_out(obj, None) if kind == "user" else d.group_out(obj, None)
    return json_response(
        {
            "@odata.context": CONTEXT + "directoryObjects/$entity",
            "@odata.type": f"#microsoft.graph.{kind}",
            **shown,
        }
    )


@graph_route
async def purge_deleted(request: Request, t: TenantState) -> Response:
    """DELETE /directory/deletedItems/{id} (learn.microsoft.com/graph/api/directory-deleteditems-delete)."""
    d.purge(t, request.path_params["oid"])
    return Response(status_code=204)


# Domains, SKUs, organization -------------------------------------------------------------------------------
@graph_route
async def list_domains(request: Request, t: TenantState) -> Response:
    """GET /domains (learn.microsoft.com/graph/api/domain-list)."""
    return json_response({"@odata.context": CONTEXT + "domains", "value": t.domains})


@graph_route
async def get_domain(request: Request, t: TenantState) -> Response:
    """GET /domains/{id} (learn.microsoft.com/graph/api/domain-get)."""
    name = request.path_params["name"].lower()
    for dom in t.domains:
        if dom["id"].lower() == name:
            return json_response({"@odata.context": CONTEXT + "domains/$entity", **dom})
    raise GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{name}' does not exist or one of its queried reference-property objects are not present.",
    )


@graph_route
async def list_skus(request: Request, t: TenantState) -> Response:
    """GET /subscribedSkus (learn.microsoft.com/graph/api/subscribedsku-list)."""
    return json_response({"@odata.context": CONTEXT + "subscribedSkus", "value": t.skus})


@graph_route
async def get_sku(request: Request, t: TenantState) -> Response:
    for sku in t.skus:
        if sku["id"] == request.path_params["sid"]:
            return json_response({"@odata.context": CONTEXT + "subscribedSkus/$entity", **sku})
    raise d.not_found(request.path_params["sid"])


@graph_route
async def list_organization(request: Request, t: TenantState) -> Response:
    """GET /organization (learn.microsoft.com/graph/api/organization-list)."""
    return json_response({"@odata.context": CONTEXT + "organization", "value": [t.organization]})


@graph_route
async def get_organization(request: Request, t: TenantState) -> Response:
    if request.path_params["oid"] != t.id:
        raise d.not_found(request.path_params["oid"])
    return json_response({"@odata.context": CONTEXT + "organization/$entity", **t.organization})


def directory_routes() -> list[Route]:
    v = "/v1.0"
    routes = [
        Route(f"{v}/users", list_users, methods=["GET"]),
        Route(f"{v}/users", create_user, methods=["POST"]),
        Route(f"{v}/users/$count", count_users, methods=["GET"]),
        Route(f"{v}/users/delta", users_delta, methods=["GET"]),
        Route(f"{v}/users/delta()", users_delta, methods=["GET"]),
        Route(f"{v}/users/{{key}}", get_user, methods=["GET"]),
        Route(f"{v}/users/{{key}}", update_user, methods=["PATCH"]),
        Route(f"{v}/users/{{key}}", delete_user, methods=["DELETE"]),
        Route(f"{v}/users/{{key}}/assignLicense", assign_license, methods=["POST"]),
        Route(f"{v}/users/{{key}}/memberOf", user_member_of, methods=["GET"]),
        Route(f"{v}/groups", list_groups, methods=["GET"]),
        Route(f"{v}/groups", create_group, methods=["POST"]),
        Route(f"{v}/groups/$count", count_groups, methods=["GET"]),
        Route(f"{v}/groups/delta", groups_delta, methods=["GET"]),
        Route(f"{v}/groups/delta()", groups_delta, methods=["GET"]),
        Route(f"{v}/groups/{{gid}}", get_group, methods=["GET"]),
        Route(f"{v}/groups/{{gid}}", update_group, methods=["PATCH"]),
        Route(f"{v}/groups/{{gid}}", delete_group, methods=["DELETE"]),
        Route(f"{v}/groups/{{gid}}/assignLicense", assign_group_license, methods=["POST"]),
        Route(f"{v}/directory/deletedItems", deleted_untyped, methods=["GET"]),
        Route(f"{v}/directory/deletedItems/microsoft.graph.user", _deleted_list("user"), methods=["GET"]),
        Route(f"{v}/directory/deletedItems/microsoft.graph.group", _deleted_list("group"), methods=["GET"]),
        # msgraph-sdk uses the short namespace alias Graph also accepts.
        Route(f"{v}/directory/deletedItems/graph.user", _deleted_list("user"), methods=["GET"]),
        Route(f"{v}/directory/deletedItems/graph.group", _deleted_list("group"), methods=["GET"]),
        Route(f"{v}/directory/deletedItems/{{oid}}", get_deleted, methods=["GET"]),
        Route(f"{v}/directory/deletedItems/{{oid}}", purge_deleted, methods=["DELETE"]),
        Route(f"{v}/directory/deletedItems/{{oid}}/restore", restore_deleted, methods=["POST"]),
        Route(f"{v}/domains", list_domains, methods=["GET"]),
        Route(f"{v}/domains/{{name}}", get_domain, methods=["GET"]),
        Route(f"{v}/subscribedSkus", list_skus, methods=["GET"]),
        Route(f"{v}/subscribedSkus/{{sid}}", get_sku, methods=["GET"]),
        Route(f"{v}/organization", list_organization, methods=["GET"]),
        Route(f"{v}/organization/{{oid}}", get_organization, methods=["GET"]),
    ]
    for nav in ("members", "owners"):
        routes += [
            Route(f"{v}/groups/{{gid}}/{nav}", _nav_list(nav), methods=["GET"]),
            Route(f"{v}/groups/{{gid}}/{nav}/$ref", _nav_add(nav), methods=["POST"]),
            Route(f"{v}/groups/{{gid}}/{nav}/{{oid}}/$ref", _nav_remove(nav), methods=["DELETE"]),
        ]
    return routes
