"""The rehearsal's orchestration: which commands `trustfold demo` runs, in what order, with live progress.

The commands themselves are run by an `invoke` callable the CLI passes in (so this module never imports
`cli/`), against a Graph URL the CLI obtains from `sandbox.testing` (so it never imports `sandbox/`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migrations.core.registry import PHASES

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from trust import Academy, Trust

# The phases the rehearsal runs academy by academy, in this order: mail (Outlook, not SharePoint) straight
# after the directory, so the OneDrives asked for after the users phase are made meanwhile; sharing (its
# own steps, migrations/permissions/demo.py) after files; teams after groups, memberships and files, long
# after the groups were made (Teams refuses a team on a new group for a while). The domain has its own
# sequence, for the first academy.
CHANGE_PHASES = ("users", "groups", "memberships", "mail", "files", "permissions", "teams")
assert set(CHANGE_PHASES) | {"domain"} == set(PHASES)  # a new phase must be placed here
EXIT_INTERRUPTED = 130  # what cli.main.run returns after a KeyboardInterrupt that reaches it


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


def demo_steps(trust: Trust, available: Collection[str]) -> list[DemoStep]:
    """Every command the rehearsal runs, wave by wave (trust.academies is sorted): each academy of the wave
    discovered first, then each academy's phases, then each academy's verify; a wave is verified before the
    next one starts.

    The order follows the legacy tenants' SharePoint budgets (Microsoft's per-minute window, by licence
    count): discovery reads every drive and spends most of an academy's minute, and verify's reads of what
    changed since the run need room in it again. With the wave's discovery first and its verifies last, the
    other academies' phases run while each window refills, instead of verify waiting out its own
    academy's discovery (the sequential form of academies side by side).

    Each phase is planned and applied by one `run --replan` (the plan is stored and numbered as `plan` would
    store it, then applied): a rehearsal has no one to review a plan between `plan` and `run`, and `run`
    re-deriving a plan it was just shown cost the demo the planning twice. The operator's flow (plan, review,
    run) is unchanged.

    `available` names the phases this build carries; a phase it lacks is left out (the caller says so)
    rather than failing every step."""
    from migrations.permissions.demo import demo_steps as sharing_steps

    waves: dict[int, list[Academy]] = {}
    for academy in trust.academies:
        waves.setdefault(academy.wave, []).append(academy)
    steps: list[DemoStep] = []
    for wave in waves.values():
        steps += [DemoStep(a.code, "discover", ["discover", a.code]) for a in wave]
        for academy in wave:
            code = academy.code
            for phase in CHANGE_PHASES:
                if phase == "permissions":
                    sharing = sharing_steps(academy, available)
                    steps += [DemoStep(code, label, argv) for label, argv in sharing]
                    continue
                if phase == "files" and not academy.files.enabled:
                    continue
                if phase not in available:
                    continue
                # Files reuse the drive scan discovery just made rather than spend the academy's SharePoint
                # budget reading every OneDrive again.
                reuse = ["--scan-age", "600"] if phase == "files" else []
                steps.append(
                    DemoStep(code, f"run {phase}", ["run", code, "--phase", phase, "--replan", *reuse])
                )
        steps += [DemoStep(a.code, "verify", ["verify", a.code]) for a in wave]
    return steps


def rehearse_domain(
    trust: Trust, graph_url: str, invoke: Callable[[str, str, list[str]], DemoOutcome]
) -> list[DemoOutcome]:
    """The domain cut-over for the first academy, after the other phases (migrations/domain/demo.py)."""
    from migrations.domain.demo import rehearse_domain as cut_over

    return cut_over(trust, graph_url, invoke)


def with_onboarding(trust: Trust, steps: list[DemoStep]) -> list[DemoStep]:
    """The rehearsal with the operator's first steps: preflight (showing the one-off set-up still needed),
    bootstrap; and each academy's OneDrives asked for as soon as its users are licensed (the users run),
    without waiting: SharePoint makes them while the groups, memberships and mail phases run, and the files
    run waits for any still missing (its gate provisions)."""
    out = [
        DemoStep(trust.code, "preflight (before set-up)", ["preflight", "--advisory"]),
        DemoStep(trust.code, "bootstrap", ["bootstrap", "--yes"]),
    ]
    copies = {s.academy for s in steps if s.label == "run files"}
    for step in steps:
        out.append(step)
        academy = step.academy
        if step.label == "run users" and academy in copies and trust.academy(academy).files.onedrive:
            argv = ["provision-onedrive", academy, "--no-wait"]
            out.append(DemoStep(academy, "request OneDrives", argv))
    return out


def interrupted(outcome: DemoOutcome) -> bool:
    """Ctrl-C in a step: click turns KeyboardInterrupt into Abort, which cli.main.run reports as "aborted"."""
    lines = outcome.output.strip().splitlines()
    aborted = outcome.code == 1 and bool(lines) and lines[-1].strip() == "aborted"
    return aborted or outcome.code == EXIT_INTERRUPTED


def why(output: str) -> str:
    """The line of a captured command's output that says what went wrong, on one line."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    text = errors[-1] if errors else (lines[-1] if lines else "no output")
    return text[:300]


