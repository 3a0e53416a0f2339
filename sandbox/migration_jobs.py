"""Migration API jobs in the sandbox: CreateMigrationJob(Encrypted) checks (SAS rights, containers, web, key)
and queues the job; a worker on the server's event loop reads and validates the package
(sandbox.migration_package) and imports its files at the configured rate, posting the documented events."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from starlette.responses import JSONResponse, Response

from sandbox.migration_import import import_one
from sandbox.migration_package import PackageRefused, parse
from sandbox.migration_service import (
    LOOPBACK,
    NONE,
    PROCESSING,
    PROGRESS_EVERY,
    Job,
    MigrationService,
    guid,
)
from sandbox.migration_storage import (
    Unreadable,
    container_client,
    latest_blobs,
    plain_url,
    post_event,
    read_blob,
)
from sandbox.world import World

if TYPE_CHECKING:
    from sandbox.migration_rest import Site

log = logging.getLogger("sandbox.migration")


# ---- job creation ----------------------------------------------------------------------------------------
def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


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


async def create_job(
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
    if plain_url(src) == plain_url(man):
        raise PackageRefused("the manifest container cannot be the one used for azureContainerSourceUri")
    provided = plain_url(src) in svc.provided and plain_url(man) in svc.provided
    _sas(src, "azureContainerSourceUri", None if provided else {"r", "l"})
    _sas(man, "azureContainerManifestUri", None if provided else {"r", "l", "w"})
    if queue:
        own_queue = plain_url(str(queue)) not in svc.provided
        _sas(str(queue), "azureQueueReportUri", None)
        rights = set(_query(str(queue)).get("sp", ""))
        if own_queue and not {"a", "r", "u"} <= rights:
            raise PackageRefused(
                "azureQueueReportUri: the SAS must grant add, read and update, "
                f"not '{''.join(sorted(rights))}'"
            )
        if own_queue and rights - {"a", "r", "u"}:
            # migration-api-reference: "Requires Add, Read, and Update permissions only. If the SAS token has
            # other permissions, the migration job will be unable to add events to the queue": the job is
            # created and runs, and its events reach only GetMigrationJobProgress.
            log.info("report queue SAS grants %r: no events will be written to it", "".join(sorted(rights)))
            queue = None
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
        post_event,
        job,
        "JobQueued",
        {"SiteId": guid("site", site.drive["id"]), "MigrationDirection": "Import"},
    )
    if svc.pending is None or svc.worker is None or svc.worker.done():
        svc.pending = asyncio.Queue()
        svc.worker = asyncio.get_running_loop().create_task(_work(world, svc))
    svc.pending.put_nowait(job)
    return JSONResponse({"value": job.id})


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
                    post_event, job, "JobFatalError", {"Message": str(exc), "ErrorCode": "-2146233088"}
                )
                await asyncio.to_thread(
                    post_event, job, "JobEnd", {"FilesCreated": 0, "TotalErrors": 1, "TotalWarnings": 0}
                )
        job.state = NONE  # finished jobs leave the timer job queue


async def _run(world: World, svc: MigrationService, job: Job) -> None:
    await asyncio.to_thread(
        post_event, job, "JobStart", {"WebId": job.web_id, "MigrationDirection": "Import"}
    )
    src, man = container_client(svc, job.source), container_client(svc, job.manifest)
    manifests_info = await asyncio.to_thread(latest_blobs, man)
    blobs = await asyncio.to_thread(latest_blobs, src)
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
                files[name] = await asyncio.to_thread(read_blob, man, name, info, job.key)
            except Unreadable as exc:
                raise PackageRefused(str(exc)) from None
        pkg = parse(files, set(blobs))
        tenant = world.tenant(job.tenant)
        assert tenant is not None
        drive = tenant.drives.drives[job.drive_id]
        if pkg.web_id != job.web_id or pkg.list_id != guid("list", drive["id"]):
            raise PackageRefused("the package's web or list ids are not the target's (incorrect identifiers)")
    except PackageRefused as exc:
        await asyncio.to_thread(
            post_event,
            job,
            "JobFatalError",
            {
                "Message": str(exc),
                "ErrorCode": "-2147024809",
                "ErrorType": "Microsoft.SharePoint.SPException",
            },
        )
        await asyncio.to_thread(
            post_event,
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
            post_event, job, "JobWarning", {"ObjectType": "", "Url": "", "Id": "", "Message": w}
        )
    created = nbytes = done = 0
    started = time.monotonic()

    def counts() -> dict[str, Any]:
        """The progress fields JobProgress and JobEnd share, as they stand now."""
        return {
            "FilesCreated": created,
            "BytesProcessed": nbytes,
            "ObjectsProcessed": done,
            "TotalExpectedSPObjects": len(pkg.files),
            "TotalErrors": errors,
            "TotalWarnings": warnings,
        }

    for f in pkg.files:
        # Import at the configured rate (Microsoft promises no per-job rate: there is no SLA).
        lag = done / svc.rate - (time.monotonic() - started)
        if lag > 0:
            await asyncio.sleep(lag)
        done += 1
        problem, warn, size = await import_one(tenant, drive, pkg, f, src, blobs, job)
        if warn:
            warnings += 1
            await asyncio.to_thread(
                post_event,
                job,
                "JobWarning",
                {"ObjectType": "File", "Url": f.url, "Id": f.id, "Message": warn},
            )
        if problem:
            errors += 1
            await asyncio.to_thread(
                post_event,
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
            await asyncio.to_thread(post_event, job, "JobProgress", counts())
    world.dirty = True
    await asyncio.to_thread(
        post_event,
        job,
        "JobEnd",
        {
            **counts(),
            "FilesCreatedIrrespectiveOfVersions": created,
            "BytesProcessedOnlyCurrentVersion": nbytes,
        },
    )


# ---- GetMigrationJobProgress (migration-job-progress-api-reference) --------------------------------------
_PROGRESS_ARGS = re.compile(
    r"^\(\s*jobId\s*=\s*'\s*([0-9a-fA-F-]{36})\s*'\s*,\s*nextToken\s*=\s*'?([0-9]+)'?\s*\)$"
)
JOB_NOT_FOUND = "-2147213145"


def job_progress(svc: MigrationService, rest: str, tenant: str, verbose: bool) -> Response:
    """`GET site/GetMigrationJobProgress(jobId='{jobId}',nextToken=0)`: the job's status events after the
    token, and the token to ask with next (the same token when nothing is new; idempotent for a finished
    job). An unknown job (or another tenant's) is a 500 "Job not found", -2147213145, which the page says not
    to retry. Verbose JSON (the page's Accept) wraps the result in d/GetMigrationJobProgress."""
    m = _PROGRESS_ARGS.match(rest[len("site/GetMigrationJobProgress") :])
    if m is None:
        return JSONResponse(
            {"odata.error": {"code": "-1, Microsoft.SharePoint.Client.InvalidClientQueryException",
                             "message": {"lang": "en-US", "value": "jobId and nextToken are required."}}},
            400,
        )  # fmt: skip
    job = svc.jobs.get(m.group(1).lower())
    if job is None or job.tenant != tenant:
        return JSONResponse(
            {"error": {"code": f"{JOB_NOT_FOUND}, Microsoft.SharePoint.SPException",
                       "message": {"lang": "en-US", "value": "Job not found"}}},
            500,
        )  # fmt: skip
    start = min(int(m.group(2)), len(job.log))
    logs, token = job.log[start:], str(len(job.log))
    if not verbose:
        return JSONResponse({"Logs": logs, "NextToken": token})
    return JSONResponse(
        {
            "d": {
                "GetMigrationJobProgress": {
                    "Logs": {"__metadata": {"type": "Collection(Edm.String)"}, "results": logs},
                    "NextToken": token,
                    "__metadata": {"type": "SP.MigrationJobProgress"},
                }
            }
        }
    )
