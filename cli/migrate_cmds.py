"""`trustfold plan|run|verify|rollback|status`: parse the options, call migrations.app, render the result
through cli.render."""

from __future__ import annotations

from typing import Any

import click

from cli.context import AppContext, pass_app
from cli.errors import OperationFailed
from cli.render import View, json_option
from migrations import app as migrate
from migrations.core.options import PlanOptions, RunOptions

PHASE_HELP = (
    "users, groups, memberships, identity (the three as one graph), files, permissions, teams or domain"
)


def _phase_names(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from migrations.core.registry import load_phases

    known = load_phases()
    values = value if isinstance(value, tuple) else (value,)
    expanded: list[str] = []
    for v in values:
        if v == "all" and param.name == "phases":
            expanded += [
                p for p in ("users", "groups", "memberships", "files", "permissions", "teams") if p in known
            ]
        elif v == "identity" and param.name == "phases":
            expanded += ["users", "groups", "memberships"]  # rolled back phase by phase, latest first
        elif v not in known:
            raise click.BadParameter(f"'{v}' is not a phase (choose from {', '.join(sorted(known))})")
        else:
            expanded.append(v)
    return tuple(expanded) if isinstance(value, tuple) else expanded[0]


def _check_run_options(write_budget: str, sharepoint_budget: str, replan: bool, plan: int | None) -> None:
    """Exit 2 on options that cannot go together or do not parse, before anything is opened."""
    from migrations.graph.client import parse_budget

    for option, text in (("--write-budget", write_budget), ("--sharepoint-budget", sharepoint_budget)):
        if text == "auto" and option == "--sharepoint-budget":
            continue
        try:
            parse_budget(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    if replan and plan is not None:
        raise click.UsageError("--plan and --replan exclude each other: apply a stored plan, or plan anew")


def _exit_on(problem: str | None) -> None:
    if problem:
        raise OperationFailed(problem)


@click.command()
@click.argument("academy")
@click.option("--phase", required=True, callback=_phase_names, help=PHASE_HELP)
@json_option("The plan as JSON (for CI).")
@click.option("--limit", default=50, show_default=True, help="Steps listed in the readable output.")
@click.option(
    "--scan-age",
    default=0,
    show_default=True,
    type=click.IntRange(0, 86_400),
    help="files, permissions: reuse drive scans made within SECONDS (each drive read costs SharePoint "
    "budget).",
)
@click.option(
    "--propagate-deletes", is_flag=True, help="files: delete in the target what was deleted at source."
)
@click.option(
    "--complete",
    "complete",
    is_flag=True,
    help="teams: the cut-over pass: import what is new, then complete migration mode on every channel "
    "(Teams takes no more imports after it; a planning option).",
)
@pass_app
def plan(
    app: AppContext,
    academy: str,
    phase: str,
    view: View,
    limit: int,
    scan_age: int,
    propagate_deletes: bool,
    complete: bool,
) -> None:
    """Compute, store (numbered) and print the steps of PHASE for ACADEMY; `run` applies this plan. Changes
    nothing in any tenant."""
    view.plan(migrate.plan(app, academy, phase, PlanOptions(scan_age, propagate_deletes, complete)), limit)


@click.command()
@click.argument("academy")
@click.option("--phase", required=True, callback=_phase_names, help=PHASE_HELP)
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests in flight per tenant.",
)
@click.option(
    "--write-budget",
    default="3000/150",
    show_default=True,
    help="The trust tenant's write budget N/SECONDS the limiter keeps within.",
)
@json_option("Result as JSON.")
@click.option(
    "--scan-age",
    default=0,
    show_default=True,
    type=click.IntRange(0, 86_400),
    help="files, permissions: reuse drive scans made within SECONDS, e.g. by the plan just reviewed "
    "(default: read every change now).",
)
@click.option(
    "--sharepoint-budget",
    default="auto",
    show_default=True,
    help="files: SharePoint resource units N/SECONDS per tenant to keep within (auto: Microsoft's "
    "published budget for the tenant's licence count).",
)
@click.option(
    "--propagate-deletes",
    is_flag=True,
    help="files, with --replan: delete in the target what was deleted at source (a planning option).",
)
@click.option(
    "--complete",
    "complete",
    is_flag=True,
    help="teams: the cut-over pass: import what is new, then complete migration mode on every channel "
    "(Teams takes no more imports after it; with --replan, or as the reviewed plan was made).",
)
@click.option(
    "--plan",
    "plan_number",
    type=click.IntRange(1),
    help="Apply this stored plan (default: the latest plan for ACADEMY and PHASE).",
)
@click.option(
    "--replan", is_flag=True, help="Plan and apply at once, without a separate review (CI, rehearsals)."
)
@click.option(
    "--licence-wait",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, 86_400),
    help="licences.mode group: SECONDS to wait for Entra to license new group members before reporting.",
)
@click.option(
    "--lag-tolerance",
    default=4.0,
    show_default=True,
    type=click.FloatRange(0, 120),
    help="SECONDS a look-up keeps asking before deciding a write in doubt was lost (replication lag).",
)
@click.option(
    "--dns-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds to keep polling verification once the TXT record should be published.",
)
@click.option(
    "--removal-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds this run waits for the legacy tenant to finish removing the domain (Microsoft: up "
    "to 24 hours) before it stops at waiting-for-removal; run again later.",
)
@click.option("--skip-preflight", is_flag=True, help="Start even when preflight checks for the phase fail.")
@click.option(
    "--abandon-package",
    "abandon_packages",
    multiple=True,
    metavar="ID",
    help="files: give up a submitted Migration API package (its files fail now and are planned again).",
)
@pass_app
def run(app: AppContext, academy: str, phase: str, view: View, **given: Any) -> None:
    """Apply the reviewed plan of PHASE for ACADEMY (from `trustfold plan`) once the tenants and mapping still
    give the same steps (exit 1 with the differences if not). Journaled: run again after any interruption."""
    outcome = migrate.run(app, academy, phase, _run_options(view, **given), progress=view.progress)
    view.run(outcome)
    _exit_on(outcome.problem())


