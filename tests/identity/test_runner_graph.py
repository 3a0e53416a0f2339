"""The runner's rules, with a scripted target (no sandbox): dependants of a failure never start, nothing is
dropped without a recorded reason, an escaping error cancels batches in flight, and a look-up that cannot
see a fresh object yet is asked again (bounded) before anything is re-sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from migrations.core.plan import Plan
from migrations.core.runner import Runner
from migrations.core.steps import Outcome, Step, register_operation
from migrations.graph.client import BatchItem, GraphResponse


@dataclass
class Stats:
    throttled: int = 0


@dataclass
class Target:
    """Answers each step by its args: ok (201), fail (400), lost (504, but applied), boom (raises)."""

    sent: list[str] = field(default_factory=list)
    applied: set[str] = field(default_factory=set)
    stats: Stats = field(default_factory=Stats)
    hold: asyncio.Event | None = None
    cancelled: list[str] = field(default_factory=list)

    async def batch(self, items: list[BatchItem]) -> list[GraphResponse]:
        out = []
        for item in items:
            key, how = item.body["key"], item.body["how"]
            self.sent.append(key)
            if how == "boom":
                raise RuntimeError("authentication refused")
            if how == "slow" and self.hold is not None:
                try:
                    await self.hold.wait()
                except asyncio.CancelledError:
                    self.cancelled.append(key)
                    raise
            if how == "fail":
                out.append(GraphResponse(400, {}, {"error": {"code": "Request_BadRequest", "message": "no"}}))
            elif how == "lost":
                self.applied.add(key)
                out.append(GraphResponse(504, {}, {}))
            else:
                self.applied.add(key)
                out.append(GraphResponse(201, {}, {"id": f"id-{key}"}))
        return out


@dataclass
class Ctx:
    target: Target
    hidden_for: int = 0  # look-ups that miss an applied step (replication lag)
    lookups: dict[str, int] = field(default_factory=dict)

    def remember(self, key: str, target_id: str | None, data: dict[str, Any]) -> None:
        pass


class FakeOp:
    name = "fake-op"
    batchable = True

    def describe(self, step: Step) -> str:
        return f"fake {step.key}"

    def request(self, step: Step, ctx: Ctx) -> BatchItem:
        return BatchItem("POST", "/things", {"key": step.key, "how": step.args.get("how", "ok")})

    def outcome(self, step: Step, resp: GraphResponse, ctx: Ctx) -> Outcome | None:
        return Outcome("done", resp.body["id"]) if resp.status == 201 else None

    async def reconcile(self, step: Step, ctx: Ctx) -> Outcome | None:
        seen = ctx.lookups[step.key] = ctx.lookups.get(step.key, 0) + 1
        if step.key in ctx.target.applied and seen > ctx.hidden_for:
            return Outcome("done", f"id-{step.key}", {"reconciled": True})
        return None


register_operation(FakeOp())  # type: ignore[arg-type]


class MemoryJournal:
    def __init__(self, history: dict[str, dict[str, Any]] | None = None):
        self._history = history or {}
        self.events: list[tuple[str, str, str]] = []

    def history(self) -> dict[str, dict[str, Any]]:
        return self._history

    def intents(self, steps: list[Step]) -> None:
        self.events += [(s.key, "intent", "") for s in steps]

    def outcomes(self, results: list[tuple[Step, Outcome]]) -> None:
        self.events += [(s.key, "done" if o.status != "failed" else "failed", o.message) for s, o in results]


def step(key: str, *after: str, how: str = "ok") -> Step:
    return Step(key, "fake-op", {"how": how}, tuple(after))


def run(steps: list[Step], ctx: Ctx, journal: MemoryJournal | None = None, **kw: Any) -> tuple[Runner, Any]:
    runner = Runner(Plan("a", "p", steps), ctx, journal or MemoryJournal(), **kw)
    return runner, asyncio.run(runner.run())


def test_a_failure_never_starts_its_dependants_and_independent_work_continues() -> None:
    target = Target()
    steps = [
        step("u1", how="fail"),
        step("l1", "u1"),
        step("m1", "l1"),  # two deep: skipped too, naming the failed step
        step("u2"),
        step("l2", "u2"),
    ]
    _, result = run(steps, Ctx(target), lag_tolerance=0)
    assert set(target.sent) == {"u1", "u2", "l2"}, "a dependant of a failed step was sent"
    assert (result.done, result.failed, result.skipped) == (2, 1, 2)
    reasons = {f["step"]: f["message"] for f in result.failures}
    assert reasons["l1"] == reasons["m1"] == "skipped: depends on u1, which failed"


def test_steps_that_can_never_run_are_recorded_with_why() -> None:
    journal = MemoryJournal()
    steps = [step("a", "b"), step("b", "a"), step("c", "ghost"), step("d", "c"), step("e")]
    _, result = run(steps, Ctx(Target()), journal, lag_tolerance=0)
    failed = {key: message for key, event, message in journal.events if event == "failed"}
    assert failed["a"].startswith("dependency cycle through") and failed["b"].startswith("dependency cycle")
    assert failed["c"] == "depends on ghost, which is neither in the plan nor done"
    assert failed["d"] == "depends on c, which cannot run"
    assert result.done == 1 and result.failed == 4
    # A dependency journaled done by an earlier run is satisfied without being in the plan.
    earlier = MemoryJournal({"ghost": {"event": "done", "target_id": "x", "data": {}}})
    _, ok = run([step("c", "ghost")], Ctx(Target()), earlier, lag_tolerance=0)
    assert ok.done == 1 and ok.failed == 0


def test_an_escaping_error_cancels_batches_in_flight() -> None:
    target = Target(hold=asyncio.Event())
    steps = [step("slow", how="slow"), step("x", how="boom")]
    runner = Runner(Plan("a", "p", steps), Ctx(target), MemoryJournal(), concurrency=2, lag_tolerance=0)
    runner._next_batch = lambda: [runner._ready.popleft()]  # type: ignore[method-assign]  # one per batch
    with pytest.raises(RuntimeError, match="authentication refused"):
        asyncio.run(runner.run())
    assert target.cancelled == ["slow"], "a sibling batch kept running after the failure"


def test_in_doubt_writes_are_looked_up_through_replication_lag_before_any_resend() -> None:
    target = Target()
    ctx = Ctx(target, hidden_for=2)  # the first two look-ups miss the object (lag)
    _, result = run([step("u1", how="lost")], ctx, lag_tolerance=2.0)
    assert target.sent == ["u1"], "re-sent although the first write had applied"
    assert result.done == 1 and result.reconciled == 1 and ctx.lookups["u1"] == 3
    # Bounded: with no tolerance the single miss is believed and the step is sent again.
    target2 = Target()
    run([step("u1", how="lost")], Ctx(target2, hidden_for=1), lag_tolerance=0)
    assert target2.sent.count("u1") >= 2


def test_a_step_left_in_doubt_by_a_crash_is_reconciled_not_resent() -> None:
    target = Target(applied={"u1"})
    journal = MemoryJournal({"u1": {"event": "intent", "target_id": None, "data": {}}})
    _, result = run([step("u1"), step("l1", "u1")], Ctx(target, hidden_for=1), journal, lag_tolerance=2.0)
    assert target.sent == ["l1"] and result.reconciled == 1 and result.done == 1
