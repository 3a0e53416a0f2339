"""Run records: a run's start, its end with counts, and progress samples for the report."""

from __future__ import annotations

import time
import uuid
from typing import Any

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
