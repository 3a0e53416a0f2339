"""The files phase: plan, run (journaled, resumable), rollback of exactly what it created, verify."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from migrations.core.basis import with_basis
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import PhaseEnv, PhaseRun, register_phase
from migrations.core.runs import Metrics, RunRecord, Tally, phase_run
from migrations.core.steps import Outcome, SideWrite, Step
from migrations.core.store import now
from migrations.core.undo import carry_out, undo_steps
from migrations.files.engine_choice import EngineChoice, migration_api
from migrations.files.engines import CopyEngine
from migrations.files.orphans import Unfinished, unfinished_copies
from migrations.files.plan import PHASE, PlanContext, plan_files
from migrations.files.scan import (
    DrivePair,
    Tree,
    TreeItem,
    drive_pairs,
    read_target,
)
from migrations.files.steps import FilesRules, FilesUndo, in_undo_order
from migrations.files.steps import delete_unchanged as _undo  # the forward delete of a copy, too
from migrations.files.steps import depth as _depth
from migrations.files.steps import sent_by_us as _sent_by_us
from migrations.files.transfer import CopyDiscarded, CopyError, Counters, FileCopier, UploadSessions
from migrations.files.verify import keep_baselines, verify_files
from migrations.graph.client import GraphError, TenantConnection, parse_budget
from migrations.graph.sharepoint_window import SharePointBudget

log = logging.getLogger("trustfold.files")
LARGE = 64 * 1024 * 1024
PER_DRIVE = 4


def _fs(a: dict[str, Any]) -> dict[str, Any]:
    fs = {"createdDateTime": a.get("created"), "lastModifiedDateTime": a.get("modified")}
    fs = {k: v for k, v in fs.items() if v}
    return {"fileSystemInfo": fs} if fs else {}


@dataclass(kw_only=True)
class _RunState(Tally):
    """The run's tally, and what its steps share."""

    trees: dict[str, Tree]
    in_doubt: set[str]
    unfinished: dict[str, Unfinished] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    notes: list[str] = field(default_factory=list)


@dataclass
class FolderCarry:
    """What carrying folder pairs did: its tally (failures included), the plan's notes and counters."""

    state: _RunState
    notes: list[str]
    planned: int


async def carry_folders(
    env: PhaseEnv,
    run_id: str,
    pairs: list[DrivePair],
    *,
    phase: str,
    concurrency: int,
    budget: SharePointBudget,
) -> FolderCarry:
    """Plan and copy folder pairs (a phase of its own's folders, such as Teams channels' files folders) with
    the files engine: the same scan, conflict rules, hash checks and timestamps, journaled under `phase` so
    that phase's rollback undoes exactly these copies. Always the Graph engine: channel folders are small,
    and the Migration API's packages are planned per drive."""
    code = env.academy.code
    source, target = env.conns.source(code), env.conns.target
    await budget.prepare(source)
    await budget.prepare(target)
    plan, ctx = await plan_files(env.academy, env.store, pairs, source, target, budget, phase=phase)
    journal = Journal(env.store, run_id, code, phase, plan.id)
    in_doubt = {k for k, v in Journal.state(env.store, code, phase).items() if v["event"] == "intent"}
    state = _RunState(
        trees=dict(ctx.targets), in_doubt=in_doubt, unfinished=unfinished_copies(env.store, code, phase)
    )
    sessions = UploadSessions(env.run_dir.parent / f"upload-sessions-{code}-{phase}.json")
    ops = _Ops(
        env, target, budget, FileCopier(source, target, budget, sessions, state.counters), journal, state
    )
    ops.graph_only = True
    keep_baselines(env.store, code, state.trees, ctx.drive_ids)
    await ops.execute(plan.steps, concurrency, lambda: None)
    return FolderCarry(state, list(plan.notes) + state.notes, len(plan.steps))


