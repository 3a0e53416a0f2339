"""The report's accounts section: each `match` to an existing trust object with how the mapping guard let it
stand (created by trustfold for the academy, or acknowledged by the operator), and the disabled accounts and
guests and how they were carried (disabled and unlicensed; guests listed for invitation, never created)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore


def accounts_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"matches": [{kind, source, target, name, guard}], "disabled_carried", "guests_listed"}; {} when
    nothing of the kind is mapped."""
    states = {
        r["object_id"]: json.loads(r["data"] or "{}")
        for r in store.rows(
            "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'user' AND removed = 0",
            (code,),
        )
    }
    matches: list[dict[str, Any]] = []
    disabled = guests = 0
    for r in store.rows(
        "SELECT kind, source_id, source_key, target_key, action, data FROM mappings WHERE academy = ? "
        "ORDER BY kind, source_key",
        (code,),
    ):
        data = json.loads(r["data"] or "{}")
        src = states.get(r["source_id"], {}) if r["kind"] == "user" else {}
        if src.get("userType") == "Guest":
            guests += 1
        elif r["action"] == "create" and src.get("accountEnabled") is False:
            disabled += 1
        if r["action"] == "match":
            matches.append(
                {
                    "kind": r["kind"],
                    "source": r["source_key"] or r["source_id"],
                    "target": r["target_key"],
                    "name": data.get("target_name") or "",
                    "guard": "acknowledged (match-existing)"
                    if data.get("acknowledged")
                    else "created by trustfold",
                }
            )
    if not (matches or disabled or guests):
        return {}
    return {"matches": matches, "disabled_carried": disabled, "guests_listed": guests}
