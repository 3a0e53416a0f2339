"""SharePoint REST for the Migration API on the sandbox address: CreateMigrationJob(Encrypted),
ProvisionMigrationContainers, ProvisionMigrationQueue, GetMigrationJobStatus, plus the few web/list/folder
reads a client needs to address a package (ids). docs/sandbox.md "SharePoint Migration API" lists what is
emulated and from which page.

Paths are the site's own: `/sites/{name}/_api/...` and `/personal/{name}/_api/...`. Tokens must be for the
SharePoint resource (`https://{tenant}.sharepoint.com`), not Graph. Jobs run on the server's event loop: the
package is read from Azurite with exactly the SAS the job was given (blob I/O in worker threads), validated
(sandbox.migration_package), decrypted and imported into the tenant's drives at `rate` files a second, with
the documented events posted (encrypted) to the report queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import drives_content as content_mod
from sandbox.drives_state import GraphError as DriveError
from sandbox.migration_package import PackageRefused, PPackage, parse
from sandbox.world import TenantState, World

log = logging.getLogger("sandbox.migration")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROGRESS_EVERY = 50
# SharePoint's SPMigrationJobState (migration-api-reference.md)
NONE, QUEUED, PROCESSING = 0, 2, 4


@dataclass
class Job:
    id: str
    tenant: str
    drive_id: str
    web_id: str
    source: str
    manifest: str
    queue: str | None
    key: bytes | None
    provided: bool
    verify: str | bool = True  # TLS verification for the report queue (a rehearsal's CA file over HTTPS)
    state: int = QUEUED
    events: list[str] = field(default_factory=list)


@dataclass
class MigrationService:
    """Per world: SharePoint's own storage (Azurite) for provided containers and queues, and the jobs."""

    blob_url: str | None = None
    queue_url: str | None = None
    account: str | None = None
    key: str | None = None
    rate: float = 200.0  # files a second per job
    verify: str | bool = True  # Azurite over HTTPS: the rehearsal's CA file (verification is never off)
    jobs: dict[str, Job] = field(default_factory=dict)
    provided: set[str] = field(default_factory=set)  # container/queue URLs (no query) SharePoint provisioned
    pending: asyncio.Queue[Job] | None = None
    worker: asyncio.Task[None] | None = None
    paused: bool = False  # tests hold queued jobs (e.g. to tamper with a staged package first)
    imports: dict[str, int] = field(default_factory=dict)  # "<drive id>/<url>" -> times imported


def service(world: World) -> MigrationService:
    svc = world.__dict__.get("_migration")
    if svc is None:
        svc = MigrationService()
        world.__dict__["_migration"] = svc
    return svc


def configure(
    world: World,
    *,
    blob_url: str,
    queue_url: str,
    account: str,
    key: str,
    rate: float = 200.0,
    ca_file: str | None = None,
) -> None:
    """Give the sandbox's SharePoint its own storage (Azurite): loopback only; over HTTPS, verified against
    `ca_file`."""
    for url in (blob_url, queue_url):
        if urlsplit(url).hostname not in LOOPBACK:
            raise ValueError(f"the sandbox only talks to loopback storage, not {url}")
    svc = service(world)
    svc.blob_url, svc.queue_url, svc.account, svc.key, svc.rate = blob_url, queue_url, account, key, rate
    svc.verify = ca_file or True


# ---- ids SharePoint would show -------------------------------------------------------------------------
def _guid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "trustfold-sandbox:" + "/".join(parts)))


def item_guid(item: dict[str, Any]) -> str:
    return str(item.get("_spguid") or _guid("item", item["id"]))


@dataclass
class Site:
    tenant: TenantState
    drive: dict[str, Any]
    web_id: str
    web_url: str  # server-relative
    site_url: str  # absolute as SharePoint shows it
    list_url: str  # web-relative


def _site(world: World, tenant: TenantState, kind: str, name: str) -> Site:
    store = tenant.drives
    if kind == "sites":
        site = next((s for s in store.sites.values() if s["name"].lower() == name.lower()), None)
        if site is None or not site["_drives"]:
            raise _NotFound()
        drive = store.drives[site["_drives"][0]]
        web_id = site["id"].split(",")[2]
    else:
        drive = next(
            (d for d in store.drives.values() if f"/personal/{name.lower()}/" in d["webUrl"].lower()), None
        )
        if drive is None:
            raise _NotFound()
        web_id = _guid("web", drive["id"])
    split = urlsplit(drive["webUrl"])
    web_url, _, list_part = split.path.rpartition("/")
    return Site(
        tenant, drive, web_id, web_url, f"{split.scheme}://{split.netloc}{web_url}", unquote(list_part)
    )


