"""msgraph-sdk's mail request builders (admin/exchange/mailboxes/..., users/{id}/settings/exchange) against
the sandbox: each answer deserialises into the pinned SDK's models, with no unknown properties beyond the
ones Graph itself sends (parentMailboxUrl on folders; the archive id the beta resource names), and an import
through the importUrl with plain HTTP, as the mail phase does it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.admin.exchange.mailboxes.item.export_items.export_items_post_request_body import (
    ExportItemsPostRequestBody,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core import GraphClientFactory

from migrations.graph.sandbox_credential import AsyncSandboxCredential
from tests.sandbox.test_sdk import clean

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def _client(sandbox_url: str, tenant_id: str) -> tuple[GraphServiceClient, httpx.AsyncClient, object]:
    cred = AsyncSandboxCredential(sandbox_url, tenant_id)
    auth = AzureIdentityAuthenticationProvider(
        cred, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(timeout=30),
        options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)},
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{sandbox_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter), http, cred


@pytest.fixture
async def source_sdk(sandbox_url, source_id) -> AsyncIterator[GraphServiceClient]:
    client, http, cred = await _client(sandbox_url, source_id)
    yield client
    await http.aclose()
    await cred.close()  # type: ignore[attr-defined]


def _boxes(sandbox_url: str, tid: str) -> list[dict]:
    return list(httpx.get(f"{sandbox_url}/sandbox/tenants/{tid}/mail/mailboxes").json()["mailboxes"])


async def test_sdk_exchange_settings_folders_delta_and_export(source_sdk, sandbox_url, source_id) -> None:
    boxes = _boxes(sandbox_url, source_id)
    head = next(m["owner"] for m in boxes if m["kind"] == "archive")
    settings = await source_sdk.users.by_user_id(head).settings.exchange.get()
    assert settings is not None and settings.primary_mailbox_id
    clean(settings, {"inPlaceArchiveMailboxId"})
    mailbox = source_sdk.admin.exchange.mailboxes.by_mailbox_id(settings.primary_mailbox_id)
    folders = await mailbox.folders.get()
    assert folders is not None and folders.value
    for f in folders.value:
        clean(f, {"parentMailboxUrl"})
    inbox = next(f for f in folders.value if f.well_known_name == "inbox")
    assert inbox.type == "IPF.Note" and inbox.total_item_count
    fdelta = await mailbox.folders.delta.get()
    assert fdelta is not None and fdelta.value
    config = RequestConfiguration()
    config.headers.add("Prefer", "odata.maxpagesize=5")
    items = await mailbox.folders.by_mailbox_folder_id(inbox.id).items.delta.get(request_configuration=config)
    assert items is not None and items.value and items.odata_next_link
    for it in items.value:
        clean(it, {"@odata.etag"})
    ids = [it.id for it in items.value[:3]]
    exported = await mailbox.export_items.post(ExportItemsPostRequestBody(item_ids=ids))
    assert exported is not None and [e.item_id for e in exported.value] == ids
    for e in exported.value:
        clean(e)
        assert e.change_key and e.data


async def test_sdk_import_session_and_plain_http_import(source_sdk, sandbox_url, source_id) -> None:
    boxes = _boxes(sandbox_url, source_id)
    head = next(m["owner"] for m in boxes if m["kind"] == "archive")
    src_box = next(m["id"] for m in boxes if m["kind"] == "primary" and m["owner"] == head)
    src = source_sdk.admin.exchange.mailboxes.by_mailbox_id(src_box)
    inbox = next(f for f in (await src.folders.get()).value if f.well_known_name == "inbox")
    one = (await src.folders.by_mailbox_folder_id(inbox.id).items.get()).value[0]
    exported = (await src.export_items.post(ExportItemsPostRequestBody(item_ids=[one.id]))).value[0]
    # The SDK reads `data` as bytes (base64-decoded); the import body wants it base64 again.
    data = exported.data if isinstance(exported.data, str) else base64.b64encode(exported.data).decode()
    # A shared mailbox of the same tenant is an import target too (items may go to another mailbox).
    shared = next(m["id"] for m in boxes if m["kind"] == "shared")
    dst = source_sdk.admin.exchange.mailboxes.by_mailbox_id(shared)
    session = await dst.create_import_session.post()
    assert session is not None and session.import_url and session.expiration_date_time
    clean(session)
    dst_inbox = next(f for f in (await dst.folders.get()).value if f.well_known_name == "inbox")
    r = httpx.post(session.import_url, json={"FolderId": dst_inbox.id, "Mode": "create", "Data": data})
    assert r.status_code == 200, r.text
    assert set(r.json()) >= {"itemId", "changeKey"}


async def test_sdk_errors_are_odata_errors(source_sdk) -> None:
    with pytest.raises(ODataError) as caught:
        await source_sdk.admin.exchange.mailboxes.by_mailbox_id("MBX:00000000@00000000").folders.get()
    assert caught.value.response_status_code == 404
    assert caught.value.error is not None and caught.value.error.code == "ErrorMailboxNotFound"
