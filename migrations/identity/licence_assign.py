"""assignLicense of one SKU, to a user (direct licensing) or to a group (licences.mode: group): the one
request, SKU look-up and outcome both operations share (learn.microsoft.com/graph/api/user-assignlicense,
group-assignlicense). Each subclass names what it licenses and says how it reconciles a lost answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrations.core.steps import Outcome, Step
from migrations.graph.client import BatchItem, GraphResponse

if TYPE_CHECKING:
    from migrations.identity.context import IdentityContext


class LicenceAssignment:
    """POST /{collection}/{id}/assignLicense adding step.args["sku"]; the object is the step whose key is
    step.args[subject]."""

    name = ""
    batchable = True
    collection = ""  # "users" | "groups"
    subject = ""  # the args key holding the licensed object's step key

    def _sku(self, step: Step, ctx: IdentityContext) -> str:
        sku = ctx.sku_ids.get(step.args["sku"])
        if not sku:
            raise LookupError(f"SKU {step.args['sku']} is not in the trust tenant's subscribedSkus")
        return sku

    def _id(self, step: Step, ctx: IdentityContext) -> str | None:
        return ctx.target_id(step.args[self.subject])

    def request(self, step: Step, ctx: IdentityContext) -> BatchItem:
        return BatchItem(
            "POST",
            f"/{self.collection}/{self._id(step, ctx)}/assignLicense",
            {"addLicenses": [{"skuId": self._sku(step, ctx), "disabledPlans": []}], "removeLicenses": []},
        )

    def data(self, step: Step, ctx: IdentityContext) -> dict[str, Any]:
        """What the journal keeps of a done assignment."""
        return {"sku": step.args["sku"]}

    def done_event(self, step: Step, ctx: IdentityContext) -> str:
        return "done"

    def outcome(self, step: Step, resp: GraphResponse, ctx: IdentityContext) -> Outcome | None:
        if resp.ok:
            return Outcome(self.done_event(step, ctx), self._id(step, ctx), self.data(step, ctx))
        if resp.status == 400:
            return Outcome("failed", message=f"{resp.error_code}: {resp.error_message}")
        return None

    def holds(self, step: Step, ctx: IdentityContext, obj: dict[str, Any]) -> bool:
        """Does the object read back carry the SKU?"""
        sku = self._sku(step, ctx)
        return any(lic.get("skuId") == sku for lic in obj.get("assignedLicenses") or [])
