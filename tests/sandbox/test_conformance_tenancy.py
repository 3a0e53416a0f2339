"""Conformance of the strictness rules of issue 13, one test per rule, each naming the Microsoft page it
follows. The session sandbox provisions OneDrives with delay 0 (tests/sandbox/conftest.py says so); the delay
test sets its own."""

from __future__ import annotations

import base64
import json

import httpx

from sandbox.tenancy import PROFILE_LOADER
from sandbox.testing import provision_onedrives, sharepoint_admin_token, token
from tests.sandbox.conftest import error_of, make_user, unique
from tests.sandbox.test_conformance_drives import licensed_user

APP = "00000000-0000-0000-0000-00000000c0de"  # sandbox.testing.token's client id


def _claims(tok: str) -> dict:
    payload = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_onedrive_exists_only_after_provisioning(target, sandbox_url, target_id):
    """learn.microsoft.com/sharepoint/pre-provision-accounts: a licensed user has no OneDrive until it is
    provisioned; GET /users/{id}/drive answers 404 ResourceNotFound "User's mysite not found." until the
    request was accepted and the timer job ran (the delay)."""
    world = sandbox_url.world
    world.apply_settings(world.settings.replace(onedrive_provision_delay_s=30))
    try:
        user = licensed_user(target)
        err = error_of(target.get(f"/users/{user['id']}/drive"))
        assert err["code"] == "ResourceNotFound" and err["message"] == "User's mysite not found."
        assert provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]]).status_code == 200
        # The timer job has not run: Graph's other not-yet answer (test_conformance_onedrive.py).
        assert target.get(f"/users/{user['id']}/drive").status_code == 400
        world.tenant(target_id).onedrive_ready[user["id"]] = 0.0  # ... now it has
        assert target.get(f"/users/{user['id']}/drive").status_code == 200
    finally:
        world.apply_settings(world.settings.replace(onedrive_provision_delay_s=0))


def test_personal_site_request_needs_admin_audience_certificate_and_at_most_200(
    target, sandbox_url, target_id
):
    """learn.microsoft.com/powershell/module/sharepoint-online/request-spopersonalsite (at most 200 users)
    and learn.microsoft.com/sharepoint/dev/solution-guidance/security-apponly-azuread (app-only SharePoint
    REST: a token for the SharePoint resource, from a certificate credential; secrets are refused)."""
    url = f"{sandbox_url}{PROFILE_LOADER}"
    user = licensed_user(target)
    body = {"emailIDs": [user["userPrincipalName"]]}
    graph = token(sandbox_url, target_id)
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {graph}"}).status_code == 401
    secret = sharepoint_admin_token(sandbox_url, target_id, certificate=False)
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and "Unsupported app only token." in r.text
    cert = sharepoint_admin_token(sandbox_url, target_id)
    too_many = {"emailIDs": [f"u{i}@northernlights.org.uk" for i in range(201)]}
    r = httpx.post(url, json=too_many, headers={"Authorization": f"Bearer {cert}"})
    assert r.status_code == 400 and "At most 200" in r.text
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {cert}"}).status_code == 200
    assert target.get(f"/users/{user['id']}/drive").status_code == 200


def test_extension_property_must_be_registered(target, sandbox_url, target_id):
    """learn.microsoft.com/graph/api/application-post-extensionproperty and
    application-list-extensionproperty: register on the application, then use; an unregistered directory
    extension in a create, PATCH or $filter answers 400."""
    name = f"x{unique()}"
    prop = f"extension_{APP.replace('-', '')}_{name}"
    err = error_of(target.post("/users", json={**_user_body(), prop: "v"}))
    assert err["code"] == "Request_BadRequest"
    assert err["message"] == f"Property '{prop}' does not exist as a declared property or extension property."
    u = make_user(target)
    assert target.patch(f"/users/{u['id']}", json={prop: "v"}).status_code == 400
    assert target.get("/users", params={"$filter": f"{prop} eq 'v'"}).status_code == 400
    r = target.post(
        f"/applications(appId='{APP}')/extensionProperties",
        json={"name": name, "dataType": "String", "targetObjects": ["User"]},
    )
    assert r.status_code == 201 and r.json()["name"] == prop
    listed = target.get(f"/applications(appId='{APP}')/extensionProperties").json()["value"]
    assert prop in [p["name"] for p in listed]
    assert target.patch(f"/users/{u['id']}", json={prop: "v"}).status_code == 204
    found = target.get("/users", params={"$filter": f"{prop} eq 'v'", "$select": "id"}).json()["value"]
    assert [x["id"] for x in found] == [u["id"]]
    # Registered for users only: groups still refuse it.
    assert (
        target.post(
            f"/applications(appId='{APP}')/extensionProperties",
            json={"name": name, "dataType": "String", "targetObjects": ["User"]},
        ).status_code
        == 400
    )


