"""Conformance: licence seats, group-based licensing, identity throttling tiers and Retry-After.

Each test's docstring names the Microsoft documentation page it follows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from migrations.graph.client import parse_retry_after
from sandbox.settings import Budget, Settings, parse_seats
from sandbox.testing import SandboxURL, graph_client, running_sandbox
from sandbox.throttle import Throttle
from tests.sandbox.conftest import GRAPH_BIND, error_of, make_group, make_user

TARGET = "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"
STAFF = "STANDARDWOFFPACK_FACULTY"
PUPIL = "STANDARDWOFFPACK_STUDENT"


@pytest.fixture(scope="module")
def lic(config_dir) -> Iterator[SandboxURL]:
    # Group licensing processed at once (delay 0): these tests read states right after each change; the
    # background delay has its own test, which sets it.
    with running_sandbox(config_dir, size=20, seed=5, throttling=False, group_licensing_delay_s=0) as base:
        yield base


@pytest.fixture
def target(lic: SandboxURL) -> Iterator[httpx.Client]:
    with graph_client(lic, TARGET) as c:
        yield c


def sku(client: httpx.Client, part: str) -> dict:
    return next(s for s in client.get("/subscribedSkus").json()["value"] if s["skuPartNumber"] == part)


def seats_left(lic: SandboxURL, part: str, free: int) -> None:
    """Set the SKU's prepaid units so that exactly `free` seats remain."""
    consumed = next(s for s in lic.world.tenant(TARGET).skus if s["skuPartNumber"] == part)["consumedUnits"]
    r = httpx.post(f"{lic}/sandbox/tenants/{TARGET}/seats", json={part: consumed + free})
    assert r.status_code == 200, r.text
    assert r.json()[part] == {"enabled": consumed + free, "consumed": consumed}