class FilesPhase:
    name = PHASE

    def _budget(self, env: PhaseEnv) -> SharePointBudget:
        text = env.options.get("sharepoint_budget")
        override = parse_budget(text) if text and text != "auto" else None
        return SharePointBudget(override, env.run_dir.parent)

    async def _prepared(self, env: PhaseEnv) -> tuple[TenantConnection, TenantConnection, SharePointBudget]:
        source, target = env.conns.source(env.academy.code), env.conns.target
        budget = env.options.get("_budget") or self._budget(env)
        env.options["_budget"] = budget
        await budget.prepare(source)
        await budget.prepare(target)
        return source, target, budget

    async def plan(self, env: PhaseEnv) -> Plan:
        from migrations.core.errors import PlanningError

        code = env.academy.code
        if not env.academy.files.enabled:
            raise PlanningError(f"files are switched off for {code} (phases.files.enabled in its config)")
        if not env.store.rows("SELECT 1 FROM mappings WHERE academy = ? LIMIT 1", (code,)):
            raise PlanningError(f"no mapping for {code}: run `trustfold discover {code}` first")
        source, target, budget = await self._prepared(env)
        try:
            plan, ctx = await plan_files(
                env.academy,
                env.store,
                drive_pairs(env.store, env.academy),
                source,
                target,
                budget,
                propagate_deletes=bool(env.options.get("propagate_deletes")),
                fresh_seconds=float(env.options.get("scan_age") or 0),
            )
        except LookupError as exc:
            raise PlanningError(
                f"{exc} (check phases.files.libraries in config/academies/{code}.yaml)"
            ) from None
        finally:
            budget.save()
        plan.context = ctx
        return with_basis(plan, env)

    async def discover(self, env: PhaseEnv) -> dict[str, int]:
        """Scan the source drives (delta) and record their problems as findings, before any copying: the
        trust-side paths are estimated from the target sites and UPNs (OneDrives may not exist yet)."""
        from migrations.core.errors import PlanningError

        source, target, budget = await self._prepared(env)
        try:
            await plan_files(
                env.academy,
                env.store,
                drive_pairs(env.store, env.academy),
                source,
                target,
                budget,
                estimate_targets=True,
            )
        except LookupError as exc:
            raise PlanningError(
                f"{exc} (check phases.files.libraries in config/academies/{env.academy.code}.yaml)"
            ) from None
        finally:
            budget.save()
        drives = env.store.rows(
            "SELECT count(*) AS n FROM drives WHERE academy = ? AND source_drive_id IS NOT NULL",
            (env.academy.code,),
        )[0]["n"]
        items = env.store.rows(
            "SELECT count(*) AS n FROM drive_items "
            "WHERE academy = ? AND deleted = 0 AND parent_id IS NOT NULL",
            (env.academy.code,),
        )[0]["n"]
        return {"drives": drives, "items": items}

    # ---- run ----------------------------------------------------------------------------------------------
    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        prepared = await self._prepared(env)
        ctx = plan.context if isinstance(plan.context, PlanContext) else PlanContext()
        async with phase_run(
            env.store, env.academy.code, PHASE, "run", env.operator, plan_id=plan.id, planned=len(plan.steps)
        ) as run:
            failures, notes = await self._run(env, plan, run, concurrency, ctx, prepared)
        return run.outcome(failures, notes)

    async def _run(
        self,
        env: PhaseEnv,
        plan: Plan,
        run: RunRecord,
        concurrency: int,
        ctx: PlanContext,
        prepared: tuple[TenantConnection, TenantConnection, SharePointBudget],
    ) -> tuple[list[dict[str, str]], list[str]]:
        code, run_id = env.academy.code, run.run_id
        source, target, budget = prepared
        journal = Journal(env.store, run_id, code, PHASE, plan.id)
        in_doubt = {k for k, v in Journal.state(env.store, code, PHASE).items() if v["event"] == "intent"}
        state = _RunState(
            trees=dict(ctx.targets), in_doubt=in_doubt, unfinished=unfinished_copies(env.store, code, PHASE)
        )
        run.tally = state
        sessions = UploadSessions(env.run_dir.parent / f"upload-sessions-{code}.json")
        copier = FileCopier(source, target, budget, sessions, state.counters)
        metrics = Metrics(env.store, run_id)
        before = {c.tenant_id: c.stats.as_dict() for c in (source, target)}
        total = len(plan.steps)
        ops = _Ops(env, target, budget, copier, journal, state)

        def progress() -> None:
            finished = state.done + state.already + state.failed + state.skipped
            if env.progress:
                env.progress(finished, total)
            metrics.sample(
                {
                    "items_done": finished,
                    "bytes_done": state.counters.bytes_done,
                    "throttled": sum(c.stats.throttled for c in (source, target)),
                }
            )

        started = time.monotonic()

        def measure() -> dict[str, Any]:
            after = {c.tenant_id: c.stats.as_dict() for c in (source, target)}

            def delta(k: str) -> float:
                return round(sum(after[t][k] - before[t][k] for t in after), 3)

            renamed = env.store.rows(
                "SELECT count(*) AS n FROM file_findings WHERE academy = ? AND kind IN "
                "('forbidden-name', 'name-conflict', 'path-too-long')",
                (code,),
            )[0]["n"]
            return {
                "planned": total,
                "done": state.done,
                "already_present": state.already + plan.already_present,
                "failed": state.failed,
                "skipped": state.skipped,
                "files": state.counters.files_done,
                "bytes": state.counters.bytes_done,
                "bytes_sent": state.counters.bytes_sent,
                "renamed": renamed,
                "requests": delta("requests"),
                "throttled": delta("throttled"),
                "wait_seconds": delta("wait_seconds"),
                "sharepoint_ru": sum(budget.spent.values()),
                "sharepoint_ru_target": budget.spent.get(target.tenant_id, 0),
                "seconds": round(time.monotonic() - started, 3),
            }

        run.measure = measure
        # Before the first write: where the plan's whole read of each target drive ended is verify's baseline.
        keep_baselines(env.store, code, state.trees, ctx.drive_ids)
        try:
            await ops.execute(plan.steps, concurrency, progress)
        finally:
            progress()
            budget.save()
        return state.failures, list(plan.notes) + state.notes

    # ---- rollback -----------------------------------------------------------------------------------------
    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        """What this phase created, from the journal (each step's undo: files/steps.py), files first and
        folders deepest first."""
        return in_undo_order(undo_steps(env.store, env.academy.code, PHASE))

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        _, target, budget = await self._prepared(env)
        async with phase_run(env.store, code, PHASE, "rollback", env.operator, planned=len(steps)) as run:
            sessions = UploadSessions(env.run_dir.parent / f"upload-sessions-{code}.json")
            undo = FilesUndo(code, target, budget, sessions)
            try:
                await carry_out(
                    env.store,
                    code,
                    run.run_id,
                    steps,
                    undo,
                    FilesRules(),
                    concurrency=PER_DRIVE,
                    result=run.tally,
                )
            finally:
                budget.save()
        notes = run.tally.kept_notes()
        if purge:
            notes.append(
                "deleted files and folders are in the site's recycle bin (kept 93 days by SharePoint)"
            )
        return run.outcome(run.tally.failures, notes)

    # ---- verify -------------------------------------------------------------------------------------------
    async def verify(self, env: PhaseEnv) -> dict[str, Any]:
        code = env.academy.code
        if not env.store.rows(
            "SELECT 1 FROM runs WHERE academy = ? AND phase = ? AND kind = 'run'", (code, PHASE)
        ):
            return {
                "checked": 0,
                "differences": [],
                "drives": [],
                "files": 0,
                "matched": 0,
                "bytes": 0,
                "note": "the files phase has not run for this academy",
            }
        source, target, budget = await self._prepared(env)
        try:
            return await verify_files(env, source, target, budget)
        finally:
            budget.save()


