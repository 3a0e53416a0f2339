"""Graph v1.0 education classes: a class is a Microsoft 365 group with class properties, teachers (its
owners) and members (learn.microsoft.com/graph/api/educationclass-post, educationroot-list-classes,
educationclass-post-members, educationclass-post-teachers, educationclass-get-group). EduRoster roles are
checked by route (sandbox/teams_roles.py)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import directory as d
from sandbox.errors import GraphError
from sandbox.teams_api import _changed, _json, _ok, teams_route
from sandbox.teams_state import TeamsStore
from sandbox.world import TenantState

V = "/v1.0/education/classes"
CLASS_WRITABLE = frozenset(
    {
        "displayName",
        "mailNickname",
        "description",
        "classCode",
        "externalId",
        "externalName",
        "externalSourceDetail",
        "grade",
        "term",
        "course",
    }
)
_REF_RE = re.compile(r"/(?:education/users|users|directoryObjects)/([0-9a-fA-F-]{36})$")


def _class(t: TenantState, store: TeamsStore, cid: str) -> dict[str, Any]:
    if cid not in store.classes or cid not in t.groups:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{cid[:40]}' does not exist.")
    return store.classes[cid]


def render_class(t: TenantState, cls: dict[str, Any]) -> dict[str, Any]:
    group = t.groups[cls["id"]]
    out = {k: v for k, v in cls.items() if not k.startswith("_")}
    out["displayName"] = group.get("displayName")
    out["description"] = group.get("description")
    out["mailNickname"] = group.get("mailNickname")
    return out


def make_class(t: TenantState, store: TeamsStore, body: Any) -> dict[str, Any]:
    """POST /education/classes: displayName and mailNickname required; creates the class's Microsoft 365 group
    (hidden from Outlook, as School Data Sync and Teams make class groups)."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Invalid request body.")
    for key in body:
        if key not in CLASS_WRITABLE and not key.startswith("@odata."):
            raise GraphError(
                400,
                "BadRequest",
                f"Property '{key}' does not exist on type 'microsoft.graph.educationClass'.",
            )
    for key in ("displayName", "mailNickname"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise GraphError(400, "BadRequest", f"Property '{key}' is required.")
    group = d.create_group(
        t,
        {
            "displayName": body["displayName"],
            "description": body.get("description"),
            "mailNickname": body["mailNickname"],
            "mailEnabled": True,
            "securityEnabled": False,
            "groupTypes": ["Unified"],
        },
    )
    group["resourceBehaviorOptions"] = ["HideGroupInOutlook", "WelcomeEmailDisabled"]
    cls = {
        "id": group["id"],
        "classCode": body.get("classCode"),
        "externalId": body.get("externalId"),
        "externalName": body.get("externalName"),
        "externalSource": "manual",
        "externalSourceDetail": body.get("externalSourceDetail"),
        "grade": body.get("grade"),
        "term": body.get("term"),
        "course": body.get("course"),
        "createdBy": {"application": {"displayName": "trustfold"}},
    }
    store.classes[group["id"]] = cls
    store.teachers[group["id"]] = {}
    return cls


@teams_route
async def post_class(request: Request, t: TenantState, store: TeamsStore) -> Response:
    cls = make_class(t, store, await _json(request))
    _changed(request)
    return _ok(render_class(t, cls), 201)


@teams_route
async def list_classes(request: Request, t: TenantState, store: TeamsStore) -> Response:
    found = [render_class(t, c) for gid, c in sorted(store.classes.items()) if gid in t.groups]
    return _ok({"value": found})


@teams_route
async def get_class(request: Request, t: TenantState, store: TeamsStore) -> Response:
    return _ok(render_class(t, _class(t, store, request.path_params["cid_"])))


@teams_route
async def class_group(request: Request, t: TenantState, store: TeamsStore) -> Response:
    cls = _class(t, store, request.path_params["cid_"])
    group = t.groups[cls["id"]]
    return _ok({k: v for k, v in group.items() if not k.startswith("_")})


def _education_user(t: TenantState, uid: str) -> dict[str, Any]:
    user = t.users[uid]
    return {
        "id": uid,
        "displayName": user.get("displayName"),
        "userPrincipalName": user.get("userPrincipalName"),
        "mail": user.get("mail"),
    }


def _people(kind: str) -> Any:
    @teams_route
    async def handler(request: Request, t: TenantState, store: TeamsStore) -> Response:
        cls = _class(t, store, request.path_params["cid_"])
        ids = store.teachers[cls["id"]] if kind == "teachers" else t.members.get(cls["id"], {})
        return _ok({"value": [_education_user(t, uid) for uid in ids if uid in t.users]})

    return handler


def _add(kind: str) -> Any:
    @teams_route
    async def handler(request: Request, t: TenantState, store: TeamsStore) -> Response:
        """POST .../members/$ref or .../teachers/$ref {"@odata.id": ".../education/users/{id}"}: teachers are
        the class group's owners (and members); adding someone already there answers 400."""
        cls = _class(t, store, request.path_params["cid_"])
        body = await _json(request)
        ref = body.get("@odata.id") if isinstance(body, dict) else None
        m = _REF_RE.search(ref) if isinstance(ref, str) else None
        if m is None or m.group(1) not in t.users:
            raise GraphError(400, "BadRequest", "Invalid @odata.id: an education user is expected.")
        uid, gid = m.group(1), cls["id"]
        there = store.teachers[gid] if kind == "teachers" else t.members[gid]
        if uid in there:
            raise GraphError(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: "
                f"'{kind}'.",
            )
        if kind == "teachers":
            store.teachers[gid][uid] = None
            t.owners[gid][uid] = None
        if uid not in t.members[gid]:
            t.members[gid][uid] = None
            t.member_changed(gid, uid, True)
        _changed(request)
        return Response(status_code=204)

    return handler


def _remove(kind: str) -> Any:
    @teams_route
    async def handler(request: Request, t: TenantState, store: TeamsStore) -> Response:
        cls = _class(t, store, request.path_params["cid_"])
        uid, gid = request.path_params["uid"], cls["id"]
        there = store.teachers[gid] if kind == "teachers" else t.members[gid]
        if uid not in there:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{uid[:40]}' does not exist.")
        there.pop(uid)
        if kind == "teachers":
            t.owners[gid].pop(uid, None)
        else:
            t.member_changed(gid, uid, False)
        _changed(request)
        return Response(status_code=204)

    return handler


def education_routes() -> list[Route]:
    one = f"{V}/{{cid_}}"
    return [
        Route(V, post_class, methods=["POST"]),
        Route(V, list_classes, methods=["GET"]),
        Route(one, get_class, methods=["GET"]),
        Route(f"{one}/group", class_group, methods=["GET"]),
        Route(f"{one}/members", _people("members"), methods=["GET"]),
        Route(f"{one}/teachers", _people("teachers"), methods=["GET"]),
        Route(f"{one}/members/$ref", _add("members"), methods=["POST"]),
        Route(f"{one}/teachers/$ref", _add("teachers"), methods=["POST"]),
        Route(f"{one}/members/{{uid}}/$ref", _remove("members"), methods=["DELETE"]),
        Route(f"{one}/teachers/{{uid}}/$ref", _remove("teachers"), methods=["DELETE"]),
    ]
