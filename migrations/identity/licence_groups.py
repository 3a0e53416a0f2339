"""Group-based licensing for the users phase (`licences.mode: group` in trust.yaml).

Instead of one assignLicense per user, the users phase ensures one staff and one pupils security group per
academy (names from trust.names.entra_group, the same groups the Entra infrastructure declares), licenses
each group once, and adds the users it creates to them in bindings of 20: Entra then licenses members by
membership (learn.microsoft.com/entra/fundamentals/concept-group-based-licensing). Per user that is one
write (the create) plus a twentieth of a membership write, instead of two.

An existing group with the academy's staff/pupils mailNickname (declared by `pulumi up`, or made earlier by
hand) is used as it is and never deleted by rollback; a group this phase creates carries the provenance
marker like every other created object. A licence the group already had is not removed by rollback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrations.core.steps import Outcome, Step, UndoStep, register_operation
from migrations.graph.client import BatchItem, GraphResponse, TenantConnection
from migrations.identity.context import IdentityContext, marker_value
from migrations.identity.licence_assign import LicenceAssignment
from migrations.identity.undo import CreatedGroup, Reversible, UndoContext, maybe
from trust import Academy, Trust

PURPOSES = ("staff", "pupils")


def purpose_of(role: str) -> str:
    return "pupils" if role == "pupil" else "staff"


def group_key(purpose: str) -> str:
    return f"licgroup:{purpose}"


def group_mode(trust: Trust) -> bool:
    return getattr(trust.settings.licences, "mode", "direct") == "group"


@dataclass
class ExistingGroup:
    id: str
    display_name: str
    skus: set[str]
    ours: bool


async def find_licence_groups(
    trust: Trust, academy: Academy, target: TenantConnection, marker: str
) -> dict[str, ExistingGroup]:
    """The academy's staff / pupils groups already in the trust tenant, by purpose (read before the run, so
    a group declared by the infrastructure is used rather than duplicated: Graph does not keep security
    groups' mailNickname unique)."""
    found: dict[str, ExistingGroup] = {}
    for purpose in PURPOSES:
        _, nickname = trust.names.entra_group(academy, purpose)
        body = await target.get(
            "/groups",
            {
                "$filter": f"mailNickname eq '{nickname}'",
                "$select": f"id,displayName,assignedLicenses,securityEnabled,{marker}",
            },
        )
        candidates = [g for g in body.get("value", []) if g.get("securityEnabled")]
        if not candidates:
            continue
        mine = marker_value(academy, f"licences:{purpose}")
        best = next((g for g in candidates if g.get(marker) == mine), candidates[0])
        found[purpose] = ExistingGroup(
            best["id"],
            str(best.get("displayName") or ""),
            {lic["skuId"] for lic in best.get("assignedLicenses") or []},
            best.get(marker) == mine,
        )
    return found


def members_added(done: dict[str, dict[str, Any]]) -> set[str]:
    """Target ids the users phase's journal records as added to a licence group."""
    added: set[str] = set()
    for key, h in done.items():
        if key.startswith("licmembers:") and h["event"] == "done":
            added |= set(h["data"].get("members", []))
    return added


def plan_group_licensing(
    trust: Trust, academy: Academy, users: list[tuple[str, str]], planned: set[str]
) -> list[Step]:
    """Steps for `users` [(user step key, role)] not yet in their licence group: ensure each group, license
    it once, add members in chunks of 20 (each chunk after its group and those of its users created in this
    plan; `planned` holds the keys of the plan's create steps)."""
    by_purpose: dict[str, list[str]] = {p: [] for p in PURPOSES}
    for key, role in users:
        by_purpose[purpose_of(role)].append(key)
    steps: list[Step] = []
    for purpose, keys in by_purpose.items():
        if not keys:
            continue
        display, nickname = trust.names.entra_group(academy, purpose)
        gkey = group_key(purpose)
        sku = trust.settings.licences.pupil if purpose == "pupils" else trust.settings.licences.staff
        steps.append(
            Step(
                gkey,
                "ensure-licence-group",
                {
                    "purpose": purpose,
                    "display_name": display,
                    "mail_nickname": nickname,
                    "marker": marker_value(academy, f"licences:{purpose}"),
                },
            )
        )
        steps.append(
            Step(
                f"grouplicence:{purpose}",
                "assign-group-licence",
                {"group_key": gkey, "group_name": display, "sku": sku},
                after=(gkey,),
            )
        )
        keys = sorted(keys)
        for i in range(0, len(keys), 20):
            chunk = keys[i : i + 20]
            steps.append(
                Step(
                    f"licmembers:{purpose}:{chunk[0]}",
                    "add-members",
                    {"group_key": gkey, "member_keys": chunk, "group_name": display},
                    after=(gkey, *(k for k in chunk if k in planned)),
                )
            )
    return steps


