"""The identity phases' operations: create users (with licences), groups (with owners), add memberships.

Every object created carries the provenance marker (a directory extension property of the trust's app, set
in the create request itself) tying it to its source object, so resume and rollback recognise exactly what
trustfold made and nothing else. Each operation's undo sits beside its forward (what they share: undo.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from migrations.core.steps import Outcome, Step, UndoStep, register_operation
from migrations.graph.client import BatchItem, GraphResponse, Transient
from migrations.identity.context import (
    BIND_ROOT,
    IdentityContext,
    _member_ids,
    _read_own,
    new_password,
)
from migrations.identity.licence_assign import LicenceAssignment
from migrations.identity.undo import (
    CreatedGroup,
    Reversible,
    UndoContext,
    delete_object,
    licence_with_user,
    maybe,
)
from migrations.safety.redaction import register_secret

log = logging.getLogger("trustfold.identity")


# ---- operations -------------------------------------------------------------------------------------------
class CreateUser(Reversible):
    name = "create-user"
    batchable = True

    def describe(self, step: Step) -> str:
        a = step.args
        state = "" if a.get("account_enabled", True) else ", disabled"
        return f"create user {a['upn']} ({a['display_name']}, {a['role']}{state}) from {a['source_upn']}"

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        a = step.args
        password = new_password()
        enabled = bool(a.get("account_enabled", True))
        # Graph needs a password even for a disabled account; nobody signs in with it, so it is not handed
        # out (whoever enables the account later sets a new one).
        if ctx.passwords and enabled:
            ctx.passwords.write(a["upn"], password)
        else:
            register_secret(password)
        body = {
            "accountEnabled": enabled,
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "userPrincipalName": a["upn"],
            "usageLocation": a["usage_location"],
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True},
            ctx.marker: a["marker"],
        }
        for src, dst in (
            ("given_name", "givenName"),
            ("surname", "surname"),
            ("job_title", "jobTitle"),
            ("department", "department"),
            ("employee_type", "employeeType"),
        ):
            if a.get(src):
                body[dst] = a[src]
        return BatchItem("POST", "/users", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", resp.body["id"], {"upn": step.args["upn"]})
        return None

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        found = await ctx.find_by_marker("users", step.args["marker"])
        return Outcome("done", found["id"], {"upn": step.args["upn"], "reconciled": True}) if found else None

    def describe_undo(self, step: UndoStep) -> str:
        where = step.target_id or "by provenance marker"
        return f"delete user {step.args.get('upn')} ({where}){maybe(step)}"

    async def undo(self, step: UndoStep, ctx: UndoContext, found: Callable[[str], None]) -> Outcome:
        return await delete_object(ctx, "users", step, found)


class AssignLicence(LicenceAssignment, Reversible):
    """A user's direct licence (licences.mode direct)."""

    name = "assign-licence"
    collection = "users"
    subject = "user_key"

    def describe(self, step: Step) -> str:
        return f"assign licence {step.args['sku']} to {step.args['upn']}"

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        uid = self._id(step, ctx)
        user = await _read_own(ctx, f"/users/{uid}", {"$select": "id,assignedLicenses"})
        if self.holds(step, ctx, user):
            return Outcome("done", uid, self.data(step, ctx))
        # Not held: typically the user was created moments ago and the licence call met Graph's eventual
        # consistency (404). Now that the user is visible, assign it (assigning is idempotent).
        again = self.request(step, ctx)
        resp = await ctx.target.request("POST", again.url, json=again.body)
        if resp.ok:
            return Outcome("done", uid, self.data(step, ctx))
        return None

    def describe_undo(self, step: UndoStep) -> str:
        a = step.args
        return f"{step.op} {a.get('sku', '')} of {a.get('upn', step.target_id)}: decided with its user"

    async def undo(self, step: UndoStep, ctx: UndoContext, found: Callable[[str], None]) -> Outcome:
        """Nothing to send: a licence goes with its user (IdentityRules.waits holds it until then)."""
        waiting = Outcome("failed", step.target_id, {}, "its user's undo has not completed")
        return licence_with_user(ctx, step) or waiting


