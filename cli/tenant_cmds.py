"""`trustfold preflight`, `trustfold bootstrap`, `trustfold provision-onedrive`: thin wrappers over
migrations.readiness.preflight, migrations.readiness.bootstrap and migrations.readiness.onedrive."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from cli.context import AppContext, pass_app
from cli.errors import OperationFailed

if TYPE_CHECKING:
    from migrations.readiness.preflight import Report


def _academies(app: AppContext, codes: tuple[str, ...]) -> tuple[Any, ...]:
    trust = app.trust()
    return tuple(trust.academy(c) for c in codes) if codes else trust.academies


async def _preflight(
    app: AppContext,
    academies: tuple[Any, ...],
    phases: tuple[str, ...] | None = None,
    *,
    onedrives: bool = True,
) -> Report:
    from migrations.graph.client import open_connections
    from migrations.readiness.preflight import PHASES, run_preflight

    trust = app.trust()
    async with open_connections(trust, app.graph_url, academies=()) as conns:
        if app.state_path.exists():
            return await run_preflight(
                trust, conns, app.store(), academies, phases or PHASES, onedrives=onedrives
            )
        # Nothing discovered yet: check against an empty store, leaving no state file behind.
        import tempfile
        from pathlib import Path

        from migrations.core.store import StateStore

        with tempfile.TemporaryDirectory() as tmp:
            store = StateStore.open(Path(tmp) / "empty.db")
            try:
                return await run_preflight(trust, conns, store, academies, phases or PHASES)
            finally:
                store.close()


def print_report(report: Report, as_json: bool) -> None:
    from migrations.safety.redaction import redact

    if as_json:
        click.echo(json.dumps({"ok": report.ok, "checks": [c.as_dict() for c in report.checks]}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("check", "tenant", "result", "fix"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        table.add_row(
            c.check,
            c.tenant,
            ("ok: " if c.ok else "BLOCKS: ") + redact(c.result),
            redact(c.fix),
            style=None if c.ok else "red",
        )
    width = None if sys.stdout.isatty() else 200
    Console(highlight=False, markup=False, width=width).print(table)
    if report.ok:
        click.echo("preflight: ok")


@click.command()
@click.argument("academies", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for CI.")
@click.option(
    "--advisory", is_flag=True, help="Show what blocks but exit 0 (the demo's first look, before bootstrap)."
)
@pass_app
def preflight(app: AppContext, academies: tuple[str, ...], as_json: bool, advisory: bool) -> None:
    """Check, writing nothing, that the trust tenant and each ACADEMY's legacy tenant (default: every
    academy) are ready: credentials, granted permissions, the provenance extension property, licence seats,
    target sites, OneDrives and the SharePoint certificate. Exit 1 when anything blocks."""
    chosen = _academies(app, academies)
    report = asyncio.run(_preflight(app, chosen))
    print_report(report, as_json)  # reads only: no tenant changed, so nothing to audit
    if app.state_path.exists():
        from migrations.readiness.preflight import record

        record(app.store(), app.trust(), report)  # for the report's readiness section
    blocking = report.blocking()
    if blocking and not advisory:
        names = ", ".join(sorted({f"{c.check} ({c.tenant})" for c in blocking}))
        raise OperationFailed(f"preflight: {len(blocking)} checks block a run: {names}")


@click.command()
@click.option("--yes", is_flag=True, help="Register without asking.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@pass_app
def bootstrap(app: AppContext, yes: bool, as_json: bool) -> None:
    """One-off set-up of the trust tenant (idempotent, journaled): register the provenance extension
    property on the trust's app; print the admin-consent URL for any permission still missing."""
    from migrations.graph.client import open_connections
    from migrations.readiness.bootstrap import bootstrap as do_bootstrap
    from migrations.readiness.bootstrap import registered

    trust = app.trust()

    async def go() -> Any:
        # Its writes stay in the tenant's write window after it exits: the next run starts from them.
        async with open_connections(trust, app.graph_url, window_dir=app.state_path.parent) as conns:
            report = await _preflight_in(conns)
            question = (
                f"register extension property trustfoldSource on app {trust.tenant.credential.client_id} "
                f"in tenant {trust.tenant.id}?"
            )
            if not yes and await registered(conns, trust) is None and not click.confirm(question):
                raise OperationFailed("bootstrap cancelled; nothing changed")
            return await do_bootstrap(trust, conns, app.store(), report)

    async def _preflight_in(conns: Any) -> Report:
        from migrations.readiness.preflight import run_preflight

        return await run_preflight(trust, conns, app.store(), trust.academies, onedrives=False)

    result = asyncio.run(go())
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif result.registered_now:
        click.echo(f"registered {result.extension}")
    else:
        click.echo(f"{result.extension} already registered; nothing changed")
    if not as_json:
        for who, names in result.request.items():
            click.echo(f"app registration ({who}) requests application permissions: {', '.join(names)}")
    for c in [] if as_json else result.consent:
        click.echo(f"consent needed in {c['tenant']}: {c['missing']}\n  admin consent: {c['url']}")
    user, host = AppContext.operator()
    app.store().audit(
        operator=user, host=host, command="bootstrap", outcome="succeeded", detail=result.as_dict()
    )


