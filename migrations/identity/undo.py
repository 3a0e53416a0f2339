"""Rollback: the journal read backwards. Only what trustfold created, and never what someone changed since.

Undo steps follow the forward protocol: `undo-intent` is journaled before the target is touched and an
outcome only once it is known — `undone`, `undo-skipped` (kept: changed since the run, reported) or
`undo-failed` (tried again by the next rollback). Transient errors (429, 5xx, dropped connections) are
retried by the connection's one retry layer; an error that survives it is `undo-failed`, never a reason to
keep an object. Forward steps left in doubt (intent, no outcome) are resolved by provenance marker, so a
rollback after a crash removes what the crashed run made. An interrupted rollback completes on the next run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrations.core.journal import Journal
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.runs import Tally
from migrations.core.steps import Outcome
from migrations.core.store import StateStore
from migrations.graph.client import BatchItem, GraphError, GraphResponse, TenantConnection, Transient

UNDOABLE = {
    "create-user": "delete user",
    "create-group": "delete group",
    "add-members": "remove members",
    "assign-licence": "licence goes with the user",
    "ensure-licence-group": "delete group",
    "assign-group-licence": "remove the group's licence",
}
PHASE_ORDER = IDENTITY_PHASES
# Latest events that leave something to undo. A kept object (undo-skipped) is checked again by every later
# rollback: once whoever changed it puts it back, it goes; while it stays changed, it is kept again.
OPEN = ("done", "failed", "intent", "undo-intent", "undo-failed", "undo-skipped")


@dataclass
class UndoStep:
    phase: str
    key: str
    op: str
    target_id: str | None
    data: dict[str, Any]
    args: dict[str, Any]
    in_doubt: bool = False  # the forward step has an intent and no outcome: resolved at undo time

    def describe(self) -> str:
        a = self.args
        maybe = " (if the interrupted run created it)" if self.in_doubt else ""
        if self.op == "create-user":
            return f"delete user {a.get('upn')} ({self.target_id or 'by provenance marker'}){maybe}"
        if self.op in ("create-group", "ensure-licence-group"):
            return (
                f"delete group '{a.get('display_name')}' ({self.target_id or 'by provenance marker'}){maybe}"
            )
        if self.op == "assign-group-licence":
            return (
                f"remove licence {a.get('sku')} from group '{a.get('group_name')}' ({self.target_id}){maybe}"
            )
        if self.op == "add-members":
            n = len(self.data.get("members", [])) or len(a.get("member_keys", []))
            return f"remove {n} member(s) from '{a.get('group_name')}'{maybe}"
        return f"{self.op} {a.get('sku', '')} of {a.get('upn', self.target_id)}: decided with its user"


def _histories(store: StateStore, academy: str, phase: str) -> dict[str, dict[str, Any]]:
    """Per step key, in journal order: latest event, forward op, last done (since the last undone), args."""
    out: dict[str, dict[str, Any]] = {}
    for r in store.rows(
        "SELECT seq, step_key, op, event, target_id, data FROM journal WHERE academy = ? AND phase = ? "
        "ORDER BY seq",
        (academy, phase),
    ):
        h = out.setdefault(r["step_key"], {"op": r["op"], "args": {}, "done": None, "seq": r["seq"]})
        h["latest"] = r["event"]
        data = json.loads(r["data"] or "{}")
        if r["event"] == "intent":
            h["op"], h["args"], h["seq"] = r["op"], data.get("args") or {}, r["seq"]
        elif r["event"] == "done":
            h["done"] = {"target_id": r["target_id"], "data": data}
            h["seq"] = r["seq"]
        elif r["event"] == "undone":
            h["done"] = None
            h.pop("resolved", None)
        elif r["event"] == "undo-intent" and r["target_id"] and h["done"] is None:
            h["resolved"] = r["target_id"]  # an in-doubt create an earlier rollback found by its marker
    return out


def rollback_plan(store: StateStore, academy: str, phases: list[str]) -> list[UndoStep]:
    """Steps to undo, latest phase first and in reverse journal order within a phase (licences are decided
    after their users by carry_out)."""
    steps: list[UndoStep] = []
    for phase in sorted(phases, key=lambda p: -PHASE_ORDER.index(p) if p in PHASE_ORDER else 0):
        found = []
        for key, h in _histories(store, academy, phase).items():
            if h["op"] not in UNDOABLE or h["latest"] not in OPEN:
                continue
            done = h["done"]
            if done is not None:
                if done["data"].get("status") == "already" or not done["target_id"]:
                    continue
                found.append(
                    (h["seq"], UndoStep(phase, key, h["op"], done["target_id"], done["data"], h["args"]))
                )
            elif h["args"] and h["latest"] in ("intent", "undo-intent", "undo-failed", "undo-skipped"):
                resolved = h.get("resolved") if h["op"] != "add-members" else None
                step = UndoStep(phase, key, h["op"], resolved, {}, h["args"], in_doubt=resolved is None)
                found.append((h["seq"], step))
        steps.extend(s for _, s in sorted(found, key=lambda x: -x[0]))
    return steps


class _Ids:
    """Target ids of the keys the forward phases recorded (user:, group:, match:)."""

    def __init__(self, store: StateStore, academy: str):
        self.ids: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        for phase in PHASE_ORDER:
            for key, h in _histories(store, academy, phase).items():
                if h["done"] and h["done"]["target_id"] and h["op"] != "add-members":
                    self.ids[key] = h["done"]["target_id"]
                # Members trustfold added: the memberships phase's, and the users phase's licence groups'.
                if h["op"] == "add-members" and h["done"]:
                    gid = h["done"]["target_id"]
                    self.members.setdefault(gid, set()).update(h["done"]["data"].get("members", []))

    def get(self, key: str) -> str | None:
        return key.split(":", 1)[1] if key.startswith("match:") else self.ids.get(key)


async def _ids_of(conn: TenantConnection, path: str) -> set[str]:
    return {o["id"] async for o in conn.pages(path, {"$select": "id", "$top": 999})}


async def _changed(
    conn: TenantConnection, marker: str, step: UndoStep, target_id: str, ids: _Ids
) -> str | None:
    """None if the object is as trustfold left it, 'gone' if it no longer exists, else why it is kept.
    Errors other than 404 raise (after the retry layer): an unreadable object is never a reason to keep."""
    collection = "users" if step.op == "create-user" else "groups"
    select = "id,displayName,userPrincipalName" if collection == "users" else "id,displayName,mailNickname"
    path = f"/{collection}/{target_id}"
    resp = await conn.request("GET", path, params={"$select": f"{select},{marker}"})
    if resp.status == 404:
        return "gone"
    if not resp.ok:
        raise GraphError("GET", path, resp)
    body = resp.body
    a = step.args
    if body.get(marker) != a.get("marker"):
        return "its provenance marker changed; it is no longer trustfold's to delete"
    if collection == "users" and body.get("userPrincipalName", "").lower() != str(a.get("upn", "")).lower():
        return f"renamed since the run (now {body.get('userPrincipalName')}); left in place"
    if body.get("displayName") != a.get("display_name"):
        return f"display name changed since the run (now '{body.get('displayName')}'); left in place"
    if collection == "groups":
        if str(body.get("mailNickname", "")).lower() != str(a.get("mail_nickname", "")).lower():
            return f"mail nickname changed since the run (now '{body.get('mailNickname')}'); left in place"
        wanted = {i for i in (ids.get(k) for k in a.get("owner_keys", [])) if i}
        owners = await _ids_of(conn, f"{path}/owners")
        if owners != wanted:
            return (
                f"owners changed since the run ({len(owners - wanted)} added, {len(wanted - owners)} "
                "removed); left in place"
            )
        extra = await _ids_of(conn, f"{path}/members") - ids.members.get(target_id, set())
        if extra:
            return f"{len(extra)} member(s) added since the run by someone else; left in place"
    return None


async def _purge(conn: TenantConnection, target_id: str) -> str | None:
    resp = await conn.request("DELETE", f"/directory/deletedItems/{target_id}")
    return None if resp.ok or resp.status == 404 else f"purge failed: {resp.status} {resp.error_message}"


async def _undo_object(
    conn: TenantConnection,
    marker: str,
    step: UndoStep,
    ids: _Ids,
    purge: bool,
    resolved: Callable[[str], None],
) -> Outcome:
    collection = "users" if step.op == "create-user" else "groups"
    target_id = step.target_id
    if target_id is None:
        body = await conn.get(
            f"/{collection}",
            {"$filter": f"{marker} eq '{step.args.get('marker')}'", "$select": f"id,{marker}"},
        )
        found = body.get("value", [])
        if not found:
            return Outcome("undone", None, {}, "the interrupted run had not created it")
        target_id = str(found[0]["id"])
        # Journaled before it is deleted: once deleted, the marker no longer finds it (it would be left in
        # deletedItems, unpurged, if this rollback stopped here).
        resolved(target_id)
    why = await _changed(conn, marker, step, target_id, ids)
    if why and why != "gone":
        return Outcome("kept", target_id, {}, why)
    if why is None:
        resp = await conn.request("DELETE", f"/{collection}/{target_id}")
        if not (resp.ok or resp.status == 404):
            return Outcome("failed", target_id, {}, f"{resp.status} {resp.error_message}")
    if purge:
        # Only once the purge is known to have worked is the step undone; else the next rollback retries.
        failed = await _purge(conn, target_id)
        if failed:
            return Outcome("failed", target_id, {"deleted": True}, failed)
    return Outcome("undone", target_id, {"purged": purge}, "already gone" if why == "gone" else "")


def _transient(answer: Any) -> bool:
    return not isinstance(answer, GraphResponse) or answer.status in (429, 500, 502, 503, 504, 599)


async def _undo_members(conn: TenantConnection, step: UndoStep, ids: _Ids) -> Outcome:
    if step.in_doubt:
        gid = ids.get(step.args.get("group_key", ""))
        members = [i for i in (ids.get(k) for k in step.args.get("member_keys", [])) if i]
    else:
        gid, members = step.target_id, list(step.data.get("members", []))
    if not gid:
        return Outcome("undone", None, {}, "its group was never created")
    pending, refused = members, []
    try:
        async for attempt in conn.retrying(6):
            with attempt:
                answers: list[Any] = []
                for i in range(0, len(pending), 20):
                    answers += await conn.batch(
                        [BatchItem("DELETE", f"/groups/{gid}/members/{m}/$ref") for m in pending[i : i + 20]]
                    )
                refused += [a for a in answers if not _transient(a) and not (a.ok or a.status == 404)]
                pending = [m for m, a in zip(pending, answers, strict=True) if _transient(a)]
                if pending:
                    raise Transient(f"{len(pending)} member removal(s) had no answer")
    except Transient as exc:
        return Outcome("failed", gid, {}, str(exc))
    if refused:
        return Outcome("failed", gid, {}, f"{len(refused)} member removal(s) refused ({refused[0].status})")
    return Outcome("undone", gid, {"members": members})


async def _undo_group_licence(conn: TenantConnection, step: UndoStep, ids: _Ids) -> Outcome:
    """Take back the licence trustfold gave a licence group (members lose what they inherited with it)."""
    from migrations.identity.licence_groups import undo_group_licence

    gid = step.target_id or ids.get(str(step.args.get("group_key", "")))
    if not gid:
        return Outcome("undone", None, {}, "its group was never created")
    sku_id = str(step.data.get("sku_id") or "")
    if not sku_id:  # in doubt: the intent names the SKU by part number only
        skus = (await conn.get("/subscribedSkus", {"$select": "skuId,skuPartNumber"})).get("value", [])
        sku_id = next((str(k["skuId"]) for k in skus if k.get("skuPartNumber") == step.args.get("sku")), "")
        if not sku_id:
            return Outcome("undone", gid, {}, f"SKU {step.args.get('sku')} is not in the tenant")
    problem = await undo_group_licence(conn, gid, sku_id)
    if problem:
        return Outcome("failed", gid, {}, problem)
    return Outcome("undone", gid, {"sku_id": sku_id})


def _licence(store: StateStore, academy: str, step: UndoStep) -> Outcome | None:
    """A licence goes with its user: decided only once the user's undo outcome is known (None: not yet)."""
    user_key = step.args.get("user_key", "")
    h = _histories(store, academy, "users").get(user_key)
    latest = h["latest"] if h else None
    if latest == "undone":
        return Outcome("undone", step.target_id, {}, "released with its user")
    if latest == "undo-skipped":
        return Outcome("kept", step.target_id, {}, "its user was kept, so the licence stays assigned")
    if h is None or (h["done"] is None and latest not in ("undo-intent", "undo-failed")):
        return Outcome("undone", step.target_id, {}, "its user was never created")
    if latest == "done" and h["done"]["data"].get("status") == "already":
        return Outcome("kept", step.target_id, {}, "its user was there before this run and stays")
    return None


