"""Every command's output, text or JSON: the one module that chooses between them.

A command declares `@json_option(...)`; Click hands it a `View`, and the command passes what the application
layer returned to one of the View's methods. Text that quotes tenant data goes through `cli.terminal.echo`
(the sanitising layer); trustfold's own words go out as they are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import click

from cli.terminal import echo

if TYPE_CHECKING:
    from migrations.app import Discovered, Rollback, RunOutcome, StatusLine, Verified
    from migrations.core.plan import Plan
    from migrations.readiness.bootstrap import BootstrapResult
    from migrations.readiness.onedrive import ProvisionResult
    from migrations.readiness.preflight import Report

ProgressFn = Callable[[int, int], None]


def json_option(help: str | None = None) -> Callable[[Any], Any]:
    """`--json`, handed to the command as a `view` that renders text or JSON."""
    return click.option(
        "--json", "view", is_flag=True, callback=lambda _c, _p, as_json: View(as_json), help=help
    )


def _dump(data: Any, **kwargs: Any) -> None:
    click.echo(json.dumps(data, indent=2, **kwargs))


class View:
    def __init__(self, as_json: bool):
        self.as_json = as_json

    def data(self, data: Any, **kwargs: Any) -> bool:
        """Print DATA as JSON when JSON was asked for (True: the command's text is not wanted)."""
        if self.as_json:
            _dump(data, **kwargs)
        return self.as_json

    # ---- live output while a command works ----

    @property
    def say(self) -> Callable[[str], None] | None:
        """What a phase tells the operator mid-run (stderr); nothing in JSON mode."""
        return None if self.as_json else (lambda m: click.echo(f"  {m}", err=True))

    def progress(self, label: str) -> AbstractContextManager[ProgressFn | None]:
        return _progress(label, quiet=self.as_json)

    # ---- migrate commands ----

    def plan(self, p: Plan, limit: int = 50) -> None:
        if self.data(p.to_json(), sort_keys=True):
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

    def run(self, outcome: RunOutcome) -> None:
        p, result = outcome.plan, outcome.result
        if result is None:
            self.plan(p)  # a dry run: the plan that would be applied
            return
        run_json = {
            "run_id": result.run_id,
            "plan": p.number,
            "plan_id": p.id,
            "status": result.status,
            "counts": result.counts,
            "failures": result.failures,
            "notes": result.notes,
        }
        if self.data(run_json, sort_keys=True):
            return
        c, where = result.counts, f"{outcome.academy} {outcome.phase}"
        click.echo(
            f"{where}: {c.get('done', 0)} done, {c.get('already_present', 0)} already present, "
            f"{c.get('failed', 0)} failed, {c.get('skipped', 0)} skipped; {c.get('requests', 0)} requests, "
            f"{c.get('throttled', 0)} throttled, {c.get('wait_seconds', 0)} s waited "
            f"(plan {p.number}, run {result.run_id})"
        )
        for f in result.failures[:20]:
            echo(f"  failed: {f['step']}: {f['message']}", err=True)
        for n in result.notes[:20]:
            echo(f"  note: {n}")
        if outcome.waiting_for_dns:
            click.echo(f"{where}: waiting-for-dns (publish the record above, then run again)")
        if outcome.waiting_for_removal:
            click.echo(
                f"{where}: waiting-for-removal (the legacy tenant is removing the domain; run again later)"
            )

    def verify(self, verified: Verified) -> None:
        result = verified.detail
        if self.data(result, sort_keys=True):
            return
        click.echo(
            f"{verified.academy}: {result['checked']} object(s) checked, "
            f"{len(result['differences'])} difference(s)"
        )
        for d in result["differences"][:50]:
            echo(f"  {d['kind']} {d['object']}: {d['message']}")
        # How a phase read what it checked, where the operator should know (a files drive read whole).
        for phase, part in sorted(result.items()):
            if isinstance(part, dict):
                for n in part.get("notes", [])[:20]:
                    echo(f"  note: {phase}: {n}")

    def rollback(self, done: Rollback) -> None:
        report = [
            {
                "phase": part.phase,
                "steps": part.steps,
                "result": None
                if (r := part.result) is None
                else {"status": r.status, "counts": r.counts, "failures": r.failures, "notes": r.notes},
            }
            for part in done.parts
        ]
        if self.data(report, sort_keys=True):
            return
        for entry in done.parts:
            click.echo(f"rollback {done.academy} {entry.phase}: {len(entry.steps)} step(s)")
            for line in entry.steps[:50]:
                echo(f"  {line}")
            if entry.result:
                c = entry.result.counts
                click.echo(
                    f"  -> {c.get('done', 0)} undone, {c.get('kept', 0)} kept, {c.get('failed', 0)} failed"
                )
                for n in entry.result.notes[:20]:
                    echo(f"  note: {n}")
        if not done.carried_out and any(p.steps for p in done.parts):
            click.echo("nothing changed; run again with --yes to carry this out")

    def status(self, lines: list[StatusLine]) -> None:
        from dataclasses import asdict

        if self.data([asdict(line) for line in lines]):
            return
        for line in lines:
            progress = f"{line.done}/{line.planned}" if line.planned else ""
            click.echo(
                f"{line.academy:<12} {line.phase:<12} {line.status:<12} {progress:<10} "
                f"{'failed ' + str(line.failed) if line.failed else ''}"
            )
            if line.waiting_since:
                click.echo(f"{'':<12} {'':<12} {line.status} since {line.waiting_since}")
            if line.licence_processing_s is not None:
                click.echo(
                    f"{'':<12} {'':<12} Entra licensed the group members in {line.licence_processing_s:.0f} s"
                )
            if line.licence_problems:
                click.echo(
                    f"{'':<12} {'':<12} {line.licence_problems} user(s) without an active licence "
                    "(run --json or verify for each reason)"
                )
            if line.locked_by:
                click.echo(f"{'':<12} {'':<12} locked by {line.locked_by}")

    def discovered(self, academy: str, found: Discovered) -> None:
        result, counts = found.discovery, found.mapping
        if self.data({**result.to_json(), "mapping": counts}, sort_keys=True):
            return
        c = result.counts
        kind = "full read" if result.full else "changes only"
        click.echo(
            f"{academy} ({kind}): {c['users']} users ({c['staff']} staff, {c['pupils']} pupils, "
            f"{c['guests']} guests, {c['disabled']} disabled), {c['groups']} groups, {c['memberships']} "
            f"memberships, {c['owners']} owners"
        )
        click.echo("mapping: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items())))
        by_kind: dict[str, list[dict[str, str]]] = {}
        for f in result.findings:
            by_kind.setdefault(f["kind"], []).append(f)
        for kind_name, items in sorted(by_kind.items()):
            echo(f"  {kind_name}: {len(items)} - {items[0]['handling']}")
            for f in items[:3]:
                echo(f"      {f['display']}: {f['message']}")

    # ---- tenant commands ----

    def preflight(self, report: Report) -> None:
        from migrations.safety.redaction import redact

        if self.data({"ok": report.ok, "checks": [c.as_dict() for c in report.checks]}):
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for column in ("check", "tenant", "result", "fix"):
            table.add_column(column, overflow="fold")
        for c in report.checks:
            table.add_row(
                c.check,
                c.tenant,
                ("ok: " if c.ok else "BLOCKS: ") + redact(c.result),
                redact(c.fix),
                style=None if c.ok else "red",
            )
        width = None if sys.stdout.isatty() else 200
        Console(highlight=False, markup=False, width=width).print(table)
        if report.ok:
            click.echo("preflight: ok")

    def bootstrap(self, result: BootstrapResult) -> None:
        if self.data(result.as_dict()):
            return
        if result.registered_now:
            click.echo(f"registered {result.extension}")
        else:
            click.echo(f"{result.extension} already registered; nothing changed")
        for who, names in result.request.items():
            click.echo(f"app registration ({who}) requests application permissions: {', '.join(names)}")
        for c in result.consent:
            click.echo(f"consent needed in {c['tenant']}: {c['missing']}\n  admin consent: {c['url']}")

    def provisioned(self, academy: str, result: ProvisionResult) -> None:
        if self.data(result.as_dict()):
            return
        click.echo(
            f"{academy}: {result.ready} OneDrives ready, {len(result.waiting)} waiting, "
            f"{result.requested} requested in {result.calls} calls"
            + (f", {result.not_created} users not yet created" if result.not_created else "")
            + (
                f", {len(result.cannot_have)} users cannot have a OneDrive"
                " (sign-in blocked or no SharePoint plan)"
                if result.cannot_have
                else ""
            )
        )

    # ---- the audit log ----

    def audit(self, entries: list[dict[str, Any]], academy: str | None) -> None:
        from migrations.safety.sanitise import report_text, terminal_text

        if self.as_json:
            click.echo(report_text(json.dumps(entries, indent=2, ensure_ascii=False)))
            return
        if not entries:
            click.echo("no audited actions" + (f" for {academy}" if academy else ""))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for column in ("at", "operator", "host", "command", "academy", "phase", "plan", "outcome"):
            table.add_column(column)
        for e in entries:
            table.add_row(
                *(
                    terminal_text(e[k] or "")
                    for k in ("at", "operator", "host", "command", "academy", "phase", "plan_id", "outcome")
                ),
                style="red" if e["outcome"] not in ("succeeded", "ok", "dry-run") else None,
            )
        # Piped output keeps whole values (scripts and CI logs); a terminal gets a table that fits.
        width = None if sys.stdout.isatty() else 220
        Console(highlight=False, markup=False, width=width).print(table)


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[ProgressFn | None]:
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
