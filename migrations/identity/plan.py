"""The identity phases' planners: users, groups and memberships (or the three as one graph) from the
inventory and the reviewed mapping."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from migrations.core.errors import PlanningError
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.graph.client import TenantConnection
from migrations.identity import licence_groups
from migrations.identity.context import _member_ids, marker_value
from migrations.safety.sanitise import clean_name
from trust import Academy, Trust


def inventory(store: StateStore, academy: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        r["object_id"]: json.loads(r["data"])
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = ? AND removed = 0 "
            "ORDER BY object_id",
            (academy, kind),
        )
    }


def class_team_groups(store: StateStore, academy: str) -> set[str]:
    """Source groups discovery found to be class teams. The teams phase makes each as an education class (the
    educationClass template needs a group made by educationclass-post), with its teachers and pupils, so the
    groups and memberships phases leave them out and verification leaves them to the teams phase."""
    return {
        r["object_id"]
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'team' AND removed = 0",
            (academy,),
        )
        if json.loads(r["data"]).get("specialization") == "educationClass"
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


def carried_enabled(src: dict[str, Any]) -> bool:
    """A source account is carried in the state it has: disabled stays disabled."""
    return src.get("accountEnabled") is not False


def gets_licence(academy: Academy, src: dict[str, Any]) -> bool:
    """Enabled accounts are licensed by role; a disabled one only if phases.users.license_disabled says so."""
    return carried_enabled(src) or academy.phases.users.license_disabled


def _require_inputs(store: StateStore, academy: Academy) -> None:
    if not store.rows("SELECT 1 FROM inventory WHERE academy = ? LIMIT 1", (academy.code,)):
        raise PlanningError(f"no inventory for {academy.code}: run `trustfold discover {academy.code}` first")
    if not store.rows("SELECT 1 FROM mappings WHERE academy = ? LIMIT 1", (academy.code,)):
        raise PlanningError(f"no mapping for {academy.code}: run `trustfold discover {academy.code}` first")


def plan_users(
    trust: Trust, academy: Academy, store: StateStore, renamed: dict[str, str] | None = None
) -> Plan:
    """Create each mapped user; license it directly (licences.mode direct: one assignLicense each) or by
    membership of the academy's staff / pupils licence group (mode group: see licence_groups).
    `renamed`: source id -> target UPN that replaces a stale mapped one (see migrations/identity/stale.py)."""
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
        if src.get("userType") == "Guest":
            # A mapping stored before guests were refused: a guest is never created as a member.
            notes.append(f"{row['source_key']}: guest account; not created (invite it as a guest)")
            continue
        key = f"user:{sid}"
        licence = gets_licence(academy, src)
        upn = renamed.get(sid, row["target_key"])
        role = src.get("role", "staff")
        sku = trust.settings.licences.pupil if role == "pupil" else trust.settings.licences.staff
        created = done.get(key, {}).get("event") == "done"
        if not licence:
            licensed = True  # nothing to assign
        elif by_group:
            licensed = created and done[key].get("target_id") in in_group
        else:
            licensed = done.get(f"licence:{sid}", {}).get("event") == "done"
        if created and licensed:
            already += 1
            continue
        if by_group and licence:
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
                        # Only a disabled account carries the key (plans for enabled ones read as before).
                        **({} if carried_enabled(src) else {"account_enabled": False}),
                    },
                )
            )
        if not by_group and licence:
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
    classes = class_team_groups(store, academy.code)
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
        if sid in classes:
            notes.append(f"'{src.get('displayName')}' is a class team: the teams phase makes it as a class")
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
    # A class's teachers and pupils are added by the teams phase, with the class it creates.
    classes = class_team_groups(store, academy.code)
    for link in links.values():
        grow = group_map.get(link["group_id"])
        if not grow or grow["action"] == "skip":
            continue
        if link["group_id"] in classes and f"group:{link['group_id']}" not in ids:
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
        if gref.startswith("group:"):
            name = group_map.get(gref.split(":", 1)[1], {}).get("display_name", gref)
        else:
            # A matched trust group: its name beside its id, so a reviewer sees which group receives members.
            matched = next((r for r in group_map.values() if _group_ref(r) == gref), None)
            shown = (matched or {}).get("data", {}).get("target_name") or (matched or {}).get("target_key")
            name = f"{shown} ({gref})" if shown else gref
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
