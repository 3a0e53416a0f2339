"""Where Migration API packages are staged, and how SharePoint is let in.

- Own storage (default): two containers per package (content, manifests; the API wants them apart) in the
  academy's landing-zone staging account, created with the operator's Azure credential; SharePoint reads
  them through a **user delegation SAS** (signed by a key Entra issues to the operator; no account key exists
  in this path) granting exactly what Microsoft requires: Read+List on content, Read+List+Write on manifests.
- SharePoint-provided containers (`staging.containers: provided`): `ProvisionMigrationContainers` gives
  container URIs with SAS and the AES key; nothing of ours holds the data.

Storage is always reached over verified TLS: the system's CAs, or a CA file named by `TRUSTFOLD_STAGING_CA`
(a rehearsal's own, for Azurite over HTTPS). Verification is never turned off.

Rehearsals (a sandbox as Graph, `TRUSTFOLD_STAGING_URL` on loopback):
- Azurite over HTTPS with OAuth (`sandbox.azurite.running_azurite(tls=...)`): the production path exactly,
  user delegation key and all; the sandbox's token endpoint stands in for the operator's Entra sign-in.
- Azurite over plain HTTP (`make demo`, the quick tests): Azurite serves no user delegation keys without
  HTTPS and OAuth, so `TRUSTFOLD_STAGING_REHEARSAL_KEY` (a per-run key the rehearsal helpers generate) signs
  the SAS instead. REHEARSAL ONLY: refused unless the storage is loopback and Graph is a sandbox, so it can
  never reach a real account.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from migrations.files.bulk.sharepoint_rest import SharePointRest
from trust import Academy, ConfigError, Trust

URL_ENV = "TRUSTFOLD_STAGING_URL"
REHEARSAL_KEY_ENV = "TRUSTFOLD_STAGING_REHEARSAL_KEY"
CA_ENV = "TRUSTFOLD_STAGING_CA"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SAS_DAYS = 7  # long enough for SharePoint to finish the import (Microsoft: "allow a reasonable duration")
# A user delegation key must expire "within 7 days of the current time" (the service's clock, not ours): keep
# a margin for clock skew rather than ask for exactly seven days.
SKEW = timedelta(minutes=10)


@dataclass
class Containers:
    source: str  # container URL; with a SAS when SharePoint provided it (then kept only in the secrets file)
    manifest: str
    key: bytes | None = None  # SharePoint's key for provided containers


def tls_verify() -> str | bool:
    """What storage clients verify TLS against: the system's CAs, or the CA file `TRUSTFOLD_STAGING_CA` names
    (a rehearsal's Azurite over HTTPS). Never False."""
    ca = os.environ.get(CA_ENV)
    if not ca:
        return True
    if not os.path.isfile(ca):
        raise ConfigError("environment", f"{ca} is not a file (a PEM CA certificate)", field=CA_ENV)
    return ca


class OwnStaging:
    kind = "own"

    def __init__(
        self,
        account_url: str,
        credential: Any,
        *,
        rehearsal_key: str | None = None,
        verify: str | bool = True,
    ) -> None:
        """`credential`: the operator's TokenCredential (it asks for the user delegation key), or, with
        `rehearsal_key`, a loopback Azurite's account key (rehearsal only; see the module doc)."""
        self.account_url = account_url.rstrip("/")
        parts = urlsplit(self.account_url)
        # Azurite names the account in the path; Azure in the host name.
        self.account = parts.path.strip("/") or (parts.hostname or "").split(".")[0]
        self.credential = credential
        self.rehearsal_key = rehearsal_key
        self.verify = verify

    def _service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(self.account_url, credential=self.credential, connection_verify=self.verify)

    async def create(self, package_id: str, site_url: str) -> Containers:
        short = package_id.replace("-", "")[:24]
        names = (f"staging-{short}-c", f"staging-{short}-m")

        def make() -> None:
            from azure.core.exceptions import ResourceExistsError

            svc = self._service()
            for n in names:
                with contextlib.suppress(ResourceExistsError):
                    svc.create_container(n)

        await asyncio.to_thread(make)
        return Containers(f"{self.account_url}/{names[0]}", f"{self.account_url}/{names[1]}")

    def client(self, container_url: str) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_container_url(
            container_url, credential=self.credential, connection_verify=self.verify
        )

    def protocol(self) -> str:
        """The SAS's `spr`: HTTPS only, so a SAS that leaks can never be replayed in clear text. The one
        exception is the account-key rehearsal over plain HTTP (Azurite without TLS), which `own_staging`
        allows only on loopback with a sandbox as Graph: there the SAS says "https,http"."""
        if self.rehearsal_key is not None and urlsplit(self.account_url).scheme == "http":
            if urlsplit(self.account_url).hostname not in LOOPBACK:
                raise ConfigError(
                    "environment", "a plain-HTTP staging account must be loopback", field=URL_ENV
                )
            return "https,http"
        return "https"

    async def job_uris(self, c: Containers) -> tuple[str, str]:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        now = datetime.now(UTC)
        start, expiry = now - timedelta(minutes=5), now + timedelta(days=SAS_DAYS) - SKEW
        signing: dict[str, Any]
        if self.rehearsal_key is not None:
            signing = {"account_key": self.rehearsal_key}  # REHEARSAL ONLY: loopback Azurite over HTTP
        else:
            # Entra-backed: the key is issued to the operator's identity for at most 7 days, and revoking
            # that identity's role (or the key) revokes every SAS signed with it.
            key = await asyncio.to_thread(self._service().get_user_delegation_key, start, expiry)
            signing = {"user_delegation_key": key}
        out = []
        for url, perm in (
            (c.source, ContainerSasPermissions(read=True, list=True)),
            (c.manifest, ContainerSasPermissions(read=True, list=True, write=True)),
        ):
            name = url.rsplit("/", 1)[1]
            sas = generate_container_sas(
                self.account,
                name,
                permission=perm,
                start=start,
                expiry=expiry,
                protocol=self.protocol(),
                **signing,
            )
            out.append(f"{url}?{sas}")
        return out[0], out[1]

    async def delete(self, c: Containers) -> None:
        def drop() -> None:
            from azure.core.exceptions import ResourceNotFoundError

            svc = self._service()
            for url in (c.source, c.manifest):
                with contextlib.suppress(ResourceNotFoundError):
                    svc.delete_container(url.split("?")[0].rsplit("/", 1)[1])

        await asyncio.to_thread(drop)


class ProvidedStaging:
    kind = "provided"

    def __init__(self, rest: SharePointRest, verify: str | bool = True) -> None:
        self.rest = rest
        self.verify = verify

    async def create(self, package_id: str, site_url: str) -> Containers:
        import base64

        got = await self.rest.call("POST", site_url, "site/ProvisionMigrationContainers")
        return Containers(
            got["DataContainerUri"], got["MetadataContainerUri"], base64.b64decode(got["EncryptionKey"])
        )

    def client(self, container_url: str) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_container_url(container_url, connection_verify=self.verify)

    async def job_uris(self, c: Containers) -> tuple[str, str]:
        return c.source, c.manifest

    async def delete(self, c: Containers) -> None:
        """SharePoint destroys provided containers 30-90 days after the job (migration-azure.md)."""


def own_staging(trust: Trust, academy: Academy, graph_url: str | None = None) -> OwnStaging | None:
    """The academy's staging storage, or None when none is reachable (a rehearsal without Azurite).
    `graph_url` is the connections' Graph stand-in (`--graph-url`), set only when rehearsing."""
    url, key = os.environ.get(URL_ENV), os.environ.get(REHEARSAL_KEY_ENV)
    sandbox = graph_url or os.environ.get("TRUSTFOLD_GRAPH_URL")
    if url:
        host = urlsplit(url).hostname
        if key is not None:
            _rehearsal_only(host, sandbox)
            from migrations.safety.redaction import register_secret

            register_secret(key)
            account = urlsplit(url).path.strip("/")
            return OwnStaging(url, {"account_name": account, "account_key": key}, rehearsal_key=key)
        if sandbox:
            if host not in LOOPBACK:
                raise ConfigError(
                    "environment",
                    f"a rehearsal stages on loopback storage only, not {host}",
                    field=URL_ENV,
                )
            from migrations.graph.sandbox_credential import SandboxCredential

            # The sandbox's token endpoint stands in for the operator's Entra sign-in; the rest (user
            # delegation key, SAS, TLS verification) is the production path.
            return OwnStaging(url, SandboxCredential(sandbox, trust.tenant.id), verify=tls_verify())
        return OwnStaging(url, _operator_credential(), verify=tls_verify())
    if sandbox:
        return None  # rehearsing against a sandbox: no real storage may be touched
    return OwnStaging(
        f"https://{trust.names.staging_storage_account(academy)}.blob.core.windows.net",
        _operator_credential(),
        verify=tls_verify(),
    )


def _rehearsal_only(host: str | None, sandbox: str | None) -> None:
    """An account key signs SAS only for a rehearsal: loopback Azurite, Graph a sandbox."""
    if host not in LOOPBACK:
        raise ConfigError(
            "environment",
            f"an account key is accepted only for a loopback rehearsal storage, not {host}",
            field=REHEARSAL_KEY_ENV,
        )
    if not sandbox:
        raise ConfigError(
            "environment",
            "an account key is accepted only in a rehearsal against a sandbox (--graph-url); "
            "real staging uses the operator's Azure sign-in and user delegation SAS",
            field=REHEARSAL_KEY_ENV,
        )


def _operator_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    # The operator's own Entra sign-in (Azure CLI, environment, managed identity): never an account key.
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
