"""The report's "Readiness" section: the last preflight, the one-off set-up and OneDrive provisioning, as
`trustfold preflight`, `bootstrap` and `provision-onedrive` recorded them in the state store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrations.core.store import StateStore


def onboarding(store: StateStore) -> dict[str, Any]:
    """{"preflight": {"at", "checks": [...]}, "bootstrap": [...], "onedrive": {academy: detail}}; empty parts
    when the command never ran."""
    last = store.rows("SELECT run_id, at FROM journal WHERE phase = 'preflight' ORDER BY seq DESC LIMIT 1")
    checks: list[dict[str, Any]] = []
    if last:
        for r in store.rows(
            "SELECT step_key, event, data FROM journal WHERE phase = 'preflight' AND run_id = ? ORDER BY seq",
            (last[0]["run_id"],),
        ):
            data = json.loads(r["data"] or "{}")
            checks.append({**data, "ok": r["event"] == "ok"})
    bootstrap = [
        {"step": r["step_key"], "event": r["event"], "at": r["at"]}
        for r in store.rows(
            "SELECT step_key, event, at FROM journal WHERE phase = 'bootstrap' AND event = 'done' "
            "ORDER BY seq"
        )
    ]
    onedrive = {s["academy"]: s["detail"] for s in store.phase_statuses() if s["phase"] == "onedrive"}
    return {
        "preflight": {"at": last[0]["at"], "checks": checks} if last else {},
        "bootstrap": bootstrap,
        "onedrive": onedrive,
    }
