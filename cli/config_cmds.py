"""`trustfold config validate|show` and `trustfold academies`."""

from __future__ import annotations

import click

from cli.context import AppContext, pass_app
from cli.render import View, json_option


@click.group()
def config() -> None:
    """Validate and show the trust's declaration in config/."""


@config.command()
@pass_app
def validate(app: AppContext) -> None:
    """Check every file in config/; exit 2 naming file, line and field on the first problem."""
    trust = app.trust()
    click.echo(
        f"config OK: {trust.name}, {len(trust.academies)} academies in {len(trust.waves())} waves "
        f"({app.config_dir})"
    )


@config.command()
@json_option("Machine-readable output.")
@pass_app
def show(app: AppContext, view: View) -> None:
    """Print the validated declaration, with the names trustfold derives from it."""
    trust = app.trust()
    names = trust.names
    data = trust.public_dict()
    data["derived"] = {
        "platform": {k: v for k, (_, v) in names.platform_azure_names().items()},
        "academies": {
            a.code: {
                "upn_domain": names.upn_domain(a),
                **{k: v for k, (_, v) in names.academy_azure_names(a).items()},
            }
            for a in trust.academies
        },
    }
    if view.data(data, sort_keys=True):
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = trust.settings
    console.print(
        f"[bold]{s.name}[/] ({s.code}) - tenant {s.tenant.id} - domains {', '.join(s.tenant.domains)}"
    )
    console.print(f"Azure {s.azure.location}, subscription {s.azure.subscription_id}, hub {s.azure.hub_cidr}")
    table = Table(
        "code", "name", "kind", "wave", "legacy tenant", "cidr", "resource group", "storage account"
    )
    for a in trust.academies:
        d = data["derived"]["academies"][a.code]
        table.add_row(
            a.code,
            a.name,
            a.kind.value,
            str(a.wave),
            a.legacy_tenant.id,
            str(a.network.cidr),
            d["resource_group"],
            d["storage_account"],
        )
    console.print(table)


@click.command()
@json_option("A JSON list of {code, name, wave, tenant_id, ...}.")
@pass_app
def academies(app: AppContext, view: View) -> None:
    """List the academies in wave order."""
    trust = app.trust()
    rows = [
        {
            "code": a.code,
            "name": a.name,
            "kind": a.kind.value,
            "urn": a.urn,
            "wave": a.wave,
            "tenant_id": a.legacy_tenant.id,
            "domains": list(a.legacy_tenant.domains),
            "cidr": str(a.network.cidr),
        }
        for a in trust.academies
    ]
    if view.data(rows):
        return
    for r in rows:
        click.echo(
            f"wave {r['wave']}  {r['code']:<12} {r['name']:<32} {r['kind']:<10} tenant {r['tenant_id']}"
        )
