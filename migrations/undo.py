"""Rollback: the journal read backwards. Only what trustfold created, and never what someone changed since.

The rollback plan is derived, printed, then carried out step by step with its own journal events
(undo-intent before, undone / undo-skipped / undo-failed after), so an interrupted rollback resumes and a
repeated one does nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from migrations.graph import BatchItem, GraphResponse, TenantConnection
from migrations.store import StateStore, dumps, now

UNDOABLE = {
    "create-user": "delete user",
    "create-group": "delete group",
    "add-members": "remove members",
    "assign-licence": "licence goes with the user",
    "ensure-licence-group": "delete group",
    "assign-group-licence": "remove the group's licence",
}
# Operations whose undo is the deletion of the object they created (checked unchanged first).
DELETES = {"create-user": "users", "create-group": "groups", "ensure-licence-group": "groups"}
PHASE_ORDER = ("users", "groups", "memberships")


@dataclass
class UndoStep:
    phase: str
    key: str
    op: str
    target_id: str
    data: dict[str, Any]
    args: dict[str, Any]

    def describe(self) -> str:
        a = self.args
        if self.op == "create-user":
            return f"delete user {a.get('upn')} ({self.target_id})"
        if self.op in ("create-group", "ensure-licence-group"):
            return f"delete group '{a.get('display_name')}' ({self.target_id})"
        if self.op == "assign-group-licence":
            return f"remove licence {a.get('sku')} from group '{a.get('group_name')}' ({self.target_id})"
        if self.op == "add-members":
            return f"remove {len(self.data.get('members', []))} member(s) from '{a.get('group_name')}'"
        return f"{self.op} on {self.target_id}: removed with the user"


@dataclass
class UndoResult:
    undone: int = 0
    kept: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)


def rollback_plan(store: StateStore, academy: str, phases: list[str]) -> list[UndoStep]:
    """Steps to undo, latest phase first and in reverse journal order within a phase."""
    steps: list[UndoStep] = []
    for phase in sorted(phases, key=lambda p: -PHASE_ORDER.index(p) if p in PHASE_ORDER else 0):
        rows = store.rows(
            "SELECT step_key, op, event, target_id, data FROM journal WHERE academy = ? AND phase = ? "
            "ORDER BY seq",
            (academy, phase),
        )
        latest: dict[str, Any] = {}
        created: dict[str, Any] = {}
        args: dict[str, dict[str, Any]] = {}
        for r in rows:
            latest[r["step_key"]] = r
            if r["event"] == "intent":
                args[r["step_key"]] = json.loads(r["data"] or "{}").get("args", {})
            if r["event"] == "done":
                created[r["step_key"]] = r
        for key in reversed(list(created)):
            last = latest[key]
            if last["event"] in ("undone", "undo-skipped") or last["op"] not in UNDOABLE:
                continue
            r = created[key]
            data = json.loads(r["data"] or "{}")
            if data.get("status") == "already" or not r["target_id"]:
                continue
            steps.append(UndoStep(phase, key, r["op"], r["target_id"], data, args.get(key, {})))
    return steps


def _record(
    store: StateStore, academy: str, step: UndoStep, event: str, run_id: str, message: str = ""
) -> None:
    with store.tx() as tx:
        tx.execute(
            "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, at) "
            "VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                academy,
                step.phase,
                step.key,
                step.op,
                event,
                step.target_id,
                dumps({"message": message}),
                now(),
            ),
        )


async def _unchanged(conn: TenantConnection, marker: str, step: UndoStep) -> str | None:
    """None if the object is as trustfold left it; else why it is kept."""
    collection = DELETES[step.op]
    resp = await conn.request(
        "GET",
        f"/{collection}/{step.target_id}",
        params={
            "$select": f"id,displayName,userPrincipalName,{marker}"
            if collection == "users"
            else f"id,displayName,mailNickname,{marker}"
        },
    )
    if resp.status == 404:
        return "gone"
    if not resp.ok:
        return f"could not be read ({resp.status})"
    body = resp.body
    if body.get(marker) != step.args.get("marker"):
        return "its provenance marker changed; it is no longer trustfold's to delete"
    if (
        collection == "users"
        and body.get("userPrincipalName", "").lower() != str(step.args.get("upn", "")).lower()
    ):
        return f"renamed since the run (now {body.get('userPrincipalName')}); left in place"
    if body.get("displayName") != step.args.get("display_name"):
        return f"display name changed since the run (now '{body.get('displayName')}'); left in place"
    return None


async def carry_out(
    store: StateStore,
    academy: str,
    steps: list[UndoStep],
    conn: TenantConnection,
    marker: str,
    run_id: str,
    *,
    purge: bool = False,
) -> UndoResult:
    result = UndoResult()
    for step in steps:
        _record(store, academy, step, "undo-intent", run_id)
        if step.op == "assign-licence":
            _record(store, academy, step, "undone", run_id, "licence is released with the user")
            continue
        if step.op == "assign-group-licence":
            # Before the group can go: Entra refuses to delete a group that still holds licences.
            from migrations.licence_groups import undo_group_licence

            problem = await undo_group_licence(conn, step.target_id, str(step.data.get("sku_id", "")))
            if problem:
                result.failed.append({"step": step.key, "message": problem})
                _record(store, academy, step, "undo-failed", run_id, problem)
            else:
                result.undone += 1
                _record(store, academy, step, "undone", run_id)
            continue
        if step.op == "add-members":
            members = step.data.get("members", [])
            answers: list[Any] = []
            for i in range(0, len(members), 20):
                answers += await conn.batch(
                    [
                        BatchItem("DELETE", f"/groups/{step.target_id}/members/{m}/$ref")
                        for m in members[i : i + 20]
                    ]
                )
            bad = [a for a in answers if not isinstance(a, GraphResponse) or (not a.ok and a.status != 404)]
            if bad:
                result.failed.append({"step": step.key, "message": f"{len(bad)} member removal(s) failed"})
                _record(store, academy, step, "undo-failed", run_id, f"{len(bad)} removals failed")
            else:
                result.undone += 1
                _record(store, academy, step, "undone", run_id)
            continue
        why = await _unchanged(conn, marker, step)
        if why == "gone":
            result.undone += 1
            _record(store, academy, step, "undone", run_id, "already gone")
            continue
        if why:
            result.kept.append({"step": step.key, "object": step.target_id, "message": why})
            _record(store, academy, step, "undo-skipped", run_id, why)
            continue
        collection = DELETES[step.op]
        resp = await conn.request("DELETE", f"/{collection}/{step.target_id}")
        if resp.ok or resp.status == 404:
            if purge:
                purged = await conn.request("DELETE", f"/directory/deletedItems/{step.target_id}")
                if not (purged.ok or purged.status == 404):
                    result.failed.append({"step": step.key, "message": f"purge failed: {purged.status}"})
            result.undone += 1
            _record(store, academy, step, "undone", run_id)
        else:
            result.failed.append({"step": step.key, "message": f"{resp.status} {resp.error_message}"})
            _record(store, academy, step, "undo-failed", run_id, resp.error_message)
    return result
