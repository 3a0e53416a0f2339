"""Which engine moves a drive's bytes: `phases.files.engine` graph | migration-api | auto (per target drive,
by the run's item count or bytes against `phases.files.auto`). Installed on the files phase's operations with
one call; the Graph engine keeps everything that is not a copy, and copies the Migration API cannot take
(files over its 15 GB limit)."""

from __future__ import annotations

import logging
from typing import Any

from migrations.core.steps import Outcome, Step
from migrations.files.bulk import manifest as mf

log = logging.getLogger("trustfold.files.engine")


def choose(files: Any, steps: list[Step], staging_ready: bool) -> dict[str, str]:
    """Target drive -> 'graph' | 'migration-api' for the copies of this run."""
    per: dict[str, list[int]] = {}
    for s in steps:
        if s.op == "copy":
            n = per.setdefault(s.args["target_drive"], [0, 0])
            n[0] += 1
            n[1] += int(s.args["size"])
    out = {}
    for drive, (items, nbytes) in per.items():
        if files.engine == "migration-api":
            out[drive] = "migration-api"
        elif files.engine == "auto" and (items >= files.auto_min_items or nbytes >= files.auto_min_bytes):
            out[drive] = "migration-api" if staging_ready else "graph"
            if not staging_ready:
                log.info("engine auto: no staging storage reachable, drive %s stays on Graph", drive)
        else:
            out[drive] = "graph"
    return out


def install(ops: Any) -> None:
    """Route this run's copies to the Migration API where the academy's engine choice says so."""
    files = ops.env.academy.files
    if files.engine == "graph":
        return
    original = ops.execute

    async def execute(steps: list[Step], concurrency: int, progress: Any) -> None:
        from migrations.files.bulk.engine import BulkEngine

        engine = _engine(ops)
        ready = engine is not None and engine.staging is not None
        chosen = choose(files, steps, ready)
        bulk = [
            s
            for s in steps
            if s.op == "copy"
            and chosen.get(s.args["target_drive"]) == "migration-api"
            and int(s.args["size"]) <= mf.MAX_FILE_BYTES
        ]
        if not bulk:
            await original(steps, concurrency, progress)
            return
        keys = {s.key for s in bulk}
        await original([s for s in steps if s.key not in keys and s.op != "delete"], concurrency, progress)
        if not ready:
            why = (
                "engine migration-api needs staging storage: the academy's staging account, "
                "staging.containers: provided, or in a rehearsal TRUSTFOLD_STAGING_URL (Azurite)"
            )
            for s in bulk:
                ops.journal.outcomes([(s, Outcome("failed", None, {}, why))])
                ops.state.failed += 1
                ops.state.failures.append({"step": s.describe(), "message": why})
            progress()
        else:
            assert isinstance(engine, BulkEngine)
            await engine.run(bulk, progress)
        await original([s for s in steps if s.op == "delete"], concurrency, progress)

    ops.execute = execute


def _engine(ops: Any) -> Any:
    from migrations.files.bulk.engine import BulkEngine
    from migrations.files.bulk.sharepoint_rest import SharePointRest
    from migrations.files.bulk.staging import ProvidedStaging, own_staging, tls_verify
    from migrations.graph.client import (
        _credential,  # the trust tenant's credential, as Graph connections build it
    )

    env = ops.env
    conns = env.conns
    ref = env.trust.settings.tenant.credential
    rest = SharePointRest(
        _credential(ref, env.trust.tenant.id, conns.graph_url), conns.graph_url, conns.raw_http
    )
    staging: Any
    if env.academy.files.staging_containers == "provided":
        staging = ProvidedStaging(rest, tls_verify())
    else:
        staging = own_staging(env.trust, env.academy, conns.graph_url)
    return BulkEngine(ops, staging, rest)
