"""What an operator chooses for `plan` and `run`, typed. Phases still read a dict on PhaseEnv.options (a
phase takes what it knows of it); `phase_options()` is the one place that dict is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_WRITE_BUDGET = "3000/150"


@dataclass(frozen=True)
class PlanOptions:
    """Planning options: they shape the steps, so a stored plan records them (`planning()`) and `run`
    re-derives with the same ones."""

    scan_age: int = 0  # files, permissions: reuse drive scans made within SECONDS
    propagate_deletes: bool = False  # files: delete in the target what was deleted at source
    # teams: the cut-over pass: complete migration mode on every channel (Teams takes no imports after it)
    complete: bool = False

    def planning(self) -> dict[str, Any]:
        """What the stored plan records (a re-derivation must use the same)."""
        return {"propagate_deletes": self.propagate_deletes, "complete": self.complete}


@dataclass(frozen=True)
class RunOptions:
    plan: PlanOptions = field(default_factory=PlanOptions)
    dry_run: bool = False  # show the plan; change nothing
    replan: bool = False  # plan and apply at once, without a separate review
    plan_number: int | None = None  # the stored plan to apply (default: the latest)
    concurrency: int = 4
    write_budget: str = DEFAULT_WRITE_BUDGET  # the trust tenant's N/SECONDS
    sharepoint_budget: str = "auto"  # files, permissions: SharePoint resource units N/SECONDS, or auto
    licence_wait: float = 300.0  # licences.mode group: seconds to wait for Entra to license members
    lag_tolerance: float = 4.0  # seconds a look-up keeps asking before deciding a write was lost
    dns_wait: int = 60  # domain: seconds to keep polling verification
    removal_wait: int = 60  # domain: seconds one run waits for the legacy tenant's removal, then checkpoints
    skip_preflight: bool = False
    # files: Migration API packages to give up (their steps fail, staging cleaned, the next run re-plans)
    abandon_packages: tuple[str, ...] = ()
    say: Callable[[str], None] | None = None  # domain: what the operator must do now (publish a record)


def phase_options(
    plan: PlanOptions | None = None,
    run: RunOptions | None = None,
    *,
    dns_wait: int | None = None,
    removal_wait: int | None = None,
) -> dict[str, Any]:
    """The dict phases read from PhaseEnv.options, from the typed options of the command at hand."""
    options: dict[str, Any] = {}
    if run is not None:
        plan = run.plan
        options = {
            "write_budget": run.write_budget,
            "sharepoint_budget": run.sharepoint_budget,
            "dns_wait": run.dns_wait,
            "removal_wait": run.removal_wait,
            "say": run.say,
            "lag_tolerance": run.lag_tolerance,
            "licence_wait": run.licence_wait,
            "abandon_packages": run.abandon_packages,
        }
    if plan is not None:
        options.update(
            scan_age=plan.scan_age,
            propagate_deletes=plan.propagate_deletes,
            complete=plan.complete,
        )
    if dns_wait is not None:
        options["dns_wait"] = dns_wait
    if removal_wait is not None:
        options["removal_wait"] = removal_wait
    return options
