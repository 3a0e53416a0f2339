"""Run records: one lifecycle for every phase's run and rollback, the tally its steps count into, and
progress samples for the report."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from migrations.core.registry import PhaseRun
from migrations.core.steps import Outcome, Step
from migrations.core.store import StateStore, dumps, now


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


@dataclass
class Tally:
    """What a run or rollback did with its steps: every phase's executor counts into one of these."""

    done: int = 0
    already: int = 0
    failed: int = 0
    skipped: int = 0
    reconciled: int = 0
    kept: list[dict[str, str]] = field(default_factory=list)  # undo: changed since, so left in place
    failures: list[dict[str, str]] = field(default_factory=list)
    outcome_of: dict[str, str] = field(default_factory=dict)  # step key -> done | already | failed | skipped

    def settle(self, step: Step, outcome: Outcome) -> None:
        """Counts a settled step by its outcome, whichever executor or engine settled it."""
        if outcome.status == "failed":
            self.fail(step.describe(), outcome.message)
        elif outcome.status == "already":
            self.already += 1
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            self.done += 1

    def fail(self, step: str, message: str) -> None:
        self.failed += 1
        self.failures.append({"step": step, "message": message})

    def counts(self, keys: set[str] | None = None) -> dict[str, Any]:
        """A run's counts, of every step or of `keys` only (one phase's part of a graph run)."""
        if keys is None:
            return {
                "done": self.done,
                "already_present": self.already,
                "failed": self.failed,
                "skipped": self.skipped,
                "reconciled": self.reconciled,
            }
        mine = [v for k, v in self.outcome_of.items() if k in keys]
        return {
            "done": mine.count("done"),
            "already_present": mine.count("already"),
            "failed": mine.count("failed"),
            "skipped": mine.count("skipped"),
        }

    def undo_counts(self) -> dict[str, Any]:
        """A rollback's counts."""
        return {"done": self.done, "kept": len(self.kept), "failed": self.failed}

    def kept_notes(self) -> list[str]:
        return [f"kept {k['object']}: {k['message']}" for k in self.kept]


@dataclass
class RunRecord:
    """One run or rollback while it goes: the body counts into `tally` and may give its verdict, its counts
    and each part's status; what it leaves unsaid, the lifecycle derives."""

    run_id: str
    kind: str  # run | rollback
    plan_id: str | None
    planned: int
    tally: Tally = field(default_factory=Tally)
    status: str | None = None  # the verdict; unset, it follows the tally (or the exception that ended it)
    counts: dict[str, Any] | None = None  # set by a body that ends with counts of its own making
    # The counts as the run ends, measured then (requests, bytes, ...); by default the tally's.
    measure: Callable[[], dict[str, Any]] | None = None
    # A part's final status and detail, for a phase whose parts are judged apart (identity's graph run).
    part_status: Callable[[str, str, dict[str, Any]], tuple[str, dict[str, Any]]] | None = None

    def outcome(self, failures: list[dict[str, str]], notes: list[str]) -> PhaseRun:
        """What the phase hands back once the lifecycle has closed the run."""
        return PhaseRun(self.run_id, self.status or "failed", self.counts or {}, failures, notes)

    def final_counts(self) -> dict[str, Any]:
        if self.counts is not None:
            return self.counts
        if self.measure is not None:
            return self.measure()
        shape = self.tally.counts() if self.kind == "run" else self.tally.undo_counts()
        return {"planned": self.planned, **shape}

    def status_of(self, part: str, status: str, counts: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if self.part_status is not None:
            return self.part_status(part, status, counts)
        if self.kind == "run":
            return ("done" if status == "succeeded" else "failed"), {
                "last_run": self.run_id,
                "plan": self.plan_id,
                **counts,
            }
        return ("rolled-back" if status == "succeeded" else "failed"), {
            "last_run": self.run_id,
            **counts,
            "kept": self.tally.kept,
        }


@asynccontextmanager
async def phase_run(
    store: StateStore,
    academy: str,
    phase: str,
    kind: str,
    operator: str,
    *,
    plan_id: str | None = None,
    parts: tuple[str, ...] | None = None,
    planned: int = 0,
    own_status: bool = False,
) -> AsyncIterator[RunRecord]:
    """The bookkeeping of one run or rollback of `phase` (whose phase statuses are `parts`).

    Starts the run record; a run marks its parts running. When the body ends the run row gets its verdict
    and counts, and each part its status (done / rolled-back / failed) unless the phase keeps its statuses
    itself (`own_status`: the domain's waiting-for-dns and runbook). An exception never leaves the row
    running: a run ends failed, counted and with its parts' statuses (as a run that failed its steps); a
    rollback ends interrupted with what it had undone and the statuses untouched (the next one resumes)."""
    parts = parts or (phase,)
    run_id = start_run(store, academy, phase, kind, plan_id, operator)
    run = RunRecord(run_id, kind, plan_id, planned)
    if kind == "run" and not own_status:
        for part in parts:
            store.set_phase_status(academy, part, "running", {"last_run": run_id, "plan": plan_id})
    try:
        yield run
    except BaseException:
        if kind == "rollback":
            counts = run.counts or {k: v for k, v in run.final_counts().items() if k in ("planned", "done")}
            finish_run(store, run_id, run.status or "interrupted", counts)
            raise
        run.status = run.status or "failed"
        _finish(store, academy, parts, run, own_status)
        raise
    if run.status is None:
        run.status = "succeeded" if not run.tally.failed else "failed"
    _finish(store, academy, parts, run, own_status)


def _finish(
    store: StateStore, academy: str, parts: tuple[str, ...], run: RunRecord, own_status: bool
) -> None:
    status = run.status or "failed"
    run.counts = counts = run.final_counts()
    finish_run(store, run.run_id, status, counts)
    if not own_status:
        for part in parts:
            store.set_phase_status(academy, part, *run.status_of(part, status, counts))


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
