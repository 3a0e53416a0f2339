"""Conditional access policies in the trust tenant, as Microsoft documents them
(learn.microsoft.com/graph/api/conditionalaccessroot-list-policies): the trust's baseline excludes the
break-glass group, and reading the policies needs Policy.Read.All (application)."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import error_of


def test_policies_list_the_break_glass_exclusion(target: httpx.Client) -> None:
    r = target.get("/identity/conditionalAccess/policies")
    assert r.status_code == 200
    policies = r.json()["value"]
    assert policies and all({"id", "displayName", "state", "conditions"} <= set(p) for p in policies)
    glass = target.get(
        "/groups", params={"$filter": "displayName eq 'Trust break-glass accounts'", "$select": "id"}
    ).json()["value"]
    assert len(glass) == 1
    excluded = {g for p in policies for g in p["conditions"]["users"]["excludeGroups"]}
    assert glass[0]["id"] in excluded


def test_policies_need_policy_read_all(target: httpx.Client, sandbox_url: str, target_id: str) -> None:
    """Application permission: Policy.Read.All only; without it, 403 Authorization_RequestDenied."""
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/roles"
    try:
        assert httpx.post(admin, json={"withhold": ["Policy.Read.All"]}).status_code == 200
        from sandbox.testing import graph_client

        with graph_client(sandbox_url, target_id) as c:
            err = error_of(c.get("/identity/conditionalAccess/policies"))
        assert err["code"] == "Authorization_RequestDenied"
    finally:
        httpx.post(admin, json={"reset": True})