class _NotFound(Exception):
    pass


def _error(status: int, code: str, message: str) -> JSONResponse:
    """SharePoint REST's error body (JSON light)."""
    return JSONResponse(
        {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}, status
    )


def _auth(world: World, request: Request) -> tuple[TenantState | None, str]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None, "The request has no bearer token."
    try:
        claims = jwt.decode(
            header[7:].strip(), world.token_key, algorithms=["HS256"], options={"verify_aud": False}
        )
    except jwt.PyJWTError:
        return None, "Invalid token."
    tenant = world.tenant(str(claims.get("tid", "")))
    if tenant is None:
        return None, "Unknown tenant."
    prefix = tenant.drives.host.split(".")[0]
    allowed = {f"https://{prefix}.sharepoint.com", f"https://{prefix}-my.sharepoint.com"}
    if claims.get("aud") not in allowed:
        # A Graph token on SharePoint REST is refused, as SharePoint does (graph-facts.md).
        return (
            None,
            f"Invalid audience {claims.get('aud')!r}: SharePoint REST needs a token for {min(allowed)}.",
        )
    if "Sites.FullControl.All" not in (claims.get("roles") or []) and "Sites.ReadWrite.All" not in (
        claims.get("roles") or []
    ):
        return None, "The token lacks a Sites permission."
    return tenant, ""


# ---- routes ----------------------------------------------------------------------------------------------
async def _api(request: Request) -> Response:
    world: World = request.app.state.world
    tenant, problem = _auth(world, request)
    if tenant is None:
        return _error(401, "-2147024891, System.UnauthorizedAccessException", problem)
    world.stats.record(tenant.id, method=f"REST {request.method}")  # SharePoint REST counts as requests too
    kind, name, rest = request.path_params["kind"], request.path_params["name"], request.path_params["rest"]
    if kind not in ("sites", "personal"):
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    try:
        site = _site(world, tenant, kind, name)
    except _NotFound:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    op = rest.split("(")[0].rstrip("/")
    try:
        if request.method == "GET" and op == "web":
            return JSONResponse({"Id": site.web_id, "ServerRelativeUrl": site.web_url, "Url": site.site_url})
        if request.method == "GET" and op == "web/GetList":
            root = site.tenant.drives.items[site.drive["_root"]]
            return JSONResponse(
                {
                    "Id": _guid("list", site.drive["id"]),
                    "Title": site.drive["name"],
                    "RootFolder": {
                        "UniqueId": item_guid(root),
                        "ServerRelativeUrl": f"{site.web_url}/{site.list_url}",
                    },
                }
            )
        if request.method == "GET" and op in (
            "web/GetFolderByServerRelativeUrl",
            "web/GetFileByServerRelativeUrl",
        ):
            return _by_url(site, rest, "GetFolder" in op)
        if request.method != "POST":
            return _error(
                405, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException", "Method not allowed."
            )
        body = json.loads((await request.body()) or b"{}")
        svc = service(world)
        if op == "site/ProvisionMigrationContainers":
            return JSONResponse(await asyncio.to_thread(_provision_containers, svc))
        if op == "site/ProvisionMigrationQueue":
            return JSONResponse(await asyncio.to_thread(_provision_queue, svc))
        if op == "site/GetMigrationJobStatus":
            job = svc.jobs.get(str(body.get("id") or body.get("MigrationJobId") or "").lower())
            return JSONResponse({"value": job.state if job else NONE})
        if op in ("site/CreateMigrationJobEncrypted", "site/CreateMigrationJob"):
            return await _create_job(world, svc, site, body, encrypted=op.endswith("Encrypted"))
    except PackageRefused as exc:
        return _error(400, "-2147024809, System.ArgumentException", str(exc))
    return _error(404, "-1, Microsoft.SharePoint.Client.InvalidClientQueryException", f"No such method: {op}")


