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

This module holds the engine and a package's lifecycle; the parts live beside it: bulk_packages (sizing,
library ids, manifest XML), bulk_stage (bytes and manifests into storage), bulk_blobs (block uploads),
bulk_jobs (submission, queue events, re-attach), bulk_verify (the Graph check), bulk_secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from migrations.core import killpoints
from migrations.core.steps import Outcome, Step
from migrations.core.store import now
from migrations.files.bulk import crypto
from migrations.files.bulk.jobs import follow_safely, reattach, submit
from migrations.files.bulk.packages import Lib, library, packages
from migrations.files.bulk.secrets import Secrets
from migrations.files.bulk.sharepoint_rest import MigrationApiError, SharePointRest
from migrations.files.bulk.stage import stage_files, stage_manifests
from migrations.files.bulk.staging import Containers, OwnStaging, ProvidedStaging
from migrations.graph.client import GraphError

__all__ = ["BulkEngine", "Executor"]
PACKAGES_AT_ONCE = 4


class BulkEngine:
    """Runs copy steps through the Migration API; `ops` is the files phase's operations object (its journal,
    store, Graph connections, budget and run counters)."""

    def __init__(self, ops: Any, staging: OwnStaging | ProvidedStaging | None, rest: SharePointRest) -> None:
        self.ops, self.env, self.rest = ops, ops.env, rest
        self.staging = staging
        self.verify = staging.verify if staging is not None else True  # TLS for SharePoint's report queue
        self.code = ops.env.academy.code
        self.store = ops.env.store
        self.source = ops.env.conns.source(self.code)
        self.secrets = Secrets(ops.env.run_dir.parent / f"bulk-secrets-{self.code}.json")
        self.libs: dict[str, Lib] = {}
        self.users = self._user_map()
        self.events: dict[str, int] = {}
        self.finished: set[str] = set()

    # ---- entry ---------------------------------------------------------------------------------------------
    async def run(self, steps: list[Step], progress: Callable[[], None]) -> None:
        handled = await reattach(self, progress)
        todo = [s for s in steps if s.key not in handled]
        sem = asyncio.Semaphore(PACKAGES_AT_ONCE)

        async def one(p: list[Step]) -> None:
            async with sem:
                await self._package(p, progress)

        await asyncio.gather(*(one(p) for p in packages(todo)))

    # ---- package lifecycle ---------------------------------------------------------------------------------
    def save(self, pid: str, drive: str, state: str, data: dict[str, Any], job: str | None = None) -> None:
        with self.store.tx() as tx:
            tx.execute(
                "INSERT INTO bulk_packages (academy, package_id, target_drive, state, job_id, data, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (academy, package_id) DO UPDATE SET "
                "state = excluded.state, job_id = coalesce(excluded.job_id, bulk_packages.job_id), "
                "data = excluded.data, at = excluded.at",
                (self.code, pid, drive, state, job, json.dumps(data), now()),
            )

    async def _package(self, steps: list[Step], progress: Callable[[], None]) -> None:
        drive = steps[0].args["target_drive"]
        pid = str(uuid.uuid4())
        try:
            lib = await library(self, drive, [s.args["path"] for s in steps])
        except (MigrationApiError, GraphError, LookupError) as exc:
            for s in steps:
                self.finish(s, Outcome("failed", None, {}, f"Migration API: {exc}"), progress)
            return
        data: dict[str, Any] = {"steps": [{"key": s.key, "op": s.op, "args": s.args} for s in steps]}
        try:
            steps = await self._stage(pid, drive, steps, lib, data, progress)
        except (MigrationApiError, AzureError, GraphError, httpx.HTTPError) as exc:
            self.fail(steps, f"Migration API staging: {exc}", progress)
            await self.cleanup(pid, data)
            return
        if not steps:
            await self.cleanup(pid, data)
            return
        self.save(pid, drive, "submitting", data)
        # Intents when the package leaves for SharePoint (staging in our own storage changes no target): a
        # package discarded before this leaves no step in doubt, so a re-plan treats its files as new.
        self.ops.journal.intents(steps)
        sec = self.secrets.get(pid)
        try:
            job = await submit(
                self, pid, data, Containers(sec["source"], sec["manifest"]), crypto.unb64(sec["key"])
            )
        except MigrationApiError as exc:  # SharePoint answered and refused: nothing was queued
            self.fail(steps, f"Migration API refused the job: {exc}", progress)
            await self.cleanup(pid, data)
            return
        except (httpx.HTTPError, AzureError) as exc:  # unknown whether it landed: the next run finds out
            self.fail(steps, f"Migration API submission in doubt ({exc}); the next run re-attaches", progress)
            return
        self.save(pid, drive, "submitted", data, job)
        killpoints.reached("bulk.submitted")
        await follow_safely(self, pid, drive, data, job, steps, progress)

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
        key = crypto.new_key()
        containers = await self._containers(pid, lib.library.site_url)
        if containers.key is not None:
            key = containers.key
        files = {s.key: self._file_entry(s) for s in steps}
        data["files"] = files
        data["containers"] = {
            "source": containers.source.split("?")[0],
            "manifest": containers.manifest.split("?")[0],
        }
        self.secrets.put(pid, key=crypto.b64(key), source=containers.source, manifest=containers.manifest)
        self.save(pid, drive, "staging", data)
        staged, problems = await stage_files(self, steps, files, containers, key, lib)
        for s, message in problems:
            self.finish(s, Outcome("failed", None, {}, message), progress)
        steps = [s for s in steps if s.key in staged]
        data["steps"] = [{"key": s.key, "op": s.op, "args": s.args} for s in steps]
        if not steps:
            return steps
        data["authors"] = staged
        await stage_manifests(self, steps, files, staged, containers, key, lib)
        queue = await self.rest.call("POST", lib.library.site_url, "site/ProvisionMigrationQueue")
        self.secrets.put(pid, queue=queue["JobQueueUri"])
        data["site_url"] = lib.library.site_url
        data["web_id"] = lib.library.web_id
        self.save(pid, drive, "staged", data)
        killpoints.reached("bulk.staged")
        return steps

    def fail(self, steps: list[Step], message: str, progress: Callable[[], None]) -> None:
        for s in steps:
            if s.key not in self.finished:
                self.finish(s, Outcome("failed", None, {}, message), progress)

    async def _containers(self, pid: str, site_url: str) -> Containers:
        if self.staging is None:
            raise MigrationApiError("no staging storage")
        return await self.staging.create(pid, site_url)

    def finish(self, step: Step, outcome: Outcome, progress: Callable[[], None]) -> None:
        self.finished.add(step.key)
        self.ops.journal.outcomes([(step, outcome)])
        st = self.ops.state
        if outcome.status == "failed":
            st.failed += 1
            st.failures.append({"step": step.describe(), "message": outcome.message})
        else:
            st.done += 1
        progress()

    async def cleanup(self, pid: str, data: dict[str, Any]) -> None:
        """Containers go as soon as their import is verified (policy `staging.cleanup`); the landing zone's
        lifecycle rule deletes whatever a crashed run left behind."""
        sec = self.secrets.get(pid)
        if self.staging is not None and sec and self.env.academy.files.staging_cleanup == "after-verify":
            with contextlib.suppress(Exception):
                await self.staging.delete(Containers(sec["source"], sec["manifest"]))
        with self.store.tx() as tx:
            tx.execute(
                "UPDATE bulk_packages SET state = 'done', at = ? WHERE academy = ? AND package_id = ?",
                (now(), self.code, pid),
            )
        self.secrets.drop(pid)

    # ---- identities, ids -----------------------------------------------------------------------------------
    def _user_map(self) -> dict[str, tuple[str, str]]:
        """Source user id -> (target UPN, display name), from the reviewed mapping."""
        return {
            r["source_id"]: (r["target_key"], r["display_name"] or r["target_key"])
            for r in self.store.rows(
                "SELECT source_id, target_key, display_name FROM mappings "
                "WHERE academy = ? AND kind = 'user' AND action IN ('create', 'match')",
                (self.code,),
            )
        }

    def _file_entry(self, step: Step) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "item": str(uuid.uuid4()), "blob": f"{uuid.uuid4().hex}.dat"}


Executor = Callable[[list[Step], int, Callable[[], None]], Awaitable[None]]
