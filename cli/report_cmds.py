"""`trustfold report`, `trustfold audit` and `trustfold demo`: what happened, who did it, and a rehearsal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.context import AppContext, pass_app
from cli.render import View, json_option

if TYPE_CHECKING:
    from migrations.rehearsal.demo import DemoOutcome, DemoStep
    from trust import Trust

DEFAULT_REPORT = Path("reports/trustfold-report.html")


def _trust_or_none(app: AppContext) -> Trust | None:
    """Reports read the store; config only adds names and waves, so a broken config must not block them."""
    from trust.errors import ConfigError

    try:
        return app.trust()
    except ConfigError:
        return None


def _check_academy(app: AppContext, trust: Trust | None, academy: str | None) -> None:
    from trust.errors import ConfigError

    if academy is None:
        return
    if trust is not None:
        trust.academy(academy)  # ConfigError listing the known codes
        return
    known = {r[0] for r in app.store(create=False).rows("SELECT DISTINCT academy FROM phase_status")}
    if academy not in known:
        raise ConfigError(app.state_path, f"academy {academy!r} has no records in the state store")


def write_report(app: AppContext, academy: str | None, fmt: str, out: Path | None) -> Path | None:
    """Build the report from the store and write it; returns the path, or None when written to stdout."""
    from migrations.reporting import build_report, render

    trust = _trust_or_none(app)
    store = app.store(create=False, readonly=True)
    _check_academy(app, trust, academy)
    text = render(build_report(store, trust, academy), fmt)
    if out is not None and str(out) == "-":
        click.echo(text, nl=False)
        return None
    target = out or DEFAULT_REPORT.with_suffix("." + fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


@click.command()
@click.argument("academy", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "json"]),
    default="html",
    show_default=True,
    help="html: one self-contained page; md and json: for CI.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="File to write ('-' for standard output). Default: reports/trustfold-report.<format>.",
)
@pass_app
def report(app: AppContext, academy: str | None, fmt: str, out: Path | None) -> None:
    """Write the migration report for the trust, or for one ACADEMY, from the state store."""
    path = write_report(app, academy, fmt, out)
    if path is not None:
        click.echo(f"report written: {path}")


@click.command()
@click.argument("academy", required=False)
@json_option("One JSON array, for scripts.")
@pass_app
def audit(app: AppContext, academy: str | None, view: View) -> None:
    """List the operator audit log: who changed a tenant, when, with which plan, and the outcome."""
    trust = _trust_or_none(app)
    store = app.store(create=False, readonly=True)
    _check_academy(app, trust, academy)
    view.audit(store.audit_entries(academy), academy)


@click.command()
@click.option("--keep", is_flag=True, help="Continue from the current state store and sandbox (no reset).")
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=None,
    help="Users per academy in the generated sandbox tenants (default: the sandbox's).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_REPORT,
    show_default=True,
    help="Where to write the HTML report.",
)
@pass_app
def demo(app: AppContext, keep: bool, size: int | None, out: Path) -> None:
    """Rehearse the trust's whole migration against the sandbox and write the report.

    Starts the sandbox seeded from config (unless --graph-url names a running one), then for each academy
    in wave order: discover; plan and run users, groups, memberships and files; verify. Starts fresh
    (new state store, sandbox reset) unless --keep.
    """
    run_demo(app, keep=keep, size=size, out=out)


# ---- demo: the orchestration lives in migrations.rehearsal.demo, the sandbox in sandbox.testing ----
DEMO_COMMANDS = ("discover", "plan", "run", "verify")


def _invoke(app: AppContext, graph_url: str, step: DemoStep) -> DemoOutcome:
    """Run one trustfold command in this process through the CLI entry point, its output captured."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from cli.logs import configure
    from cli.main import run
    from migrations.rehearsal.demo import DemoOutcome

    argv = ["--config-dir", str(app.config_dir), "--state", str(app.state_path), "--graph-url", graph_url]
    argv += ["--log-format", app.log_format] + (["-v"] if app.verbose else []) + step.argv
    buffer = io.StringIO()
    started = time.monotonic()
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            code = run(argv, verbose=app.verbose)
    finally:
        # The inner command pointed logging at the capture buffer; point it back at the terminal.
        configure(verbose=app.verbose, fmt=app.log_format)
    return DemoOutcome(step, code, time.monotonic() - started, buffer.getvalue())