def _by_url(site: Site, rest: str, folder: bool) -> Response:
    arg = rest.partition("(")[2].rpartition(")")[0].strip("'").replace("''", "'")
    path = unquote(arg)
    base = f"{site.web_url}/{site.list_url}"
    if not (path == base or path.startswith(base + "/")):
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    store = site.tenant.drives
    try:
        item = store.by_path(store.items[site.drive["_root"]], path[len(base) :])
    except DriveError:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    if bool(item.get("_folder")) != folder:
        return _error(404, "-2147024894, System.IO.FileNotFoundException", "File Not Found.")
    return JSONResponse({"UniqueId": item_guid(item), "ServerRelativeUrl": path, "Name": item["name"]})


async def _configure(request: Request) -> Response:
    """Admin (not SharePoint): POST /sandbox/migration {blob_url, queue_url, account, key, rate?} gives the
    sandbox's SharePoint its storage (a rehearsal's Azurite)."""
    body = json.loads((await request.body()) or b"{}")
    try:
        configure(
            request.app.state.world,
            blob_url=str(body["blob_url"]),
            queue_url=str(body["queue_url"]),
            account=str(body["account"]),
            key=str(body["key"]),
            rate=float(body.get("rate") or 200.0),
            ca_file=str(body["ca_file"]) if body.get("ca_file") else None,
        )
    except (KeyError, ValueError) as exc:
        return JSONResponse({"error": f"bad migration storage settings: {exc}"}, 400)
    return JSONResponse({"configured": True})


def migration_routes() -> list[Route]:
    return [
        Route("/sandbox/migration", _configure, methods=["POST"]),
        Route("/{kind:str}/{name:str}/_api/{rest:path}", _api, methods=["GET", "POST"]),
    ]


# ---- provisioning (SharePoint's own storage) ---------------------------------------------------------------
def _need_storage(svc: MigrationService) -> None:
    if not (svc.blob_url and svc.queue_url and svc.account and svc.key):
        raise PackageRefused("this sandbox has no storage for provided containers (start it with Azurite)")


def _provision_containers(svc: MigrationService) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

    _need_storage(svc)
    assert svc.account and svc.key
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


def _provision_queue(svc: MigrationService) -> dict[str, Any]:
    from azure.storage.queue import QueueSasPermissions, QueueServiceClient, generate_queue_sas

    _need_storage(svc)
    assert svc.account and svc.key
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


# ---- job creation ----------------------------------------------------------------------------------------
def _sas(url: str, what: str, allowed: set[str] | None) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise PackageRefused(f"{what}: the sandbox reads storage on loopback only")
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if "sig" not in q:
        raise PackageRefused(f"{what} must carry a SAS token")
    if allowed is not None and set(q.get("sp", "")) != allowed:
        raise PackageRefused(
            f"{what}: the SAS must grant exactly '{''.join(sorted(allowed))}', not '{q.get('sp')}'"
        )
    expiry = q.get("se")
    if expiry and datetime.fromisoformat(expiry.replace("Z", "+00:00")) < datetime.now(UTC):
        raise PackageRefused(f"{what}: the SAS has expired")


def _plain(url: str) -> str:
    return url.split("?")[0].rstrip("/")


async def _create_job(
    world: World, svc: MigrationService, site: Site, body: dict[str, Any], *, encrypted: bool
) -> Response:
    src, man = (
        str(body.get("azureContainerSourceUri") or ""),
        str(body.get("azureContainerManifestUri") or ""),
    )
    queue = body.get("azureQueueReportUri") or None
    web = str(body.get("gWebId") or "").lower()
    if not src or not man or not web:
        raise PackageRefused("gWebId, azureContainerSourceUri and azureContainerManifestUri are required")
    if web != site.web_id:
        raise PackageRefused(f"gWebId {web} is not this site's web")
    if _plain(src) == _plain(man):
        raise PackageRefused("the manifest container cannot be the one used for azureContainerSourceUri")
    provided = _plain(src) in svc.provided and _plain(man) in svc.provided
    _sas(src, "azureContainerSourceUri", None if provided else {"r", "l"})
    _sas(man, "azureContainerManifestUri", None if provided else {"r", "l", "w"})
    if queue:
        _sas(
            str(queue), "azureQueueReportUri", None if _plain(str(queue)) in svc.provided else {"a", "r", "u"}
        )
    key = None
    if encrypted:
        try:
            key = base64.b64decode(str((body.get("options") or {}).get("AES256CBCKey") or ""), validate=True)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise PackageRefused("options.AES256CBCKey must be a base64 AES-256 key")
    job = Job(
        str(uuid.uuid4()), site.tenant.id, site.drive["id"], web, src, man, queue, key, provided, svc.verify
    )
    svc.jobs[job.id] = job
    # "Once accepted, the job ID will be written to the notification queue"
    await asyncio.to_thread(
        _post, job, "JobQueued", {"SiteId": _guid("site", site.drive["id"]), "MigrationDirection": "Import"}
    )
    if svc.pending is None or svc.worker is None or svc.worker.done():
        svc.pending = asyncio.Queue()
        svc.worker = asyncio.get_running_loop().create_task(_work(world, svc))
    svc.pending.put_nowait(job)
    return JSONResponse({"value": job.id})


