"""The report's "Readiness" section: the latest preflight of each tenant, the one-off set-up and OneDrive
provisioning, as `trustfold preflight`, `bootstrap` and `provision-onedrive` recorded them in the store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from migrations.readiness.onedrive import MAX_PER_CALL
from migrations.readiness.onedrive import PHASE as ONEDRIVE

if TYPE_CHECKING:
    from migrations.core.store import StateStore

# What a bootstrap step (journal step_key up to the colon) puts right: the preflight check and its tenant.
# An earlier failure of that check is shown as fixed by bootstrap, not as blocking: the demo and a careful
# operator run preflight first, to see what bootstrap will do, and may not run it again after.
BOOTSTRAP_FIXES = {"extension": ("extension", "trust")}


def onboarding(store: StateStore) -> dict[str, Any]:
    """{"preflight": {...}, "bootstrap": [...], "onedrive": {academy: detail}}; empty parts when the command
    never ran."""
    bootstrap = [
        {"step": r["step_key"], "event": r["event"], "at": r["at"], "seq": r["seq"]}
        for r in store.rows(
            "SELECT seq, step_key, event, at FROM journal WHERE phase = 'bootstrap' AND event = 'done' "
            "ORDER BY seq"
        )
    ]
    return {
        "preflight": latest_preflight(store, bootstrap),
        "bootstrap": [{k: b[k] for k in ("step", "event", "at")} for b in bootstrap],
        "onedrive": onedrive_totals(store),
    }


def latest_preflight(store: StateStore, bootstrap: list[dict[str, Any]]) -> dict[str, Any]:
    """Each tenant's checks from the last preflight that looked at it (`trustfold preflight oakwood` checks
    the trust tenant and oakwood's only, so other academies keep their earlier result); earlier preflights
    are counted as superseded, not shown. {} when preflight never ran."""
    rows = store.rows(
        "SELECT seq, run_id, data, event, at FROM journal WHERE phase = 'preflight' ORDER BY seq"
    )
    if not rows:
        return {}
    checks = [{**_data(r["data"]), "ok": r["event"] == "ok", "at": r["at"], "seq": r["seq"]} for r in rows]
    runs = [r["run_id"] for r in rows]
    latest: dict[str, str] = {}
    for check, run_id in zip(checks, runs, strict=True):
        latest[str(check.get("tenant", ""))] = run_id
    shown = [c for c, run_id in zip(checks, runs, strict=True) if latest[str(c.get("tenant", ""))] == run_id]
    for c in shown:
        fixed = _fixed_by_bootstrap(c, bootstrap)
        if fixed is not None:
            c["fixed_by"] = f"bootstrap, {fixed}"
    shown.sort(key=lambda c: (c.get("tenant") != "trust", str(c.get("tenant", "")), c["seq"]))
    for c in shown:
        del c["seq"]
    taken = sorted({c["at"] for c in shown})
    return {
        "at": taken[-1],
        "first_at": taken[0],
        "checks": shown,
        "superseded": len(set(runs) - set(latest.values())),
    }


def _fixed_by_bootstrap(check: dict[str, Any], bootstrap: list[dict[str, Any]]) -> str | None:
    """When bootstrap later did what this failed check asks for: the time it did."""
    if check["ok"]:
        return None
    for b in bootstrap:
        fixes = BOOTSTRAP_FIXES.get(str(b["step"]).split(":", 1)[0])
        if fixes == (check.get("check"), check.get("tenant")) and b["seq"] > check["seq"]:
            return str(b["at"])
    return None


def onedrive_totals(store: StateStore) -> dict[str, dict[str, Any]]:
    """Per academy: the latest provisioning call's view of every mapped user's OneDrive (ready, waiting:
    each call looks at all of them again), with what was requested and the SharePoint admin calls counted
    over every call (each call's status holds its own counts only; a rerun that finds nothing to ask says
    0), from the journal's one row per requested user."""
    out = {s["academy"]: dict(s["detail"]) for s in store.phase_statuses() if s["phase"] == ONEDRIVE}
    per_run = store.rows(
        "SELECT academy, run_id, count(*) AS n FROM journal WHERE phase = ? AND event = 'requested' "
        "GROUP BY academy, run_id",
        (ONEDRIVE,),
    )
    totals: dict[str, dict[str, int]] = {}
    for r in per_run:
        t = totals.setdefault(r["academy"], {"requested": 0, "calls": 0})
        t["requested"] += r["n"]
        t["calls"] += -(-r["n"] // MAX_PER_CALL)  # a run asks MAX_PER_CALL users a call, the rest in the last
    for academy in totals:
        out.setdefault(academy, {})  # killed while waiting: asked, but no call finished to say what is ready
    for academy, detail in out.items():
        detail.update(totals.get(academy, {"requested": 0, "calls": 0}))
    return dict(sorted(out.items()))


def _data(text: str | None) -> dict[str, Any]:
    value = json.loads(text or "{}")
    return value if isinstance(value, dict) else {}
