"""`trustfold preflight`, `trustfold bootstrap`, `trustfold provision-onedrive`: thin wrappers over
migrations.app (preflight, OneDrives) and migrations.readiness.bootstrap."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

from cli.context import AppContext, pass_app
from cli.errors import OperationFailed
from cli.render import View, json_option

if TYPE_CHECKING:
    from migrations.readiness.preflight import Report


@click.command()
@click.argument("academies", nargs=-1)
@json_option("One JSON object, for CI.")
@click.option(
    "--advisory", is_flag=True, help="Show what blocks but exit 0 (the demo's first look, before bootstrap)."
)
@pass_app
def preflight(app: AppContext, academies: tuple[str, ...], view: View, advisory: bool) -> None:
    """Check, writing nothing, that the trust tenant and each ACADEMY's legacy tenant (default: every
    academy) are ready: credentials, granted permissions, the provenance extension property, licence seats,
    target sites, OneDrives and the SharePoint certificate. Exit 1 when anything blocks."""
    from migrations import app as migrate

    report = migrate.preflight(app, academies)
    view.preflight(report)  # reads only: no tenant changed, so nothing to audit
    blocking = report.blocking()
    if blocking and not advisory:
        names = ", ".join(sorted({f"{c.check} ({c.tenant})" for c in blocking}))
        raise OperationFailed(f"preflight: {len(blocking)} checks block a run: {names}")


@click.command()
@click.option("--yes", is_flag=True, help="Register without asking.")
@json_option("One JSON object, for scripts.")
@pass_app
def bootstrap(app: AppContext, yes: bool, view: View) -> None:
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
    view.bootstrap(result)
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
@click.option(
    "--no-wait",
    is_flag=True,
    help="Ask and return at once (e.g. right after the users phase): SharePoint creates the OneDrives while "
    "other phases run; `run --phase files` waits for them.",
)
@json_option("One JSON object, for scripts.")
@pass_app
def provision_onedrive(app: AppContext, academy: str, timeout: float, no_wait: bool, view: View) -> None:
    """Request OneDrives for ACADEMY's mapped, licensed users (at most 200 a call) and wait for them; a killed
    wait resumes. Exit 1 when some are still being created at the timeout (unless --no-wait)."""
    from migrations import app as migrate

    if no_wait:
        timeout = 0.0
    result = migrate.provision_onedrive(app, academy, timeout=timeout, progress=view.progress)
    view.provisioned(academy, result)
    if result.waiting and no_wait:
        if view.say is not None:
            view.say(
                f"{len(result.waiting)} OneDrives being created by SharePoint; `trustfold run {academy} "
                "--phase files` waits for them"
            )
    elif result.waiting:
        raise OperationFailed(
            f"{len(result.waiting)} OneDrives still being created after {timeout:g} s "
            f"(e.g. {', '.join(result.waiting[:3])}); "
            f"run `trustfold provision-onedrive {academy}` again later"
        )