class EnsureLicenceGroup(CreatedGroup):
    """Create the academy's staff/pupils security group, or take the one that exists (outcome 'already')."""

    name = "ensure-licence-group"
    batchable = True

    def describe(self, step: Step) -> str:
        return f"ensure licence group '{step.args['display_name']}' ({step.args['mail_nickname']})"

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        existing = ctx.licence_groups.get(step.args["purpose"])
        if existing is not None:
            return BatchItem("GET", f"/groups/{existing.id}?$select=id")
        return BatchItem(
            "POST",
            "/groups",
            {
                "displayName": step.args["display_name"],
                "mailNickname": step.args["mail_nickname"],
                "mailEnabled": False,
                "securityEnabled": True,
                "groupTypes": [],
                "description": "Licences by membership (created by trustfold's users phase)",
                ctx.marker: step.args["marker"],
            },
        )

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.status == 201:
            return Outcome("done", resp.body["id"], {"mail_nickname": step.args["mail_nickname"]})
        existing = ctx.licence_groups.get(step.args["purpose"])
        if resp.status == 200 and existing is not None:
            return Outcome("already", existing.id, {"mail_nickname": step.args["mail_nickname"]})
        return None


class AssignGroupLicence(LicenceAssignment, Reversible):
    """POST /groups/{id}/assignLicense once per group; members inherit (202 Accepted, processed by Entra in
    the background: migrations/identity/licence_wait.py waits for it)."""

    name = "assign-group-licence"
    collection = "groups"
    subject = "group_key"

    def describe(self, step: Step) -> str:
        return f"assign licence {step.args['sku']} to group '{step.args['group_name']}' (members inherit it)"

    def data(self, step: Step, ctx: IdentityContext) -> dict[str, Any]:
        return {"sku": step.args["sku"], "sku_id": self._sku(step, ctx)}

    def done_event(self, step: Step, ctx: IdentityContext) -> str:
        # A licence the group held before this run is not ours to take away on rollback.
        purpose = step.args["group_key"].split(":", 1)[1]
        existing = ctx.licence_groups.get(purpose)
        return "already" if existing is not None and self._sku(step, ctx) in existing.skus else "done"

    async def reconcile(self, step: Step, ctx: IdentityContext) -> Outcome | None:
        gid = self._id(step, ctx)
        group = await ctx.target.get(f"/groups/{gid}", {"$select": "id,assignedLicenses"})
        return Outcome("done", gid, self.data(step, ctx)) if self.holds(step, ctx, group) else None

    def describe_undo(self, step: UndoStep) -> str:
        a = step.args
        where = f"group '{a.get('group_name')}' ({step.target_id})"
        return f"remove licence {a.get('sku')} from {where}{maybe(step)}"

    async def undo(self, step: UndoStep, ctx: UndoContext, found: Callable[[str], None]) -> Outcome:
        """Take back the licence trustfold gave a licence group (members lose what they inherited with it),
        before the group itself can be deleted."""
        gid = step.target_id or ctx.ids.get(str(step.args.get("group_key", "")))
        if not gid:
            return Outcome("undone", None, {}, "its group was never created")
        sku_id = str(step.data.get("sku_id") or "")
        if not sku_id:  # in doubt: the intent names the SKU by part number only
            body = await ctx.conn.get("/subscribedSkus", {"$select": "skuId,skuPartNumber"})
            skus = {k.get("skuPartNumber"): str(k["skuId"]) for k in body.get("value", [])}
            sku_id = skus.get(step.args.get("sku"), "")
            if not sku_id:
                return Outcome("undone", gid, {}, f"SKU {step.args.get('sku')} is not in the tenant")
        resp = await ctx.conn.request(
            "POST", f"/groups/{gid}/assignLicense", json={"addLicenses": [], "removeLicenses": [sku_id]}
        )
        if resp.ok or resp.status == 404 or (resp.status == 400 and "does not have" in resp.error_message):
            return Outcome("undone", gid, {"sku_id": sku_id})  # removed (or already removed)
        return Outcome("failed", gid, {}, f"{resp.status} {resp.error_code}: {resp.error_message}")


for _op in (EnsureLicenceGroup(), AssignGroupLicence()):
    register_operation(_op)


async def load_licence_groups(ctx: IdentityContext) -> None:
    """licences.mode group: the academy's staff / pupils groups found in the trust tenant before the run."""
    if group_mode(ctx.trust):
        ctx.licence_groups = await find_licence_groups(ctx.trust, ctx.academy, ctx.target, ctx.marker)
