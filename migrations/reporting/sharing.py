"""The report's sharing section: grants carried into the trust tenant, and what was not carried and why."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore

# Inherited grants are counted, not listed: every item below a shared folder has them.
LISTED_EXCEPT = ("sharing-inherited",)


def sharing_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"carried": {kind: n}, "not_carried": [{"kind", "count", "why"}], "findings": [...]}; {} before any
    permissions plan."""
    from migrations.permissions.plan import ours

    rows = store.rows(
        "SELECT kind, object_id, display, message, handling FROM share_findings WHERE academy = ? "
        "ORDER BY kind, display, object_id",
        (code,),
    )
    mine = ours(store, code)
    if not rows and not mine:
        return {}
    carried = Counter("link-" + r["sig"][2] if r["sig"][0] == "link" else r["sig"][0] for r in mine.values())
    why: dict[str, Counter[str]] = {}
    for r in rows:
        why.setdefault(r["kind"], Counter())[r["handling"]] += 1
    return {
        "carried": dict(sorted(carried.items())),
        "not_carried": [
            {"kind": k, "count": sum(c.values()), "why": c.most_common(1)[0][0]}
            for k, c in sorted(why.items())
        ],
        "findings": [
            {k: r[k] for k in ("kind", "object_id", "display", "message", "handling")}
            for r in rows
            if r["kind"] not in LISTED_EXCEPT
        ],
    }
