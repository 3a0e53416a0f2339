"""Synthetic sharing for the academies' libraries and OneDrives (deterministic for a seed).

What a school's tenant holds after years of use: folders shared with departments' groups and with a few
colleagues, sharing nested inside shared folders, organisation-wide links on policies, a handful of "Anyone"
links, guests (a local authority adviser), and grants to people who are not migrated (a disabled account,
a leaver whose account was deleted: SharePoint still lists the site user).
"""

from __future__ import annotations

import random
from typing import Any

from sandbox import permissions_state as ps
from sandbox.drives_state import DriveStore
from sandbox.world import TenantState

STAMP = "2026-03-02T09:15:00Z"


def _at(store: DriveStore, drive: dict[str, Any], path: str) -> dict[str, Any] | None:
    item = store.items[drive["_root"]]
    for part in [p for p in path.split("/") if p]:
        nxt = store.child(item, part)
        if nxt is None:
            return None
        item = nxt
    return item


def _grant(store: DriveStore, item: dict[str, Any] | None, grant: dict[str, Any]) -> None:
    if item is not None:
        ps.add(store, item, {**grant, "at": STAMP}, touch=False)


def seed_sharing(tenant: TenantState, users: list[dict[str, Any]], rng: random.Random) -> None:
    store: DriveStore = tenant.drives
    staff = [tenant.users[u["id"]] for u in users if u.get("role") == "staff" and u["id"] in tenant.users]
    enabled = [u for u in staff if u.get("accountEnabled", True)]
    disabled = [u for u in staff if not u.get("accountEnabled", True)]
    guests = [tenant.users[u["id"]] for u in users if u.get("role") == "guest" and u["id"] in tenant.users]
    groups = sorted(tenant.groups.values(), key=lambda g: str(g.get("mailNickname")))
    departments = [g for g in groups if str(g.get("mailNickname", "")).startswith("dept-")]
    teaching = next((g for g in groups if g.get("mailNickname") == "teachingstaff"), None)
    domain = tenant.default_domain
    leaver = ps.former_user_grant("Former member of staff", f"j.leaver@{domain}", ["read"])
    if not enabled:
        return
    for drive in [d for d in store.drives.values() if d["driveType"] == "documentLibrary"]:
        curriculum = _at(store, drive, "Curriculum")
        if departments:
            _grant(store, curriculum, ps.group_grant(departments[0], ["write"]))
        if teaching:
            _grant(store, curriculum, ps.group_grant(teaching, ["read"]))
        years = sorted(store.list_children(curriculum), key=lambda i: i["name"]) if curriculum else []
        years = [y for y in years if y.get("_folder") and y["name"].startswith(("Year", "Reception"))]
        if years:
            # Sharing nested inside a shared folder: one teacher edits a year's folder...
            _grant(store, years[0], ps.user_grant(enabled[0], ["write"]))
            topics = [t for t in store.list_children(years[0]) if t.get("_folder")]
            for f in store.list_children(topics[0]) if topics else []:
                # ...and a worksheet inside it has an organisation-wide view link.
                _grant(store, f, ps.link_grant("view", "organization"))
                break
        governors = _at(store, drive, "Governors")
        for u in enabled[1:3]:
            _grant(store, governors, ps.user_grant(u, ["read"]))
        for g in guests[:1]:
            _grant(store, governors, ps.user_grant(g, ["read"]))
        for u in disabled[:1]:
            _grant(store, governors, ps.user_grant(u, ["read"]))
        _grant(store, governors, leaver)
        _grant(store, _at(store, drive, "Policies"), ps.link_grant("view", "organization"))
        _grant(store, _at(store, drive, "Media/Sports Day 2024.mp4"), ps.link_grant("view", "anonymous"))
        _grant(store, _at(store, drive, "Archive/2019-20"), ps.link_grant("edit", "anonymous"))
    for drive in sorted(
        (d for d in store.drives.values() if d["driveType"] == "business"), key=lambda d: d["id"]
    ):
        owner = drive["owner"]["user"].get("id")
        kids = store.list_children(store.items[drive["_root"]])
        if not kids or not any(u["id"] == owner for u in staff):
            continue
        roll = rng.random()
        item = kids[0]
        if roll < 0.35 and departments:
            _grant(store, item, ps.group_grant(rng.choice(departments), [rng.choice(ps.ROLES)]))
        elif roll < 0.6:
            colleague = rng.choice(enabled)
            if colleague["id"] != owner:
                _grant(store, item, ps.user_grant(colleague, [rng.choice(ps.ROLES)]))
        elif roll < 0.7:
            _grant(store, item, ps.link_grant("view", "organization"))
        elif roll < 0.75:
            _grant(store, item, ps.link_grant("view", "anonymous"))
        elif roll < 0.8 and guests:
            _grant(store, item, ps.user_grant(rng.choice(guests), ["read"]))
