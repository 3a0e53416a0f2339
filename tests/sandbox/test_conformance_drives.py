"""Conformance: one test per documented Graph behaviour of drives, sites and files the sandbox reproduces.

Each test's docstring names the Microsoft documentation page it follows. Tests that change content work in a
fresh OneDrive (a new licensed user in the trust tenant), so they see only their own changes; tests that read
the generated academy content use the source tenant's shared library.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import yaml
from quickxorhash import quickxorhash

from sandbox import drives_api
from sandbox.testing import provision_onedrives, token
from tests.sandbox.conftest import error_of, make_user, unique

KiB = 1024
MiB = 1024 * KiB
CHUNK = 320 * KiB
FS = {"createdDateTime": "2019-03-04T05:06:07Z", "lastModifiedDateTime": "2021-08-09T10:11:12Z"}


# ---- helpers ----------------------------------------------------------------------------------------------
def qxh(data: bytes) -> str:
    h = quickxorhash()
    h.update(data)
    return base64.b64encode(h.digest()).decode()


def licensed_user(client: httpx.Client) -> dict:
    user = make_user(client, usageLocation="GB")
    skus = client.get("/subscribedSkus").json()["value"]
    sku = next(s for s in skus if s["skuPartNumber"] == "STANDARDWOFFPACK_FACULTY")
    r = client.post(
        f"/users/{user['id']}/assignLicense",
        json={"addLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}], "removeLicenses": []},
    )
    assert r.status_code == 200, r.text
    return user


@pytest.fixture
def drive(target: httpx.Client, sandbox_url, target_id) -> dict:
    """A new, empty OneDrive of its own for one test (trust tenant), provisioned as an administrator does."""
    user = licensed_user(target)
    assert provision_onedrives(sandbox_url, target_id, [user["userPrincipalName"]]).status_code == 200
    r = target.get(f"/users/{user['id']}/drive")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def library(source: httpx.Client, tenants: list[dict], source_id: str, config_dir) -> tuple[dict, dict]:
    """(site, drive) of the source academy's shared library (named in its config), with generated content."""
    code = next(t["academy"] for t in tenants if t["id"] == source_id)
    academy = yaml.safe_load((config_dir / "academies" / f"{code}.yaml").read_text())
    name = academy["phases"]["files"]["libraries"][0]["source"]["site"]
    site = next(s for s in source.get("/sites", params={"search": name}).json()["value"] if s["name"] == name)
    lib = source.get(f"/sites/{site['id']}/drive").json()
    return site, lib


def put_file(client: httpx.Client, did: str, path: str, data: bytes, **params: str) -> httpx.Response:
    return client.put(f"/drives/{did}/root:/{path}:/content", content=data, params=params)


def new_file(client: httpx.Client, did: str, path: str, data: bytes) -> dict:
    r = put_file(client, did, path, data)
    assert r.status_code in (200, 201), r.text
    return r.json()


