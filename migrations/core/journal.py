"""The journal: intent before a request is sent, outcome after, so a crash leaves at most the in-flight
steps in doubt, and resume reconciles exactly those.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from migrations.core.steps import Outcome, SideWrite, Step
from migrations.core.store import StateStore, dumps, now


class Journal:
    """Append-only record of every step sent; the source of truth for resume and rollback."""

    def __init__(self, store: StateStore, run_id: str, academy: str, phase: str, plan_id: str | None):
        self.store, self.run_id, self.academy, self.phase, self.plan_id = (
            store,
            run_id,
            academy,
            phase,
            plan_id,
        )

    def _write(
        self,
        rows: Iterable[tuple[Step | str, str, str, str | None, dict[str, Any] | None]],
        label: str,
        writes: Iterable[SideWrite] = (),
    ) -> None:
        at = now()
        rows = list(rows)
        ops = sorted({op for _, op, _, _, _ in rows})
        with self.store.tx(label=",".join(f"{label}:{op}" for op in ops)) as tx:
            tx.executemany(
                "INSERT INTO journal (run_id, academy, phase, plan_id, step_key, op, event, target_id, data, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self.run_id,
                        self.academy,
                        self.phase,
                        self.plan_id,
                        s.key if isinstance(s, Step) else s,
                        op,
                        event,
                        target,
                        dumps(data or {}),
                        at,
                    )
                    for s, op, event, target, data in rows
                ],
            )
            for w in writes:
                tx.execute(w.sql, w.params)

    def intents(self, steps: list[Step], event: str = "intent") -> None:
        """Before anything is sent: the step's args (every decision it carries, e.g. a conflict rename)."""
        self._write(((s, s.op, event, None, {"args": s.args}) for s in steps), event)

    def outcomes(self, results: list[tuple[Step, Outcome]], prefix: str = "") -> None:
        """The known outcome of each step and its side records, in ONE transaction."""
        self._write(
            (
                (
                    s,
                    s.op,
                    prefix + ("done" if o.status in ("done", "already") else "failed"),
                    o.target_id,
                    {**o.data, "message": o.message, "status": o.status},
                )
                for s, o in results
            ),
            "outcome" if not prefix else prefix + "outcome",
            [w for _, o in results for w in o.writes],
        )

    def undo_intent(self, key: str, op: str, target_id: str | None, data: dict[str, Any]) -> None:
        """Before an undo step touches the target (the same protocol as forward steps)."""
        self._write([(key, op, "undo-intent", target_id, data)], "undo-intent")

    def undo_outcome(self, key: str, op: str, outcome: Outcome) -> None:
        """An undo step's known result: undone | kept (journaled undo-skipped) | failed (undo-failed, so the
        next rollback tries again), with its side records in the same transaction."""
        event = {"undone": "undone", "kept": "undo-skipped"}.get(outcome.status, "undo-failed")
        self._write(
            [(key, op, event, outcome.target_id, {**outcome.data, "message": outcome.message})],
            "undo-outcome",
            outcome.writes,
        )

    def history(self) -> dict[str, dict[str, Any]]:
        """Latest event per step key of this journal's phase (what the runner resumes from)."""
        return Journal.state(self.store, self.academy, self.phase)

    @staticmethod
    def state(store: StateStore, academy: str, phase: str) -> dict[str, dict[str, Any]]:
        """Latest event per step key: {key: {event, op, target_id, data}}."""
        out: dict[str, dict[str, Any]] = {}
        for r in store.rows(
            "SELECT step_key, op, event, target_id, data, run_id FROM journal "
            "WHERE academy = ? AND phase = ? ORDER BY seq",
            (academy, phase),
        ):
            out[r["step_key"]] = {
                "event": r["event"],
                "op": r["op"],
                "target_id": r["target_id"],
                "data": json.loads(r["data"] or "{}"),
                "run_id": r["run_id"],
            }
        return out
