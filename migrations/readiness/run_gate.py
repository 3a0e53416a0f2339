"""The preflight gate in front of `run`: the checks that block a phase, and the refusal naming them.

`--phase identity` runs the users, groups and memberships steps, so it is gated by every check of those three
phases (a check names the phases it gates; none names `identity` itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from migrations.core.errors import PlanningError
from migrations.core.registry import IDENTITY_PHASES
from migrations.core.review import StalePlan
from migrations.graph.concurrently import both

if TYPE_CHECKING:
    from migrations.core.plan import Plan
    from migrations.core.registry import PhaseEnv
    from migrations.core.store import StateStore
    from migrations.graph.client import Connections
    from migrations.readiness.preflight import Check, Report
    from trust import Academy, Trust


def gated_phases(phase: str) -> tuple[str, ...]:
    """The phases whose checks gate `run --phase PHASE`."""
    return IDENTITY_PHASES if phase == "identity" else (phase,)


def blocking(report: Report, phase: str) -> list[Check]:
    """The failed checks that gate PHASE, each once."""
    out: list[Check] = []
    for part in gated_phases(phase):
        out += [c for c in report.blocking(part) if c not in out]
    return out


def refusal(academy: str, phase: str, checks: list[Check]) -> str:
    listed = "; ".join(f"{c.check} ({c.tenant}): {c.result} -> {c.fix}" for c in checks)
    return (
        f"preflight blocks {phase} for {academy}: {listed} (trustfold preflight {academy} for the table; "
        "--skip-preflight to run anyway)"
    )


async def blocking_checks(
    trust: Trust, conns: Connections, store: StateStore, academy: Academy, phase: str
) -> list[Check]:
    """Preflight for ACADEMY and PHASE over connections the run already holds (one token fetch, one set of
    clients: the run's first write is not kept waiting for a second start-up)."""
    from migrations.readiness.preflight import run_preflight

    report = await run_preflight(trust, conns, store, (academy,), gated_phases(phase))
    return blocking(report, phase)


class PreflightBlocked(PlanningError):
    """A preflight check blocks the phase: exit 1 naming it; nothing was changed."""


async def gated_plan(
    env: PhaseEnv, phase: str, get_plan: Callable[[], Awaitable[Plan]], *, alongside: bool
) -> Plan:
    """The plan to apply, once preflight has let PHASE through. With `alongside` (getting the plan only reads:
    the reviewed plan re-derived) the checks and the plan run side by side, so the first write comes sooner;
    otherwise (planning stores a plan) the checks come first. A blocking check is reported before a changed
    plan either way, except a stale one (its basis moved), which is refused before anything is read."""

    async def checks() -> list[Check]:
        return await blocking_checks(env.trust, env.conns, env.store, env.academy, phase)

    if not alongside:
        blocked = await checks()
        if blocked:
            raise PreflightBlocked(refusal(env.academy.code, phase, blocked))
        return await get_plan()

    async def planned() -> Plan | PlanningError:
        try:
            return await get_plan()
        except PlanningError as exc:
            return exc

    # The plan gets the first turn: a reviewed plan whose basis (config, mapping) has moved is refused from
    # the store and config alone, before any request, the checks' included; it reaches its first request
    # otherwise, and the checks start beside it.
    plan_task = asyncio.ensure_future(planned())
    await asyncio.sleep(0)
    stale = plan_task.result() if plan_task.done() else None
    if isinstance(stale, StalePlan):
        raise stale
    blocked, plan = await both(checks(), plan_task)
    if blocked:
        raise PreflightBlocked(refusal(env.academy.code, phase, blocked))
    if isinstance(plan, PlanningError):
        raise plan
    return plan
