"""What the bulk engine's parts need of the files run that uses them: the state store and journal, the two
tenants and their SharePoint budget, the staging storage, the run's tallies and the Graph engine's record of
a placed file. Built once per run by files/engine_choice.py; nothing here reaches back into the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrations.core.journal import Journal
from migrations.core.steps import Outcome, Step
from migrations.core.store import StateStore
from migrations.files.bulk.secrets import Secrets
from migrations.files.bulk.sharepoint_rest import SharePointRest
from migrations.files.bulk.staging import OwnStaging, ProvidedStaging
from migrations.files.transfer import Counters
from migrations.graph.client import TenantConnection
from migrations.graph.sharepoint_window import SharePointBudget


@dataclass
class BulkContext:
    code: str  # the academy's
    store: StateStore
    journal: Journal
    source: TenantConnection
    target: TenantConnection
    budget: SharePointBudget
    rest: SharePointRest
    staging: OwnStaging | ProvidedStaging
    secrets: Secrets
    users: dict[str, tuple[str, str]]  # source user id -> (target UPN, display name), the reviewed mapping
    counters: Counters  # the run's files and bytes, shared with the Graph engine
    # The done outcome of a step that placed an item (step, item, created, folder), carrying its file_copies
    # row: the Graph engine's, so both engines record a copy alike.
    record: Callable[[Step, dict[str, Any], bool, bool], Outcome]
    tally: Callable[[Step, Outcome], None]  # counts a settled step in the run's tallies
    cleanup_after_verify: bool  # policy `staging.cleanup`
    rehearsal: bool  # against the sandbox: the report queue is polled faster
    # How long a submitted job may give no progress before its package is failed for this run (the next run
    # checks it again; `--abandon-package` gives it up).
    silence_s: float = 3600.0
    finished: set[str] = field(default_factory=set)  # step keys settled this run

    @property
    def verify(self) -> str | bool:
        """What storage clients (the report queue too) verify TLS against."""
        return self.staging.verify
