"""`trustfold sandbox serve`: the local Microsoft Graph stand-in on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.context import AppContext, pass_app


def _parsed(parse: Callable[..., Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Turn a sandbox.settings parser's ValueError into a one-line usage error (exit 2)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _budget(what: str) -> Callable[[str], Any]:
    from sandbox.settings import parse_budget

    return lambda text: parse_budget(text, what)


def _lazy(name: str) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        from sandbox import settings

        return getattr(settings, name)(value)

    return call


def _tenancy_roles(value: Any) -> Any:
    from sandbox.tenancy import parse_roles

    return parse_roles(value)


@click.group()
def sandbox() -> None:
    """Run the local Microsoft Graph stand-in for rehearsals and tests."""


@sandbox.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="TCP port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option(
    "--state",
    "state_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Persist tenants to this file (created if missing) so other processes and restarts share them.",
)
@click.option(
    "--size",
    type=int,
    default=None,
    callback=_parsed(_lazy("parse_size")),
    help="Users per academy (20..50000; default 250).",
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Generator seed: same seed, same academies."
)
@click.option(
    "--write-budget",
    default=None,
    callback=_parsed(lambda v: _budget("--write-budget")(v)),
    help="Identity writes per window, N/SECONDS (default 3000/150, Microsoft's).",
)
@click.option(
    "--identity-ru",
    default=None,
    callback=_parsed(lambda v: _budget("--identity-ru")(v)),
    help="Identity resource units per window, N/SECONDS (default by tenant size per 10 s).",
)
@click.option(
    "--sharepoint-ru",
    default=None,
    callback=_parsed(lambda v: _budget("--sharepoint-ru")(v)),
    help="SharePoint resource units per window, N/SECONDS (default by licence count per minute).",
)
@click.option(
    "--latency-ms",
    type=float,
    default=0.0,
    callback=_parsed(_lazy("parse_latency")),
    help="Added to every Graph request.",
)
@click.option(
    "--bandwidth-mbps",
    type=float,
    default=None,
    callback=_parsed(_lazy("parse_bandwidth")),
    help="Cap on response bodies.",
)
@click.option(
    "--faults",
    default=None,
    callback=_parsed(_lazy("parse_faults")),
    help="Fault rates, e.g. 429=0.10,503=0.02,504=0.01,drop=0.01,slow=0.05.",
)
@click.option(
    "--replication-lag-ms",
    type=click.FloatRange(0, 600_000),
    default=0.0,
    help="Eventual consistency: new objects answer 404 by id for this long (default 0).",
)
@click.option(
    "--seats",
    default=None,
    callback=_parsed(_lazy("parse_seats")),
    help="Licence seats over the generated ones, [TENANT-ID:]SKU=N,... (prepaidUnits.enabled).",
)
@click.option("--no-throttle", is_flag=True, help="Switch all budgets off (not Microsoft's behaviour).")
@click.option(
    "--onedrive-provision-delay",
    "onedrive_delay",
    type=click.FloatRange(0, 86_400),
    default=None,
    help="Seconds between an accepted OneDrive provisioning request and the drive existing (default 3).",
)
@click.option(
    "--group-licensing-delay",
    "licensing_delay",
    type=click.FloatRange(0, 86_400),
    default=None,
    help="Seconds before Entra's background processing licenses a licensed group's new members (default 2).",
)
@click.option(
    "--domain-removal",
    "domain_removal",
    type=click.FloatRange(0, 86_400),
    default=None,
    help="Seconds an accepted domain removal takes to finish (Microsoft: up to 24 hours; default 5).",
)
@click.option(
    "--withhold-roles",
    default=None,
    callback=_parsed(_tenancy_roles),
    help="Application roles not consented in any tenant, e.g. "
    "User.ReadWrite.All,SharePoint:Sites.FullControl.All.",
)
@pass_app
def serve(
    app: AppContext,
    port: int,
    host: str,
    state_file: Path | None,
    size: int | None,
    seed: int,
    write_budget: Any,
    identity_ru: Any,
    sharepoint_ru: Any,
    latency_ms: float,
    bandwidth_mbps: float | None,
    faults: Any,
    replication_lag_ms: float,
    seats: Any,
    no_throttle: bool,
    onedrive_delay: float | None,
    licensing_delay: float | None,
    domain_removal: float | None,
    withhold_roles: tuple[str, ...] | None,
) -> None:
    """Serve Graph v1.0 for every tenant in config/ at http://HOST:PORT/v1.0 until interrupted."""
    import ipaddress

    import uvicorn

    from sandbox.app import create_app
    from sandbox.bootstrap import make_world
    from sandbox.settings import DEFAULT_SIZE, Faults, Settings
    from sandbox.world import StateFileError

    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise click.BadParameter(
                "the sandbox listens on loopback only (127.0.0.1 or ::1)", param_hint="--host"
            )
    except ValueError:
        if host != "localhost":
            raise click.BadParameter(f"{host!r} is not an IP address", param_hint="--host") from None
    changes: dict[str, Any] = {
        "seed": seed,
        "size": size or DEFAULT_SIZE,
        "latency_ms": latency_ms,
        "bandwidth_mbps": bandwidth_mbps,
        "faults": faults or Faults(),
        "identity_ru": identity_ru,
        "sharepoint_ru": sharepoint_ru,
        "throttling": not no_throttle,
        "replication_lag_ms": replication_lag_ms,
        "withhold_roles": withhold_roles or (),
        "seats": seats or (),
    }
    if onedrive_delay is not None:
        changes["onedrive_provision_delay_s"] = onedrive_delay
    if licensing_delay is not None:
        changes["group_licensing_delay_s"] = licensing_delay
    if domain_removal is not None:
        changes["domain_removal_s"] = domain_removal
    if write_budget is not None:
        changes["write_budget"] = write_budget
    settings = Settings(**changes)
    try:
        world = make_world(app.config_dir, settings, state_file)
    except StateFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from None
    except ValueError as exc:  # seats naming a tenant or SKU the sandbox does not hold
        raise click.BadParameter(str(exc), param_hint="--seats") from None
    if size is not None and state_file is not None and world.settings.size != size:
        click.echo(f"note: {state_file} holds size {world.settings.size}; --size {size} ignored", err=True)
    click.echo(
        f"sandbox: {len(world.tenants)} tenants, size {world.settings.size}, seed {world.settings.seed}"
    )
    for t in world.tenant_list():
        click.echo(f"  {t['role']:<6} {t['academy'] or '-':<10} {t['id']}  {', '.join(t['domains'])}")
    click.echo(
        f"Graph at http://{host}:{port}/v1.0 ; admin at http://{host}:{port}/sandbox/ ; Ctrl+C to stop"
    )
    uvicorn.run(create_app(world), host=host, port=port, log_level="warning", access_log=False)
