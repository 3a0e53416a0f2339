"""The journal: intent before a request is sent, outcome after, so a crash leaves at most the in-flight
steps in doubt, and resume reconciles exactly those. Undo steps follow the same protocol: `undo-intent`
before the target is touched, then `undone`, `undo-skipped` (kept) or `undo-failed`.

Stores written before undo had one vocabulary hold `undo-done` (permissions, domain): read as `undone`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from migrations.core.steps import History, Outcome, SideWrite, Step
from migrations.core.store import StateStore, dumps, now

UNDO_EVENTS = {"undone": "undone", "kept": "undo-skipped", "failed": "undo-failed"}
_OLD_EVENTS = {"undo-done": "undone"}  # the previous release's permissions and domain undos


def _with_message(o: Outcome) -> dict[str, Any]:
    return {**o.data, "message": o.message}


def _event(event: str) -> str:
    return _OLD_EVENTS.get(event, event)


def history(store: StateStore, academy: str, phase: str) -> dict[str, History]:
    """Per step key of `phase`, in journal order: the forward op and its latest args, the last done outcome
    not undone since, the latest event, the args of every intent since the last settled outcome, and the
    target an interrupted undo found for a step that recorded none. The one reading rollback starts from."""
    out: dict[str, History] = {}
    for r in store.rows(
        "SELECT seq, step_key, op, event, target_id, data FROM journal WHERE academy = ? AND phase = ? "
        "ORDER BY seq",
        (academy, phase),
    ):
        event, data = _event(r["event"]), json.loads(r["data"] or "{}")
        h = out.setdefault(r["step_key"], History(r["op"], event, r["seq"]))
        h.latest, h.data = event, data
        if event in ("intent", "done", "failed"):
            h.forward = event
        if event == "intent":
            h.op, h.args, h.seq = r["op"], data.get("args") or {}, r["seq"]
            h.intents.append(h.args)
        elif event == "done":
            h.done, h.seq = Outcome("done", r["target_id"], data), r["seq"]
            h.intents = []
        elif event == "undone":
            # Gone: what it recorded (and what earlier intents carried) no longer describes the target.
            h.done, h.resolved, h.intents = None, None, []
        elif event == "undo-intent" and r["target_id"] and h.done is None:
            h.resolved = r["target_id"]  # an in-doubt create an earlier rollback found by its marker
    return out


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
        self.undo_intents([(key, op, target_id, data)])

    def undo_intents(self, rows: list[tuple[str, str, str | None, dict[str, Any]]]) -> None:
        """Several undo intents (key, op, target_id, data) in one transaction (a $batch of undos)."""
        self._write([(key, op, "undo-intent", t, d) for key, op, t, d in rows], "undo-intent")

    def undo_outcome(self, key: str, op: str, outcome: Outcome) -> None:
        """An undo step's known result: undone | kept (journaled undo-skipped) | failed (undo-failed, so the
        next rollback tries again), with its side records in the same transaction."""
        self.undo_outcomes([(key, op, outcome)])

    def undo_outcomes(self, results: list[tuple[str, str, Outcome]]) -> None:
        """Several undo outcomes (key, op, outcome) and their side records in ONE transaction."""
        self._write(
            [
                (key, op, UNDO_EVENTS.get(o.status, "undo-failed"), o.target_id, _with_message(o))
                for key, op, o in results
            ],
            "undo-outcome",
            [w for _, _, o in results for w in o.writes],
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
                "event": _event(r["event"]),
                "op": r["op"],
                "target_id": r["target_id"],
                "data": json.loads(r["data"] or "{}"),
                "run_id": r["run_id"],
            }
        return out
