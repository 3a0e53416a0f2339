"""Which engine moves a drive's bytes: `phases.files.engine` graph | migration-api | auto (per target drive,
by the run's item count or bytes against `phases.files.auto`). The Graph engine keeps the copies the
Migration API cannot take (files over its 15 GB limit); everything that is not a copy stays with the files
executor."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from migrations.core.journal import Journal
from migrations.core.registry import PhaseEnv
from migrations.core.steps import Outcome, Step
from migrations.files.bulk import manifest as mf
from migrations.files.engines import CopyEngine
from migrations.files.transfer import Counters
from migrations.graph.client import TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget
from migrations.safety.private import tighten
from trust import ConfigError
from trust.model import FilesView

log = logging.getLogger("trustfold.files.engine")
NO_STAGING = (
    "engine migration-api needs staging storage: the academy's staging account, "
    "staging.containers: provided, or in a rehearsal TRUSTFOLD_STAGING_URL (Azurite)"
)


def choose(files: FilesView, steps: list[Step], staging_ready: bool) -> dict[str, str]:
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


class NoStaging:
    """Stands in for the Migration API engine when no staging storage is reachable: the copies it was chosen
    for fail, saying what it needs (auto never chooses it then)."""

    def __init__(self, journal: Journal, tally: Callable[[Step, Outcome], None]) -> None:
        self.journal, self.tally = journal, tally

    async def copy_steps(self, steps: list[Step], concurrency: int, progress: Callable[[], None]) -> None:
        for s in steps:
            outcome = Outcome("failed", None, {}, NO_STAGING)
            self.journal.outcomes([(s, outcome)])
            self.tally(s, outcome)
        progress()


def migration_api(
    env: PhaseEnv,
    *,
    journal: Journal,
    target: TenantConnection,
    budget: SharePointBudget,
    counters: Counters,
    record: Callable[[Step, dict[str, Any], bool, bool], Outcome],
    tally: Callable[[Step, Outcome], None],
) -> CopyEngine:
    """The Migration API engine for this run's academy, from what the run shares with it."""
    # Imported only when an academy's engine may be the Migration API: the Azure SDK they load would
    # otherwise lengthen every command's start-up.
    from migrations.files.bulk.context import BulkContext
    from migrations.files.bulk.engine import BulkEngine
    from migrations.files.bulk.packages import mapped_users
    from migrations.files.bulk.secrets import Secrets
    from migrations.files.bulk.sharepoint_rest import SharePointRest
    from migrations.files.bulk.staging import OwnStaging, ProvidedStaging, own_staging, tls_verify
    from migrations.graph.client import (
        _credential,  # the trust tenant's credential, as Graph connections build it
    )

    conns, code = env.conns, env.academy.code
    ref = env.trust.settings.tenant.credential
    rest = SharePointRest(
        _credential(ref, env.trust.tenant.id, conns.graph_url),
        conns.graph_url,
        conns.raw_http,
        budget,
        target.tenant_id,
    )
    staging: OwnStaging | ProvidedStaging | None
    if env.academy.files.staging_containers == "provided":
        staging = ProvidedStaging(rest, tls_verify())
    else:
        staging = own_staging(env.trust, env.academy, conns.graph_url)
    if staging is None:
        return NoStaging(journal, tally)
    # AES keys and queue SAS: owner-only again before they are read (a copy or a chmod may have loosened it).
    secrets_file = env.run_dir.parent / f"bulk-secrets-{code}.json"
    tighten(secrets_file)
    return BulkEngine(
        BulkContext(
            code=code,
            store=env.store,
            journal=journal,
            source=conns.source(code),
            target=target,
            budget=budget,
            rest=rest,
            staging=staging,
            secrets=Secrets(secrets_file),
            users=mapped_users(env.store, code),
            counters=counters,
            record=record,
            tally=tally,
            cleanup_after_verify=env.academy.files.staging_cleanup == "after-verify",
            rehearsal=bool(conns.graph_url),
            silence_s=_silence_s(),
        )
    )


class EngineChoice:
    """This run's copy engines by target drive. The Migration API engine is built when the run's steps are
    first assigned (never when the academy's engine is graph)."""

    def __init__(self, files: FilesView, graph: CopyEngine, migration_api: Callable[[], CopyEngine]) -> None:
        self.files, self.graph, self.build = files, graph, migration_api

    async def abandon(self, packages: tuple[str, ...], progress: Callable[[], None]) -> set[str]:
        """Give up the named Migration API packages (`run --abandon-package`); the step keys they held."""
        api = self.build()
        if not hasattr(api, "abandon"):
            return set()  # no staging reachable: NoStaging has no packages to give up
        return set(await api.abandon(packages, progress))

    def assign(self, copies: list[Step]) -> list[tuple[CopyEngine, list[Step]]]:
        """Each engine with the copy steps it carries out, in the order they run: the Graph engine's first.
        The Migration API engine comes only with copies to take (its re-attaching to a killed run's
        packages waits for a run that gives it some)."""
        if self.files.engine == "graph":
            return [(self.graph, copies)]
        api = self.build()
        chosen = choose(self.files, copies, staging_ready=not isinstance(api, NoStaging))
        bulk = [
            s
            for s in copies
            if chosen.get(s.args["target_drive"]) == "migration-api"
            and int(s.args["size"]) <= mf.MAX_FILE_BYTES
        ]
        if not bulk:
            return [(self.graph, copies)]
        keys = {s.key for s in bulk}
        return [(self.graph, [s for s in copies if s.key not in keys]), (api, bulk)]


SILENCE_ENV = "TRUSTFOLD_BULK_SILENCE_S"


def _silence_s() -> float:
    """Seconds a Migration API job may give no progress before its package fails for the run (default an
    hour: SharePoint queues jobs without an SLA); a rehearsal sets it short to exercise the bound."""
    raw = os.environ.get(SILENCE_ENV)
    if not raw:
        return 3600.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 7 * 86400:
        raise ConfigError(
            "environment", f"{raw!r} is not a number of seconds (0 to 7 days)", field=SILENCE_ENV
        )
    return value
