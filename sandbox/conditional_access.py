"""Conditional access policies: `GET /identity/conditionalAccess/policies`
(learn.microsoft.com/graph/api/conditionalaccessroot-list-policies; Application: Policy.Read.All, checked by
sandbox/tenancy.py). The trust tenant is seeded with the baseline infra/entra.py declares: MFA for everyone
and no legacy authentication, both excluding the break-glass group.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import graph_error
from sandbox.world import TenantState

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies"


def policy(
    rng: random.Random, display: str, controls: list[str], exclude_groups: list[str], client_apps: list[str]
) -> dict[str, Any]:
    """A conditionalAccessPolicy with the properties the List policies page returns."""
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "displayName": display,
        "createdDateTime": "2025-09-01T08:00:00Z",
        "modifiedDateTime": None,
        "state": "enabled",
        "sessionControls": None,
        "conditions": {
            "signInRiskLevels": [],
            "clientAppTypes": client_apps,
            "platforms": None,
            "locations": None,
            "applications": {
                "includeApplications": ["All"],
                "excludeApplications": [],
                "includeUserActions": [],
            },
            "users": {
                "includeUsers": ["All"],
                "excludeUsers": [],
                "includeGroups": [],
                "excludeGroups": list(exclude_groups),
                "includeRoles": [],
                "excludeRoles": [],
            },
        },
        "grantControls": {
            "operator": "OR",
            "builtInControls": controls,
            "customAuthenticationFactors": [],
            "termsOfUse": [],
        },
    }


def seed_baseline(t: TenantState, rng: random.Random, break_glass_id: str) -> None:
    t.ca_policies = [
        policy(rng, "CA001: require MFA for staff and admins", ["mfa"], [break_glass_id], ["all"]),
        policy(
            rng,
            "CA002: block legacy authentication",
            ["block"],
            [break_glass_id],
            ["exchangeActiveSync", "other"],
        ),
    ]


async def list_policies(request: Request) -> Response:
    t: TenantState = request.state.tenant
    unknown = set(request.query_params) - {"$select", "$top", "$filter", "$count", "$skip", "$orderby"}
    if unknown:
        return graph_error(400, "BadRequest", f"Query option '{sorted(unknown)[0]}' is not supported.")
    select = [s.strip() for s in request.query_params.get("$select", "").split(",") if s.strip()]
    items = [{k: v for k, v in p.items() if not select or k in select or k == "id"} for p in t.ca_policies]
    return JSONResponse({"@odata.context": CONTEXT, "value": items})


def conditional_access_routes() -> list[Route]:
    return [Route("/v1.0/identity/conditionalAccess/policies", list_policies, methods=["GET"])]
