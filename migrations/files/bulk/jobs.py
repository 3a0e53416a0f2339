"""Migration API jobs: submission (CreateMigrationJobEncrypted with the package's SAS and key), the report
queue's events (decrypted; errors and warnings kept per item before the messages leave the queue), and
re-attaching after a crash to every job submitted, never submitting one twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from migrations.core import killpoints
from migrations.core.steps import Step
from migrations.files.bulk import crypto, ledger
from migrations.files.bulk.context import BulkContext
from migrations.files.bulk.sharepoint_rest import MigrationApiError
from migrations.files.bulk.staging import Containers
from migrations.files.bulk.verify import verify
from migrations.graph.client import GraphError

log = logging.getLogger("trustfold.files.bulk")
POLL_MAX_S = 5.0  # queue polling backs off to this; a rehearsal (sandbox) polls faster


async def submit(ctx: BulkContext, pid: str, data: dict[str, Any], containers: Containers, key: bytes) -> str:
    src, man = await ctx.staging.job_uris(containers)
    body = {
        "options": {"AES256CBCKey": crypto.b64(key)},
        "gWebId": data["web_id"],
        "azureContainerSourceUri": src,
        "azureContainerManifestUri": man,
        "azureQueueReportUri": ctx.secrets.get(pid)["queue"],
    }
    got = await ctx.rest.call("POST", data["site_url"], "site/CreateMigrationJobEncrypted", body)
    return str(got["value"])


async def follow_safely(
    ctx: BulkContext,
    pid: str,
    drive: str,
    data: dict[str, Any],
    job: str,
    steps: list[Step],
    progress: Callable[[], None],
) -> None:
    try:
        await follow(ctx, pid, drive, data, job, progress)
    except (AzureError, httpx.HTTPError, GraphError, MigrationApiError) as exc:
        # The job stays journaled as submitted: the next run re-attaches to it, never resubmits.
        left = [s for s in steps if s.key not in ctx.finished]
        ledger.fail(
            ctx, left, f"Migration API job {job} in flight ({exc}); the next run re-attaches", progress
        )


async def reattach(ctx: BulkContext, progress: Callable[[], None]) -> set[str]:
    """Settle the packages a killed run left; returns the step keys they hold (not to be packaged again)."""
    handled: set[str] = set()
    rows = ctx.store.rows(
        "SELECT * FROM bulk_packages WHERE academy = ? AND state != 'done' ORDER BY at", (ctx.code,)
    )
    for r in rows:
        pid, data = r["package_id"], json.loads(r["data"])
        if r["state"] in ("staging", "staged"):
            # Never submitted: nothing can have been imported; its steps are packaged again.
            await ledger.cleanup(ctx, pid, data)
            continue
        keys = {s["key"] for s in data["steps"]}
        handled |= keys
        job = r["job_id"]
        if r["state"] == "submitting" and not job:
            job = await landed(ctx, pid)
            if job is None:
                log.info("package %s: its submission never landed; submitting it now", pid)
                key = crypto.unb64(ctx.secrets.get(pid)["key"])
                sec = ctx.secrets.get(pid)
                ctx.journal.intents([Step(s["key"], s["op"], s["args"]) for s in data["steps"]])
                job = await submit(ctx, pid, data, Containers(sec["source"], sec["manifest"]), key)
            ledger.save(ctx, pid, r["target_drive"], "submitted", data, job)
        log.info("package %s: re-attaching to Migration API job %s", pid, job)
        steps = [Step(s["key"], s["op"], s["args"]) for s in data["steps"]]
        if r["state"] == "imported":
            await verify(ctx, pid, r["target_drive"], data, progress)
        else:
            await follow_safely(ctx, pid, r["target_drive"], data, job, steps, progress)
    return handled


async def landed(ctx: BulkContext, pid: str) -> str | None:
    """The job id of a submission whose answer was lost: SharePoint writes JobQueued on acceptance."""
    from azure.storage.queue import QueueClient

    q = QueueClient.from_queue_url(ctx.secrets.get(pid)["queue"], connection_verify=ctx.verify)
    key = crypto.unb64(ctx.secrets.get(pid)["key"])
    msgs = await asyncio.to_thread(lambda: list(q.peek_messages(max_messages=32)))
    for m in msgs:
        return str(crypto.decrypt_message(m.content, key).get("JobId"))
    return None


async def follow(
    ctx: BulkContext, pid: str, drive: str, data: dict[str, Any], job: str, progress: Callable[[], None]
) -> None:
    """Read the job's events until JobEnd, then verify what it imported."""
    from azure.storage.queue import QueueClient

    q = QueueClient.from_queue_url(ctx.secrets.get(pid)["queue"], connection_verify=ctx.verify)
    key = crypto.unb64(ctx.secrets.get(pid)["key"])
    data.setdefault("errors", {})
    data.setdefault("warnings", {})
    pause, ended = 0.05, False
    most = 0.25 if ctx.rehearsal else POLL_MAX_S
    while not ended:
        msgs = await asyncio.to_thread(
            lambda: list(q.receive_messages(max_messages=32, visibility_timeout=60))
        )
        if not msgs:
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, most)
            continue
        pause = 0.05
        for m in msgs:
            ev = crypto.decrypt_message(m.content, key)
            if ev.get("JobId") != job:
                continue  # another job's event on a shared queue: not ours to consume
            kind = str(ev.get("Event"))
            if kind in ("JobError", "JobWarning", "JobFatalError"):
                bucket = data["warnings" if kind == "JobWarning" else "errors"]
                bucket[str(ev.get("Id") or "") or "job"] = str(ev.get("Message") or kind)
            elif kind == "JobProgress":
                log.info(
                    "job %s: %s of %s objects, %s errors",
                    job,
                    ev.get("ObjectsProcessed"),
                    ev.get("TotalExpectedSPObjects"),
                    ev.get("TotalErrors"),
                )
                killpoints.reached("bulk.importing")
            ended = ended or kind == "JobEnd"
        # Recorded before the messages leave the queue, so a crash loses no error.
        ledger.save(ctx, pid, drive, "imported" if ended else "submitted", data)
        for m in msgs:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(q.delete_message, m)
    await verify(ctx, pid, drive, data, progress)
