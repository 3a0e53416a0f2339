"""Carries domain steps out, forward or backward: intent journaled before a request, outcome (with the
step's arguments, for resume and rollback) in one transaction after; steps left in doubt by a crash are
settled by reading the tenant, never by blind resending.

Crash tests kill at its boundaries through migrations.core.killpoints: the journal's labelled commits and
`domain.sent` (a request answered, its outcome not yet journaled); `*:N` kills at the Nth, chosen by a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrations.core import killpoints
from migrations.core.journal import Journal
from migrations.core.runs import Tally
from migrations.core.steps import Outcome, Step
from migrations.core.store import StateStore
from migrations.domain.steps import OPS, RENAME_USER, DomainError, Tenants
from migrations.graph.client import GraphResponse, MaybeApplied

BATCH = 20


class Executor:
    def __init__(
        self,
        store: StateStore,
        journal: Journal,
        tenants: Tenants,
        options: dict[str, Any],
        on_step: Callable[[int], None] | None = None,
    ):
        self.store, self.journal, self.t, self.options = store, journal, tenants, options
        self.result = Tally()
        self.on_step = on_step or (lambda _n: None)
        self.undoing = False  # a rollback: journaled undo-intent, then undone | undo-failed

    # ---- journal --------------------------------------------------------------------------------------
    def _intents(self, steps: list[Step]) -> None:
        if self.undoing:
            self.journal.undo_intents([(s.key, s.op, None, {"args": s.args}) for s in steps])
        else:
            self.journal.intents(steps)

    def _outcomes(self, pairs: list[tuple[Step, Outcome]]) -> None:
        for s, o in pairs:
            o.data = {**o.data, "args": s.args}
        if self.undoing:
            self.journal.undo_outcomes([(s.key, s.op, _undo_outcome(o)) for s, o in pairs])
        else:
            self.journal.outcomes(pairs)
        for _, o in pairs:
            if o.status == "done":
                self.result.done += 1
            elif o.status == "already":
                self.result.already += 1
        self.on_step(len(pairs))

    # ---- settle what a crash left in doubt ---------------------------------------------------------------
    async def settle(self, steps: list[Step], history: dict[str, dict[str, Any]], forward: bool) -> None:
        """An intent without an outcome: read the tenant and record what actually happened."""
        want = "undo-intent" if self.undoing else "intent"
        for step in steps:
            h = history.get(step.key)
            if not h or h["event"] != want:
                continue
            state = await self._check(step, forward)
            if state == "done":
                self._outcomes([(step, Outcome("already", step.args.get("id") or step.args.get("domain")))])

    async def _check(self, step: Step, forward: bool) -> str:
        if step.op in OPS:
            state = await OPS[step.op].check(step, self.t)
            return state if forward else ("todo" if state == "done" else "done")
        return await RENAME_USER.check(step, self.t, forward)

    # ---- run ----------------------------------------------------------------------------------------------
    async def single(self, step: Step, forward: bool) -> None:
        op = OPS[step.op]
        state = await self._check(step, forward)
        if state == "done":
            self._outcomes([(step, Outcome("already", step.args.get("domain")))])
            return
        self._intents([step])
        out = await (op.forward if forward else op.backward)(step, self.t, self.options)
        killpoints.reached("domain.sent")
        if out.status == "failed":
            self.result.failed += 1
            self.result.failures.append({"step": step.key, "message": out.message})
            raise DomainError(f"{step.key}: {out.message}")
        self._outcomes([(step, out)])

    async def renames(self, steps: list[Step], forward: bool) -> None:
        """PATCH users 20 to a $batch; the connection's write window spreads them over budget windows."""
        todo: list[Step] = []
        start = self.result.done + self.result.already
        for step in steps:
            state = await RENAME_USER.check(step, self.t, forward)
            if state == "done":
                self._outcomes([(step, Outcome("already", step.args["id"]))])
            elif state == "changed":
                self.result.kept.append(
                    {
                        "object": step.args["upn_from"] if forward else step.args["upn_to"],
                        "message": "renamed by someone else since; not touched",
                    }
                )
            else:
                todo.append(step)
        for i in range(0, len(todo), BATCH):
            chunk = todo[i : i + BATCH]
            conn = self.t.of(chunk[0])
            self._intents(chunk)
            answers = await conn.batch([RENAME_USER.request(s, forward) for s in chunk])
            killpoints.reached("domain.sent")
            pairs: list[tuple[Step, Outcome]] = []
            for step, answer in zip(chunk, answers, strict=True):
                out = RENAME_USER.outcome(step, answer) if isinstance(answer, GraphResponse) else None
                if out is not None and not forward and out.status == "done":
                    out = Outcome("done", step.args["id"], {"upn": step.args["upn_from"]})
                if out is None or isinstance(answer, MaybeApplied):
                    state = await RENAME_USER.check(step, self.t, forward)
                    out = (
                        Outcome("done", step.args["id"])
                        if state == "done"
                        else Outcome("failed", message="answer lost and the rename is not visible; run again")
                    )
                if out.status == "failed":
                    self.result.failed += 1
                    self.result.failures.append({"step": step.key, "message": out.message})
                    continue
                pairs.append((step, out))
            if pairs:
                self._outcomes(pairs)
            finished = self.result.done + self.result.already - start
            self.t.progress(f"renamed {finished} of {len(steps)} user(s)")


def _undo_outcome(o: Outcome) -> Outcome:
    """A backward action's outcome in the undo vocabulary; data keeps whether it changed anything (status
    done) or found it already undone (already)."""
    status = "undone" if o.status in ("done", "already") else "failed"
    return Outcome(status, o.target_id, {**o.data, "status": o.status}, o.message, o.writes)
