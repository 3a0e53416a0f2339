"""A state store filled the way the engine fills it (reporting contract in docs/contracts.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from migrations.core.store import StateStore, dumps

CONFIG = Path(__file__).resolve().parents[2] / "config"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AWKWARD = 'St Mary\'s <Église> & "Co"'


def _at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def add_run(
    store: StateStore,
    academy: str,
    phase: str,
    *,
    kind: str = "run",
    start: float,
    length: float,
    status: str = "succeeded",
    counts: dict[str, float] | None = None,
    samples: int = 0,
) -> str:
    run_id = uuid.uuid4().hex
    with store.tx() as c:
        c.execute(
            "INSERT INTO runs (id, academy, phase, kind, plan_id, started_at, finished_at, status, counts, "
            "operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                academy,
                phase,
                kind,
                f"plan-{academy}-{phase}",
                _at(start),
                _at(start + length) if status != "running" else None,
                status,
                dumps(counts or {}),
                "ops",
            ),
        )
        done = (counts or {}).get("done", 0)
        for i in range(samples):
            # Cumulative samples about once a second, as the runner writes them.
            share = (i + 1) / samples
            c.execute(
                "INSERT INTO metrics (run_id, at, name, value) VALUES (?, ?, 'items_done', ?)",
                (run_id, _at(start + i + 1), round(done * share)),
            )
            c.execute(
                "INSERT INTO metrics (run_id, at, name, value) VALUES (?, ?, 'bytes_done', ?)",
                (run_id, _at(start + i + 1), round((counts or {}).get("bytes", 0) * share)),
            )
    return run_id


def add_journal(store: StateStore, run_id: str, academy: str, phase: str, n: int) -> None:
    with store.tx() as c:
        for i in range(n):
            c.execute(
                "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, "
                "at) "
                "VALUES (?, ?, ?, ?, ?, 'create', 'done', ?, '{}', ?)",
                (run_id, academy, phase, f"plan-{academy}-{phase}", f"{phase}-{i}", uuid.uuid4().hex, _at(i)),
            )


def fill(store: StateStore) -> None:
    """oakwood: complete with throttling and files; stmarys: awkward names, failure in groups, differences."""
    store.set_phase_status(
        "oakwood",
        "discover",
        "done",
        {
            "counts": {"users": 120, "groups": 14},
            "findings": [
                {
                    "kind": "disabled-account",
                    "object_id": "u1",
                    "display": "Zoë O'Neill",
                    "message": "account disabled in the legacy tenant",
                    "handling": "skipped (include_disabled is false)",
                },
                {
                    "kind": "duplicate-display-name",
                    "object_id": "g7",
                    "display": "Year 7 <Science>",
                    "message": "two groups share this name",
                    "handling": "second gets suffix 2",
                },
            ],
        },
    )
    add_run(store, "oakwood", "discover", kind="discover", start=0, length=3, counts={"requests": 12})
    users = add_run(
        store,
        "oakwood",
        "users",
        start=5,
        length=20,
        counts={
            "planned": 118,
            "done": 110,
            "already_present": 6,
            "skipped": 2,
            "requests": 40,
            "throttled": 3,
            "wait_seconds": 4.5,
        },
        samples=6,
    )
    add_journal(store, users, "oakwood", "users", 5)
    store.set_phase_status("oakwood", "users", "done", {"last_run": users})
    groups = add_run(
        store, "oakwood", "groups", start=30, length=5, counts={"planned": 14, "done": 14, "requests": 14}
    )
    # The identity engine writes its tally at the top level of the detail; a rerun found all present.
    add_run(store, "oakwood", "groups", start=35, length=1, counts={"planned": 14, "already_present": 14})
    store.set_phase_status(
        "oakwood", "groups", "done", {"last_run": groups, "planned": 14, "done": 14, "already_present": 0}
    )
    mem = add_run(
        store, "oakwood", "memberships", start=36, length=4, counts={"planned": 30, "done": 30, "requests": 4}
    )
    store.set_phase_status("oakwood", "memberships", "done", {"last_run": mem})
    # files: an interrupted run then a resume; throttling accumulates over both.
    add_run(
        store,
        "oakwood",
        "files",
        start=41,
        length=10,
        status="interrupted",
        counts={"planned": 300, "done": 120, "bytes": 50_000_000, "throttled": 2, "wait_seconds": 2.0},
        samples=5,
    )
    files = add_run(
        store,
        "oakwood",
        "files",
        start=55,
        length=15,
        counts={
            "planned": 300,
            "done": 178,
            "failed": 2,
            "bytes": 80_000_000,
            "renamed": 4,
            "throttled": 1,
            "wait_seconds": 1.25,
        },
        samples=8,
    )
    add_journal(store, files, "oakwood", "files", 3)
    store.set_phase_status(
        "oakwood",
        "files",
        "done",
        {
            "last_run": files,
            "counts": {"planned": 300, "done": 298, "failed": 2, "bytes": 130_000_000, "renamed": 4},
        },
    )
    # The permissions phase ran after files (oakwood shares nothing: it adds no counts).
    store.set_phase_status("oakwood", "permissions", "done", {"counts": {"planned": 0}})
    # The mail phase ran too (oakwood's mailboxes are not part of this fixture: no counts).
    store.set_phase_status("oakwood", "mail", "done", {"counts": {"planned": 0}})
    # And the teams phase (oakwood has no teams: nothing to carry).
    store.set_phase_status("oakwood", "teams", "done", {"counts": {"planned": 0}})
    add_run(store, "oakwood", "verify", kind="verify", start=72, length=2, counts={"requests": 30})
    store.set_phase_status(
        "oakwood",
        "verify",
        "done",
        {"ok": True, "checked": 462, "differences": [], "files": {"drives": 3, "hash_ok": 298}},
    )

    store.set_phase_status(
        "stmarys",
        "discover",
        "done",
        {
            "counts": {"users": 40},
            "findings": [
                {
                    "kind": "upn-characters",
                    "object_id": "u9",
                    "display": AWKWARD,
                    "message": "<script>alert(1)</script>",
                    "handling": "renamed | transliterated",
                },
            ],
        },
    )
    add_run(store, "stmarys", "discover", kind="discover", start=100, length=2)
    su = add_run(
        store,
        "stmarys",
        "users",
        start=103,
        length=6,
        counts={"planned": 40, "done": 40, "throttled": 7, "wait_seconds": 9.0},
    )
    add_journal(store, su, "stmarys", "users", 2)
    store.set_phase_status("stmarys", "users", "done", {"last_run": su})
    sg = add_run(
        store,
        "stmarys",
        "groups",
        start=110,
        length=3,
        status="failed",
        counts={"planned": 5, "done": 3, "failed": 2},
    )
    store.set_phase_status("stmarys", "groups", "failed", {"last_run": sg})
    store.set_phase_status(
        "stmarys",
        "verify",
        "done",
        {
            "ok": False,
            "checked": 45,
            "differences": [
                {"kind": "missing", "object": AWKWARD, "message": "group not found in the trust tenant"}
            ],
        },
    )
    store.audit(
        operator="ops",
        host="laptop",
        command="run",
        outcome="succeeded",
        academy="oakwood",
        phase="users",
        plan_id="plan-oakwood-users",
        detail={"steps": 118},
    )
    store.audit(
        operator="ops",
        host="laptop",
        command="run",
        outcome="failed",
        academy="stmarys",
        phase="groups",
        plan_id="plan-stmarys-groups",
    )


def add_preflight(store: StateStore, *checks: tuple[str, str, bool]) -> None:
    """One `trustfold preflight`, recorded as the command records it: (check, tenant, ok) each."""
    from migrations.readiness.preflight import Check, Report, record
    from trust import load_trust

    report = Report(
        [
            Check(name, tenant, ok, f"{name} {'fine' if ok else 'wrong'}", "" if ok else "fix it")
            for name, tenant, ok in checks
        ]
    )
    record(store, load_trust(CONFIG), report)


def add_bootstrap(store: StateStore) -> None:
    """`trustfold bootstrap` registering the provenance extension, journaled as bootstrap journals it."""
    from migrations.readiness.bootstrap import _journal
    from trust import load_trust

    trust = load_trust(CONFIG)
    _journal(store, trust, "extension:trustfoldSource", "intent", None, {"name": "trustfoldSource"})
    _journal(store, trust, "extension:trustfoldSource", "done", "ext-1", {"name": "trustfoldSource"})


def add_provisioning(
    store: StateStore, academy: str, requested: list[str], ready: int, waiting: list[str]
) -> None:
    """One `trustfold provision-onedrive` call: each accepted admin call journaled (≤200 users), then the
    status holding this call's own counts, as migrations/readiness/onedrive.py writes them."""
    from migrations.readiness.onedrive import MAX_PER_CALL, PHASE, ProvisionResult, _journal_requested

    run_id = f"onedrive-{uuid.uuid4().hex[:12]}"
    result = ProvisionResult(academy, mapped=ready + len(waiting), ready=ready, waiting=waiting)
    for i in range(0, len(requested), MAX_PER_CALL):
        _journal_requested(store, academy, run_id, requested[i : i + MAX_PER_CALL])
        result.calls += 1
        result.requested += len(requested[i : i + MAX_PER_CALL])
    store.set_phase_status(academy, PHASE, "done" if not waiting else "running", result.as_dict())


def verify_detail(identity_checked: int, parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What `trustfold verify` stores: identity's result with each phase's part under its name, the parts'
    checks and differences added to the totals (cli/migrate_cmds.verify)."""
    result: dict[str, Any] = {"ok": True, "checked": identity_checked, "differences": []}
    for name, part in sorted(parts.items()):
        result[name] = part
        result["differences"] += part.get("differences", [])
        result["checked"] += part.get("checked", 0)
    result["ok"] = not result["differences"]
    return result
