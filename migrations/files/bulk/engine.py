"""The bulk file engine: a files plan's copy steps moved by SharePoint's Migration API, not Graph uploads.

The plan, journal, verification, rollback and incremental semantics are the Graph engine's: folders, moves,
adoptions and deletes still go through Graph (they are few); each copy step gets its journal intent before its
package is submitted and its outcome only after the imported item was read back through Graph and matched by
size and quickXorHash, recorded in file_copies exactly as the Graph engine records it.

Per package (one target library, at most 250 files or 250 MB, a larger file alone: Microsoft's guidance):
download from the source (streamed) -> AES-256-CBC with a fresh IV per file -> block blobs with metadata IV
and a snapshot -> manifests (bulk/manifest.py), each encrypted with its own IV -> a report queue
from ProvisionMigrationQueue -> CreateMigrationJobEncrypted -> queue events decrypted -> verify through Graph.

A package's life is journaled in `bulk_packages` (staging -> submitting -> submitted -> imported -> done) and
its secrets (AES key, SAS-bearing URIs) in a 0600 file beside the store. A killed run re-attaches to every
package it had submitted (the queue tells whether a submission landed) and never submits one twice; packages
not yet submitted are discarded and their steps packaged afresh.

This module holds the engine (a copy engine, files/engines.py) and a package's way from steps to a job; the
parts live beside it, each given the run's BulkContext (context.py): packages (sizing, library ids, manifest
XML), stage (bytes and manifests into storage), blobs (block uploads), jobs (submission, queue events,
re-attach), verify (the Graph check), ledger (bulk_packages rows, settling steps), secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from migrations.core import killpoints
from migrations.core.steps import Outcome, Step
from migrations.files.bulk import crypto
from migrations.files.bulk import manifest as mf
from migrations.files.bulk.context import BulkContext
from migrations.files.bulk.jobs import follow_safely, reattach, submit
from migrations.files.bulk.ledger import cleanup, fail, finish, save
from migrations.files.bulk.packages import Lib, library, packages
from migrations.files.bulk.sharepoint_rest import MigrationApiError
from migrations.files.bulk.stage import stage_files, stage_manifests
from migrations.files.bulk.staging import Containers
from migrations.graph.client import GraphError
from migrations.safety.sanitise import path_problems

__all__ = ["BulkEngine"]
log = logging.getLogger("trustfold.files.bulk")
PACKAGES_AT_ONCE = 4


class BulkEngine:
    """The Migration API engine: a drive's copy steps, packaged, imported and checked through Graph."""

    def __init__(self, ctx: BulkContext) -> None:
        self.ctx = ctx
        self.libs: dict[str, Lib] = {}  # target drive -> its library's ids, read once per run

    # ---- entry ---------------------------------------------------------------------------------------------
    async def copy_steps(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        """PACKAGES_AT_ONCE packages at a time, whatever the run's concurrency: each is a SharePoint job."""
        handled = await reattach(self.ctx, progress)
        todo, unnameable = [], []
        for s in steps:
            if s.key in handled:
                continue
            bad = path_problems(s.args["path"])
            if bad:
                unnameable.append((s, f"the name holds {', '.join(bad)}, which SharePoint cannot carry"))
            else:
                todo.append(s)
        if unnameable:
            # One item SharePoint cannot carry fails alone, named with its characters (a finding in the
            # report), and never reaches a package: the rest of its package, and the run's deletes, go on.
            with self.ctx.store.tx() as tx:
                tx.executemany(
                    "INSERT OR REPLACE INTO file_findings "
                    "(academy, kind, object_id, display, message, handling) VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (self.ctx.code, "unsupported-name", s.args["source_id"], s.args["path"], why,
                         "not copied; rename it at source and run again")
                        for s, why in unnameable
                    ],
                )  # fmt: skip
            for s, why in unnameable:
                finish(self.ctx, s, Outcome("failed", None, {}, why), progress)
        sem = asyncio.Semaphore(PACKAGES_AT_ONCE)

        async def one(p: list[Step]) -> None:
            async with sem:
                await self._package(p, progress)

        await asyncio.gather(*(one(p) for p in packages(todo)))

    async def abandon(self, ids: tuple[str, ...], progress: Callable[[], None]) -> set[str]:
        """`run --abandon-package`: each named package's steps journaled failed with the reason, its staging
        cleaned per policy and its row kept as 'abandoned' (never re-attached); returns the step keys, which
        this run leaves alone and the next run plans again."""
        keys: set[str] = set()
        for pid in ids:
            rows = self.ctx.store.rows(
                "SELECT * FROM bulk_packages WHERE academy = ? AND package_id = ? "
                "AND state NOT IN ('done', 'abandoned')",
                (self.ctx.code, pid),
            )
            for r in rows:
                data = json.loads(r["data"])
                steps = [Step(s["key"], s["op"], s["args"]) for s in data["steps"]]
                job = f" (job {r['job_id']})" if r["job_id"] else ""
                log.warning("package %s%s abandoned by the operator", pid, job)
                fail(
                    self.ctx,
                    steps,
                    f"Migration API package {pid}{job} abandoned by the operator (--abandon-package); "
                    "the next run plans these files again",
                    progress,
                )
                await cleanup(self.ctx, pid, data, state="abandoned")
                keys |= {s.key for s in steps}
        return keys

    # ---- package lifecycle ---------------------------------------------------------------------------------
    async def _package(self, steps: list[Step], progress: Callable[[], None]) -> None:
        ctx = self.ctx
        drive = steps[0].args["target_drive"]
        pid = str(uuid.uuid4())
        try:
            lib = await library(ctx, self.libs, drive, [s.args["path"] for s in steps])
        except (MigrationApiError, GraphError, LookupError) as exc:
            for s in steps:
                finish(ctx, s, Outcome("failed", None, {}, f"Migration API: {exc}"), progress)
            return
        data: dict[str, Any] = {"steps": [{"key": s.key, "op": s.op, "args": s.args} for s in steps]}
        try:
            steps = await self._stage(pid, drive, steps, lib, data, progress)
        except (MigrationApiError, AzureError, GraphError, httpx.HTTPError, mf.PackagingError) as exc:
            # A package that cannot be staged fails its own steps, never the run.
            fail(ctx, steps, f"Migration API staging: {exc}", progress)
            await cleanup(ctx, pid, data)
            return
        if not steps:
            await cleanup(ctx, pid, data)
            return
        save(ctx, pid, drive, "submitting", data)
        # Intents when the package leaves for SharePoint (staging in our own storage changes no target): a
        # package discarded before this leaves no step in doubt, so a re-plan treats its files as new.
        ctx.journal.intents(steps)
        sec = ctx.secrets.get(pid)
        try:
            job = await submit(
                ctx, pid, data, Containers(sec["source"], sec["manifest"]), crypto.unb64(sec["key"])
            )
        except MigrationApiError as exc:  # SharePoint answered and refused: nothing was queued
            fail(ctx, steps, f"Migration API refused the job: {exc}", progress)
            await cleanup(ctx, pid, data)
            return
        except (httpx.HTTPError, AzureError) as exc:  # unknown whether it landed: the next run finds out
            fail(ctx, steps, f"Migration API submission in doubt ({exc}); the next run re-attaches", progress)
            return
        save(ctx, pid, drive, "submitted", data, job)
        killpoints.reached("bulk.submitted")
        await follow_safely(ctx, pid, drive, data, job, steps, progress)

    async def _stage(
        self,
        pid: str,
        drive: str,
        steps: list[Step],
        lib: Lib,
        data: dict[str, Any],
        progress: Callable[[], None],
    ) -> list[Step]:
        """Containers, content blobs, manifests and the report queue; returns the steps staged."""
        ctx = self.ctx
        key = crypto.new_key()
        containers = await ctx.staging.create(pid, lib.library.site_url)
        if containers.key is not None:
            key = containers.key
        files = {s.key: _file_entry() for s in steps}
        data["files"] = files
        data["containers"] = {
            "source": containers.source.split("?")[0],
            "manifest": containers.manifest.split("?")[0],
        }
        ctx.secrets.put(pid, key=crypto.b64(key), source=containers.source, manifest=containers.manifest)
        save(ctx, pid, drive, "staging", data)
        staged, problems = await stage_files(ctx, steps, files, containers, key, lib)
        for s, message in problems:
            finish(ctx, s, Outcome("failed", None, {}, message), progress)
        steps = [s for s in steps if s.key in staged]
        data["steps"] = [{"key": s.key, "op": s.op, "args": s.args} for s in steps]
        if not steps:
            return steps
        data["authors"] = staged
        await stage_manifests(ctx, steps, files, staged, containers, key, lib)
        try:
            queue = await ctx.rest.call("POST", lib.library.site_url, "site/ProvisionMigrationQueue")
        except MigrationApiError as exc:
            # Report queues are being retired; the job is followed through GetMigrationJobProgress anyway.
            log.info("no report queue for package %s (%s): following the job by its progress only", pid, exc)
        else:
            ctx.secrets.put(pid, queue=queue["JobQueueUri"])
        data["site_url"] = lib.library.site_url
        data["web_id"] = lib.library.web_id
        save(ctx, pid, drive, "staged", data)
        killpoints.reached("bulk.staged")
        return steps


def _file_entry() -> dict[str, Any]:
    """A staged file's ids: its manifest id, its item GUID and its content blob's name."""
    return {"id": str(uuid.uuid4()), "item": str(uuid.uuid4()), "blob": f"{uuid.uuid4().hex}.dat"}
