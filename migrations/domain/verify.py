"""Verify the domain phase: the domain verified in the trust tenant and gone from the legacy tenant; every
renamed legacy user and every switched trust user carrying the planned UPN."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from migrations.core.journal import Journal
from migrations.core.store import StateStore
from migrations.graph.client import MAX_BATCH, BatchItem, GraphResponse, TenantConnection
from migrations.graph.concurrently import bounded

PHASE = "domain"
BATCHES_IN_FLIGHT = 4


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
    users = [
        (h["op"], (h["data"] or {}).get("args") or {})
        for h in history.values()
        if h["op"] in ("rename-user", "switch-upn") and h["event"] == "done"
    ]
    # Hundreds of users per academy: read twenty to a $batch, a few batches in flight, per tenant, rather
    # than one round trip after another (the verify after a cut-over was most of its time here).
    for op, conn in (("switch-upn", t.trust), ("rename-user", t.legacy)):
        mine = [args for o, args in users if o == op]
        answers = await _read_users(conn, [str(args["id"]) for args in mine])
        for args, resp in zip(mine, answers, strict=True):
            checked += 1
            have = resp.body.get("userPrincipalName", "") if resp is not None and resp.ok else None
            if have is None:
                add("user", args["upn_to"], "missing")
            elif have.lower() != str(args["upn_to"]).lower():
                add("user", args["upn_to"], f"UPN is {have}")
    return {"checked": checked, "differences": diffs}


async def _read_users(conn: TenantConnection, ids: list[str]) -> list[GraphResponse | None]:
    async def chunk(part: list[str]) -> list[GraphResponse | None]:
        got = await conn.batch(
            [BatchItem("GET", f"/users/{quote(i)}?$select=id,userPrincipalName") for i in part]
        )
        return [a if isinstance(a, GraphResponse) else None for a in got]

    parts = [ids[i : i + MAX_BATCH] for i in range(0, len(ids), MAX_BATCH)]
    answers = await bounded([chunk(p) for p in parts], BATCHES_IN_FLIGHT)
    return [resp for part in answers for resp in part]
