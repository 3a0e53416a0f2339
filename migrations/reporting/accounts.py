"""The report's accounts section: each `match` to an existing trust object with how the mapping guard let it
stand (created by trustfold for the academy, or acknowledged by the operator), and the disabled accounts and
guests and how they were carried (disabled and unlicensed; guests listed for invitation, never created); and,
with group licensing, what the last users run found of Entra's licensing (how long it took, who is left
without an active licence and why)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore


def accounts_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"matches": [{kind, source, target, name, guard}], "disabled_carried", "guests_listed", and "licensing"
    when the last users run measured group licensing}; {} when there is nothing of the kind."""
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
    licensing = _licensing(store, code)
    if not (matches or disabled or guests or licensing):
        return {}
    out: dict[str, Any] = {"matches": matches, "disabled_carried": disabled, "guests_listed": guests}
    if licensing:
        out["licensing"] = licensing
    return out


def _licensing(store: StateStore, code: str) -> dict[str, Any]:
    """The last users run's view of group licensing: {"processing_s": seconds or None (still processing
    when the run stopped waiting), "without_licence": n, "reasons": [{"reason", "count"}]}; {} when that
    run did not license by group. The last run only: an earlier run's problems may have been fixed since."""
    rows = store.rows(
        "SELECT counts FROM runs WHERE academy = ? AND phase IN ('users', 'identity') AND kind = 'run' "
        "AND finished_at IS NOT NULL ORDER BY started_at DESC LIMIT 1",
        (code,),
    )
    counts = json.loads(rows[0]["counts"] or "{}") if rows else {}
    took = counts.get("licence_processing_s")
    problems = int(counts.get("licence_problems") or 0)
    if took is None and not problems:
        return {}
    reasons = counts.get("licence_reasons") or {}
    return {
        "processing_s": took,
        "without_licence": problems,
        "reasons": [{"reason": str(k), "count": int(n)} for k, n in sorted(reasons.items())],
    }
