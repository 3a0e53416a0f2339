"""The sandbox's Migration API refuses what Microsoft documents it refuses (docs/sandbox.md): a Graph token on
SharePoint REST, an unencrypted package in SharePoint-provided containers, SAS tokens granting other rights
than the documented ones, the same container for content and manifests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

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
from sandbox.testing import running_sandbox, token
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
        form = {
            "grant_type": "client_credentials",
            "client_id": "x",
            "client_secret": "x",
            "scope": f"https://{host}/.default",
        }
        tok = httpx.post(f"{url}/{TARGET}/oauth2/v2.0/token", data=form).json()["access_token"]
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
