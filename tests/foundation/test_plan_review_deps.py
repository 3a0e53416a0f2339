"""`run` applying a reviewed plan after an interrupted run: a step the journal shows done is left out of a
re-derived plan, and so are the dependencies on it; that is progress, not a change to the plan. A real
change to a pending step's dependencies is still refused. (Found by the domain phase's SIGKILL sweep: every
resume after a kill that landed after the first rename was refused, so the cut-over could not go on.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from migrations.core.journal import Journal
from migrations.core.plan import Plan
from migrations.core.review import PlanChanged, reviewed_plan
from migrations.core.steps import Outcome, Step, register_operation
from migrations.core.store import StateStore

ACADEMY, PHASE = "hill", "domain"


@dataclass
class _Noop:
    """Just enough of an operation for plans to be stored and described."""

    name: str = "review-test-step"
    batchable: bool = False

    def describe(self, step: Step) -> str:
        return f"step {step.key}"

    def request(self, step: Step, ctx: Any) -> Any:
        raise AssertionError("never sent")

    def outcome(self, step: Step, resp: Any, ctx: Any) -> Outcome | None:
        raise AssertionError("never sent")

    async def reconcile(self, step: Step, ctx: Any) -> Outcome | None:
        raise AssertionError("never sent")


OP = register_operation(_Noop()).name


def _step(key: str, *after: str) -> Step:
    return Step(key, OP, {"what": key}, tuple(after))


def _review(store: StateStore, fresh: list[Step]) -> Plan:
    async def plan(env: Any) -> Plan:
        return Plan(ACADEMY, PHASE, list(fresh))

    env = SimpleNamespace(store=store, academy=SimpleNamespace(code=ACADEMY), options={})
    handler = SimpleNamespace(name=PHASE, plan=plan)
    return asyncio.run(reviewed_plan(env, handler, None))  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(tmp_path / "state.db")
    # The reviewed plan: two renames, then the removal that waits for both.
    Plan(ACADEMY, PHASE, [_step("a"), _step("b"), _step("remove", "a", "b")]).save(store)
    return store


def _journal(store: StateStore, key: str, *, done: bool) -> None:
    journal = Journal(store, "run-1", ACADEMY, PHASE, None)
    journal.intents([_step(key)])
    if done:
        journal.outcomes([(_step(key), Outcome("done"))])


def test_a_dependency_done_since_review_is_not_a_change(store: StateStore) -> None:
    _journal(store, "a", done=True)
    # The planner no longer names the done rename, neither as a step nor as a dependency.
    plan = _review(store, [_step("b"), _step("remove", "b")])
    steps = {s.key: s for s in plan.steps}
    assert set(steps) == {"b", "remove"}
    assert set(steps["remove"].after) == {"a", "b"}  # the reviewed order; "a" is met by the journal


def test_a_dependency_in_doubt_keeps_the_reviewed_order(store: StateStore) -> None:
    _journal(store, "a", done=False)  # sent, answer lost: reconciliation settles it before the removal
    plan = _review(store, [_step("b"), _step("remove", "b")])
    steps = {s.key: s for s in plan.steps}
    assert set(steps) == {"a", "b", "remove"}
    assert "a" in steps["remove"].after


def test_a_changed_dependency_of_a_pending_step_is_refused(store: StateStore) -> None:
    _journal(store, "a", done=True)
    # "b" is still to do, yet the fresh plan no longer orders the removal after it: a real change.
    with pytest.raises(PlanChanged) as refused:
        _review(store, [_step("b"), _step("remove")])
    message = str(refused.value)
    assert "0 added, 0 removed, 1 changed step(s)" in message
    assert "changed: step remove (dependencies)" in message
