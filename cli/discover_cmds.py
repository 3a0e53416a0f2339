"""`trustfold discover` and `trustfold mapping export|import`: parse, call migrations.app, render."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cli.context import AppContext, pass_app
from cli.render import View, json_option


@click.command()
@click.argument("academy")
@click.option("--full", is_flag=True, help="Ignore stored delta links and read everything again.")
@json_option()
@pass_app
def discover(app: AppContext, academy: str, full: bool, view: View) -> None:
    """Inventory ACADEMY's legacy tenant (delta: a second run reads only changes) and map it to the trust."""
    from migrations import app as migrate

    app.trust().academy(academy)
    view.discovered(academy, migrate.discover(app, academy, full=full))


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
    from migrations import app as migrate

    text = migrate.export_mapping(app, academy)
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
    from migrations import app as migrate

    counts = migrate.import_mapping(app, academy, file)
    click.echo(
        f"{counts['imported']} mapping line(s) stored for {academy}; run `trustfold plan` to see the effect"
    )
