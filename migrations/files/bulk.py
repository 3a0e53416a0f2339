"""The bulk file engine: a files plan's copy steps moved by SharePoint's Migration API, not Graph uploads.

The plan, journal, verification, rollback and incremental semantics are the Graph engine's: folders, moves,
adoptions and deletes still go through Graph (they are few); each copy step gets its journal intent before its
package is staged and its outcome only after the imported item was read back through Graph and matched by
size and quickXorHash, recorded in file_copies exactly as the Graph engine records it.

Per package (one target library, at most 250 files or 250 MB, a larger file alone: Microsoft's guidance):
download from the source (streamed) -> AES-256-CBC with a fresh IV per file -> block blobs with metadata IV
and a snapshot -> manifests (migrations/files/manifest.py), each encrypted with its own IV -> a report queue
from ProvisionMigrationQueue -> CreateMigrationJobEncrypted -> queue events decrypted -> verify through Graph.

A package's life is journaled in `bulk_packages` (staging -> submitting -> submitted -> imported -> done) and
its secrets (AES key, SAS-bearing URIs) in a 0600 file beside the store. A killed run re-attaches to every
package it had submitted (the queue tells whether a submission landed) and never submits one twice; packages
not yet submitted are discarded and their steps packaged afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from azure.core.exceptions import AzureError
from quickxorhash import quickxorhash

from migrations.engine import Outcome, Step
from migrations.files import crypto
from migrations.files import manifest as mf
from migrations.files.sharepoint_rest import MigrationApiError, SharePointRest, url_arg
from migrations.files.staging import Containers, OwnStaging, ProvidedStaging
from migrations.graph import GraphError
from migrations.store import now

log = logging.getLogger("trustfold.files.bulk")
BLOCK = 4 * 1024 * 1024  # staged block size (Azure allows up to 4000 MiB; 4 MiB keeps memory flat)
FILES_AT_ONCE = 8
PACKAGES_AT_ONCE = 4
POLL_MAX_S = 5.0  # queue polling backs off to this; a rehearsal (sandbox) polls faster
CRASH_ENV = "TRUSTFOLD_BULK_CRASH_AT"  # test hook: SIGKILL this process at a named commit boundary


def _boundary(name: str) -> None:
    """Crash tests kill the run here, at a commit boundary, through this hook rather than by timing."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class Secrets:
    """Job keys and SAS-bearing URIs by package: a 0600 file beside the store, never the store or logs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, dict[str, str]] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def put(self, package: str, **values: str) -> None:
        self.data.setdefault(package, {}).update(values)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def get(self, package: str) -> dict[str, str]:
        return self.data.get(package, {})

    def drop(self, package: str) -> None:
        if self.data.pop(package, None) is not None:
            self._write()


@dataclass
class _Lib:
    library: mf.Library
    drive_url: str  # absolute library URL
    folders: dict[str, str]  # library-relative folder path -> GUID ('' = root folder)


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
        self.libs: dict[str, _Lib] = {}
        self.users = self._user_map()
        self.events: dict[str, int] = {}
        self.finished: set[str] = set()

    # ---- entry ---------------------------------------------------------------------------------------------
    async def run(self, steps: list[Step], progress: Callable[[], None]) -> None:
        handled = await self._reattach(progress)
        todo = [s for s in steps if s.key not in handled]
        packages = _packages(todo)
        sem = asyncio.Semaphore(PACKAGES_AT_ONCE)

        async def one(p: list[Step]) -> None:
            async with sem:
                await self._package(p, progress)

        await asyncio.gather(*(one(p) for p in packages))

    # ---- package lifecycle ---------------------------------------------------------------------------------
    def _save(self, pid: str, drive: str, state: str, data: dict[str, Any], job: str | None = None) -> None:
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
            lib = await self._library(drive, [s.args["path"] for s in steps])
        except (MigrationApiError, GraphError, LookupError) as exc:
            for s in steps:
                self._finish(s, Outcome("failed", None, {}, f"Migration API: {exc}"), progress)
            return
        data: dict[str, Any] = {"steps": [{"key": s.key, "op": s.op, "args": s.args} for s in steps]}
        try:
            steps = await self._stage(pid, drive, steps, lib, data, progress)
        except (MigrationApiError, AzureError, GraphError, httpx.HTTPError) as exc:
            self._fail(steps, f"Migration API staging: {exc}", progress)
            await self._cleanup(pid, data)
            return
        if not steps:
            await self._cleanup(pid, data)
            return
        self._save(pid, drive, "submitting", data)
        # Intents when the package leaves for SharePoint (staging in our own storage changes no target): a
        # package discarded before this leaves no step in doubt, so a re-plan treats its files as new.
        self.ops.journal.intents(steps)
        sec = self.secrets.get(pid)
        try:
            job = await self._submit(
                pid, data, Containers(sec["source"], sec["manifest"]), crypto.unb64(sec["key"])
            )
        except MigrationApiError as exc:  # SharePoint answered and refused: nothing was queued
            self._fail(steps, f"Migration API refused the job: {exc}", progress)
            await self._cleanup(pid, data)
            return
        except (httpx.HTTPError, AzureError) as exc:  # unknown whether it landed: the next run finds out
            self._fail(
                steps, f"Migration API submission in doubt ({exc}); the next run re-attaches", progress
            )
            return
        self._save(pid, drive, "submitted", data, job)
        _boundary("submitted")
        await self._follow_safely(pid, drive, data, job, steps, progress)

    async def _stage(
        self,
        pid: str,
        drive: str,
        steps: list[Step],
        lib: _Lib,
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
        self._save(pid, drive, "staging", data)
        staged, problems = await self._stage_files(pid, steps, files, containers, key, lib)
        for s, message in problems:
            self._finish(s, Outcome("failed", None, {}, message), progress)
        steps = [s for s in steps if s.key in staged]
        data["steps"] = [{"key": s.key, "op": s.op, "args": s.args} for s in steps]
        if not steps:
            return steps
        data["authors"] = staged
        await self._stage_manifests(steps, files, staged, containers, key, lib)
        queue = await self.rest.call("POST", lib.library.site_url, "site/ProvisionMigrationQueue")
        self.secrets.put(pid, queue=queue["JobQueueUri"])
        data["site_url"] = lib.library.site_url
        data["web_id"] = lib.library.web_id
        self._save(pid, drive, "staged", data)
        _boundary("staged")
        return steps

    async def _follow_safely(
        self,
        pid: str,
        drive: str,
        data: dict[str, Any],
        job: str,
        steps: list[Step],
        progress: Callable[[], None],
    ) -> None:
        try:
            await self._follow(pid, drive, data, job, progress)
        except (AzureError, httpx.HTTPError, GraphError, MigrationApiError) as exc:
            # The job stays journaled as submitted: the next run re-attaches to it, never resubmits.
            left = [s for s in steps if s.key not in self.finished]
            self._fail(left, f"Migration API job {job} in flight ({exc}); the next run re-attaches", progress)

    def _fail(self, steps: list[Step], message: str, progress: Callable[[], None]) -> None:
        for s in steps:
            if s.key not in self.finished:
                self._finish(s, Outcome("failed", None, {}, message), progress)

    async def _containers(self, pid: str, site_url: str) -> Containers:
        if self.staging is None:
            raise MigrationApiError("no staging storage")
        return await self.staging.create(pid, site_url)

    async def _submit(self, pid: str, data: dict[str, Any], containers: Containers, key: bytes) -> str:
        assert self.staging is not None
        src, man = await self.staging.job_uris(containers)
        body = {
            "options": {"AES256CBCKey": crypto.b64(key)},
            "gWebId": data["web_id"],
            "azureContainerSourceUri": src,
            "azureContainerManifestUri": man,
            "azureQueueReportUri": self.secrets.get(pid)["queue"],
        }
        got = await self.rest.call("POST", data["site_url"], "site/CreateMigrationJobEncrypted", body)
        return str(got["value"])

    # ---- re-attach after a crash ---------------------------------------------------------------------------
    async def _reattach(self, progress: Callable[[], None]) -> set[str]:
        handled: set[str] = set()
        rows = self.store.rows(
            "SELECT * FROM bulk_packages WHERE academy = ? AND state != 'done' ORDER BY at", (self.code,)
        )
        for r in rows:
            pid, data = r["package_id"], json.loads(r["data"])
            if r["state"] in ("staging", "staged"):
                # Never submitted: nothing can have been imported; its steps are packaged again.
                await self._cleanup(pid, data)
                continue
            keys = {s["key"] for s in data["steps"]}
            handled |= keys
            job = r["job_id"]
            if r["state"] == "submitting" and not job:
                job = await self._landed(pid)
                if job is None:
                    log.info("package %s: its submission never landed; submitting it now", pid)
                    key = crypto.unb64(self.secrets.get(pid)["key"])
                    sec = self.secrets.get(pid)
                    self.ops.journal.intents([Step(s["key"], s["op"], s["args"]) for s in data["steps"]])
                    job = await self._submit(pid, data, Containers(sec["source"], sec["manifest"]), key)
                self._save(pid, r["target_drive"], "submitted", data, job)
            log.info("package %s: re-attaching to Migration API job %s", pid, job)
            steps = [Step(s["key"], s["op"], s["args"]) for s in data["steps"]]
            if r["state"] == "imported":
                await self._verify(pid, r["target_drive"], data, progress)
            else:
                await self._follow_safely(pid, r["target_drive"], data, job, steps, progress)
        return handled

    async def _landed(self, pid: str) -> str | None:
        """The job id of a submission whose answer was lost: SharePoint writes JobQueued on acceptance."""
        from azure.storage.queue import QueueClient

        q = QueueClient.from_queue_url(self.secrets.get(pid)["queue"], connection_verify=self.verify)
        key = crypto.unb64(self.secrets.get(pid)["key"])
        msgs = await asyncio.to_thread(lambda: list(q.peek_messages(max_messages=32)))
        for m in msgs:
            return str(crypto.decrypt_message(m.content, key).get("JobId"))
        return None

    # ---- events --------------------------------------------------------------------------------------------
    async def _follow(
        self, pid: str, drive: str, data: dict[str, Any], job: str, progress: Callable[[], None]
    ) -> None:
        from azure.storage.queue import QueueClient

        q = QueueClient.from_queue_url(self.secrets.get(pid)["queue"], connection_verify=self.verify)
        key = crypto.unb64(self.secrets.get(pid)["key"])
        data.setdefault("errors", {})
        data.setdefault("warnings", {})
        pause, ended = 0.05, False
        most = 0.25 if self.env.conns.graph_url else POLL_MAX_S
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
                self.events[kind] = self.events.get(kind, 0) + 1
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
                    _boundary("importing")
                ended = ended or kind == "JobEnd"
            # Recorded before the messages leave the queue, so a crash loses no error.
            self._save(pid, drive, "imported" if ended else "submitted", data)
            for m in msgs:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(q.delete_message, m)
        await self._verify(pid, drive, data, progress)

    # ---- verification (the Graph engine's check) -----------------------------------------------------------
    async def _verify(self, pid: str, drive: str, data: dict[str, Any], progress: Callable[[], None]) -> None:
        by_guid = {v["id"]: k for k, v in data["files"].items()}
        errors = {by_guid.get(k, k): v for k, v in data.get("errors", {}).items()}
        warnings = {by_guid.get(k, k): v for k, v in data.get("warnings", {}).items()}
        findings = []
        listings: dict[str, dict[str, dict[str, Any]]] = {}
        for raw in data["steps"]:
            step = Step(raw["key"], raw["op"], raw["args"])
            a = step.args
            folder, _, name = a["path"].rpartition("/")
            if folder not in listings:
                # One listing per folder (2 RU a page) instead of one GET per file: the check costs little.
                listings[folder] = await self._children(a["target_drive"], folder)
            item = listings[folder].get(name.lower(), {})
            found = bool(item)
            got = ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash")
            if warnings.get(step.key):
                findings.append(("import-warning", a, warnings[step.key], "imported; SharePoint warned"))
            if found and int(item.get("size") or 0) == int(a["size"]) and got == a["hash"]:
                created = not a.get("replace_id") or self._was_created(a)
                # The done outcome carries its file_copies row: journal and record commit together.
                out = self.ops.record(step, item, created, False)
                out.data["bytes"] = int(item.get("size") or 0)
                self.ops.state.counters.files_done += 1
                self.ops.state.counters.bytes_done += int(a["size"])
                self._finish(step, out, progress)
            else:
                why = (
                    errors.get(step.key)
                    or errors.get("job")
                    or (
                        "imported content differs from the source (size/quickXorHash)"
                        if found
                        else "not imported"
                    )
                )
                findings.append(("import-error", a, why, "not copied; the next run tries again"))
                self._finish(step, Outcome("failed", None, {}, f"Migration API: {why}"), progress)
        if findings:
            with self.store.tx() as tx:
                tx.executemany(
                    "INSERT OR REPLACE INTO file_findings "
                    "(academy, kind, object_id, display, message, handling) VALUES (?, ?, ?, ?, ?, ?)",
                    [(self.code, k, a["source_id"], a["path"], m, h) for k, a, m, h in findings],
                )
        self._save(pid, drive, "done", data)
        await self._cleanup(pid, data)

    async def _children(self, drive: str, folder: str) -> dict[str, dict[str, Any]]:
        target, budget = self.ops.target, self.ops.budget
        path = (
            f"/drives/{drive}/root:/{quote(folder)}:/children" if folder else f"/drives/{drive}/root/children"
        )
        out: dict[str, dict[str, Any]] = {}
        url: str | None = path
        while url:
            await budget.acquire(target.tenant_id, 2)
            resp = await target.request("GET", url, counts_as_write=False)
            if resp.status == 404:
                return out
            if not resp.ok:
                raise GraphError("GET", url, resp)
            for it in resp.body.get("value", []):
                out[str(it["name"]).lower()] = dict(it)
            url = resp.body.get("@odata.nextLink")
        return out

    def _was_created(self, a: dict[str, Any]) -> bool:
        rec = self.store.rows(
            "SELECT created FROM file_copies WHERE academy = ? AND drive_key = ? AND source_id = ?",
            (self.code, a["drive_key"], a["source_id"]),
        )
        return bool(rec and rec[0]["created"])

    def _finish(self, step: Step, outcome: Outcome, progress: Callable[[], None]) -> None:
        self.finished.add(step.key)
        self.ops.journal.outcomes([(step, outcome)])
        st = self.ops.state
        if outcome.status == "failed":
            st.failed += 1
            st.failures.append({"step": step.describe(), "message": outcome.message})
        else:
            st.done += 1
        progress()

    async def _cleanup(self, pid: str, data: dict[str, Any]) -> None:
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

    # ---- identities, library ids ---------------------------------------------------------------------------
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

    async def _library(self, drive: str, paths: list[str]) -> _Lib:
        lib = self.libs.get(drive)
        if lib is None:
            await self.ops.budget.acquire(self.ops.target.tenant_id, 1)
            d = await self.ops.target.get(f"/drives/{drive}")
            parts = urlsplit(d["webUrl"])
            web_path, _, list_part = parts.path.rpartition("/")
            site_url = f"{parts.scheme}://{parts.netloc}{web_path}"
            web = await self.rest.call("GET", site_url, "web")
            lst = await self.rest.call("GET", site_url, f"web/GetList({url_arg(unquote(parts.path))})")
            kind = "OneDrive" if d.get("driveType") == "business" else "SharePointOnline"
            library = mf.Library(
                site_url, web["Id"], web_path, lst["Id"], lst["Title"], unquote(list_part),
                lst["RootFolder"]["UniqueId"], kind,
            )  # fmt: skip
            lib = self.libs[drive] = _Lib(library, d["webUrl"], {"": lst["RootFolder"]["UniqueId"]})
        for p in paths:
            parts_ = p.split("/")[:-1]
            for i in range(1, len(parts_) + 1):
                rel = "/".join(parts_[:i])
                if rel not in lib.folders:
                    server = f"{lib.library.web_url}/{lib.library.list_url}/{rel}"
                    got = await self.rest.call(
                        "GET", lib.library.site_url, f"web/GetFolderByServerRelativeUrl({url_arg(server)})"
                    )
                    lib.folders[rel] = got["UniqueId"]
        return lib

    # ---- staging -------------------------------------------------------------------------------------------
    async def _stage_files(
        self,
        pid: str,
        steps: list[Step],
        files: dict[str, dict[str, Any]],
        containers: Containers,
        key: bytes,
        lib: _Lib,
    ) -> tuple[dict[str, dict[str, str | None]], list[tuple[Step, str]]]:
        assert self.staging is not None
        client = self.staging.client(containers.source)
        staged: dict[str, dict[str, str | None]] = {}
        problems: list[tuple[Step, str]] = []
        sem = asyncio.Semaphore(FILES_AT_ONCE)
        first = True

        async def one(step: Step) -> None:
            nonlocal first
            async with sem:
                try:
                    authors = await self._stage_one(step, files[step.key], client, key, lib)
                except (_SourceChanged, GraphError, MigrationApiError, AzureError) as exc:
                    problems.append((step, str(exc)))
                    return
                staged[step.key] = authors
                if first:
                    first = False
                    _boundary("packaging")

        await asyncio.gather(*(one(s) for s in steps))
        return staged, problems

    async def _stage_one(
        self, step: Step, entry: dict[str, Any], client: Any, key: bytes, lib: _Lib
    ) -> dict[str, str | None]:
        a = step.args
        if a.get("replace_id"):
            # The Migration API overwrites by identity: the same GUID as the item already there.
            server = f"{lib.library.web_url}/{lib.library.list_url}/{a['path']}"
            got = await self.rest.call(
                "GET", lib.library.site_url, f"web/GetFileByServerRelativeUrl({url_arg(server)})"
            )
            entry["id"] = got["UniqueId"]
        await self.ops.budget.acquire(self.source.tenant_id, 1)
        item = await self.source.get(f"/drives/{a['source_drive']}/items/{a['source_id']}")
        if item.get("cTag") != a.get("ctag") or int(item.get("size") or 0) != int(a["size"]):
            raise _SourceChanged(
                "the source file changed after planning; the next run copies the new version"
            )
        iv = crypto.new_iv()
        hasher = quickxorhash()
        await self.ops.budget.acquire(self.source.tenant_id, 1)
        chunks = _hashing(self._download(item), hasher)
        blob = client.get_blob_client(entry["blob"])
        sent = await _upload(blob, crypto.aencrypt_chunks(chunks, key, iv), {"IV": crypto.b64(iv)})
        if crypto.b64(hasher.digest()) != a["hash"]:
            raise _SourceChanged("the downloaded bytes do not match the source's quickXorHash")
        self.ops.state.counters.bytes_sent += sent
        by = lambda k: ((item.get(k) or {}).get("user") or {}).get("id")  # noqa: E731
        return {"author": by("createdBy"), "editor": by("lastModifiedBy")}

    async def _download(self, item: dict[str, Any]) -> AsyncIterator[bytes]:
        url = item.get("@microsoft.graph.downloadUrl")
        if int(item.get("size") or 0) == 0:
            return
        if not url:
            raise _SourceChanged("the source gave no download URL")
        async with self.source.http.stream("GET", url) as r:
            if r.status_code != 200:
                raise _SourceChanged(f"download answered {r.status_code}")
            async for piece in r.aiter_bytes(BLOCK):
                yield piece

    async def _stage_manifests(
        self,
        steps: list[Step],
        files: dict[str, dict[str, Any]],
        staged: dict[str, dict[str, str | None]],
        containers: Containers,
        key: bytes,
        lib: _Lib,
    ) -> None:
        assert self.staging is not None
        users: dict[str, mf.User] = {}

        def uid(source_user: str | None) -> int | None:
            mapped = self.users.get(source_user or "")
            if mapped is None:
                return None  # unmapped or skipped: SharePoint shows System Account
            if mapped[0] not in users:
                users[mapped[0]] = mf.User(len(users) + 1, mapped[1], mapped[0])
            return users[mapped[0]].id

        pfiles, folders = [], {}
        for s in steps:
            a, e = s.args, files[s.key]
            parent = a["path"].rpartition("/")[0]
            for i, part in enumerate(parent.split("/") if parent else []):
                rel = "/".join(parent.split("/")[: i + 1])
                up = rel.rpartition("/")[0]
                folders[rel] = mf.Folder(lib.folders[rel], rel, lib.folders[up])
                del part
            pfiles.append(
                mf.File(
                    e["id"],
                    e["item"],
                    a["path"],
                    lib.folders[parent],
                    int(a["size"]),
                    e["blob"],
                    a.get("created") or "",
                    a.get("modified") or "",
                    uid(staged[s.key].get("author")),
                    uid(staged[s.key].get("editor")),
                )
            )
        xml = mf.build(mf.Package(lib.library, list(folders.values()), pfiles, list(users.values())))
        client = self.staging.client(containers.manifest)
        for name, body in xml.items():
            iv = crypto.new_iv()
            await _upload(
                client.get_blob_client(name),
                crypto.aencrypt_chunks(_once(body), key, iv),
                {"IV": crypto.b64(iv)},
            )


class _SourceChanged(Exception):
    pass


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _hashing(chunks: AsyncIterator[bytes], hasher: Any) -> AsyncIterator[bytes]:
    async for c in chunks:
        hasher.update(c)
        yield c


async def _upload(blob: Any, chunks: AsyncIterator[bytes], metadata: dict[str, str]) -> int:
    """Staged blocks of BLOCK bytes (each retried by the SDK on its own), committed with the IV metadata, then
    snapshotted (Migration API imports a blob's latest snapshot). Memory: one block."""
    buf, sent = bytearray(), 0
    ids: list[str] = []

    async def flush() -> None:
        nonlocal sent
        block_id = crypto.b64(f"{len(ids):08d}".encode())
        data = bytes(buf)
        await asyncio.to_thread(blob.stage_block, block_id, data)
        ids.append(block_id)
        sent += len(data)
        buf.clear()

    async for chunk in chunks:
        buf += chunk
        if len(buf) >= BLOCK:
            await flush()
    if buf or not ids:
        await flush()
    await asyncio.to_thread(blob.commit_block_list, ids, metadata=metadata)
    await asyncio.to_thread(blob.create_snapshot)
    return sent


def _packages(steps: list[Step]) -> list[list[Step]]:
    """Per target library, at most 250 items or 250 MB, whichever comes first; a larger file alone."""
    out: list[list[Step]] = []
    by_drive: dict[str, list[Step]] = {}
    for s in sorted(steps, key=lambda s: (s.args["target_drive"], s.args["path"])):
        by_drive.setdefault(s.args["target_drive"], []).append(s)
    for group in by_drive.values():
        cur: list[Step] = []
        size = 0
        for s in group:
            n = int(s.args["size"])
            if n > mf.MAX_PACKAGE_BYTES:
                out.append([s])
                continue
            if cur and (len(cur) >= mf.MAX_PACKAGE_ITEMS or size + n > mf.MAX_PACKAGE_BYTES):
                out.append(cur)
                cur, size = [], 0
            cur.append(s)
            size += n
        if cur:
            out.append(cur)
    return out


Executor = Callable[[list[Step], int, Callable[[], None]], Awaitable[None]]
