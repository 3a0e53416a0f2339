"""The identity phases' operations: create users (with licences), groups (with owners), add memberships.

Every object created carries the provenance marker (a directory extension property of the trust's app, set
in the create request itself) tying it to its source object, so resume and rollback recognise exactly what
trustfold made and nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

from migrations.core.steps import Outcome, Step, register_operation
from migrations.graph.client import BatchItem, GraphResponse
from migrations.identity.context import (
    BIND_ROOT,
    IdentityContext,
    _member_ids,
    _read_own,
    new_password,
)
from migrations.identity.licence_assign import LicenceAssignment

log = logging.getLogger("trustfold.identity")


# ---- operations -------------------------------------------------------------------------------------------
class CreateUser:
    name = "create-user"
    batchable = True

    def describe(self, step: Step) -> str:
        a = step.args
        return f"create user {a['upn']} ({a['display_name']}, {a['role']}) from {a['source_upn']}"

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        a = step.args
        password = new_password()
        if ctx.passwords:
            ctx.passwords.write(a["upn"], password)
        body = {
            "accountEnabled": True,
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


class AssignLicence(LicenceAssignment):
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


class CreateGroup:
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

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        found = await ctx.find_by_marker("groups", step.args["marker"])
        return Outcome("done", found["id"], {"reconciled": True}) if found else None


class AddMembers:
    name = "add-members"
    batchable = True

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


for _op in (CreateUser(), AssignLicence(), CreateGroup(), AddMembers()):
    register_operation(_op)
