"""The undo driver: rollback is the journal read backwards, each step undone by its own operation.

The driver knows no phase's operations. It reads the journal (core/journal.history()), asks each step's
operation what undoing it means (`undo_step`), orders the undo steps (latest first; a phase adds its own
rule where order matters, e.g. files before their folders), and carries each one out with the forward
protocol: `undo-intent` journaled before the target is touched, the outcome (`undone`, `undo-skipped` for a
kept object, `undo-failed`) and its side records after, in one transaction. An interrupted rollback leaves
exactly the open steps for the next one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from migrations.core.journal import Journal, history
from migrations.core.runs import Tally
from migrations.core.steps import Outcome, UndoStep, known_operation, operation
from migrations.core.store import StateStore

# Latest events that leave something to undo. A kept object (undo-skipped) is checked again by every later
# rollback: once whoever changed it puts it back, it goes; while it stays changed, it is kept again.
# "accepted": the tenant took an asynchronous change and is still carrying it out (the domain's removal).
OPEN = ("done", "failed", "intent", "accepted", "undo-intent", "undo-failed", "undo-skipped")


class UndoRules:
    """What a phase tells the driver beyond its operations: how its undo steps are grouped (each stage runs
    concurrently, stages one after another), which errors mean 'failed, try again next time' and how a kept
    object is reported. The defaults: one stage, Graph errors come from the op as failed outcomes."""

    errors: tuple[type[Exception], ...] = ()

    def stages(self, steps: list[UndoStep]) -> list[list[UndoStep]]:
        return [steps]

    def waits(self, step: UndoStep) -> str | None:
        """Why this step cannot be decided yet (it waits on another undo); None when it can."""
        return None

    def failed(self, step: UndoStep, message: str) -> dict[str, str]:
        return {"step": step.key, "message": message}

    def kept(self, step: UndoStep, outcome: Outcome) -> dict[str, str] | None:
        """The kept object as reported, or None when another kept step already speaks for it."""
        return {"step": step.key, "object": outcome.target_id or "", "message": outcome.message}


def undo_steps(store: StateStore, academy: str, phase: str) -> list[UndoStep]:
    """Every step of `phase` whose operation can undo it and has something to undo, latest first."""
    found: list[tuple[int, UndoStep]] = []
    for key, h in history(store, academy, phase).items():
        op = known_operation(h.op)
        if op is None or not op.reversible or h.latest not in OPEN:
            continue
        step = op.undo_step(phase, key, h)
        if step is not None:
            found.append((h.seq, step))
    return [s for _, s in sorted(found, key=lambda x: -x[0])]


async def carry_out(
    store: StateStore,
    academy: str,
    run_id: str,
    steps: list[UndoStep],
    ctx: Any,
    rules: UndoRules,
    *,
    concurrency: int = 4,
    result: Tally | None = None,
) -> Tally:
    """Undo `steps` (from undo_steps, in that order within each of the rules' stages), counted in `result`
    (the rollback's tally: pass it in to read how far an interrupted rollback got)."""
    result = result if result is not None else Tally()

    def failed(entry: dict[str, str]) -> None:
        result.failed += 1
        result.failures.append(entry)

    journals: dict[str, Journal] = {}

    def journal(step: UndoStep) -> Journal:
        if step.phase not in journals:
            journals[step.phase] = Journal(store, run_id, academy, step.phase, None)
        return journals[step.phase]

    gate = asyncio.Semaphore(max(1, concurrency))

    async def undo(step: UndoStep) -> None:
        why = rules.waits(step)
        if why is not None:
            failed(rules.failed(step, why))
            return
        op = operation(step.op)
        name = op.undo_name
        async with gate:
            journal(step).undo_intent(step.key, name, step.target_id, {"args": step.args})

            def found(target_id: str) -> None:
                journal(step).undo_intent(step.key, name, target_id, {"args": step.args})

            try:
                outcome = await op.undo(step, ctx, found)
            except rules.errors as exc:
                outcome = Outcome("failed", step.target_id, {}, str(exc))
            journal(step).undo_outcome(step.key, name, outcome)
        if outcome.status == "undone":
            result.done += 1
        elif outcome.status == "kept":
            kept = rules.kept(step, outcome)
            if kept is not None:
                result.kept.append(kept)
        else:
            failed(rules.failed(step, outcome.message))

    # Steps of one stage are independent of each other; a crash stops them all (TaskGroup), and each one is
    # journaled on its own, so the next rollback resumes exactly the open ones.
    for stage in rules.stages(steps):
        async with asyncio.TaskGroup() as group:
            for step in stage:
                group.create_task(undo(step))
    return result
