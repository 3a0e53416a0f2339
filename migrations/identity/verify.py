"""Verify: every mapped user exists with the right properties and licence; every group with its members."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrations.graph.client import MAX_BATCH, BatchItem, GraphResponse, TenantConnection
from migrations.graph.concurrently import bounded
from migrations.identity import licence_groups, licence_wait
from migrations.identity.context import IdentityContext
from migrations.identity.plan import carried_enabled, class_team_groups, gets_licence, inventory, mappings
from trust import Academy, Trust

IN_FLIGHT = 4  # reads verify keeps in flight: the identity windows still pace them


@dataclass
class Verification:
    checked: int = 0
    differences: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def add(self, kind: str, obj: str, message: str) -> None:
        self.differences.append({"kind": kind, "object": obj, "message": message})

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "differences": self.differences}


async def _get_many(conn: TenantConnection, urls: list[str]) -> list[GraphResponse | None]:
    """GETs twenty to a $batch, a few batches in flight (hundreds of users: one batch after another was
    most of verify's time), answers in the order asked."""

    async def one(chunk: list[str]) -> list[GraphResponse | None]:
        answers = await conn.batch([BatchItem("GET", u) for u in chunk])
        return [a if isinstance(a, GraphResponse) else None for a in answers]

    chunks = [urls[i : i + MAX_BATCH] for i in range(0, len(urls), MAX_BATCH)]
    return [a for part in await bounded([one(c) for c in chunks], IN_FLIGHT) for a in part]


def licence_problem(trust: Trust, ctx: IdentityContext, role: str, user: dict[str, Any]) -> str | None:
    """What is wrong with the user's licence, read from licenseAssignmentStates (direct or inherited, Active
    or in error such as CountViolation); None when the SKU is active from the source the mode expects."""
    sku = trust.settings.licences.pupil if role == "pupil" else trust.settings.licences.staff
    sku_id = ctx.sku_ids.get(sku)
    states = [s for s in user.get("licenseAssignmentStates") or [] if s.get("skuId") == sku_id]
    if licence_groups.group_mode(trust):
        purpose = licence_groups.purpose_of(role)
        gid = ctx.ids.get(licence_groups.group_key(purpose))
        states = [s for s in states if s.get("assignedByGroup") == gid] if gid else []
        source = f"by the {purpose} licence group"
    else:
        source = "directly"
    if any(s.get("state") == "Active" for s in states):
        return None
    if states:
        s = states[0]
        return f"licence {sku} {source} is in state {s.get('state')} ({s.get('error')})"
    return f"licence {sku} is not assigned {source}"


async def _group_licences(
    ctx: IdentityContext, expected: list[tuple[dict[str, Any], str]], answers: list[GraphResponse | None]
) -> dict[str, tuple[licence_wait.Expected, dict[str, Any] | None, float]]:
    """licences.mode group: each member's group licence state; members Entra has not processed yet are
    read again, bounded, before verify judges them (no state is not yet an error)."""
    if not licence_groups.group_mode(ctx.trust):
        return {}
    wanted = licence_wait.expected_group_licences(ctx.store, ctx.academy.code)
    states: dict[str, dict[str, Any] | None] = {}
    for (_, tid), resp in zip(expected, answers, strict=True):
        if tid in wanted and resp is not None and resp.ok and isinstance(resp.body, dict):
            states[tid] = licence_wait.state_for(resp.body, wanted[tid])
    waiting = licence_wait.subset(wanted, [tid for tid, s in states.items() if s is None])
    check = await licence_wait.check_group_licences(ctx.target, waiting)
    states.update(check.states)
    return {tid: (wanted[tid], s, check.waited) for tid, s in states.items()}


async def verify_identity(
    trust: Trust, academy: Academy, ctx: IdentityContext, switched: dict[str, str]
) -> Verification:
    """The trust tenant against the mapping; `switched` holds the UPNs a later phase (domain) gave users."""
    result = Verification()
    store, conn = ctx.store, ctx.target
    ctx.load_ids()
    await ctx.load_skus()
    await licence_groups.load_licence_groups(ctx)
    users = inventory(store, academy.code, "user")
    user_rows = [r for r in mappings(store, academy.code, "user").values() if r["action"] != "skip"]
    select = (
        "id,userPrincipalName,displayName,accountEnabled,usageLocation,assignedLicenses,"
        "licenseAssignmentStates"
    )
    expected: list[tuple[dict[str, Any], str]] = []
    for row in user_rows:
        tid = (
            row["data"].get("target_id")
            if row["action"] == "match"
            else ctx.ids.get(f"user:{row['source_id']}")
        )
        if not tid:
            result.add(
                "user", row["target_key"], "not created in the trust tenant (users phase not run or failed)"
            )
            continue
        expected.append((row, tid))
    answers = await _get_many(conn, [f"/users/{tid}?$select={select}" for _, tid in expected])
    group_licences = await _group_licences(ctx, expected, answers)
    for (row, tid), resp in zip(expected, answers, strict=True):
        result.checked += 1
        if resp is None or resp.status == 404 or not resp.ok:
            result.add("user", row["target_key"], f"missing in the trust tenant ({tid})")
            continue
        if row["action"] == "match":
            continue
        u = resp.body
        src = users.get(row["source_id"], {})
        if u.get("userPrincipalName", "").lower() != switched.get(tid, row["target_key"]).lower():
            result.add("user", row["target_key"], f"UPN is {u.get('userPrincipalName')}")
        if u.get("usageLocation") != trust.settings.usage_location:
            result.add("user", row["target_key"], f"usageLocation is {u.get('usageLocation')}")
        if u.get("accountEnabled") is not carried_enabled(src):
            result.add("user", row["target_key"], f"accountEnabled is {u.get('accountEnabled')}")
        if not gets_licence(academy, src):
            if u.get("assignedLicenses"):
                result.add("user", row["target_key"], "a disabled account holds a licence")
            continue
        if tid in group_licences:
            licence, state, waited = group_licences[tid]
            active = state is not None and state.get("state") == "Active"
            problem = None if active else licence_wait.describe(licence, state, waited)
        else:
            problem = licence_problem(trust, ctx, src.get("role", "staff"), u)
        if problem:
            result.add("user", row["target_key"], problem)
    # Groups: existence and members against the source, through the mapping.
    # Class teams the teams phase made as classes are its to verify.
    classes = class_team_groups(store, academy.code)
    group_rows = [
        r
        for r in mappings(store, academy.code, "group").values()
        if r["action"] == "create"
        and not (r["source_id"] in classes and not ctx.ids.get(f"group:{r['source_id']}"))
    ]
    links = inventory(store, academy.code, "membership")
    user_map = {r["source_id"]: r for r in user_rows}
    group_ids = {r["source_id"]: ctx.ids.get(f"group:{r['source_id']}") for r in group_rows}
    groups_src = inventory(store, academy.code, "group")

    async def check(row: dict[str, Any]) -> list[str]:
        """What is wrong with one group in the trust tenant (existence, then members)."""
        gid = group_ids.get(row["source_id"])
        if not gid:
            return ["not created in the trust tenant"]
        resp = await conn.request("GET", f"/groups/{gid}", params={"$select": "id,displayName,mailNickname"})
        if not resp.ok:
            return [f"missing in the trust tenant ({gid})"]
        want: set[str] = set()
        unified = "Unified" in (groups_src.get(row["source_id"], {}).get("groupTypes") or [])
        for link in links.values():
            if link["group_id"] != row["source_id"]:
                continue
            if link.get("member_type") == "group":
                if not unified and group_ids.get(link["member_id"]):
                    want.add(group_ids[link["member_id"]])  # type: ignore[arg-type]
            else:
                urow = user_map.get(link["member_id"])
                if urow:
                    tid = (
                        urow["data"].get("target_id")
                        if urow["action"] == "match"
                        else ctx.ids.get(f"user:{urow['source_id']}")
                    )
                    if tid:
                        want.add(tid)
        have = {m["id"] async for m in conn.pages(f"/groups/{gid}/members", {"$select": "id", "$top": 999})}
        missing, extra = want - have, have - want
        problems = []
        if missing:
            problems.append(f"{len(missing)} expected member(s) missing")
        if extra:
            problems.append(f"{len(extra)} member(s) not in the source group")
        return problems

    # Groups side by side, a few at a time; differences reported in the mapping's order as before.
    found = await bounded([check(row) for row in group_rows], IN_FLIGHT)
    for row, problems in zip(group_rows, found, strict=True):
        result.checked += 1
        for message in problems:
            result.add("group", row["target_key"], message)
    return result
