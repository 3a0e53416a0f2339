"""The `trustfold` command: global options, lazy subcommands, and one place that maps errors to exit codes."""

from __future__ import annotations

import logging
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click

from cli.context import AppContext
from cli.errors import EXIT_BAD_INPUT, EXIT_FAILED
from cli.lazy import LazyGroup

COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("cli.config_cmds:config", "Validate and show the trust's declaration in config/."),
    "academies": ("cli.config_cmds:academies", "List the academies with wave and legacy tenant."),
    "sandbox": (
        "cli.sandbox_cmds:sandbox",
        "Run the local Microsoft Graph stand-in for rehearsals and tests.",
    ),
    "discover": ("cli.discover_cmds:discover", "Inventory an academy's legacy tenant (delta-based)."),
    "mapping": ("cli.discover_cmds:mapping", "Export or import the reviewed source-to-target mapping."),
    "plan": ("cli.migrate_cmds:plan", "Compute and store the steps of a phase for an academy."),
    "run": ("cli.migrate_cmds:run", "Apply a phase's plan to the trust tenant (resumable)."),
    "verify": (
        "cli.migrate_cmds:verify",
        "Compare the trust tenant with what was planned; exit 1 on differences.",
    ),
    "rollback": ("cli.migrate_cmds:rollback", "Undo exactly what trustfold created in a phase."),
    "status": ("cli.migrate_cmds:status", "Progress, last run and failures per academy and phase."),
    "infra": ("cli.infra_cmds:infra", "Check the Pulumi program offline against the security baseline."),
    "report": ("cli.report_cmds:report", "Write the migration report (HTML, Markdown or JSON)."),
    "audit": ("cli.report_cmds:audit", "List the operator audit log."),
    "demo": ("cli.report_cmds:demo", "Rehearse the whole trust migration against the sandbox."),
    "preflight": (
        "cli.tenant_cmds:preflight",
        "Check, writing nothing, that every tenant is ready to migrate.",
    ),
    "bootstrap": ("cli.tenant_cmds:bootstrap", "One-off set-up of the trust tenant (idempotent)."),
    "provision-onedrive": (
        "cli.tenant_cmds:provision_onedrive",
        "Request OneDrives for an academy's migrated users and wait for them.",
    ),
}


def _version() -> str:
    try:
        return version("trustfold")
    except PackageNotFoundError:
        return "0+unknown"


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="trustfold")
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    default=Path("config"),
    show_default=True,
    envvar="TRUSTFOLD_CONFIG_DIR",
    help="Folder holding trust.yaml and academies/.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path),
    default=Path(".trustfold/state.db"),
    show_default=True,
    envvar="TRUSTFOLD_STATE",
    help="SQLite state store.",
)
@click.option(
    "--graph-url",
    envvar="TRUSTFOLD_GRAPH_URL",
    default=None,
    help="Graph base URL of a sandbox (http://127.0.0.1:PORT). Unset: Microsoft Graph.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="TRUSTFOLD_LOG_FORMAT",
    help="json: one JSON object per log line, for CI.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    config_dir: Path,
    state_path: Path,
    graph_url: str | None,
    log_format: str,
    verbose: bool,
) -> None:
    """trustfold folds academies into one trust cloud.

    Declare the trust in config/, rehearse against the sandbox, then migrate each academy phase by
    phase: discover, plan, run, verify, rollback. Exit codes: 0 ok, 1 failed or differences, 2 bad input.
    """
    from cli.logs import configure

    configure(verbose=verbose, fmt=log_format)
    if graph_url is not None:
        graph_url = graph_url.rstrip("/")
        if not graph_url.startswith(("http://", "https://")):
            raise click.BadParameter("must start with http:// or https://", param_hint="--graph-url")
        from migrations.graph.sandbox_credential import loopback_problem

        problem = loopback_problem(graph_url)
        if problem:
            # One line, exit 2 (bad input), before anything is opened or changed.
            from cli.errors import BadOption

            raise BadOption(f"--graph-url: {problem}")
    app = AppContext(
        config_dir=config_dir,
        state_path=state_path,
        graph_url=graph_url,
        verbose=verbose,
        log_format=log_format,
    )
    ctx.obj = app
    ctx.call_on_close(app.close)


def _fail(code: int, message: str, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    from cli.terminal import echo

    # Messages quote names from tenants and files: each line goes through the terminal filter. A message
    # of several lines (a plan's diff summary) is trustfold's own layout; its names were made one line each.
    first, *rest = message.split("\n")
    echo(f"error: {first}", err=True)
    for line in rest:
        echo(line, err=True)
    return code


def main(argv: list[str] | None = None) -> None:
    from migrations.safety.private import owner_only_umask

    owner_only_umask()  # personal data at rest: everything this process creates is owner-only
    verbose = any(a in ("-v", "--verbose") for a in (argv if argv is not None else sys.argv[1:]))
    sys.exit(run(argv, verbose=verbose))


def run(argv: list[str] | None, *, verbose: bool = False) -> int:
    from migrations.core.errors import OperationError
    from migrations.safety.redaction import redact
    from trust.errors import ConfigError

    try:
        cli.main(args=argv, prog_name="trustfold", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILED
    except click.ClickException as exc:
        if verbose:
            traceback.print_exc()
        exc.show()
        return EXIT_BAD_INPUT if exc.exit_code == 2 else exc.exit_code
    except ConfigError as exc:
        return _fail(EXIT_BAD_INPUT, redact(str(exc)), verbose)
    except OperationError as exc:
        return _fail(EXIT_FAILED, redact(str(exc)), verbose)
    except KeyboardInterrupt:
        click.echo("interrupted; state is journaled, run the same command again to resume", err=True)
        return 130
    except Exception as exc:
        logging.getLogger("trustfold").debug("unhandled error", exc_info=True)
        return _fail(
            EXIT_FAILED, redact(f"{type(exc).__name__}: {exc}") + " (run with -v for details)", verbose
        )
    return 0
