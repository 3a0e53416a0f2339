"""`run` applies the plan that was reviewed: the stored, numbered plan, refused at once when the config or
mapping it was made from has changed (its basis, migrations/core/basis.py), else re-derived and refused when
the tenants or the mapping have changed in a way that invalidates it (Terraform's `plan -out` / `apply
PLANFILE`).

Re-deriving plans again exactly as `plan` would (same planning options, nothing stored, the mapping left as
it is) and compares the steps still to do: steps journaled done since the plan was made are not differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrations.core.basis import Basis
from migrations.core.errors import PlanningError
from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.steps import Step
from migrations.core.store import StateStore
from migrations.safety.sanitise import terminal_text
from trust.errors import ConfigError

if TYPE_CHECKING:
    from migrations.core.registry import PhaseEnv, PhaseHandler

SHOWN = 5  # steps named per kind of difference; the counts say the rest


def journal_phases(phase: str) -> tuple[str, ...]:
    """The phases a phase's steps are journaled under (`identity` runs the three identity phases' steps)."""
    return IDENTITY_PHASES if phase == "identity" else (phase,)


def journal_events(store: StateStore, academy: str, phase: str) -> dict[str, str]:
    """Latest journal event per step key: done, intent (in doubt), failed, ..."""
    events: dict[str, str] = {}
    for part in journal_phases(phase):
        events.update({k: h["event"] for k, h in Journal.state(store, academy, part).items()})
    return events


@dataclass
class PlanDiff:
    added: list[Step] = field(default_factory=list)
    removed: list[Step] = field(default_factory=list)
    changed: list[tuple[Step, Step]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def summary(self, stored: Plan, settled: set[str], since: str | None = None) -> str:
        head = (
            f"plan {stored.number} ({stored.academy} {stored.phase}, made {stored.created_at}) no longer "
            f"matches the tenants and mapping: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed step(s)"
        )
        lines = [head]
        lines += [f"  added: {terminal_text(s.describe())}" for s in self.added[:SHOWN]]
        lines += [f"  removed: {terminal_text(s.describe())}" for s in self.removed[:SHOWN]]
        for old, new in self.changed[:SHOWN]:
            fields = sorted(k for k in set(old.args) | set(new.args) if old.args.get(k) != new.args.get(k))
            if _open_deps(old, settled) != _open_deps(new, settled):
                fields.append("dependencies")
            what = ", ".join(fields) or f"{old.op} -> {new.op}"
            lines.append(f"  changed: {terminal_text(new.describe())} ({what})")
        hidden = sum(max(0, len(x) - SHOWN) for x in (self.added, self.removed, self.changed))
        if hidden:
            lines.append(f"  ... and {hidden} more")
        if since:
            lines.append(f"  {since}")
        lines.append(_replan(stored, "nothing was changed"))
        return "\n".join(lines)


def _replan(stored: Plan, done: str) -> str:
    return (
        f"{done}; review the new plan with `trustfold plan {stored.academy} --phase {stored.phase}` and run "
        "it, or plan and apply at once with `run --replan`"
    )


def stale_summary(stored: Plan, moved: list[str], since: str | None) -> str:
    lines = [
        f"plan {stored.number} ({stored.academy} {stored.phase}, made {stored.created_at}) no longer matches "
        "the tenants and mapping: the config or mapping it was made from has changed since"
    ]
    lines += [f"  {line}" for line in moved]
    if since:
        lines.append(f"  {since}")
    lines.append(_replan(stored, "nothing was changed and nothing was sent"))
    return "\n".join(lines)


def _open_deps(step: Step, settled: set[str]) -> frozenset[str]:
    """A step's dependencies still to be met: a planner leaves out steps the journal shows done, so a plan
    re-derived after an interrupted run no longer names them (the reviewed plan still does)."""
    return frozenset(step.after) - settled


def diff_plans(stored: Plan, fresh: Plan, settled: set[str]) -> PlanDiff:
    """Differences in the steps still to do; `settled` keys (done, or in doubt) are not compared, neither as
    steps nor as dependencies."""
    old = {s.key: s for s in stored.steps if s.key not in settled}
    new = {s.key: s for s in fresh.steps if s.key not in settled}
    diff = PlanDiff()
    diff.added = [new[k] for k in sorted(new.keys() - old.keys())]
    diff.removed = [old[k] for k in sorted(old.keys() - new.keys())]
    diff.changed = [
        (old[k], new[k])
        for k in sorted(old.keys() & new.keys())
        if (old[k].op, old[k].args, _open_deps(old[k], settled))
        != (new[k].op, new[k].args, _open_deps(new[k], settled))
    ]
    return diff


def _as_reviewed(step: Step, reviewed: Step | None) -> Step:
    """The reviewed step, with the dependencies of both derivations (the runner treats done ones as met)."""
    if reviewed is None:
        return step
    after = tuple(dict.fromkeys((*reviewed.after, *step.after)))
    return Step(reviewed.key, reviewed.op, reviewed.args, after)


class PlanChanged(PlanningError):
    """The reviewed plan is invalidated by changes since: exit 1 with the diff summary."""


class StalePlan(PlanChanged):
    """The reviewed plan's basis (config, mapping) has moved: found from the store and config alone, so it is
    refused before any request, the preflight's included (migrations/readiness/run_gate.py)."""


