"""The identity phases: users (with licences), groups (with owners) and memberships; verify and rollback.

Every object created carries the provenance marker (a directory extension property of the trust's app, set
in the create request itself) tying it to its source object, so resume and rollback recognise exactly what
trustfold made and nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import string
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrations.engine import Journal, Outcome, Plan, Step, register_operation
from migrations.graph import BatchItem, GraphResponse, TenantConnection
from migrations.licence_assign import LicenceAssignment
from migrations.redaction import register_secret
from migrations.sanitise import clean_name, csv_line
from migrations.store import StateStore
from trust import Academy, Trust

log = logging.getLogger("trustfold.identity")
IDENTITY_PHASES = ("users", "groups", "memberships")
# The phase each operation is journaled under, also when the `identity` phase runs them as one graph.
OP_PHASE = {
    "create-user": "users",
    "assign-licence": "users",
    "create-group": "groups",
    "add-members": "memberships",
    "ensure-licence-group": "users",
    "assign-group-licence": "users",
}


def step_phase(step: Step) -> str:
    """The phase a step is journaled under: its operation's, except the licence groups' memberships, which
    the users phase adds (licences.mode group) with the memberships phase's operation."""
    return "users" if step.key.startswith("licmembers:") else OP_PHASE[step.op]


BIND_ROOT = "https://graph.microsoft.com/v1.0/directoryObjects/"


def marker_property(trust: Trust) -> str:
    client_id = trust.settings.tenant.credential.client_id or "0" * 32
    return f"extension_{client_id.replace('-', '')}_trustfoldSource"


def marker_value(academy: Academy, source_id: str) -> str:
    return f"{academy.code}|{academy.legacy_tenant.id}|{source_id}"


class PasswordSink:
    """Initial passwords go once to a per-run file created 0600; never to logs, plans or the state store."""

    def __init__(self, directory: Path, run_id: str):
        self.path = directory / f"{run_id}-initial-passwords.csv"
        self._fd: int | None = None

    def write(self, upn: str, password: str) -> None:
        register_secret(password)
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(self._fd, b"userPrincipalName,initialPassword\n")
        # The last line for a UPN wins: a create re-sent after a lost answer gets a fresh password.
        os.write(self._fd, csv_line([upn, password]).encode())
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def new_password() -> str:
    # The first character is a letter or digit: a password starting = + - @ would be read as a formula
    # when the password file is opened in a spreadsheet (20 characters still give over 120 bits).
    alphabet = string.ascii_letters + string.digits + "!#%+-=?@^_"
    while True:
        pw = secrets.choice(string.ascii_letters + string.digits) + "".join(
            secrets.choice(alphabet) for _ in range(19)
        )
        if any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw):
            return pw


@dataclass
class IdentityContext:
    trust: Trust
    academy: Academy
    store: StateStore
    target: TenantConnection
    passwords: PasswordSink | None = None
    sku_ids: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    # licences.mode group: the academy's staff / pupils groups found in the trust tenant before the run
    licence_groups: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> str:
        return marker_property(self.trust)

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        if target_id:
            self.ids[key] = target_id

    def target_id(self, key: str) -> str | None:
        if key.startswith("match:"):
            return key.split(":", 1)[1]
        return self.ids.get(key)

    def load_ids(self) -> None:
        for phase in IDENTITY_PHASES:
            for key, h in Journal.state(self.store, self.academy.code, phase).items():
                if h["event"] == "done" and h["target_id"]:
                    self.ids[key] = h["target_id"]

    async def load_skus(self) -> None:
        body = await self.target.get("/subscribedSkus")
        self.sku_ids = {s["skuPartNumber"]: s["skuId"] for s in body.get("value", [])}
        if licence_groups.group_mode(self.trust):
            self.licence_groups = await licence_groups.find_licence_groups(
                self.trust, self.academy, self.target, self.marker
            )

    async def find_by_marker(self, collection: str, value: str) -> dict[str, Any] | None:
        body = await self.target.get(
            f"/{collection}",
            {"$filter": f"{self.marker} eq '{value}'", "$select": f"id,displayName,{self.marker}"},
        )
        found = body.get("value", [])
        return found[0] if found else None


