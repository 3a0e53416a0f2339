"""The sandbox's Migration API refuses what Microsoft documents it refuses (docs/sandbox.md): a Graph token on
SharePoint REST, an unencrypted package in SharePoint-provided containers, SAS tokens granting other rights
than the documented ones, the same container for content and manifests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)
from azure.storage.queue import QueueClient

from migrations.files.bulk import crypto
from migrations.files.bulk import manifest as mf
from sandbox.azurite import Azurite
from sandbox.migration_api import configure
from sandbox.testing import app_only_token, running_sandbox, token
from tests.identity.conftest import CONFIG, TARGET

SITE = "/sites/hillside-staff"


@pytest.fixture(scope="module")
def sp(azurite: Azurite) -> Iterator[dict[str, Any]]:
    with running_sandbox(CONFIG, size=20, seed=5) as url:
        configure(
            url.world,
            blob_url=azurite.blob_url,
            queue_url=azurite.queue_url,
            account=azurite.account,
            key=azurite.key,
        )
        host = url.world.tenant(TARGET).drives.host
        # App-only SharePoint REST takes certificate tokens only (see the test below).
        tok = app_only_token(url, TARGET, f"https://{host}/.default")
        client = httpx.Client(base_url=f"{url}{SITE}/_api", headers={"Authorization": f"Bearer {tok}"})
        yield {"url": url, "client": client, "token": tok}
        client.close()


def test_sharepoint_rest_and_graph_each_need_their_own_audience(sp: dict[str, Any]) -> None:
    url, client = sp["url"], sp["client"]
    assert client.get("/web").status_code == 200
    graph_token = token(url, TARGET)
    wrong = httpx.get(f"{url}{SITE}/_api/web", headers={"Authorization": f"Bearer {graph_token}"})
    assert wrong.status_code == 401 and "audience" in wrong.text
    on_graph = httpx.get(f"{url}/v1.0/users", headers={"Authorization": f"Bearer {sp['token']}"})
    assert on_graph.status_code == 401


def _package(client: httpx.Client) -> dict[str, bytes]:
    web = client.get("/web").json()
    lst = client.get(f"/web/GetList('{SITE}/Shared%20Documents')").json()
    lib = mf.Library(
        f"https://h{SITE}",
        web["Id"],
        SITE,
        lst["Id"],
        lst["Title"],
        "Shared Documents",
        lst["RootFolder"]["UniqueId"],
    )
    f = mf.File(
        "22222222-0000-4000-8000-000000000000",
        "11111111-0000-4000-8000-000000000000",
        "plain.txt",
        lst["RootFolder"]["UniqueId"],
        5,
        "1.dat",
        "",
        "",
    )
    return {**mf.build(mf.Package(lib, [], [f], [])), "1.dat": b"hello"}


def _events(queue_uri: str, key: bytes | None, want: str = "JobEnd") -> list[dict[str, Any]]:
    q = QueueClient.from_queue_url(queue_uri)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not any(e.get("Event") == want for e in got):
        assert time.monotonic() < deadline, got
        for m in q.receive_messages():
            got.append(crypto.decrypt_message(m.content, key) if key else json.loads(m.content))
            q.delete_message(m)
        time.sleep(0.05)
    return got


def test_migration_api_refuses_app_only_tokens_got_with_a_client_secret(sp: dict[str, Any]) -> None:
    """learn.microsoft.com/sharepoint/dev/solution-guidance/security-apponly-azuread: app-only access to
    SharePoint REST (the Migration API's routes among it) needs a certificate; a token the app got with a
    client secret is refused ("Unsupported app only token.")."""
    url = sp["url"]
    host = url.world.tenant(TARGET).drives.host
    secret = app_only_token(url, TARGET, f"https://{host}/.default", certificate=False)
    for method, path in (("GET", "/web"), ("POST", "/site/ProvisionMigrationContainers")):
        r = httpx.request(method, f"{url}{SITE}/_api{path}", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401 and "Unsupported app only token." in r.text, (path, r.text)
    assert sp["client"].get("/web").status_code == 200


def test_unencrypted_package_in_provided_containers_is_refused(sp: dict[str, Any]) -> None:
    client = sp["client"]
    web = client.get("/web").json()
    prov = client.post("/site/ProvisionMigrationContainers").json()
    assert "sp=rw" in prov["DataContainerUri"] and "l" not in prov["DataContainerUri"].split("sp=")[1][:3]
    queue = client.post("/site/ProvisionMigrationQueue").json()["JobQueueUri"]
    files = _package(client)
    for name, data in files.items():
        where = prov["DataContainerUri"] if name.endswith(".dat") else prov["MetadataContainerUri"]
        blob = ContainerClient.from_container_url(where).get_blob_client(name)
        blob.upload_blob(data)
        blob.create_snapshot()
    key = prov["EncryptionKey"]
    body = {
        "gWebId": web["Id"],
        "azureContainerSourceUri": prov["DataContainerUri"],
        "azureContainerManifestUri": prov["MetadataContainerUri"],
        "azureQueueReportUri": queue,
        "options": {"AES256CBCKey": key},
    }
    job = client.post("/site/CreateMigrationJobEncrypted", json=body)
    assert job.status_code == 200, job.text
    events = _events(queue, crypto.unb64(key))
    fatal = [e for e in events if e["Event"] == "JobFatalError"]
    assert fatal and "unencrypted package in SharePoint-provided containers" in fatal[0]["Message"]
    assert next(e for e in events if e["Event"] == "JobEnd")["FilesCreated"] == "0"
    status = client.post("/site/GetMigrationJobStatus", json={"id": job.json()["value"]}).json()["value"]
    assert status == 0  # finished jobs leave the queue (SPMigrationJobState None)


def test_sas_rights_and_containers_are_checked_at_job_creation(sp: dict[str, Any], azurite: Azurite) -> None:
    client = sp["client"]
    web = client.get("/web").json()
    svc = BlobServiceClient(
        azurite.blob_url, credential={"account_name": azurite.account, "account_key": azurite.key}
    )
    for n in ("own-c", "own-m"):
        svc.create_container(n)

    def sas(name: str, **perm: bool) -> str:
        token_ = generate_container_sas(
            azurite.account,
            name,
            account_key=azurite.key,
            permission=ContainerSasPermissions(**perm),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        return f"{azurite.blob_url}/{name}?{token_}"

    good_src, good_man = sas("own-c", read=True, list=True), sas("own-m", read=True, list=True, write=True)
    cases = {
        "source SAS with write": (
            sas("own-c", read=True, list=True, write=True),
            good_man,
            "azureContainerSourceUri",
        ),
        "manifest SAS without list": (
            good_src,
            sas("own-m", read=True, write=True),
            "azureContainerManifestUri",
        ),
        "same container": (good_src, sas("own-c", read=True, list=True, write=True), "cannot be the one"),
    }
    for label, (src, man, needle) in cases.items():
        r = client.post(
            "/site/CreateMigrationJobEncrypted",
            json={
                "gWebId": web["Id"],
                "azureContainerSourceUri": src,
                "azureContainerManifestUri": man,
                "options": {"AES256CBCKey": crypto.b64(crypto.new_key())},
            },
        )
        assert r.status_code == 400 and needle in r.text, (label, r.text)
    wrong_web = client.post(
        "/site/CreateMigrationJobEncrypted",
        json={
            "gWebId": "00000000-0000-4000-8000-000000000000",
            "azureContainerSourceUri": good_src,
            "azureContainerManifestUri": good_man,
            "options": {"AES256CBCKey": crypto.b64(crypto.new_key())},
        },
    )
    assert wrong_web.status_code == 400 and "gWebId" in wrong_web.text


def _own_job(client: httpx.Client, azurite: Azurite, queue: str | None = None) -> str:
    """A plain package staged in containers of our own (account-key SAS with the documented rights) and a
    job created for it, WITHOUT a report queue unless one is given: the way after queues are retired."""
    svc = BlobServiceClient(
        azurite.blob_url, credential={"account_name": azurite.account, "account_key": azurite.key}
    )
    short = uuid.uuid4().hex[:12]
    uris = {}
    for label, perm in (
        ("c", {"read": True, "list": True}),
        ("m", {"read": True, "list": True, "write": True}),
    ):
        name = f"prog-{short}-{label}"
        svc.create_container(name)
        sig = generate_container_sas(
            azurite.account, name, account_key=azurite.key, permission=ContainerSasPermissions(**perm),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )  # fmt: skip
        uris[label] = f"{azurite.blob_url}/{name}?{sig}"
    for name, data in _package(client).items():
        blob = svc.get_container_client(f"prog-{short}-{'c' if name.endswith('.dat') else 'm'}")
        b = blob.get_blob_client(name)
        b.upload_blob(data)
        b.create_snapshot()
    web = client.get("/web").json()["Id"]
    body = {"gWebId": web, "azureContainerSourceUri": uris["c"], "azureContainerManifestUri": uris["m"]}
    if queue is not None:
        body["azureQueueReportUri"] = queue
    job = client.post("/site/CreateMigrationJob", json=body)
    assert job.status_code == 200, job.text
    return str(job.json()["value"])


VERBOSE = {"Accept": "application/json;odata=verbose"}


def test_job_progress_pages_events_by_token_without_a_queue(sp: dict[str, Any], azurite: Azurite) -> None:
    """migration-job-progress-api-reference: `GET .../_api/site/GetMigrationJobProgress(jobId='{jobId}',
    nextToken=0)` returns `d.GetMigrationJobProgress.Logs.results` (each event a JSON string: JobQueued,
    JobStart, JobProgress, JobError, JobEnd) and `NextToken`, the same token and no logs when nothing is new;
    requests are idempotent for a completed job; an unknown job is 500 with internal code -2147213145."""
    client = sp["client"]
    job = _own_job(client, azurite)
    token_, events, deadline = "0", [], time.monotonic() + 60
    while not any(e["Event"] == "JobEnd" for e in events):
        assert time.monotonic() < deadline, events
        r = client.get(f"/site/GetMigrationJobProgress(jobId='{job}',nextToken={token_})", headers=VERBOSE)
        assert r.status_code == 200, r.text
        got = r.json()["d"]["GetMigrationJobProgress"]
        assert got["__metadata"]["type"] == "SP.MigrationJobProgress"
        events += [json.loads(x) for x in got["Logs"]["results"]]
        token_ = got["NextToken"]
        time.sleep(0.05)
    kinds = [e["Event"] for e in events]
    assert kinds[0] == "JobQueued" and "JobStart" in kinds and kinds[-1] == "JobEnd"
    assert {e["JobId"] for e in events} == {job}
    assert next(e for e in events if e["Event"] == "JobEnd")["FilesCreated"] == "1"
    again = client.get(f"/site/GetMigrationJobProgress(jobId='{job}',nextToken={token_})", headers=VERBOSE)
    quiet = again.json()["d"]["GetMigrationJobProgress"]
    assert quiet["Logs"]["results"] == [] and quiet["NextToken"] == token_
    first = client.get(f"/site/GetMigrationJobProgress(jobId='{job}',nextToken=0)", headers=VERBOSE).json()
    assert [json.loads(x) for x in first["d"]["GetMigrationJobProgress"]["Logs"]["results"]] == events
    unknown = client.get(
        f"/site/GetMigrationJobProgress(jobId='{uuid.uuid4()}',nextToken=0)", headers=VERBOSE
    )
    assert unknown.status_code == 500 and unknown.json()["error"]["code"].startswith("-2147213145")


def test_report_queue_sas_with_extra_rights_creates_the_job_but_gets_no_events(
    sp: dict[str, Any], azurite: Azurite
) -> None:
    """migration-api-reference, azureQueueReportUri: "Requires Add, Read, and Update permissions only. If the
    SAS token has other permissions, the migration job will be unable to add events to the queue." The job is
    created and runs (its progress is read with GetMigrationJobProgress); the queue stays empty."""
    from azure.storage.queue import QueueSasPermissions, QueueServiceClient, generate_queue_sas

    client = sp["client"]
    qsvc = QueueServiceClient(
        azurite.queue_url, credential={"account_name": azurite.account, "account_key": azurite.key}
    )
    name = f"extra-{uuid.uuid4().hex[:10]}"
    qsvc.create_queue(name)
    sig = generate_queue_sas(
        azurite.account, name, azurite.key,
        permission=QueueSasPermissions(read=True, add=True, update=True, process=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    job = _own_job(client, azurite, queue=f"{azurite.queue_url}/{name}?{sig}")
    deadline, token_, events = time.monotonic() + 60, "0", []
    while not any(e["Event"] == "JobEnd" for e in events):
        assert time.monotonic() < deadline, events
        got = client.get(f"/site/GetMigrationJobProgress(jobId='{job}',nextToken={token_})", headers=VERBOSE)
        body = got.json()["d"]["GetMigrationJobProgress"]
        events += [json.loads(x) for x in body["Logs"]["results"]]
        token_ = body["NextToken"]
        time.sleep(0.05)
    assert next(e for e in events if e["Event"] == "JobEnd")["FilesCreated"] == "1"
    assert qsvc.get_queue_client(name).get_queue_properties().approximate_message_count == 0


def test_folder_lookups_decode_paths_as_sharepoint_does(sp: dict[str, Any]) -> None:
    """supporting-and-in-file-and-folder-with-the-resourcepath-api: the string APIs
    (GetFolderByServerRelativeUrl) "assume that % and # characters in a path imply that the URL has been
    encoded", so names holding them are reached only through
    `GetFolderByServerRelativePath(decodedUrl='...')`, which takes the (once HTTP-decoded) literal as the
    path. Inside an OData string literal a quote is doubled; a lone one is a malformed expression (400)."""
    url, client = sp["url"], sp["client"]
    g = httpx.Client(base_url=f"{url}/v1.0", headers={"Authorization": f"Bearer {token(url, TARGET)}"})
    site = next(s for s in g.get("/sites", params={"search": "hillside-staff"}).json()["value"]
                if s["name"] == "hillside-staff")  # fmt: skip
    drive = g.get(f"/sites/{site['id']}/drive").json()["id"]
    names = ["pct%20folder", "it's #1", "100% done", "a%41b"]
    for n in names:
        made = g.post(f"/drives/{drive}/root/children", json={"name": n, "folder": {}})
        assert made.status_code == 201, made.text
    for n in names:
        literal = quote("'" + f"{SITE}/Shared Documents/{n}".replace("'", "''") + "'", safe="/'")
        by_path = client.get(f"/web/GetFolderByServerRelativePath(decodedUrl={literal})")
        assert by_path.status_code == 200 and by_path.json()["Name"] == n, (n, by_path.text)
        by_url = client.get(f"/web/GetFolderByServerRelativeUrl({literal})")
        assert by_url.status_code == 404, (n, by_url.text)  # the string API cannot reach % or # names
    lone = quote(f"'{SITE}/Shared Documents/it's #1'", safe="/'")
    assert client.get(f"/web/GetFolderByServerRelativePath(decodedUrl={lone})").status_code == 400
    g.close()
