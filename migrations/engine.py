"""Steps, plans, the journal and the runner: what makes a migration safe to stop at any instant.

A Step is one idempotent change to the target, stored as data in a Plan. Its Operation knows how to turn it
into a Graph request, read the answer, recognise that it was already applied (by provenance marker), and
undo what the journal recorded. The journal gets the intent before a request is sent and the outcome after,
so a crash leaves at most the in-flight steps in doubt, and resume reconciles exactly those.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from migrations.graph import BatchItem, GraphResponse
from migrations.store import StateStore, dumps, now

log = logging.getLogger("trustfold.engine")


@dataclass(frozen=True)
class Step:
    key: str
    op: str
    args: dict[str, Any]
    after: tuple[str, ...] = ()

    def describe(self) -> str:
        return operation(self.op).describe(self)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["after"] = list(self.after)
        d["description"] = self.describe()
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Step:
        return Step(d["key"], d["op"], d["args"], tuple(d.get("after", ())))


@dataclass
class Plan:
    academy: str
    phase: str
    steps: list[Step]
    notes: list[str] = field(default_factory=list)
    already_present: int = 0
    created_at: str = field(default_factory=now)
    number: int | None = None  # set when stored: what operators review and name with `run --plan N`
    options: dict[str, Any] = field(default_factory=dict)  # planning options, re-used when re-derived

    @functools.cached_property
    def digest(self) -> str:
        payload = json.dumps([s.to_json() for s in self.steps], sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    @property
    def id(self) -> str:
        return f"{self.academy}-{self.phase}-{self.digest[:12]}"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.op] = out.get(s.op, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "academy": self.academy,
            "phase": self.phase,
            "digest": self.digest,
            "created_at": self.created_at,
            "counts": self.counts(),
            "already_present": self.already_present,
            "notes": self.notes,
            "steps": [s.to_json() for s in self.steps],
        }

    def save(self, store: StateStore, kind: str = "apply") -> int:
        """Store the plan under the next plan number (kept for review and `run --plan N`); returns it."""
        body = dumps(
            {
                "steps": [s.to_json() for s in self.steps],
                "notes": self.notes,
                "already_present": self.already_present,
                "options": self.options,
            }
        )
        with store.tx() as tx:
            cur = tx.execute(
                "INSERT INTO plans (id, academy, phase, created_at, digest, step_count, body, kind) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.id,
                    self.academy,
                    self.phase,
                    self.created_at,
                    self.digest,
                    len(self.steps),
                    body,
                    kind,
                ),
            )
            self.number = int(cur.lastrowid or 0)
        return self.number

    @staticmethod
    def _from_row(row: Any) -> Plan:
        body = json.loads(row["body"])
        return Plan(
            row["academy"],
            row["phase"],
            [Step.from_json(s) for s in body["steps"]],
            body.get("notes", []),
            body.get("already_present", 0),
            row["created_at"],
            number=row["number"],
            options=body.get("options", {}),
        )

    @staticmethod
    def latest(store: StateStore, academy: str, phase: str, kind: str = "apply") -> Plan | None:
        rows = store.rows(
            "SELECT * FROM plans WHERE academy = ? AND phase = ? AND kind = ? ORDER BY number DESC LIMIT 1",
            (academy, phase, kind),
        )
        return Plan._from_row(rows[0]) if rows else None

    @staticmethod
    def load(store: StateStore, number: int) -> Plan | None:
        rows = store.rows("SELECT * FROM plans WHERE number = ?", (number,))
        return Plan._from_row(rows[0]) if rows else None


@dataclass(frozen=True)
class SideWrite:
    """A store write that belongs to a step's outcome (a file_copies row, a mapping's target id): the Journal
    applies it in the same transaction as the outcome event, so a crash keeps both or neither."""

    sql: str
    params: tuple[Any, ...] = ()


@dataclass
class Outcome:
    status: str  # done | failed | already (forward); undone | kept | failed (undo)
    target_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    writes: list[SideWrite] = field(default_factory=list)


class Operation(Protocol):
    name: str
    batchable: bool

    def describe(self, step: Step) -> str: ...

    def request(self, step: Step, ctx: Any) -> BatchItem: ...

    def outcome(self, step: Step, resp: GraphResponse, ctx: Any) -> Outcome | None:
        """Read the answer; None means 'unclear, reconcile'."""
        ...

    async def reconcile(self, step: Step, ctx: Any) -> Outcome | None:
        """Was this step already applied? Done outcome if so, None if not."""
        ...


_OPERATIONS: dict[str, Operation] = {}


def register_operation(op: Operation) -> Operation:
    _OPERATIONS[op.name] = op
    return op


def operation(name: str) -> Operation:
    return _OPERATIONS[name]


# ---- journal ----------------------------------------------------------------------------------------------
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


# ---- runs -------------------------------------------------------------------------------------------------
def start_run(
    store: StateStore, academy: str, phase: str, kind: str, plan_id: str | None, operator: str
) -> str:
    run_id = f"{kind}-{academy}-{phase}-{uuid.uuid4().hex[:8]}"
    with store.tx() as tx:
        # A run left 'running' by a crash is marked as interrupted when the next one starts.
        tx.execute(
            "UPDATE runs SET status = 'interrupted' WHERE academy = ? AND phase = ? AND status = 'running'",
            (academy, phase),
        )
        tx.execute(
            "INSERT INTO runs (id, academy, phase, kind, plan_id, started_at, status, counts, operator) "
            "VALUES (?, ?, ?, ?, ?, ?, 'running', '{}', ?)",
            (run_id, academy, phase, kind, plan_id, now(), operator),
        )
    return run_id


def finish_run(store: StateStore, run_id: str, status: str, counts: dict[str, Any]) -> None:
    with store.tx() as tx:
        tx.execute(
            "UPDATE runs SET status = ?, finished_at = ?, counts = ? WHERE id = ?",
            (status, now(), dumps(counts), run_id),
        )


class Metrics:
    """Samples progress about once a second for the report's throughput chart."""

    def __init__(self, store: StateStore, run_id: str):
        self.store, self.run_id, self._last = store, run_id, 0.0

    def sample(self, values: dict[str, float], force: bool = False) -> None:
        t = time.monotonic()
        if not force and t - self._last < 1.0:
            return
        self._last = t
        at = now()
        with self.store.tx() as tx:
            tx.executemany(
                "INSERT INTO metrics (run_id, at, name, value) VALUES (?, ?, ?, ?)",
                [(self.run_id, at, k, float(v)) for k, v in values.items()],
            )