def stored_plan(store: StateStore, academy: str, phase: str, number: int | None) -> Plan:
    if number is None:
        plan = Plan.latest(store, academy, phase)
        if plan is None:
            raise PlanningError(
                f"no stored plan for {academy} {phase}: review one with `trustfold plan {academy} --phase "
                f"{phase}` first, or plan and apply at once with `run --replan`"
            )
        return plan
    plan = Plan.load(store, number)
    if plan is None:
        raise ConfigError(None, f"no plan number {number} in the state store", field="--plan")
    if (plan.academy, plan.phase) != (academy, phase):
        raise ConfigError(
            None,
            f"plan {number} is for {plan.academy} {plan.phase}, not {academy} {phase}",
            field="--plan",
        )
    return plan


async def reviewed_plan(env: PhaseEnv, handler: PhaseHandler, number: int | None) -> Plan:
    """The stored plan's remaining steps, re-derived now; StalePlan if the config or mapping it was made from
    moved, PlanChanged if re-deriving it now gives other steps (the tenants or mapping moved)."""
    code = env.academy.code
    stored = stored_plan(env.store, code, handler.name, number)
    given: dict[str, Any] = {k: env.options.get(k) for k in stored.options}
    clash = [k for k, v in given.items() if v and v != stored.options[k]]
    if clash:
        raise ConfigError(
            None,
            f"plan {stored.number} was made with {', '.join(f'{k}={stored.options[k]}' for k in clash)}: "
            "planning options belong to `trustfold plan` (or use `run --replan`)",
            field="--" + clash[0].replace("_", "-"),
        )
    # Before anything is read from a tenant: a plan made from a config or mapping that has changed since is
    # refused naming what changed. The journal moving on is no refusal (a resumed run has done steps since);
    # the re-derivation below decides, as it does for a plan stored without a basis.
    basis = Basis.from_json(stored.basis)
    since = None
    if basis is not None:
        moved = basis.moved(Basis.now(env.trust, env.academy, env.store), env.trust, env.store, code)
        since = basis.journal_since(env.store, code)
        if moved:
            raise StalePlan(stale_summary(stored, moved, since))
    env.options.update(stored.options)
    env.options["review"] = True
    try:
        fresh = await handler.plan(env)
    finally:
        env.options.pop("review", None)
    events = journal_events(env.store, code, handler.name)
    done = {k for k, e in events.items() if e == "done"}
    # Steps an interrupted run sent without an answer are in doubt: a re-derived plan may already see them
    # (partly) applied, so they are not differences; they run as reviewed and reconciliation settles them.
    in_doubt = {k for k, e in events.items() if e == "intent"}
    settled = done | in_doubt
    diff = diff_plans(stored, fresh, settled)
    if diff:
        raise PlanChanged(diff.summary(stored, settled, since))
    reviewed = {s.key: s for s in stored.steps}
    # The reviewed steps run, each keeping the order it was reviewed with: a dependency on a step in doubt
    # (which the re-derived plan may no longer name) still holds until reconciliation settles that step.
    # In place, so a phase that keyed planning context by the fresh plan's id still finds it.
    fresh.steps[:] = [s if s.key in done else _as_reviewed(s, reviewed.get(s.key)) for s in fresh.steps] + [
        s for s in stored.steps if s.key in in_doubt and s.key not in {f.key for f in fresh.steps}
    ]
    fresh.number = stored.number
    return fresh