# ---- operations -------------------------------------------------------------------------------------------
class CreateUser:
    name = "create-user"
    batchable = True

    def describe(self, step: Step) -> str:
        a = step.args
        return f"create user {a['upn']} ({a['display_name']}, {a['role']}) from {a['source_upn']}"

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        a = step.args
        password = new_password()
        if ctx.passwords:
            ctx.passwords.write(a["upn"], password)
        body = {
            "accountEnabled": True,
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "userPrincipalName": a["upn"],
            "usageLocation": a["usage_location"],
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True},
            ctx.marker: a["marker"],
        }
        for src, dst in (
            ("given_name", "givenName"),
            ("surname", "surname"),
            ("job_title", "jobTitle"),
            ("department", "department"),
            ("employee_type", "employeeType"),
        ):
            if a.get(src):
                body[dst] = a[src]
        return BatchItem("POST", "/users", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", resp.body["id"], {"upn": step.args["upn"]})
        return None

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        found = await ctx.find_by_marker("users", step.args["marker"])
        return Outcome("done", found["id"], {"upn": step.args["upn"], "reconciled": True}) if found else None


class AssignLicence(LicenceAssignment):
    """A user's direct licence (licences.mode direct)."""

    name = "assign-licence"
    collection = "users"
    subject = "user_key"

    def describe(self, step: Step) -> str:
        return f"assign licence {step.args['sku']} to {step.args['upn']}"

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        uid = self._id(step, ctx)
        user = await _read_own(ctx, f"/users/{uid}", {"$select": "id,assignedLicenses"})
        if self.holds(step, ctx, user):
            return Outcome("done", uid, self.data(step, ctx))
        # Not held: typically the user was created moments ago and the licence call met Graph's eventual
        # consistency (404). Now that the user is visible, assign it (assigning is idempotent).
        again = self.request(step, ctx)
        resp = await ctx.target.request("POST", again.url, json=again.body)
        if resp.ok:
            return Outcome("done", uid, self.data(step, ctx))
        return None


class CreateGroup:
    name = "create-group"
    batchable = True

    def describe(self, step: Step) -> str:
        a = step.args
        kind = "Microsoft 365 group" if a["unified"] else "security group"
        return (
            f"create {kind} '{a['display_name']}' ({a['mail_nickname']}) with {len(a['owner_keys'])} owner(s)"
        )

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        a = step.args
        owners = [ctx.target_id(k) for k in a["owner_keys"]]
        body: dict[str, Any] = {
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "mailEnabled": a["unified"],
            "securityEnabled": not a["unified"] or a["security_enabled"],
            "groupTypes": ["Unified"] if a["unified"] else [],
            ctx.marker: a["marker"],
        }
        if a.get("description"):
            body["description"] = a["description"]
        if a["unified"] and a.get("visibility"):
            body["visibility"] = a["visibility"]
        if owners:
            body["owners@odata.bind"] = [BIND_ROOT + o for o in owners if o][:20]
        return BatchItem("POST", "/groups", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", resp.body["id"], {"mail_nickname": step.args["mail_nickname"]})
        return None

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        found = await ctx.find_by_marker("groups", step.args["marker"])
        return Outcome("done", found["id"], {"reconciled": True}) if found else None


class AddMembers:
    name = "add-members"
    batchable = True

    def describe(self, step: Step) -> str:
        return f"add {len(step.args['member_keys'])} member(s) to '{step.args['group_name']}'"

    def _ids(self, step: Step, ctx: IdentityContext) -> tuple[str | None, list[str]]:
        return (
            ctx.target_id(step.args["group_key"]),
            [i for i in (ctx.target_id(k) for k in step.args["member_keys"]) if i],
        )

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        gid, members = self._ids(step, ctx)
        return BatchItem("PATCH", f"/groups/{gid}", {"members@odata.bind": [BIND_ROOT + m for m in members]})

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        gid, members = self._ids(step, ctx)
        if resp.ok:
            return Outcome("done", gid, {"members": members})
        return None  # "already exist" (all or nothing) and lost answers are reconciled member by member

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        gid, members = self._ids(step, ctx)
        if gid is None:
            return None  # the group's own create is not known yet: nothing can be in it
        present = await _member_ids(ctx.target, gid)
        for m in members:
            if m not in present:
                resp = await ctx.target.request(
                    "POST", f"/groups/{gid}/members/$ref", json={"@odata.id": BIND_ROOT + m}
                )
                if resp.status == 404:
                    return None  # the group or member is not visible yet (replication lag): ask again
                if not resp.ok and "already exist" not in resp.error_message:
                    return Outcome("failed", message=f"adding {m}: {resp.status} {resp.error_message}")
        return Outcome("done", gid, {"members": members, "reconciled": True})


for _op in (CreateUser(), AssignLicence(), CreateGroup(), AddMembers()):
    register_operation(_op)

# Group-based licensing's operations register themselves; imported here so every identity run knows them.
from migrations import licence_groups  # noqa: E402


# ---- inputs from discovery and mapping ---------------------------------------------------------------------
async def _member_ids(conn: Any, gid: str, wait: float = 15.0) -> set[str]:
    """Member ids of a group this tool may have created moments ago: 404 (eventual consistency) is retried
    briefly, as for _read_own."""
    import asyncio
    import time

    from migrations.graph import GraphError

    deadline = time.monotonic() + wait
    while True:
        try:
            return {
                m["id"] async for m in conn.pages(f"/groups/{gid}/members", {"$select": "id", "$top": 999})
            }
        except GraphError as exc:
            if exc.response.status != 404 or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)


async def _read_own(
    ctx: IdentityContext, path: str, params: dict[str, Any], wait: float = 15.0
) -> dict[str, Any]:
    """GET an object this tool created; a brand-new object can answer 404 for a few seconds (Graph's
    eventual consistency, graph-facts.md), so 404 is retried briefly."""
    import asyncio
    import time

    from migrations.graph import GraphError

    deadline = time.monotonic() + wait
    while True:
        try:
            return dict(await ctx.target.get(path, params))
        except GraphError as exc:
            if exc.response.status != 404 or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.25)


