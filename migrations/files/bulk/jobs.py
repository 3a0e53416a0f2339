"""Migration API jobs: submission (CreateMigrationJobEncrypted with the package's SAS and key), the report
queue's events (decrypted; errors and warnings kept per item before the messages leave the queue), and
re-attaching after a crash to every job submitted, never submitting one twice."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

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
# Progress polling backs off to this; a rehearsal (sandbox) polls faster. Microsoft advises polling about
# every minute for long jobs; a package's first events come within seconds, so the back-off starts small.
POLL_MAX_S = 60.0


async def submit(ctx: BulkContext, pid: str, data: dict[str, Any], containers: Containers, key: bytes) -> str:
    src, man = await ctx.staging.job_uris(containers)
    body = {
        "options": {"AES256CBCKey": crypto.b64(key)},
        "gWebId": data["web_id"],
        "azureContainerSourceUri": src,
        "azureContainerManifestUri": man,
    }
    queue = ctx.secrets.get(pid).get("queue")
    if queue:  # only where SharePoint still offers report queues (only landed() reads it)
        body["azureQueueReportUri"] = queue
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
    except Silent as exc:
        left = [s for s in steps if s.key not in ctx.finished]
        ledger.fail(
            ctx,
            left,
            f"{exc}; the next run checks it again, or give the package up with "
            f"`trustfold run {ctx.code} --phase files --abandon-package {pid}`",
            progress,
        )
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
        "SELECT * FROM bulk_packages WHERE academy = ? AND state NOT IN ('done', 'abandoned') ORDER BY at",
        (ctx.code,),
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
    """The job id of a submission whose answer was lost: SharePoint writes JobQueued on acceptance. Without
    a report queue (retired) nothing can tell: None, and the package is submitted again, which imports the
    same item GUIDs over themselves rather than beside them."""
    from azure.storage.queue import QueueClient

    if not ctx.secrets.get(pid).get("queue"):
        return None
    q = QueueClient.from_queue_url(ctx.secrets.get(pid)["queue"], connection_verify=ctx.verify)
    key = crypto.unb64(ctx.secrets.get(pid)["key"])
    msgs = await asyncio.to_thread(lambda: list(q.peek_messages(max_messages=32)))
    for m in msgs:
        return str(crypto.decrypt_message(m.content, key).get("JobId"))
    return None


class Silent(Exception):
    """A job that gave no progress for the run's bound on silence."""


# GetMigrationJobProgress's internal codes (migration-job-progress-api-reference): the job's status is gone,
# so what it imported can only be read back through Graph.
JOB_NOT_FOUND, JOB_EXPIRED = "-2147213145", "-2147213146"


async def follow(
    ctx: BulkContext, pid: str, drive: str, data: dict[str, Any], job: str, progress: Callable[[], None]
) -> None:
    """Read the job's events through GetMigrationJobProgress (report queues are being retired) until JobEnd,
    then verify what it imported. The token is journaled with the events it covered, so a re-attach reads
    on from there; a job silent for `ctx.silence_s` raises Silent (never waiting forever)."""
    data.setdefault("errors", {})
    data.setdefault("warnings", {})
    token = str(data.get("progress_token") or "0")
    pause, ended = 0.05, False
    most = 0.25 if ctx.rehearsal else POLL_MAX_S
    heard = time.monotonic()
    while not ended:
        try:
            got = await ctx.rest.call(
                "GET",
                data["site_url"],
                f"site/GetMigrationJobProgress(jobId='{job}',nextToken={quote(token, safe='')})",
                verbose=True,
            )
        except MigrationApiError as exc:
            if exc.code in (JOB_NOT_FOUND, JOB_EXPIRED):
                # Nothing more will be told: Graph says what landed; the rest fails and is planned again.
                log.warning("job %s: %s; checking what it imported through Graph", job, exc)
                break
            raise
        result = got["d"]["GetMigrationJobProgress"]
        logs = result["Logs"]["results"] if isinstance(result["Logs"], dict) else result["Logs"]
        if not logs:
            if time.monotonic() - heard > ctx.silence_s:
                raise Silent(f"no progress from Migration API job {job} for {ctx.silence_s:.0f} s")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, most)
            continue
        # Events come in bursts (one JobProgress a batch of objects): ask again soon, not at once.
        heard, pause = time.monotonic(), 0.05 if ctx.rehearsal else 2.0
        for raw in logs:
            ev = json.loads(raw)
            if str(ev.get("JobId", job)).lower() != job.lower():
                continue
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
        token = data["progress_token"] = str(result["NextToken"])
        ledger.save(ctx, pid, drive, "imported" if ended else "submitted", data)
    await verify(ctx, pid, drive, data, progress)
