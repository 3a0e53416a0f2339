"""Conformance: one test per documented Graph behaviour the sandbox reproduces (users, groups, directory).

Each test's docstring names the Microsoft documentation page it follows.
"""

from __future__ import annotations

import httpx

from sandbox.testing import token
from tests.sandbox.conftest import GRAPH_BIND, error_of, make_group, make_user, new_user_body, unique

EXT = "extension_0b6a9d2e3f414c5a8e7b1d2c3b4a5f60_trustfoldSource"


# Authentication --------------------------------------------------------------------------------------------
def test_token_endpoint_client_credentials(sandbox_url, target_id):
    """learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: token response shape."""
    r = httpx.post(
        f"{sandbox_url}/{target_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "y",
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["access_token"]


def test_token_endpoint_errors(sandbox_url, target_id):
    """learn.microsoft.com/entra/identity-platform/reference-error-codes: AADSTS errors for bad requests."""
    good = {
        "grant_type": "client_credentials",
        "client_id": "x",
        "client_secret": "y",
        "scope": "https://graph.microsoft.com/.default",
    }
    r = httpx.post(f"{sandbox_url}/00000000-0000-0000-0000-000000000099/oauth2/v2.0/token", data=good)
    assert r.status_code == 400 and r.json()["error_codes"] == [90002]
    r = httpx.post(f"{sandbox_url}/{target_id}/oauth2/v2.0/token", data={**good, "grant_type": "password"})
    assert r.json()["error"] == "unsupported_grant_type"
    r = httpx.post(f"{sandbox_url}/{target_id}/oauth2/v2.0/token", data={**good, "scope": "User.Read"})
    assert r.json()["error"] == "invalid_scope" and "/.default" in r.json()["error_description"]
    r = httpx.post(
        f"{sandbox_url}/{target_id}/oauth2/v2.0/token",
        data={k: v for k, v in good.items() if k != "client_id"},
    )
    assert "'client_id'" in r.json()["error_description"]


def test_missing_or_bad_token_is_401(sandbox_url):
    """learn.microsoft.com/graph/errors: 401 InvalidAuthenticationToken without a valid bearer token."""
    r = httpx.get(f"{sandbox_url}/v1.0/users")
    assert r.status_code == 401 and error_of(r)["code"] == "InvalidAuthenticationToken"
    assert error_of(r)["message"] == "Access token is empty."
    r = httpx.get(f"{sandbox_url}/v1.0/users", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and "validation failure" in error_of(r)["message"]


def test_token_selects_tenant(target, source):
    """learn.microsoft.com/graph/auth-v2-service: an app-only token is scoped to one tenant."""
    t_org = target.get("/organization").json()["value"][0]["id"]
    s_org = source.get("/organization").json()["value"][0]["id"]
    assert t_org != s_org


def test_double_slash_collapsed(sandbox_url, target_id):
    """The SDK can produce /v1.0//users (graph-facts.md); Graph answers it."""
    from sandbox.testing import token

    r = httpx.get(
        f"{sandbox_url}/v1.0//users?$top=1",
        headers={"Authorization": f"Bearer {token(sandbox_url, target_id)}"},
    )
    assert r.status_code == 200 and len(r.json()["value"]) == 1


def test_unknown_segment(target):
    """learn.microsoft.com/graph/errors: unknown resources answer 400 BadRequest in Graph's error shape."""
    r = target.get("/nonsense")
    assert r.status_code == 400 and "nonsense" in error_of(r)["message"]


# Users: reading ---------------------------------------------------------------------------------------------
def test_list_users_default_properties_and_paging(source):
    """learn.microsoft.com/graph/api/user-list and /graph/paging: default properties, $top,
    @odata.nextLink."""
    r = source.get("/users", params={"$top": 7})
    body = r.json()
    assert r.status_code == 200 and len(body["value"]) == 7
    assert set(body["value"][0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }
    seen = [u["id"] for u in body["value"]]
    while "@odata.nextLink" in body:
        body = httpx.get(body["@odata.nextLink"], headers=source.headers).json()
        seen += [u["id"] for u in body["value"]]
    assert len(seen) == len(set(seen)) == len(source.get("/users", params={"$top": 999}).json()["value"])


def test_top_over_999_rejected(source):
    """learn.microsoft.com/graph/api/user-list: $top accepts 1 to 999."""
    r = source.get("/users", params={"$top": 1000})
    assert r.status_code == 400 and "between 1 and 999" in error_of(r)["message"]


def test_skip_not_supported(source):
    """learn.microsoft.com/graph/query-parameters: $skip is not supported for directory objects."""
    r = source.get("/users", params={"$skip": 10})
    assert r.status_code == 400 and "$skip" in error_of(r)["message"]


def test_get_user_by_id_and_upn(source):
    """learn.microsoft.com/graph/api/user-get: address a user by id or userPrincipalName."""
    u = source.get("/users", params={"$top": 1}).json()["value"][0]
    assert source.get(f"/users/{u['id']}").json()["id"] == u["id"]
    assert source.get(f"/users/{u['userPrincipalName']}").json()["id"] == u["id"]
    r = source.get("/users/nobody@example.org")
    assert r.status_code == 404 and error_of(r)["code"] == "Request_ResourceNotFound"


def test_select(source):
    """learn.microsoft.com/graph/query-parameters#select-parameter: only the selected properties come back."""
    r = source.get("/users", params={"$select": "id,employeeType,accountEnabled", "$top": 3})
    assert all(set(u) == {"id", "employeeType", "accountEnabled"} for u in r.json()["value"])
    r = source.get("/users", params={"$select": "id,shoeSize"})
    assert r.status_code == 400 and "shoeSize" in error_of(r)["message"]


def test_filter_eq_properties(source):
    """learn.microsoft.com/graph/api/resources/user: eq filters on UPN, mail, mailNickname, displayName,
    employeeId."""
    u = source.get(
        "/users",
        params={"$select": "id,userPrincipalName,mail,mailNickname,displayName,employeeId", "$top": 1},
    ).json()["value"][0]
    for prop in ("userPrincipalName", "mail", "mailNickname", "employeeId"):
        value = u[prop].upper() if prop != "employeeId" else u[prop]
        value = value.replace("'", "''")
        r = source.get("/users", params={"$filter": f"{prop} eq '{value}'", "$select": "id"})
        assert [x["id"] for x in r.json()["value"]] == [u["id"]], prop
    r = source.get(
        "/users", params={"$filter": f"displayName eq '{u['displayName'].replace(chr(39), chr(39) * 2)}'"}
    )
    assert u["id"] in [x["id"] for x in r.json()["value"]]


def test_filter_startswith_and_in(source):
    """learn.microsoft.com/graph/filter-query-parameter: startswith and in are default-supported operators."""
    r = source.get("/users", params={"$filter": "startswith(displayName,'james')", "$select": "displayName"})
    names = [u["displayName"] for u in r.json()["value"]]
    assert names and all(n.lower().startswith("james") for n in names)
    r = source.get(
        "/users", params={"$filter": "employeeType in ('Staff','Nobody')", "$select": "employeeType"}
    )
    assert {u["employeeType"] for u in r.json()["value"]} == {"Staff"}


def test_filter_advanced_needs_eventual_consistency(source):
    """learn.microsoft.com/graph/aad-advanced-queries: ne/endswith need ConsistencyLevel eventual and
    $count."""
    r = source.get("/users", params={"$filter": "employeeType ne 'Pupil'"})
    assert r.status_code == 400 and error_of(r)["code"] == "Request_UnsupportedQuery"
    r = source.get(
        "/users",
        params={"$filter": "employeeType ne 'Pupil'", "$count": "true"},
        headers={"ConsistencyLevel": "eventual"},
    )
    assert r.status_code == 200 and r.json()["@odata.count"] == len(r.json()["value"])


def test_filter_unsupported_property(source):
    """learn.microsoft.com/graph/aad-advanced-queries: filters on unsupported properties fail."""
    r = source.get("/users", params={"$filter": "aboutMe eq 'x'"})
    assert r.status_code == 400 and "aboutMe" in error_of(r)["message"]


def test_count_requires_consistency_level(source):
    """learn.microsoft.com/graph/query-parameters#count-parameter: $count needs ConsistencyLevel: eventual."""
    r = source.get("/users", params={"$count": "true"})
    assert r.status_code == 400
    r = source.get("/users", params={"$count": "true", "$top": 1}, headers={"ConsistencyLevel": "eventual"})
    total = r.json()["@odata.count"]
    assert total > 1 and len(r.json()["value"]) == 1
    r = source.get("/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert r.status_code == 200 and int(r.text) == total
    assert source.get("/users/$count").status_code == 400


# Users: writing ---------------------------------------------------------------------------------------------
def test_create_user_required_properties(target):
    """learn.microsoft.com/graph/api/user-post-users: accountEnabled, displayName, mailNickname, UPN,
    passwordProfile."""
    for prop in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"):
        body = new_user_body()
        del body[prop]
        r = target.post("/users", json=body)
        assert r.status_code == 400 and f"'{prop}'" in error_of(r)["message"], prop


def test_create_user_unverified_domain(target):
    """learn.microsoft.com/graph/api/user-post-users: the UPN's domain must be verified in the tenant."""
    r = target.post("/users", json=new_user_body(domain="hillsideacademy.org.uk"))
    assert r.status_code == 400 and "verified domain" in error_of(r)["message"]


def test_create_user_upn_characters(target):
    """learn.microsoft.com/entra/identity/hybrid/connect/plan-connect-userprincipalname: allowed UPN
    characters."""
    body = new_user_body()
    body["userPrincipalName"] = "zoë.brown@northernlights.org.uk"
    r = target.post("/users", json=body)
    assert r.status_code == 400 and error_of(r)["details"][0]["target"] == "userPrincipalName"
    ok = new_user_body()
    ok["userPrincipalName"] = f"o'brien.{unique()}@northernlights.org.uk"
    assert target.post("/users", json=ok).status_code == 201


def test_create_user_conflict(target):
    """learn.microsoft.com/graph/api/user-post-users: duplicate UPN -> 400 ObjectConflict."""
    body = new_user_body()
    assert target.post("/users", json=body).status_code == 201
    body["mailNickname"] = unique()
    r = target.post("/users", json=body)
    err = error_of(r)
    assert r.status_code == 400 and err["code"] == "Request_BadRequest"
    assert (
        err["message"] == "Another object with the same value for property userPrincipalName already exists."
    )
    assert err["details"] == [{"target": "userPrincipalName", "code": "ObjectConflict"}]


def test_create_user_password_complexity(target):
    """learn.microsoft.com/entra/identity/authentication/concept-sspr-policy: password complexity."""
    r = target.post("/users", json=new_user_body(passwordProfile={"password": "short"}))
    assert r.status_code == 400 and "complexity" in error_of(r)["message"]


def test_create_user_unknown_property(target):
    """learn.microsoft.com/graph/api/user-post-users: only user properties are accepted."""
    r = target.post("/users", json=new_user_body(shoeSize=9))
    assert r.status_code == 400 and "shoeSize" in error_of(r)["message"]


def test_update_user(target):
    """learn.microsoft.com/graph/api/user-update: PATCH answers 204 and changes the properties."""
    u = make_user(target)
    r = target.patch(f"/users/{u['id']}", json={"jobTitle": "Bursar", "usageLocation": "GB"})
    assert r.status_code == 204
    got = target.get(f"/users/{u['id']}", params={"$select": "jobTitle,usageLocation"}).json()
    assert got["jobTitle"] == "Bursar" and got["usageLocation"] == "GB"
    other = make_user(target)
    r = target.patch(f"/users/{u['id']}", json={"userPrincipalName": other["userPrincipalName"]})
    assert error_of(r)["details"][0]["code"] == "ObjectConflict"


def test_directory_extension_property_for_provenance(target, sandbox_url, target_id):
    """learn.microsoft.com/graph/extensibility-overview#directory-microsoft-entra-id-extensions: set in the
    create,
    returned only when selected, filterable with eq. The property is registered on the app first
    (learn.microsoft.com/graph/api/application-post-extensionproperty)."""
    app_id = "0b6a9d2e-3f41-4c5a-8e7b-1d2c3b4a5f60"  # the trust's app, named in EXT
    app_token = token(sandbox_url, target_id, client_id=app_id)
    r = target.post(
        f"/applications(appId='{app_id}')/extensionProperties",
        json={"name": "trustfoldSource", "dataType": "String", "targetObjects": ["User", "Group"]},
        headers={"Authorization": f"Bearer {app_token}"},
    )
    assert r.status_code in (201, 400), r.text
    marker = f"hillside|src|{unique()}"
    u = make_user(target, **{EXT: marker})
    assert EXT not in u
    assert EXT not in target.get(f"/users/{u['id']}").json()
    assert target.get(f"/users/{u['id']}", params={"$select": f"id,{EXT}"}).json()[EXT] == marker
    r = target.get("/users", params={"$filter": f"{EXT} eq '{marker}'", "$select": "id"})
    assert [x["id"] for x in r.json()["value"]] == [u["id"]]
    g = make_group(target, **{EXT: marker})
    r = target.get("/groups", params={"$filter": f"{EXT} eq '{marker}'", "$select": "id"})
    assert [x["id"] for x in r.json()["value"]] == [g["id"]]


def test_delete_user_soft_and_restore(target):
    """learn.microsoft.com/graph/api/user-delete and directory-deleteditems-restore: soft delete for 30
    days."""
    u = make_user(target)
    assert target.delete(f"/users/{u['id']}").status_code == 204
    assert target.get(f"/users/{u['id']}").status_code == 404
    deleted = target.get("/directory/deletedItems/microsoft.graph.user").json()["value"]
    item = next(d for d in deleted if d["id"] == u["id"])
    assert item["deletedDateTime"] and item["userPrincipalName"].endswith(u["userPrincipalName"])
    assert item["userPrincipalName"] != u["userPrincipalName"]
    r = target.post(f"/directory/deletedItems/{u['id']}/restore")
    assert r.status_code == 200 and r.json()["userPrincipalName"] == u["userPrincipalName"]
    assert target.get(f"/users/{u['id']}").status_code == 200


def test_deleted_upn_can_be_reused_and_restore_conflicts(target):
    """learn.microsoft.com/graph/api/directory-deleteditems-restore: restore fails if the UPN is taken
    again."""
    u = make_user(target)
    target.delete(f"/users/{u['id']}")
    body = new_user_body()
    body["userPrincipalName"] = u["userPrincipalName"]
    assert target.post("/users", json=body).status_code == 201
    r = target.post(f"/directory/deletedItems/{u['id']}/restore")
    assert r.status_code == 400 and error_of(r)["details"][0]["code"] == "ObjectConflict"


def test_permanent_delete(target):
    """learn.microsoft.com/graph/api/directory-deleteditems-delete: gone for ever."""
    u = make_user(target)
    target.delete(f"/users/{u['id']}")
    assert target.delete(f"/directory/deletedItems/{u['id']}").status_code == 204
    r = target.post(f"/directory/deletedItems/{u['id']}/restore")
    assert r.status_code == 404 and error_of(r)["code"] == "Request_ResourceNotFound"


def test_deleted_items_need_type_cast(target):
    """learn.microsoft.com/graph/api/directory-deleteditems-list: the type cast is required."""
    r = target.get("/directory/deletedItems")
    assert r.status_code == 400 and "microsoft.graph.user" in error_of(r)["message"]


def _skus(client: httpx.Client) -> dict[str, dict]:
    return {s["skuPartNumber"]: s for s in client.get("/subscribedSkus").json()["value"]}


def test_assign_license_requires_usage_location(target):
    """learn.microsoft.com/graph/api/user-assignlicense: usageLocation must be set first."""
    u = make_user(target)
    sku = _skus(target)["STANDARDWOFFPACK_FACULTY"]
    body = {"addLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}], "removeLicenses": []}
    r = target.post(f"/users/{u['id']}/assignLicense", json=body)
    assert r.status_code == 400 and "usage location" in error_of(r)["message"]
    target.patch(f"/users/{u['id']}", json={"usageLocation": "GB"})
    r = target.post(f"/users/{u['id']}/assignLicense", json=body)
    assert r.status_code == 200 and r.json()["id"] == u["id"]
    after = _skus(target)["STANDARDWOFFPACK_FACULTY"]
    assert after["consumedUnits"] == sku["consumedUnits"] + 1
    lic = target.get(f"/users/{u['id']}", params={"$select": "assignedLicenses"}).json()["assignedLicenses"]
    assert lic == [{"disabledPlans": [], "skuId": sku["skuId"]}]


def test_assign_license_unknown_sku_and_no_units(sandbox_url, target):
    """learn.microsoft.com/graph/api/user-assignlicense: SKU must exist with units left."""
    u = make_user(target, usageLocation="GB")
    r = target.post(
        f"/users/{u['id']}/assignLicense",
        json={"addLicenses": [{"skuId": "00000000-0000-0000-0000-000000000001"}], "removeLicenses": []},
    )
    assert r.status_code == 400 and "valid company License" in error_of(r)["message"]
    tenant = sandbox_url.world.tenant(target.get("/organization").json()["value"][0]["id"])
    sku = next(s for s in tenant.skus if s["skuPartNumber"] == "STANDARDWOFFPACK_STUDENT")
    saved = sku["prepaidUnits"]["enabled"]
    sku["prepaidUnits"]["enabled"] = sku["consumedUnits"]
    try:
        r = target.post(
            f"/users/{u['id']}/assignLicense",
            json={"addLicenses": [{"skuId": sku["skuId"]}], "removeLicenses": []},
        )
        assert r.status_code == 400 and "does not have any available licenses" in error_of(r)["message"]
    finally:
        sku["prepaidUnits"]["enabled"] = saved


def _drain(client: httpx.Client, url: str) -> tuple[list[dict], str]:
    items: list[dict] = []
    while True:
        body = (
            client.get(url).json()
            if not url.startswith("http")
            else httpx.get(url, headers=client.headers).json()
        )
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_users_delta(target):
    """learn.microsoft.com/graph/api/user-delta: nextLink pages, deltaLink, changes and @removed."""
    items, delta = _drain(target, "/users/delta?$select=displayName,userPrincipalName")
    assert items and all("@removed" not in i for i in items)
    u = make_user(target)
    v = make_user(target)
    target.patch(f"/users/{u['id']}", json={"displayName": "Changed Name"})
    target.delete(f"/users/{v['id']}")
    items, delta2 = _drain(target, delta)
    by_id = {i["id"]: i for i in items}
    assert by_id[u["id"]]["displayName"] == "Changed Name"
    assert by_id[v["id"]]["@removed"] == {"reason": "changed"}
    target.delete(f"/directory/deletedItems/{v['id']}")
    items, _ = _drain(target, delta2)
    assert {"id": v["id"], "@removed": {"reason": "deleted"}} in items


def test_delta_rejects_top(target):
    """learn.microsoft.com/graph/api/user-delta: $top, $expand and $orderby are not supported."""
    r = target.get("/users/delta", params={"$top": 5})
    assert r.status_code == 400


def test_delta_bad_token(target):
    """learn.microsoft.com/graph/delta-query-overview: an unusable token must be answered, not ignored."""
    r = target.get("/users/delta", params={"$deltatoken": "garbage"})
    assert r.status_code == 400


# Groups -----------------------------------------------------------------------------------------------------
def test_create_security_group(target):
    """learn.microsoft.com/graph/api/group-post-groups: security group shape."""
    g = make_group(target)
    assert g["groupTypes"] == [] and g["securityEnabled"] is True and g["mailEnabled"] is False
    assert g["mail"] is None


def test_create_microsoft365_group(target):
    """learn.microsoft.com/graph/api/group-post-groups: Unified group gets a mail address on the default
    domain."""
    g = make_group(target, unified=True)
    assert g["groupTypes"] == ["Unified"] and g["mail"] == f"{g['mailNickname']}@northernlights.org.uk"
    assert g["visibility"] == "Public"


def test_create_group_required_properties(target):
    """learn.microsoft.com/graph/api/group-post-groups: displayName, mailEnabled, mailNickname,
    securityEnabled."""
    for prop in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
        body = {"displayName": "x", "mailEnabled": False, "mailNickname": unique(), "securityEnabled": True}
        del body[prop]
        r = target.post("/groups", json=body)
        assert r.status_code == 400 and f"'{prop}'" in error_of(r)["message"], prop


def test_group_mail_nickname_rules(target):
    """learn.microsoft.com/graph/api/group-post-groups: mailNickname <= 64 ASCII, none of @()\\[]";:.<>, or
    space."""
    for bad in ("has space", "a.b", "x" * 65, "café", "a@b"):
        r = target.post(
            "/groups",
            json={"displayName": "x", "mailEnabled": False, "mailNickname": bad, "securityEnabled": True},
        )
        assert r.status_code == 400 and "mailNickname" in error_of(r)["message"], bad


def test_mail_enabled_security_group_cannot_be_created(target):
    """learn.microsoft.com/graph/api/group-post-groups: mail-enabled security groups and DLs are
    Exchange's."""
    r = target.post(
        "/groups",
        json={"displayName": "x", "mailEnabled": True, "mailNickname": unique(), "securityEnabled": True},
    )
    assert r.status_code == 400 and "mail-enabled groups" in error_of(r)["message"]


def test_create_group_with_bindings(target):
    """learn.microsoft.com/graph/api/group-post-groups: owners@odata.bind and members@odata.bind, 20 at
    most."""
    users = [make_user(target) for _ in range(3)]
    g = make_group(
        target,
        **{
            "owners@odata.bind": [GRAPH_BIND + users[0]["id"]],
            "members@odata.bind": [GRAPH_BIND + u["id"] for u in users[1:]],
        },
    )
    owners = [o["id"] for o in target.get(f"/groups/{g['id']}/owners").json()["value"]]
    members = [m["id"] for m in target.get(f"/groups/{g['id']}/members").json()["value"]]
    assert owners == [users[0]["id"]] and sorted(members) == sorted(u["id"] for u in users[1:])
    many = [GRAPH_BIND + users[0]["id"]] * 21
    r = target.post(
        "/groups",
        json={
            "displayName": "x",
            "mailEnabled": False,
            "mailNickname": unique(),
            "securityEnabled": True,
            "members@odata.bind": many,
        },
    )
    assert r.status_code == 400 and "20" in error_of(r)["message"]


def test_members_ref_add_and_remove(target):
    """learn.microsoft.com/graph/api/group-post-members and group-delete-members."""
    g = make_group(target)
    u = make_user(target)
    ref = {"@odata.id": GRAPH_BIND + u["id"]}
    assert target.post(f"/groups/{g['id']}/members/$ref", json=ref).status_code == 204
    r = target.post(f"/groups/{g['id']}/members/$ref", json=ref)
    assert r.status_code == 400 and "already exist" in error_of(r)["message"]
    assert target.delete(f"/groups/{g['id']}/members/{u['id']}/$ref").status_code == 204
    r = target.delete(f"/groups/{g['id']}/members/{u['id']}/$ref")
    assert r.status_code == 404
    r = target.post(f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + "0000"})
    assert r.status_code == 404


def test_patch_members_bind_all_or_nothing(target):
    """learn.microsoft.com/graph/api/group-update (example 3): members@odata.bind, up to 20, all or
    nothing."""
    g = make_group(target)
    users = [make_user(target) for _ in range(3)]
    r = target.patch(f"/groups/{g['id']}", json={"members@odata.bind": [GRAPH_BIND + users[0]["id"]]})
    assert r.status_code == 204
    r = target.patch(f"/groups/{g['id']}", json={"members@odata.bind": [GRAPH_BIND + u["id"] for u in users]})
    assert r.status_code == 400
    assert error_of(r)["message"] == (
        "One or more added object references already exist for the following modified properties: 'members'."
    )
    members = [m["id"] for m in target.get(f"/groups/{g['id']}/members").json()["value"]]
    assert members == [users[0]["id"]]  # nothing from the failed request was added
    r = target.patch(f"/groups/{g['id']}", json={"members@odata.bind": [GRAPH_BIND + users[1]["id"]] * 21})
    assert r.status_code == 400 and "20" in error_of(r)["message"]


def test_member_listing_paging(source):
    """learn.microsoft.com/graph/api/group-list-members: paged with $top and nextLink; users and groups
    typed."""
    groups = source.get("/groups", params={"$filter": "displayName eq 'All Staff'"}).json()["value"]
    gid = groups[0]["id"]
    body = source.get(f"/groups/{gid}/members", params={"$top": 2}).json()
    assert len(body["value"]) == 2 and body["value"][0]["@odata.type"] == "#microsoft.graph.user"
    seen = [m["id"] for m in body["value"]]
    while "@odata.nextLink" in body:
        body = httpx.get(body["@odata.nextLink"], headers=source.headers).json()
        seen += [m["id"] for m in body["value"]]
    assert len(seen) == len(set(seen)) > 2


def test_groups_delta_members(target):
    """learn.microsoft.com/graph/api/group-delta: members@delta with @removed for removed members."""
    g = make_group(target)
    u1, u2 = make_user(target), make_user(target)
    for u in (u1, u2):
        target.post(f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + u["id"]})
    items, delta = _drain(target, "/groups/delta?$select=displayName,members")
    first = next(i for i in items if i["id"] == g["id"])
    assert {m["id"] for m in first["members@delta"]} == {u1["id"], u2["id"]}
    target.delete(f"/groups/{g['id']}/members/{u1['id']}/$ref")
    items, _ = _drain(target, delta)
    changed = next(i for i in items if i["id"] == g["id"])
    assert changed["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": u1["id"], "@removed": {"reason": "deleted"}}
    ]


def test_delete_unified_group_soft(target):
    """learn.microsoft.com/graph/api/group-delete: Microsoft 365 groups are restorable for 30 days."""
    owner = make_user(target)
    g = make_group(target, unified=True, **{"owners@odata.bind": [GRAPH_BIND + owner["id"]]})
    assert target.delete(f"/groups/{g['id']}").status_code == 204
    listed = target.get("/directory/deletedItems/microsoft.graph.group").json()["value"]
    assert g["id"] in [x["id"] for x in listed]
    assert target.post(f"/directory/deletedItems/{g['id']}/restore").status_code == 200
    assert target.get(f"/groups/{g['id']}").status_code == 200


def test_delete_security_group_permanent(target):
    """learn.microsoft.com/graph/api/group-delete: security groups are deleted at once."""
    g = make_group(target)
    assert target.delete(f"/groups/{g['id']}").status_code == 204
    assert target.post(f"/directory/deletedItems/{g['id']}/restore").status_code == 404


def test_group_expand_members(source):
    """learn.microsoft.com/graph/api/group-get: $expand=members returns up to 20 members."""
    gid = source.get("/groups", params={"$filter": "displayName eq 'All Staff'"}).json()["value"][0]["id"]
    body = source.get(f"/groups/{gid}", params={"$expand": "members"}).json()
    assert 0 < len(body["members"]) <= 20


# Domains, SKUs, organization -------------------------------------------------------------------------------
def test_domains(target):
    """learn.microsoft.com/graph/api/domain-list: verified domains with isVerified/isDefault/isInitial."""
    doms = target.get("/domains").json()["value"]
    by = {d["id"]: d for d in doms}
    assert by["northernlights.org.uk"]["isVerified"] and by["northernlights.org.uk"]["isDefault"]
    assert any(d["isInitial"] and d["id"].endswith(".onmicrosoft.com") for d in doms)
    assert target.get("/domains/northernlights.org.uk").json()["id"] == "northernlights.org.uk"


def test_subscribed_skus(target):
    """learn.microsoft.com/graph/api/subscribedsku-list: part numbers, prepaid and consumed units."""
    skus = _skus(target)
    assert {"STANDARDWOFFPACK_FACULTY", "STANDARDWOFFPACK_STUDENT"} <= set(skus)
    assert all(s["prepaidUnits"]["enabled"] >= s["consumedUnits"] for s in skus.values())


def test_organization(target, target_id):
    """learn.microsoft.com/graph/api/organization-list: one organization, the tenant."""
    orgs = target.get("/organization").json()["value"]
    assert len(orgs) == 1 and orgs[0]["id"] == target_id and orgs[0]["verifiedDomains"]


def test_patch_members_underscore_spelling_adds_nobody(target):
    """graph-facts.md / learn.microsoft.com/graph/api/group-update: only members@odata.bind binds; the
    underscore spelling is taken as an annotation and silently ignored."""
    g = make_group(target)
    u = make_user(target)
    r = target.patch(f"/groups/{g['id']}", json={"members@odata_bind": [GRAPH_BIND + u["id"]]})
    assert r.status_code == 204
    assert target.get(f"/groups/{g['id']}/members").json()["value"] == []


def test_delta_stale_token_410(sandbox_url, target, target_id):
    """learn.microsoft.com/graph/delta-query-overview and /graph/errors: 410 resyncRequired for a stale
    token."""
    _, delta = _drain(target, "/users/delta?$select=displayName")
    r = httpx.post(f"{sandbox_url}/sandbox/tenants/{target_id}/expire-delta", json={})
    assert r.status_code == 200
    r = httpx.get(delta, headers=target.headers)
    assert r.status_code == 410 and error_of(r)["code"] == "resyncRequired"
    items, _ = _drain(target, "/users/delta?$select=displayName")  # a full round works again
    assert items


def test_orderby_and_search(source):
    """learn.microsoft.com/graph/query-parameters#orderby-parameter and #search-parameter (advanced
    queries)."""
    r = source.get("/users", params={"$orderby": "displayName", "$select": "displayName", "$top": 999})
    names = [u["displayName"] for u in r.json()["value"]]
    assert names == sorted(names, key=str.lower)
    r = source.get("/users", params={"$orderby": "jobTitle"})
    assert r.status_code == 400
    r = source.get("/users", params={"$search": '"displayName:smith"'})
    assert r.status_code == 400 and "ConsistencyLevel" in error_of(r)["message"]
    r = source.get(
        "/users",
        params={"$search": '"displayName:smith"', "$select": "displayName"},
        headers={"ConsistencyLevel": "eventual"},
    )
    assert r.status_code == 200 and all("smith" in u["displayName"].lower() for u in r.json()["value"])


def test_user_member_of(source):
    """learn.microsoft.com/graph/api/user-list-memberof: groups a user belongs to, typed."""
    gid = source.get("/groups", params={"$filter": "displayName eq 'All Staff'"}).json()["value"][0]["id"]
    member = source.get(f"/groups/{gid}/members", params={"$top": 1}).json()["value"][0]
    groups = source.get(f"/users/{member['id']}/memberOf").json()["value"]
    assert gid in [g["id"] for g in groups] and groups[0]["@odata.type"] == "#microsoft.graph.group"


def test_restore_user_brings_memberships_back(target):
    """learn.microsoft.com/graph/api/directory-deleteditems-restore: a restored user keeps its group
    memberships."""
    g = make_group(target)
    u = make_user(target)
    target.post(f"/groups/{g['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + u["id"]})
    target.delete(f"/users/{u['id']}")
    assert target.get(f"/groups/{g['id']}/members").json()["value"] == []
    target.post(f"/directory/deletedItems/{u['id']}/restore")
    assert [m["id"] for m in target.get(f"/groups/{g['id']}/members").json()["value"]] == [u["id"]]


def test_get_deleted_item(target):
    """learn.microsoft.com/graph/api/directory-deleteditems-get: one deleted object by id."""
    u = make_user(target)
    target.delete(f"/users/{u['id']}")
    r = target.get(f"/directory/deletedItems/{u['id']}")
    assert r.status_code == 200 and r.json()["@odata.type"] == "#microsoft.graph.user"
    assert target.get("/directory/deletedItems/00000000-0000-0000-0000-000000000000").status_code == 404


def test_unified_group_members_must_be_users(target):
    """learn.microsoft.com/graph/api/group-post-members: Microsoft 365 groups cannot contain groups."""
    owner = make_user(target)
    team = make_group(target, unified=True, **{"owners@odata.bind": [GRAPH_BIND + owner["id"]]})
    inner = make_group(target)
    r = target.post(f"/groups/{team['id']}/members/$ref", json={"@odata.id": GRAPH_BIND + inner["id"]})
    assert r.status_code == 400


def test_unified_group_mail_conflict(target):
    """learn.microsoft.com/graph/api/group-post-groups: a Microsoft 365 group's address must be unique."""
    g = make_group(target, unified=True)
    r = target.post(
        "/groups",
        json={
            "displayName": "dup",
            "mailEnabled": True,
            "mailNickname": g["mailNickname"],
            "securityEnabled": False,
            "groupTypes": ["Unified"],
        },
    )
    assert r.status_code == 400 and error_of(r)["details"][0]["code"] == "ObjectConflict"


def test_token_by_domain_and_expired_token(sandbox_url, target_id):
    """Entra accepts the tenant's domain in the token URL; an expired token is 401 (graph/errors)."""
    r = httpx.post(
        f"{sandbox_url}/northernlights.org.uk/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "y",
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert r.status_code == 200
    from sandbox.pipeline import issue_token

    old = issue_token(sandbox_url.world, target_id, "x", lifetime=-10)
    r = httpx.get(f"{sandbox_url}/v1.0/organization", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and "expired" in error_of(r)["message"]


def test_filter_group_types_any(source):
    """learn.microsoft.com/graph/api/group-list (example: Microsoft 365 groups): groupTypes/any(c:c eq
    'Unified')."""
    r = source.get("/groups", params={"$filter": "groupTypes/any(c:c eq 'Unified')", "$select": "groupTypes"})
    values = r.json()["value"]
    assert values and all(v["groupTypes"] == ["Unified"] for v in values)
    r = source.get(
        "/groups",
        params={"$filter": "mailEnabled eq true and securityEnabled eq true", "$select": "displayName"},
    )
    assert [v["displayName"] for v in r.json()["value"]] == ["Safeguarding Alerts"]