def _user_body() -> dict:
    from tests.sandbox.conftest import new_user_body

    return new_user_body()


def test_granted_roles_in_token_and_403_when_none_documented(sandbox_url, target_id):
    """learn.microsoft.com/entra/identity-platform/access-token-claims-reference (app-only tokens carry the
    granted application permissions in `roles`) and learn.microsoft.com/graph/api/user-post-users
    (Application: User.ReadWrite.All or Directory.ReadWrite.All): without one, 403
    Authorization_RequestDenied "Insufficient privileges to complete the operation."."""
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/roles"
    try:
        r = httpx.post(admin, json={"withhold": ["User.ReadWrite.All", "Directory.ReadWrite.All"]})
        assert r.status_code == 200
        tok = token(sandbox_url, target_id)
        roles = _claims(tok)["roles"]
        assert "User.ReadWrite.All" not in roles and "User.Read.All" in roles
        with httpx.Client(base_url=f"{sandbox_url}/v1.0", headers={"Authorization": f"Bearer {tok}"}) as c:
            err = error_of(c.post("/users", json=_user_body()))
            assert err["code"] == "Authorization_RequestDenied"
            assert err["message"] == "Insufficient privileges to complete the operation."
            assert c.get("/users", params={"$top": "1"}).status_code == 200  # User.Read.All still granted
        assert httpx.post(admin, json={"withhold": ["Nope.All"]}).status_code == 400
    finally:
        httpx.post(admin, json={"reset": True})


def test_simple_put_by_path_creates_parents_upload_session_does_not(target, sandbox_url, target_id):
    """learn.microsoft.com/graph/api/driveitem-put-content (by path, missing folders are created) and
    driveitem-createuploadsession (the parent must exist)."""
    user = licensed_user(target)
    provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]])
    did = target.get(f"/users/{user['id']}/drive").json()["id"]
    r = target.put(f"/drives/{did}/root:/a/b/c.txt:/content", content=b"hello")
    assert r.status_code == 201, r.text
    assert target.get(f"/drives/{did}/root:/a/b").json()["folder"]["childCount"] == 1
    r = target.post(f"/drives/{did}/root:/x/y/z.bin:/createUploadSession", json={"item": {}})
    assert r.status_code == 404


def test_quota_deleted_counts_the_recycle_bin(target, sandbox_url, target_id):
    """learn.microsoft.com/graph/api/resources/quota: deleted = bytes in the recycle bin."""
    user = licensed_user(target)
    provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]])
    did = target.get(f"/users/{user['id']}/drive").json()["id"]
    item = target.put(f"/drives/{did}/root:/gone.txt:/content", content=b"x" * 1234).json()
    assert target.get(f"/drives/{did}").json()["quota"]["deleted"] == 0
    assert target.delete(f"/drives/{did}/items/{item['id']}").status_code == 204
    assert target.get(f"/drives/{did}").json()["quota"]["deleted"] == 1234


