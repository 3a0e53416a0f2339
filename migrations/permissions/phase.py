"""The permissions phase (after files): plan, run (journaled, resumable), verify, rollback of its grants."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from migrations.core.basis import with_basis
from migrations.core.journal import Journal, history
from migrations.core.plan import Plan
from migrations.core.registry import PhaseEnv, PhaseRun, register_phase
from migrations.core.runs import Metrics, RunRecord, phase_run
from migrations.core.steps import UndoStep
from migrations.core.undo import UndoRules, carry_out
from migrations.files.scan import batch_get
from migrations.graph.client import GraphError, TenantConnection, parse_budget
from migrations.graph.sharepoint_window import SharePointBudget
from migrations.permissions.apply import Applier, GrantUndo
from migrations.permissions.grants import parse
from migrations.permissions.plan import (
    AUDIENCE,
    CARRIED_FINDINGS,
    PHASE,
    Expected,
    audience_state,
    expected,
    ours,
    plan_permissions,
    save_findings,
)
from migrations.permissions.scan import (
    ScanCounts,
    read_with_parents,
    require_scan_role,
    scan_sharing,
    source_drives,
)

AUDIENCE_OPS = ("ensure-audience-group", "sync-audience-members")
# How many people a link lets in, by scope: a link on the copy wider than the source's is more access.
WIDTH = {"existingAccess": 0, "users": 1, "organization": 2, "anonymous": 3}


def _roles(sig: tuple[str, str, str]) -> str:
    return f"{sig[2]} link ({sig[1]})" if sig[0] == "link" else f"{sig[0]} {sig[1]} ({sig[2]})"


class PermissionsPhase:
    name = PHASE

    async def _prepared(self, env: PhaseEnv) -> tuple[TenantConnection, TenantConnection, SharePointBudget]:
        source, target = env.conns.source(env.academy.code), env.conns.target
        budget = env.options.get("_budget")
        if budget is None:
            text = env.options.get("sharepoint_budget")
            override = parse_budget(text) if text and text != "auto" else None
            budget = SharePointBudget(override, env.run_dir.parent)
            env.options["_budget"] = budget
        await budget.prepare(source)
        await budget.prepare(target)
        return source, target, budget

    async def plan(self, env: PhaseEnv) -> Plan:
        from migrations.core.errors import PlanningError

        code = env.academy.code
        if not env.academy.files.enabled:
            raise PlanningError(f"files are switched off for {code} (phases.files.enabled in its config)")
        if not source_drives(env.store, code):
            if not env.store.rows(
                "SELECT 1 FROM runs WHERE academy = ? AND phase = 'files' AND kind = 'run'", (code,)
            ):
                raise PlanningError(
                    f"no drives scanned for {code}: run `trustfold run {code} --phase files` first"
                )
            return with_basis(
                Plan(code, PHASE, [], ["no source drive holds content: no sharing to carry"]), env
            )
        lt = env.academy.legacy_tenant
        await require_scan_role(lt.credential, lt.id, env.conns.graph_url, code)
        source, _, budget = await self._prepared(env)
        before = dict(budget.spent)
        try:
            scan = await scan_sharing(
                env.store, code, source, budget, float(env.options.get("scan_age") or 0)
            )
        finally:
            budget.save()
        scan.ru = {t: n - before.get(t, 0) for t, n in budget.spent.items() if n != before.get(t, 0)}
        plan, exp = plan_permissions(env.store, env.academy, env.trust)
        save_findings(env.store, code, exp.findings, {s.key for s in plan.steps})
        plan.context = scan
        return with_basis(plan, env)

    # ---- run ----------------------------------------------------------------------------------------------
    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        _, target, budget = await self._prepared(env)
        scan = plan.context if isinstance(plan.context, ScanCounts) else ScanCounts()
        async with phase_run(
            env.store, env.academy.code, PHASE, "run", env.operator, plan_id=plan.id, planned=len(plan.steps)
        ) as run:
            failures = await self._run(env, plan, run, concurrency, target, budget, scan)
        return run.outcome(failures, list(plan.notes))

    async def _run(
        self,
        env: PhaseEnv,
        plan: Plan,
        run: RunRecord,
        concurrency: int,
        target: TenantConnection,
        budget: SharePointBudget,
        scan: ScanCounts,
    ) -> list[dict[str, str]]:
        code, run_id = env.academy.code, run.run_id
        journal = Journal(env.store, run_id, code, PHASE, plan.id)
        state = Journal.state(env.store, code, PHASE)
        in_doubt = {k for k, v in state.items() if v["event"] in ("intent", "failed")}
        metrics = Metrics(env.store, run_id)
        total = len(plan.steps)
        before = target.stats.as_dict()
        spent_before = dict(budget.spent)

        def progress() -> None:
            t = applier.tally
            if env.progress:
                env.progress(t.done + t.already + t.failed, total)
            metrics.sample({"items_done": t.done + t.already, "throttled": target.stats.throttled})

        applier = Applier(
            target,
            budget,
            journal,
            set(ours(env.store, code)),
            in_doubt,
            progress,
            audience_state(env.store, code)[0],
            code,
        )
        started = time.monotonic()

        def measure() -> dict[str, Any]:
            t = applier.tally
            after = target.stats.as_dict()
            findings = env.store.rows(
                "SELECT kind, count(*) AS n FROM share_findings WHERE academy = ? GROUP BY kind", (code,)
            )
            return {
                "planned": total,
                "done": t.done,
                "already_present": t.already + plan.already_present,
                "failed": t.failed,
                "skipped": 0,
                "reconciled": t.reconciled,
                "requests": round(after["requests"] - before["requests"], 3),
                "throttled": round(after["throttled"] - before["throttled"], 3),
                "wait_seconds": round(after["wait_seconds"] - before["wait_seconds"], 3),
                "shared_items": scan.shared_items,
                "permission_reads": scan.permission_reads + t.reads,
                "permission_writes": t.writes,
                "delta_requests": scan.delta_requests,
                "not_carried": sum(
                    int(r["n"])
                    for r in findings
                    if r["kind"] != "sharing-inherited" and r["kind"] not in CARRIED_FINDINGS
                ),
                # The scan (when this process planned) and the run together: the pass's whole cost.
                "sharepoint_ru": sum(budget.spent.values())
                - sum(spent_before.values())
                + sum(scan.ru.values()),
                "sharepoint_ru_target": budget.spent.get(target.tenant_id, 0)
                - spent_before.get(target.tenant_id, 0)
                + scan.ru.get(target.tenant_id, 0),
                "seconds": round(time.monotonic() - started, 3),
            }

        run.measure = measure
        try:
            # Removals first: a grant revoked at source must not outlive a run that stops half-way.
            await applier.run([s for s in plan.steps if s.op == "share-revoke"], concurrency)
            # The academy's people group exists and holds exactly its people before anything is shared to it.
            for step in [s for s in plan.steps if s.op in AUDIENCE_OPS]:
                await applier.one(step)
            await applier.run(
                [s for s in plan.steps if s.op != "share-revoke" and s.op not in AUDIENCE_OPS], concurrency
            )
            run.status = "succeeded" if applier.tally.failed == 0 else "failed"
        finally:
            budget.save()
        return applier.tally.failures

    # ---- verify -------------------------------------------------------------------------------------------
    async def _live(
        self, target: TenantConnection, budget: SharePointBudget, items: dict[str, str]
    ) -> dict[str, list[Any] | None]:
        """Direct grants on each target item (item id -> drive id); None for an item that is gone. The trust
        tenant does not say which grants are inherited either: each item's parent is read beside it."""
        ids = sorted(items)
        where = [(f"/drives/{items[i]}/items/{i}?$select=id,parentReference", 1) for i in ids]
        found: dict[str, tuple[str, str | None]] = {}
        out: dict[str, list[Any] | None] = {}
        for iid, resp in zip(ids, await batch_get(target, budget, where), strict=True):
            if resp.status == 404:
                out[iid] = None
            elif not resp.ok:
                raise GraphError("GET", f"/drives/{items[iid]}/items/{iid}", resp)
            else:
                found[iid] = (items[iid], (resp.body.get("parentReference") or {}).get("id"))
        read, _ = await read_with_parents(target, budget, found)
        for iid, perms in read.items():
            out[iid] = None if perms is None else [g for g in map(parse, perms) if not g.inherited]
        return out

    async def discover(self, env: PhaseEnv) -> None:
        """Nothing to read at discover time: this phase reads what it needs when it plans."""
        return None

    async def verify(self, env: PhaseEnv) -> dict[str, Any]:
        code = env.academy.code
        if not env.store.rows(
            "SELECT 1 FROM runs WHERE academy = ? AND phase = ? AND kind = 'run'", (code, PHASE)
        ):
            return {
                "checked": 0,
                "differences": [],
                "grants": 0,
                "matched": 0,
                "note": "the permissions phase has not run for this academy",
            }
        _, target, budget = await self._prepared(env)
        exp: Expected = expected(env.store, env.academy, env.trust)
        mine = ours(env.store, code)
        items = {i: t.drive for i, t in exp.items.items()}
        items.update({r["target_item"]: r["target_drive"] for r in mine.values()})
        paths = {i: t.path for i, t in exp.items.items()} | {
            r["target_item"]: r["path"] for r in mine.values()
        }
        try:
            live = await self._live(target, budget, items)
        finally:
            budget.save()
        differences: list[dict[str, str]] = []
        matched = 0
        for iid in sorted(items):
            want = exp.grants.get(iid, Counter())
            grants = live[iid]
            if grants is None:
                if want:
                    differences.append(
                        {
                            "kind": "permission-item-missing",
                            "object": paths[iid],
                            "message": "the shared item is gone from the trust tenant",
                        }
                    )
                continue
            have = Counter(g.signature() for g in grants if not g.owner)
            matched += sum((want & have).values())
            for sig, n in sorted((want - have).items()):
                differences.append(
                    {
                        "kind": "permission-missing",
                        "object": paths[iid],
                        "message": f"planned grant missing: {exp.names.get(sig, '')} {_roles(sig)}"
                        + (f" x{n}" if n > 1 else ""),
                    }
                )
            names = {g.signature(): g.display for g in grants}
            widest = max((WIDTH.get(s[2], 3) for s in want if s[0] == "link"), default=0)
            for sig, n in sorted((have - want).items()):
                wider = sig[0] == "link" and WIDTH.get(sig[2], 3) >= max(widest, 1)
                differences.append(
                    {
                        "kind": "permission-wider" if wider else "permission-extra",
                        "object": paths[iid],
                        "message": (
                            f"wider audience than the source: {names.get(sig, '')} {_roles(sig)}"
                            if wider
                            else f"more access than planned: {names.get(sig, '')} {_roles(sig)}"
                        )
                        + (f" x{n}" if n > 1 else ""),
                    }
                )
        differences += await self._audience_differences(target, exp)
        return {
            "checked": len(items),
            "differences": differences,
            "grants": sum(sum(c.values()) for c in exp.grants.values()),
            "matched": matched,
        }

    async def _audience_differences(self, target: TenantConnection, exp: Expected) -> list[dict[str, str]]:
        """The academy's people group must hold exactly the academy's migrated members: anyone else in it
        widens every academy-wide share; anyone missing narrows it."""
        a = exp.audience
        if a is None or a.group_id is None:
            if a is not None and a.needed:
                return [
                    {
                        "kind": "permission-missing",
                        "object": a.display_name,
                        "message": "the academy's people group has not been created",
                    }
                ]
            return []
        path = f"/groups/{a.group_id}/members"
        resp = await target.request("GET", path, params={"$select": "id,displayName"})
        if resp.status == 404:
            return [{"kind": "permission-missing", "object": a.display_name, "message": "the group is gone"}]
        if not resp.ok:
            raise GraphError("GET", path, resp)
        live = {str(m["id"]): str(m.get("displayName") or m["id"]) for m in resp.body.get("value", [])}
        nxt = resp.body.get("@odata.nextLink")
        while nxt:
            more = await target.get(target.relative(nxt))
            live |= {str(m["id"]): str(m.get("displayName") or m["id"]) for m in more.get("value", [])}
            nxt = more.get("@odata.nextLink")
        out = [
            {
                "kind": "permission-wider",
                "object": a.display_name,
                "message": f"{live[uid]} is in the academy's people group but is not one of its migrated "
                "people",
            }
            for uid in sorted(set(live) - set(a.members))
        ]
        missing = sorted(set(a.members) - set(live))
        if missing:
            out.append(
                {
                    "kind": "permission-missing",
                    "object": a.display_name,
                    "message": f"{len(missing)} of the academy's migrated people are not in its people group",
                }
            )
        return out

    # ---- rollback -----------------------------------------------------------------------------------------
    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        """One undo per grant trustfold added and has not removed (its operation's undo removes it)."""
        steps = [
            UndoStep(
                PHASE,
                f"undo:{pid}",
                r["op"],
                pid,
                {},
                {
                    "target_drive": r["target_drive"],
                    "target_item": r["target_item"],
                    "perm_id": pid,
                    "path": r["path"],
                    "display": r.get("display", ""),
                },
            )
            for pid, r in sorted(ours(env.store, env.academy.code).items())
        ]
        steps = sorted(steps, key=lambda s: (s.args["path"], s.key))
        gid, _ = audience_state(env.store, env.academy.code)
        if gid:
            # Last: the grants to it go first (_Rules.stages), then the academy's people group itself.
            made = history(env.store, env.academy.code, PHASE).get(AUDIENCE)
            args = dict(made.args) if made else {}
            steps.append(
                UndoStep(
                    PHASE,
                    AUDIENCE,
                    "ensure-audience-group",
                    gid,
                    {},
                    {"display_name": args.get("display_name", "the academy's people group"), "path": ""},
                )
            )
        return steps

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        _, target, budget = await self._prepared(env)
        async with phase_run(env.store, code, PHASE, "rollback", env.operator, planned=len(steps)) as run:
            try:
                await self._rollback(env, steps, run, target, budget)
            finally:
                budget.save()
        return run.outcome(run.tally.failures, run.tally.kept_notes())

    async def _rollback(
        self,
        env: PhaseEnv,
        steps: list[Any],
        run: RunRecord,
        target: TenantConnection,
        budget: SharePointBudget,
    ) -> None:
        code, tally = env.academy.code, run.tally
        mine = set(ours(env.store, code))
        removals = [s for s in steps if s.key != AUDIENCE]
        items = {s.args["target_item"]: s.args["target_drive"] for s in removals}
        paths = {s.args["target_item"]: s.args["path"] for s in removals}
        live = await self._live(target, budget, items)
        for iid, grants in sorted(live.items()):
            for g in grants or []:
                if g.perm_id not in mine and not g.owner:
                    tally.kept.append(
                        {
                            "object": paths[iid],
                            "message": f"{g.display} ({_roles(g.signature())}) "
                            "was not added by trustfold: left in place",
                        }
                    )
        # One grant at a time, in path order, each journaled undo-intent before its DELETE.
        await carry_out(
            env.store,
            code,
            run.run_id,
            steps,
            GrantUndo(target, budget),
            _Rules(),
            concurrency=1,
            result=tally,
        )


class _Rules(UndoRules):
    errors = (GraphError,)

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        # carry_out runs a stage's steps together: the group goes only after every grant to it.
        return [[s for s in steps if s.key != AUDIENCE], [s for s in steps if s.key == AUDIENCE]]

    def failed(self, step: UndoStep, message: str) -> dict[str, str]:
        return {"step": step.describe(), "message": message}


register_phase(PermissionsPhase())
