"""`trustfold plan|run|verify|rollback|status`: thin wrappers over migrations.core.registry."""

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
from cli.terminal import echo

PHASE_HELP = "users, groups, memberships, identity (the three as one graph), files, permissions or domain"


def _phase_names(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from migrations.core.registry import load_phases

    known = load_phases()
    values = value if isinstance(value, tuple) else (value,)
    expanded: list[str] = []
    for v in values:
        if v == "all" and param.name == "phases":
            expanded += [p for p in ("users", "groups", "memberships", "files", "permissions") if p in known]
        elif v == "identity" and param.name == "phases":
            expanded += ["users", "groups", "memberships"]  # rolled back phase by phase, latest first
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
    from migrations.core.registry import PhaseEnv
    from migrations.graph.client import open_connections, parse_budget

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


def _locked(app: AppContext, academy: str, phases: tuple[str, ...], command: str) -> Any:
    """The run lock of ACADEMY's PHASES for the block; a live holder elsewhere is exit 1 naming it."""
    from migrations.core.locks import run_lock

    user = AppContext.operator()[0]
    return run_lock(app.store(), academy, phases, operator=user, command=command, held=OperationFailed)


def _planning(fn: Any) -> Any:
    async def wrapped(env: Any) -> Any:
        from migrations.core.errors import PlanningError

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
    help="files, permissions: reuse drive scans made within SECONDS (each drive read costs SharePoint "
    "budget).",
)
@click.option(
    "--propagate-deletes", is_flag=True, help="files: delete in the target what was deleted at source."
)
@pass_app
def plan(
    app: AppContext,
    academy: str,
    phase: str,
    as_json: bool,
    limit: int,
    scan_age: int,
    propagate_deletes: bool,
) -> None:
    """Compute, store (numbered) and print the steps of PHASE for ACADEMY; `run` applies this plan. Changes
    nothing in any tenant."""
    from migrations.core.registry import phase as get_phase

    app.trust().academy(academy)
    handler = get_phase(phase)
    planning = {"propagate_deletes": propagate_deletes}

    async def go(env: Any) -> Any:
        p = await handler.plan(env)
        p.options = planning
        p.save(env.store)
        env.store.set_phase_status(academy, phase, "planned", {"plan": p.number, "steps": len(p.steps)})
        return p

    p = asyncio.run(_with_env(app, academy, _planning(go), options={"scan_age": scan_age, **planning}))
    _print_plan(p, as_json, limit)


