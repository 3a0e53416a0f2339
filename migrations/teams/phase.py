"""The teams phase (after groups, memberships and files): plan, run (journaled, resumable), verify and
rollback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from migrations.core.basis import with_basis
from migrations.core.errors import PlanningError
from migrations.core.journal import Journal, history
from migrations.core.plan import Plan
from migrations.core.registry import PhaseEnv, PhaseRun, register_phase
from migrations.core.runner import Runner
from migrations.core.runs import Metrics, RunRecord, phase_run
from migrations.core.steps import UndoStep
from migrations.core.undo import UndoRules, carry_out, undo_steps
from migrations.graph.client import BatchItem, GraphError, GraphResponse
from migrations.graph.teams_window import TeamsWindow, WindowedConnection
from migrations.teams.context import TeamsContext, millis
from migrations.teams.plan import class_groups, plan_teams, record_teams, save_findings
from migrations.teams.source import SourceTeam, read_team
from migrations.teams.steps import PHASE

# Journal keys whose target ids the operations look up: the groups the groups phase made, this phase's own.
_ID_PHASES = ("groups", PHASE)
SOURCE_READS = 4  # legacy teams read at once while planning


def _ids(env: PhaseEnv) -> dict[str, str]:
    ids: dict[str, str] = {}
    for phase in _ID_PHASES:
        for key, h in Journal.state(env.store, env.academy.code, phase).items():
            if h["event"] in ("done", "undo-failed", "undo-skipped", "undo-intent") and h["target_id"]:
                ids[key] = h["target_id"]
    return ids


def _window(env: PhaseEnv) -> TeamsWindow:
    window = env.options.get("_teams_window")
    if not isinstance(window, TeamsWindow):
        window = TeamsWindow()
        env.options["_teams_window"] = window
    return window


class TeamsPhase:
    name = PHASE

    def _target(self, env: PhaseEnv) -> WindowedConnection:
        return WindowedConnection(env.conns.target, _window(env))

    # ---- discovery ----------------------------------------------------------------------------------------
    async def discover(self, env: PhaseEnv) -> dict[str, int] | None:
        """Which source groups have a team, and which are class teams (the groups phase leaves those)."""
        code = env.academy.code
        source = env.conns.source(code)
        unified = [
            r["object_id"]
            for r in env.store.rows(
                "SELECT object_id, data FROM inventory WHERE academy = ? AND kind = 'group' AND removed = 0 "
                "ORDER BY object_id",
                (code,),
            )
            if "Unified" in (json.loads(r["data"]).get("groupTypes") or [])
        ]
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(unified), 20):
            chunk = unified[i : i + 20]
            answers = await source.batch(
                [BatchItem("GET", f"/groups/{g}/team?$select=id,displayName,specialization") for g in chunk]
            )
            for gid, answer in zip(chunk, answers, strict=True):
                resp = answer if isinstance(answer, GraphResponse) else None
                if resp is None or resp.status >= 500 or resp.status == 429:
                    resp = await source.request(
                        "GET", f"/groups/{gid}/team", params={"$select": "id,displayName,specialization"}
                    )
                if resp.status == 404:
                    continue
                if not resp.ok:
                    raise GraphError("GET", f"/groups/{gid}/team", resp)
                body = resp.body or {}
                found[gid] = {
                    "displayName": body.get("displayName"),
                    "specialization": body.get("specialization") or "none",
                }
        record_teams(env.store, code, env.academy.legacy_tenant.id, found)
        classes = sum(1 for d in found.values() if d["specialization"] == "educationClass")
        return {"teams": len(found), "class_teams": classes}

    # ---- plan ---------------------------------------------------------------------------------------------
    async def plan(self, env: PhaseEnv) -> Plan:
        code = env.academy.code
        if not env.store.rows(
            "SELECT 1 FROM runs WHERE academy = ? AND phase IN ('groups', 'identity') AND kind = 'run'",
            (code,),
        ):
            raise PlanningError(f"no groups made for {code}: run `trustfold run {code} --phase groups` first")
        source = env.conns.source(code)
        with_team = [
            r["object_id"]
            for r in env.store.rows(
                "SELECT object_id FROM inventory WHERE academy = ? AND kind = 'team' AND removed = 0 "
                "ORDER BY object_id",
                (code,),
            )
        ]
        teams: dict[str, SourceTeam] = {}
        # Teams side by side: Microsoft limits requests per team, so reading several at once costs no 429s.
        gate = asyncio.Semaphore(SOURCE_READS)

        async def read(sid: str) -> None:
            async with gate:
                team = await read_team(source, sid)
            if team is not None:
                teams[sid] = team

        async with asyncio.TaskGroup() as group:
            for sid in with_team:
                group.create_task(read(sid))
        rosters = self._rosters(env, class_groups(env.store, code))
        plan, findings = plan_teams(
            env.academy, env.store, teams, rosters, complete=bool(env.options.get("complete"))
        )
        if not env.options.get("review"):
            save_findings(env.store, code, findings)
        if findings:
            plan.notes.append(f"{len(findings)} thing(s) not carried (see the report's teams findings)")
        return with_basis(plan, env)

    def _rosters(self, env: PhaseEnv, classes: set[str]) -> dict[str, tuple[list[str], list[str]]]:
        out: dict[str, tuple[list[str], list[str]]] = {sid: ([], []) for sid in classes}
        for kind, field, slot in (("owner", "owner_id", 0), ("membership", "member_id", 1)):
            for r in env.store.rows(
                "SELECT data FROM inventory WHERE academy = ? AND kind = ? AND removed = 0",
                (env.academy.code, kind),
            ):
                data = json.loads(r["data"])
                if data.get("group_id") in out and data.get("member_type", "user") == "user":
                    out[data["group_id"]][slot].append(str(data[field]))
        return out

    # ---- run ----------------------------------------------------------------------------------------------
    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        async with phase_run(
            env.store, env.academy.code, PHASE, "run", env.operator, plan_id=plan.id, planned=len(plan.steps)
        ) as run:
            failures = await self._run(env, plan, run, concurrency)
        return run.outcome(failures, list(plan.notes))

    async def _run(self, env: PhaseEnv, plan: Plan, run: RunRecord, concurrency: int) -> list[dict[str, str]]:
        target = self._target(env)
        ctx = TeamsContext(target, _ids(env), source=env.conns.source(env.academy.code))
        journal = Journal(env.store, run.run_id, env.academy.code, PHASE, plan.id)
        before = env.conns.target.stats.as_dict()
        runner = Runner(
            plan,
            ctx,
            journal,
            concurrency=concurrency,
            on_progress=env.progress,
            metrics=Metrics(env.store, run.run_id),
            lag_tolerance=float(env.options.get("lag_tolerance") or 4.0),
            tally=run.tally,
        )

        def measure() -> dict[str, Any]:
            after = env.conns.target.stats.as_dict()
            ops = plan.counts()
            return {
                "planned": len(plan.steps),
                **run.tally.counts(),
                "teams": ops.get("create-team", 0) + ops.get("create-class-team", 0),
                "channels": ops.get("create-channel", 0) + ops.get("general-channel", 0),
                "messages": ops.get("import-message", 0),
                "completed_channels": ops.get("complete-migration", 0),
                "teams_window_wait": round(target.window.waited, 3),
                **{k: round(after[k] - before[k], 3) for k in ("requests", "throttled", "wait_seconds")},
            }

        run.measure = measure
        result = await runner.run()
        run.status = "succeeded" if result.failed == 0 else "failed"
        return runner.result.failures

    # ---- verify -------------------------------------------------------------------------------------------
    async def verify(self, env: PhaseEnv) -> dict[str, Any] | None:
        code = env.academy.code
        done = {k: h for k, h in history(env.store, code, PHASE).items() if h.done is not None}
        if not done:
            return None
        target = self._target(env)
        ctx = TeamsContext(target, _ids(env))
        differences: list[dict[str, str]] = []
        checked = 0
        for key, h in sorted(done.items()):
            if h.op not in ("create-team", "create-class-team"):
                continue
            checked += 1
            tid = h.done.target_id if h.done else None
            resp = await target.request("GET", f"/teams/{tid}", params={"$select": "id,displayName"})
            if not resp.ok:
                differences.append(
                    {"kind": "team", "object": key, "message": f"team missing ({resp.status})"}
                )
        messages: dict[str, dict[tuple[str, str], str]] = {}
        for key, h in sorted(done.items()):
            if h.op in ("create-channel", "general-channel"):
                checked += 1
                tid = (h.done.data.get("team_id") if h.done else None) or ctx.target_id(
                    h.args.get("team_key", "")
                )
                resp = await target.request(
                    "GET", f"/teams/{tid}/channels/{h.done.target_id if h.done else ''}"
                )
                if not resp.ok:
                    differences.append(
                        {"kind": "channel", "object": key, "message": f"channel missing ({resp.status})"}
                    )
        for key, h in sorted(done.items()):
            if h.op != "import-message" or not h.done:
                continue
            checked += 1
            a = h.args
            tid, cid = ctx.target_id(a["team_key"]), ctx.target_id(a["channel_key"])
            parent = ctx.target_id(a["parent_key"]) if a.get("parent_key") else None
            where = f"{tid}/{cid}/{parent or ''}"
            if where not in messages:
                messages[where] = await ctx.imported(str(tid), str(cid), parent)
            found = messages[where].get((millis(a["created"]), a["author_id"]))
            if found is None:
                differences.append(
                    {
                        "object": key,
                        "difference": f"message of {a['created']} missing from '{a['channel_name']}'",
                    }
                )
        return {"checked": checked, "differences": differences}

    # ---- rollback -----------------------------------------------------------------------------------------
    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        return undo_steps(env.store, env.academy.code, PHASE)

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        async with phase_run(env.store, code, PHASE, "rollback", env.operator, planned=len(steps)) as run:
            ctx = TeamsContext(self._target(env), _ids(env), purge=purge)
            await carry_out(env.store, code, run.run_id, steps, ctx, TeamsRules(), result=run.tally)
        return run.outcome(run.tally.failures, run.tally.kept_notes())


class TeamsRules(UndoRules):
    """Channels go before the classes that hold them (a class's delete would take them, but a channel that
    outlived a failed class delete must still be undone on its own)."""

    errors = (GraphError,)

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        return [[s for s in steps if s.op != "create-class"], [s for s in steps if s.op == "create-class"]]


register_phase(TeamsPhase())
