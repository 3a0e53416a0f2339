"""`trustfold discover` and `trustfold mapping export|import`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.context import AppContext, pass_app
from cli.terminal import echo


async def _discover(app: AppContext, code: str, full: bool) -> tuple[Any, dict[str, int]]:
    from migrations.graph.client import open_connections
    from migrations.graph.concurrently import both
    from migrations.identity.discovery import discover as run_discovery
    from migrations.identity.mapping import compute_mapping, read_target

    trust = app.trust()
    academy = trust.academy(code)
    store = app.store()
    async with open_connections(
        trust, app.graph_url, academies=(code,), window_dir=app.state_path.parent
    ) as conns:
        result, target = await both(
            run_discovery(trust, academy, store, conns.source(code), full=full),
            read_target(trust, conns.target),
        )
        counts = compute_mapping(trust, academy, store, target)
        if academy.files.enabled:
            counts.update(await _discover_files(app, academy, store, conns))
            status = {s["phase"]: s for s in store.phase_statuses(code)}.get("discover")
            if status:
                result.findings = status["detail"].get("findings", result.findings)
    return result, counts


async def _discover_files(app: AppContext, academy: Any, store: Any, conns: Any) -> dict[str, int]:
    """Scan the academy's drives (delta) so file problems are findings before anything is copied."""
    from migrations.core.registry import PhaseEnv, load_phases

    files = load_phases().get("files")
    if files is None:
        return {}
    env = PhaseEnv(
        app.trust(), academy, store, conns, AppContext.operator()[0], app.state_path.parent / "runs"
    )
    from cli.errors import OperationFailed
    from migrations.core.errors import PlanningError

    try:
        totals = await files.discover(env)
    except PlanningError as exc:
        raise OperationFailed(f"users and groups discovered; drives not scanned: {exc}") from None
    if totals is None:
        return {}
    return {"drives": totals["drives"], "drive_items": totals["items"]}


@click.command()
@click.argument("academy")
@click.option("--full", is_flag=True, help="Ignore stored delta links and read everything again.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def discover(app: AppContext, academy: str, full: bool, as_json: bool) -> None:
    """Inventory ACADEMY's legacy tenant (delta: a second run reads only changes) and map it to the trust."""
    app.trust().academy(academy)
    result, counts = asyncio.run(_discover(app, academy, full))
    user, host = AppContext.operator()
    app.store().audit(
        operator=user,
        host=host,
        command="discover",
        outcome="ok",
        academy=academy,
        phase="discover",
        detail={"counts": result.counts, "changes": result.changes},
    )
    if as_json:
        click.echo(json.dumps({**result.to_json(), "mapping": counts}, indent=2, sort_keys=True))
        return
    c = result.counts
    kind = "full read" if result.full else "changes only"
    click.echo(
        f"{academy} ({kind}): {c['users']} users ({c['staff']} staff, {c['pupils']} pupils, {c['guests']} "
        f"guests, {c['disabled']} disabled), {c['groups']} groups, {c['memberships']} memberships, "
        f"{c['owners']} owners"
    )
    click.echo("mapping: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items())))
    by_kind: dict[str, list[dict[str, str]]] = {}
    for f in result.findings:
        by_kind.setdefault(f["kind"], []).append(f)
    for kind_name, items in sorted(by_kind.items()):
        echo(f"  {kind_name}: {len(items)} - {items[0]['handling']}")
        for f in items[:3]:
            echo(f"      {f['display']}: {f['message']}")


@click.group()
def mapping() -> None:
    """Export the computed mapping for review, or import a reviewed one."""


@mapping.command("export")
@click.argument("academy")
@click.option("--out", type=click.Path(path_type=Path), help="Write to FILE instead of standard output.")
@pass_app
def export_cmd(app: AppContext, academy: str, out: Path | None) -> None:
    """CSV: kind, source_id, source_upn, display_name, target_upn, action, note.

    A cell that a spreadsheet would run as a formula, or that holds control characters, starts with ' (import
    removes it again)."""
    from migrations.identity.mapping import export_csv

    app.trust().academy(academy)
    text = export_csv(app.store(readonly=True), academy)
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"mapping for {academy} written to {out}", err=True)
    else:
        sys.stdout.write(text)


@mapping.command("import")
@click.argument("academy")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_app
def import_cmd(app: AppContext, academy: str, file: Path) -> None:
    """Validate an edited mapping (exit 2 naming line and column) and store it for the next plan."""
    from migrations.graph.client import open_connections
    from migrations.identity.mapping import import_csv, read_target

    trust = app.trust()
    a = trust.academy(academy)
    store = app.store()

    async def go() -> dict[str, int]:
        async with open_connections(trust, app.graph_url) as conns:
            target = await read_target(trust, conns.target)
        return import_csv(trust, a, store, file, target)

    counts = asyncio.run(go())
    user, host = AppContext.operator()
    store.audit(
        operator=user,
        host=host,
        command="mapping import",
        outcome="ok",
        academy=academy,
        detail={"file": str(file), **counts},
    )
    click.echo(
        f"{counts['imported']} mapping line(s) stored for {academy}; run `trustfold plan` to see the effect"
    )