async def carry_out(
    store: StateStore,
    academy: str,
    steps: list[UndoStep],
    conn: TenantConnection,
    marker: str,
    run_id: str,
    result: Tally,
    *,
    purge: bool = False,
    concurrency: int = 4,
) -> Tally:
    journals: dict[str, Journal] = {}
    ids = _Ids(store, academy)

    def journal(step: UndoStep) -> Journal:
        if step.phase not in journals:
            journals[step.phase] = Journal(store, run_id, academy, step.phase, None)
        return journals[step.phase]

    def settle(step: UndoStep, outcome: Outcome) -> None:
        journal(step).undo_outcome(step.key, step.op, outcome)
        if outcome.status == "undone":
            result.done += 1
        elif outcome.status == "kept" and step.op == "assign-licence":
            pass  # reported with its user, which is what was kept
        elif outcome.status == "kept":
            result.kept.append(
                {"step": step.key, "object": outcome.target_id or "", "message": outcome.message}
            )
        else:
            result.fail(step.key, outcome.message)

    gate = asyncio.Semaphore(max(1, concurrency))

    async def undo(step: UndoStep) -> None:
        async with gate:
            journal(step).undo_intent(step.key, step.op, step.target_id, {"args": step.args})
            try:
                if step.op == "add-members":
                    outcome = await _undo_members(conn, step, ids)
                elif step.op == "assign-group-licence":
                    outcome = await _undo_group_licence(conn, step, ids)
                else:
                    outcome = await _undo_object(
                        conn,
                        marker,
                        step,
                        ids,
                        purge,
                        lambda tid: journal(step).undo_intent(step.key, step.op, tid, {"args": step.args}),
                    )
            except GraphError as exc:
                outcome = Outcome("failed", step.target_id, {}, str(exc))
            settle(step, outcome)

    # Steps of one phase are independent of each other; a crash stops them all (TaskGroup), and each one
    # is journaled on its own, so the next rollback resumes exactly the open ones.
    # Entra refuses to delete a group that still holds licences: licence groups go once everything else (their
    # members, their group licence) is undone.
    first = [s for s in steps if s.op not in ("assign-licence", "ensure-licence-group")]
    then = [s for s in steps if s.op == "ensure-licence-group"]
    for stage in (first, then):
        async with asyncio.TaskGroup() as group:
            for step in stage:
                group.create_task(undo(step))
    for step in [s for s in steps if s.op == "assign-licence"]:
        decided = _licence(store, academy, step)
        if decided is None:
            result.fail(step.key, "its user's undo has not completed; decided with it next time")
            continue
        journal(step).undo_intent(step.key, step.op, step.target_id, {"args": step.args})
        settle(step, decided)
    return result
