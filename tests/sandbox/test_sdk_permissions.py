"""msgraph-sdk request builders for item permissions pointed at the sandbox: every call trustfold makes (and
the ones an operator's script would) works, and every body parses into the SDK's models with no unknown
properties (only the OData annotations Graph also sends)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.drives.item.items.item.create_link.create_link_post_request_body import (
    CreateLinkPostRequestBody,
)
from msgraph.generated.drives.item.items.item.invite.invite_post_request_body import InvitePostRequestBody
from msgraph.generated.models.drive_recipient import DriveRecipient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.permission import Permission

from tests.sandbox.conftest import make_user
from tests.sandbox.test_conformance_permissions import tree  # noqa: F401 (fixture)
from tests.sandbox.test_sdk import clean
from tests.sandbox.test_sdk_drives import fresh_drive_id, graph, target_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CHANGED = {"@microsoft.graph.sharedChanged"}


def _item(client: Any, t: dict[str, Any], key: str = "folder") -> Any:
    return client.drives.by_drive_id(t["drive"]).items.by_drive_item_id(t[key])


async def test_sdk_invite_list_patch_delete(target_client, tree):  # noqa: F811
    item = _item(target_client, tree)
    body = InvitePostRequestBody(
        recipients=[
            DriveRecipient(object_id=tree["user"]["id"]),
            DriveRecipient(object_id=tree["group"]["id"]),
        ],
        roles=["read"],
        require_sign_in=True,
        send_invitation=False,
    )
    granted = await item.invite.post(body)
    clean(granted)
    user, group = granted.value
    assert (
        user.granted_to_v2.user.id == tree["user"]["id"]
        and group.granted_to_v2.group.id == tree["group"]["id"]
    )
    assert user.granted_to_v2.site_user.login_name.endswith(tree["user"]["userPrincipalName"])
    listed = await item.permissions.get()
    clean(listed)
    # No inheritedFrom from OneDrive for Business (resources/permission): the drive's own grants (its
    # owner) are told apart by appearing, with the same id, on the root.
    root = target_client.drives.by_drive_id(tree["drive"]).items.by_drive_item_id("root")
    above = await root.permissions.get()
    clean(above)
    assert all(p.inherited_from is None for p in listed.value)
    assert {p.id for p in listed.value} - {p.id for p in above.value} == {user.id, group.id}
    child = await _item(target_client, tree, "file").permissions.get()
    clean(child)
    assert all(p.inherited_from is None for p in child.value)
    assert {user.id, group.id} <= {p.id for p in child.value}
    one = item.permissions.by_permission_id(user.id)
    changed = await one.patch(Permission(roles=["write"]))
    clean(changed)
    assert changed.roles == ["write"]
    await one.delete()
    with pytest.raises(ODataError) as err:
        await one.get()
    assert err.value.response_status_code == 404 and err.value.error.code == "itemNotFound"


async def test_sdk_create_link_and_policy_error(target_client, tree, sandbox_url, target_id):  # noqa: F811
    item = _item(target_client, tree, "file")
    link = await item.create_link.post(CreateLinkPostRequestBody(type="edit", scope="organization"))
    clean(link)
    assert link.link.scope == "organization" and link.link.type == "edit" and link.roles == ["write"]
    admin = f"{sandbox_url}/sandbox/tenants/{target_id}/sharing"
    httpx.post(admin, json={"sharingCapability": "externalUserSharingOnly"}).raise_for_status()
    try:
        with pytest.raises(ODataError) as err:
            await item.create_link.post(CreateLinkPostRequestBody(type="view", scope="anonymous"))
        assert err.value.response_status_code == 403 and err.value.error.code == "accessDenied"
    finally:
        httpx.post(admin, json={"sharingCapability": "externalUserAndGuestSharing"}).raise_for_status()


async def test_sdk_delta_with_sharing_preferences(target_client, target, tree):  # noqa: F811
    items = target_client.drives.by_drive_id(tree["drive"]).items
    config = RequestConfiguration()
    prefer = (
        "hierarchicalsharing, deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"
    )
    config.headers.add("Prefer", prefer)
    page = await items.by_drive_item_id("root").delta.get(request_configuration=config)
    while page.odata_next_link:
        page = await items.by_drive_item_id("root").delta.with_url(page.odata_next_link).get(config)
    other = make_user(target)
    await _item(target_client, tree).invite.post(
        InvitePostRequestBody(
            recipients=[DriveRecipient(object_id=other["id"])],
            roles=["write"],
            require_sign_in=True,
            send_invitation=False,
        )
    )
    changes = await items.by_drive_item_id("root").delta.with_url(page.odata_delta_link).get(config)
    for it in changes.value:
        clean(it, CHANGED | {"@microsoft.graph.downloadUrl"})
    folder = next(i for i in changes.value if i.id == tree["folder"])
    assert folder.shared.scope == "users" and folder.shared.shared_date_time is not None
    assert folder.additional_data["@microsoft.graph.sharedChanged"] == "True"
