"""Conformance: JSON batching, throttling budgets and headers, injected faults.

Each test's docstring names the Microsoft documentation page it follows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from sandbox.testing import SandboxURL, graph_client, running_sandbox
from tests.sandbox.conftest import error_of, new_user_body, unique


def _batch(client: httpx.Client, requests: list[dict]) -> httpx.Response:
    return client.post("/$batch", json={"requests": requests})


def test_batch_envelope_and_items(target):
    """learn.microsoft.com/graph/json-batching: 200 envelope, one response per id with its own status."""
    r = _batch(
        target,
        [
            {"id": "1", "method": "GET", "url": "/organization"},
            {"id": "2", "method": "GET", "url": "/users/nobody@northernlights.org.uk"},
            {
                "id": "3",
                "method": "POST",
                "url": "/users",
                "headers": {"Content-Type": "application/json"},
                "body": new_user_body(),
            },
        ],
    )
    assert r.status_code == 200
    by = {x["id"]: x for x in r.json()["responses"]}
    assert by["1"]["status"] == 200 and by["1"]["body"]["value"]
    assert by["2"]["status"] == 404 and by["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert by["3"]["status"] == 201 and by["3"]["body"]["id"]


def test_batch_limit_20(target):
    """learn.microsoft.com/graph/json-batching#batch-size-limitations: at most 20 requests."""
    r = _batch(target, [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(21)])
    assert r.status_code == 400 and "20" in error_of(r)["message"]


def test_batch_duplicate_ids(target):
    """learn.microsoft.com/graph/json-batching: ids must be unique; duplicates fail the whole batch."""
    r = _batch(target, [{"id": "1", "method": "GET", "url": "/organization"}] * 2)
    assert r.status_code == 400 and "duplicate" in error_of(r)["message"]


