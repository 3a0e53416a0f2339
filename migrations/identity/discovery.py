"""Discovery: inventory a legacy tenant through delta queries; the next discovery reads only changes.

A round's objects, links and its new deltaLink are written in one transaction, so a crash mid-round leaves
the previous inventory and link intact and the round simply starts again.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrations.core.store import StateStore, dumps, now
from migrations.graph.client import BatchItem, GraphError, GraphResponse, TenantConnection
from migrations.graph.concurrently import both
from migrations.safety.sanitise import NAME_RULE, name_problems
from trust import Academy, Trust
from trust.naming import ascii_fold

log = logging.getLogger("trustfold.discovery")
USER_SELECT = (
    "id,userPrincipalName,displayName,givenName,surname,mailNickname,mail,accountEnabled,userType,"
    "employeeType,jobTitle,department,companyName,employeeId,usageLocation,assignedLicenses"
)
GROUP_SELECT = (
    "id,displayName,mailNickname,mail,groupTypes,securityEnabled,mailEnabled,description,visibility,members"
)
UPN_OK = re.compile(r"^[A-Za-z0-9'.\-_!#^~]+$")


@dataclass
class Discovery:
    academy: str
    full: bool
    counts: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "academy": self.academy,
            "full": self.full,
            "counts": self.counts,
            "changes": self.changes,
            "findings": self.findings,
        }


def role_of(academy: Academy, user: dict[str, Any]) -> str:
    rule = academy.phases.users.roles
    value = str(user.get(rule.property) or "")
    return "pupil" if value.lower() in {v.lower() for v in rule.pupil_values} else "staff"


async def _round(
    conn: TenantConnection, start: str, select: str | None
) -> tuple[list[dict[str, Any]], str, bool]:
    """Follow a delta round to its deltaLink. Returns (items, deltaLink, was_full)."""
    full = "token=" not in start
    params = {"$select": select} if full and select else None
    items: list[dict[str, Any]] = []
    try:
        body = await conn.get(start, params)
    except GraphError as exc:
        if exc.response.status == 410 and not full:
            log.warning("delta token expired (410); reading everything again")
            resource = "/users/delta" if "/users/" in start else "/groups/delta"
            return await _round(conn, resource, USER_SELECT if resource == "/users/delta" else GROUP_SELECT)
        raise
    while True:
        items.extend(body.get("value", []))
        if body.get("@odata.nextLink"):
            body = await conn.get(body["@odata.nextLink"])
            continue
        # Stored relative to the Graph root, so a link survives a new sandbox port or --graph-url.
        return items, conn.relative(body["@odata.deltaLink"]), full


def _links(store: StateStore, academy: str) -> dict[str, str]:
    return {
        r["resource"]: r["link"]
        for r in store.rows("SELECT resource, link FROM delta_links WHERE academy = ?", (academy,))
    }


async def _owners(conn: TenantConnection, group_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in range(0, len(group_ids), 20):
        chunk = group_ids[i : i + 20]
        answers = await conn.batch(
            [BatchItem("GET", f"/groups/{g}/owners?$select=id&$top=999") for g in chunk]
        )
        for gid, a in zip(chunk, answers, strict=True):
            if isinstance(a, GraphResponse) and a.ok:
                out[gid] = [o["id"] for o in a.body.get("value", [])]
            else:
                out[gid] = [o["id"] async for o in conn.pages(f"/groups/{gid}/owners", {"$select": "id"})]
    return out


async def discover(
    trust: Trust, academy: Academy, store: StateStore, conn: TenantConnection, *, full: bool = False
) -> Discovery:
    code, tenant = academy.code, academy.legacy_tenant.id
    links = {} if full else _links(store, code)

    async def groups_and_owners() -> tuple[list[dict[str, Any]], str, bool, dict[str, list[str]]]:
        groups, link, was_full = await _round(conn, links.get("groups", "/groups/delta"), GROUP_SELECT)
        owners = await _owners(conn, [g["id"] for g in groups if "@removed" not in g])
        return groups, link, was_full, owners

    # Users and groups are independent reads: side by side, so discover is as long as the longer of them.
    (users, users_link, users_full), (groups, groups_link, groups_full, owners) = await both(
        _round(conn, links.get("users", "/users/delta"), USER_SELECT), groups_and_owners()
    )
    result = Discovery(code, users_full and groups_full)
    at = now()
    with store.tx() as tx:
        if users_full:
            tx.execute("UPDATE inventory SET removed = 1 WHERE academy = ? AND kind = 'user'", (code,))
        if groups_full:
            tx.execute(
                "UPDATE inventory SET removed = 1 WHERE academy = ? AND kind IN ('group', 'membership', "
                "'owner')",
                (code,),
            )

        def put(kind: str, oid: str, data: dict[str, Any], removed: int = 0) -> None:
            tx.execute(
                "INSERT INTO inventory (academy, tenant_id, kind, object_id, data, removed, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (academy, kind, object_id) DO UPDATE SET "
                "data = excluded.data, removed = excluded.removed, updated_at = excluded.updated_at",
                (code, tenant, kind, oid, dumps(data), removed, at),
            )

        def remove(kind: str, oid: str) -> None:
            tx.execute(
                "UPDATE inventory SET removed = 1, updated_at = ? WHERE academy = ? AND kind = ? "
                "AND object_id = ?",
                (at, code, kind, oid),
            )

        for u in users:  # the same object can appear more than once: the last occurrence wins
            if "@removed" in u:
                remove("user", u["id"])
                result.changes["users_removed"] = result.changes.get("users_removed", 0) + 1
                continue
            u = {k: v for k, v in u.items() if not k.startswith("@")}
            u["role"] = role_of(academy, u)
            put("user", u["id"], u)
            result.changes["users"] = result.changes.get("users", 0) + 1
        for g in groups:
            gid = g["id"]
            if "@removed" in g:
                remove("group", gid)
                tx.execute(
                    "UPDATE inventory SET removed = 1 WHERE academy = ? AND kind IN ('membership', 'owner') "
                    "AND object_id LIKE ?",
                    (code, f"{gid}:%"),
                )
                result.changes["groups_removed"] = result.changes.get("groups_removed", 0) + 1
                continue
            members = g.pop("members@delta", None)
            data = {k: v for k, v in g.items() if not k.startswith("@")}
            data["creatable"] = not (
                data.get("mailEnabled") and "Unified" not in (data.get("groupTypes") or [])
            )
            put("group", gid, data)
            result.changes["groups"] = result.changes.get("groups", 0) + 1
            for m in members or []:
                link_id = f"{gid}:{m['id']}"
                if "@removed" in m:
                    remove("membership", link_id)
                    continue
                mtype = "group" if "group" in str(m.get("@odata.type", "")).lower() else "user"
                put("membership", link_id, {"group_id": gid, "member_id": m["id"], "member_type": mtype})
            if gid in owners:
                tx.execute(
                    "UPDATE inventory SET removed = 1 "
                    "WHERE academy = ? AND kind = 'owner' AND object_id LIKE ?",
                    (code, f"{gid}:%"),
                )
                for oid in owners[gid]:
                    put("owner", f"{gid}:{oid}", {"group_id": gid, "owner_id": oid})
        for resource, link in (("users", users_link), ("groups", groups_link)):
            tx.execute(
                "INSERT INTO delta_links (academy, resource, link, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (academy, resource) DO UPDATE SET link = excluded.link, "
                "updated_at = excluded.updated_at",
                (code, resource, link, at),
            )
    result.counts, result.findings = findings(academy, store)
    store.set_phase_status(
        code,
        "discover",
        "done",
        {
            "counts": result.counts,
            "findings": result.findings,
            "changes": result.changes,
            "full": result.full,
        },
    )
    return result


def findings(academy: Academy, store: StateStore) -> tuple[dict[str, int], list[dict[str, str]]]:
    rows = store.rows(
        "SELECT kind, object_id, data FROM inventory WHERE academy = ? AND removed = 0 "
        "ORDER BY kind, object_id",
        (academy.code,),
    )
    users = [json.loads(r["data"]) for r in rows if r["kind"] == "user"]
    groups = {r["object_id"]: json.loads(r["data"]) for r in rows if r["kind"] == "group"}
    links = [json.loads(r["data"]) for r in rows if r["kind"] == "membership"]
    opts = academy.phases.users
    out: list[dict[str, str]] = []

    def add(kind: str, obj: dict[str, Any], message: str, handling: str) -> None:
        out.append(
            {
                "kind": kind,
                "object_id": obj.get("id", ""),
                "display": obj.get("userPrincipalName") or obj.get("displayName") or obj.get("id", ""),
                "message": message,
                "handling": handling,
            }
        )

    # Problems found in drives by the files scan (forbidden names, long paths, ...) are findings too.
    for r in store.rows(
        "SELECT kind, object_id, display, message, handling FROM file_findings WHERE academy = ? "
        "ORDER BY kind, display",
        (academy.code,),
    ):
        out.append(dict(r))
    names = Counter(
        (u.get("displayName") or "").strip().lower() for u in users if u.get("userType") != "Guest"
    )
    for u in users:
        if u.get("userType") == "Guest":
            add(
                "guest",
                u,
                "guest account from another organisation",
                # Never created as a member (that would give a member's access and a staff licence).
                "not created: invite it as a guest in the trust tenant (Entra admin centre, or Graph POST "
                "/invitations with User.Invite.All), then map it with match and acknowledge match-existing"
                if opts.include_guests
                else "not migrated (phases.users.include_guests is false)",
            )
            continue
        if u.get("accountEnabled") is False:
            add(
                "disabled-account",
                u,
                "account is disabled in the legacy tenant",
                (
                    "migrated disabled (accountEnabled false), "
                    + ("licensed (phases.users.license_disabled)" if opts.license_disabled else "no licence")
                )
                if opts.include_disabled
                else "not migrated (phases.users.include_disabled is false)",
            )
        if not u.get("givenName") or not u.get("surname"):
            add(
                "missing-name", u, "given name or surname missing", "target UPN formed from the mail nickname"
            )
        if names[(u.get("displayName") or "").strip().lower()] > 1:
            add(
                "duplicate-display-name",
                u,
                f"display name '{u.get('displayName')}' is used by more than one user",
                "kept; target UPNs are made unique with a number",
            )
        raw = f"{u.get('givenName') or ''}{u.get('surname') or ''}".replace(" ", "").replace("-", "")
        if raw and not UPN_OK.match(raw):
            add(
                "upn-characters",
                u,
                "name has characters a UPN cannot hold",
                f"transliterated for the target UPN ('{raw}' -> '{ascii_fold(raw)}'; apostrophes dropped)",
            )
    for obj in [*users, *groups.values()]:
        # Spoofing characters in a name: the target gets the cleaned name, and the finding says so.
        for prop, label in (
            ("displayName", "display name"),
            ("givenName", "given name"),
            ("surname", "surname"),
        ):
            problems = name_problems(obj.get(prop))
            if problems:
                add(
                    "spoofing-characters",
                    obj,
                    f"{label} '{obj.get(prop)}' holds " + ", ".join(problems),
                    f"{NAME_RULE} in the target {label}",
                )
    for g in groups.values():
        if not g.get("creatable", True):
            kind = "mail-enabled security group" if g.get("securityEnabled") else "distribution list"
            add(
                "uncreatable-group-type",
                g,
                f"{kind}: Graph cannot create it (Exchange owns it)",
                "skipped; recreate with Exchange Online tooling",
            )
    for link in links:
        if link.get("member_type") == "group" and link["group_id"] in groups:
            parent = groups[link["group_id"]]
            child = groups.get(link["member_id"], {"id": link["member_id"], "displayName": link["member_id"]})
            unified = "Unified" in (parent.get("groupTypes") or [])
            add(
                "nested-group",
                parent,
                f"contains group '{child.get('displayName')}'",
                "skipped: Microsoft 365 groups take only users"
                if unified
                else "nesting recreated in the target",
            )
    counts = {
        "users": len(users),
        "groups": len(groups),
        "memberships": len(links),
        "owners": sum(1 for r in rows if r["kind"] == "owner"),
        "guests": sum(1 for u in users if u.get("userType") == "Guest"),
        "disabled": sum(1 for u in users if u.get("accountEnabled") is False),
        "pupils": sum(1 for u in users if u.get("role") == "pupil"),
        "staff": sum(1 for u in users if u.get("role") == "staff" and u.get("userType") != "Guest"),
    }
    return counts, out