# ---- the import --------------------------------------------------------------------------------------------
def _post(job: Job, event: str, fields: dict[str, Any]) -> None:
    record = {
        "Event": event,
        "JobId": job.id,
        "Time": datetime.now(UTC).strftime("%m/%d/%Y %H:%M:%S.%f")[:-3],
    }
    record.update({k: str(v) for k, v in fields.items()})
    job.events.append(event)
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


def _container(svc: MigrationService, url: str) -> Any:
    from azure.storage.blob import ContainerClient

    if _plain(url) in svc.provided:
        # SharePoint reads its own containers with its own rights (the SAS it handed out has no List).
        assert svc.account and svc.key
        return ContainerClient.from_container_url(
            _plain(url),
            credential={"account_name": svc.account, "account_key": svc.key},
            connection_verify=svc.verify,
        )
    return ContainerClient.from_container_url(url, connection_verify=svc.verify)


def _latest(container: Any) -> dict[str, Any]:
    """Blob name -> {"snapshot": latest snapshot or None, "etag" of that snapshot, "base": the live blob's
    etag, "metadata"}."""
    out: dict[str, dict[str, Any]] = {}
    for b in container.list_blobs(include=["metadata", "snapshots"]):
        blank = {"snapshot": None, "metadata": {}, "size": 0, "etag": None, "base": None}
        cur = out.setdefault(b.name, blank)
        if b.snapshot:
            if cur["snapshot"] is None or b.snapshot > cur["snapshot"]:
                cur.update(snapshot=b.snapshot, etag=b.etag, metadata=dict(b.metadata or {}), size=b.size)
        else:
            cur["base"] = b.etag
            if cur["snapshot"] is None:
                cur.update(metadata=dict(b.metadata or {}), size=b.size)
    return out


class _Unreadable(Exception):
    pass


def _read(container: Any, name: str, info: dict[str, Any], key: bytes | None) -> bytes:
    """The blob as of its latest snapshot. Azurite 3.37 refuses snapshot reads under a container SAS (a
    signature bug; Azure allows them), so the live blob is read when its etag is still the snapshot's, that
    is unchanged since; otherwise the file is refused (stricter than reading the snapshot)."""
    snapshot = info["snapshot"]
    if snapshot is not None and info["etag"] == info["base"]:
        snapshot = None
    elif snapshot is not None:
        raise _Unreadable(f"{name} changed after its latest snapshot")
    data = container.get_blob_client(name, snapshot=snapshot).download_blob().readall()
    if key is None:
        return bytes(data)
    iv = info["metadata"].get("IV") or info["metadata"].get("iv")
    if not iv:
        raise _Unreadable(f"{name} has no IV property: it is not encrypted")
    try:
        dec = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(iv))).decryptor()
        unpad = padding.PKCS7(128).unpadder()
        return unpad.update(dec.update(bytes(data)) + dec.finalize()) + unpad.finalize()
    except ValueError:
        raise _Unreadable(f"{name} does not decrypt with the job's key and its IV") from None


