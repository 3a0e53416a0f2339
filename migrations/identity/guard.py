"""The mapping guard: which trust-tenant objects a mapping line may `match`.

A `match` adopts an existing trust object: whatever the source object had (memberships, ownerships, and later
sharing grants) is given to it. So a match to an object trustfold did not create for this academy needs the
operator's acknowledgement in the mapping file (`acknowledge` = `match-existing`), and protected objects can
never be matched: the break-glass group (entra.break_glass_group), groups declared in entra.protected_groups,
role-assignable groups (only they can hold Entra admin roles), and every user or group a conditional access
policy excludes. Checked at `mapping import` (bad input, exit 2) and again at every plan (the tenant may have
changed, and mappings stored before the guard existed carry no acknowledgement).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from migrations.graph.client import GraphError, TenantConnection
from trust import Academy, Trust

ACKNOWLEDGE = "match-existing"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class Protection:
    """Protected trust objects: id -> why; `problem` says why conditional access could not be read."""

    protected: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    policies: int = 0

    def add(self, oid: str, why: str) -> None:
        self.protected.setdefault(oid, why)


async def read_protection(trust: Trust, conn: TenantConnection, groups: list[dict[str, Any]]) -> Protection:
    """`groups`: the trust tenant's groups with id, displayName, mailNickname and isAssignableToRole."""
    out = Protection()
    entra = trust.settings.entra
    glass = entra.break_glass_group.strip().lower()
    declared = {p.strip().lower() for p in entra.protected_groups}
    for g in groups:
        gid, name = str(g["id"]), str(g.get("displayName") or "")
        if name.strip().lower() == glass:
            out.add(gid, "it is the break-glass group (entra.break_glass_group)")
        if {gid.lower(), name.strip().lower(), str(g.get("mailNickname") or "").lower()} & declared:
            out.add(gid, "it is declared in entra.protected_groups")
        if g.get("isAssignableToRole"):
            out.add(gid, "it is role-assignable (it can hold Entra admin roles)")
    try:
        policies = [p async for p in conn.pages("/identity/conditionalAccess/policies")]
    except GraphError as exc:
        client = trust.settings.tenant.credential.client_id
        out.problem = (
            f"conditional access policies cannot be read ({exc.response.status}): grant Policy.Read.All "
            f"(application) to app {client} so trustfold can see which objects they exclude"
        )
        return out
    out.policies = len(policies)
    for p in policies:
        users = (p.get("conditions") or {}).get("users") or {}
        why = f"conditional access policy '{p.get('displayName')}' excludes it"
        for oid in [*(users.get("excludeGroups") or []), *(users.get("excludeUsers") or [])]:
            if _GUID.match(str(oid)):  # excludeUsers may also hold "GuestsOrExternalUsers"
                out.add(str(oid), why)
    return out


def own_marker(academy: Academy, marker: str | None) -> bool:
    """Created by trustfold for this academy (its provenance marker names the academy and its tenant)."""
    return bool(marker) and str(marker).startswith(f"{academy.code}|{academy.legacy_tenant.id}|")


def refusal(
    academy: Academy,
    protection: Protection,
    kind: str,
    key: str,
    target_id: str,
    marker: str | None,
    name: str | None,
    acknowledged: bool,
) -> tuple[str, str] | None:
    """(column, message) when a `match` of `kind` to trust object `key` (`target_id`) may not stand."""
    shown = f"{kind} '{key}'" + (f" ({name})" if name and name != key else "")
    why = protection.protected.get(target_id)
    if why:
        return "target_upn", f"{shown} is protected: {why}; it can never be matched (use create or skip)"
    if own_marker(academy, marker):
        return None
    if protection.problem:
        return "target_upn", f"cannot match {shown}: {protection.problem}"
    if not acknowledged:
        return (
            "acknowledge",
            f"match to {shown}, which trustfold did not create for {academy.code}, gives it everything the "
            f"source {kind} had: to adopt it, write {ACKNOWLEDGE} in this line's acknowledge column",
        )
    return None
