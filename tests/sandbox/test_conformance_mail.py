"""The sandbox's Exchange mailboxes against Microsoft's pages (docs/sandbox.md, "Mail"): exchangeSettings,
mailbox folders and items with delta, exportItems, import sessions and the import URL, application
permissions, the Outlook limits, mailbox provisioning after a licence, shared and archive mailboxes, and the
ordinary mail, calendar and contact reads over the same items."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sandbox import mail_state as ms
from sandbox.mail_limits import MailboxLimiter, OutlookLimits
from sandbox.settings import Budget
from sandbox.testing import SandboxURL, graph_client, running_sandbox, token
from tests.sandbox.conftest import CONFIG, error_of, make_user


@pytest.fixture(scope="module")
def url() -> Iterator[SandboxURL]:
    # Throttling on: the Outlook limits are part of what is tested (relaxed per test through /sandbox/mail).
    with running_sandbox(CONFIG, size=60, seed=7, throttling=True) as base:
        yield base


@pytest.fixture(scope="module")
def tids(url: SandboxURL) -> dict[str, str]:
    ts = httpx.get(f"{url}/sandbox/tenants").json()
    return {
        "target": next(t["id"] for t in ts if t["role"] == "target"),
        "source": next(t["id"] for t in ts if t["role"] == "source"),
    }


@pytest.fixture
def src(url: SandboxURL, tids: dict[str, str]) -> Iterator[httpx.Client]:
    with graph_client(url, tids["source"]) as c:
        yield c


@pytest.fixture
def tgt(url: SandboxURL, tids: dict[str, str]) -> Iterator[httpx.Client]:
    with graph_client(url, tids["target"]) as c:
        yield c


@pytest.fixture(autouse=True)
def default_limits(url: SandboxURL) -> Iterator[None]:
    yield
    r = httpx.post(
        f"{url}/sandbox/mail/limits",
        json={
            "outlook_requests": "10000/600",
            "outlook_concurrency": 4,
            "outlook_upload": f"{150 * 1024 * 1024}/300",
            "mail_provision_delay_s": 2.0,
            "mail_import_session_s": 900.0,
        },
    )
    assert r.status_code == 200, r.text


OTHER_APP = "00000000-0000-0000-0000-0000000000b2"


def admin(url: str, tid: str) -> str:
    return f"{url}/sandbox/tenants/{tid}/mail"


def mailboxes(url: str, tid: str) -> list[dict[str, Any]]:
    r = httpx.get(admin(url, tid) + "/mailboxes")
    assert r.status_code == 200, r.text
    return list(r.json()["mailboxes"])


def a_mailbox(url: str, tid: str, kind: str = "primary", with_items: bool = True) -> dict[str, Any]:
    """The first member of staff's primary (it holds the hostile items; its owner has the archive), else the
    first of its kind."""
    boxes = mailboxes(url, tid)
    if kind == "primary" and with_items:
        head = next(m["owner"] for m in boxes if m["kind"] == "archive")
        return next(m for m in boxes if m["kind"] == "primary" and m["owner"] == head)
    return next(m for m in boxes if m["kind"] == kind and (m["items"] > 0) == with_items)


def fresh_mailbox(client: httpx.Client, url: str) -> dict[str, Any]:
    """A new licensed user in the tenant and its (empty) primary mailbox, provisioned at once."""
    httpx.post(f"{url}/sandbox/mail/limits", json={"mail_provision_delay_s": 0}).raise_for_status()
    user = make_user(client, usageLocation="GB")
    sku = client.get("/subscribedSkus").json()["value"][0]["skuId"]
    r = client.post(
        f"/users/{user['id']}/assignLicense", json={"addLicenses": [{"skuId": sku}], "removeLicenses": []}
    )
    assert r.status_code == 200, r.text
    r = client.get(f"/users/{user['id']}/settings/exchange")
    assert r.status_code == 200, r.text
    return {"id": r.json()["primaryMailboxId"], "owner": user["id"]}


def admin_delete(url: str) -> httpx.Response:
    # The admin API changes nothing without a declared JSON body (sandbox/local_only.py).
    return httpx.request("DELETE", url, headers={"Content-Type": "application/json"})


def admin_items(url: str, tid: str, mbx: str, folder: str | None = None) -> list[dict[str, Any]]:
    r = httpx.get(admin(url, tid) + f"/mailboxes/{mbx}/items", params={"folder": folder} if folder else None)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def folders(client: httpx.Client, mbx: str) -> list[dict[str, Any]]:
    r = client.get(f"/admin/exchange/mailboxes/{mbx}/folders", params={"$top": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def well_known(client: httpx.Client, mbx: str, name: str) -> dict[str, Any]:
    return next(f for f in folders(client, mbx) if f["wellKnownName"] == name)


def drain_delta(client: httpx.Client, first: str, prefer: int | None = None) -> tuple[list[dict], str, int]:
    """(every object of the round, the deltaLink, pages)."""
    headers = {"Prefer": f"odata.maxpagesize={prefer}"} if prefer else {}
    out: list[dict[str, Any]] = []
    link, pages = first, 0
    while True:
        r = client.get(link, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        out.extend(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return out, body["@odata.deltaLink"], pages
        link = body["@odata.nextLink"]


def import_session(client: httpx.Client, mbx: str) -> dict[str, Any]:
    r = client.post(f"/admin/exchange/mailboxes/{mbx}/createImportSession")
    assert r.status_code == 200, r.text
    return dict(r.json())


def export(client: httpx.Client, mbx: str, ids: list[str]) -> httpx.Response:
    return client.post(f"/admin/exchange/mailboxes/{mbx}/exportItems", json={"itemIds": ids})


# ---- exchangeSettings and provisioning ---------------------------------------------------------------------
def test_exchange_settings_names_the_primary_mailbox_and_the_archive(src, url, tids) -> None:
    """usersettings-list-exchange: primaryMailboxId; the archive (beta's inPlaceArchiveMailboxId) when one
    exists."""
    arch = a_mailbox(url, tids["source"], "archive")
    r = src.get(f"/users/{arch['owner']}/settings/exchange")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["primaryMailboxId"].startswith("MBX:") and "@" in body["primaryMailboxId"]
    assert body["inPlaceArchiveMailboxId"] == arch["id"]
    plain = a_mailbox(url, tids["source"], "primary", with_items=False)
    body = src.get(f"/users/{plain['owner']}/settings/exchange").json()
    assert body["primaryMailboxId"] == plain["id"] and "inPlaceArchiveMailboxId" not in body


def test_a_user_without_an_exchange_licence_has_no_mailbox(tgt) -> None:
    """MailboxNotEnabledForRESTAPI (404) for a user with no Exchange plan."""
    user = make_user(tgt)
    r = tgt.get(f"/users/{user['id']}/settings/exchange")
    assert r.status_code == 404
    assert error_of(r)["code"] == "MailboxNotEnabledForRESTAPI"
    r = tgt.get(f"/users/{user['id']}/mailFolders")
    assert r.status_code == 404 and error_of(r)["code"] == "MailboxNotEnabledForRESTAPI"


def test_mailbox_appears_only_after_provisioning_following_the_licence(tgt, url) -> None:
    """Exchange creates the mailbox in the background after the licence: 404 until then."""
    httpx.post(f"{url}/sandbox/mail/limits", json={"mail_provision_delay_s": 3600}).raise_for_status()
    user = make_user(tgt, usageLocation="GB")
    sku = tgt.get("/subscribedSkus").json()["value"][0]["skuId"]
    r = tgt.post(
        f"/users/{user['id']}/assignLicense", json={"addLicenses": [{"skuId": sku}], "removeLicenses": []}
    )
    assert r.status_code == 200, r.text
    r = tgt.get(f"/users/{user['id']}/settings/exchange")
    assert r.status_code == 404 and error_of(r)["code"] == "MailboxNotEnabledForRESTAPI"
    httpx.post(f"{url}/sandbox/mail/limits", json={"mail_provision_delay_s": 0}).raise_for_status()
    r = tgt.get(f"/users/{user['id']}/settings/exchange")
    assert r.status_code == 200, r.text
    assert tgt.get(f"/admin/exchange/mailboxes/{r.json()['primaryMailboxId']}/folders").status_code == 200


def test_shared_mailboxes_belong_to_disabled_unlicensed_users(src, url, tids) -> None:
    shared = [m for m in mailboxes(url, tids["source"]) if m["kind"] == "shared"]
    assert {m["address"].split("@")[0] for m in shared} >= {"office", "admissions"}
    owner = src.get(
        f"/users/{shared[0]['owner']}", params={"$select": "accountEnabled,assignedLicenses"}
    ).json()
    assert owner["accountEnabled"] is False and owner["assignedLicenses"] == []
    r = src.get(f"/users/{shared[0]['owner']}/settings/exchange")
    assert r.status_code == 200 and r.json()["primaryMailboxId"] == shared[0]["id"]


def test_archive_mailboxes_are_refused_by_the_import_export_api(src, url, tids) -> None:
    """The v1.0 overview supports primary and shared mailboxes only."""
    arch = a_mailbox(url, tids["source"], "archive")
    r = src.get(f"/admin/exchange/mailboxes/{arch['id']}/folders")
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorInvalidMailboxType"


def test_unknown_mailbox_is_404(src) -> None:
    r = src.get("/admin/exchange/mailboxes/MBX:00000000@00000000/folders")
    assert r.status_code == 404 and error_of(r)["code"] == "ErrorMailboxNotFound"


# ---- folders -----------------------------------------------------------------------------------------------
def test_folders_are_the_well_known_ones_with_classes_and_user_folders_below(src, url, tids) -> None:
    """mailbox-list-folders: folders under the root with type and wellKnownName; childFolders below."""
    mbx = a_mailbox(url, tids["source"])["id"]
    top = folders(src, mbx)
    by_name = {f["wellKnownName"]: f for f in top if f["wellKnownName"]}
    assert by_name["inbox"]["type"] == "IPF.Note"
    assert by_name["calendar"]["type"] == "IPF.Appointment"
    assert by_name["contacts"]["type"] == "IPF.Contact"
    assert by_name["tasks"]["type"] == "IPF.Task"
    assert {"sentitems", "drafts", "deleteditems", "archive", "junkemail"} <= set(by_name)
    assert all(f["parentFolderId"] == top[0]["parentFolderId"] for f in top)
    r = src.get(f"/admin/exchange/mailboxes/{mbx}/folders/{by_name['inbox']['id']}/childFolders")
    assert {f["displayName"] for f in r.json()["value"]} >= {"Parents", "SLT"}
    r = src.get(f"/admin/exchange/mailboxes/{mbx}/folders", params={"$filter": "type eq 'IPF.Appointment'"})
    assert [f["wellKnownName"] for f in r.json()["value"]] == ["calendar"]


def test_folder_create_conflict_and_distinguished_folders(tgt, url, tids) -> None:
    mbx = fresh_mailbox(tgt, url)["id"]
    r = tgt.post(
        f"/admin/exchange/mailboxes/{mbx}/folders", json={"displayName": "Migrated", "type": "IPF.Note"}
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["wellKnownName"] is None and made["type"] == "IPF.Note"
    r = tgt.post(f"/admin/exchange/mailboxes/{mbx}/folders", json={"displayName": "migrated"})
    assert r.status_code == 409 and error_of(r)["code"] == "ErrorFolderExists"
    r = tgt.post(
        f"/admin/exchange/mailboxes/{mbx}/folders/{made['id']}/childFolders", json={"displayName": "Sub"}
    )
    assert r.status_code == 201 and r.json()["parentFolderId"] == made["id"]
    inbox = well_known(tgt, mbx, "inbox")
    r = tgt.delete(f"/admin/exchange/mailboxes/{mbx}/folders/{inbox['id']}")
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorDeleteDistinguishedFolder"
    assert tgt.delete(f"/admin/exchange/mailboxes/{mbx}/folders/{made['id']}").status_code == 204


def test_folder_delta_reports_new_and_deleted_folders(tgt, url, tids) -> None:
    mbx = fresh_mailbox(tgt, url)["id"]
    first, link, _ = drain_delta(tgt, f"/admin/exchange/mailboxes/{mbx}/folders/delta", prefer=4)
    assert {f["wellKnownName"] for f in first} >= {"inbox", "calendar", "contacts"}
    made = tgt.post(f"/admin/exchange/mailboxes/{mbx}/folders", json={"displayName": "Delta me"}).json()
    again, link, _ = drain_delta(tgt, link)
    assert [f["id"] for f in again] == [made["id"]]
    tgt.delete(f"/admin/exchange/mailboxes/{mbx}/folders/{made['id']}").raise_for_status()
    gone, _, _ = drain_delta(tgt, link)
    assert gone == [{"id": made["id"], "@removed": {"reason": "deleted"}}]


# ---- items and delta ---------------------------------------------------------------------------------------
def test_item_delta_pages_then_reports_adds_changes_and_deletions(src, url, tids) -> None:
    """mailboxitem-delta: nextLink pages (Prefer: odata.maxpagesize), a deltaLink, then only the changes;
    deletions as @removed."""
    mbx = a_mailbox(url, tids["source"])["id"]
    inbox = well_known(src, mbx, "inbox")
    base = f"/admin/exchange/mailboxes/{mbx}/folders/{inbox['id']}/items/delta"
    items, link, pages = drain_delta(src, base, prefer=3)
    assert len(items) == inbox["totalItemCount"] and pages > 1
    assert {i["type"] for i in items} == {"IPM.Note"}
    assert all(i["changeKey"] and i["size"] > 0 for i in items)
    root = admin(url, tids["source"]) + f"/mailboxes/{mbx}/items"
    added = httpx.post(
        root, json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "new"}}
    ).json()
    changed = httpx.patch(f"{root}/{items[0]['id']}", json={"props": {"subject": "edited"}}).json()
    assert changed["changeKey"] != items[0]["changeKey"]
    assert admin_delete(f"{root}/{items[1]['id']}").status_code == 204
    diff, _, _ = drain_delta(src, link)
    assert {d["id"] for d in diff if "@removed" not in d} == {added["id"], items[0]["id"]}
    assert [d for d in diff if "@removed" in d] == [{"id": items[1]["id"], "@removed": {"reason": "deleted"}}]


def test_a_stale_delta_token_is_gone(src, url, tids) -> None:
    mbx = a_mailbox(url, tids["source"])["id"]
    inbox = well_known(src, mbx, "inbox")
    _, link, _ = drain_delta(src, f"/admin/exchange/mailboxes/{mbx}/folders/{inbox['id']}/items/delta", 50)
    httpx.post(admin(url, tids["source"]) + "/expire", json={"delta": True}).raise_for_status()
    r = src.get(link)
    assert r.status_code == 410 and error_of(r)["code"] == "SyncStateNotFound"


# ---- export ------------------------------------------------------------------------------------------------
def _check_stream(data: str) -> bytes:
    raw = base64.b64decode(data)
    body, _, digest = raw.rpartition(b"\n")
    assert hashlib.sha256(body + b"\n").hexdigest().encode() == digest
    return raw


def test_export_items_answers_opaque_checkable_streams_and_per_item_errors(src, url, tids) -> None:
    mbx = a_mailbox(url, tids["source"])
    items = admin_items(url, tids["source"], mbx["id"])[:2]
    r = export(src, mbx["id"], [items[0]["id"], "AAAAnotthere=", items[1]["id"]])
    assert r.status_code == 200, r.text
    value = r.json()["value"]
    assert [v["itemId"] for v in value] == [items[0]["id"], "AAAAnotthere=", items[1]["id"]]
    assert value[0]["changeKey"] == items[0]["changeKey"]
    _check_stream(value[0]["data"])
    assert value[1]["error"]["code"] == "ErrorItemNotFound" and "data" not in value[1]


def test_export_takes_at_most_twenty_ids(src, url, tids) -> None:
    mbx = a_mailbox(url, tids["source"])
    ids = [i["id"] for i in admin_items(url, tids["source"], mbx["id"])][:21]
    assert len(ids) == 21
    r = export(src, mbx["id"], ids)
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorInvalidRequest"
    assert export(src, mbx["id"], ids[:20]).status_code == 200
    assert export(src, mbx["id"], []).status_code == 400


# ---- import ------------------------------------------------------------------------------------------------
def _one_export(src: httpx.Client, url: str, tid: str, cls: str = "IPM.Note") -> tuple[dict, str]:
    mbx = a_mailbox(url, tid)
    item = next(i for i in admin_items(url, tid, mbx["id"]) if i["type"] == cls)
    return item, export(src, mbx["id"], [item["id"]]).json()["value"][0]["data"]


def test_import_create_then_update_with_change_keys(src, tgt, url, tids) -> None:
    """import-exchange-mailbox-item: create answers itemId and changeKey; update needs the current
    ChangeKey (a stale one is ErrorIrresolvableConflict); create refuses ItemId."""
    item, data = _one_export(src, url, tids["source"])
    mbx = fresh_mailbox(tgt, url)["id"]
    inbox = well_known(tgt, mbx, "inbox")
    session = import_session(tgt, mbx)
    assert session["importUrl"].startswith(str(url)) and session["expirationDateTime"].endswith("Z")
    up = httpx.post(session["importUrl"], json={"FolderId": inbox["id"], "Mode": "create", "Data": data})
    assert up.status_code == 200, up.text
    made = up.json()
    assert made["itemId"] and made["changeKey"]
    owner = next(m["owner"] for m in mailboxes(url, tids["target"]) if m["id"] == mbx)
    msg = tgt.get(f"/users/{owner}/messages/{made['itemId']}").json()
    assert msg["subject"] == item["props"]["subject"] and msg["body"] == item["props"]["body"]
    r = httpx.post(
        session["importUrl"],
        json={"FolderId": inbox["id"], "Mode": "create", "Data": data, "ItemId": made["itemId"]},
    )
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorInvalidRequest"
    upd = {"FolderId": inbox["id"], "Mode": "update", "Data": data, "ItemId": made["itemId"]}
    r = httpx.post(session["importUrl"], json={**upd, "ChangeKey": made["changeKey"]})
    assert r.status_code == 200, r.text
    assert r.json()["itemId"] == made["itemId"] and r.json()["changeKey"] != made["changeKey"]
    r = httpx.post(session["importUrl"], json={**upd, "ChangeKey": made["changeKey"]})
    assert r.status_code == 409 and error_of(r)["code"] == "ErrorIrresolvableConflict"


def test_import_refuses_altered_streams_wrong_folders_and_bearer_tokens(src, tgt, url, tids) -> None:
    _, data = _one_export(src, url, tids["source"])
    mbx = fresh_mailbox(tgt, url)["id"]
    inbox = well_known(tgt, mbx, "inbox")
    contacts = well_known(tgt, mbx, "contacts")
    url_ = import_session(tgt, mbx)["importUrl"]
    raw = bytearray(base64.b64decode(data))
    raw[len(raw) // 2] ^= 1
    r = httpx.post(
        url_, json={"FolderId": inbox["id"], "Mode": "create", "Data": base64.b64encode(raw).decode()}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorCorruptData"
    r = httpx.post(url_, json={"FolderId": inbox["id"], "Mode": "create", "Data": data[: len(data) // 2]})
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorCorruptData"
    r = httpx.post(url_, json={"FolderId": contacts["id"], "Mode": "create", "Data": data})
    assert r.status_code == 400 and error_of(r)["code"] == "ErrorInvalidRequest"
    r = httpx.post(url_, json={"FolderId": "nope", "Mode": "create", "Data": data})
    assert r.status_code == 404 and error_of(r)["code"] == "ErrorFolderNotFound"
    r = httpx.post(url_, json={"FolderId": inbox["id"], "Mode": "merge", "Data": data})
    assert r.status_code == 400
    r = httpx.post(
        url_,
        json={"FolderId": inbox["id"], "Mode": "create", "Data": data},
        headers={"Authorization": tgt.headers["Authorization"]},
    )
    assert r.status_code == 401


def test_an_expired_import_url_answers_401_and_a_new_session_works(src, tgt, url, tids) -> None:
    _, data = _one_export(src, url, tids["source"])
    mbx = fresh_mailbox(tgt, url)["id"]
    inbox = well_known(tgt, mbx, "inbox")
    old = import_session(tgt, mbx)["importUrl"]
    httpx.post(admin(url, tids["target"]) + "/expire", json={"sessions": True}).raise_for_status()
    r = httpx.post(old, json={"FolderId": inbox["id"], "Mode": "create", "Data": data})
    assert r.status_code == 401 and error_of(r)["code"] == "InvalidAuthenticationToken"
    new = import_session(tgt, mbx)["importUrl"]
    assert httpx.post(new, json={"FolderId": inbox["id"], "Mode": "create", "Data": data}).status_code == 200


def test_hostile_items_round_trip_exactly(src, tgt, url, tids) -> None:
    """Noncharacters, header injection and script survive export and import byte for byte."""
    mbx = a_mailbox(url, tids["source"])
    hostile = [
        i
        for i in admin_items(url, tids["source"], mbx["id"], "inbox")
        if "\r\n" in (i["props"].get("subject") or "")
    ]
    odd = [
        i
        for i in admin_items(url, tids["source"], mbx["id"], "inbox")
        if "\ufffe" in (i["props"].get("subject") or "")
    ]
    assert hostile and odd
    target = fresh_mailbox(tgt, url)
    inbox = well_known(tgt, target["id"], "inbox")
    session = import_session(tgt, target["id"])
    for item in (hostile[0], odd[0]):
        data = export(src, mbx["id"], [item["id"]]).json()["value"][0]["data"]
        made = httpx.post(
            session["importUrl"], json={"FolderId": inbox["id"], "Mode": "create", "Data": data}
        )
        assert made.status_code == 200, made.text
        msg = tgt.get(f"/users/{target['owner']}/messages/{made.json()['itemId']}").json()
        assert msg["subject"] == item["props"]["subject"]


def test_large_items_stream_through_export_and_import(src, tgt, url, tids) -> None:
    """A lazily made attachment of a few MB (the 150 MB one is bench scale) exports and imports whole."""
    mbx = a_mailbox(url, tids["source"])
    blob = {"name": "big.bin", "contentType": "application/octet-stream", "size": 3_000_001, "seed": "t"}
    made = httpx.post(
        admin(url, tids["source"]) + f"/mailboxes/{mbx['id']}/items",
        json={"folder": "inbox", "props": {"class": "IPM.Note", "subject": "big", "blob": blob}},
    ).json()
    data = export(src, mbx["id"], [made["id"]]).json()["value"][0]["data"]
    assert len(_check_stream(data)) > 3_000_001
    target = fresh_mailbox(tgt, url)
    inbox = well_known(tgt, target["id"], "inbox")
    session = import_session(tgt, target["id"])
    r = httpx.post(session["importUrl"], json={"FolderId": inbox["id"], "Mode": "create", "Data": data})
    assert r.status_code == 200, r.text
    msg = tgt.get(f"/users/{target['owner']}/messages/{r.json()['itemId']}").json()
    assert msg["hasAttachments"] is True


def test_items_over_the_message_size_limit_are_refused() -> None:
    mbx = ms.MailStore("t").create_mailbox("u", "primary", "U", "u@x")
    props = {"class": "IPM.Note", "blob": {"size": ms.MAX_MESSAGE_BYTES, "seed": "s"}}
    with pytest.raises(ms.GraphError) as caught:
        ms.add_item(mbx, "inbox", props)
    assert caught.value.code == "ErrorMessageSizeExceeded"


# ---- permissions -------------------------------------------------------------------------------------------
def test_export_needs_an_export_role_and_import_the_import_export_role(url, tids) -> None:
    tid = tids["source"]
    mbx = a_mailbox(url, tid)
    item = admin_items(url, tid, mbx["id"])[0]
    roles = f"{url}/sandbox/tenants/{tid}/roles"
    try:
        httpx.post(roles, json={"withhold": ["MailboxItem.ImportExport.All"]}).raise_for_status()
        with graph_client(url, tid) as c:
            assert export(c, mbx["id"], [item["id"]]).status_code == 200  # MailboxItem.Export.All suffices
            r = c.post(f"/admin/exchange/mailboxes/{mbx['id']}/createImportSession")
            assert r.status_code == 403 and error_of(r)["code"] == "Authorization_RequestDenied"
        httpx.post(
            roles, json={"withhold": ["MailboxItem.ImportExport.All", "MailboxItem.Export.All"]}
        ).raise_for_status()
        with graph_client(url, tid) as c:
            r = export(c, mbx["id"], [item["id"]])
            assert r.status_code == 403 and error_of(r)["code"] == "Authorization_RequestDenied"
        httpx.post(roles, json={"withhold": ["MailboxItem.Read.All"]}).raise_for_status()
        with graph_client(url, tid) as c:
            inbox = well_known(c, mbx["id"], "inbox")
            r = c.get(f"/admin/exchange/mailboxes/{mbx['id']}/folders/{inbox['id']}/items/delta")
            assert r.status_code == 403
    finally:
        httpx.post(roles, json={"reset": True}).raise_for_status()


def test_exchange_settings_need_user_read_all(url, tids) -> None:
    """usersettings-list-exchange: application User.Read.All (least privileged) or User.ReadWrite.All; the
    mailbox-settings roles are not asked for (a sandbox that did would make the mail phase over-ask)."""
    tid = tids["source"]
    mbx = a_mailbox(url, tid)
    roles = f"{url}/sandbox/tenants/{tid}/roles"
    try:
        httpx.post(roles, json={"withhold": ["MailboxSettings.Read", "MailboxSettings.ReadWrite"]})
        with graph_client(url, tid) as c:
            assert c.get(f"/users/{mbx['owner']}/settings/exchange").status_code == 200
        httpx.post(roles, json={"withhold": ["User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
                                             "Directory.ReadWrite.All"]})  # fmt: skip
        with graph_client(url, tid) as c:
            r = c.get(f"/users/{mbx['owner']}/settings/exchange")
            assert r.status_code == 403 and error_of(r)["code"] == "Authorization_RequestDenied"
    finally:
        httpx.post(roles, json={"reset": True}).raise_for_status()


# ---- Outlook limits ----------------------------------------------------------------------------------------
def test_requests_per_mailbox_are_limited_per_mailbox(src, url, tids) -> None:
    """10,000 requests per 10 minutes per app and mailbox, here 3: the fourth is 429 ApplicationThrottled
    with Retry-After; another mailbox is not affected."""
    boxes = [m for m in mailboxes(url, tids["source"]) if m["kind"] == "primary"][:2]
    httpx.post(f"{url}/sandbox/mail/limits", json={"outlook_requests": "3/600"}).raise_for_status()
    for _ in range(3):
        assert src.get(f"/admin/exchange/mailboxes/{boxes[0]['id']}/folders").status_code == 200
    r = src.get(f"/admin/exchange/mailboxes/{boxes[0]['id']}/folders")
    assert r.status_code == 429
    err = error_of(r)
    assert err["code"] == "ApplicationThrottled" and "MailboxRequests" in err["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert src.get(f"/admin/exchange/mailboxes/{boxes[1]['id']}/folders").status_code == 200


def test_upload_volume_per_mailbox_is_limited(src, tgt, url, tids) -> None:
    _, data = _one_export(src, url, tids["source"])
    mbx = fresh_mailbox(tgt, url)["id"]
    inbox = well_known(tgt, mbx, "inbox")
    session = import_session(tgt, mbx)
    httpx.post(f"{url}/sandbox/mail/limits", json={"outlook_upload": f"{len(data)}/300"}).raise_for_status()
    body = {"FolderId": inbox["id"], "Mode": "create", "Data": data}
    assert httpx.post(session["importUrl"], json=body).status_code == 200
    r = httpx.post(session["importUrl"], json=body)
    assert r.status_code == 429
    assert "IncomingBytes" in error_of(r)["message"] and "Retry-After" in r.headers


def test_four_concurrent_requests_per_app_across_mailboxes_and_tenants() -> None:
    """throttling-limits, "Outlook service limits" / "Limits per app ID": 4 concurrent requests "regardless of
    whether the requests all access the same mailbox, or access different mailboxes"; another app id has its
    own four. (The sandbox was kinder before: four per app and mailbox.)"""
    limiter = MailboxLimiter()
    limiter.configure(OutlookLimits(Budget(10_000, 600), 4, Budget(10**9, 300)))
    for box in ("m1", "m2", "m3", "m4"):
        limiter.enter("app", box)
    assert limiter.in_flight("app") == 4
    for box in ("m5", "m1"):  # a fifth mailbox, or one already busy: the app is at its four
        with pytest.raises(ms.GraphError) as caught:
            limiter.enter("app", box)
        assert caught.value.status == 429 and caught.value.code == "ApplicationThrottled"
        assert caught.value.message == "Application is over its MailboxConcurrency limit."
        assert int(caught.value.headers["Retry-After"]) >= 1
    assert limiter.refused["MailboxConcurrency"] == 2
    limiter.enter("other-app", "m5")  # another app id is not affected
    limiter.leave("app", "m2")
    limiter.enter("app", "m5")  # a slot freed on one mailbox serves any other
    with pytest.raises(ms.GraphError):
        limiter.enter("app", "m6")


def test_request_and_upload_windows_stay_per_app_and_mailbox() -> None:
    """ "Limits per app ID and mailbox combination": 10,000 requests / 10 minutes and 150 MB / 5 minutes are
    counted per mailbox; one mailbox over them does not affect another."""
    limiter = MailboxLimiter(clock=lambda: 100.0)
    limiter.configure(OutlookLimits(Budget(2, 600), 4, Budget(1000, 300)))
    for _ in range(2):
        limiter.enter("app", "m1")
        limiter.leave("app", "m1")
    with pytest.raises(ms.GraphError) as caught:
        limiter.enter("app", "m1")
    assert "MailboxRequests" in caught.value.message
    limiter.enter("app", "m2", upload_bytes=1000)
    limiter.leave("app", "m2")
    with pytest.raises(ms.GraphError) as caught:
        limiter.enter("app", "m2", upload_bytes=10)
    assert "IncomingBytes" in caught.value.message
    limiter.enter("app", "m3", upload_bytes=1000)  # a third mailbox has its own request and byte windows
    limiter.leave("app", "m3")
    limiter.enter("other-app", "m1")  # and another app its own
    limiter.leave("other-app", "m1")
    assert limiter.in_flight("app") == 0


def test_a_fifth_request_in_flight_on_a_fifth_mailbox_is_refused(src, tgt, url, tids) -> None:
    """Through Graph: four requests of one app in flight on four different mailboxes (Exchange holds each
    for mail_service_ms), a fifth on a fifth mailbox answers 429 MailboxConcurrency with Retry-After, while
    another app id's request on that mailbox is answered. exchangeSettings, an Outlook path (served by
    Exchange, outside the identity budget), takes a slot as well: the stricter reading."""
    primaries = [m for m in mailboxes(url, tids["source"]) if m["kind"] == "primary"][:5]
    boxes = [m["id"] for m in primaries]
    assert len(boxes) == 5
    target_box = fresh_mailbox(tgt, url)["id"]
    limiter = url.world.mail_limiter
    app = "00000000-0000-0000-0000-00000000c0de"  # sandbox.testing.token's client id
    httpx.post(f"{url}/sandbox/mail/limits", json={"mail_service_ms": 3000}).raise_for_status()
    before = limiter.refused["MailboxConcurrency"]

    def busy(box: str) -> int:
        return src.get(f"/admin/exchange/mailboxes/{box}/folders").status_code

    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(busy, box) for box in boxes[:4]]
        for _ in range(2000):  # until the sandbox holds all four (counted, not timed)
            if limiter.in_flight(app) == 4:
                break
            threading.Event().wait(0.005)
        assert limiter.in_flight(app) == 4
        r = src.get(f"/admin/exchange/mailboxes/{boxes[4]}/folders")
        assert r.status_code == 429, r.text
        # "Per app ID": the same app in another tenant (the trust's) shares the four.
        across = tgt.get(f"/admin/exchange/mailboxes/{target_box}/folders")
        settings = src.get(f"/users/{primaries[4]['owner']}/settings/exchange")
        assert limiter.in_flight(app) == 4, "the four were answered before the fifth: raise mail_service_ms"
        with graph_client(url, tids["source"]) as other:
            other.headers["Authorization"] = f"Bearer {token(url, tids['source'], OTHER_APP)}"
            other_status = other.get(f"/admin/exchange/mailboxes/{boxes[4]}/folders").status_code
        assert [f.result() for f in held] == [200] * 4
    err = error_of(r)
    assert err == {
        **err,
        "code": "ApplicationThrottled",
        "message": "Application is over its MailboxConcurrency limit.",
    }
    assert int(r.headers["Retry-After"]) >= 1
    assert across.status_code == 429 and "MailboxConcurrency" in error_of(across)["message"]
    assert settings.status_code == 429 and "MailboxConcurrency" in error_of(settings)["message"]
    assert other_status == 200
    assert limiter.refused["MailboxConcurrency"] == before + 3


# ---- ordinary reads ----------------------------------------------------------------------------------------
def test_ordinary_endpoints_show_the_same_items(src, url, tids) -> None:
    mbx = a_mailbox(url, tids["source"])
    owner = mbx["owner"]
    inbox_items = admin_items(url, tids["source"], mbx["id"], "inbox")
    msgs = src.get(f"/users/{owner}/mailFolders/inbox/messages", params={"$top": 1000}).json()["value"]
    assert {m["id"] for m in msgs} == {i["id"] for i in inbox_items}
    m = msgs[0]
    assert {"subject", "from", "receivedDateTime", "body", "hasAttachments"} <= set(m)
    folders_ = src.get(f"/users/{owner}/mailFolders").json()["value"]
    assert "Inbox" in {f["displayName"] for f in folders_} and "Calendar" not in {
        f["displayName"] for f in folders_
    }
    events = src.get(f"/users/{owner}/events", params={"$top": 1000}).json()["value"]
    assert events and any(e["recurrence"] for e in events) and all(e["attendees"] for e in events)
    contacts = src.get(f"/users/{owner}/contacts", params={"$top": 1000}).json()["value"]
    assert contacts and all(c["emailAddresses"] for c in contacts)
    r = src.get(f"/users/{owner}/mailFolders/inbox/messages", params={"$top": 2})
    assert len(r.json()["value"]) == 2 and "@odata.nextLink" in r.json()


# ---- persistence and determinism ---------------------------------------------------------------------------
def test_mailboxes_survive_a_save_and_load(url, tids) -> None:
    from sandbox.world import TenantState

    t = url.world.tenant(tids["source"])
    assert t is not None
    again = TenantState.from_state(t.to_state())
    assert again.mail.snapshot() == t.mail.snapshot()


def test_generation_is_deterministic_with_the_seed() -> None:
    with running_sandbox(CONFIG, size=60, seed=7) as a, running_sandbox(CONFIG, size=60, seed=7) as b:
        for tid, t in a.world.tenants.items():
            assert t.mail.snapshot() == b.world.tenants[tid].mail.snapshot()


def test_removing_the_exchange_licence_disables_the_mailbox(tgt, url) -> None:
    box = fresh_mailbox(tgt, url)
    sku = tgt.get("/subscribedSkus").json()["value"][0]["skuId"]
    r = tgt.post(f"/users/{box['owner']}/assignLicense", json={"addLicenses": [], "removeLicenses": [sku]})
    assert r.status_code == 200, r.text
    r = tgt.get(f"/users/{box['owner']}/settings/exchange")
    assert r.status_code == 404 and error_of(r)["code"] == "MailboxNotEnabledForRESTAPI"
    r = tgt.get(f"/admin/exchange/mailboxes/{box['id']}/folders")
    assert r.status_code == 404 and error_of(r)["code"] == "MailboxNotEnabledForRESTAPI"


def test_admin_mail_routes_answer_bad_input_in_one_line(url, tids) -> None:
    base = admin(url, tids["source"])
    mbx = a_mailbox(url, tids["source"])["id"]
    r = httpx.post(f"{base}/mailboxes/{mbx}/items", json={"folder": "inbox"})
    assert r.status_code == 400 and "props" in r.json()["error"] and "\n" not in r.json()["error"]
    r = httpx.post(
        f"{base}/mailboxes/{mbx}/items", json={"folder": "nowhere", "props": {"class": "IPM.Note"}}
    )
    assert r.status_code == 404 and "nowhere" in r.json()["error"]
    r = httpx.post(f"{base}/mailboxes/{mbx}/items", json={"props": {"class": "IPM.Bogus"}})
    assert r.status_code == 400
    assert httpx.get(f"{base}/mailboxes/MBX:nope/items").status_code == 404
    r = httpx.post(f"{url}/sandbox/mail/limits", json={"outlook_requests": "many"})
    assert r.status_code == 400 and "N/SECONDS" in r.json()["error"]
    r = httpx.post(f"{url}/sandbox/mail/limits", json={"bogus": 1})
    assert r.status_code == 400 and "bogus" in r.json()["error"]
    r = httpx.post(f"{base}/mailboxes", json={"owner": "nobody", "kind": "shared"})
    assert r.status_code == 404


def test_mailbox_folder_paths_take_ids_not_well_known_names(src, url, tids) -> None:
    """mailFolders documents well-known names; the mailboxFolder pages do not: ids only there."""
    mbx = a_mailbox(url, tids["source"])
    r = src.get(f"/admin/exchange/mailboxes/{mbx['id']}/folders/inbox/items")
    assert r.status_code == 404 and error_of(r)["code"] == "ErrorFolderNotFound"
    assert src.get(f"/users/{mbx['owner']}/mailFolders/inbox").status_code == 200


def test_a_folder_holds_about_a_million_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ms, "MAX_ITEMS_PER_FOLDER", 2)
    mbx = ms.MailStore("t").create_mailbox("u", "primary", "U", "u@x")
    for _ in range(2):
        ms.add_item(mbx, "inbox", {"class": "IPM.Note", "subject": "x"})
    with pytest.raises(ms.GraphError) as caught:
        ms.add_item(mbx, "inbox", {"class": "IPM.Note", "subject": "x"})
    assert caught.value.code == "ErrorFolderFull"
    assert ms.folder_counts(mbx)[1][ms.folder(mbx, "inbox")["id"]] == 2