class _Ops:
    """Carries out a files plan: folders top-down, moves, copies with bounded concurrency, deletes. It is the
    Graph copy engine too; `phases.files.engine` may give a drive's copies to the Migration API instead."""

    def __init__(
        self,
        env: PhaseEnv,
        target: TenantConnection,
        budget: SharePointBudget,
        copier: FileCopier,
        journal: Journal,
        state: _RunState,
    ):
        self.env, self.target, self.budget, self.copier = env, target, budget, copier
        self.journal, self.state = journal, state
        self.code = env.academy.code
        self.large = asyncio.Semaphore(2)  # bounds memory: at most two large files stream at once
        self.graph_only = False  # folder pairs of another phase: every copy through Graph
        self.per_drive: dict[str, asyncio.Semaphore] = {}
        self.engines = EngineChoice(
            env.academy.files,
            self,
            lambda: migration_api(
                env,
                journal=journal,
                target=target,
                budget=budget,
                counters=state.counters,
                record=self.record,
                tally=state.settle,
            ),
        )

    async def execute(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        by_op: dict[str, list[Step]] = {}
        for s in steps:
            by_op.setdefault(s.op, []).append(s)
        copies = by_op.get("copy", [])
        abandon = tuple(self.env.options.get("abandon_packages") or ())
        if abandon:
            # Before anything is copied: a given-up package's files wait for the next run's plan.
            given_up = await self.engines.abandon(abandon, progress)
            copies = [s for s in copies if s.key not in given_up]
        for drive in {s.args["target_drive"] for s in steps} - set(self.state.trees):
            self.state.trees[drive] = await read_target(self.target, self.budget, {"id": drive})
        assigned: list[tuple[CopyEngine, list[Step]]] = (
            [(self, copies)] if self.graph_only else self.engines.assign(copies)
        )
        engines = self._orphans_to_graph(assigned)
        folders = by_op.get("mkdir", []) + [s for s in by_op.get("move", []) if s.args["folder"]]
        for depth in sorted({_depth(s.args["path"]) for s in folders}):
            level = [s for s in folders if _depth(s.args["path"]) == depth]
            # moves before creates at one depth: a renamed folder must take its new name before new
            # folders are made inside it
            level.sort(key=lambda s: s.op != "move")
            await self._all([s for s in level if s.op == "move"], concurrency, progress)
            await self._all([s for s in level if s.op == "mkdir"], concurrency, progress)
        await self._all([s for s in by_op.get("move", []) if not s.args["folder"]], concurrency, progress)
        await self._all(by_op.get("adopt", []), concurrency, progress)
        for engine, copies in engines:
            await engine.copy_steps(copies, concurrency, progress)
        deletes = sorted(by_op.get("delete", []), key=lambda s: (s.args["folder"], -_depth(s.args["path"])))
        for s in deletes:
            await self._one(s, progress)

    def _orphans_to_graph(
        self, engines: list[tuple[CopyEngine, list[Step]]]
    ) -> list[tuple[CopyEngine, list[Step]]]:
        """Copies whose last attempt failed after its upload had landed (a Migration API package given up
        once SharePoint had imported it) go to the Graph engine, which records our unrecorded upload or gives
        it the new content in place (`copy`). The Migration API would import a second item at that path under
        a new GUID, which SharePoint refuses on every run. Copies still in doubt stay with their engine: the
        Migration API engine re-attaches to the package it journaled."""
        orphans = {s.key for _, copies in engines for s in copies if self._failed_orphan(s)}
        if not orphans:
            return engines
        out: list[tuple[CopyEngine, list[Step]]] = []
        moved = [s for _, copies in engines for s in copies if s.key in orphans]
        for engine, copies in engines:
            kept = [s for s in copies if s.key not in orphans]
            if engine is self:
                kept += moved
                moved = []
            out.append((engine, kept))
        if moved:
            out.insert(0, (self, moved))
        return out

    def _failed_orphan(self, step: Step) -> bool:
        a = step.args
        u = self.state.unfinished.get(step.key)
        tree = self.state.trees.get(a["target_drive"])
        if a.get("replace_id") or u is None or u.event != "failed" or tree is None:
            return False
        there = tree.find(a["path"])
        return there is not None and not there.folder and u.holds_ours(there.size, there.hash, there.created)

    async def copy_steps(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        """The Graph engine: each file uploaded through Graph (files/transfer.py), largest first."""
        await self._all(sorted(steps, key=lambda s: -int(s.args["size"])), concurrency, progress)

    async def _all(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        if not steps:
            return
        sem = asyncio.Semaphore(concurrency)

        async def one(step: Step) -> None:
            # Bounded per tenant (the run's concurrency) and per drive, as SharePoint asks of migration tools.
            drive = self.per_drive.setdefault(step.args["target_drive"], asyncio.Semaphore(PER_DRIVE))
            async with drive, sem:
                await self._one(step, progress)

        await asyncio.gather(*(one(s) for s in steps))

    async def _one(self, step: Step, progress: Callable[[], None]) -> None:
        handler: dict[str, Callable[[Step], Awaitable[Outcome]]] = {
            "mkdir": self.mkdir,
            "move": self.move,
            "adopt": self.adopt,
            "copy": self.copy,
            "delete": self.delete,
        }
        self.journal.intents([step])
        try:
            outcome = await handler[step.op](step)
        except (CopyError, GraphError, LookupError) as exc:
            outcome = Outcome("failed", None, {}, str(exc))
        self.journal.outcomes([(step, outcome)])
        self.state.settle(step, outcome)
        progress()

    # ---- helpers ------------------------------------------------------------------------------------------
    async def parent_id(self, drive: str, rel: str) -> str:
        tree = self.state.trees[drive]
        parent = rel.rpartition("/")[0]
        found = tree.find(parent)
        if found is not None:
            return found.id
        async with self.budget.spend(self.target.tenant_id, 1):
            path = f"/drives/{drive}/root:/{quote(parent)}:" if parent else f"/drives/{drive}/root"
            resp = await self.target.request("GET", path, counts_as_write=False)
        if not resp.ok:
            raise CopyError(f"the folder '{parent}' is missing in the target ({resp.status})")
        return str(resp.body["id"])

    def record(self, step: Step, item: dict[str, Any], created: bool, folder: bool) -> Outcome:
        """The done outcome of a step that placed `item`: its file_copies row travels with the outcome as a
        side write, so the journal and file_copies never disagree after a crash."""
        a = step.args
        tree = self.state.trees[a["target_drive"]]
        parent_id = (item.get("parentReference") or {}).get("id")
        tree.add(
            TreeItem(
                item["id"],
                parent_id,
                item["name"],
                folder,
                int(item.get("size") or 0),
                ((item.get("file") or {}).get("hashes") or {}).get("quickXorHash"),
                item.get("cTag"),
            )
        )
        path = tree.path(item["id"]) or a["path"]
        row = SideWrite(
            "INSERT INTO file_copies (academy, drive_key, source_id, folder, target_drive, target_id, "
            "path, size, hash, source_ctag, target_ctag, created, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (academy, drive_key, source_id) DO UPDATE SET target_id = excluded.target_id, "
            "path = excluded.path, size = excluded.size, hash = excluded.hash, "
            "source_ctag = excluded.source_ctag, target_ctag = excluded.target_ctag, "
            "created = max(file_copies.created, excluded.created), at = excluded.at",
            (
                self.code,
                a["drive_key"],
                a.get("source_id") or "",
                int(folder),
                a["target_drive"],
                item["id"],
                path,
                int(item.get("size") or 0),
                item.get("_source_hash") or a.get("hash"),
                item.get("_source_ctag") or a.get("ctag"),
                item.get("cTag"),
                int(created),
                now(),
            ),
        )
        data = {
            "drive_key": a["drive_key"],
            "target_drive": a["target_drive"],
            "path": path,
            "created": created,
            "target_ctag": item.get("cTag"),
        }
        return Outcome("done", str(item["id"]), data, writes=[row])

    # ---- operations ---------------------------------------------------------------------------------------
    async def mkdir(self, step: Step) -> Outcome:
        a = step.args
        drive = a["target_drive"]
        tree = self.state.trees[drive]
        existing = tree.find(a["path"])
        if existing is not None and not existing.folder:
            # The plan gave the folder a conflict name; a file that appeared there since is not ours to take.
            raise CopyError(f"cannot create folder '{a['path']}': a file of that name is in the trust tenant")
        if existing is not None:
            # Ours only if our create was in doubt and the folder carries the creation time we sent: a folder
            # someone in the trust made there meanwhile is merged into, never claimed.
            ours = step.key in self.state.in_doubt and _sent_by_us(
                a, {"fileSystemInfo": {"createdDateTime": existing.created}}
            )
            item = {"id": existing.id, "name": existing.name, "parentReference": {"id": existing.parent}}
            out = self.record(step, item, ours, True)
            out.status = "done" if ours else "already"
            return out
        parent = await self.parent_id(drive, a["path"])
        name = a["path"].rpartition("/")[2]
        async with self.budget.spend(self.target.tenant_id, 2):
            path = f"/drives/{drive}/items/{parent}/children"
            resp = await self.target.request(
                "POST",
                path,
                json={
                    "name": name,
                    "folder": {},
                    "@microsoft.graph.conflictBehavior": "fail",
                    **_fs(a),
                },
                counts_as_write=False,
                idempotent=True,  # conflictBehavior fail makes a repeat harmless: 409, then we look it up
            )
        created = True
        if resp.status == 409:
            # Absent when this run looked: either an attempt of ours landed and its answer was lost, or
            # someone made the name meanwhile. It is ours only if it is a folder carrying the creation time
            # we sent; any other folder is the trust's (merged into, never claimed), a file is refused.
            async with self.budget.spend(self.target.tenant_id, 1):
                resp = await self.target.request(
                    "GET", f"/drives/{drive}/root:/{quote(a['path'])}:", counts_as_write=False
                )
            if resp.ok and "folder" not in resp.body:
                raise CopyError(
                    f"cannot create folder '{a['path']}': a file of that name is in the trust tenant"
                )
            created = resp.ok and _sent_by_us(a, resp.body)
        if not resp.ok:
            raise GraphError("POST", path, resp)
        return self.record(step, dict(resp.body), created, True)

    async def move(self, step: Step) -> Outcome:
        a = step.args
        drive = a["target_drive"]
        rec = self.env.store.rows(
            "SELECT created, hash, source_ctag FROM file_copies "
            "WHERE academy = ? AND drive_key = ? AND source_id = ?",
            (self.code, a["drive_key"], a["source_id"]),
        )
        if not (rec and rec[0]["created"]):
            # Only what trustfold created is ever moved (the plan never asks otherwise; a stale plan might).
            raise CopyError(f"'{a['from']}' was not created by trustfold: not moved")
        parent = await self.parent_id(drive, a["path"])
        async with self.budget.spend(self.target.tenant_id, 2):
            path = f"/drives/{drive}/items/{a['target_id']}"
            resp = await self.target.request(
                "PATCH",
                path,
                json={"name": a["path"].rpartition("/")[2], "parentReference": {"id": parent}},
                counts_as_write=False,
            )
        if resp.status == 409:
            raise CopyError(f"cannot move to '{a['path']}': the name is taken in the trust tenant")
        if not resp.ok:
            raise GraphError("PATCH", path, resp)
        created = True
        body = dict(resp.body)
        # A move changes where the copy is, not what it is: the copy's source hash and version stand.
        body["_source_hash"] = rec[0]["hash"] if rec else None
        body["_source_ctag"] = rec[0]["source_ctag"] if rec else None
        return self.record(step, body, created, bool(a["folder"]))

    async def adopt(self, step: Step) -> Outcome:
        a = step.args
        item = {
            "id": a["target_id"],
            "name": a["path"].rpartition("/")[2],
            "size": a["size"],
            "cTag": a.get("target_ctag"),
            "file": {"hashes": {"quickXorHash": a["hash"]}},
        }
        tree = self.state.trees[a["target_drive"]]
        live = tree.items.get(a["target_id"])
        if live is not None:
            item["parentReference"] = {"id": live.parent}
        out = self.record(step, item, False, False)
        out.status = "already"
        return out

    async def copy(self, step: Step) -> Outcome:
        a = step.args
        drive = a["target_drive"]
        tree = self.state.trees[drive]
        name = a["path"].rpartition("/")[2]
        if not a.get("replace_id"):
            occupant = tree.find(a["path"])
            if occupant is not None:
                u = self.state.unfinished.get(step.key)
                if (
                    occupant.folder
                    or u is None
                    or not u.holds_ours(occupant.size, occupant.hash, occupant.created)
                ):
                    raise CopyError(f"'{a['path']}' already exists in the trust tenant with other content")
                # An upload of ours that a stopped run never recorded (its intent says what it carried).
                if occupant.size == a["size"] and occupant.hash == a["hash"]:
                    item: dict[str, Any] = {
                        "id": occupant.id,
                        "name": occupant.name,
                        "size": occupant.size,
                        "cTag": occupant.ctag,
                        "parentReference": {"id": occupant.parent},
                        "file": {"hashes": {"quickXorHash": occupant.hash}},
                    }
                    return self.record(step, item, True, False)
                # The source changed since: our orphan takes the new content in place, as our copy would.
                a = {**a, "replace_id": occupant.id, "_orphan": True}
        created = not a.get("replace_id") or bool(a.get("_orphan"))
        if a.get("replace_id") and not a.get("_orphan"):
            rec = self.env.store.rows(
                "SELECT created FROM file_copies WHERE academy = ? AND drive_key = ? AND source_id = ?",
                (self.code, a["drive_key"], a["source_id"]),
            )
            created = bool(rec and rec[0]["created"])
            if not created:
                # A file trustfold did not create (adopted) is never overwritten.
                raise CopyError(f"'{a['path']}' was not created by trustfold: not replaced")
        parent = await self.parent_id(drive, a["path"])
        try:
            if int(a["size"]) >= LARGE:
                async with self.large:
                    item = await self.copier.copy(step.key, a, parent, name, ours=created)
            else:
                item = await self.copier.copy(step.key, a, parent, name, ours=created)
        except CopyDiscarded as exc:
            # Our replaced copy was deleted (its new content did not match): forget it in the same
            # transaction as the failure, so the next run copies the file afresh instead of finding a hole.
            forget = SideWrite(
                "DELETE FROM file_copies WHERE academy = ? AND drive_key = ? AND source_id = ?",
                (self.code, a["drive_key"], a["source_id"]),
            )
            return Outcome("failed", None, {}, str(exc), writes=[forget])
        out = self.record(step, item, created, False)
        out.data["bytes"] = int(item.get("size") or 0)
        return out

    async def delete(self, step: Step) -> Outcome:
        a = step.args
        rec = self.env.store.rows(
            "SELECT created, target_id FROM file_copies "
            "WHERE academy = ? AND drive_key = ? AND source_id = ?",
            (self.code, a["drive_key"], a["source_id"]),
        )
        if not (rec and rec[0]["created"] and rec[0]["target_id"] == a["target_id"]):
            # Only a copy trustfold made, still recorded as that item, is deleted (a stale plan might ask).
            return Outcome("skipped", a["target_id"], {}, "not a copy trustfold made; kept")
        result = await _undo(self.target, self.budget, {**a, "folder": bool(a["folder"])})
        if result == "kept":
            self.state.notes.append(f"'{a['path']}' deleted at source but changed in the trust tenant: kept")
            return Outcome("skipped", a["target_id"], {}, "changed in the trust tenant; kept")
        forget = SideWrite(
            "DELETE FROM file_copies WHERE academy = ? AND drive_key = ? AND source_id = ?",
            (self.code, a["drive_key"], a["source_id"]),
        )
        return Outcome("done", a["target_id"], {"deleted": True}, writes=[forget])


register_phase(FilesPhase())
