"""What identity's operations share for their undo (each op's own undo sits beside its forward, in steps.py
and licence_groups.py): the context, the check that an object is still as trustfold left it, and the order.

Only what trustfold created is undone, never what someone changed since (kept, and reported). Transient
errors (429, 5xx, dropped connections) are retried by the connection's one retry layer; an error that
survives it is `undo-failed`, never a reason to keep an object. Forward steps left in doubt (intent, no
outcome) are resolved by provenance marker, so a rollback after a crash removes what the crashed run made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from migrations.core.journal import history
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.steps import History, Outcome, Step, UndoStep
from migrations.core.store import StateStore
from migrations.core.undo import UndoRules, undo_steps
from migrations.graph.client import GraphError, TenantConnection
from migrations.identity.context import IdentityContext


class Reversible:
    """The undo half every identity operation shares: which forward steps leave something to undo."""

    reversible = True
    name = ""
    finds_by_marker = True  # an in-doubt create is found by its provenance marker

    @property
    def undo_name(self) -> str:
        return self.name

    def undo_step(self, phase: str, key: str, h: History) -> UndoStep | None:
        done = h.done
        if done is not None:
            # An object that was there before the run (outcome 'already') is not trustfold's to remove.
            if done.data.get("status") == "already" or not done.target_id:
                return None
            return UndoStep(phase, key, h.op, done.target_id, done.data, h.args)
        if h.args and h.latest in ("intent", "undo-intent", "undo-failed", "undo-skipped"):
            # In doubt: found at undo time by its marker, or by the id an interrupted rollback found.
            resolved = h.resolved if self.finds_by_marker else None
            return UndoStep(phase, key, h.op, resolved, {}, h.args, in_doubt=resolved is None)
        return None


class CreatedGroup(Reversible):
    """A group trustfold created with its provenance marker: found again by the marker after a crash, and
    deleted by rollback (kept if someone changed it since)."""

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        found = await ctx.find_by_marker("groups", step.args["marker"])
        return Outcome("done", found["id"], {"reconciled": True}) if found else None

    def describe_undo(self, step: UndoStep) -> str:
        where = step.target_id or "by provenance marker"
        return f"delete group '{step.args.get('display_name')}' ({where}){maybe(step)}"

    async def undo(self, step: UndoStep, ctx: UndoContext, found: Callable[[str], None]) -> Outcome:
        return await delete_object(ctx, "groups", step, found)


def maybe(step: UndoStep) -> str:
    return " (if the interrupted run created it)" if step.in_doubt else ""


@dataclass
class UndoContext:
    store: StateStore
    academy: str
    conn: TenantConnection
    marker: str
    ids: Ids
    purge: bool


class Ids:
    """Target ids of the keys the forward phases recorded (user:, group:, match:)."""

    def __init__(self, store: StateStore, academy: str):
        self.ids: dict[str, str] = {}
        self.members: dict[str, set[str]] = {}
        for phase in IDENTITY_PHASES:
            for key, h in history(store, academy, phase).items():
                if h.done and h.done.target_id and h.op != "add-members":
                    self.ids[key] = h.done.target_id
                # Members trustfold added: the memberships phase's, and the users phase's licence groups'.
                if h.op == "add-members" and h.done and h.done.target_id:
                    self.members.setdefault(h.done.target_id, set()).update(h.done.data.get("members", []))

    def get(self, key: str) -> str | None:
        return key.split(":", 1)[1] if key.startswith("match:") else self.ids.get(key)


async def _ids_of(conn: TenantConnection, path: str) -> set[str]:
    return {o["id"] async for o in conn.pages(path, {"$select": "id", "$top": 999})}


async def _changed(ctx: UndoContext, collection: str, step: UndoStep, target_id: str) -> str | None:
    """None if the object is as trustfold left it, 'gone' if it no longer exists, else why it is kept.
    Errors other than 404 raise (after the retry layer): an unreadable object is never a reason to keep."""
    conn, marker = ctx.conn, ctx.marker
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
        wanted = {i for i in (ctx.ids.get(k) for k in a.get("owner_keys", [])) if i}
        owners = await _ids_of(conn, f"{path}/owners")
        if owners != wanted:
            return (
                f"owners changed since the run ({len(owners - wanted)} added, {len(wanted - owners)} "
                "removed); left in place"
            )
        extra = await _ids_of(conn, f"{path}/members") - ctx.ids.members.get(target_id, set())
        if extra:
            return f"{len(extra)} member(s) added since the run by someone else; left in place"
    return None


async def _purge(conn: TenantConnection, target_id: str) -> str | None:
    resp = await conn.request("DELETE", f"/directory/deletedItems/{target_id}")
    return None if resp.ok or resp.status == 404 else f"purge failed: {resp.status} {resp.error_message}"


async def delete_object(
    ctx: UndoContext, collection: str, step: UndoStep, found: Callable[[str], None]
) -> Outcome:
    """The undo of a create (user or group): deleted, and purged when asked, unless changed since."""
    conn, marker = ctx.conn, ctx.marker
    target_id = step.target_id
    if target_id is None:
        body = await conn.get(
            f"/{collection}",
            {"$filter": f"{marker} eq '{step.args.get('marker')}'", "$select": f"id,{marker}"},
        )
        hits = body.get("value", [])
        if not hits:
            return Outcome("undone", None, {}, "the interrupted run had not created it")
        target_id = str(hits[0]["id"])
        # Journaled before it is deleted: once deleted, the marker no longer finds it (it would be left in
        # deletedItems, unpurged, if this rollback stopped here).
        found(target_id)
    why = await _changed(ctx, collection, step, target_id)
    if why and why != "gone":
        return Outcome("kept", target_id, {}, why)
    if why is None:
        resp = await conn.request("DELETE", f"/{collection}/{target_id}")
        if not (resp.ok or resp.status == 404):
            return Outcome("failed", target_id, {}, f"{resp.status} {resp.error_message}")
    if ctx.purge:
        # Only once the purge is known to have worked is the step undone; else the next rollback retries.
        failed = await _purge(conn, target_id)
        if failed:
            return Outcome("failed", target_id, {"deleted": True}, failed)
    return Outcome("undone", target_id, {"purged": ctx.purge}, "already gone" if why == "gone" else "")


def licence_with_user(ctx: UndoContext, step: UndoStep) -> Outcome | None:
    """A licence goes with its user: decided only once the user's undo outcome is known (None: not yet)."""
    h = history(ctx.store, ctx.academy, "users").get(step.args.get("user_key", ""))
    latest = h.latest if h else None
    if latest == "undone":
        return Outcome("undone", step.target_id, {}, "released with its user")
    if latest == "undo-skipped":
        return Outcome("kept", step.target_id, {}, "its user was kept, so the licence stays assigned")
    if h is None or (h.done is None and latest not in ("undo-intent", "undo-failed")):
        return Outcome("undone", step.target_id, {}, "its user was never created")
    if latest == "done" and h.done is not None and h.done.data.get("status") == "already":
        return Outcome("kept", step.target_id, {}, "its user was there before this run and stays")
    return None