def new_folder(client: httpx.Client, did: str, name: str, parent: str = "root", **extra: object) -> dict:
    r = client.post(f"/drives/{did}/items/{parent}/children", json={"name": name, "folder": {}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def session(client: httpx.Client, did: str, path: str, **item: object) -> dict:
    r = client.post(f"/drives/{did}/root:/{path}:/createUploadSession", json={"item": item})
    assert r.status_code == 200, r.text
    return r.json()


def put_chunk(url: str, data: bytes, first: int, total: int, **headers: str) -> httpx.Response:
    """A fragment PUT as Graph wants it: no Authorization, Content-Range bytes first-last/total."""
    rng = {"Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}"}
    return httpx.put(url, content=data, headers={**rng, **headers}, timeout=30)


def raw_request(url: str, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Send only a request head (no body) and read the answer: for limits Graph checks on Content-Length
    before reading the body, without sending hundreds of megabytes."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                hdrs = dict(
                    line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line
                )
                hdrs = {k.lower(): v for k, v in hdrs.items()}
                if len(body) >= int(hdrs.get("content-length", "0")):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, hdrs, body


def tamper(url: str, key: str, value: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- drives and sites -------------------------------------------------------------------------------------
def test_user_drive_get(target, drive):
    """learn.microsoft.com/graph/api/drive-get: GET /users/{id or UPN}/drive answers the user's OneDrive."""
    uid = drive["owner"]["user"]["id"]
    again = target.get(f"/users/{uid}/drive").json()
    assert again["id"] == drive["id"] and again["driveType"] == "business"
    upn = target.get(f"/users/{uid}").json()["userPrincipalName"]
    assert target.get(f"/users/{upn}/drive").json()["id"] == drive["id"]
    assert drive["webUrl"].startswith("https://") and "-my.sharepoint.com/personal/" in drive["webUrl"]


def test_user_drives_list(target, drive):
    """learn.microsoft.com/graph/api/drive-list: GET /users/{id}/drives lists the user's drives."""
    uid = drive["owner"]["user"]["id"]
    body = target.get(f"/users/{uid}/drives").json()
    assert [d["id"] for d in body["value"]] == [drive["id"]]


def test_unlicensed_user_has_no_drive(target):
    """learn.microsoft.com/graph/api/drive-get: a user without a OneDrive licence has no mysite: 404
    ResourceNotFound "User's mysite not found."."""
    user = make_user(target)
    r = target.get(f"/users/{user['id']}/drive")
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "ResourceNotFound" and "mysite not found" in err["message"]
    r = target.get("/users/00000000-0000-0000-0000-000000000404/drive")
    assert r.status_code == 404


def test_site_by_path(source, library):
    """learn.microsoft.com/graph/api/site-getbypath: GET /sites/{hostname}:/sites/{name} (case-insensitive);
    404 for an unknown site."""
    site, _ = library
    host = site["siteCollection"]["hostname"]
    got = source.get(f"/sites/{host}:/sites/{site['name'].upper()}").json()
    assert got["id"] == site["id"] and got["webUrl"] == f"https://{host}/sites/{site['name']}"
    drives = source.get(f"/sites/{host}:/sites/{site['name']}:/drives").json()["value"]
    assert drives[0]["webUrl"].startswith(got["webUrl"] + "/")
    r = source.get(f"/sites/{host}:/sites/no-such-site")
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"


def test_site_by_id(source, library):
    """learn.microsoft.com/graph/api/site-get: GET /sites/{site-id}, the id being "host,siteGuid,webGuid"."""
    site, _ = library
    got = source.get(f"/sites/{site['id']}").json()
    assert got == site
    assert set(got) >= {"id", "name", "displayName", "webUrl", "createdDateTime", "siteCollection"}
    host, site_guid, web_guid = got["id"].split(",")
    assert host == got["siteCollection"]["hostname"] and len(site_guid) == len(web_guid) == 36
    assert source.get("/sites/nohost.sharepoint.com,x,y").status_code == 404


def test_site_search(source, library):
    """learn.microsoft.com/graph/api/site-search: GET /sites?search= matches names and display names."""
    site, _ = library
    found = source.get("/sites", params={"search": site["displayName"].split()[-1]}).json()["value"]
    assert site["id"] in [s["id"] for s in found]
    none = source.get("/sites", params={"search": unique("nothing")}).json()["value"]
    assert none == []


def test_site_drives(source, library):
    """learn.microsoft.com/graph/api/drive-list: GET /sites/{id}/drives lists the document libraries."""
    site, lib = library
    drives = source.get(f"/sites/{site['id']}/drives").json()["value"]
    assert lib["id"] in [d["id"] for d in drives]
    assert all(d["driveType"] == "documentLibrary" for d in drives)


def test_site_default_drive(source, library):
    """learn.microsoft.com/graph/api/drive-get: GET /sites/{id}/drive is the default library (Documents)."""
    site, lib = library
    assert lib["name"] == "Documents" and lib["webUrl"].endswith("/Shared%20Documents")
    children = source.get(f"/sites/{site['id']}/drive/root/children").json()["value"]
    assert {"Policies", "Curriculum", "Admin"} <= {c["name"] for c in children}


def test_drive_get_with_quota(source, library, target, drive):
    """learn.microsoft.com/graph/api/drive-get and resources/quota: a drive has quota total, used,
    remaining, deleted and state; used follows content."""
    _, lib = library
    got = source.get(f"/drives/{lib['id']}").json()
    q = got["quota"]
    assert q["total"] == q["used"] + q["remaining"] and q["state"] == "normal" and q["used"] > 0
    assert target.get(f"/drives/{drive['id']}").json()["quota"]["used"] == 0
    new_file(target, drive["id"], "q.bin", b"x" * 1000)
    assert target.get(f"/drives/{drive['id']}").json()["quota"]["used"] == 1000
    r = target.get("/drives/b!doesnotexist")
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"


# ---- items ------------------------------------------------------------------------------------------------
def test_item_get_by_id_and_path(source, library):
    """learn.microsoft.com/graph/api/driveitem-get: by id (items/{id}) and by path (root:/a/b:), with
    parentReference.path; 404 itemNotFound for a path that does not exist."""
    _, lib = library
    did = lib["id"]
    by_path = source.get(f"/drives/{did}/root:/Policies/Term Dates 2024-25.pdf").json()
    by_path_colon = source.get(f"/drives/{did}/root:/Policies/Term Dates 2024-25.pdf:").json()
    by_id = source.get(f"/drives/{did}/items/{by_path['id']}").json()
    assert by_path["id"] == by_path_colon["id"] == by_id["id"]
    assert by_id["size"] == 48_211 and by_id["file"]["hashes"]["quickXorHash"]
    assert by_id["parentReference"]["path"] == f"/drives/{did}/root:/Policies"
    folder = source.get(f"/drives/{did}/root:/Policies").json()
    assert folder["folder"]["childCount"] >= 3 and "file" not in folder
    rel = source.get(f"/drives/{did}/items/{folder['id']}:/Term Dates 2024-25.pdf:").json()
    assert rel["id"] == by_id["id"]
    r = source.get(f"/drives/{did}/root:/Policies/Nope.pdf")
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"
    assert source.get(f"/drives/{did}/items/01NOSUCHITEM").status_code == 404


def test_item_select(source, library):
    """learn.microsoft.com/graph/api/driveitem-get (optional query parameters) and graph/query-parameters:
    $select returns only the named properties (id always); the download URL only when selected."""
    _, lib = library
    path = f"/drives/{lib['id']}/root:/Policies/Term Dates 2024-25.pdf"
    got = source.get(path, params={"$select": "name,size"}).json()
    assert set(got) == {"id", "name", "size"}
    got = source.get(path, params={"$select": "id,@microsoft.graph.downloadUrl"}).json()
    assert set(got) == {"id", "@microsoft.graph.downloadUrl"}
    assert "@microsoft.graph.downloadUrl" in source.get(path).json()


def test_children_paging(target, drive):
    """learn.microsoft.com/graph/api/driveitem-list-children and graph/paging: $top pages with
    @odata.nextLink until the last page, which has none."""
    did = drive["id"]
    folder = new_folder(target, did, "paged")
    for n in range(5):
        new_file(target, did, f"paged/f{n}.txt", b"%d" % n)
    names: list[str] = []
    page = target.get(f"/drives/{did}/items/{folder['id']}/children", params={"$top": 2}).json()
    pages = 1
    names += [i["name"] for i in page["value"]]
    while "@odata.nextLink" in page:
        assert len(page["value"]) == 2
        page = target.get(page["@odata.nextLink"]).json()
        names += [i["name"] for i in page["value"]]
        pages += 1
    assert pages == 3 and names == [f"f{n}.txt" for n in range(5)]
    assert target.get(f"/drives/{did}/root:/paged:/children").json()["value"][0]["name"] == "f0.txt"
    r = target.get(f"/drives/{did}/root:/missing:/children")
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"


def test_folder_create_conflict_behaviour(target, drive):
    """learn.microsoft.com/graph/api/driveitem-post-children: 201 with the folder; conflictBehavior fail
    (the default) answers 409 nameAlreadyExists, rename picks a free name, replace keeps the folder."""
    did = drive["id"]
    first = new_folder(target, did, "Reports", fileSystemInfo=FS)
    assert first["folder"]["childCount"] == 0 and first["fileSystemInfo"] == FS
    for body in ({}, {"@microsoft.graph.conflictBehavior": "fail"}):
        r = target.post(f"/drives/{did}/root/children", json={"name": "reports", "folder": {}, **body})
        assert r.status_code == 409 and error_of(r)["code"] == "nameAlreadyExists"
    r = target.post(
        f"/drives/{did}/root/children",
        json={"name": "Reports", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"},
    )
    assert r.status_code == 201 and r.json()["name"] == "Reports 1"
    r = target.post(
        f"/drives/{did}/root/children",
        json={"name": "Reports", "folder": {}, "@microsoft.graph.conflictBehavior": "replace"},
    )
    assert r.status_code in (200, 201) and r.json()["name"] == "Reports"
    r = target.post(
        f"/drives/{did}/root/children",
        json={"name": "X", "folder": {}, "@microsoft.graph.conflictBehavior": "merge"},
    )
    assert r.status_code == 400 and "conflictBehavior" in error_of(r)["message"]
    r = target.post(f"/drives/{did}/root/children", json={"folder": {}})
    assert r.status_code == 400 and "name" in error_of(r)["message"]


BAD_NAMES = [
    'say "hi"',
    "star*",
    "a:b",
    "less<",
    "more>",
    "why?",
    "back\\slash",
    "pipe|",
    "slash/inside",
    " leading space",
    "trailing space ",
    "trailing period.",
    "CON",
    "con.txt",
    "LPT1",
    ".lock",
    "desktop.ini",
    "~$Timetable.docx",
    "site_vti_cnf",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_sharepoint_refuses(target, drive, name):
    """learn.microsoft.com/graph/api/driveitem-post-children with the naming rules of support.microsoft.com
    "Restrictions and limitations in OneDrive and SharePoint": 400 invalidRequest for invalid characters
    (" * : < > ? / \\ |), leading or trailing spaces, a trailing period, reserved names (CON, .lock,
    desktop.ini), names starting ~$ and names containing _vti_; the same rule applies to uploads."""
    did = drive["id"]
    r = target.post(f"/drives/{did}/root/children", json={"name": name, "folder": {}})
    assert r.status_code == 400, name
    err = error_of(r)
    assert err["code"] == "invalidRequest" and "name" in err["message"].lower()
    if "/" not in name:
        r = target.post(f"/drives/{did}/root:/{quote(name)}:/createUploadSession", json={"item": {}})
        assert r.status_code == 400, name


def test_path_over_400_characters(target, drive):
    """support.microsoft.com "Restrictions and limitations in OneDrive and SharePoint" (via
    learn.microsoft.com/graph/api/driveitem-post-children): the decoded path, site URL included, is limited to
    400 characters; 400 invalidRequest beyond."""
    did = drive["id"]
    a = new_folder(target, did, "a" * 120)
    b = new_folder(target, did, "b" * 120, parent=a["id"])
    r = target.post(f"/drives/{did}/items/{b['id']}/children", json={"name": "c" * 200, "folder": {}})
    assert r.status_code == 400 and "400" in error_of(r)["message"]
    assert target.post(f"/drives/{did}/items/{b['id']}/children", json={"name": "c", "folder": {}}).is_success


def test_malformed_requests_400(target, drive):
    """learn.microsoft.com/graph/errors (400 Bad Request) and graph/query-parameters: a query option that is
    not a valid value ($top not a positive integer, a bad $skiptoken) or a body property of the wrong type
    or format (name, parentReference, fileSystemInfo timestamps) answers 400 invalidRequest, never a 500,
    and changes nothing."""
    did = drive["id"]
    item = new_file(target, did, "typed.txt", b"t")
    for params in ({"$top": "abc"}, {"$top": "0"}, {"$top": "-1"}, {"$skiptoken": "zz"}):
        r = target.get(f"/drives/{did}/root/children", params=params)
        assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest", params
    r = target.get(f"/drives/{did}/root/delta", params={"$top": "x"})
    assert r.status_code == 400 and "$top" in error_of(r)["message"]
    bad_bodies = [
        {"name": 5},
        {"parentReference": "root"},
        {"fileSystemInfo": "yesterday"},
        {"fileSystemInfo": {"lastModifiedDateTime": "not a date"}},
        {"name": "fine.txt", "fileSystemInfo": {"createdDateTime": 20200101}},
    ]
    for body in bad_bodies:
        r = target.patch(f"/drives/{did}/items/{item['id']}", json=body)
        assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest", body
    assert target.get(f"/drives/{did}/items/{item['id']}").json()["name"] == "typed.txt"
    r = target.post(
        f"/drives/{did}/root/children",
        json={"name": "f", "folder": {}, "fileSystemInfo": {"createdDateTime": "soon"}},
    )
    assert r.status_code == 400 and "createdDateTime" in error_of(r)["message"]
    r = target.post(
        f"/drives/{did}/root:/s.bin:/createUploadSession", json={"item": {"fileSystemInfo": ["x"]}}
    )
    assert r.status_code == 400 and "fileSystemInfo" in error_of(r)["message"]
    r = target.patch(f"/drives/{did}/items/{item['id']}", content=b"{not json")
    assert r.status_code == 400 and "JSON" in error_of(r)["message"]


# ---- download ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_file(target, drive) -> tuple[dict, bytes]:
    data = bytes(range(256)) * 40  # 10,240 bytes
    new_folder(target, drive["id"], "dl")
    return new_file(target, drive["id"], "dl/data.bin", data), data


def test_content_redirects_to_download_url(target, drive, small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content: GET .../content answers 302 with Location, a
    pre-authenticated URL, also given as @microsoft.graph.downloadUrl; a folder has no content (404)."""
    item, _ = small_file
    r = target.get(f"/drives/{drive['id']}/items/{item['id']}/content")
    assert r.status_code == 302 and r.headers["Location"]
    assert r.headers["Location"].split("&exp=")[0] == item["@microsoft.graph.downloadUrl"].split("&exp=")[0]
    by_path = target.get(f"/drives/{drive['id']}/root:/dl/data.bin:/content")
    assert by_path.status_code == 302
    r = target.get(f"/drives/{drive['id']}/root:/dl:/content")
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"


def test_download_url_needs_no_authorization(target, drive, small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content: the download URL is pre-authenticated and needs
    no Authorization header."""
    item, data = small_file
    r = httpx.get(item["@microsoft.graph.downloadUrl"])
    assert r.status_code == 200 and r.content == data
    assert r.headers["Accept-Ranges"] == "bytes" and int(r.headers["Content-Length"]) == len(data)


def test_download_range_206(small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content#partial-range-downloads: Range bytes=a-b answers
    206 with Content-Range."""
    item, data = small_file
    r = httpx.get(item["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = httpx.get(item["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == data[10000:]
    assert r.headers["Content-Range"] == f"bytes 10000-{len(data) - 1}/{len(data)}"


def test_download_suffix_range(small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content#partial-range-downloads (RFC 9110 suffix range):
    bytes=-N is the last N bytes."""
    item, data = small_file
    r = httpx.get(item["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=-300"})
    assert r.status_code == 206 and r.content == data[-300:]
    assert r.headers["Content-Range"] == f"bytes {len(data) - 300}-{len(data) - 1}/{len(data)}"


def test_download_range_not_satisfiable(small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content#partial-range-downloads (RFC 9110): a range beyond
    the file answers 416 with Content-Range bytes */size."""
    item, data = small_file
    for rng in (f"bytes={len(data)}-", "bytes=500-100", "bytes=-"):
        r = httpx.get(item["@microsoft.graph.downloadUrl"], headers={"Range": rng})
        assert r.status_code == 416, rng
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"


def test_download_url_tampered_401(small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content: the URL carries its own authorisation: a changed
    signature or expiry is refused with 401."""
    item, _ = small_file
    url = item["@microsoft.graph.downloadUrl"]
    r = httpx.get(tamper(url, "tempauth", "AAAA" + dict(parse_qsl(urlsplit(url).query))["tempauth"][4:]))
    assert r.status_code == 401 and error_of(r)["code"] == "unauthenticated"
    r = httpx.get(tamper(url, "exp", "9999999999"))
    assert r.status_code == 401


def test_download_url_of_old_version_404(target, drive, small_file):
    """learn.microsoft.com/graph/api/driveitem-get-content: download URLs are short-lived and tied to the
    content version; after new content is uploaded the old URL no longer serves (404)."""
    item, _ = small_file
    old = item["@microsoft.graph.downloadUrl"]
    r = put_file(target, drive["id"], "dl/data.bin", b"new content")
    assert r.status_code == 200
    r = httpx.get(old)
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"
    fresh = target.get(f"/drives/{drive['id']}/root:/dl/data.bin").json()["@microsoft.graph.downloadUrl"]
    assert httpx.get(fresh).content == b"new content"


# ---- simple upload ----------------------------------------------------------------------------------------
def test_simple_upload_create_and_replace(target, drive):
    """learn.microsoft.com/graph/api/driveitem-put-content: PUT .../{parent}:/{name}:/content answers 201 for
    a new file and 200 when it replaces one (replace is the default); conflictBehavior=fail gives 409."""
    did = drive["id"]
    new_folder(target, did, "up")
    r = put_file(target, did, "up/notes.txt", b"first")
    assert r.status_code == 201
    first = r.json()
    assert first["size"] == 5 and first["file"]["hashes"]["quickXorHash"] == qxh(b"first")
    assert first["file"]["mimeType"] == "text/plain"
    r = put_file(target, did, "up/notes.txt", b"second!")
    assert r.status_code == 200 and r.json()["id"] == first["id"] and r.json()["size"] == 7
    assert r.json()["eTag"] != first["eTag"]
    r = target.put(f"/drives/{did}/items/{first['id']}/content", content=b"by id")
    assert r.status_code == 200 and r.json()["size"] == 5
    r = put_file(target, did, "up/notes.txt", b"x", **{"@microsoft.graph.conflictBehavior": "fail"})
    assert r.status_code == 409 and error_of(r)["code"] == "nameAlreadyExists"
    r = put_file(target, did, "up/notes.txt", b"x", **{"@microsoft.graph.conflictBehavior": "rename"})
    assert r.status_code == 201 and r.json()["name"] == "notes 1.txt"


def test_simple_upload_over_250_mb_413(sandbox_url, target_id, drive):
    """learn.microsoft.com/graph/api/driveitem-put-content: simple upload takes files up to 250 MB; a larger
    Content-Length is refused (413) before the body is read."""
    url = f"{sandbox_url}/v1.0/drives/{drive['id']}/root:/huge.bin:/content"
    status, _, body = raw_request(
        url,
        "PUT",
        {
            "Authorization": f"Bearer {token(sandbox_url, target_id)}",
            "Content-Length": str(250 * MiB + 1),
            "Content-Type": "application/octet-stream",
        },
    )
    assert status == 413 and b"250 MB" in body


# ---- upload sessions --------------------------------------------------------------------------------------
def test_upload_session_create(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession: 200 with uploadUrl, expirationDateTime and
    nextExpectedRanges ["0-"]; the item's fileSystemInfo is kept on the uploaded file."""
    did = drive["id"]
    new_folder(target, did, "big")
    s = session(target, did, "big/video.mp4", fileSystemInfo=FS)
    assert set(s) >= {"uploadUrl", "expirationDateTime", "nextExpectedRanges"}
    assert s["nextExpectedRanges"] == ["0-"] and s["expirationDateTime"].endswith("Z")
    r = target.post(f"/drives/{did}/root:/nofolder/x.bin:/createUploadSession", json={})
    assert r.status_code == 404
    data = b"v" * 1000
    r = put_chunk(s["uploadUrl"], data, 0, len(data))
    assert r.status_code == 201
    assert r.json()["fileSystemInfo"] == FS and r.json()["name"] == "video.mp4"


def test_upload_session_chunks_and_hash(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session: 202
    with nextExpectedRanges while more is expected, then 201 with the item; its quickXorHash is the hash of
    the bytes (learn.microsoft.com/onedrive/developer/code-snippets/quickxorhash)."""
    did = drive["id"]
    data = bytes((n * 7) % 251 for n in range(2 * CHUNK + 12_345))
    s = session(target, did, "sessions.bin")
    r = put_chunk(s["uploadUrl"], data[:CHUNK], 0, len(data))
    assert r.status_code == 202 and r.json()["nextExpectedRanges"] == [f"{CHUNK}-{len(data) - 1}"]
    r = put_chunk(s["uploadUrl"], data[CHUNK : 2 * CHUNK], CHUNK, len(data))
    assert r.status_code == 202
    r = put_chunk(s["uploadUrl"], data[2 * CHUNK :], 2 * CHUNK, len(data))
    assert r.status_code == 201
    item = r.json()
    assert item["size"] == len(data) and item["file"]["hashes"]["quickXorHash"] == qxh(data)
    assert httpx.get(item["@microsoft.graph.downloadUrl"]).content == data


def test_upload_chunk_not_multiple_of_320_kib(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session: each
    fragment but the last must be a multiple of 320 KiB (327,680 bytes); 400 otherwise."""
    s = session(target, drive["id"], "odd.bin")
    r = put_chunk(s["uploadUrl"], b"z" * 100_000, 0, 1_000_000)
    assert r.status_code == 400 and "320 KiB" in error_of(r)["message"]
    # The session is unharmed: a correct fragment is still accepted from byte 0.
    assert put_chunk(s["uploadUrl"], b"z" * CHUNK, 0, 1_000_000).status_code == 202


def test_upload_fragment_headers_validated(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session: each
    fragment names its bytes with Content-Range "bytes first-last/total" and Content-Length; a missing or
    malformed range, a total that changes between fragments, or a length that does not match answers 400;
    a tampered upload URL answers 401."""
    s = session(target, drive["id"], "headers.bin")
    url = s["uploadUrl"]
    assert httpx.put(url, content=b"0123456789").status_code == 400
    for rng in ("bytes 0-9/x", "bytes */10", "0-9/10", "bytes 5-2/10", "bytes 0-9/5"):
        r = httpx.put(url, content=b"0123456789", headers={"Content-Range": rng})
        assert r.status_code == 400 and error_of(r)["code"] == "invalidRequest", rng
    assert put_chunk(url, b"h" * CHUNK, 0, CHUNK * 3).status_code == 202
    r = put_chunk(url, b"h" * CHUNK, CHUNK, CHUNK * 4)
    assert r.status_code == 400 and "total size" in error_of(r)["message"]
    r = httpx.put(
        url, content=b"h" * 10, headers={"Content-Range": f"bytes {CHUNK}-{CHUNK + 19}/{CHUNK * 3}"}
    )
    assert r.status_code == 400 and "Content-Length" in error_of(r)["message"]
    r = put_chunk(tamper(url, "tempauth", "forged"), b"h" * CHUNK, CHUNK, CHUNK * 3)
    assert r.status_code == 401
    assert httpx.get(url).json()["nextExpectedRanges"] == [f"{CHUNK}-{CHUNK * 3 - 1}"]


def test_upload_chunk_of_60_mib_413(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session: each
    request must be less than 60 MiB; a fragment of 60 MiB (a multiple of 320 KiB) is refused with 413."""
    s = session(target, drive["id"], "toolarge.bin")
    total = 200 * MiB
    status, _, body = raw_request(
        s["uploadUrl"],
        "PUT",
        {"Content-Length": str(60 * MiB), "Content-Range": f"bytes 0-{60 * MiB - 1}/{total}"},
    )
    assert status == 413 and b"60 MiB" in body


def test_upload_overlapping_range_416(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#handle-upload-errors: a fragment for a
    range already received answers 416 with nextExpectedRanges."""
    data = b"o" * (CHUNK + 10)
    s = session(target, drive["id"], "overlap.bin")
    assert put_chunk(s["uploadUrl"], data[:CHUNK], 0, len(data)).status_code == 202
    r = put_chunk(s["uploadUrl"], data[:CHUNK], 0, len(data))
    assert r.status_code == 416
    assert r.json()["nextExpectedRanges"] == [f"{CHUNK}-{len(data) - 1}"]
    assert r.json()["error"]["code"] == "invalidRange"


def test_upload_resume_after_get(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#resume-an-in-progress-upload: GET on the
    uploadUrl reports nextExpectedRanges; upload continues from there."""
    data = b"r" * (CHUNK * 2 + 5)
    s = session(target, drive["id"], "resume.bin")
    assert put_chunk(s["uploadUrl"], data[:CHUNK], 0, len(data)).status_code == 202
    status = httpx.get(s["uploadUrl"]).json()
    assert status["nextExpectedRanges"] == [f"{CHUNK}-{len(data) - 1}"]
    start = int(status["nextExpectedRanges"][0].split("-")[0])
    assert put_chunk(s["uploadUrl"], data[start : start + CHUNK], start, len(data)).status_code == 202
    r = put_chunk(s["uploadUrl"], data[2 * CHUNK :], 2 * CHUNK, len(data))
    assert r.status_code == 201 and r.json()["file"]["hashes"]["quickXorHash"] == qxh(data)


def test_upload_session_cancel(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#cancel-the-upload-session: DELETE on the
    uploadUrl answers 204; the session is then gone (404) and no file was created."""
    s = session(target, drive["id"], "cancel.bin")
    assert put_chunk(s["uploadUrl"], b"c" * CHUNK, 0, CHUNK * 2).status_code == 202
    assert httpx.delete(s["uploadUrl"]).status_code == 204
    r = httpx.get(s["uploadUrl"])
    assert r.status_code == 404 and error_of(r)["code"] == "itemNotFound"
    assert put_chunk(s["uploadUrl"], b"c" * CHUNK, CHUNK, CHUNK * 2).status_code == 404
    assert target.get(f"/drives/{drive['id']}/root:/cancel.bin").status_code == 404


def test_upload_session_expired(sandbox_url, target_id, target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#handle-upload-errors: an expired session
    answers 404; the client must start a new one."""
    s = session(target, drive["id"], "expire.bin")
    assert put_chunk(s["uploadUrl"], b"e" * CHUNK, 0, CHUNK * 2).status_code == 202
    r = httpx.post(f"{sandbox_url}/sandbox/tenants/{target_id}/expire-uploads", json={})
    assert r.status_code == 200 and r.json()["expired"] >= 1
    r = put_chunk(s["uploadUrl"], b"e" * CHUNK, CHUNK, CHUNK * 2)
    assert r.status_code == 404 and "expired" in error_of(r)["message"]


def test_upload_chunk_with_authorization_401(sandbox_url, target_id, target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session: do not
    send an Authorization header with the fragment PUTs (it can cause a 401)."""
    s = session(target, drive["id"], "auth.bin")
    bearer = f"Bearer {token(sandbox_url, target_id)}"
    r = put_chunk(s["uploadUrl"], b"a" * 10, 0, 10, Authorization=bearer)
    assert r.status_code == 401 and "Authorization" in error_of(r)["message"]
    assert put_chunk(s["uploadUrl"], b"a" * 10, 0, 10).status_code == 201


def test_upload_session_conflict_fail_at_commit(target, drive):
    """learn.microsoft.com/graph/api/driveitem-createuploadsession (item @microsoft.graph.conflictBehavior):
    with fail, a name taken while the upload ran makes the final fragment fail with 409; an existing name
    fails at creation."""
    did = drive["id"]
    s = session(target, did, "race.bin", **{"@microsoft.graph.conflictBehavior": "fail"})
    new_file(target, did, "race.bin", b"someone else")
    r = put_chunk(s["uploadUrl"], b"mine", 0, 4)
    assert r.status_code == 409 and error_of(r)["code"] == "nameAlreadyExists"
    r = target.post(
        f"/drives/{did}/root:/race.bin:/createUploadSession",
        json={"item": {"@microsoft.graph.conflictBehavior": "fail"}},
    )
    assert r.status_code == 409
    s = session(target, did, "race.bin", **{"@microsoft.graph.conflictBehavior": "rename"})
    r = put_chunk(s["uploadUrl"], b"mine", 0, 4)
    assert r.status_code == 201 and r.json()["name"] == "race 1.bin"


# ---- update, move, delete ---------------------------------------------------------------------------------
def test_patch_rename(target, drive):
    """learn.microsoft.com/graph/api/driveitem-update: PATCH name renames; a taken name answers 409."""
    did = drive["id"]
    item = new_file(target, did, "old name.docx", b"doc")
    new_file(target, did, "taken.docx", b"t")
    r = target.patch(f"/drives/{did}/items/{item['id']}", json={"name": "new name.docx"})
    assert r.status_code == 200 and r.json()["name"] == "new name.docx"
    assert target.get(f"/drives/{did}/root:/new name.docx").json()["id"] == item["id"]
    assert target.get(f"/drives/{did}/root:/old name.docx").status_code == 404
    r = target.patch(f"/drives/{did}/items/{item['id']}", json={"name": "taken.docx"})
    assert r.status_code == 409 and error_of(r)["code"] == "nameAlreadyExists"
    r = target.patch(f"/drives/{did}/items/{item['id']}", json={"name": "bad|name.docx"})
    assert r.status_code == 400


def test_patch_move(target, drive):
    """learn.microsoft.com/graph/api/driveitem-move: PATCH parentReference.id moves the item (optionally
    renaming it); a folder cannot move into itself."""
    did = drive["id"]
    dest = new_folder(target, did, "dest")
    item = new_file(target, did, "mover.txt", b"m")
    r = target.patch(
        f"/drives/{did}/items/{item['id']}", json={"parentReference": {"id": dest["id"]}, "name": "moved.txt"}
    )
    assert r.status_code == 200
    assert r.json()["parentReference"]["id"] == dest["id"] and r.json()["name"] == "moved.txt"
    assert target.get(f"/drives/{did}/root:/dest/moved.txt").json()["id"] == item["id"]
    inner = new_folder(target, did, "inner", parent=dest["id"])
    r = target.patch(f"/drives/{did}/items/{dest['id']}", json={"parentReference": {"id": inner["id"]}})
    assert r.status_code == 400


def test_patch_file_system_info(target, drive):
    """learn.microsoft.com/graph/api/driveitem-update and resources/filesysteminfo: fileSystemInfo
    timestamps can be set after upload and are kept."""
    did = drive["id"]
    item = new_file(target, did, "stamped.txt", b"s")
    r = target.patch(f"/drives/{did}/items/{item['id']}", json={"fileSystemInfo": FS})
    assert r.status_code == 200 and r.json()["fileSystemInfo"] == FS
    assert target.get(f"/drives/{did}/items/{item['id']}").json()["fileSystemInfo"] == FS


def test_delete_item(target, drive):
    """learn.microsoft.com/graph/api/driveitem-delete: 204, the item (and what it holds) is gone; If-Match
    with a stale eTag answers 412."""
    did = drive["id"]
    folder = new_folder(target, did, "bin")
    item = new_file(target, did, "bin/gone.txt", b"g")
    r = target.delete(f"/drives/{did}/items/{folder['id']}", headers={"If-Match": '"{stale},1"'})
    assert r.status_code == 412 and error_of(r)["code"] == "preconditionFailed"
    etag = target.get(f"/drives/{did}/items/{folder['id']}").json()["eTag"]
    r = target.delete(f"/drives/{did}/items/{folder['id']}", headers={"If-Match": etag})
    assert r.status_code == 204 and r.content == b""
    assert target.get(f"/drives/{did}/items/{folder['id']}").status_code == 404
    assert target.get(f"/drives/{did}/items/{item['id']}").status_code == 404
    assert target.delete(f"/drives/{did}/items/{folder['id']}").status_code == 404


# ---- delta ------------------------------------------------------------------------------------------------
def _delta_all(client: httpx.Client, url: str) -> tuple[list[dict], str, int]:
    items: list[dict] = []
    pages = 0
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items += body["value"]
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
            continue
        return items, body["@odata.deltaLink"], pages


def test_delta_full_enumeration_with_paging(target, drive):
    """learn.microsoft.com/graph/api/driveitem-delta: the first call enumerates the whole drive (root
    included) in pages linked by @odata.nextLink, ending with @odata.deltaLink."""
    did = drive["id"]
    new_folder(target, did, "d")
    for n in range(4):
        new_file(target, did, f"d/{n}.txt", b"n")
    items, link, pages = _delta_all(target, f"/drives/{did}/root/delta?$top=2")
    assert pages == 3 and link
    names = [i["name"] for i in items]
    assert sorted(names) == sorted(["root", "d", "0.txt", "1.txt", "2.txt", "3.txt"])
    assert all("deleted" not in i for i in items)
    assert next(i for i in items if i["name"] == "root")["root"] == {}


def test_delta_token_returns_only_changes(target, drive):
    """learn.microsoft.com/graph/api/driveitem-delta: calling the deltaLink returns only what changed since,
    deleted items with the deleted facet; the new deltaLink then returns nothing."""
    did = drive["id"]
    keep = new_file(target, did, "keep.txt", b"k")
    drop = new_file(target, did, "drop.txt", b"d")
    new_file(target, did, "same.txt", b"s")
    _, link, _ = _delta_all(target, f"/drives/{did}/root/delta")
    target.patch(f"/drives/{did}/items/{keep['id']}", json={"name": "kept.txt"})
    assert target.delete(f"/drives/{did}/items/{drop['id']}").status_code == 204
    added = new_file(target, did, "added.txt", b"a")
    items, link2, _ = _delta_all(target, link)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) >= {keep["id"], drop["id"], added["id"]}
    assert "same.txt" not in [i["name"] for i in items]
    assert by_id[keep["id"]]["name"] == "kept.txt"
    assert by_id[drop["id"]]["deleted"] == {"state": "deleted"}
    assert "deleted" not in by_id[added["id"]]
    again, _, _ = _delta_all(target, link2)
    assert again == []


def test_delta_token_latest(target, drive):
    """learn.microsoft.com/graph/api/driveitem-delta (token=latest): an empty page with a deltaLink from
    now; later changes come through it."""
    did = drive["id"]
    new_file(target, did, "before.txt", b"b")
    body = target.get(f"/drives/{did}/root/delta", params={"token": "latest"}).json()
    assert body["value"] == [] and "@odata.deltaLink" in body
    after = new_file(target, did, "after.txt", b"a")
    items, _, _ = _delta_all(target, body["@odata.deltaLink"])
    assert after["id"] in [i["id"] for i in items]
    assert "before.txt" not in [i["name"] for i in items]


def test_delta_expired_token_410(sandbox_url, target_id, target, drive):
    """learn.microsoft.com/graph/api/driveitem-delta (response codes): an expired token answers 410 Gone,
    resyncRequired; the client enumerates again from scratch. A malformed token is 400."""
    did = drive["id"]
    _, link, _ = _delta_all(target, f"/drives/{did}/root/delta")
    assert httpx.post(f"{sandbox_url}/sandbox/tenants/{target_id}/expire-delta", json={}).status_code == 200
    r = target.get(link)
    assert r.status_code == 410 and error_of(r)["code"] == "resyncRequired"
    assert "Resync required" in error_of(r)["message"]
    assert target.get(f"/drives/{did}/root/delta").status_code == 200
    r = target.get(f"/drives/{did}/root/delta", params={"token": "not-a-token"})
    assert r.status_code == 400


def test_delta_function_call_forms(target, drive):
    """learn.microsoft.com/graph/api/driveitem-delta (delta is an OData function): .../delta() and
    .../delta(token='...'), the forms msgraph-sdk's request builders send, behave as ?token=."""
    did = drive["id"]
    new_file(target, did, "fn.txt", b"f")
    body = target.get(f"/drives/{did}/items/root/delta()").json()
    assert "fn.txt" in [i["name"] for i in body["value"]] and "@odata.deltaLink" in body
    latest = target.get(f"/drives/{did}/items/root/delta(token='latest')").json()
    assert latest["value"] == []
    token = dict(parse_qsl(urlsplit(body["@odata.deltaLink"]).query))["token"]
    later = new_file(target, did, "later.txt", b"l")
    changes = target.get(f"/drives/{did}/root/delta(token='{token}')").json()
    assert later["id"] in [i["id"] for i in changes["value"]]
    assert "fn.txt" not in [i["name"] for i in changes["value"]]


# ---- batching, throttling, hashes, bandwidth --------------------------------------------------------------
def test_batch_drive_requests(target, drive):
    """learn.microsoft.com/graph/json-batching: drive GETs inside $batch, each with its own status and
    body."""
    did = drive["id"]
    item = new_file(target, did, "batched.txt", b"b")
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/drives/{did}"},
            {"id": "2", "method": "GET", "url": f"/drives/{did}/root/children"},
            {"id": "3", "method": "GET", "url": f"/drives/{did}/items/{item['id']}"},
            {"id": "4", "method": "GET", "url": f"/drives/{did}/items/01MISSING"},
        ]
    }
    r = target.post("/$batch", json=body)
    assert r.status_code == 200
    res = {x["id"]: x for x in r.json()["responses"]}
    assert [res[k]["status"] for k in "1234"] == [200, 200, 200, 404]
    assert res["1"]["body"]["id"] == did
    assert [c["name"] for c in res["2"]["body"]["value"]] == ["batched.txt"]
    assert res["3"]["body"]["size"] == 1
    assert res["4"]["body"]["error"]["code"] == "itemNotFound"


def test_sharepoint_resource_unit_costs(target, drive):
    """learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-
    sharepoint-online (resource units, as learn.microsoft.com/graph/throttling-limits refers): a single item
    GET costs 1, a multi-item request (children, delta without token) 2, a write 2."""
    did = drive["id"]
    assert target.get(f"/drives/{did}/root").headers["x-ms-resource-unit"] == "1"
    assert target.get(f"/drives/{did}/root/children").headers["x-ms-resource-unit"] == "2"
    assert target.get(f"/drives/{did}/root/delta").headers["x-ms-resource-unit"] == "2"
    r = target.get(f"/drives/{did}/root/delta", params={"token": "latest"})
    assert r.headers["x-ms-resource-unit"] == "1"
    assert put_file(target, did, "ru.txt", b"r").headers["x-ms-resource-unit"] == "2"


def test_quick_xor_hash_of_generated_large_file(sandbox_url, target_id, target, drive):
    """learn.microsoft.com/onedrive/developer/code-snippets/quickxorhash and resources/hashes: the
    quickXorHash reported for a file equals the hash of the bytes its download URL streams."""
    size = 5 * MiB + 321
    r = httpx.post(
        f"{sandbox_url}/sandbox/tenants/{target_id}/files",
        json={"drive": drive["id"], "path": "gen/large.bin", "size": size, "seed": unique("seed")},
    )
    assert r.status_code == 200, r.text
    item = target.get(f"/drives/{drive['id']}/items/{r.json()['id']}").json()
    assert item["size"] == size
    h = quickxorhash()
    n = 0
    with httpx.stream("GET", item["@microsoft.graph.downloadUrl"]) as resp:
        for piece in resp.iter_bytes():
            h.update(piece)
            n += len(piece)
    assert n == size
    assert item["file"]["hashes"]["quickXorHash"] == base64.b64encode(h.digest()).decode()


class _RecordingLinks(drives_api._Links):
    """The download pacer, recording the bytes it paced and the link time it reserved for them. The
    reservation is read from the pacer's schedule (a lower bound that does not depend on machine speed)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: dict[str, int] = {}
        self.reserved: dict[str, float] = {}

    async def pace(self, world, tid, direction, n):  # type: ignore[no-untyped-def]
        called = time.monotonic()
        before = self.free.get((tid, direction), float("-inf"))
        await super().pace(world, tid, direction, n)
        self.bytes[direction] = self.bytes.get(direction, 0) + n
        after = self.free.get((tid, direction), before)
        if after != before:
            self.reserved[direction] = (
                self.reserved.get(direction, 0.0) + after - max(called - drives_api.LINK_SLACK_S, before)
            )


@pytest.fixture
def bandwidth(sandbox_url, monkeypatch) -> Iterator[_RecordingLinks]:
    links = _RecordingLinks()
    monkeypatch.setattr(drives_api, "_LINKS", links)
    r = httpx.post(f"{sandbox_url}/sandbox/faults", json={"bandwidth_mbps": 400})
    assert r.status_code == 200, r.text
    try:
        yield links
    finally:
        httpx.post(f"{sandbox_url}/sandbox/faults", json={"bandwidth_mbps": None})


def test_bandwidth_paces_downloads(sandbox_url, target_id, target, drive, bandwidth):
    """Sandbox setting (graph-facts.md, issue 3 item 3): --bandwidth-mbps paces content downloads: every byte
    sent passes through the pacer, which reserves at least bytes*8/bandwidth seconds of the tenant's link;
    the bytes are counted in /sandbox/stats; with no bandwidth set nothing is reserved."""
    data = b"w" * (300 * KiB)
    item = new_file(target, drive["id"], "paced.bin", data)
    bandwidth.bytes.clear()
    bandwidth.reserved.clear()
    before = httpx.get(f"{sandbox_url}/sandbox/stats").json()["tenants"][target_id]["bytes_out"]
    r = httpx.get(item["@microsoft.graph.downloadUrl"])
    assert r.content == data
    after = httpx.get(f"{sandbox_url}/sandbox/stats").json()["tenants"][target_id]["bytes_out"]
    assert after - before == len(data)
    assert bandwidth.bytes == {"out": len(data)}
    assert bandwidth.reserved["out"] >= len(data) * 8 / 400e6 * (1 - 1e-9)
    r = httpx.get(item["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=0-999"})
    assert r.status_code == 206 and bandwidth.bytes["out"] == len(data) + 1000
    assert httpx.post(f"{sandbox_url}/sandbox/faults", json={"bandwidth_mbps": None}).status_code == 200
    reserved = bandwidth.reserved["out"]
    assert httpx.get(item["@microsoft.graph.downloadUrl"]).content == data
    assert bandwidth.bytes["out"] == 2 * len(data) + 1000 and bandwidth.reserved["out"] == reserved


def test_created_by_names_the_calling_application(target, drive, sandbox_url, target_id):
    """driveItem resource: createdBy and lastModifiedBy are identitySets naming who created and who last
    changed the item; for an app-only call that is the application, by its id. Created by simple upload, by
    upload session and as a folder, the item names the caller's app; replaced by another app, it names that
    app as the last to modify it and keeps its creator."""
    me = "00000000-0000-0000-0000-00000000c0de"  # graph_client's app (sandbox.testing.token)
    did = drive["id"]
    simple = new_file(target, did, "by/simple.txt", b"hello")
    folder = new_folder(target, did, unique("By"))
    up = session(target, did, "by/session.bin")
    assert put_chunk(up["uploadUrl"], b"x" * 10, 0, 10).status_code == 201
    made = target.get(f"/drives/{did}/root:/by/session.bin").json()
    for item in (simple, folder, made):
        assert item["createdBy"]["application"]["id"] == me, item["createdBy"]
    other = "00000000-0000-0000-0000-0000000beef2"
    with httpx.Client(
        base_url=f"{sandbox_url}/v1.0",
        headers={"Authorization": f"Bearer {token(sandbox_url, target_id, client_id=other)}"},
        timeout=30,
    ) as them:
        changed = new_file(them, did, "by/simple.txt", b"changed")
    assert changed["createdBy"]["application"]["id"] == me
    assert changed["lastModifiedBy"]["application"]["id"] == other