def test_upload_url_refuses_authorization_for_every_method(target, sandbox_url, target_id):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession: the uploadUrl is pre-authenticated;
    an Authorization header is treated alike for PUT, GET and DELETE (refused)."""
    user = licensed_user(target)
    provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]])
    did = target.get(f"/users/{user['id']}/drive").json()["id"]
    upload = target.post(f"/drives/{did}/root:/s.bin:/createUploadSession", json={"item": {}}).json()[
        "uploadUrl"
    ]
    auth = {"Authorization": f"Bearer {token(sandbox_url, target_id)}"}
    assert httpx.get(upload, headers=auth).status_code == 401
    assert httpx.delete(upload, headers=auth).status_code == 401
    assert (
        httpx.put(upload, headers={**auth, "Content-Range": "bytes 0-0/1"}, content=b"x").status_code == 401
    )
    assert httpx.get(upload).status_code == 200


def test_demo_sandbox_has_replication_lag(monkeypatch, tmp_path):
    """learn.microsoft.com/graph/throttling (and Graph's eventual consistency for new objects): every demo
    rehearsal runs with replication lag on (500 ms)."""
    import contextlib

    from sandbox import testing

    seen: dict = {}

    @contextlib.contextmanager
    def capture(config_dir, **settings):
        seen.update(settings)
        yield "http://127.0.0.1:1"

    monkeypatch.setattr(testing, "running_sandbox", capture)
    with testing.rehearsal_graph(tmp_path, None, keep=False, size=None, state=tmp_path / "s.json"):
        pass
    assert seen["replication_lag_ms"] == 500


def test_withhold_roles_flag_takes_consent_away(config_dir):
    """--withhold-roles (Settings.withhold_roles): the roles claim of every tenant's tokens lacks them
    (learn.microsoft.com/entra/identity-platform/access-token-claims-reference)."""
    from sandbox.testing import running_sandbox

    with running_sandbox(config_dir, size=20, withhold_roles=("User.ReadWrite.All",)) as url:
        for t in httpx.get(f"{url}/sandbox/tenants").json():
            roles = _claims(token(url, t["id"]))["roles"]
            assert "User.ReadWrite.All" not in roles and "User.Read.All" in roles


# (method, path, the least-privileged application role its page lists, a role the page does not list)
_DOMAIN_AND_SHARING_ROUTES = (
    ("GET", "/domains", "Domain.Read.All", "User.Read.All"),
    ("GET", "/domains/nllt.example", "Domain.Read.All", "Directory.ReadWrite.All"),
    ("POST", "/domains", "Domain.ReadWrite.All", "Directory.ReadWrite.All"),
    ("PATCH", "/domains/nllt.example", "Domain.ReadWrite.All", "Directory.ReadWrite.All"),
    ("DELETE", "/domains/nllt.example", "Domain.ReadWrite.All", "Directory.ReadWrite.All"),
    ("POST", "/domains/nllt.example/verify", "Domain.ReadWrite.All", "Directory.ReadWrite.All"),
    ("POST", "/domains/nllt.example/forceDelete", "Domain.ReadWrite.All", "Directory.ReadWrite.All"),
    ("GET", "/domains/nllt.example/verificationDnsRecords", "Domain.Read.All", "Directory.Read.All"),
    ("GET", "/domains/nllt.example/domainNameReferences", "Domain.Read.All", "User.Read.All"),
    ("GET", "/drives/d1/items/i1/permissions", "Files.Read.All", "Sites.FullControl.All"),
    ("GET", "/drives/d1/items/i1/permissions/p1", "Files.Read.All", "Sites.Manage.All"),
    ("POST", "/drives/d1/items/i1/invite", "Files.ReadWrite.All", "Sites.FullControl.All"),
    ("POST", "/drives/d1/items/i1/createLink", "Files.ReadWrite.All", "Sites.Manage.All"),
    ("PATCH", "/drives/d1/items/i1/permissions/p1", "Files.ReadWrite.All", "Files.Read.All"),
    ("DELETE", "/drives/d1/items/i1/permissions/p1", "Files.ReadWrite.All", "Sites.Read.All"),
)


def test_domain_and_sharing_routes_need_their_documented_roles(sandbox_url, target_id):
    """Each domain and sharing route accepts the application roles of its page's permissions table and no
    other (learn.microsoft.com/graph/api/domain-get, domain-post-domains, domain-update, domain-delete,
    domain-verify, domain-forcedelete, domain-list-verificationdnsrecords, domain-list-domainnamereferences,
    driveitem-list-permissions, permission-get, driveitem-invite, driveitem-createlink, permission-update,
    permission-delete): a token holding only another role answers 403 Authorization_RequestDenied."""
    from sandbox.tenancy import ALL_ROLES

    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/roles"

    def only(role: str) -> httpx.Client:
        httpx.post(admin, json={"reset": True}).raise_for_status()
        withhold = [r for r in ALL_ROLES if r != role and not r.startswith("SharePoint:")]
        httpx.post(admin, json={"withhold": withhold}).raise_for_status()
        tok = token(sandbox_url, target_id)
        assert _claims(tok)["roles"] == [role]
        return httpx.Client(base_url=f"{sandbox_url}/v1.0", headers={"Authorization": f"Bearer {tok}"})

    # One token per role (each costs a consent change): (role, method, path, must be refused).
    cases: dict[str, list[tuple[str, str, bool]]] = {}
    for method, path, least, other in _DOMAIN_AND_SHARING_ROUTES:
        cases.setdefault(other, []).append((method, path, True))
        cases.setdefault(least, []).append((method, path, False))
    try:
        for role, requests in cases.items():
            with only(role) as c:
                for method, path, refused in requests:
                    r = c.request(method, path, json={} if method in ("POST", "PATCH") else None)
                    if refused:
                        assert r.status_code == 403, (method, path, role, r.status_code)
                        assert error_of(r)["code"] == "Authorization_RequestDenied"
                    else:
                        assert r.status_code != 403, (method, path, role, r.text)
    finally:
        httpx.post(admin, json={"reset": True})
