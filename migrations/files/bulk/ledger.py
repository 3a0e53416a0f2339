"""A package's life in `bulk_packages` (staging -> submitting -> submitted -> imported -> done) and the
settling of its steps: each outcome journaled and tallied once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from migrations.core.steps import Outcome, Step
from migrations.core.store import now
from migrations.files.bulk.context import BulkContext
from migrations.files.bulk.staging import Containers


def save(
    ctx: BulkContext, pid: str, drive: str, state: str, data: dict[str, Any], job: str | None = None
) -> None:
    with ctx.store.tx() as tx:
        tx.execute(
            "INSERT INTO bulk_packages (academy, package_id, target_drive, state, job_id, data, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (academy, package_id) DO UPDATE SET "
            "state = excluded.state, job_id = coalesce(excluded.job_id, bulk_packages.job_id), "
            "data = excluded.data, at = excluded.at",
            (ctx.code, pid, drive, state, job, json.dumps(data), now()),
        )


def finish(ctx: BulkContext, step: Step, outcome: Outcome, progress: Callable[[], None]) -> None:
    ctx.finished.add(step.key)
    ctx.journal.outcomes([(step, outcome)])
    ctx.tally(step, outcome)
    progress()


def fail(ctx: BulkContext, steps: list[Step], message: str, progress: Callable[[], None]) -> None:
    for s in steps:
        if s.key not in ctx.finished:
            finish(ctx, s, Outcome("failed", None, {}, message), progress)


async def cleanup(ctx: BulkContext, pid: str, data: dict[str, Any], state: str = "done") -> None:
    """Containers go as soon as their import is verified (policy `staging.cleanup`); the landing zone's
    lifecycle rule deletes whatever a crashed run left behind. `state`: 'abandoned' for a package given up."""
    sec = ctx.secrets.get(pid)
    if sec and ctx.cleanup_after_verify:
        with contextlib.suppress(Exception):
            await ctx.staging.delete(Containers(sec["source"], sec["manifest"]))
    with ctx.store.tx() as tx:
        tx.execute(
            "UPDATE bulk_packages SET state = ?, at = ? WHERE academy = ? AND package_id = ?",
            (state, now(), ctx.code, pid),
        )
    ctx.secrets.drop(pid)