def _print_plan(p: Any, as_json: bool, limit: int) -> None:
    if as_json:
        click.echo(json.dumps(p.to_json(), indent=2, sort_keys=True))
        return
    counts = ", ".join(f"{n} {op}" for op, n in sorted(p.counts().items())) or "nothing to do"
    name = f"plan {p.number}" if p.number is not None else "plan (not stored)"
    click.echo(
        f"{name} for {p.academy} {p.phase} (digest {p.digest[:12]}): {counts}; "
        f"{p.already_present} already present"
    )
    for s in p.steps[:limit]:
        echo(f"  {s.describe()}")
    if len(p.steps) > limit:
        click.echo(f"  ... and {len(p.steps) - limit} more (--json for all)")
    for n in p.notes[:limit]:
        echo(f"  note: {n}")


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
    help="files, permissions: reuse drive scans made within SECONDS, e.g. by the plan just reviewed "
    "(default: read every change now).",
)
@click.option(
    "--sharepoint-budget",
    default="auto",
    show_default=True,
    help="files: SharePoint resource units N/SECONDS per tenant to keep within (auto: Microsoft's "
    "published budget for the tenant's licence count).",
)
@click.option(
    "--propagate-deletes",
    is_flag=True,
    help="files, with --replan: delete in the target what was deleted at source (a planning option).",
)
@click.option(
    "--plan",
    "plan_number",
    type=click.IntRange(1),
    help="Apply this stored plan (default: the latest plan for ACADEMY and PHASE).",
)
@click.option(
    "--replan", is_flag=True, help="Plan and apply at once, without a separate review (CI, rehearsals)."
)
@click.option(
    "--licence-wait",
    default=300.0,
    show_default=True,
    type=click.FloatRange(0, 86_400),
    help="licences.mode group: SECONDS to wait for Entra to license new group members before reporting.",
)
@click.option(
    "--lag-tolerance",
    default=4.0,
    show_default=True,
    type=click.FloatRange(0, 120),
    help="SECONDS a look-up keeps asking before deciding a write in doubt was lost (replication lag).",
)
@click.option(
    "--dns-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds to keep polling verification once the TXT record should be published.",
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
    dns_wait: int,
    plan_number: int | None,
    replan: bool,
    licence_wait: float,
    lag_tolerance: float,
    skip_preflight: bool,
) -> None:
    """Apply the reviewed plan of PHASE for ACADEMY (from `trustfold plan`), after checking that the tenants
    and mapping still give the same steps (exit 1 with the differences if not). Journaled and resumable:
    run it again after any interruption."""
    from migrations.core.registry import phase as get_phase
    from migrations.graph.client import parse_budget

    try:
        parse_budget(write_budget)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--write-budget") from None
    if sharepoint_budget != "auto":
        try:
            parse_budget(sharepoint_budget)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--sharepoint-budget") from None
    if replan and plan_number is not None:
        raise click.UsageError("--plan and --replan exclude each other: apply a stored plan, or plan anew")
    app.trust().academy(academy)
    handler = get_phase(phase)
    options = {
        "write_budget": write_budget,
        "propagate_deletes": propagate_deletes,
        "sharepoint_budget": sharepoint_budget,
        "scan_age": scan_age,
        "dns_wait": dns_wait,
        "say": None if as_json else (lambda m: click.echo(f"  {m}", err=True)),
        "lag_tolerance": lag_tolerance,
        "licence_wait": licence_wait,
    }

    # files provisions OneDrives before its checks (its own commands); every other phase is checked inside
    # the run's own connections, side by side with re-deriving the plan (both only read).
    gate_in_run = not skip_preflight and not dry_run and phase != "files"

    async def the_plan(env: Any) -> Any:
        from migrations.core.review import reviewed_plan

        if replan:
            if dry_run:
                env.options["review"] = True  # show what would be planned; store nothing
            p = await handler.plan(env)
            env.options.pop("review", None)
            p.options = {"propagate_deletes": propagate_deletes}
            if not dry_run:
                p.save(env.store)
            return p
        return await reviewed_plan(env, handler, plan_number)

    async def go(env: Any) -> Any:
        if gate_in_run:
            from migrations.readiness.run_gate import gated_plan

            p = await gated_plan(env, phase, lambda: the_plan(env), alongside=not replan)
        else:
            p = await the_plan(env)
        if dry_run:
            return p, None
        return p, await handler.run(env, p, concurrency=concurrency)

    if dry_run:
        p, _ = asyncio.run(_with_env(app, academy, _planning(go), options=options))
        _print_plan(p, as_json, 50)
        return
    from cli.tenant_cmds import gate

    with _locked(app, academy, (phase,), f"run {academy} --phase {phase}"):
        # Under the lock: the gate may provision OneDrives (a write) and must see no other run's half-work.
        if not gate_in_run:
            gate(app, academy, phase, skip_preflight)  # exit 1 naming the checks that block this phase
        with _progress(f"{academy} {phase}", as_json) as progress:
            try:
                p, result = asyncio.run(_with_env(app, academy, _planning(go), progress, options))
            except OperationFailed as exc:
                _audit(app, f"run --phase {phase}", "failed", academy, phase, detail={"error": str(exc)})
                raise
    _audit(
        app,
        f"run --phase {phase}",
        result.status,
        academy,
        phase,
        str(p.number),
        {**result.counts, "digest": p.digest},
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "plan": p.number,
                    "plan_id": p.id,
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
            f"{c.get('throttled', 0)} throttled, {c.get('wait_seconds', 0)} s waited "
            f"(plan {p.number}, run {result.run_id})"
        )
        for f in result.failures[:20]:
            echo(f"  failed: {f['step']}: {f['message']}", err=True)
        for n in result.notes[:20]:
            echo(f"  note: {n}")
    if result.status == "waiting-for-dns":
        if not as_json:
            click.echo(f"{academy} {phase}: waiting-for-dns (publish the record above, then run again)")
        return
    if result.status != "succeeded":
        licences = result.counts.get("licence_problems", 0)
        unlicensed = f", {licences} user(s) without an active licence (see the failures)" if licences else ""
        raise OperationFailed(
            f"{phase} for {academy}: {result.counts.get('failed', 0)} step(s) failed{unlicensed}; "
            "fix the cause and run again (completed steps are not repeated)"
        )


