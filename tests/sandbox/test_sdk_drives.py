"""msgraph-sdk request builders pointed at the sandbox for drives, sites and files: every drive endpoint works
and every body deserialises into the SDK's models with no unknown properties (only OData annotations Graph
also sends)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.serialization import Parsable
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.drives.item.items.item.children.children_request_builder import ChildrenRequestBuilder
from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
    CreateUploadSessionPostRequestBody,
)
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties
from msgraph.generated.models.file_system_info import FileSystemInfo
from msgraph.generated.models.folder import Folder
from msgraph.generated.models.item_reference import ItemReference
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.upload_session import UploadSession
from msgraph.generated.sites.sites_request_builder import SitesRequestBuilder
from msgraph_core import GraphClientFactory
from quickxorhash import quickxorhash

from migrations.graph.sandbox_credential import AsyncSandboxCredential
from sandbox.testing import provision_onedrives
from tests.sandbox.conftest import make_user
from tests.sandbox.test_sdk import clean

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CHUNK = 320 * 1024
CONFLICT = "@microsoft.graph.conflictBehavior"
# Instance annotations Graph sends on driveItems that the SDK does not model as properties.
DOWNLOAD = {"@microsoft.graph.downloadUrl"}

Factory = Callable[[str], Awaitable[GraphServiceClient]]
T = TypeVar("T", bound=Parsable)


@pytest.fixture
async def graph(sandbox_url) -> AsyncIterator[Factory]:
    """GraphServiceClient for a tenant id, built as trustfold builds it (one retry layer: the SDK's off)."""
    opened: list[tuple[httpx.AsyncClient, AsyncSandboxCredential]] = []

    async def make(tenant_id: str) -> GraphServiceClient:
        cred = AsyncSandboxCredential(sandbox_url, tenant_id)
        auth = AzureIdentityAuthenticationProvider(
            cred, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=30),
            options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)},
        )
        opened.append((http, cred))
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{sandbox_url}/v1.0"
        return GraphServiceClient(request_adapter=adapter)

    yield make
    for http, cred in opened:
        await http.aclose()
        await cred.close()


@pytest.fixture
async def source_client(graph, source_id) -> GraphServiceClient:
    return await graph(source_id)


@pytest.fixture
async def target_client(graph, target_id) -> GraphServiceClient:
    return await graph(target_id)


@pytest.fixture
def site_name(tenants, source_id, config_dir: Path) -> str:
    code = next(t["academy"] for t in tenants if t["id"] == source_id)
    academy = yaml.safe_load((config_dir / "academies" / f"{code}.yaml").read_text())
    return str(academy["phases"]["files"]["libraries"][0]["source"]["site"])


@pytest.fixture
def fresh_drive_id(target, sandbox_url, target_id) -> str:
    """A new licensed user's (empty) OneDrive in the trust tenant, provisioned first."""
    user = make_user(target, usageLocation="GB")
    sku = next(
        s
        for s in target.get("/subscribedSkus").json()["value"]
        if s["skuPartNumber"] == "STANDARDWOFFPACK_FACULTY"
    )
    r = target.post(
        f"/users/{user['id']}/assignLicense",
        json={"addLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}], "removeLicenses": []},
    )
    assert r.status_code == 200, r.text
    assert provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]]).status_code == 200
    return str(target.get(f"/users/{user['id']}/drive").json()["id"])


def clean_item(item: object) -> None:
    clean(item, DOWNLOAD)


def parse(raw: bytes, model: type[T]) -> T:
    """A body fetched outside the request builders (upload URLs), parsed as the SDK parses responses."""
    node = JsonParseNodeFactory().get_root_parse_node("application/json", raw)
    return node.get_object_value(model)


async def test_sdk_user_drive_and_drive_by_id(target_client, target, fresh_drive_id):
    uid = target.get(f"/drives/{fresh_drive_id}").json()["owner"]["user"]["id"]
    drive = await target_client.users.by_user_id(uid).drive.get()
    clean(drive)
    assert drive.id == fresh_drive_id and drive.drive_type == "business"
    assert drive.owner.user.id == uid and drive.quota.total > 0
    again = await target_client.drives.by_drive_id(fresh_drive_id).get()
    clean(again)
    root = await target_client.drives.by_drive_id(fresh_drive_id).root.get()
    clean_item(root)
    assert root.root is not None and root.folder.child_count == 0
    assert again.id == drive.id and again.quota.remaining == again.quota.total - again.quota.used
    drives = await target_client.users.by_user_id(uid).drives.get()
    clean(drives)
    assert [d.id for d in drives.value] == [fresh_drive_id]


