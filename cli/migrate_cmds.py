"""`trustfold plan|run|verify|rollback|status`: thin wrappers over migrations.phases."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cli.context import AppContext, pass_app
from cli.errors import OperationFailed

PHASE_HELP = "users, groups, memberships or files"


def _phase_names(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from migrations.phases import load_phases

    known = load_phases()
    values = value if isinstance(value, tuple) else (value,)
    expanded: list[str] = []
    for v in values:
        if v == "all" and param.name == "phases":
            expanded += [p for p in ("users", "groups", "memberships", "files") if p in known]
        elif v not in known:
            raise click.BadParameter(f"'{v}' is not a phase (choose from {', '.join(sorted(known))})")
        else:
            expanded.append(v)
    return tuple(expanded) if isinstance(value, tuple) else expanded[0]


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


async def _with_env(
    app: AppContext,
    code: str,
    fn: Any,
    progress: Callable[[int, int], None] | None = None,
    options: dict[str, Any] | None = None,
) -> Any:
    from migrations.graph import open_connections, parse_budget
    from migrations.phases import PhaseEnv

    trust = app.trust()
    academy = trust.academy(code)
    store = app.store()
    budget = parse_budget((options or {}).get("write_budget") or "3000/150")
    async with open_connections(
        trust, app.graph_url, write_budget=budget, academies=(code,), window_dir=app.state_path.parent
    ) as conns:
        env = PhaseEnv(
            trust,
            academy,
            store,
            conns,
            AppContext.operator()[0],
            app.state_path.parent / "runs",
            progress,
            options or {},
        )
        return await fn(env)


def _audit(
    app: AppContext,
    command: str,
    outcome: str,
    academy: str,
    phase: str | None = None,
    plan_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    user, host = AppContext.operator()
    app.store().audit(
        operator=user,
        host=host,
        command=command,
        outcome=outcome,
        academy=academy,
        phase=phase,
        plan_id=plan_id,
        detail=detail,
    )


def _planning(fn: Any) -> Any:
    async def wrapped(env: Any) -> Any:
        from migrations.identity import PlanningError

        try:
            return await fn(env)
        except PlanningError as exc:
            raise OperationFailed(str(exc)) from None

    return wrapped


@click.command()
@click.argument("academy")
@click.option("--phase", required=True, callback=_phase_names, help=PHASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON (for CI).")
@click.option("--limit", default=50, show_default=True, help="Steps listed in the readable output.")
@click.option(
    "--scan-age",
    default=0,
    show_default=True,
    type=click.IntRange(0, 86_400),
    help="files: reuse drive scans made within SECONDS (each drive read costs SharePoint budget).",
)
@pass_app
def plan(app: AppContext, academy: str, phase: str, as_json: bool, limit: int, scan_age: int) -> None:
    """Compute, store and print the steps of PHASE for ACADEMY. Changes nothing in any tenant."""
    from migrations.phases import phase as get_phase

    app.trust().academy(academy)
    handler = get_phase(phase)

    async def go(env: Any) -> Any:
        p = await handler.plan(env)
        p.save(env.store)
        env.store.set_phase_status(academy, phase, "planned", {"plan": p.id, "steps": len(p.steps)})
        return p

    p = asyncio.run(_with_env(app, academy, _planning(go), options={"scan_age": scan_age}))
    _print_plan(p, as_json, limit)


def _print_plan(p: Any, as_json: bool, limit: int) -> None:
    if as_json:
        click.echo(json.dumps(p.to_json(), indent=2, sort_keys=True))
        return
    counts = ", ".join(f"{n} {op}" for op, n in sorted(p.counts().items())) or "nothing to do"
    click.echo(f"plan {p.id}: {counts}; {p.already_present} already present")
    for s in p.steps[:limit]:
        click.echo(f"  {s.describe()}")
    if len(p.steps) > limit:
        click.echo(f"  ... and {len(p.steps) - limit} more (--json for all)")
    for n in p.notes[:limit]:
        click.echo(f"  note: {n}")


@click.command()
@click.argument("academy")
@click.option("--phase", required=True, callback=_phase_names, help=PHASE_HELP)
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests in flight per tenant.",
)
@click.option(
    "--write-budget",
    default="3000/150",
    show_default=True,
    help="The trust tenant's write budget N/SECONDS the limiter keeps within.",
)
@click.option("--json", "as_json", is_flag=True, help="Result as JSON.")
@click.option(
    "--scan-age",
    default=0,
    show_default=True,
    type=click.IntRange(0, 86_400),
    help="files: reuse drive scans made within SECONDS, e.g. by the plan just reviewed (default: read "
    "every change now).",
)
@click.option(
    "--sharepoint-budget",
    default="auto",
    show_default=True,
    help="files: SharePoint resource units N/SECONDS per tenant to keep within (auto: Microsoft's "
    "published budget for the tenant's licence count).",
)
@click.option(
    "--propagate-deletes", is_flag=True, help="files: delete in the target what was deleted at source."
)
@click.option("--skip-preflight", is_flag=True, help="Start even when preflight checks for the phase fail.")
@pass_app
def run(
    app: AppContext,
    academy: str,
    phase: str,
    dry_run: bool,
    concurrency: int,
    write_budget: str,
    as_json: bool,
    scan_age: int,
    sharepoint_budget: str,
    propagate_deletes: bool,
    skip_preflight: bool,
) -> None:
    """Apply PHASE for ACADEMY: journaled, resumable (run again after any interruption)."""
    from migrations.graph import parse_budget
    from migrations.phases import phase as get_phase

    try:
        parse_budget(write_budget)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--write-budget") from None
    if sharepoint_budget != "auto":
        try:
            parse_budget(sharepoint_budget)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--sharepoint-budget") from None
    app.trust().academy(academy)
    handler = get_phase(phase)
    if not dry_run:
        from cli.tenant_cmds import gate

        gate(app, academy, phase, skip_preflight)  # provisions OneDrives for files; exit 1 when blocked
    options = {
        "write_budget": write_budget,
        "propagate_deletes": propagate_deletes,
        "sharepoint_budget": sharepoint_budget,
        "scan_age": scan_age,
    }

    async def go(env: Any) -> Any:
        p = await handler.plan(env)
        p.save(env.store)
        if dry_run:
            return p, None
        return p, await handler.run(env, p, concurrency=concurrency)

    if dry_run:
        p, _ = asyncio.run(_with_env(app, academy, _planning(go), options=options))
        _print_plan(p, as_json, 50)
        return
    with _progress(f"{academy} {phase}", as_json) as progress:
        try:
            p, result = asyncio.run(_with_env(app, academy, _planning(go), progress, options))
        except OperationFailed as exc:
            _audit(app, f"run --phase {phase}", "failed", academy, phase, detail={"error": str(exc)})
            raise
    _audit(app, f"run --phase {phase}", result.status, academy, phase, p.id, result.counts)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "plan": p.id,
                    "status": result.status,
                    "counts": result.counts,
                    "failures": result.failures,
                    "notes": result.notes,
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        c = result.counts
        click.echo(
            f"{academy} {phase}: {c.get('done', 0)} done, {c.get('already_present', 0)} already present, "
            f"{c.get('failed', 0)} failed, {c.get('skipped', 0)} skipped; {c.get('requests', 0)} requests, "
            f"{c.get('throttled', 0)} throttled, {c.get('wait_seconds', 0)} s waited (run {result.run_id})"
        )
        for f in result.failures[:20]:
            click.echo(f"  failed: {f['step']}: {f['message']}", err=True)
        for n in result.notes[:20]:
            click.echo(f"  note: {n}")
    if result.status != "succeeded":
        raise OperationFailed(
            f"{phase} for {academy}: {result.counts.get('failed', 0)} step(s) failed; "
            "fix the cause and run again (completed steps are not repeated)"
        )


@click.command()
@click.argument("academy")
@click.option("--json", "as_json", is_flag=True, help="Differences as JSON.")
@pass_app
def verify(app: AppContext, academy: str, as_json: bool) -> None:
    """Check the trust tenant against the mapping: users, licences, groups, members (and files). Exit 1 on
    differences."""
    from migrations.identity import IdentityContext
    from migrations.phases import load_phases
    from migrations.verify import verify_identity

    app.trust().academy(academy)

    async def go(env: Any) -> dict[str, Any]:
        ctx = IdentityContext(env.trust, env.academy, env.store, env.conns.target)
        result = (await verify_identity(env.trust, env.academy, ctx)).to_json()
        files = load_phases().get("files")
        if files is not None and hasattr(files, "verify"):
            fres = await files.verify(env)
            result["files"] = fres
            result["differences"] += fres.get("differences", [])
            result["checked"] += fres.get("checked", 0)
            result["ok"] = not result["differences"]
        return result

    result = asyncio.run(_with_env(app, academy, go))
    app.store().set_phase_status(academy, "verify", "done" if result["ok"] else "failed", result)
    _audit(
        app,
        "verify",
        "ok" if result["ok"] else "differences",
        academy,
        "verify",
        detail={"differences": len(result["differences"])},
    )
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        click.echo(
            f"{academy}: {result['checked']} object(s) checked, {len(result['differences'])} difference(s)"
        )
        for d in result["differences"][:50]:
            click.echo(f"  {d['kind']} {d['object']}: {d['message']}")
    if not result["ok"]:
        raise OperationFailed(f"verification found {len(result['differences'])} difference(s)")


@click.command()
@click.argument("academy")
@click.option(
    "--phase",
    "phases",
    required=True,
    multiple=True,
    callback=_phase_names,
    help=f"{PHASE_HELP}, or all; repeatable. Undone latest phase first.",
)
@click.option("--dry-run", is_flag=True, help="Print the rollback plan only.")
@click.option("--yes", is_flag=True, help="Carry the rollback plan out.")
@click.option("--purge", is_flag=True, help="Delete users and Microsoft 365 groups for good (no 30-day bin).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def rollback(
    app: AppContext,
    academy: str,
    phases: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    purge: bool,
    as_json: bool,
) -> None:
    """Undo exactly what trustfold created in PHASE(s), from the journal; objects changed since are kept and
    reported."""
    from migrations.phases import PHASE_ORDER
    from migrations.phases import phase as get_phase

    app.trust().academy(academy)
    ordered = sorted(set(phases), key=lambda p: -PHASE_ORDER.index(p))

    async def go(env: Any) -> list[tuple[str, list[Any], Any]]:
        out = []
        for name in ordered:
            handler = get_phase(name)
            steps = await handler.rollback_steps(env)
            result = None
            if yes and not dry_run and steps:
                result = await handler.rollback(env, steps, purge=purge)
            out.append((name, steps, result))
        return out

    done = asyncio.run(_with_env(app, academy, go))
    report = [
        {
            "phase": name,
            "steps": [s.describe() for s in steps],
            "result": None
            if r is None
            else {"status": r.status, "counts": r.counts, "failures": r.failures, "notes": r.notes},
        }
        for name, steps, r in done
    ]
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        for entry in report:
            click.echo(f"rollback {academy} {entry['phase']}: {len(entry['steps'])} step(s)")
            for line in entry["steps"][:50]:
                click.echo(f"  {line}")
            if entry["result"]:
                c = entry["result"]["counts"]
                click.echo(
                    f"  -> {c.get('done', 0)} undone, {c.get('kept', 0)} kept, {c.get('failed', 0)} failed"
                )
                for n in entry["result"]["notes"][:20]:
                    click.echo(f"  note: {n}")
    if not (yes and not dry_run):
        if any(e["steps"] for e in report) and not as_json:
            click.echo("nothing changed; run again with --yes to carry this out")
        return
    failed = [e for e in report if e["result"] and e["result"]["status"] != "succeeded"]
    for e in report:
        if e["result"]:
            _audit(
                app,
                f"rollback --phase {e['phase']}",
                e["result"]["status"],
                academy,
                e["phase"],
                detail=e["result"]["counts"],
            )
    if failed:
        raise OperationFailed(
            f"rollback of {', '.join(e['phase'] for e in failed)} had failures; run it again"
        )


@click.command()
@click.argument("academy", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status(app: AppContext, academy: str | None, as_json: bool) -> None:
    """Per academy and phase: status, progress, last run, failures."""
    trust = app.trust()
    codes = [trust.academy(academy).code] if academy else [a.code for a in trust.academies]
    store = app.store()
    statuses = {(r["academy"], r["phase"]): r for r in store.phase_statuses()}
    runs = {}
    for r in store.rows("SELECT * FROM runs ORDER BY started_at"):
        runs[(r["academy"], r["phase"])] = dict(r)
    out = []
    for code in codes:
        for ph in ("discover", "users", "groups", "memberships", "files", "verify"):
            s = statuses.get((code, ph))
            last = runs.get((code, ph))
            counts = json.loads(last["counts"] or "{}") if last else {}
            out.append(
                {
                    "academy": code,
                    "phase": ph,
                    "status": s["status"] if s else "not-started",
                    "updated_at": s["updated_at"] if s else None,
                    "last_run": last["id"] if last else None,
                    "last_run_status": last["status"] if last else None,
                    "done": counts.get("done", 0),
                    "planned": counts.get("planned", 0),
                    "failed": counts.get("failed", 0),
                }
            )
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for r in out:
        progress = f"{r['done']}/{r['planned']}" if r["planned"] else ""
        click.echo(
            f"{r['academy']:<12} {r['phase']:<12} {r['status']:<12} {progress:<10} "
            f"{'failed ' + str(r['failed']) if r['failed'] else ''}"
        )