@click.command()
@click.argument("academy")
@click.option("--json", "as_json", is_flag=True, help="Differences as JSON.")
@pass_app
def verify(app: AppContext, academy: str, as_json: bool) -> None:
    """Check the trust tenant against the mapping: users, licences, groups, members (and files). Exit 1 on
    differences."""
    from migrations.core.registry import load_phases
    from migrations.identity.context import IdentityContext
    from migrations.identity.verify import verify_identity

    app.trust().academy(academy)

    async def go(env: Any) -> dict[str, Any]:
        ctx = IdentityContext(env.trust, env.academy, env.store, env.conns.target)
        result = (await verify_identity(env.trust, env.academy, ctx)).to_json()
        for name, handler in sorted(load_phases().items()):
            part = await handler.verify(env)
            if part is None:
                continue
            result[name] = part
            result["differences"] += part.get("differences", [])
            result["checked"] += part.get("checked", 0)
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
            echo(f"  {d['kind']} {d['object']}: {d['message']}")
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
@click.option(
    "--dns-wait",
    default=60,
    show_default=True,
    type=click.IntRange(1, 86_400),
    help="domain: seconds to keep polling the legacy tenant's verification once its TXT record is back.",
)
@pass_app
def rollback(
    app: AppContext,
    academy: str,
    phases: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    purge: bool,
    as_json: bool,
    dns_wait: int,
) -> None:
    """Undo exactly what trustfold created in PHASE(s), from the journal; objects changed since are kept and
    reported."""
    from migrations.core.registry import PHASE_ORDER
    from migrations.core.registry import phase as get_phase

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

    if yes and not dry_run:
        with _locked(app, academy, tuple(ordered), f"rollback {academy} --phase {','.join(ordered)}"):
            done = asyncio.run(_with_env(app, academy, _planning(go), options={"dns_wait": dns_wait}))
    else:
        done = asyncio.run(_with_env(app, academy, _planning(go), options={"dns_wait": dns_wait}))
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
                echo(f"  {line}")
            if entry["result"]:
                c = entry["result"]["counts"]
                click.echo(
                    f"  -> {c.get('done', 0)} undone, {c.get('kept', 0)} kept, {c.get('failed', 0)} failed"
                )
                for n in entry["result"]["notes"][:20]:
                    echo(f"  note: {n}")
    if not (yes and not dry_run):
        if any(e["steps"] for e in report) and not as_json:
            click.echo("nothing changed; run again with --yes to carry this out")
        return
    failed = [
        e for e in report if e["result"] and e["result"]["status"] not in ("succeeded", "waiting-for-dns")
    ]
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
    from migrations.core.locks import holders

    store = app.store(readonly=True)
    locks = {(h.academy, h.phase): h for h in holders(store)}
    statuses = {(r["academy"], r["phase"]): r for r in store.phase_statuses()}
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in store.rows("SELECT * FROM runs ORDER BY started_at"):
        runs[(r["academy"], r["phase"])] = dict(r)
    out = []
    for code in codes:
        for ph in ("discover", "users", "groups", "memberships", "files", "permissions", "verify", "domain"):
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
                    "locked_by": locks[(code, ph)].describe() if (code, ph) in locks else None,
                }
            )
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for line in out:
        progress = f"{line['done']}/{line['planned']}" if line["planned"] else ""
        click.echo(
            f"{line['academy']:<12} {line['phase']:<12} {line['status']:<12} {progress:<10} "
            f"{'failed ' + str(line['failed']) if line['failed'] else ''}"
        )
        if line["locked_by"]:
            click.echo(f"{'':<12} {'':<12} locked by {line['locked_by']}")