class IdentityRules(UndoRules):
    """Entra refuses to delete a group that still holds licences: licence groups go once everything else
    (their members, their group licence) is undone. A user's licence is decided last, with its user."""

    errors = (GraphError,)

    def __init__(self, ctx: UndoContext):
        self.ctx = ctx

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        last = ("assign-licence", "ensure-licence-group")
        return [
            [s for s in steps if s.op not in last],
            [s for s in steps if s.op == "ensure-licence-group"],
            [s for s in steps if s.op == "assign-licence"],
        ]

    def waits(self, step: UndoStep) -> str | None:
        if step.op == "assign-licence" and licence_with_user(self.ctx, step) is None:
            return "its user's undo has not completed; decided with it next time"
        return None

    def kept(self, step: UndoStep, outcome: Outcome) -> dict[str, str] | None:
        if step.op == "assign-licence":
            return None  # reported with its user, which is what was kept
        return super().kept(step, outcome)


def rollback_plan(store: StateStore, academy: str, phases: list[str]) -> list[UndoStep]:
    """Steps to undo, latest phase first and in reverse journal order within a phase (licences are decided
    after their users)."""
    order = sorted(phases, key=lambda p: -IDENTITY_PHASES.index(p) if p in IDENTITY_PHASES else 0)
    return [step for phase in order for step in undo_steps(store, academy, phase)]