def test_batch_relative_urls(target):
    """learn.microsoft.com/graph/json-batching: item URLs are relative to the version."""
    r = _batch(target, [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/organization"}])
    item = r.json()["responses"][0]
    assert item["status"] == 400 and "relative" in item["body"]["error"]["message"]


def test_batch_body_needs_content_type(target):
    """learn.microsoft.com/graph/json-batching: a body requires the Content-Type header."""
    r = _batch(target, [{"id": "1", "method": "POST", "url": "/users", "body": new_user_body()}])
    item = r.json()["responses"][0]
    assert item["status"] == 400 and "Content-Type" in item["body"]["error"]["message"]


def test_batch_depends_on_failed_gives_424(target):
    """learn.microsoft.com/graph/json-batching#sequencing-requests-with-the-dependson-property: 424."""
    r = _batch(
        target,
        [
            {"id": "1", "method": "GET", "url": "/users/nobody@northernlights.org.uk"},
            {"id": "2", "method": "GET", "url": "/organization", "dependsOn": ["1"]},
        ],
    )
    by = {x["id"]: x for x in r.json()["responses"]}
    assert by["1"]["status"] == 404 and by["2"]["status"] == 424
    r = _batch(target, [{"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["9"]}])
    assert r.status_code == 400


def test_batch_counts_one_request_and_each_write(sandbox_url, target, target_id):
    """issue 3 admin API: a $batch counts as one request, and each write inside it as one write."""
    before = httpx.get(f"{sandbox_url}/sandbox/stats").json()["tenants"][target_id]
    _batch(
        target,
        [
            {
                "id": str(i),
                "method": "POST",
                "url": "/groups",
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "displayName": "b",
                    "mailEnabled": False,
                    "mailNickname": unique(),
                    "securityEnabled": True,
                },
            }
            for i in range(3)
        ],
    )
    after = httpx.get(f"{sandbox_url}/sandbox/stats").json()["tenants"][target_id]
    assert after["requests"] - before["requests"] == 1
    assert after["writes"] - before["writes"] == 3
    assert after["by_method"]["POST"] - before["by_method"].get("POST", 0) == 1


@pytest.fixture
def tight(config_dir) -> Iterator[SandboxURL]:
    with running_sandbox(config_dir, size=30, write_budget="5/60", identity_ru="40/60") as base:
        yield base


def test_write_budget_429_with_fractional_retry_after(tight):
    """learn.microsoft.com/graph/throttling and throttling-limits: 429, Retry-After (may be fractional),
    scope headers."""
    tid = tight.world.tenant_list()[0]["id"]
    with graph_client(tight, tid) as c:
        codes = []
        for _ in range(6):
            r = c.post(
                "/groups",
                json={
                    "displayName": "w",
                    "mailEnabled": False,
                    "mailNickname": unique(),
                    "securityEnabled": True,
                },
            )
            codes.append(r.status_code)
            assert r.headers["x-ms-resource-unit"] == "1"
        assert codes == [201] * 5 + [429]
        assert error_of(r)["code"] == "TooManyRequests"
        retry = float(r.headers["Retry-After"])
        # At most the 60 s window, in whole seconds rounded up: a refusal within the window's bucket (60 ms)
        # of the first write waits a hair over 60 s, so 61.
        assert 0 < retry <= 61
        assert r.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
        assert tid in r.headers["x-ms-throttle-scope"]
        # Reads still pass: the write budget does not cover GETs.
        assert c.get("/organization").status_code == 200
    stats = httpx.get(f"{tight}/sandbox/stats").json()["tenants"][tid]
    assert stats["throttled"] == 1


def test_resource_units_cost_table(tight):
    """learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits: RU costs per
    request."""
    tid = tight.world.tenant_list()[0]["id"]
    with graph_client(tight, tid) as c:
        assert c.get("/users").headers["x-ms-resource-unit"] == "2"
        assert c.get("/users", params={"$select": "id"}).headers["x-ms-resource-unit"] == "1"
        gid = c.get("/groups").json()["value"][0]["id"]
        assert c.get(f"/groups/{gid}/members").headers["x-ms-resource-unit"] == "3"
        assert c.get(f"/groups/{gid}", params={"$expand": "members"}).headers["x-ms-resource-unit"] == "2"


def test_resource_units_listed_costs(tight):
    """learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits, the base cost table:
    GET subscribedSkus 3, domains/{id}/domainNameReferences 4, applications and
    applications/{id}/extensionProperties 2, groups/{id}/transitiveMembers 5 (any GET not listed: 1)."""
    world = tight.world
    tid = world.tenant_list()[0]["id"]
    with graph_client(tight, tid) as c:
        assert c.get("/subscribedSkus").headers["x-ms-resource-unit"] == "3"
        domain = next(d["id"] for d in c.get("/domains").json()["value"] if d["isInitial"])
        refs = c.get(f"/domains/{domain}/domainNameReferences")
        assert refs.headers["x-ms-resource-unit"] == "4"
        assert c.get("/applications").headers["x-ms-resource-unit"] == "2"
        ext = c.get(f"/applications/{uuid.uuid4()}/extensionProperties")
        assert ext.headers["x-ms-resource-unit"] == "2"
        by_app_id = c.get(f"/applications(appId='{uuid.uuid4()}')/extensionProperties")
        assert by_app_id.headers["x-ms-resource-unit"] == "2"
        gid = c.get("/groups").json()["value"][0]["id"]
        assert c.get(f"/groups/{gid}/transitiveMembers").headers["x-ms-resource-unit"] == "5"
        assert c.get("/organization").headers["x-ms-resource-unit"] == "1"


def test_resource_unit_budget_and_limit_percentage(tight):
    """learn.microsoft.com/graph/throttling-limits: RU budget; x-ms-throttle-limit-percentage above 80%."""
    tid = tight.world.tenant_list()[0]["id"]
    with graph_client(tight, tid) as c:
        seen_pct = False
        for _ in range(50):
            r = c.get("/organization")
            if r.status_code == 429:
                break
            seen_pct = seen_pct or "x-ms-throttle-limit-percentage" in r.headers
        assert r.status_code == 429 and r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        assert seen_pct


def test_batch_items_throttled_one_by_one(tight):
    """learn.microsoft.com/graph/json-batching#handling-throttling: each item 429 with its own Retry-After."""
    tid = tight.world.tenant_list()[0]["id"]
    with graph_client(tight, tid) as c:
        r = c.post(
            "/$batch",
            json={
                "requests": [
                    {
                        "id": str(i),
                        "method": "POST",
                        "url": "/groups",
                        "headers": {"Content-Type": "application/json"},
                        "body": {
                            "displayName": "b",
                            "mailEnabled": False,
                            "mailNickname": unique(),
                            "securityEnabled": True,
                        },
                    }
                    for i in range(7)
                ]
            },
        )
    assert r.status_code == 200
    statuses = [x["status"] for x in r.json()["responses"]]
    assert statuses == [201] * 5 + [429, 429]
    assert all(float(x["headers"]["Retry-After"]) > 0 for x in r.json()["responses"][5:])


def test_admin_throttle_changes_budget(tight):
    """issue 3 admin API: POST /sandbox/throttle sets the same budgets as the serve flags."""
    r = httpx.post(f"{tight}/sandbox/throttle", json={"write_budget": "2/30"})
    assert r.status_code == 200 and r.json()["write_budget"] == "2/30"
    r = httpx.post(f"{tight}/sandbox/throttle", json={"write_budget": "lots"})
    assert r.status_code == 400 and "N/SECONDS" in r.json()["error"]
    r = httpx.post(f"{tight}/sandbox/throttle", json={"turbo": True})
    assert r.status_code == 400 and "turbo" in r.json()["error"]


@pytest.fixture
def faulty(config_dir) -> Iterator[SandboxURL]:
    with running_sandbox(config_dir, size=30, throttling=False) as base:
        yield base


def _faults(base: str, spec: str) -> None:
    r = httpx.post(f"{base}/sandbox/faults", json={"faults": spec})
    assert r.status_code == 200, r.text


def test_fault_429_and_503(faulty):
    """learn.microsoft.com/graph/throttling: 429 and 503 with Retry-After, injected at the configured rate."""
    tid = faulty.world.tenant_list()[0]["id"]
    with graph_client(faulty, tid) as c:
        _faults(faulty, "429=1")
        r = c.get("/organization")
        assert r.status_code == 429 and float(r.headers["Retry-After"]) > 0
        _faults(faulty, "503=1")
        r = c.get("/organization")
        assert (
            r.status_code == 503
            and error_of(r)["code"] == "serviceNotAvailable"
            and "Retry-After" in r.headers
        )
        _faults(faulty, "")
        assert c.get("/organization").status_code == 200


def test_fault_504_applies_write_but_loses_answer(faulty):
    """learn.microsoft.com/graph/errors (504): a timed-out write may still have happened; a retry meets
    ObjectConflict."""
    tid = faulty.world.tenant_list()[0]["id"]
    with graph_client(faulty, tid) as c:
        body = new_user_body()
        _faults(faulty, "504=1")
        r = c.post("/users", json=body)
        assert r.status_code == 504
        _faults(faulty, "")
        r = c.post("/users", json=body)
        assert r.status_code == 400 and error_of(r)["details"][0]["code"] == "ObjectConflict"


def test_fault_drop_closes_connection(faulty):
    """Dropped connections (issue 3 faults): the client sees a transport error, not an HTTP answer."""
    tid = faulty.world.tenant_list()[0]["id"]
    with graph_client(faulty, tid) as c:
        _faults(faulty, "drop=1")
        with pytest.raises(httpx.TransportError):
            c.get("/organization")
        _faults(faulty, "")


def test_fault_settings_validated(faulty):
    """Admin API rejects bad fault settings with a message."""
    r = httpx.post(f"{faulty}/sandbox/faults", json={"faults": "429=2"})
    assert r.status_code == 400 and "between 0 and 1" in r.json()["error"]
    r = httpx.post(f"{faulty}/sandbox/faults", json={"faults": "teapot=0.1"})
    assert r.status_code == 400 and "teapot" in r.json()["error"]
    r = httpx.post(f"{faulty}/sandbox/faults", json={"latency_ms": -1})
    assert r.status_code == 400 and "latency" in r.json()["error"]


def test_replication_lag_simulated(faulty):
    """graph-facts.md (eventual consistency) / learn.microsoft.com/graph/api/user-post-users: a new object can
    answer 404 for a while; the create response is the one to trust."""
    tid = faulty.world.tenant_list()[0]["id"]
    r = httpx.post(f"{faulty}/sandbox/faults", json={"replication_lag_ms": 60_000})
    assert r.status_code == 200
    with graph_client(faulty, tid) as c:
        created = c.post("/users", json=new_user_body())
        assert created.status_code == 201
        uid = created.json()["id"]
        upn = created.json()["userPrincipalName"]
        assert c.get(f"/users/{uid}").status_code == 404
        # Lists and filters lag too (Microsoft: "Designing for eventual consistency for Microsoft Entra").
        listed = c.get("/users", params={"$top": 999, "$select": "id"}).json()["value"]
        assert uid not in {u["id"] for u in listed}
        found = c.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"}).json()["value"]
        assert found == []
        g = c.get("/groups", params={"$top": 1}).json()["value"][0]
        r = c.post(
            f"/groups/{g['id']}/members/$ref",
            json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"},
        )
        assert r.status_code == 404
        httpx.post(f"{faulty}/sandbox/faults", json={"replication_lag_ms": 0})
        faulty.world.tenant(tid).fresh.clear()  # as if a minute had passed
        assert c.get(f"/users/{uid}").status_code == 200
        found = c.get("/users", params={"$filter": f"userPrincipalName eq '{upn}'"}).json()["value"]
        assert [u["id"] for u in found] == [uid]
