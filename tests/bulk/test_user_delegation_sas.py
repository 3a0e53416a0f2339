"""Staging in the operator's own storage through a user delegation SAS, on Azurite over HTTPS with OAuth
(`--oauth basic`: Azurite checks a bearer token's audience, issuer and lifetime, not its signature): the
operator's token credential gets a user delegation key, the container SAS is signed with it (no account key
on this path), TLS is verified against the test's own CA, and the sandbox's Migration API reads the staged,
encrypted package with exactly that SAS and imports it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from migrations.files.bulk import crypto
from migrations.files.bulk.blobs import once, upload
from migrations.files.bulk.staging import OwnStaging
from sandbox.azurite import Azurite, running_azurite
from sandbox.migration_api import configure, service
from sandbox.testing import client_credentials_form, running_sandbox
from tests.bulk.conftest import BulkCli, require_azurite, start
from tests.bulk.test_sandbox_migration_api import SITE, _package
from tests.bulk.tls import loopback_tls
from tests.identity.conftest import CONFIG, TARGET, bootstrapped
from trust import ConfigError


class OperatorToken:
    """The operator's Entra sign-in as a TokenCredential: a token for Azure Storage shaped like Entra's (the
    test's stand-in for DefaultAzureCredential; Azurite does not check the signature)."""

    def __init__(self, audience: str = "https://storage.azure.com") -> None:
        self.audience, self.scopes = audience, []  # type: ignore[var-annotated]

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.extend(scopes)
        now = int(time.time())
        claims = {
            "aud": self.audience,
            "iss": "https://sts.windows.net/7e57a1b2-0000-4000-8000-000000000001/",
            "tid": "7e57a1b2-0000-4000-8000-000000000001",
            "oid": "0b0e0b0e-0000-4000-8000-000000000002",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        return AccessToken(jwt.encode(claims, "unsigned-for-azurite-basic-oauth-xx"), now + 3600)


@pytest.fixture(scope="module")
def azurite_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    require_azurite()
    where = tmp_path_factory.mktemp("azurite-tls")
    with running_azurite(where / "data", tls=loopback_tls(where)) as az:
        assert az.blob_url.startswith("https://") and az.ca_file
        yield az


def _stage(staging: OwnStaging, files: dict[str, bytes], key: bytes) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        c = await staging.create(str(uuid.uuid4()), f"https://h{SITE}")
        for name, data in files.items():
            where = c.source if name.endswith(".dat") else c.manifest
            iv = crypto.new_iv()
            blob = staging.client(where).get_blob_client(name)
            await upload(blob, crypto.aencrypt_chunks(once(data), key, iv), {"IV": crypto.b64(iv)})
        return await staging.job_uris(c)

    return asyncio.run(go())


def test_user_delegation_sas_stages_a_package_sharepoint_imports(azurite_tls: Azurite) -> None:
    az, operator = azurite_tls, OperatorToken()
    assert az.ca_file is not None
    with running_sandbox(CONFIG, size=20, seed=5) as url:
        configure(url.world, blob_url=az.blob_url, queue_url=az.queue_url, account=az.account, key=az.key,
                  ca_file=az.ca_file)  # fmt: skip
        host = url.world.tenant(TARGET).drives.host
        form = client_credentials_form(
            url, TARGET, "x", f"https://{host}/.default"
        )  # a certificate's assertion
        tok = httpx.post(f"{url}/{TARGET}/oauth2/v2.0/token", data=form).json()["access_token"]
        # The sandbox's Entra also issues Azure Storage tokens (a rehearsal's operator sign-in): no roles
        # (Storage authorises by RBAC), the service principal's oid; Graph refuses them.
        storage = dict(form, scope="https://storage.azure.com/.default")
        stok = httpx.post(f"{url}/{TARGET}/oauth2/v2.0/token", data=storage).json()["access_token"]
        claims = jwt.decode(stok, options={"verify_signature": False})
        assert claims["aud"] == "https://storage.azure.com" and claims["oid"] and claims["roles"] == []
        refused = httpx.get(f"{url}/v1.0/users", headers={"Authorization": f"Bearer {stok}"})
        assert refused.status_code == 401 and "Invalid audience" in refused.text
        with httpx.Client(base_url=f"{url}{SITE}/_api", headers={"Authorization": f"Bearer {tok}"}) as sp:
            files = _package(sp)
            key = crypto.new_key()
            staging = OwnStaging(az.blob_url, operator, verify=az.ca_file)  # what own_staging builds
            src, man = _stage(staging, files, key)
            queue = sp.post("/site/ProvisionMigrationQueue").json()["JobQueueUri"]
            web = sp.get("/web").json()["Id"]
            body = {"gWebId": web, "azureContainerSourceUri": src, "azureContainerManifestUri": man,
                    "azureQueueReportUri": queue, "options": {"AES256CBCKey": crypto.b64(key)}}  # fmt: skip
            job = sp.post("/site/CreateMigrationJobEncrypted", json=body)
            assert job.status_code == 200, job.text
            events = _events(queue, az.ca_file, key)
        kinds = [e["Event"] for e in events if e["Event"] != "JobProgress"]
        assert kinds == ["JobQueued", "JobStart", "JobEnd"], events
        assert next(e for e in events if e["Event"] == "JobEnd")["FilesCreated"] == "1"
        assert list(service(url.world).imports.values()) == [1]
    # The operator's token asked for Azure Storage; the SAS are user delegation SAS with exactly the rights
    # Microsoft documents (Read+List on content, Read+List+Write on manifests), signed by no account key.
    assert operator.scopes and set(operator.scopes) == {"https://storage.azure.com/.default"}
    for uri, rights in ((src, "rl"), (man, "rwl")):
        q = {k: v[0] for k, v in parse_qs(urlsplit(uri).query).items()}
        assert q["skoid"] == "0b0e0b0e-0000-4000-8000-000000000002" and q["sktid"] and q["sp"] == rights
        # Issue #23 finding 13: the SAS is usable over HTTPS only (Azure Storage refuses it over HTTP).
        assert q["spr"] == "https", uri
        # The key expires within 7 days of now, as Azure requires (Azurite does not check it), with a margin.
        key_expiry = datetime.fromisoformat(q["ske"].replace("Z", "+00:00"))
        assert timedelta(days=6) < key_expiry - datetime.now(UTC) < timedelta(days=7) - timedelta(minutes=5)
        assert q["se"] <= q["ske"]
    assert staging.rehearsal_key is None and not isinstance(staging.credential, dict)


def test_user_delegation_sas_is_enforced_and_tls_verified(azurite_tls: Azurite) -> None:
    """Azurite honours the SAS it did not sign itself only as far as it grants; a forged signature, a write
    on the read-only content SAS and a client that does not trust the test CA are all refused."""
    az = azurite_tls
    staging = OwnStaging(az.blob_url, OperatorToken(), verify=az.ca_file or True)
    src, _ = _stage(staging, {"a.dat": b"staged bytes", "Manifest.xml": b"<x/>"}, crypto.new_key())
    reader = ContainerClient.from_container_url(src, connection_verify=az.ca_file)
    assert [b.name for b in reader.list_blobs()] == ["a.dat"]
    with pytest.raises(HttpResponseError) as denied:
        reader.get_blob_client("b.dat").upload_blob(b"no")
    assert denied.value.status_code == 403
    forged = src.replace("sig=", "sig=A")
    with pytest.raises(HttpResponseError) as bad:
        list(ContainerClient.from_container_url(forged, connection_verify=az.ca_file).list_blobs())
    assert bad.value.status_code == 403
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        # The system CAs do not know the test CA (no retries: the failure is the point).
        list(ContainerClient.from_container_url(src, retry_total=0).list_blobs())
    # A token for another audience gets no user delegation key.
    wrong = OwnStaging(az.blob_url, OperatorToken("https://graph.microsoft.com"), verify=az.ca_file or True)
    with pytest.raises((HttpResponseError, ClientAuthenticationError)):
        _stage(wrong, {}, crypto.new_key())


def _events(queue_uri: str, ca: str, key: bytes) -> list[dict[str, Any]]:
    q = QueueClient.from_queue_url(queue_uri, connection_verify=ca)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not any(e.get("Event") == "JobEnd" for e in got):
        assert time.monotonic() < deadline, got
        for m in q.receive_messages():
            got.append(crypto.decrypt_message(m.content, key))
            q.delete_message(m)
        time.sleep(0.05)
    return got


@pytest.mark.slow
def test_rehearsal_run_stages_with_user_delegation_sas(tmp_path: Path, azurite_tls: Azurite) -> None:
    """The CLI's own path (own_staging): with Azurite over HTTPS the rehearsal hands trustfold only the
    storage URL and the CA, no key; the sandbox's token endpoint stands in for the operator's sign-in, and
    every job SharePoint receives carries user delegation SAS."""
    az = azurite_tls
    assert (
        "TRUSTFOLD_STAGING_REHEARSAL_KEY" not in az.env() and az.env()["TRUSTFOLD_STAGING_CA"] == az.ca_file
    )
    config, ctx = start(tmp_path, az, size=60, seed=3)
    with ctx as url:
        bootstrapped(str(url))
        configure(url.world, blob_url=az.blob_url, queue_url=az.queue_url, account=az.account, key=az.key,
                  rate=2000, ca_file=az.ca_file)  # fmt: skip
        cli = BulkCli(url, tmp_path / "state.db", config, az.env())
        cli("discover", "hillside")
        cli("run", "hillside", "--phase", "users", "--replan")
        run = json.loads(cli("run", "hillside", "--phase", "files", "--replan", "--json").stdout)
        assert run["status"] == "succeeded", run["failures"]
        svc = service(url.world)
        assert svc.jobs and svc.imports and max(svc.imports.values()) == 1
        for job in svc.jobs.values():
            for uri in (job.source, job.manifest):
                q = parse_qs(urlsplit(uri).query)
                assert q["skoid"] and q["sktid"] and q["skv"] and q["spr"] == ["https"], uri
        verify = json.loads(cli("verify", "hillside", "--json", check=False).stdout)["files"]
        assert verify["differences"] == [] and verify["matched"] == verify["files"] - 1  # oversized video


def test_sas_protocol_is_https_but_for_the_loopback_http_rehearsal() -> None:
    """Issue #23 finding 13: every SAS trustfold signs says spr=https; only the account-key rehearsal on a
    loopback Azurite over plain HTTP (which own_staging allows nowhere else) may say "https,http"."""
    assert OwnStaging("https://acct.blob.core.windows.net", OperatorToken()).protocol() == "https"
    key = {"rehearsal_key": "a2V5"}
    assert OwnStaging("https://127.0.0.1:10000/devstoreaccount1", {}, **key).protocol() == "https"
    assert OwnStaging("http://127.0.0.1:10000/devstoreaccount1", {}, **key).protocol() == "https,http"
    with pytest.raises(ConfigError):
        OwnStaging("http://storage.example.org/acct", {}, **key).protocol()