class LiveItems:
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
def live_items(state_path: Path, step: DemoStep, *, enabled: bool) -> Iterator[LiveItems]:
    live = LiveItems(state_path, step)
    if enabled:
        live._thread.start()
    try:
        yield live
    finally:
        live._stop.set()
        if enabled:
            live._thread.join(timeout=2)


def rehearse(
    steps: list[DemoStep],
    invoke: Callable[[DemoStep], DemoOutcome],
    state_path: Path,
    echo: Callable[[str, bool], None],
) -> list[DemoOutcome]:
    """Run every step, on through failures so the report shows all of them; Ctrl-C in a step stops all.

    `echo(text, err)` prints a line when the output is not a terminal (one line per academy, CI logs)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from migrations.safety.sanitise import terminal_text

    outcomes: list[DemoOutcome] = []
    console = Console()
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,  # quiet when piped: one line per academy instead
    )
    last_step = {step.academy: i for i, step in enumerate(steps)}  # an academy's steps may interleave
    with progress:
        task = progress.add_task("starting", total=len(steps))
        for i, step in enumerate(steps):
            label = f"{step.academy}: {step.label}"
            progress.update(task, description=label)
            with live_items(state_path, step, enabled=console.is_terminal) as live:
                live.on_change = lambda n, label=label: progress.update(
                    task, description=f"{label} ({n:,} done)"
                )
                outcome = invoke(step)
            if interrupted(outcome):
                raise KeyboardInterrupt
            outcomes.append(outcome)
            progress.advance(task)
            if outcome.code != 0:
                # The captured output quotes tenant data: it reaches the terminal through the one filter.
                message = terminal_text(
                    f"{step.academy}: {step.label} exited {outcome.code}: {why(outcome.output)}"
                )
                if console.is_terminal:
                    progress.console.print(message, markup=False, highlight=False, style="red")
                else:
                    echo(message, True)
            last_of_academy = i == last_step[step.academy]
            if last_of_academy and not console.is_terminal:
                failed = sum(1 for o in outcomes if o.step.academy == step.academy and o.code != 0)
                echo(f"{step.academy}: done" + (f" ({failed} steps failed)" if failed else ""), False)
    return outcomes


def seconds_by_step(outcomes: list[DemoOutcome]) -> dict[str, float]:
    """Seconds per kind of step ("run users", "verify", ...) summed over academies: where the time goes."""
    totals: dict[str, float] = {}
    for o in outcomes:
        totals[o.step.label] = round(totals.get(o.step.label, 0.0) + o.seconds, 2)
    return totals


def summary_lines(store: StateStore, trust: Trust, elapsed: float, path: Path | None) -> list[str]:
    """The closing lines of a rehearsal: each academy's phases and verification, then the totals."""
    from migrations.reporting import build_report
    from migrations.reporting.model import CHANGE_PHASES as REPORTED_PHASES
    from migrations.reporting.render import bytesize

    report = build_report(store, trust)
    lines: list[str] = []
    for a in report.academies:
        verify = "not verified" if a.verify is None else ("verified" if a.verify.get("ok") else "DIFFERENCES")
        counts = ", ".join(
            f"{p.phase} {p.done + p.already_present}/{p.planned}"
            for p in a.phases
            if p.phase in REPORTED_PHASES
        )
        lines.append(f"{a.code:<12} wave {a.wave}  {counts}  {verify}")
    t = report.totals
    lines.append(
        f"migrated {int(t.get('done', 0))} objects, {bytesize(t.get('bytes', 0))} of files, "
        f"{int(t.get('failed', 0))} failed, {int(t.get('throttled', 0))} throttled answers "
        f"({t.get('wait_seconds', 0):.1f} s waited) in {elapsed:.0f} s"
    )
    lines.append(f"report: {path}")
    return lines