@click.command("provision-onedrive")
@click.argument("academy")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86_400),
    default=600.0,
    show_default=True,
    help="Seconds to wait for SharePoint to create the OneDrives.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@pass_app
def provision_onedrive(app: AppContext, academy: str, timeout: float, as_json: bool) -> None:
    """Request OneDrives for ACADEMY's mapped, licensed users (at most 200 a call) and wait for them; a killed
    wait resumes. Exit 1 when some are still being created at the timeout."""
    result = run_provisioning(app, academy, timeout=timeout, quiet=as_json)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    if result.waiting:
        raise OperationFailed(
            f"{len(result.waiting)} OneDrives still being created after {timeout:g} s "
            f"(e.g. {', '.join(result.waiting[:3])}); "
            f"run `trustfold provision-onedrive {academy}` again later"
        )


def run_provisioning(app: AppContext, academy: str, *, timeout: float = 600.0, quiet: bool = False) -> Any:
    from migrations.graph.client import open_connections
    from migrations.readiness.onedrive import ProvisioningError, provision

    trust = app.trust()
    a = trust.academy(academy)

    async def go(progress: Any) -> Any:
        async with open_connections(trust, app.graph_url, window_dir=app.state_path.parent) as conns:
            return await provision(trust, conns, app.store(), a, timeout=timeout, progress=progress)

    try:
        if quiet or not sys.stderr.isatty():
            result = asyncio.run(go(None))
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            ) as bar:
                task = bar.add_task(f"{academy} OneDrives", total=None)
                result = asyncio.run(go(lambda d, t: bar.update(task, completed=d, total=t)))
    except ProvisioningError as exc:
        raise OperationFailed(str(exc)) from None
    if not quiet:
        click.echo(
            f"{academy}: {result.ready} OneDrives ready, {len(result.waiting)} waiting, "
            f"{result.requested} requested in {result.calls} calls"
            + (f", {result.not_created} users not yet created" if result.not_created else "")
        )
    user, host = AppContext.operator()
    app.store().audit(
        operator=user,
        host=host,
        command="provision-onedrive",
        academy=academy,
        outcome="succeeded" if not result.waiting else "waiting",
        detail=result.as_dict(),
    )
    return result


def gate(app: AppContext, academy: str, phase: str, skip: bool) -> None:
    """Before `run --phase PHASE`: provision OneDrives for files, then refuse to start when a preflight check
    for this academy and phase blocks (unless skipped)."""
    if skip:
        return
    a = app.trust().academy(academy)
    provisioning: OperationFailed | None = None
    ready = False
    if phase == "files" and a.files.enabled and a.files.onedrive:
        try:
            ready = not run_provisioning(app, academy, quiet=True).waiting
        except OperationFailed as exc:
            provisioning = exc  # preflight below names the cause and its fix (credential, permission)
    from migrations.readiness.run_gate import blocking, gated_phases, refusal

    # Provisioning just looked at every mapped user's OneDrive: preflight need not look again.
    report = asyncio.run(_preflight(app, (a,), gated_phases(phase), onedrives=not ready))
    blocked = blocking(report, phase)
    if provisioning is not None and not blocked:
        raise provisioning
    if blocked:
        raise OperationFailed(refusal(academy, phase, blocked))
