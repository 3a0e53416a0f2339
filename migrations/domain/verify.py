"""Verify the domain phase: the domain verified in the trust tenant and gone from the legacy tenant; every
renamed legacy user and every switched trust user carrying the planned UPN."""

from __future__ import annotations

from typing import Any

from migrations.core.journal import Journal
from migrations.core.store import StateStore

PHASE = "domain"


def switched_upns(store: StateStore, academy: str) -> dict[str, str]:
    """Trust user id -> the UPN the domain phase gave it (for identity verification)."""
    out = {}
    for h in Journal.state(store, academy, PHASE).values():
        args = (h["data"] or {}).get("args") or {}
        if h["op"] == "switch-upn" and h["event"] == "done" and args.get("id"):
            out[args["id"]] = args["upn_to"]
    return out


async def verify_domain(env: Any, t: Any) -> dict[str, Any]:
    code = env.academy.code
    history = Journal.state(env.store, code, PHASE)
    if not any(h["event"] == "done" for h in history.values()):
        return {"checked": 0, "differences": [], "note": "the domain phase has not run for this academy"}
    diffs: list[dict[str, str]] = []
    checked = 0

    def add(kind: str, obj: str, msg: str) -> None:
        diffs.append({"kind": kind, "object": obj, "message": msg})

    for name in (d.lower() for d in env.academy.legacy_tenant.domains):
        checked += 1
        resp = await t.trust.request("GET", f"/domains/{name}")
        if not resp.ok or not resp.body.get("isVerified"):
            add("domain", name, "not verified in the trust tenant")
        resp = await t.legacy.request("GET", f"/domains/{name}")
        if resp.status != 404:
            add("domain", name, "still present in the legacy tenant")
    for h in history.values():
        args = (h["data"] or {}).get("args") or {}
        if h["op"] not in ("rename-user", "switch-upn") or h["event"] != "done":
            continue
        checked += 1
        conn = t.trust if h["op"] == "switch-upn" else t.legacy
        resp = await conn.request("GET", f"/users/{args['id']}", params={"$select": "id,userPrincipalName"})
        have = resp.body.get("userPrincipalName", "") if resp.ok else None
        if have is None:
            add("user", args["upn_to"], "missing")
        elif have.lower() != str(args["upn_to"]).lower():
            add("user", args["upn_to"], f"UPN is {have}")
    return {"checked": checked, "differences": diffs}
