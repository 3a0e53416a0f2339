"""`trustfold report`, `trustfold audit` and `trustfold demo`: what happened, who did it, and a rehearsal."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.context import AppContext, pass_app

if TYPE_CHECKING:
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
    store = app.store(create=False)
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
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@pass_app
def audit(app: AppContext, academy: str | None, as_json: bool) -> None:
    """List the operator audit log: who changed a tenant, when, with which plan, and the outcome."""
    from rich.console import Console
    from rich.table import Table

    trust = _trust_or_none(app)
    store = app.store(create=False)
    _check_academy(app, trust, academy)
    entries = store.audit_entries(academy)
    if as_json:
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo("no audited actions" + (f" for {academy}" if academy else ""))
        return
    table = Table(show_lines=False)
    for column in ("at", "operator", "host", "command", "academy", "phase", "plan", "outcome"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            *(
                str(e[k] or "")
                for k in ("at", "operator", "host", "command", "academy", "phase", "plan_id", "outcome")
            ),
            style="red" if e["outcome"] not in ("succeeded", "ok", "dry-run") else None,
        )
    # Piped output keeps whole values (scripts and CI logs); a terminal gets a table that fits.
    width = None if sys.stdout.isatty() else 220
    Console(highlight=False, markup=False, width=width).print(table)


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


# ---- demo ----
CHANGE_PHASES = ("users", "groups", "memberships", "files")


@dataclass
class DemoStep:
    academy: str
    label: str
    argv: list[str]


@dataclass
class DemoOutcome:
    step: DemoStep
    code: int
    seconds: float
    output: str = field(repr=False, default="")


def demo_steps(trust: Trust) -> list[DemoStep]:
    """Every command the rehearsal runs, academy by academy in wave order (trust.academies is sorted)."""
    from migrations.phases import load_phases

    available = load_phases()
    steps: list[DemoStep] = []
    for academy in trust.academies:
        code = academy.code
        steps.append(DemoStep(code, "discover", ["discover", code]))
        for phase in CHANGE_PHASES:
            if phase == "files" and not academy.files.enabled:
                continue
            if phase not in available:
                # A phase this build does not carry is left out, and said so, rather than failing every step.
                continue
            # The rehearsal reviews each plan and runs it at once: files reuse the scan just made rather than
            # spend the academy's SharePoint budget reading every OneDrive again.
            reuse = ["--scan-age", "600"] if phase == "files" else []
            steps.append(DemoStep(code, f"plan {phase}", ["plan", code, "--phase", phase, *reuse]))
            steps.append(DemoStep(code, f"run {phase}", ["run", code, "--phase", phase, *reuse]))
        steps.append(DemoStep(code, "verify", ["verify", code]))
    return steps


def _invoke(app: AppContext, graph_url: str, step: DemoStep) -> DemoOutcome:
    """Run one trustfold command in this process through the CLI entry point, its output captured."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from cli.logs import configure
    from cli.main import run

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


DEMO_COMMANDS = ("discover", "plan", "run", "verify")
EXIT_INTERRUPTED = 130  # what cli.main.run returns after a KeyboardInterrupt that reaches it


def _interrupted(outcome: DemoOutcome) -> bool:
    """Ctrl-C in a step: click turns KeyboardInterrupt into Abort, which cli.main.run reports as "aborted"."""
    lines = outcome.output.strip().splitlines()
    aborted = outcome.code == 1 and bool(lines) and lines[-1].strip() == "aborted"
    return aborted or outcome.code == EXIT_INTERRUPTED


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


@contextmanager
def _graph(app: AppContext, *, keep: bool, size: int | None, sandbox_state: Path) -> Iterator[str]:
    """The Graph the rehearsal talks to: the given sandbox (reset unless --keep) or one started here."""
    from cli.errors import OperationFailed

    if app.graph_url:
        if not keep:
            import httpx

            from sandbox.testing import reset

            try:
                reset(app.graph_url)
            except httpx.HTTPError as exc:
                raise OperationFailed(
                    f"could not reset the sandbox at {app.graph_url} ({exc}); is it a trustfold sandbox?"
                ) from None
        yield app.graph_url
        return
    # Every rehearsal meets Graph's eventual consistency: new objects answer 404 by id for half a second.
    settings: dict[str, Any] = (
        {"replication_lag_ms": 500} if size is None else {"size": size, "replication_lag_ms": 500}
    )
    port_file = sandbox_state.with_suffix(".port")
    # --keep restarts on the previous port: the store's delta links are absolute URLs of that sandbox.
    port = int(port_file.read_text()) if keep and port_file.exists() else 0
    with _sandbox_on(app.config_dir, sandbox_state, port, settings) as url:
        port_file.write_text(url.rsplit(":", 1)[1])
        yield url


