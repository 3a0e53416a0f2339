"""The report's teams section: teams (class teams among them), channels and messages carried into the trust
tenant, channels whose migration is completed, and what was not carried (per team or channel, with what the
teacher or owner must do)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore

TEAM_OPS = ("create-team", "create-class-team")


def teams_summary(store: StateStore, code: str) -> dict[str, Any]:
    """{"teams", "class_teams", "channels", "messages", "completed", "not_carried": [{"kind", "count",
    "why"}], "findings": [...]}; {} before the teams phase has planned."""
    from migrations.core.journal import history

    done = Counter(
        h.op for h in history(store, code, "teams").values() if h.done is not None and h.latest == "done"
    )
    rows = store.rows(
        "SELECT kind, object_id, display, message FROM team_findings WHERE academy = ? "
        "ORDER BY kind, display, object_id",
        (code,),
    )
    if not done and not rows:
        return {}
    why: dict[str, list[str]] = {}
    for r in rows:
        why.setdefault(r["kind"], []).append(r["message"])
    return {
        "teams": sum(done[op] for op in TEAM_OPS),
        "class_teams": done["create-class-team"],
        "channels": done["create-channel"] + done["general-channel"],
        "messages": done["import-message"],
        "completed": done["complete-migration"],
        "not_carried": [
            {"kind": k, "count": len(v), "why": Counter(v).most_common(1)[0][0]}
            for k, v in sorted(why.items())
        ],
        "findings": [
            {**{k: r[k] for k in ("kind", "object_id", "display", "message")}, "handling": "not carried"}
            for r in rows
        ],
    }
