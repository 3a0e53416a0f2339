"""driveItem copy (with its monitor URL) and file versions (issue 22: rclone, an independent client, failed on
both against the sandbox). Each test names its Microsoft page."""

# ruff: noqa: F811
from __future__ import annotations

import time

import httpx

from tests.sandbox.conftest import error_of

# The drive and library fixtures are shared with the drive conformance tests.
from tests.sandbox.test_conformance_drives import drive, library, new_file, put_file  # noqa: F401


def _follow(monitor: str) -> dict:
    """GET the monitor URL without credentials (long-running-actions-overview) until the copy is done."""
    deadline = time.monotonic() + 20
    seen = []
    while time.monotonic() < deadline:
        r = httpx.get(monitor)
        body = r.json()
        seen.append(body["status"])
        if body["status"] in ("completed", "failed"):
            assert r.status_code == 200
            return {"status": body["status"], "seen": seen, **body}
        assert r.status_code == 202 and body["status"] in ("notStarted", "inProgress"), body
        time.sleep(0.05)
    raise AssertionError(f"copy never finished: {seen}")


def test_copy_answers_202_with_a_monitor_that_completes(target, drive):
    """driveitem-copy: 202 Accepted with a Location monitor URL; the monitor answers the operation's status
    (inProgress, then completed with the new item's resourceId); the copy carries the content."""
    did = drive["id"]
    src = new_file(target, did, "plan.txt", b"version one")
    folder = target.post(f"/drives/{did}/root/children", json={"name": "dest", "folder": {}}).json()
    r = target.post(
        f"/drives/{did}/items/{src['id']}/copy",
        json={"parentReference": {"driveId": did, "id": folder["id"]}, "name": "plan (copy).txt"},
    )
    assert r.status_code == 202, r.text
    monitor = r.headers["location"]
    assert "/monitor/" in monitor
    done = _follow(monitor)
    assert done["status"] == "completed" and "inProgress" in done["seen"] and done["resourceId"]
    copy = target.get(f"/drives/{did}/items/{done['resourceId']}").json()
    assert copy["name"] == "plan (copy).txt" and copy["parentReference"]["id"] == folder["id"]
    assert target.get(f"/drives/{did}/items/{copy['id']}/content").status_code == 302
    assert copy["size"] == len(b"version one")
    # The /users/{id}/drive form is routed too (the page's HTTP request list).
    owner = drive["owner"]["user"]["id"]
    again = target.post(f"/users/{owner}/drive/items/{src['id']}/copy", json={"name": "plan 2.txt"})
    assert again.status_code == 202 and _follow(again.headers["location"])["status"] == "completed"


def test_copy_name_conflicts_follow_conflict_behavior(target, drive):
    """driveitem-copy: @microsoft.graph.conflictBehavior fail (the default: the request is rejected "due to
    the destination filename already being in use"), replace, rename."""
    did = drive["id"]
    src = new_file(target, did, "a.txt", b"aaa")
    new_file(target, did, "b.txt", b"bbbbbb")
    url = f"/drives/{did}/items/{src['id']}/copy"
    err = error_of(target.post(url, json={"name": "b.txt"}))
    assert err["code"] == "nameAlreadyExists"
    renamed = target.post(url, json={"name": "b.txt"}, params={"@microsoft.graph.conflictBehavior": "rename"})
    assert renamed.status_code == 202
    item = target.get(f"/drives/{did}/items/{_follow(renamed.headers['location'])['resourceId']}").json()
    assert item["name"] == "b 1.txt"
    replaced = target.post(
        url, json={"name": "b.txt"}, params={"@microsoft.graph.conflictBehavior": "replace"}
    )
    assert replaced.status_code == 202
    _follow(replaced.headers["location"])
    assert target.get(f"/drives/{did}/root:/b.txt").json()["size"] == 3


def test_copy_stays_in_the_tenant(target, drive, source, library):
    """driveitem-copy: parentReference names a driveId and id; a drive of another tenant is not one this
    tenant's Graph can address (404 itemNotFound), and a folder cannot be copied into itself."""
    did = drive["id"]
    src = new_file(target, did, "x.txt", b"x")
    _, lib = library
    root = source.get(f"/drives/{lib['id']}/root").json()
    err = error_of(
        target.post(
            f"/drives/{did}/items/{src['id']}/copy",
            json={"parentReference": {"driveId": lib["id"], "id": root["id"]}},
        )
    )
    assert err["code"] == "itemNotFound"
    folder = target.post(f"/drives/{did}/root/children", json={"name": "f", "folder": {}}).json()
    err = error_of(
        target.post(
            f"/drives/{did}/items/{folder['id']}/copy",
            json={"parentReference": {"driveId": did, "id": folder["id"]}},
        )
    )
    assert err["code"] == "invalidRequest"


def test_versions_list_get_delete_restore(target, drive):
    """driveitem-list-versions (newest first, the current version included), driveitemversion-get,
    driveitemversion-delete (204; the current version cannot be deleted), driveitemversion-restore (204; a
    new current version with the old content, every existing version kept)."""
    did = drive["id"]
    item = new_file(target, did, "v.txt", b"one")
    for data in (b"two!", b"three"):
        assert put_file(target, did, "v.txt", data).status_code == 200
    base = f"/drives/{did}/items/{item['id']}/versions"
    versions = target.get(base).json()["value"]
    assert [v["id"] for v in versions] == ["3.0", "2.0", "1.0"]
    assert [v["size"] for v in versions] == [5, 4, 3]
    assert {"lastModifiedDateTime", "lastModifiedBy"} <= set(versions[0])
    assert target.get(f"{base}/2.0").json()["size"] == 4
    assert error_of(target.get(f"{base}/9.0"))["code"] == "itemNotFound"
    err = error_of(target.delete(f"{base}/3.0"))
    assert err["code"] == "invalidRequest"
    assert target.delete(f"{base}/2.0").status_code == 204
    assert [v["id"] for v in target.get(base).json()["value"]] == ["3.0", "1.0"]
    assert target.post(f"{base}/1.0/restoreVersion").status_code == 204
    after = target.get(base).json()["value"]
    assert [v["id"] for v in after] == ["4.0", "3.0", "1.0"] and after[0]["size"] == 3
    assert target.get(f"/drives/{did}/items/{item['id']}").json()["size"] == 3
    assert error_of(target.post(f"{base}/2.0/restoreVersion"))["code"] == "itemNotFound"
    folder = target.post(f"/drives/{did}/root/children", json={"name": "nov", "folder": {}}).json()
    assert target.get(f"/drives/{did}/items/{folder['id']}/versions").status_code == 400