async def test_sdk_unlicensed_user_drive_is_odata_error(target_client, target):
    user = make_user(target)
    with pytest.raises(ODataError) as info:
        await target_client.users.by_user_id(user["id"]).drive.get()
    assert info.value.response_status_code == 404
    assert info.value.error.code == "ResourceNotFound" and "mysite" in info.value.error.message


async def test_sdk_sites_and_libraries(source_client, site_name):
    found = await source_client.sites.get(RequestConfiguration(query_parameters=_sites_query(site_name)))
    clean(found)
    site = next(s for s in found.value if s.name == site_name)
    got = await source_client.sites.by_site_id(site.id).get()
    clean(got)
    assert got.id == site.id and got.site_collection.hostname == site.id.split(",")[0]
    by_path = await source_client.sites.by_site_id(
        f"{got.site_collection.hostname}:/sites/{site_name}:"
    ).get()
    clean(by_path)
    assert by_path.id == site.id
    drives = await source_client.sites.by_site_id(site.id).drives.get()
    clean(drives)
    assert drives.value and all(d.drive_type == "documentLibrary" for d in drives.value)
    default = await source_client.sites.by_site_id(site.id).drive.get()
    clean(default)
    assert default.id in [d.id for d in drives.value]
    one = await source_client.sites.by_site_id(site.id).drives.by_drive_id(default.id).get()
    clean(one)
    assert one.id == default.id and one.web_url == default.web_url
    assert default.owner.user.display_name == "System Account"


def _sites_query(search: str) -> SitesRequestBuilder.SitesRequestBuilderGetQueryParameters:
    return SitesRequestBuilder.SitesRequestBuilderGetQueryParameters(search=search)


async def test_sdk_children_paging_and_item_by_path(source_client, site_name):
    found = await source_client.sites.get(RequestConfiguration(query_parameters=_sites_query(site_name)))
    site = next(s for s in found.value if s.name == site_name)
    drive = await source_client.sites.by_site_id(site.id).drive.get()
    items = source_client.drives.by_drive_id(drive.id).items
    config = RequestConfiguration(
        query_parameters=ChildrenRequestBuilder.ChildrenRequestBuilderGetQueryParameters(top=2)
    )
    page = await items.by_drive_item_id("root").children.get(config)
    clean(page, DOWNLOAD)
    for item in page.value:
        clean_item(item)
    names = [i.name for i in page.value]
    assert len(names) == 2 and page.odata_next_link
    while page.odata_next_link:
        page = await items.by_drive_item_id("root").children.with_url(page.odata_next_link).get()
        for item in page.value:
            clean_item(item)
        names += [i.name for i in page.value]
    assert {"Policies", "Curriculum", "Admin"} <= set(names)
    policies = await items.by_drive_item_id("root:/Policies:").get()
    clean_item(policies)
    assert policies.folder.child_count >= 3 and policies.parent_reference.drive_id == drive.id
    term = await items.by_drive_item_id("root:/Policies/Term Dates 2024-25.pdf:").get()
    clean_item(term)
    assert term.size == 48_211 and term.file.hashes.quick_xor_hash
    assert term.file_system_info.created_date_time.tzinfo is not None
    kids = await items.by_drive_item_id(policies.id).children.get()
    for item in kids.value:
        clean_item(item)
    assert term.id in [k.id for k in kids.value]
    with pytest.raises(ODataError) as info:
        await items.by_drive_item_id("root:/Policies/Nope.pdf:").get()
    assert info.value.response_status_code == 404 and info.value.error.code == "itemNotFound"


async def test_sdk_folder_create_upload_patch_delete(target_client, fresh_drive_id):
    items = target_client.drives.by_drive_id(fresh_drive_id).items
    folder = DriveItem(name="Marking", folder=Folder())
    folder.additional_data = {CONFLICT: "fail"}
    created = await items.by_drive_item_id("root").children.post(folder)
    clean_item(created)
    assert created.folder.child_count == 0
    with pytest.raises(ODataError) as info:
        await items.by_drive_item_id("root").children.post(folder)
    assert info.value.response_status_code == 409 and info.value.error.code == "nameAlreadyExists"

    uploaded = await items.by_drive_item_id(f"{created.id}:/notes.txt:").content.put(b"hello sandbox")
    clean_item(uploaded)
    assert uploaded.size == 13 and uploaded.parent_reference.id == created.id
    stamp = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    patched = await items.by_drive_item_id(uploaded.id).patch(
        DriveItem(
            name="renamed.txt",
            parent_reference=ItemReference(id=(await items.by_drive_item_id("root").get()).id),
            file_system_info=FileSystemInfo(created_date_time=stamp, last_modified_date_time=stamp),
        )
    )
    clean_item(patched)
    assert patched.name == "renamed.txt" and patched.file_system_info.last_modified_date_time == stamp
    assert patched.parent_reference.id != created.id
    content = await items.by_drive_item_id(uploaded.id).content.get()
    assert content == b"hello sandbox"
    await items.by_drive_item_id(uploaded.id).delete()
    with pytest.raises(ODataError) as info:
        await items.by_drive_item_id(uploaded.id).get()
    assert info.value.response_status_code == 404


