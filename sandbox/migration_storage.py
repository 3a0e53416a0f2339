"""The sandbox SharePoint's side of Azure Storage: containers and queues it provisions in its own storage
(account key: it is SharePoint's), job events posted to the report queue (encrypted as documented), and
packages read with exactly the SAS a job was given: latest snapshots, IV metadata, AES-256-CBC decryption
streamed into the drives' content store."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sandbox import drives_content as content_mod
from sandbox.migration_package import PackageRefused
from sandbox.migration_service import Job, MigrationService


# ---- provisioning (SharePoint's own storage) ---------------------------------------------------------------
def _need_storage(svc: MigrationService) -> None:
    if not (svc.blob_url and svc.queue_url and svc.account and svc.key):
        raise PackageRefused("this sandbox has no storage for provided containers (start it with Azurite)")


def provision_containers(svc: MigrationService) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    _need_storage(svc)
    assert svc.blob_url and svc.account and svc.key
    client = BlobServiceClient(
        svc.blob_url,
        credential={"account_name": svc.account, "account_key": svc.key},
        connection_verify=svc.verify,
    )
    expiry = datetime.now(UTC) + timedelta(days=30)
    out = {}
    for label in ("DataContainerUri", "MetadataContainerUri"):
        name = f"spo-{uuid.uuid4().hex}"
        client.create_container(name)
        # "The SAS access token contains Read and Write permissions only. It doesn't contain List."
        sas = generate_container_sas(
            svc.account,
            name,
            account_key=svc.key,
            permission=ContainerSasPermissions(read=True, write=True),
            expiry=expiry,
        )
        svc.provided.add(f"{svc.blob_url}/{name}")
        out[label] = f"{svc.blob_url}/{name}?{sas}"
    out["EncryptionKey"] = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
    return out


def provision_queue(svc: MigrationService) -> dict[str, Any]:
    from azure.storage.queue import QueueSasPermissions, QueueServiceClient, generate_queue_sas

    _need_storage(svc)
    assert svc.queue_url and svc.account and svc.key
    name = f"spo-{uuid.uuid4().hex}"
    QueueServiceClient(
        svc.queue_url,
        credential={"account_name": svc.account, "account_key": svc.key},
        connection_verify=svc.verify,
    ).create_queue(name)
    sas = generate_queue_sas(
        svc.account,
        name,
        svc.key,
        permission=QueueSasPermissions(read=True, add=True, update=True, process=True),
        expiry=datetime.now(UTC) + timedelta(days=30),
    )
    svc.provided.add(f"{svc.queue_url}/{name}")
    return {"JobQueueUri": f"{svc.queue_url}/{name}?{sas}"}


def plain_url(url: str) -> str:
    return url.split("?")[0].rstrip("/")


def post_event(job: Job, event: str, fields: dict[str, Any]) -> None:
    record = {
        "Event": event,
        "JobId": job.id,
        "Time": datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S.%f")[:-3],
    }
    record.update({k: str(v) for k, v in fields.items()})
    job.events.append(event)
    job.log.append(json.dumps(record))  # GetMigrationJobProgress's Logs hold the same, unencrypted
    if not job.queue:
        return
    from azure.storage.queue import QueueClient

    if job.key:
        iv = uuid.uuid4().bytes
        enc = Cipher(algorithms.AES(job.key), modes.CBC(iv)).encryptor()
        pad = padding.PKCS7(128).padder()
        data = enc.update(pad.update(json.dumps(record).encode()) + pad.finalize()) + enc.finalize()
        text = json.dumps(
            {
                "Label": "Encrypted",
                "JobId": job.id,
                "IV": base64.b64encode(iv).decode(),
                "Content": base64.b64encode(data).decode(),
            }
        )
    else:
        text = json.dumps(record)
    QueueClient.from_queue_url(job.queue, connection_verify=job.verify).send_message(text)


def container_client(svc: MigrationService, url: str) -> Any:
    from azure.storage.blob import ContainerClient

    if plain_url(url) in svc.provided:
        # SharePoint reads its own containers with its own rights (the SAS it handed out has no List).
        assert svc.account and svc.key
        return ContainerClient.from_container_url(
            plain_url(url),
            credential={"account_name": svc.account, "account_key": svc.key},
            connection_verify=svc.verify,
        )
    return ContainerClient.from_container_url(url, connection_verify=svc.verify)


def latest_blobs(container: Any) -> dict[str, Any]:
    """Blob name -> {"snapshot": latest snapshot or None, "etag" of that snapshot, "base": the live blob's
    etag, "metadata"}."""
    out: dict[str, dict[str, Any]] = {}
    for b in container.list_blobs(include=["metadata", "snapshots"]):
        blank: dict[str, Any] = {"snapshot": None, "metadata": {}, "size": 0, "etag": None, "base": None}
        cur = out.setdefault(b.name, blank)
        if b.snapshot:
            if cur["snapshot"] is None or b.snapshot > cur["snapshot"]:
                cur.update(snapshot=b.snapshot, etag=b.etag, metadata=dict(b.metadata or {}), size=b.size)
        else:
            cur["base"] = b.etag
            if cur["snapshot"] is None:
                cur.update(metadata=dict(b.metadata or {}), size=b.size)
    return out


class Unreadable(Exception):
    pass


def read_blob(container: Any, name: str, info: dict[str, Any], key: bytes | None) -> bytes:
    """The blob as of its latest snapshot. Azurite 3.37 refuses snapshot reads under a container SAS (a
    signature bug; Azure allows them), so the live blob is read when its etag is still the snapshot's, that
    is unchanged since; otherwise the file is refused (stricter than reading the snapshot)."""
    snapshot = info["snapshot"]
    if snapshot is not None and info["etag"] == info["base"]:
        snapshot = None
    elif snapshot is not None:
        raise Unreadable(f"{name} changed after its latest snapshot")
    data = container.get_blob_client(name, snapshot=snapshot).download_blob().readall()
    if key is None:
        return bytes(data)
    iv = info["metadata"].get("IV") or info["metadata"].get("iv")
    if not iv:
        raise Unreadable(f"{name} has no IV property: it is not encrypted")
    try:
        dec = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(iv))).decryptor()
        unpad = padding.PKCS7(128).unpadder()
        return unpad.update(dec.update(bytes(data)) + dec.finalize()) + unpad.finalize()
    except ValueError:
        raise Unreadable(f"{name} does not decrypt with the job's key and its IV") from None


def read_file(
    container: Any, name: str, info: dict[str, Any], key: bytes | None
) -> tuple[dict[str, Any], str]:
    """A content blob decrypted into the drives' content store in pieces (memory stays flat)."""
    snapshot = info["snapshot"]
    if snapshot is not None and info["etag"] != info["base"]:
        raise Unreadable(f"{name} changed after its latest snapshot")  # see read_blob
    stream = container.get_blob_client(name).download_blob()
    spool = content_mod.Spool(f"mig-{uuid.uuid4().hex}", max(int(info["size"]), 0))
    try:
        if key is None:
            for chunk in stream.chunks():
                spool.write(chunk)
        else:
            iv = info["metadata"].get("IV")
            if not iv:
                raise Unreadable(f"{name} has no IV property: it is not encrypted")
            dec = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(iv))).decryptor()
            unpad = padding.PKCS7(128).unpadder()
            for chunk in stream.chunks():
                spool.write(unpad.update(dec.update(chunk)))
            try:
                spool.write(unpad.update(dec.finalize()) + unpad.finalize())
            except ValueError:
                raise Unreadable(f"{name} does not decrypt with the job's key and its IV") from None
        return spool.finish()
    except BaseException:
        spool.discard()
        raise