def inventory(store: StateStore, academy: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        r["object_id"]: json.loads(r["data"])
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = ? AND removed = 0 "
            "ORDER BY object_id",
            (academy, kind),
        )
    }


def mappings(store: StateStore, academy: str, kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in store.rows(
        "SELECT * FROM mappings WHERE academy = ? AND kind = ? ORDER BY source_id", (academy, kind)
    ):
        row = dict(r)
        row["data"] = json.loads(row["data"] or "{}")
        out[row["source_id"]] = row
    return out


def _user_ref(row: dict[str, Any]) -> str:
    if row["action"] == "match":
        return f"match:{row['data']['target_id']}"
    return f"user:{row['source_id']}"


def _group_ref(row: dict[str, Any]) -> str:
    if row["action"] == "match":
        return f"match:{row['data']['target_id']}"
    return f"group:{row['source_id']}"


class PlanningError(Exception):
    """The plan cannot be made (missing discovery, earlier phase not run)."""


def _require_inputs(store: StateStore, academy: Academy) -> None:
    if not store.rows("SELECT 1 FROM inventory WHERE academy = ? LIMIT 1", (academy.code,)):
        raise PlanningError(f"no inventory for {academy.code}: run `trustfold discover {academy.code}` first")
    if not store.rows("SELECT 1 FROM mappings WHERE academy = ? LIMIT 1", (academy.code,)):
        raise PlanningError(f"no mapping for {academy.code}: run `trustfold discover {academy.code}` first")


def plan_users(
    trust: Trust, academy: Academy, store: StateStore, renamed: dict[str, str] | None = None
) -> Plan:
    """Create each mapped user; license it directly (licences.mode direct: one assignLicense each) or by
    membership of the academy's staff / pupils licence group (mode group: see migrations.licence_groups).
    `renamed`: source id -> target UPN that replaces a stale mapped one (see migrations/stale.py)."""
    _require_inputs(store, academy)
    renamed = renamed or {}
    users = inventory(store, academy.code, "user")
    done = Journal.state(store, academy.code, "users")
    by_group = licence_groups.group_mode(trust)
    in_group = licence_groups.members_added(done) if by_group else set()
    steps: list[Step] = []
    to_license: list[tuple[str, str]] = []
    notes: list[str] = []
    already = 0
    for sid, row in mappings(store, academy.code, "user").items():
        if row["action"] != "create":
            continue
        src = users.get(sid)
        if src is None:
            notes.append(f"{row['source_key']}: no longer in the source inventory; not created")
            continue
        key = f"user:{sid}"
        upn = renamed.get(sid, row["target_key"])
        role = src.get("role", "staff")
        sku = trust.settings.licences.pupil if role == "pupil" else trust.settings.licences.staff
        created = done.get(key, {}).get("event") == "done"
        if by_group:
            licensed = created and done[key].get("target_id") in in_group
        else:
            licensed = done.get(f"licence:{sid}", {}).get("event") == "done"
        if created and licensed:
            already += 1
            continue
        if by_group:
            to_license.append((key, role))
        if not created or not by_group:
            steps.append(
                Step(
                    key,
                    "create-user",
                    {
                        "source_id": sid,
                        "source_upn": src.get("userPrincipalName", ""),
                        "upn": upn,
                        "display_name": row["data"].get("target_display_name")
                        or src.get("displayName")
                        or upn,
                        # Spoofing characters cleaned as in the display name (discovery records the finding).
                        "given_name": clean_name(src["givenName"]) if src.get("givenName") else None,
                        "surname": clean_name(src["surname"]) if src.get("surname") else None,
                        "mail_nickname": upn.split("@")[0],
                        "usage_location": trust.settings.usage_location,
                        "job_title": src.get("jobTitle"),
                        "department": src.get("department"),
                        "employee_type": src.get("employeeType"),
                        "role": role,
                        "marker": marker_value(academy, sid),
                    },
                )
            )
        if not by_group:
            steps.append(
                Step(
                    f"licence:{sid}",
                    "assign-licence",
                    {"user_key": key, "upn": upn, "sku": sku},
                    after=(key,),
                )
            )
    if by_group:
        planned = {s.key for s in steps}
        steps += licence_groups.plan_group_licensing(trust, academy, to_license, planned)
    return Plan(academy.code, "users", sorted(steps, key=lambda s: s.key), notes, already)


def plan_groups(
    trust: Trust,
    academy: Academy,
    store: StateStore,
    renamed: dict[str, str] | None = None,
    planned: set[str] | None = None,
) -> Plan:
    """`renamed`: source id -> mailNickname replacing a stale mapped one; `planned`: user step keys of the
    same plan (the identity graph), so owners not yet created are bound once their create is done."""
    _require_inputs(store, academy)
    renamed, planned = renamed or {}, planned or set()
    groups = inventory(store, academy.code, "group")
    owners = inventory(store, academy.code, "owner")
    user_map = mappings(store, academy.code, "user")
    users_done = Journal.state(store, academy.code, "users")
    done = Journal.state(store, academy.code, "groups")
    owners_of: dict[str, list[str]] = defaultdict(list)
    for o in owners.values():
        owners_of[o["group_id"]].append(o["owner_id"])
    steps: list[Step] = []
    notes: list[str] = []
    already = 0
    for sid, row in mappings(store, academy.code, "group").items():
        if row["action"] != "create":
            continue
        src = groups.get(sid)
        if src is None:
            continue
        key = f"group:{sid}"
        if done.get(key, {}).get("event") == "done":
            already += 1
            continue
        owner_keys = []
        after: list[str] = []
        for oid in sorted(owners_of.get(sid, [])):
            urow = user_map.get(oid)
            if not urow or urow["action"] == "skip":
                continue
            ref = _user_ref(urow)
            if ref in planned:
                after.append(ref)
            elif ref.startswith("user:") and users_done.get(ref, {}).get("event") != "done":
                notes.append(
                    f"owner {urow['source_key']} of '{src.get('displayName')}' not yet created "
                    "(run the users phase first); group created without that owner"
                )
                continue
            owner_keys.append(ref)
        if len(owner_keys) > 20:
            notes.append(
                f"'{src.get('displayName')}': {len(owner_keys)} owners, the first 20 bound at creation"
            )
        unified = "Unified" in (src.get("groupTypes") or [])
        steps.append(
            Step(
                key,
                "create-group",
                {
                    "source_id": sid,
                    "display_name": row["data"].get("target_display_name") or src.get("displayName"),
                    "mail_nickname": renamed.get(sid, row["target_key"]),
                    "description": src.get("description"),
                    "unified": unified,
                    "security_enabled": bool(src.get("securityEnabled")),
                    "visibility": src.get("visibility"),
                    "owner_keys": owner_keys[:20],
                    "marker": marker_value(academy, sid),
                },
                after=tuple(a for a in after if a in owner_keys[:20]),
            )
        )
    return Plan(academy.code, "groups", sorted(steps, key=lambda s: s.key), notes, already)


async def plan_memberships(
    trust: Trust,
    academy: Academy,
    store: StateStore,
    target: TenantConnection,
    planned: set[str] | None = None,
) -> Plan:
    """`planned`: user and group step keys of the same plan (the identity graph): links to them are planned
    to run once those creates are done, instead of waiting for a later run."""
    _require_inputs(store, academy)
    planned = planned or set()
    groups = inventory(store, academy.code, "group")
    links = inventory(store, academy.code, "membership")
    user_map = mappings(store, academy.code, "user")
    group_map = mappings(store, academy.code, "group")
    ids: dict[str, str] = {}
    for phase in ("users", "groups"):
        for key, h in Journal.state(store, academy.code, phase).items():
            if h["event"] == "done" and h["target_id"]:
                ids[key] = h["target_id"]
    notes: list[str] = []
    wanted: dict[str, list[str]] = defaultdict(list)
    for link in links.values():
        grow = group_map.get(link["group_id"])
        if not grow or grow["action"] == "skip":
            continue
        gref = _group_ref(grow)
        if gref.startswith("group:") and gref not in ids and gref not in planned:
            notes.append(f"group '{grow['display_name']}' not created yet (run the groups phase first)")
            continue
        if link.get("member_type") == "group":
            mrow = group_map.get(link["member_id"])
            if not mrow or mrow["action"] == "skip":
                continue
            if "Unified" in (groups.get(link["group_id"], {}).get("groupTypes") or []):
                notes.append(
                    f"'{grow['display_name']}' is a Microsoft 365 group: nested group "
                    f"'{mrow['display_name']}' cannot be a member (Graph allows only users); skipped"
                )
                continue
            mref = _group_ref(mrow)
        else:
            mrow = user_map.get(link["member_id"])
            if not mrow or mrow["action"] == "skip":
                continue
            mref = _user_ref(mrow)
        if mref.startswith(("user:", "group:")) and mref not in ids and mref not in planned:
            continue
        wanted[gref].append(mref)
    steps: list[Step] = []
    already = 0
    done = Journal.state(store, academy.code, "memberships")
    recorded: dict[str, set[str]] = defaultdict(set)
    for h in done.values():
        if h["event"] == "done":
            recorded[h["data"].get("group_key", "")] |= set(h["data"].get("member_keys", []))
    for gref in sorted(wanted):
        gid = gref.split(":", 1)[1] if gref.startswith("match:") else ids.get(gref)
        # A group this plan creates has no members yet.
        present: set[str] = await _member_ids(target, gid) if gid else set()
        todo = []
        for mref in sorted(set(wanted[gref])):
            mid = mref.split(":", 1)[1] if mref.startswith("match:") else ids.get(mref)
            if mid and mid in present:
                already += 1
            else:
                todo.append(mref)
        name = (
            group_map.get(gref.split(":", 1)[1], {}).get("display_name", gref)
            if gref.startswith("group:")
            else gref
        )
        for i in range(0, len(todo), 20):
            chunk = todo[i : i + 20]
            steps.append(
                Step(
                    f"members:{gref}:{chunk[0]}",
                    "add-members",
                    {"group_key": gref, "member_keys": chunk, "group_name": name},
                    after=tuple(k for k in (gref, *chunk) if k in planned),
                )
            )
    return Plan(academy.code, "memberships", steps, notes, already)


async def plan_identity(
    trust: Trust,
    academy: Academy,
    store: StateStore,
    target: TenantConnection,
    renamed_users: dict[str, str] | None = None,
    renamed_groups: dict[str, str] | None = None,
) -> Plan:
    """Users, groups and memberships as one dependency graph: a group waits only for its owners' creates, a
    membership only for its group and members, so no phase boundary leaves the write budget idle."""
    users = plan_users(trust, academy, store, renamed_users)
    user_keys = {s.key for s in users.steps if s.op == "create-user"}
    groups = plan_groups(trust, academy, store, renamed_groups, planned=user_keys)
    group_keys = {s.key for s in groups.steps}
    members = await plan_memberships(trust, academy, store, target, planned=user_keys | group_keys)
    notes = [n for n in groups.notes + members.notes if "run the" not in n]
    return Plan(
        academy.code,
        "identity",
        users.steps + groups.steps + members.steps,
        users.notes + notes,
        users.already_present + groups.already_present + members.already_present,
    )