@contextmanager
def _sandbox_on(config_dir: Path, state: Path, port: int, settings: dict[str, Any]) -> Iterator[str]:
    """The sandbox in this process (as sandbox.testing.running_sandbox), on `port` when free, else any."""
    import socket

    import uvicorn

    from sandbox.app import create_app
    from sandbox.bootstrap import make_world
    from sandbox.testing import build_settings

    world = make_world(config_dir, build_settings(**settings), state)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(world), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="demo-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the demo's sandbox did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _why(output: str) -> str:
    """The line of a captured command's output that says what went wrong, on one line."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    text = errors[-1] if errors else (lines[-1] if lines else "no output")
    return text[:300]


class _LiveItems:
    """Polls the store (own read connection) for the running step's latest items_done sample."""

    def __init__(self, state_path: Path, step: DemoStep):
        self.state_path, self.step = state_path, step
        self.on_change: Callable[[int], None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="demo-progress", daemon=True)

    def _poll(self) -> None:
        phase = self.step.argv[3] if len(self.step.argv) > 3 else self.step.argv[0]
        last = -1
        while not self._stop.wait(0.5):
            try:
                conn = sqlite3.connect(f"file:{self.state_path}?mode=ro", uri=True, timeout=1)
                try:
                    row = conn.execute(
                        "SELECT m.value FROM metrics m JOIN runs r ON r.id = m.run_id "
                        "WHERE r.academy = ? AND r.phase = ? AND r.status = 'running' "
                        "AND m.name = 'items_done' "
                        "ORDER BY m.at DESC LIMIT 1",
                        (self.step.academy, phase),
                    ).fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:
                continue  # store not created yet or busy: the next tick tries again
            if row is not None and int(row[0]) != last and self.on_change is not None:
                last = int(row[0])
                self.on_change(last)


@contextmanager
def _live_items(state_path: Path, step: DemoStep, *, enabled: bool) -> Iterator[_LiveItems]:
    live = _LiveItems(state_path, step)
    if enabled:
        live._thread.start()
    try:
        yield live
    finally:
        live._stop.set()
        if enabled:
            live._thread.join(timeout=2)


def _rehearse(
    app: AppContext, steps: list[DemoStep], *, keep: bool, size: int | None, sandbox_state: Path
) -> list[DemoOutcome]:
    """Run every step against the sandbox, on through failures so the report shows all of them."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    outcomes: list[DemoOutcome] = []
    console = Console()
    with _graph(app, keep=keep, size=size, sandbox_state=sandbox_state) as url:
        progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,  # quiet when piped: one line per academy instead
        )
        with progress:
            task = progress.add_task("starting", total=len(steps))
            for i, step in enumerate(steps):
                label = f"{step.academy}: {step.label}"
                progress.update(task, description=label)
                with _live_items(app.state_path, step, enabled=console.is_terminal) as live:
                    live.on_change = lambda n, label=label: progress.update(
                        task, description=f"{label} ({n:,} done)"
                    )
                    outcome = _invoke(app, url, step)
                if _interrupted(outcome):
                    raise KeyboardInterrupt  # Ctrl-C inside a step stops the rehearsal, not just the step
                outcomes.append(outcome)
                progress.advance(task)
                if outcome.code != 0:
                    message = f"{step.academy}: {step.label} exited {outcome.code}: {_why(outcome.output)}"
                    if console.is_terminal:
                        progress.console.print(message, markup=False, highlight=False, style="red")
                    else:
                        click.echo(message, err=True)
                last_of_academy = i + 1 == len(steps) or steps[i + 1].academy != step.academy
                if last_of_academy and not console.is_terminal:
                    failed = sum(1 for o in outcomes if o.step.academy == step.academy and o.code != 0)
                    click.echo(f"{step.academy}: done" + (f" ({failed} steps failed)" if failed else ""))
    return outcomes


def _seconds_by_step(outcomes: list[DemoOutcome]) -> dict[str, float]:
    """Seconds per kind of step ("run users", "verify", ...) summed over academies: where the time goes."""
    totals: dict[str, float] = {}
    for o in outcomes:
        totals[o.step.label] = round(totals.get(o.step.label, 0.0) + o.seconds, 2)
    return totals


def run_demo(app: AppContext, *, keep: bool, size: int | None, out: Path) -> None:
    from cli.errors import OperationFailed
    from migrations.redaction import redact

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
        from migrations.phases import load_phases

        missing = [p for p in CHANGE_PHASES if p not in load_phases()]
        if missing:
            click.echo(
                f"note: phase(s) {', '.join(missing)} not available in this build; rehearsing the others",
                err=True,
            )
        from cli.tenant_cmds import with_onboarding

        steps = with_onboarding(trust, demo_steps(trust))
        outcomes = _rehearse(app, steps, keep=keep, size=size, sandbox_state=sandbox_state)
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
        raise
    elapsed = time.monotonic() - started
    failures = [o for o in outcomes if o.code != 0]
    path = write_report(app, None, "html", out)
    _summary(app, trust, elapsed, path)
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
            "step_seconds": _seconds_by_step(outcomes),
        },
    )
    if failures:
        listed = ", ".join(f"{o.step.academy} {o.step.label} (exit {o.code})" for o in failures[:5])
        raise OperationFailed(f"demo finished with {len(failures)} failed steps: {listed}; report: {path}")


def _summary(app: AppContext, trust: Trust, elapsed: float, path: Path | None) -> None:
    from migrations.reporting import build_report
    from migrations.reporting.render import bytesize

    report = build_report(app.store(), trust)
    for a in report.academies:
        verify = "not verified" if a.verify is None else ("verified" if a.verify.get("ok") else "DIFFERENCES")
        counts = ", ".join(
            f"{p.phase} {p.done + p.already_present}/{p.planned}"
            for p in a.phases
            if p.phase in CHANGE_PHASES
        )
        click.echo(f"{a.code:<12} wave {a.wave}  {counts}  {verify}")
    t = report.totals
    click.echo(
        f"migrated {int(t.get('done', 0))} objects, {bytesize(t.get('bytes', 0))} of files, "
        f"{int(t.get('failed', 0))} failed, {int(t.get('throttled', 0))} throttled answers "
        f"({t.get('wait_seconds', 0):.1f} s waited) in {elapsed:.0f} s"
    )
    click.echo(f"report: {path}")