def _run_options(
    view: View,
    *,
    dry_run: bool,
    concurrency: int,
    write_budget: str,
    scan_age: int,
    sharepoint_budget: str,
    propagate_deletes: bool,
    complete: bool,
    dns_wait: int,
    removal_wait: int,
    plan_number: int | None,
    replan: bool,
    licence_wait: float,
    lag_tolerance: float,
    skip_preflight: bool,
    abandon_packages: tuple[str, ...],
) -> RunOptions:
    """`run`'s options as the application layer takes them (each checked as an argument first)."""
    _check_run_options(write_budget, sharepoint_budget, replan, plan_number)
    return RunOptions(
        PlanOptions(scan_age, propagate_deletes, complete),
        dry_run=dry_run,
        replan=replan,
        plan_number=plan_number,
        concurrency=concurrency,
        write_budget=write_budget,
        sharepoint_budget=sharepoint_budget,
        licence_wait=licence_wait,
        lag_tolerance=lag_tolerance,
        dns_wait=dns_wait,
        removal_wait=removal_wait,
        skip_preflight=skip_preflight,
        abandon_packages=abandon_packages,
        say=view.say,
    )


@click.command()
@click.argument("academy")
@json_option("Differences as JSON.")
@pass_app
def verify(app: AppContext, academy: str, view: View) -> None:
    """Check the trust tenant against the mapping: users, licences, groups, members (and files). Exit 1 on
    differences."""
    verified = migrate.verify(app, academy)
    view.verify(verified)
    _exit_on(verified.problem())


@click.command()
@click.argument("academy")
@click.option(
    "--phase",
    "phases",
    required=True,
    multiple=True,
    callback=_phase_names,
    help=f"{PHASE_HELP}, or all; repeatable. Undone latest phase first.",
)
@click.option("--dry-run", is_flag=True, help="Print the rollback plan only.")
@click.option("--yes", is_flag=True, help="Carry the rollback plan out.")
@click.option("--purge", is_flag=True, help="Delete users and Microsoft 365 groups for good (no 30-day bin).")
@json_option()
@click.option(
    "--dns-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds to keep polling the legacy tenant's verification once its TXT record is back.",
)
@click.option(
    "--removal-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds this run waits for the legacy tenant to finish removing the domain (Microsoft: up "
    "to 24 hours) before it stops at waiting-for-removal; run again later.",
)
@pass_app
def rollback(
    app: AppContext,
    academy: str,
    phases: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    purge: bool,
    view: View,
    dns_wait: int,
    removal_wait: int,
) -> None:
    """Undo exactly what trustfold created in PHASE(s), from the journal; objects changed since are kept and
    reported."""
    done = migrate.rollback(
        app,
        academy,
        phases,
        carry_out=yes and not dry_run,
        purge=purge,
        dns_wait=dns_wait,
        removal_wait=removal_wait,
    )
    view.rollback(done)
    _exit_on(done.problem())


@click.command()
@click.argument("academy", required=False)
@json_option()
@pass_app
def status(app: AppContext, academy: str | None, view: View) -> None:
    """Per academy and phase: status, progress, last run, failures."""
    view.status(migrate.status(app, academy))
