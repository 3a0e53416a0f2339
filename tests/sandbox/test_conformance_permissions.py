"""Item permissions in the sandbox behave as Graph documents them (docs/sandbox.md, "Item permissions"):
listing direct and inherited grants, invite, createLink under the tenant's sharing policy, PATCH and DELETE,
the shared facet, delta's sharing changes, and SharePoint's resource-unit cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.testing import graph_client, running_sandbox
from tests.sandbox.conftest import CONFIG, error_of, make_group, make_user
from tests.sandbox.test_sdk_drives import fresh_drive_id  # noqa: F401 (fixture)

SHARING = (
    "hierarchicalsharing",
    "deltashowremovedasdeleted",
    "deltatraversepermissiongaps",
    "deltashowsharingchanges",
)


@pytest.fixture
def tree(target: httpx.Client, fresh_drive_id: str) -> dict[str, Any]:  # noqa: F811
    """A OneDrive holding Projects/Plans/plan.docx, a user and a group of the tenant."""
    parent = "root"
    for name in ("Projects", "Plans"):
        body = {"name": name, "folder": {}}
        r = target.post(f"/drives/{fresh_drive_id}/items/{parent}/children", json=body)
        assert r.status_code == 201, r.text
        parent = r.json()["id"]
    r = target.put(f"/drives/{fresh_drive_id}/items/{parent}:/plan.docx:/content", content=b"plan")
    assert r.status_code == 201, r.text
    folder = target.get(f"/drives/{fresh_drive_id}/root:/Projects").json()
    return {
        "drive": fresh_drive_id,
        "folder": folder["id"],
        "file": r.json()["id"],
        "user": make_user(target),
        "group": make_group(target),
    }


def _item(t: dict[str, Any], key: str = "folder") -> str:
    return f"/drives/{t['drive']}/items/{t[key]}"


def _invite(client: httpx.Client, path: str, oid: str, **body: Any) -> httpx.Response:
    payload = {
        "recipients": [{"objectId": oid}],
        "roles": ["read"],
        "requireSignIn": True,
        "sendInvitation": False,
    }
    payload.update(body)
    return client.post(f"{path}/invite", json=payload)


@pytest.fixture
def sharing_log(sandbox_url: str, target_id: str) -> Iterator[Any]:
    def read() -> list[dict[str, Any]]:
        return list(httpx.get(f"{sandbox_url}/sandbox/tenants/{target_id}/sharing").json()["invitations"])

    yield read
    httpx.post(
        f"{sandbox_url}/sandbox/tenants/{target_id}/sharing",
        json={"sharingCapability": "externalUserAndGuestSharing", "organizationLinks": True},
    ).raise_for_status()


def test_invite_grants_directly_and_children_inherit(target, tree, sharing_log):
    r = _invite(target, _item(tree), tree["user"]["id"], roles=["write"])
    assert r.status_code == 200, r.text
    (perm,) = r.json()["value"]
    assert perm["roles"] == ["write"] and perm["grantedToV2"]["user"]["id"] == tree["user"]["id"]
    assert "siteUser" in perm["grantedToV2"] and "grantedTo" not in perm  # only the v2 identity set
    r = _invite(target, _item(tree), tree["group"]["id"])
    assert r.json()["value"][0]["grantedToV2"]["group"]["id"] == tree["group"]["id"]
    listed = target.get(f"{_item(tree)}/permissions").json()["value"]
    # OneDrive for Business and SharePoint libraries never send inheritedFrom (resources/permission): an
    # inherited grant is told only by appearing, with the same id, on the item it comes from.
    assert not any("inheritedFrom" in p for p in listed)
    root = target.get(f"/drives/{tree['drive']}/root").json()["id"]
    at_root = {
        p["id"] for p in target.get(f"/drives/{tree['drive']}/items/{root}/permissions").json()["value"]
    }
    owner = [p for p in listed if p["roles"] == ["owner"]]
    assert owner and owner[0]["id"] in at_root
    direct = [p for p in listed if p["id"] not in at_root]
    assert {p["id"] for p in direct} >= {perm["id"]} and len(direct) == 2
    child = target.get(f"{_item(tree, 'file')}/permissions").json()["value"]
    assert not any("inheritedFrom" in p for p in child)
    assert {p["id"] for p in listed} <= {p["id"] for p in child}  # the folder's grants, same ids
    # Every invitation is recorded with what was asked of it: here, no e-mail.
    asked = [i for i in sharing_log() if i["item"] == tree["folder"]]
    assert [i["sendInvitation"] for i in asked] == [False, False]


def test_invite_validation_and_the_stricter_readings(target, tree, sharing_log):
    path = _item(tree)
    # No sendInvitation at all counts as an e-mail asked for (the docs give no default).
    body = {"recipients": [{"objectId": tree["user"]["id"]}], "roles": ["read"], "requireSignIn": True}
    assert target.post(f"{path}/invite", json=body).status_code == 200
    assert sharing_log()[-1]["sendInvitation"] is True
    r = _invite(target, path, tree["user"]["id"], requireSignIn=False)
    assert r.status_code == 400 and "requireSignIn" in error_of(r)["message"]
    r = _invite(target, path, tree["user"]["id"], roles=["owner"])
    assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest"
    r = _invite(target, path, "00000000-0000-0000-0000-000000000000")
    assert r.status_code == 400 and "could not be resolved" in error_of(r)["message"]
    r = target.post(f"{path}/invite", json={"recipients": [], "roles": ["read"]})
    assert r.status_code == 400
    root = target.get(f"/drives/{tree['drive']}/root").json()["id"]
    r = _invite(target, f"/drives/{tree['drive']}/items/{root}", tree["user"]["id"])
    assert r.status_code == 400
    # An external address gets an invitation facet; a repeated invite is a second grant (not merged).
    r = _invite(target, path, "", recipients=[{"email": "adviser@lea.example.org"}])
    assert r.status_code == 200 and r.json()["value"][0]["invitation"]["email"] == "adviser@lea.example.org"
    assert _invite(target, path, tree["user"]["id"]).status_code == 200
    mine = [
        p
        for p in target.get(f"{path}/permissions").json()["value"]
        if p.get("grantedToV2", {}).get("user", {}).get("id") == tree["user"]["id"]
    ]
    assert len(mine) == 2


def test_create_link_types_scopes_and_policy(sandbox_url, target_id, target, tree, sharing_log):
    path = _item(tree)
    r = target.post(f"{path}/createLink", json={"type": "view", "scope": "organization"})
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["link"]["scope"] == "organization" and link["roles"] == ["read"]
    again = target.post(f"{path}/createLink", json={"type": "view", "scope": "organization"})
    assert again.status_code == 200 and again.json()["id"] == link["id"]  # the app's existing link
    assert target.post(f"{path}/createLink", json={"type": "edit"}).json()["link"]["scope"] == "organization"
    assert target.post(f"{path}/createLink", json={"type": "embed"}).status_code == 400
    assert target.post(f"{path}/createLink", json={"type": "view", "scope": "world"}).status_code == 400
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/sharing"
    httpx.post(admin, json={"sharingCapability": "externalUserSharingOnly", "organizationLinks": False})
    for scope in ("anonymous", "organization"):
        r = target.post(f"{path}/createLink", json={"type": "view", "scope": scope})
        assert r.status_code == 403 and error_of(r)["code"] == "accessDenied", scope
    assert target.post(f"{path}/createLink", json={"type": "view", "scope": "users"}).status_code == 201
    assert httpx.post(admin, json={"sharingCapability": "everyone"}).status_code == 400


def test_patch_and_delete_permissions(target, tree):
    perm = _invite(target, _item(tree), tree["user"]["id"]).json()["value"][0]
    one = f"{_item(tree)}/permissions/{perm['id']}"
    r = target.patch(one, json={"roles": ["write"]})
    assert r.status_code == 200 and r.json()["roles"] == ["write"]
    assert target.patch(one, json={"roles": ["write"], "link": {}}).status_code == 400
    inherited = f"{_item(tree, 'file')}/permissions/{perm['id']}"
    got = target.get(inherited)
    assert got.status_code == 200 and "inheritedFrom" not in got.json()
    r = target.delete(inherited)
    assert r.status_code == 400 and "inherited" in error_of(r)["message"]
    assert target.delete(one).status_code == 204
    r = target.delete(one)
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"


def test_shared_facet_and_delta_sharing_changes(target, tree):
    drive = tree["drive"]
    first = target.get(f"/drives/{drive}/root/delta", headers={"Prefer": ", ".join(SHARING)}).json()
    link = first["@odata.deltaLink"]
    assert not any(i.get("shared") for i in first["value"])
    assert next(i for i in first["value"] if "root" in i)["shared"] == {}  # the hierarchy's unshared root
    _invite(target, _item(tree), tree["group"]["id"])
    assert target.get(_item(tree)).json()["shared"]["scope"] == "users"
    assert "shared" not in target.get(_item(tree, "file")).json()
    changes = target.get(link, headers={"Prefer": ", ".join(SHARING)}).json()["value"]
    folder = next(i for i in changes if i["id"] == tree["folder"])
    assert folder["@microsoft.graph.sharedChanged"] == "True" and "shared" in folder
    # deltashowsharingchanges alone (without its two companions) annotates nothing.
    alone = target.get(link, headers={"Prefer": "hierarchicalsharing, deltashowsharingchanges"}).json()
    assert not any("@microsoft.graph.sharedChanged" in i for i in alone["value"])
    # Without the preferences: inherited sharing shows on descendants, and changes carry no annotation.
    full = target.get(f"/drives/{drive}/root/delta").json()["value"]
    by_id = {i["id"]: i for i in full}
    assert by_id[tree["file"]]["shared"]["scope"] == "users"
    assert not any("@microsoft.graph.sharedChanged" in i for i in full)
    roots = target.get(f"/drives/{drive}/root/delta", headers={"Prefer": "hierarchicalsharing"}).json()
    assert [i["id"] for i in roots["value"] if i.get("shared")] == [tree["folder"]]
    # Removing the item's own sharing leaves an empty facet: unique, but shared with nobody.
    pid = target.get(f"{_item(tree)}/permissions").json()["value"][0]["id"]
    assert target.delete(f"{_item(tree)}/permissions/{pid}").status_code == 204
    after = target.get(alone["@odata.deltaLink"], headers={"Prefer": ", ".join(SHARING)}).json()["value"]
    removed = next(i for i in after if i["id"] == tree["folder"])
    assert removed["shared"] == {} and removed["@microsoft.graph.sharedChanged"] == "True"


def test_permission_requests_cost_five_resource_units(tmp_path):
    with running_sandbox(CONFIG, size=20, seed=5, sharepoint_ru="12/60") as url:
        tid = next(t["id"] for t in url.world.tenant_list() if t["role"] == "source")
        with graph_client(url, tid) as g:
            site = g.get("/sites", params={"search": "a"}).json()["value"][0]
            drive = g.get(f"/sites/{site['id']}/drive").json()["id"]  # 2 RU spent
            root = f"/drives/{drive}/items/root"
            assert g.get(f"{root}/permissions").status_code == 200  # 5 more: 7
            assert g.get(f"{root}/permissions").status_code == 200  # 12: the whole minute
            r = g.get(f"{root}/permissions")
            assert r.status_code == 429 and float(r.headers["Retry-After"]) > 0


# ---- link restrictions (issue 23): what createLink can set, and what a permission says of its link -------
def test_create_link_sets_an_expiry_and_lists_it(target, tree):
    """driveitem-createlink: expirationDateTime (yyyy-MM-ddTHH:mm:ssZ) is the permission's expiry; the
    permission lists it, with hasPassword and the link's preventsDownload (resources/permission,
    resources/sharinglink)."""
    path = _item(tree)
    r = target.post(
        f"{path}/createLink",
        json={"type": "view", "scope": "users", "expirationDateTime": "2099-07-15T14:00:00Z"},
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["expirationDateTime"] == "2099-07-15T14:00:00Z"
    assert made["hasPassword"] is False and made["link"]["preventsDownload"] is False
    listed = next(p for p in target.get(f"{path}/permissions").json()["value"] if p["id"] == made["id"])
    assert listed["expirationDateTime"] == "2099-07-15T14:00:00Z"
    # An expiry in the past, or not a date: 400 (a link that is already expired grants nothing).
    for bad in ("2001-01-01T00:00:00Z", "next week", 5):
        r = target.post(f"{path}/createLink", json={"type": "edit", "expirationDateTime": bad})
        assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest", bad


def test_create_link_refuses_what_graph_cannot_set_in_sharepoint(target, tree):
    """Passwords are "Optional and OneDrive Personal only"; v1.0 createLink types are view, edit, embed: a
    link that blocks download cannot be asked for (blocksDownload is beta); retainInheritedPermissions is a
    boolean."""
    path = _item(tree)
    r = target.post(f"{path}/createLink", json={"type": "view", "scope": "anonymous", "password": "p4ss"})
    assert r.status_code == 400 and "OneDrive personal" in error_of(r)["message"]
    r = target.post(f"{path}/createLink", json={"type": "blocksDownload", "scope": "organization"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest"
    r = target.post(f"{path}/createLink", json={"type": "view", "retainInheritedPermissions": "yes"})
    assert r.status_code == 400
    assert not [p for p in target.get(f"{path}/permissions").json()["value"] if "link" in p]


def test_existing_link_is_returned_whatever_expiry_was_asked(target, tree):
    """The documented reuse: "If a sharing link of the specified type already exists for the app, the
    existing sharing link is returned" (its own expiry, not the one asked for): a client must compare."""
    path = _item(tree)
    first = target.post(f"{path}/createLink", json={"type": "view", "scope": "organization"}).json()
    again = target.post(
        f"{path}/createLink",
        json={"type": "view", "scope": "organization", "expirationDateTime": "2099-01-01T00:00:00Z"},
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert "expirationDateTime" not in again.json()


def test_seeded_link_properties_are_listed_as_graph_documents_them(sandbox_url, target_id, target, tree):
    """A legacy tenant's links carry what SharePoint let people set (the sandbox seeds them outside Graph):
    block-download, a password, an expiry, and for "specific people" links the people
    (grantedToIdentitiesV2)."""
    admin = (
        f"{sandbox_url}/sandbox/tenants/{target_id}/drives/{tree['drive']}/items/{tree['folder']}/permissions"
    )
    seeded = [
        {"kind": "link", "type": "view", "scope": "organization", "preventsDownload": True},
        {"kind": "link", "type": "view", "scope": "anonymous", "hasPassword": True},
        {"kind": "link", "type": "edit", "scope": "anonymous", "expirationDateTime": "2099-02-01T00:00:00Z"},
        {"kind": "link", "type": "edit", "scope": "users", "people": [tree["user"]["id"]]},
        {"kind": "siteGroup", "displayName": "Hillside Governors", "roles": ["read"]},
    ]
    for body in seeded:
        r = httpx.post(admin, json=body)
        assert r.status_code == 201, r.text
    listed = [p for p in target.get(f"{_item(tree)}/permissions").json()["value"] if "inheritedFrom" not in p]
    links = {(p["link"]["scope"], p["link"]["type"]): p for p in listed if "link" in p}
    assert links[("organization", "view")]["link"]["preventsDownload"] is True
    assert links[("anonymous", "view")]["hasPassword"] is True
    assert links[("anonymous", "edit")]["expirationDateTime"] == "2099-02-01T00:00:00Z"
    people = links[("users", "edit")]["grantedToIdentitiesV2"]
    assert [p["user"]["id"] for p in people] == [tree["user"]["id"]]
    assert any(
        p.get("grantedToV2", {}).get("siteGroup", {}).get("displayName") == "Hillside Governors"
        for p in listed
    )
    # Bad seeds are refused, naming the field.
    r = httpx.post(admin, json={"kind": "link", "type": "view", "scope": "world"})
    assert r.status_code == 400 and "scope" in r.json()["error"]


def test_retain_inherited_permissions_false_starts_from_nothing(target, tree):
    """driveitem-invite and driveitem-createlink: retainInheritedPermissions "If false, all existing
    permissions are removed when sharing for the first time" (true, the default, keeps them)."""
    folder_grant = _invite(target, _item(tree), tree["group"]["id"]).json()["value"][0]
    r = _invite(target, _item(tree, "file"), tree["user"]["id"], retainInheritedPermissions=False)
    assert r.status_code == 200, r.text
    (mine,) = r.json()["value"]
    listed = target.get(f"{_item(tree, 'file')}/permissions").json()["value"]
    assert [p["id"] for p in listed] == [mine["id"]]  # neither the folder's group nor the owner
    # Only the first sharing starts afresh: a second grant adds to the item's own.
    again = _invite(target, _item(tree, "file"), tree["group"]["id"], retainInheritedPermissions=False)
    assert again.status_code == 200
    assert len(target.get(f"{_item(tree, 'file')}/permissions").json()["value"]) == 2
    # The default keeps what the folder gives.
    plans = target.get(f"/drives/{tree['drive']}/root:/Projects/Plans").json()["id"]
    path = f"/drives/{tree['drive']}/items/{plans}"
    r = target.post(f"{path}/createLink", json={"type": "view", "scope": "organization"})
    assert r.status_code == 201
    assert folder_grant["id"] in {p["id"] for p in target.get(f"{path}/permissions").json()["value"]}
    bad = target.post(f"{path}/createLink", json={"type": "edit", "retainInheritedPermissions": "no"})
    assert bad.status_code == 400 and "retainInheritedPermissions" in error_of(bad)["message"]


def test_user_drive_address_and_library_root(target, source, tree):
    """driveitem-list-permissions and driveitem-invite list /users/{userId}/drive/items/{itemId}/... among
    their addresses; a library's root can be shared (a OneDrive's root cannot: 400, as before)."""
    owner = target.get(f"/drives/{tree['drive']}").json()["owner"]["user"]["id"]
    by_user = f"/users/{owner}/drive/items/{tree['folder']}"
    r = _invite(target, by_user, tree["user"]["id"])
    assert r.status_code == 200, r.text
    listed = target.get(f"{by_user}/permissions")
    assert listed.status_code == 200
    assert listed.json() == target.get(f"{_item(tree)}/permissions").json()
    pid = r.json()["value"][0]["id"]
    assert target.get(f"{by_user}/permissions/{pid}").json()["id"] == pid
    assert target.delete(f"{by_user}/permissions/{pid}").status_code == 204
    site = source.get("/sites", params={"search": "a"}).json()["value"][0]
    lib = source.get(f"/sites/{site['id']}/drive").json()
    root = source.get(f"/drives/{lib['id']}/root").json()["id"]
    someone = source.get("/users", params={"$top": 1}).json()["value"][0]["id"]
    r = _invite(source, f"/drives/{lib['id']}/items/{root}", someone)
    assert r.status_code == 200, r.text
    at_root = source.get(f"/drives/{lib['id']}/items/{root}/permissions").json()["value"]
    assert r.json()["value"][0]["id"] in {p["id"] for p in at_root}
    assert (
        source.delete(
            f"/drives/{lib['id']}/items/{root}/permissions/{r.json()['value'][0]['id']}"
        ).status_code
        == 204
    )


def test_delta_sharing_changes_need_sites_full_control(sandbox_url, target_id, target, tree):
    """driveitem-delta ("Scanning permissions hierarchies"): "In order to process permissions correctly your
    application will need to request Sites.FullControl.All". Without it the stricter reading: sharing
    changes are scoped out silently (no sharedChanged, items changed only by sharing left out), as the
    SharePoint team's scanning guidance describes; nothing is refused."""
    prefer = {"Prefer": ", ".join(SHARING)}
    link = target.get(f"/drives/{tree['drive']}/root/delta", headers=prefer).json()["@odata.deltaLink"]
    _invite(target, _item(tree), tree["group"]["id"])
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/roles"
    httpx.post(admin, json={"withhold": ["Sites.FullControl.All"]}).raise_for_status()
    try:
        with graph_client(sandbox_url, target_id) as weaker:
            r = weaker.get(link, headers=prefer)
    finally:
        httpx.post(admin, json={"reset": True}).raise_for_status()
    assert r.status_code == 200
    assert not any(i["id"] == tree["folder"] for i in r.json()["value"])
    assert not any("@microsoft.graph.sharedChanged" in i for i in r.json()["value"])
    full = target.get(link, headers=prefer).json()["value"]
    assert next(i for i in full if i["id"] == tree["folder"])["@microsoft.graph.sharedChanged"] == "True"


def test_specific_sharing_apis_limit(tmp_path):
    """how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online: "Specific Sharing APIs", 300 requests
    per 5 minutes per app per tenant; a refused request answers 429 with Retry-After. Set low here."""
    with running_sandbox(CONFIG, size=20, seed=5, sharing_api="3/300") as url:
        tid = next(t["id"] for t in url.world.tenant_list() if t["role"] == "source")
        with graph_client(url, tid) as g:
            site = g.get("/sites", params={"search": "a"}).json()["value"][0]
            drive = g.get(f"/sites/{site['id']}/drive").json()["id"]
            kids = g.get(f"/drives/{drive}/root/children").json()["value"]
            item = f"/drives/{drive}/items/{kids[0]['id']}"
            for scope in ("organization", "users", "anonymous"):
                r = g.post(f"{item}/createLink", json={"type": "view", "scope": scope})
                assert r.status_code in (200, 201), r.text
            r = g.post(f"{item}/createLink", json={"type": "edit", "scope": "users"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert "Sharing" in r.headers["x-ms-throttle-scope"]
            assert g.get(f"{item}/permissions").status_code == 200  # reading is not a sharing call


def test_unique_permission_scopes_per_library_are_limited(sandbox_url, target_id, target, tree):
    """learn.microsoft.com/office365/servicedescriptions/sharepoint-online-service-description/
    sharepoint-online-limits ("Unique security scopes per list or library": 50,000) and learn.microsoft.com/
    sharepoint/install/software-boundaries-and-limits ("The maximum number of unique security scopes set for
    a list can't exceed 50,000"; a scope is the security boundary of an object with permissions of its own):
    sharing an item that still inherits gives it a scope of its own; past the limit SharePoint refuses it
    ("You cannot break inheritance for this item because there are too many items with unique permissions
    in this list"), and nothing is granted. An item already shared takes more grants. The limit is settable
    for tests: POST /sandbox/tenants/{tid}/sharing {"uniqueScopesLimit": N}."""
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/sharing"
    assert httpx.post(admin, json={"uniqueScopesLimit": 0}).status_code == 400
    assert httpx.post(admin, json={"uniqueScopesLimit": "many"}).status_code == 400
    assert httpx.get(admin).json()["policy"]["uniqueScopesLimit"] == 50_000
    assert httpx.post(admin, json={"uniqueScopesLimit": 1}).status_code == 200
    try:
        assert _invite(target, _item(tree), tree["user"]["id"]).status_code == 200
        assert _invite(target, _item(tree), tree["group"]["id"]).status_code == 200  # same scope
        before = target.get(f"{_item(tree, 'file')}/permissions").json()["value"]
        r = _invite(target, _item(tree, "file"), tree["user"]["id"], roles=["write"])
        assert r.status_code == 400, r.text
        assert "too many items with unique permissions" in error_of(r)["message"]
        r = target.post(f"{_item(tree, 'file')}/createLink", json={"type": "view", "scope": "organization"})
        assert r.status_code == 400 and "unique permissions" in error_of(r)["message"]
        assert target.get(f"{_item(tree, 'file')}/permissions").json()["value"] == before
    finally:
        assert httpx.post(admin, json={"uniqueScopesLimit": 50_000}).status_code == 200