def _fresh_state(app: AppContext, sandbox_state: Path) -> None:
    app.close()
    for path in (
        app.state_path,
        Path(f"{app.state_path}-wal"),
        Path(f"{app.state_path}-shm"),
        sandbox_state,
        sandbox_state.with_suffix(".port"),
    ):
        path.unlink(missing_ok=True)


def _require_migration_commands() -> None:
    """Fail before touching anything when a command the rehearsal drives is not in this build."""
    from importlib.util import find_spec

    from cli.errors import OperationFailed
    from cli.main import COMMANDS

    missing = sorted(
        {
            f"{name} ({COMMANDS[name][0].split(':')[0].replace('.', '/')}.py)"
            for name in DEMO_COMMANDS
            if find_spec(COMMANDS[name][0].split(":")[0]) is None
        }
    )
    if missing:
        raise OperationFailed(
            f"the migration commands {', '.join(missing)} are not part of this build; the demo cannot run"
        )


def _echo(text: str, err: bool) -> None:
    click.echo(text, err=err)


def run_demo(app: AppContext, *, keep: bool, size: int | None, out: Path) -> None:
    from cli.errors import OperationFailed
    from migrations.core.registry import load_phases
    from migrations.rehearsal.demo import (
        CHANGE_PHASES,
        demo_steps,
        rehearse,
        seconds_by_step,
        summary_lines,
        with_onboarding,
    )
    from migrations.safety.redaction import redact
    from sandbox.azurite import rehearsal_storage
    from sandbox.testing import NotASandbox, rehearsal_graph

    trust = app.trust()
    _require_migration_commands()
    sandbox_state = app.state_path.with_name("demo-sandbox.json")
    if not keep:
        _fresh_state(app, sandbox_state)
    user, host = AppContext.operator()
    detail: dict[str, Any] = {"fresh": not keep, "external_sandbox": bool(app.graph_url), "size": size}
    app.store().audit(operator=user, host=host, command="demo", outcome="started", detail=detail)
    started = time.monotonic()
    try:
        available = load_phases()
        missing = [p for p in CHANGE_PHASES if p not in available]
        if missing:
            click.echo(
                f"note: phase(s) {', '.join(missing)} not available in this build; rehearsing the others",
                err=True,
            )
        steps = with_onboarding(trust, demo_steps(trust, available))
        graph = rehearsal_graph(app.config_dir, app.graph_url, keep=keep, size=size, state=sandbox_state)
        with graph as url, rehearsal_storage(url):  # Azurite when installed: the bulk file engine rehearses
            outcomes = rehearse(steps, lambda step: _invoke(app, url, step), app.state_path, _echo)
            from migrations.rehearsal.demo import DemoStep, rehearse_domain  # the cut-over, for one academy

            outcomes += rehearse_domain(trust, url, lambda c, lb, a: _invoke(app, url, DemoStep(c, lb, a)))
    except KeyboardInterrupt:
        app.store().audit(operator=user, host=host, command="demo", outcome="interrupted", detail=detail)
        raise
    except Exception as exc:
        app.store().audit(
            operator=user,
            host=host,
            command="demo",
            outcome="failed",
            detail={**detail, "error": redact(str(exc))[:500]},
        )
        if isinstance(exc, NotASandbox):
            raise OperationFailed(str(exc)) from None
        raise
    elapsed = time.monotonic() - started
    failures = [o for o in outcomes if o.code != 0]
    path = write_report(app, None, "html", out)
    for line in summary_lines(app.store(), trust, elapsed, path):
        click.echo(line)
    app.store().audit(
        operator=user,
        host=host,
        command="demo",
        outcome="failed" if failures else "succeeded",
        detail={
            **detail,
            "elapsed_seconds": round(elapsed, 1),
            "steps": len(outcomes),
            "failed_steps": [f"{o.step.academy}: {o.step.label}" for o in failures],
            "step_seconds": seconds_by_step(outcomes),
        },
    )
    if failures:
        listed = ", ".join(f"{o.step.academy} {o.step.label} (exit {o.code})" for o in failures[:5])
        raise OperationFailed(f"demo finished with {len(failures)} failed steps: {listed}; report: {path}")
