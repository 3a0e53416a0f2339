"""`trustfold infra check`: the Pulumi program under mocks and the baseline rules, offline, for CI."""

from __future__ import annotations

from collections import defaultdict

import click

from cli.context import AppContext, pass_app
from cli.errors import OperationFailed
from cli.render import View, json_option


@click.group()
def infra() -> None:
    """The trust cloud as code (Pulumi program in infra/)."""


@infra.command()
@json_option('{"resources": [...], "violations": [...]}')
@pass_app
def check(app: AppContext, view: View) -> None:
    """Declare every resource under Pulumi mocks (no CLI, credentials or network) and apply the baseline.

    Exit 1 on a mandatory violation, 2 on bad config.
    """
    trust = app.trust()
    from infra.check import run_check

    result = run_check(trust)
    if not view.data(result.to_json(), sort_keys=True, default=str):
        per: dict[str, int] = defaultdict(int)
        for r in result.resources:
            per[r.academy or "platform"] += 1
        click.echo(f"{len(result.resources)} resources declared for {trust.name}:")
        for key in ["platform", *(a.code for a in trust.academies)]:
            click.echo(f"  {key:<12} {per.get(key, 0):>4}")
        for v in result.violations:
            level = "MANDATORY" if v.mandatory else "advisory"
            click.echo(f"{level}: {v.policy}: {v.urn}: {v.message}", err=True)
        if not result.violations:
            click.echo("baseline: no violations")
    if result.mandatory_violations:
        raise OperationFailed(f"{len(result.mandatory_violations)} mandatory baseline violation(s)")
