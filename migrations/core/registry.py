"""The phase registry: plan / run / verify / rollback by phase name, so new phases plug in without CLI edits.

A phase package calls `register_phase(handler)` at import; `load_phases()` imports every phase package named
in PHASE_PACKAGES by name (the engine never imports a phase). Every handler implements all of PhaseHandler:
callers never probe for optional methods; a phase with nothing to add to discovery or verification returns
None.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from migrations.core.plan import Plan
from migrations.core.store import StateStore
from migrations.graph.client import Connections
from trust import Academy, Trust

log = logging.getLogger("trustfold.phases")
# Every phase that changes a tenant, in the order an academy goes through them: the one list of phase names.
# Mail needs the trust users (and their mailboxes) that `users` makes; it runs before the domain moves and
# again after it (an incremental pass catches what arrived in between). Teams needs the groups, memberships
# and files before it.
PHASES = ("users", "groups", "memberships", "files", "permissions", "mail", "teams", "domain")
IDENTITY_PHASES = PHASES[:3]
# What `rollback --phase all` undoes: everything but the domain cut-over, which is rolled back on its own.
ROLLBACK_ALL = tuple(p for p in PHASES if p != "domain")
# Status rows as `status` and the report show them: discovery first, verification before the domain moves.
PHASE_ORDER = ("discover", *ROLLBACK_ALL, "verify", "domain")


@dataclass
class PhaseEnv:
    trust: Trust
    academy: Academy
    store: StateStore
    conns: Connections
    operator: str
    run_dir: Path
    progress: Callable[[int, int], None] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Sign-in names a later phase switched (trust user id -> UPN): what verification expects them to be now.
    # The application layer fills it from the domain phase, so identity never imports domain.
    switched_upns: dict[str, str] = field(default_factory=dict)


@dataclass
class PhaseRun:
    run_id: str
    status: str
    counts: dict[str, Any]
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class PhaseHandler(Protocol):
    """Everything callers (CLI, demo, report) use of a phase."""

    name: str

    async def plan(self, env: PhaseEnv) -> Plan:
        """The steps to do now. With env.options["review"] set (run's re-derivation), store nothing."""
        ...

    async def run(self, env: PhaseEnv, plan: Plan, *, concurrency: int) -> PhaseRun: ...

    async def rollback_steps(self, env: PhaseEnv) -> list[Any]: ...

    async def rollback(self, env: PhaseEnv, steps: list[Any], *, purge: bool) -> PhaseRun: ...

    async def discover(self, env: PhaseEnv) -> dict[str, int] | None:
        """What this phase adds to `discover` (counts), or None when discovery of users/groups suffices."""
        ...

    async def verify(self, env: PhaseEnv) -> dict[str, Any] | None:
        """This phase's part of `verify` ({"checked", "differences", ...}), or None when it has none."""
        ...


_PHASES: dict[str, PhaseHandler] = {}


def register_phase(handler: PhaseHandler) -> None:
    _PHASES[handler.name] = handler


# The packages that register phases when imported, in the order operators meet them.
PHASE_PACKAGES = ("identity", "files", "permissions", "mail", "teams", "domain")


def load_phases() -> dict[str, PhaseHandler]:
    for name in PHASE_PACKAGES:
        importlib.import_module(f"migrations.{name}")
    return dict(_PHASES)


def phase(name: str) -> PhaseHandler:
    phases = load_phases()
    if name not in phases:
        raise KeyError(f"unknown phase '{name}' (available: {', '.join(sorted(phases))})")
    return phases[name]