def assign(client: httpx.Client, uid: str, sku_id: str) -> httpx.Response:
    return client.post(
        f"/users/{uid}/assignLicense",
        json={"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []},
    )


def licensed_group(client: httpx.Client, sku_id: str) -> dict:
    g = make_group(client)
    r = client.post(
        f"/groups/{g['id']}/assignLicense",
        json={"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []},
    )
    assert r.status_code == 202 and r.json()["id"] == g["id"], r.text
    assert group_licences(client, g["id"]) == [{"disabledPlans": [], "skuId": sku_id}]
    return g


def group_licences(client: httpx.Client, gid: str) -> list[dict]:
    r = client.get(f"/groups/{gid}", params={"$select": "id,assignedLicenses,licenseProcessingState"})
    assert r.json()["licenseProcessingState"] == {"state": "ProcessingComplete"}
    return r.json()["assignedLicenses"]


def states_of(client: httpx.Client, uid: str) -> list[dict]:
    r = client.get(f"/users/{uid}", params={"$select": "id,assignedLicenses,licenseAssignmentStates"})
    return r.json()["licenseAssignmentStates"]


def test_assign_license_beyond_prepaid_units_fails(lic, target):
    """learn.microsoft.com/graph/api/user-assignlicense and learn.microsoft.com/answers/questions/1028212:
    with every prepaid unit consumed, assignLicense answers 400 "Subscription with SKU <id> does not have
    any available licenses."; subscribedSkus reports consumedUnits (learn.microsoft.com/graph/api/
    subscribedsku-list)."""
    seats_left(lic, STAFF, 1)
    s = sku(target, STAFF)
    first, second = make_user(target, usageLocation="GB"), make_user(target, usageLocation="GB")
    assert assign(target, first["id"], s["skuId"]).status_code == 200
    after = sku(target, STAFF)
    assert after["consumedUnits"] == s["consumedUnits"] + 1 == after["prepaidUnits"]["enabled"]
    r = assign(target, second["id"], s["skuId"])
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "Request_BadRequest"
    assert err["message"] == f"Subscription with SKU {s['skuId']} does not have any available licenses."
    # Re-assigning a SKU the user already holds needs no new seat; removing one frees it.
    assert assign(target, first["id"], s["skuId"]).status_code == 200
    r = target.post(
        f"/users/{first['id']}/assignLicense", json={"addLicenses": [], "removeLicenses": [s["skuId"]]}
    )
    assert r.status_code == 200
    assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"]
    assert assign(target, second["id"], s["skuId"]).status_code == 200
    direct = states_of(target, second["id"])
    assert [(x["skuId"], x["assignedByGroup"], x["state"]) for x in direct] == [(s["skuId"], None, "Active")]


def test_seats_admin_api_and_flag_refuse_bad_values(lic, config_dir):
    """Seats are configurable per tenant and SKU; bad values are one-line 400s (admin API) or ValueErrors
    (flag parser), never silently ignored."""
    r = httpx.post(f"{lic}/sandbox/tenants/{TARGET}/seats", json={"NO_SUCH_SKU": 5})
    assert r.status_code == 400 and "NO_SUCH_SKU" in r.json()["error"]
    r = httpx.post(f"{lic}/sandbox/tenants/{TARGET}/seats", json={STAFF: -1})
    assert r.status_code == 400 and "whole number" in r.json()["error"]
    r = httpx.post(f"{lic}/sandbox/tenants/{TARGET}/seats", json={})
    assert r.status_code == 400
    assert parse_seats(f"{PUPIL}=7,{TARGET}:{STAFF}=3") == (("*", PUPIL, 7), (TARGET, STAFF, 3))
    with pytest.raises(ValueError, match="TENANT-ID"):
        parse_seats("STAFF=lots")
    with running_sandbox(config_dir, size=20, seats=f"{TARGET}:{STAFF}=9") as base:
        t = base.world.tenant(TARGET)
        assert next(s for s in t.skus if s["skuPartNumber"] == STAFF)["prepaidUnits"]["enabled"] == 9
    with (
        pytest.raises(ValueError, match="no tenant holds"),
        running_sandbox(config_dir, size=20, seats="UNKNOWN_SKU=1"),
    ):
        pass


def test_group_based_licensing_states_and_seats(lic, target):
    """learn.microsoft.com/graph/api/group-assignlicense (202 Accepted, the group), learn.microsoft.com/
    graph/api/resources/licenseassignmentstate (assignedByGroup, state, error) and learn.microsoft.com/entra/
    identity/users/licensing-groups-resolve-problems (CountViolation when seats run out, recorded on the
    user, not returned to the caller)."""
    seats_left(lic, PUPIL, 2)
    s = sku(target, PUPIL)
    group = licensed_group(target, s["skuId"])
    users = [make_user(target, usageLocation="GB") for _ in range(3)]
    r = target.patch(
        f"/groups/{group['id']}", json={"members@odata.bind": [GRAPH_BIND + u["id"] for u in users]}
    )
    assert r.status_code == 204
    got = [states_of(target, u["id"]) for u in users]
    assert [len(x) for x in got] == [1, 1, 1]
    assert all(x[0]["assignedByGroup"] == group["id"] and x[0]["skuId"] == s["skuId"] for x in got)
    assert sorted(x[0]["state"] for x in got) == ["Active", "Active", "Error"]
    failed = next(u for u, x in zip(users, got, strict=True) if x[0]["state"] == "Error")
    assert next(x for x in got if x[0]["state"] == "Error")[0]["error"] == "CountViolation"
    user = target.get(f"/users/{failed['id']}", params={"$select": "assignedLicenses"}).json()
    assert user["assignedLicenses"] == []
    after = sku(target, PUPIL)
    assert after["consumedUnits"] == s["consumedUnits"] + 2 == after["prepaidUnits"]["enabled"]
    g = target.get(f"/groups/{group['id']}", params={"$select": "id,hasMembersWithLicenseErrors"}).json()
    assert g["hasMembersWithLicenseErrors"] is True
    # A member leaving frees its seat; the failed member gets it when it is processed again (re-added).
    ok = next(u for u, x in zip(users, got, strict=True) if x[0]["state"] == "Active")
    assert target.delete(f"/groups/{group['id']}/members/{ok['id']}/$ref").status_code == 204
    assert states_of(target, ok["id"]) == []
    assert target.delete(f"/groups/{group['id']}/members/{failed['id']}/$ref").status_code == 204
    r = target.post(f"/groups/{group['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + failed["id"]})
    assert r.status_code == 204
    assert states_of(target, failed["id"])[0]["state"] == "Active"
    g = target.get(f"/groups/{group['id']}", params={"$select": "id,hasMembersWithLicenseErrors"}).json()
    assert g["hasMembersWithLicenseErrors"] is False


def test_group_licensing_is_processed_in_the_background(lic, target):
    """learn.microsoft.com/entra/identity/users/licensing-group-advanced ("the changes could take time to
    process"; processing starts and finishes later, seen in the audit log) and learn.microsoft.com/graph/api/
    resources/group (licenseProcessingState QueuedForProcessing ... ProcessingComplete): a new member of a
    licensed group has no licence and no state for it until Entra processes it; a member leaving keeps its
    licence until then; seats short at processing time give Error / CountViolation. The test finishes the
    processing through the admin API instead of waiting (no timings in tests)."""
    knobs = f"{lic}/sandbox/faults"
    process = f"{lic}/sandbox/tenants/{TARGET}/licensing"
    assert httpx.post(knobs, json={"group_licensing_delay_s": 3600}).status_code == 200
    try:
        seats_left(lic, STAFF, 1)
        s = sku(target, STAFF)
        g = make_group(target)
        r = target.post(
            f"/groups/{g['id']}/assignLicense",
            json={"addLicenses": [{"skuId": s["skuId"], "disabledPlans": []}], "removeLicenses": []},
        )
        assert r.status_code == 202
        users = [make_user(target, usageLocation="GB") for _ in range(2)]
        for u in users:
            r = target.post(f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + u["id"]})
            assert r.status_code == 204
        sel = {"$select": "id,licenseProcessingState,hasMembersWithLicenseErrors"}
        assert target.get(f"/groups/{g['id']}", params=sel).json()["licenseProcessingState"] == {
            "state": "QueuedForProcessing"
        }
        assert [states_of(target, u["id"]) for u in users] == [[], []]
        assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"]
        assert httpx.get(process).json()["queued_users"] == 2
        assert httpx.post(process, json={"process": True}).json()["processed"] == 2
        got = [states_of(target, u["id"]) for u in users]
        assert sorted(x[0]["state"] for x in got) == ["Active", "Error"]
        assert {x[0]["error"] for x in got if x[0]["state"] == "Error"} == {"CountViolation"}
        group = target.get(f"/groups/{g['id']}", params=sel).json()
        assert group["licenseProcessingState"] == {"state": "ProcessingComplete"}
        assert group["hasMembersWithLicenseErrors"] is True
        # Leaving: the licence (and its seat) stays until processed.
        ok = next(u for u, x in zip(users, got, strict=True) if x[0]["state"] == "Active")
        assert target.delete(f"/groups/{g['id']}/members/{ok['id']}/$ref").status_code == 204
        assert states_of(target, ok["id"])[0]["state"] == "Active"
        httpx.post(process, json={"process": True})
        assert states_of(target, ok["id"]) == []
        assert httpx.post(process, json={"nope": 1}).status_code == 400
        assert httpx.post(knobs, json={"group_licensing_delay_s": -1}).status_code == 400
    finally:
        httpx.post(knobs, json={"group_licensing_delay_s": 0})
        httpx.post(process, json={"process": True})


def test_group_licence_one_seat_per_user_and_no_nesting(lic, target):
    """learn.microsoft.com/entra/identity/users/licensing-group-advanced: a user licensed directly and by a
    group takes one seat; nested groups are not supported (only direct user members inherit)."""
    seats_left(lic, STAFF, 5)
    s = sku(target, STAFF)
    group = licensed_group(target, s["skuId"])
    both = make_user(target, usageLocation="GB")
    assert assign(target, both["id"], s["skuId"]).status_code == 200
    inner = make_group(target)
    nested_user = make_user(target, usageLocation="GB")
    target.post(f"/groups/{inner['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + nested_user["id"]})
    for oid in (both["id"], inner["id"]):
        r = target.post(f"/groups/{group['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + oid})
        assert r.status_code == 204
    sources = sorted((x["assignedByGroup"] or "direct", x["state"]) for x in states_of(target, both["id"]))
    assert sources == sorted([("direct", "Active"), (group["id"], "Active")])
    assert states_of(target, nested_user["id"]) == []
    assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"] + 1


def test_licensed_group_cannot_be_deleted_and_needs_security(lic, target):
    """learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems ("When a licensed group is
    deleted": remove its licences first) and licensing-group-advanced (security groups, or Microsoft 365
    groups with securityEnabled, only)."""
    s = sku(target, STAFF)
    group = licensed_group(target, s["skuId"])
    r = target.delete(f"/groups/{group['id']}")
    assert r.status_code == 400 and "licenses" in error_of(r)["message"]
    r = target.post(
        f"/groups/{group['id']}/assignLicense", json={"addLicenses": [], "removeLicenses": [s["skuId"]]}
    )
    assert r.status_code == 202 and group_licences(target, group["id"]) == []
    assert target.delete(f"/groups/{group['id']}").status_code == 204
    team = make_group(target, unified=True)
    r = target.post(
        f"/groups/{team['id']}/assignLicense",
        json={"addLicenses": [{"skuId": s["skuId"]}], "removeLicenses": []},
    )
    assert r.status_code == 400 and "security" in error_of(r)["message"]


def test_identity_tier_follows_tenant_size(config_dir):
    """learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits: resource units per
    10 s by tenant size (S < 50 users: 3,500; M 50-500: 5,000; L > 500: 8,000), re-evaluated as the tenant
    grows."""
    with running_sandbox(config_dir, size=20) as base:
        budget = lambda: httpx.get(f"{base}/sandbox/settings").json()["budgets"][TARGET]["identity_ru"]  # noqa: E731
        assert budget() == "3500/10"
        with graph_client(base, TARGET) as c:
            have = len(base.world.tenant(TARGET).users)
            for i in range(0, 50 - have, 20):
                batch = [
                    {
                        "id": str(j),
                        "method": "POST",
                        "url": "/users",
                        "headers": {"Content-Type": "application/json"},
                        "body": {
                            "accountEnabled": True,
                            "displayName": f"Tier {i + j}",
                            "mailNickname": f"tier{i + j}",
                            "userPrincipalName": f"tier{i + j}@northernlights.org.uk",
                            "passwordProfile": {"password": "Sandbox!Pass123"},
                        },
                    }
                    for j in range(min(20, 50 - have - i))
                ]
                r = c.post("/$batch", json={"requests": batch})
                assert all(x["status"] == 201 for x in r.json()["responses"])
        assert len(base.world.tenant(TARGET).users) == 50
        assert budget() == "5000/10"


def test_tier_change_keeps_window_usage():
    """A tier change moves the ceiling; what the window already holds still counts (never a fresh budget)."""
    now = [0.0]
    users = {"t": 10}
    t = Throttle(Settings(), clock=lambda: now[0], user_count=users.get)
    assert t.identity_budget("t") == Budget(3500, 10.0)
    assert sum(t.charge("t", "identity", 1, False) is None for _ in range(3600)) == 3500
    users["t"] = 600
    assert t.identity_budget("t") == Budget(8000, 10.0)
    assert sum(t.charge("t", "identity", 1, False) is None for _ in range(5000)) == 4500


def test_retry_after_whole_seconds(config_dir):
    """RFC 9110 section 10.2.3 (Retry-After = HTTP-date / delay-seconds, a whole number) and learn.microsoft
    .com/graph/throttling: throttled answers carry whole seconds, rounded up, from budgets and faults."""
    with running_sandbox(config_dir, size=20, write_budget="2/7") as base, graph_client(base, TARGET) as c:
        codes = [make_user_status(c) for _ in range(3)]
        assert codes == [201, 201, 429]
        r = c.post("/users", json={})
        assert r.status_code == 429
        value = r.headers["Retry-After"]
        # At most the 7 s window, rounded up to whole seconds: a refusal within the window's 7 ms bucket of
        # the first write waits a hair over 7 s, so 8.
        assert re.fullmatch(r"[1-9][0-9]*", value) and 1 <= int(value) <= 8
        batch = c.post(
            "/$batch",
            json={
                "requests": [
                    {"id": "1", "method": "DELETE", "url": "/groups/00000000-0000-0000-0000-000000000000"}
                ]
            },
        ).json()["responses"][0]
        assert batch["status"] == 429 and re.fullmatch(r"[1-9][0-9]*", batch["headers"]["Retry-After"])
        httpx.post(f"{base}/sandbox/faults", json={"429": 1.0}).raise_for_status()
        for _ in range(5):
            r = c.get("/organization")
            assert r.status_code == 429 and re.fullmatch(r"[1-3]", r.headers["Retry-After"])


def make_user_status(c: httpx.Client) -> int:
    from tests.sandbox.conftest import new_user_body

    return c.post("/users", json=new_user_body()).status_code


def test_client_parses_fractional_and_date_retry_after():
    """Graph's throttling page shows fractional values (2.128); RFC 9110 also allows an HTTP-date: the client
    reads all of them and never waits a negative time."""
    assert parse_retry_after("2.128") == pytest.approx(2.128)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after("nan") is None
    assert parse_retry_after(None) is None


def test_deleted_user_frees_its_seat_and_restore_takes_it_back(lic, target):
    """learn.microsoft.com/graph/api/subscribedsku-list: consumedUnits counts licensed users; a deleted
    user's licences are released (user-delete) and come back with it on restore
    (directory-deleteditems-restore)."""
    seats_left(lic, STAFF, 3)
    s = sku(target, STAFF)
    group = licensed_group(target, s["skuId"])
    user = make_user(target, usageLocation="GB")
    target.post(f"/groups/{group['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + user["id"]})
    assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"] + 1
    assert target.delete(f"/users/{user['id']}").status_code == 204
    assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"]
    assert target.post(f"/directory/deletedItems/{user['id']}/restore").status_code == 200
    assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"] + 1
    assert [(x["assignedByGroup"], x["state"]) for x in states_of(target, user["id"])] == [
        (group["id"], "Active")
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [("lots", "[TENANT-ID:]SKU=N"), ("NO_SUCH_SKU=5", "no tenant holds a SKU 'NO_SUCH_SKU'")],
)
def test_cli_serve_bad_seats_exit_2(value: str, message: str, config_dir) -> None:
    """`trustfold sandbox serve --seats` refuses what it cannot apply: exit 2, one line naming the flag."""
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, ["--config-dir", str(config_dir), "sandbox", "serve", "--seats", value])
    assert result.exit_code == 2
    assert message in result.output and "--seats" in result.output


def test_licensing_queue_is_saved_with_the_state():
    """What Entra has still to process survives a restart with --state (wall-clock due times)."""
    import json

    from sandbox.world import TenantState

    t = TenantState("t1", "target", None)
    t.licence_due["u1"] = 123.5
    t.licence_groups_due["g1"] = 124.0
    back = TenantState.from_state(json.loads(json.dumps(t.to_state())))
    assert back.licence_due == {"u1": 123.5} and back.licence_groups_due == {"g1": 124.0}


def test_cli_bad_licensing_delays_exit_2(config_dir) -> None:
    """`sandbox serve --group-licensing-delay` and `run --licence-wait` refuse a negative number of seconds:
    exit 2, naming the flag."""
    from click.testing import CliRunner

    from cli.main import cli

    for argv, flag in (
        (["sandbox", "serve", "--group-licensing-delay", "-1"], "--group-licensing-delay"),
        (["run", "hillside", "--phase", "users", "--licence-wait", "-5"], "--licence-wait"),
    ):
        result = CliRunner().invoke(cli, ["--config-dir", str(config_dir), *argv])
        assert result.exit_code == 2, result.output
        assert flag in result.output and "Traceback" not in result.output


def test_group_assign_license_needs_only_license_assignment_readwrite() -> None:
    """learn.microsoft.com/graph/api/group-assignlicense (permissions: least privileged
    LicenseAssignment.ReadWrite.All; higher Group.ReadWrite.All, Directory.ReadWrite.All)."""
    from sandbox.tenancy import denied

    path = "/v1.0/groups/g1/assignLicense"
    assert not denied("POST", path, ["LicenseAssignment.ReadWrite.All"])
    assert not denied("POST", path, ["Group.ReadWrite.All"])
    assert denied("POST", path, ["GroupMember.ReadWrite.All"])


def _plan(client: httpx.Client, part: str, name: str) -> str:
    return next(p["servicePlanId"] for p in sku(client, part)["servicePlans"] if p["servicePlanName"] == name)


def two_product_group(client: httpx.Client) -> dict:
    g = make_group(client)
    ids = [sku(client, STAFF)["skuId"], sku(client, PUPIL)["skuId"]]
    r = client.post(
        f"/groups/{g['id']}/assignLicense",
        json={"addLicenses": [{"skuId": i, "disabledPlans": []} for i in ids], "removeLicenses": []},
    )
    assert r.status_code == 202, r.text
    return g


def test_group_products_are_assigned_all_or_none(lic, target):
    """learn.microsoft.com/entra/identity/users/licensing-groups-resolve-problems ("More than one product
    license assigned to a group": "If Microsoft Entra ID can't assign one of the products because of business
    logic problems, it won't assign the other licenses in the group either"): with no seat left of one of a
    group's two products, the member gets neither; both states are Error, the product at fault with
    CountViolation; no seat of the other product is taken."""
    seats_left(lic, PUPIL, 0)
    seats_left(lic, STAFF, 5)
    before = {p: sku(target, p)["consumedUnits"] for p in (STAFF, PUPIL)}
    g = two_product_group(target)
    u = make_user(target, usageLocation="GB")
    assert (
        target.post(f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + u["id"]}).status_code
        == 204
    )
    got = {s["skuId"]: s for s in states_of(target, u["id"])}
    staff, pupil = sku(target, STAFF)["skuId"], sku(target, PUPIL)["skuId"]
    assert {k: (v["state"], v["error"], v["assignedByGroup"]) for k, v in got.items()} == {
        pupil: ("Error", "CountViolation", g["id"]),
        staff: ("Error", "Other", g["id"]),
    }
    assert (
        target.get(f"/users/{u['id']}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
        == []
    )
    assert {p: sku(target, p)["consumedUnits"] for p in (STAFF, PUPIL)} == before


def test_mutually_exclusive_service_plans(lic, target):
    """licensing-groups-resolve-problems ("Conflicting service plans": a product in the group holds a plan
    that can't be assigned with one the user already has through a different product; reported as
    MutuallyExclusiveViolation; Entra never resolves it itself) and user-assignlicense (a direct
    assignment's conflict is refused at once). The conflicting pair is a sandbox setting (the real pairs
    are Microsoft's): POST /sandbox/tenants/{tid}/licensing {"exclusive": [[planId, planId]]}."""
    seats_left(lic, STAFF, 5)
    seats_left(lic, PUPIL, 5)
    a, b = _plan(target, STAFF, "EXCHANGE_S_STANDARD"), _plan(target, PUPIL, "EXCHANGE_S_STANDARD")
    rules = f"{lic}/sandbox/tenants/{TARGET}/licensing"
    assert httpx.post(rules, json={"exclusive": [["nope", b]]}).status_code == 400
    assert httpx.post(rules, json={"exclusive": [[a, b]]}).status_code == 200
    try:
        u = make_user(target, usageLocation="GB")
        assert assign(target, u["id"], sku(target, PUPIL)["skuId"]).status_code == 200
        r = assign(target, u["id"], sku(target, STAFF)["skuId"])
        assert r.status_code == 400 and "mutually exclusive" in error_of(r)["message"]
        g = licensed_group(target, sku(target, STAFF)["skuId"])
        assert (
            target.post(
                f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + u["id"]}
            ).status_code
            == 204
        )
        mine = [s for s in states_of(target, u["id"]) if s["assignedByGroup"] == g["id"]]
        assert [(s["state"], s["error"]) for s in mine] == [("Error", "MutuallyExclusiveViolation")]
        # The same product with the conflicting plan disabled is no conflict.
        other = make_user(target, usageLocation="GB")
        r = target.post(
            f"/users/{other['id']}/assignLicense",
            json={
                "addLicenses": [{"skuId": sku(target, PUPIL)["skuId"], "disabledPlans": [b]}],
                "removeLicenses": [],
            },
        )
        assert r.status_code == 200
        assert assign(target, other["id"], sku(target, STAFF)["skuId"]).status_code == 200
    finally:
        assert httpx.post(rules, json={"exclusive": []}).status_code == 200


def test_processing_in_progress_and_active_with_error(lic, target):
    """learn.microsoft.com/graph/api/resources/group (licenseProcessingState: QueuedForProcessing,
    ProcessingInProgress, ProcessingComplete) and learn.microsoft.com/graph/api/resources/
    licenseassignmentstate (state Active, ActiveWithError, Disabled, Error): a group's members are
    processed one after another, so while some are done and others wait the group is ProcessingInProgress;
    a member whose processing the sandbox is told to spoil ({"active_with_error": [userId]}) ends
    ActiveWithError: it holds the licence (and its seat) with an error. The admin API processes N queued
    users ({"process": N}) instead of waiting."""
    knobs = f"{lic}/sandbox/faults"
    process = f"{lic}/sandbox/tenants/{TARGET}/licensing"
    seats_left(lic, STAFF, 5)
    s = sku(target, STAFF)
    g = make_group(target)
    users = [make_user(target, usageLocation="GB") for _ in range(3)]
    r = target.patch(f"/groups/{g['id']}", json={"members@odata.bind": [GRAPH_BIND + u["id"] for u in users]})
    assert r.status_code == 204
    assert httpx.post(process, json={"active_with_error": [users[0]["id"]]}).status_code == 200
    assert httpx.post(process, json={"active_with_error": ["not-a-user"]}).status_code == 400
    assert httpx.post(knobs, json={"group_licensing_delay_s": 3600}).status_code == 200
    sel = {"$select": "id,licenseProcessingState"}
    try:
        r = target.post(
            f"/groups/{g['id']}/assignLicense",
            json={"addLicenses": [{"skuId": s["skuId"], "disabledPlans": []}], "removeLicenses": []},
        )
        assert r.status_code == 202
        state = lambda: target.get(f"/groups/{g['id']}", params=sel).json()["licenseProcessingState"]  # noqa: E731
        assert state() == {"state": "QueuedForProcessing"}
        assert httpx.post(process, json={"process": 1}).json()["processed"] == 1
        assert state() == {"state": "ProcessingInProgress"}
        done = [states_of(target, u["id"]) for u in users]
        assert sum(1 for x in done if x) == 1
        assert httpx.post(process, json={"process": True}).json()["processed"] == 2
        assert state() == {"state": "ProcessingComplete"}
        first = states_of(target, users[0]["id"])
        assert [(x["state"], x["error"]) for x in first] == [("ActiveWithError", "Other")]
        held = target.get(f"/users/{users[0]['id']}", params={"$select": "assignedLicenses"}).json()
        assert [x["skuId"] for x in held["assignedLicenses"]] == [s["skuId"]]
        assert [states_of(target, u["id"])[0]["state"] for u in users[1:]] == ["Active", "Active"]
        assert sku(target, STAFF)["consumedUnits"] == s["consumedUnits"] + 3
        assert httpx.post(process, json={"process": 0}).status_code == 400
    finally:
        httpx.post(knobs, json={"group_licensing_delay_s": 0})
        httpx.post(process, json={"process": True})