def _read_file(
    container: Any, name: str, info: dict[str, Any], key: bytes | None
) -> tuple[dict[str, Any], str]:
    """A content blob decrypted into the drives' content store in pieces (memory stays flat)."""
    snapshot = info["snapshot"]
    if snapshot is not None and info["etag"] != info["base"]:
        raise _Unreadable(f"{name} changed after its latest snapshot")  # see _read
    stream = container.get_blob_client(name).download_blob()
    spool = content_mod.Spool(f"mig-{uuid.uuid4().hex}", max(int(info["size"]), 0))
    try:
        if key is None:
            for chunk in stream.chunks():
                spool.write(chunk)
        else:
            iv = info["metadata"].get("IV")
            if not iv:
                raise _Unreadable(f"{name} has no IV property: it is not encrypted")
            dec = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(iv))).decryptor()
            unpad = padding.PKCS7(128).unpadder()
            for chunk in stream.chunks():
                spool.write(unpad.update(dec.update(chunk)))
            try:
                spool.write(unpad.update(dec.finalize()) + unpad.finalize())
            except ValueError:
                raise _Unreadable(f"{name} does not decrypt with the job's key and its IV") from None
        return spool.finish()
    except BaseException:
        spool.discard()
        raise


async def _work(world: World, svc: MigrationService) -> None:
    assert svc.pending is not None
    while True:
        job = await svc.pending.get()
        while svc.paused:
            await asyncio.sleep(0.05)
        job.state = PROCESSING
        try:
            await _run(world, svc, job)
        except Exception as exc:  # a failed job is reported on its queue; the sandbox carries on
            log.exception("migration job %s failed", job.id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    _post, job, "JobFatalError", {"Message": str(exc), "ErrorCode": "-2146233088"}
                )
                await asyncio.to_thread(
                    _post, job, "JobEnd", {"FilesCreated": 0, "TotalErrors": 1, "TotalWarnings": 0}
                )
        job.state = NONE  # finished jobs leave the timer job queue


async def _run(world: World, svc: MigrationService, job: Job) -> None:
    await asyncio.to_thread(_post, job, "JobStart", {"WebId": job.web_id, "MigrationDirection": "Import"})
    src, man = _container(svc, job.source), _container(svc, job.manifest)
    manifests_info = await asyncio.to_thread(_latest, man)
    blobs = await asyncio.to_thread(_latest, src)
    errors = warnings = 0
    try:
        if job.provided and job.key is None:
            raise PackageRefused("SharePoint-provided containers need CreateMigrationJobEncrypted")
        if job.provided:
            plain = [n for n, i in {**manifests_info, **blobs}.items() if not i["metadata"].get("IV")]
            if plain:
                raise PackageRefused(f"unencrypted package in SharePoint-provided containers ({plain[0]})")
        files: dict[str, bytes] = {}
        for name, info in manifests_info.items():
            if "/" in name or not name.endswith(".xml"):
                continue
            try:
                files[name] = await asyncio.to_thread(_read, man, name, info, job.key)
            except _Unreadable as exc:
                raise PackageRefused(str(exc)) from None
        pkg = parse(files, set(blobs))
        tenant = world.tenant(job.tenant)
        assert tenant is not None
        drive = tenant.drives.drives[job.drive_id]
        if pkg.web_id != job.web_id or pkg.list_id != _guid("list", drive["id"]):
            raise PackageRefused("the package's web or list ids are not the target's (incorrect identifiers)")
    except PackageRefused as exc:
        await asyncio.to_thread(
            _post,
            job,
            "JobFatalError",
            {
                "Message": str(exc),
                "ErrorCode": "-2147024809",
                "ErrorType": "Microsoft.SharePoint.SPException",
            },
        )
        await asyncio.to_thread(
            _post,
            job,
            "JobEnd",
            {
                "FilesCreated": 0,
                "BytesProcessed": 0,
                "ObjectsProcessed": 0,
                "TotalErrors": 1,
                "TotalWarnings": 0,
            },
        )
        return
    for w in pkg.warnings:
        warnings += 1
        await asyncio.to_thread(
            _post, job, "JobWarning", {"ObjectType": "", "Url": "", "Id": "", "Message": w}
        )
    created = nbytes = done = 0
    started = time.monotonic()
    for f in pkg.files:
        # Import at the configured rate (Microsoft promises no per-job rate: there is no SLA).
        lag = done / svc.rate - (time.monotonic() - started)
        if lag > 0:
            await asyncio.sleep(lag)
        done += 1
        problem, warn, size = await _import_one(tenant, drive, pkg, f, src, blobs, job)
        if warn:
            warnings += 1
            await asyncio.to_thread(
                _post, job, "JobWarning", {"ObjectType": "File", "Url": f.url, "Id": f.id, "Message": warn}
            )
        if problem:
            errors += 1
            await asyncio.to_thread(
                _post,
                job,
                "JobError",
                {
                    "ObjectType": "File",
                    "Url": f.url,
                    "Id": f.id,
                    "ErrorCode": "-2147024816",
                    "ErrorType": "Microsoft.SharePoint.SPException",
                    "Message": problem,
                },
            )
        else:
            created += 1
            nbytes += size
            svc.imports[f"{drive['id']}/{f.url}"] = svc.imports.get(f"{drive['id']}/{f.url}", 0) + 1
        if done % PROGRESS_EVERY == 0:
            await asyncio.to_thread(
                _post,
                job,
                "JobProgress",
                {
                    "FilesCreated": created,
                    "BytesProcessed": nbytes,
                    "ObjectsProcessed": done,
                    "TotalExpectedSPObjects": len(pkg.files),
                    "TotalErrors": errors,
                    "TotalWarnings": warnings,
                },
            )
    world.dirty = True
    await asyncio.to_thread(
        _post,
        job,
        "JobEnd",
        {
            "FilesCreated": created,
            "BytesProcessed": nbytes,
            "ObjectsProcessed": done,
            "TotalExpectedSPObjects": len(pkg.files),
            "TotalErrors": errors,
            "TotalWarnings": warnings,
            "FilesCreatedIrrespectiveOfVersions": created,
            "BytesProcessedOnlyCurrentVersion": nbytes,
        },
    )