class CreateGroup(CreatedGroup):
    name = "create-group"
    batchable = True

    def describe(self, step: Step) -> str:
        a = step.args
        kind = "Microsoft 365 group" if a["unified"] else "security group"
        return (
            f"create {kind} '{a['display_name']}' ({a['mail_nickname']}) with {len(a['owner_keys'])} owner(s)"
        )

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        a = step.args
        owners = [ctx.target_id(k) for k in a["owner_keys"]]
        body: dict[str, Any] = {
            "displayName": a["display_name"],
            "mailNickname": a["mail_nickname"],
            "mailEnabled": a["unified"],
            "securityEnabled": not a["unified"] or a["security_enabled"],
            "groupTypes": ["Unified"] if a["unified"] else [],
            ctx.marker: a["marker"],
        }
        if a.get("description"):
            body["description"] = a["description"]
        if a["unified"] and a.get("visibility"):
            body["visibility"] = a["visibility"]
        if owners:
            body["owners@odata.bind"] = [BIND_ROOT + o for o in owners if o][:20]
        return BatchItem("POST", "/groups", body)

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", resp.body["id"], {"mail_nickname": step.args["mail_nickname"]})
        return None


class AddMembers(Reversible):
    name = "add-members"
    batchable = True
    finds_by_marker = False  # in doubt, its group and members are known by their keys

    def describe(self, step: Step) -> str:
        return f"add {len(step.args['member_keys'])} member(s) to '{step.args['group_name']}'"

    def _ids(self, step: Step, ctx: IdentityContext) -> tuple[str | None, list[str]]:
        return (
            ctx.target_id(step.args["group_key"]),
            [i for i in (ctx.target_id(k) for k in step.args["member_keys"]) if i],
        )

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        gid, members = self._ids(step, ctx)
        return BatchItem("PATCH", f"/groups/{gid}", {"members@odata.bind": [BIND_ROOT + m for m in members]})

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        gid, members = self._ids(step, ctx)
        if resp.ok:
            return Outcome("done", gid, {"members": members})
        return None  # "already exist" (all or nothing) and lost answers are reconciled member by member

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        gid, members = self._ids(step, ctx)
        if gid is None:
            return None  # the group's own create is not known yet: nothing can be in it
        present = await _member_ids(ctx.target, gid)
        for m in members:
            if m not in present:
                resp = await ctx.target.request(
                    "POST", f"/groups/{gid}/members/$ref", json={"@odata.id": BIND_ROOT + m}
                )
                if resp.status == 404:
                    return None  # the group or member is not visible yet (replication lag): ask again
                if not resp.ok and "already exist" not in resp.error_message:
                    return Outcome("failed", message=f"adding {m}: {resp.status} {resp.error_message}")
        return Outcome("done", gid, {"members": members, "reconciled": True})

    def describe_undo(self, step: UndoStep) -> str:
        n = len(step.data.get("members", [])) or len(step.args.get("member_keys", []))
        return f"remove {n} member(s) from '{step.args.get('group_name')}'{maybe(step)}"

    async def undo(self, step: UndoStep, ctx: UndoContext, found: Callable[[str], None]) -> Outcome:
        if step.in_doubt:
            gid = ctx.ids.get(step.args.get("group_key", ""))
            members = [i for i in (ctx.ids.get(k) for k in step.args.get("member_keys", [])) if i]
        else:
            gid, members = step.target_id, list(step.data.get("members", []))
        if not gid:
            return Outcome("undone", None, {}, "its group was never created")
        pending, refused = members, []
        try:
            async for attempt in ctx.conn.retrying(6):
                with attempt:
                    answers: list[Any] = []
                    for i in range(0, len(pending), 20):
                        chunk = pending[i : i + 20]
                        answers += await ctx.conn.batch(
                            [BatchItem("DELETE", f"/groups/{gid}/members/{m}/$ref") for m in chunk]
                        )
                    refused += [a for a in answers if not _transient(a) and not (a.ok or a.status == 404)]
                    pending = [m for m, a in zip(pending, answers, strict=True) if _transient(a)]
                    if pending:
                        raise Transient(f"{len(pending)} member removal(s) had no answer")
        except Transient as exc:
            return Outcome("failed", gid, {}, str(exc))
        if refused:
            why = f"{len(refused)} member removal(s) refused ({refused[0].status})"
            return Outcome("failed", gid, {}, why)
        return Outcome("undone", gid, {"members": members})


def _transient(answer: Any) -> bool:
    return not isinstance(answer, GraphResponse) or answer.status in (429, 500, 502, 503, 504, 599)


for _op in (CreateUser(), AssignLicence(), CreateGroup(), AddMembers()):
    register_operation(_op)
