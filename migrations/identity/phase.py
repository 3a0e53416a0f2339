"""The identity phases' handler: users, groups, memberships, and `identity` (the three as one graph)."""

from __future__ import annotations

from typing import Any

from migrations.core.basis import with_basis
from migrations.core.errors import PlanningError
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import IDENTITY_PHASES, PhaseEnv, PhaseRun, register_phase
from migrations.core.runner import RoutedJournal, Runner
from migrations.core.runs import Metrics, RunRecord, phase_run
from migrations.core.undo import carry_out
from migrations.identity import licence_groups, licence_wait
from migrations.identity.context import IdentityContext, PasswordSink, marker_property, step_phase
from migrations.identity.mapping import guard_matches
from migrations.identity.plan import plan_groups, plan_identity, plan_memberships, plan_users
from migrations.identity.stale import Renames, recheck_targets
from migrations.identity.undo import IdentityRules, Ids, UndoContext, rollback_plan
from migrations.identity.verify import verify_identity


class IdentityPhase:
    """users, groups, memberships, and `identity`: the three as one dependency graph in one run."""

    def __init__(self, name: str):
        self.name = name
        self.parts: tuple[str, ...] = IDENTITY_PHASES if name == "identity" else (name,)

    def _ctx(self, env: PhaseEnv, passwords: PasswordSink | None = None) -> IdentityContext:
        ctx = IdentityContext(env.trust, env.academy, env.store, env.conns.target, passwords)
        ctx.load_ids()
        return ctx

    async def plan(self, env: PhaseEnv) -> Plan:
        # The mapping guard first: no plan is made over a match to a protected or unacknowledged object.
        await guard_matches(env.trust, env.academy, env.store, env.conns.target)
        kinds = [k for k, part in (("user", "users"), ("group", "groups")) if part in self.parts]
        renames = Renames()
        if kinds:
            # Names taken in the trust tenant since discover: renumbered (stored unless only reviewing).
            renames = await recheck_targets(
                env.trust,
                env.academy,
                env.store,
                env.conns.target,
                kinds,
                save=not env.options.get("review"),
            )
        if self.name == "users":
            plan = plan_users(env.trust, env.academy, env.store, renames.users)
        elif self.name == "groups":
            plan = plan_groups(env.trust, env.academy, env.store, renames.groups)
        elif self.name == "memberships":
            plan = await plan_memberships(env.trust, env.academy, env.store, env.conns.target)
        else:
            plan = await plan_identity(
                env.trust, env.academy, env.store, env.conns.target, renames.users, renames.groups
            )
        plan.notes = renames.notes + plan.notes
        return with_basis(plan, env)

    async def discover(self, env: PhaseEnv) -> dict[str, int] | None:
        return None  # users and groups are read by `discover` itself (migrations/identity/discovery.py)

    async def verify(self, env: PhaseEnv) -> dict[str, Any] | None:
        if self.name != "identity":
            return None  # the three parts are checked together, once, by `identity`
        ctx = IdentityContext(env.trust, env.academy, env.store, env.conns.target)
        return (await verify_identity(env.trust, env.academy, ctx, env.switched_upns)).to_json()

    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun:
        async with phase_run(
            env.store,
            env.academy.code,
            self.name,
            "run",
            env.operator,
            plan_id=plan.id,
            parts=self.parts,
            planned=len(plan.steps),
        ) as run:
            failures, notes = await self._run(env, plan, run, concurrency)
        return run.outcome(failures, notes)

    async def _run(
        self, env: PhaseEnv, plan: Plan, run: RunRecord, concurrency: int
    ) -> tuple[list[dict[str, str]], list[str]]:
        code, run_id = env.academy.code, run.run_id
        passwords = PasswordSink(env.run_dir, run_id) if "users" in self.parts else None
        ctx = self._ctx(env, passwords)
        if "users" in self.parts:
            await ctx.load_skus()
            await licence_groups.load_licence_groups(ctx)
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
        journals = {part: Journal(env.store, run_id, code, part, plan.id) for part in self.parts}
        journal = journals[self.name] if self.name in journals else RoutedJournal(journals, step_phase)
        stats_before = env.conns.target.stats.as_dict()
        runner = Runner(
            plan,
            ctx,
            journal,
            concurrency=concurrency,
            on_progress=env.progress,
            metrics=Metrics(env.store, run_id),
            lag_tolerance=float(env.options.get("lag_tolerance") or 4.0),
            tally=run.tally,
        )
        licence_failures: list[dict[str, str]] = []
        processing: dict[str, float] = {}  # how long Entra took to license the members (when it finished)
        licence_reasons: dict[str, int] = {}  # members without an active licence, per state and error

        def measure() -> dict[str, Any]:
            stats = env.conns.target.stats.as_dict()
            return {
                "planned": len(plan.steps),
                **run.tally.counts(),
                **({"licence_problems": len(licence_failures)} if licence_failures else {}),
                **({"licence_reasons": dict(licence_reasons)} if licence_reasons else {}),
                **processing,
                **{
                    k: round(stats[k] - stats_before[k], 3) for k in ("requests", "throttled", "wait_seconds")
                },
            }

        def part_status(part: str, status: str, counts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            # A graph run reports each phase its own part, so reports never count a step thrice.
            keys = {s.key for s in plan.steps if step_phase(s) == part}
            tally = counts if part == self.name else {"planned": len(keys), **run.tally.counts(keys)}
            ok = not tally.get("failed") and not tally.get("skipped")
            ok = ok and not (part == "users" and licence_failures)
            return ("done" if ok else "failed"), {"last_run": run_id, "plan": plan.id, **tally}

        run.measure, run.part_status = measure, part_status
        try:
            result = await runner.run()
            if "users" in self.parts and licence_groups.group_mode(env.trust):
                # Entra licenses members in the background: wait (bounded) and report errors, never success.
                licence_failures, took, why = await _group_licence_findings(env)
                if took is not None:
                    processing["licence_processing_s"] = round(took, 1)
                if why:
                    licence_reasons.update(why)
            run.status = "succeeded" if result.failed == 0 and not licence_failures else "failed"
        finally:
            if passwords:
                passwords.close()
        notes = list(plan.notes)
        if passwords and passwords.path.exists():
            notes.append(
                f"initial passwords written to {passwords.path} (mode 0600); users must change them "
                "at first sign-in"
            )
        return runner.result.failures + licence_failures, notes

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]:
        return rollback_plan(env.store, env.academy.code, list(self.parts))

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun:
        code = env.academy.code
        # Undo steps are journaled one by one: an interrupted rollback is resumed by the next one.
        async with phase_run(
            env.store, code, self.name, "rollback", env.operator, parts=self.parts, planned=len(steps)
        ) as run:
            ctx = UndoContext(
                env.store, code, env.conns.target, marker_property(env.trust), Ids(env.store, code), purge
            )
            await carry_out(env.store, code, run.run_id, steps, ctx, IdentityRules(ctx), result=run.tally)
        return run.outcome(run.tally.failures, run.tally.kept_notes())


async def _group_licence_findings(
    env: PhaseEnv,
) -> tuple[list[dict[str, str]], float | None, dict[str, int]]:
    """Every member the users phase put in a licence group (this run or before), once Entra has processed
    it or the wait is over: the ones whose licence is not Active; how long the processing took (None
    when some were still waiting at the end); and how many are without an active licence per reason."""
    expected = licence_wait.expected_group_licences(env.store, env.academy.code)
    wait = env.options.get("licence_wait")
    timeout = licence_wait.DEFAULT_WAIT_S if wait is None else float(wait)
    check = await licence_wait.check_group_licences(env.conns.target, expected, timeout=timeout)
    return (
        licence_wait.findings(expected, check),
        check.processing_s,
        licence_wait.reasons(expected, check),
    )


for _name in (*IDENTITY_PHASES, "identity"):
    register_phase(IdentityPhase(_name))