def _user(tenant: TenantState, pkg: PPackage, uid: str | None) -> tuple[dict[str, Any] | None, str]:
    if not uid:
        return None, ""
    login = pkg.users.get(uid, "")
    user = next((u for u in tenant.users.values() if u["userPrincipalName"].lower() == login.lower()), None)
    if user is None:
        return None, f"Failed to ensure user '{login}'"
    return {"user": {"id": user["id"], "displayName": user.get("displayName") or ""}}, ""


async def _import_one(
    tenant: TenantState,
    drive: dict[str, Any],
    pkg: PPackage,
    f: Any,
    src: Any,
    blobs: dict[str, Any],
    job: Job,
) -> tuple[str, str, int]:
    """(error message or '', warning or '', bytes)."""
    info = blobs[f.blob]
    if info["snapshot"] is None:
        return "the file has no snapshot in the content container", "", 0
    try:
        content, digest = await asyncio.to_thread(_read_file, src, f.blob, info, job.key)
    except _Unreadable as exc:
        return str(exc), "", 0
    if f.size >= 0 and content["size"] != f.size:
        return f"the blob holds {content['size']} bytes, the manifest says {f.size}", "", 0
    store = tenant.drives
    root = store.items[drive["_root"]]
    rel = f.url[len(pkg.list_url) + 1 :]
    parent_rel, _, name = rel.rpartition("/")
    try:
        parent = store.by_path(root, parent_rel) if parent_rel else root
    except DriveError:
        return f"the parent folder '{parent_rel}' does not exist", "", 0
    if item_guid(parent) != f.parent_id:
        return "ParentId is not the GUID of the folder at the file's Url (incorrect identifiers)", "", 0
    existing = store.child(parent, name)
    if existing is not None and (existing.get("_folder") or item_guid(existing) != f.id):
        return "an item with another Id already exists at this Url (GUID conflict)", "", 0
    author, warn = _user(tenant, pkg, f.author)
    editor, warn2 = _user(tenant, pkg, f.editor)
    fs = {"createdDateTime": _iso(f.created), "lastModifiedDateTime": _iso(f.modified)}
    fs = {k: v for k, v in fs.items() if v}
    try:
        # Resubmitting a file replaces it (the Migration API is an overwrite API).
        item, _ = store.create_item(
            parent,
            name,
            folder=False,
            content=content,
            quick_xor=digest,
            conflict="replace",
            fs=fs or None,
            by=editor or author or {"user": {"displayName": "System Account"}},
        )
    except DriveError as exc:
        return str(exc), "", 0
    item["_spguid"] = f.id
    if author:
        item["_created_by"] = author
    return "", warn or warn2, int(content["size"])


def _iso(stamp: str) -> str:
    if not stamp:
        return ""
    return stamp if stamp.endswith("Z") or "+" in stamp[10:] else stamp + "Z"
