"""The phase registry: plan / run / verify / rollback by phase name, so new phases plug in without CLI edits.

A phase module calls `register_phase(handler)` at import; `load_phases()` imports the built-in identity
phases and `migrations.files` when present.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from migrations.engine import Journal, Metrics, Plan, Runner, finish_run, start_run
from migrations.graph import Connections
from migrations.identity import (
    IdentityContext,
    PasswordSink,
    PlanningError,
    marker_property,
    plan_groups,
    plan_memberships,
    plan_users,
)
from migrations.store import StateStore
from migrations.undo import carry_out, rollback_plan
from trust import Academy, Trust

log = logging.getLogger("trustfold.phases")
PHASE_ORDER = ("discover", "users", "groups", "memberships", "files", "permissions", "verify", "domain")


@dataclass
class PhaseEnv:
    trust: Trust
    academy: Academy
    store: StateStore
    conns: Connections
    operator: str
    run_dir: Path
    progress: Callable[[int, int], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhaseRun:
    run_id: str
    status: str
    counts: dict[str, Any]
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PhaseHandler(Protocol):
    name: str

    async def plan(self, env: PhaseEnv) -> Plan: ...

    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun: ...

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]: ...

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun: ...


_PHASES: dict[str, PhaseHandler] = {}


def register_phase(handler: PhaseHandler) -> None:
    _PHASES[handler.name] = handler


def load_phases() -> dict[str, PhaseHandler]:
    for name in ("files", "permissions", "domain"):
        if name not in _PHASES:
            try:
                importlib.import_module(f"migrations.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"migrations.{name}":
                    raise
    return dict(_PHASES)


def phase(name: str) -> PhaseHandler:
    phases = load_phases()
    if name not in phases:
        raise KeyError(f"unknown phase '{name}' (available: {', '.join(sorted(phases))})")
    return phases[name]


class IdentityPhase:
    def __init__(self, name: str):
        self.name = name

    def _ctx(self, env: PhaseEnv, passwords: PasswordSink | None = None) -> IdentityContext:
        ctx = IdentityContext(env.trust, env.academy, env.store, env.conns.target, passwords)
        ctx.load_ids()
        return ctx

    async def plan(self, env: PhaseEnv) -> Plan:
        if self.name == "users":
            return plan_users(env.trust, env.academy, env.store)
        if self.name == "groups":
            return plan_groups(env.trust, env.academy, env.store)
        return await plan_memberships(env.trust, env.academy, env.store, env.conns.target)

    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        code = env.academy.code
        run_id = start_run(env.store, code, self.name, "run", plan.id, env.operator)
        env.store.set_phase_status(code, self.name, "running", {"last_run": run_id, "plan": plan.id})
        passwords = PasswordSink(env.run_dir, run_id) if self.name == "users" else None
        ctx = self._ctx(env, passwords)
        if self.name == "users":
            await ctx.load_skus()
            missing = [
                s
                for s in {env.trust.settings.licences.staff, env.trust.settings.licences.pupil}
                if s not in ctx.sku_ids
            ]
            if missing:
                raise PlanningError(
                    f"licence SKU(s) {', '.join(missing)} are not in the trust tenant's "
                    "subscribedSkus (licences in config/trust.yaml)"
                )
        journal = Journal(env.store, run_id, code, self.name, plan.id)
        stats_before = env.conns.target.stats.as_dict()
        runner = Runner(
            plan,
            ctx,
            journal,
            concurrency=concurrency,
            on_progress=env.progress,
            metrics=Metrics(env.store, run_id),
        )
        status = "failed"
        try:
            result = await runner.run()
            status = "succeeded" if result.failed == 0 else "failed"
        finally:
            if passwords:
                passwords.close()
            stats = env.conns.target.stats.as_dict()
            counts = {
                "planned": len(plan.steps),
                **runner.result.counts(),
                **{
                    k: round(stats[k] - stats_before[k], 3) for k in ("requests", "throttled", "wait_seconds")
                },
            }
            finish_run(env.store, run_id, status, counts)
            env.store.set_phase_status(
                code,
                self.name,
                "done" if status == "succeeded" else "failed",
                {"last_run": run_id, "plan": plan.id, **counts},
            )
        notes = list(plan.notes)
        if passwords and passwords.path.exists():
            notes.append(
                f"initial passwords written to {passwords.path} (mode 0600); users must change them "
                "at first sign-in"
            )
        return PhaseRun(run_id, status, counts, runner.result.failures, notes)

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        return rollback_plan(env.store, env.academy.code, [self.name])

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        run_id = start_run(env.store, code, self.name, "rollback", None, env.operator)
        try:
            result = await carry_out(
                env.store, code, steps, env.conns.target, marker_property(env.trust), run_id, purge=purge
            )
        except BaseException:
            # Undo steps are journaled one by one: the next rollback resumes where this one stopped.
            finish_run(env.store, run_id, "interrupted", {"planned": len(steps)})
            raise
        status = "succeeded" if not result.failed else "failed"
        counts = {
            "planned": len(steps),
            "done": result.undone,
            "kept": len(result.kept),
            "failed": len(result.failed),
        }
        finish_run(env.store, run_id, status, counts)
        env.store.set_phase_status(
            code,
            self.name,
            "rolled-back" if status == "succeeded" else "failed",
            {"last_run": run_id, **counts, "kept": result.kept},
        )
        return PhaseRun(
            run_id,
            status,
            counts,
            result.failed,
            [f"kept {k['object']}: {k['message']}" for k in result.kept],
        )


for _name in ("users", "groups", "memberships"):
    register_phase(IdentityPhase(_name))