async def test_sdk_create_upload_session(target_client, fresh_drive_id):
    items = target_client.drives.by_drive_id(fresh_drive_id).items
    stamp = datetime(2018, 6, 7, 8, 9, 10, tzinfo=UTC)
    props = DriveItemUploadableProperties(
        name="video.mp4",
        file_system_info=FileSystemInfo(created_date_time=stamp, last_modified_date_time=stamp),
    )
    props.additional_data = {CONFLICT: "fail"}
    session = await items.by_drive_item_id("root:/video.mp4:").create_upload_session.post(
        CreateUploadSessionPostRequestBody(item=props)
    )
    clean(session)
    assert session.upload_url and session.next_expected_ranges == ["0-"]
    assert session.expiration_date_time > datetime.now(UTC)
    data = bytes(n % 253 for n in range(CHUNK + 1000))
    # Fragments go to the pre-authenticated URL with a plain client: no Authorization header.
    async with httpx.AsyncClient(timeout=30) as plain:
        r = await plain.put(
            session.upload_url,
            content=data[:CHUNK],
            headers={"Content-Range": f"bytes 0-{CHUNK - 1}/{len(data)}"},
        )
        assert r.status_code == 202
        progress = parse(r.content, UploadSession)
        clean(progress)
        assert progress.next_expected_ranges == [f"{CHUNK}-{len(data) - 1}"]
        status = parse((await plain.get(session.upload_url)).content, UploadSession)
        clean(status)
        assert status.next_expected_ranges == progress.next_expected_ranges
        r = await plain.put(
            session.upload_url,
            content=data[CHUNK:],
            headers={"Content-Range": f"bytes {CHUNK}-{len(data) - 1}/{len(data)}"},
        )
        assert r.status_code == 201
    final = parse(r.content, DriveItem)
    clean_item(final)
    item = await items.by_drive_item_id(final.id).get()
    clean_item(item)
    h = quickxorhash()
    h.update(data)
    assert item.file.hashes.quick_xor_hash == base64.b64encode(h.digest()).decode()
    assert item.file_system_info.created_date_time == stamp and item.size == len(data)


async def test_sdk_drive_delta(target_client, target, fresh_drive_id):
    items = target_client.drives.by_drive_id(fresh_drive_id).items
    for n in range(3):
        r = target.put(f"/drives/{fresh_drive_id}/root:/d{n}.txt:/content", content=b"d")
        assert r.status_code == 201
    page = await items.by_drive_item_id("root").delta.get()
    clean(page, DOWNLOAD)
    seen = []
    while True:
        for item in page.value:
            clean_item(item)
            seen.append(item.name)
        if not page.odata_next_link:
            break
        page = await items.by_drive_item_id("root").delta.with_url(page.odata_next_link).get()
    assert page.odata_delta_link and sorted(seen) == ["d0.txt", "d1.txt", "d2.txt", "root"]
    gone = target.get(f"/drives/{fresh_drive_id}/root:/d1.txt").json()["id"]
    assert target.delete(f"/drives/{fresh_drive_id}/items/{gone}").status_code == 204
    changes = await items.by_drive_item_id("root").delta.with_url(page.odata_delta_link).get()
    for item in changes.value:
        clean_item(item)
    deleted = next(i for i in changes.value if i.id == gone)
    assert deleted.deleted.state == "deleted"
    latest = await items.by_drive_item_id("root").delta_with_token("latest").get()
    clean(latest)
    assert latest.value == [] and latest.odata_delta_link


async def test_sdk_upload_session_uploadable_properties_only(target_client, fresh_drive_id):
    """An empty request body is accepted too (the SDK sends {} when no item is given)."""
    items = target_client.drives.by_drive_id(fresh_drive_id).items
    session = await items.by_drive_item_id(f"root:/{uuid.uuid4().hex}.bin:").create_upload_session.post(
        CreateUploadSessionPostRequestBody()
    )
    clean(session)
    assert session.upload_url
