"""The application layer: plan, run, verify, rollback and status of every phase, discovery and the mapping,
preflight and OneDrive provisioning, as Python calls. The CLI parses, calls this, and renders what it
returns; nothing here prints. Each call opens the connections it needs, audits what it changed, and raises
an `OperationError` (exit 1) or a `ConfigError` (exit 2) when refused.

The engine (core/) never imports a phase; this module is where the phases are put to work together (the
domain phase's switched sign-in names handed to identity's verification, files provisioning OneDrives
before its checks).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from migrations.core.errors import OperationError, PlanningError
from migrations.core.options import PlanOptions, RunOptions, phase_options
from migrations.core.registry import PHASE_ORDER, PhaseEnv, PhaseHandler, PhaseRun, load_phases
from migrations.core.registry import phase as get_phase

if TYPE_CHECKING:
    from migrations.core.plan import Plan
    from migrations.core.store import StateStore
    from migrations.graph.client import Connections
    from migrations.identity.discovery import Discovery
    from migrations.readiness.onedrive import ProvisionResult
    from migrations.readiness.preflight import Report
    from trust import Academy, Trust

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]
# Given a label, a context holding the progress callback for the work inside it (None: no progress shown).
Progress = Callable[[str], AbstractContextManager[ProgressFn | None]]
# Phases whose preflight gate runs before the run's connections open: files provisions OneDrives (writes
# through its own connections) before its checks. Every other phase is checked inside the run's connections.
GATED_BEFORE_RUN = ("files",)


class Site(Protocol):
    """Where the config and state are, and which Graph to talk to (the CLI's AppContext is one)."""

    graph_url: str | None
    state_path: Path

    def trust(self) -> Trust: ...

    def store(self, *, create: bool = True, readonly: bool = False) -> StateStore: ...

    def operator(self) -> tuple[str, str]: ...


def _no_progress(label: str) -> AbstractContextManager[ProgressFn | None]:
    return nullcontext(None)


# ---- results -------------------------------------------------------------------------------------------


# A run or rollback that stopped to wait for something outside trustfold ends well (exit 0): the next run
# carries on. The domain phase waits for DNS and for the legacy tenant's removal of the domain.
CHECKPOINTS = ("succeeded", "waiting-for-dns", "waiting-for-removal")


@dataclass
class RunOutcome:
    academy: str
    phase: str
    plan: Plan
    result: PhaseRun | None  # None for a dry run

    @property
    def waiting_for_dns(self) -> bool:
        return self.result is not None and self.result.status == "waiting-for-dns"

    @property
    def waiting_for_removal(self) -> bool:
        return self.result is not None and self.result.status == "waiting-for-removal"

    def problem(self) -> str | None:
        """Why the command exits 1, or None."""
        r = self.result
        if r is None or r.status in CHECKPOINTS:
            return None
        licences = r.counts.get("licence_problems", 0)
        unlicensed = f", {licences} user(s) without an active licence (see the failures)" if licences else ""
        return (
            f"{self.phase} for {self.academy}: {r.counts.get('failed', 0)} step(s) failed{unlicensed}; "
            "fix the cause and run again (completed steps are not repeated)"
        )


@dataclass
class RolledBack:
    phase: str
    steps: list[str]  # each undo step, described
    result: PhaseRun | None  # None when only shown


@dataclass
class Rollback:
    academy: str
    parts: list[RolledBack]
    carried_out: bool

    def problem(self) -> str | None:
        failed = [p.phase for p in self.parts if p.result and p.result.status not in CHECKPOINTS]
        return f"rollback of {', '.join(failed)} had failures; run it again" if failed else None


@dataclass
class Verified:
    academy: str
    detail: dict[str, Any]  # {"ok", "checked", "differences", <phase>: its part, ...}

    @property
    def ok(self) -> bool:
        return bool(self.detail["ok"])

    @property
    def differences(self) -> list[dict[str, str]]:
        return list(self.detail["differences"])

    def problem(self) -> str | None:
        return None if self.ok else f"verification found {len(self.differences)} difference(s)"


@dataclass
class StatusLine:
    academy: str
    phase: str
    status: str
    updated_at: str | None
    last_run: str | None
    last_run_status: str | None
    done: int
    planned: int
    failed: int
    locked_by: str | None
    # A phase stopped at a checkpoint (waiting-for-dns, waiting-for-removal): since when it waits.
    waiting_since: str | None = None
    # licences.mode group (users): members whose group licence is not Active (findings in the run's
    # failures), and how long Entra took to license every member (None: not finished, or not measured).
    licence_problems: int = 0
    licence_processing_s: float | None = None


def _waiting_since(row: dict[str, Any] | None) -> str | None:
    if not row or not str(row["status"]).startswith("waiting-for-"):
        return None
    since = (row.get("detail") or {}).get("waiting_since")
    if isinstance(since, int | float):
        return datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
    return str(since) if since else None


@dataclass
class Discovered:
    discovery: Discovery
    mapping: dict[str, int] = field(default_factory=dict)  # mapping counts by kind and action


# ---- the shared frame: connections, audit, lock --------------------------------------------------------


async def _with_env(
    site: Site,
    code: str,
    fn: Callable[[PhaseEnv], Awaitable[T]],
    options: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> T:
    from migrations.graph.client import open_connections, parse_budget

    trust = site.trust()
    academy = trust.academy(code)
    store = site.store()
    options = options or {}
    budget = parse_budget(options.get("write_budget") or "3000/150")
    async with open_connections(
        trust, site.graph_url, write_budget=budget, academies=(code,), window_dir=site.state_path.parent
    ) as conns:
        env = PhaseEnv(
            trust,
            academy,
            store,
            conns,
            site.operator()[0],
            site.state_path.parent / "runs",
            progress,
            options,
        )
        return await fn(env)


def _audit(
    site: Site,
    command: str,
    outcome: str,
    academy: str | None = None,
    phase: str | None = None,
    plan_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    user, host = site.operator()
    site.store().audit(
        operator=user,
        host=host,
        command=command,
        outcome=outcome,
        academy=academy,
        phase=phase,
        plan_id=plan_id,
        detail=detail,
    )


@contextmanager
def _locked(site: Site, academy: str, phases: tuple[str, ...], command: str) -> Iterator[None]:
    """The run lock of ACADEMY's PHASES for the block; a live holder elsewhere is exit 1 naming it."""
    from migrations.core.locks import run_lock

    with run_lock(site.store(), academy, phases, operator=site.operator()[0], command=command):
        yield


# ---- plan and run --------------------------------------------------------------------------------------


def plan(site: Site, academy: str, phase: str, options: PlanOptions) -> Plan:
    """Compute, store (numbered) and return the steps of PHASE for ACADEMY. Changes nothing in any tenant."""
    site.trust().academy(academy)
    handler = get_phase(phase)

    async def go(env: PhaseEnv) -> Plan:
        p = await handler.plan(env)
        p.options = options.planning()
        p.save(env.store)
        env.store.set_phase_status(academy, phase, "planned", {"plan": p.number, "steps": len(p.steps)})
        return p

    return asyncio.run(_with_env(site, academy, go, phase_options(options)))


async def _plan_to_apply(env: PhaseEnv, handler: PhaseHandler, options: RunOptions) -> Plan:
    from migrations.core.review import reviewed_plan

    if options.replan:
        if options.dry_run:
            env.options["review"] = True  # show what would be planned; store nothing
        p = await handler.plan(env)
        env.options.pop("review", None)
        p.options = options.plan.planning()
        if not options.dry_run:
            p.save(env.store)
        return p
    return await reviewed_plan(env, handler, options.plan_number)


def run(
    site: Site, academy: str, phase: str, options: RunOptions, progress: Progress = _no_progress
) -> RunOutcome:
    """Apply the reviewed plan (re-derived now: PlanChanged if the tenants or mapping moved) or, with replan,
    a new one; behind the preflight gate and the run lock. A dry run returns the plan and changes nothing."""
    site.trust().academy(academy)
    handler = get_phase(phase)
    if options.abandon_packages:
        _check_abandon(site, academy, phase, options.abandon_packages)
    gate_in_run = not options.skip_preflight and not options.dry_run and phase not in GATED_BEFORE_RUN

    async def go(env: PhaseEnv) -> tuple[Plan, PhaseRun | None]:
        if phase == "mail" and not options.dry_run:
            await _wait_for_mailboxes(env)
        if gate_in_run:
            from migrations.readiness.run_gate import gated_plan

            p = await gated_plan(
                env, phase, lambda: _plan_to_apply(env, handler, options), alongside=not options.replan
            )
        else:
            p = await _plan_to_apply(env, handler, options)
        if options.dry_run:
            return p, None
        return p, await handler.run(env, p, concurrency=options.concurrency)

    if options.dry_run:
        p, _ = asyncio.run(_with_env(site, academy, go, phase_options(run=options)))
        return RunOutcome(academy, phase, p, None)
    with _locked(site, academy, (phase,), f"run {academy} --phase {phase}"):
        # Under the lock: the gate may provision OneDrives (a write) and must see no other run's half-work.
        if not gate_in_run:
            gate(site, academy, phase, options.skip_preflight)  # exit 1 naming the checks that block it
        with progress(f"{academy} {phase}") as bar:
            try:
                p, result = asyncio.run(_with_env(site, academy, go, phase_options(run=options), bar))
            except OperationError as exc:
                _audit(site, f"run --phase {phase}", "failed", academy, phase, detail={"error": str(exc)})
                raise
    assert result is not None
    _audit(
        site,
        f"run --phase {phase}",
        result.status,
        academy,
        phase,
        str(p.number),
        {**result.counts, "digest": p.digest},
    )
    return RunOutcome(academy, phase, p, result)


def _check_abandon(site: Site, academy: str, phase: str, ids: tuple[str, ...]) -> None:
    """`--abandon-package`: bad input (exit 2, nothing changed) unless each id is an unfinished Migration API
    package of this academy's files phase."""
    from trust import ConfigError

    if phase != "files":
        raise ConfigError("command line", "--abandon-package is for --phase files", field="--abandon-package")
    store = site.store()
    for pid in ids:
        row = store.rows(
            "SELECT state FROM bulk_packages WHERE academy = ? AND package_id = ?", (academy, pid)
        )
        if not row or row[0]["state"] in ("done", "abandoned"):
            what = "is already settled" if row else "is not one of its Migration API packages"
            raise ConfigError(
                "command line", f"package {pid!r} {what} (academy {academy})", field="--abandon-package"
            )


# ---- verify, rollback, status --------------------------------------------------------------------------


def verify(site: Site, academy: str) -> Verified:
    """Every phase's verification for ACADEMY: identity's (users, licences, groups, members against the
    mapping) at the top, each other phase's part under its name; differences and counts summed."""
    from migrations.domain.verify import switched_upns

    site.trust().academy(academy)

    async def go(env: PhaseEnv) -> dict[str, Any]:
        phases = load_phases()
        # The domain phase may have moved sign-in names: identity expects the UPNs it gave.
        env.switched_upns = switched_upns(env.store, academy) if "domain" in phases else {}
        clock = time.monotonic()
        result = await phases["identity"].verify(env)
        assert result is not None
        # Where verification spends its time, per phase (bench/demo_time.py prints it).
        seconds = {"identity": round(time.monotonic() - clock, 2)}
        for name, handler in sorted(phases.items()):
            clock = time.monotonic()
            part = None if name == "identity" else await handler.verify(env)
            if part is None:
                continue
            seconds[name] = round(time.monotonic() - clock, 2)
            result[name] = part
            result["differences"] += part.get("differences", [])
            result["checked"] += part.get("checked", 0)
        result["ok"] = not result["differences"]
        result["seconds"] = seconds
        return result

    detail = asyncio.run(_with_env(site, academy, go))
    out = Verified(academy, detail)
    site.store().set_phase_status(academy, "verify", "done" if out.ok else "failed", detail)
    summary = {
        "differences": len(out.differences),
        "seconds": detail.get("seconds", {}),
        "files_seconds": (detail.get("files") or {}).get("seconds", {}),
    }
    _audit(site, "verify", "ok" if out.ok else "differences", academy, "verify", detail=summary)
    return out


def rollback(
    site: Site,
    academy: str,
    phases: tuple[str, ...],
    *,
    carry_out: bool,
    purge: bool = False,
    dns_wait: int = 60,
    removal_wait: int = 60,
) -> Rollback:
    """The undo steps of PHASES (latest phase first), from the journal; carried out (under the run lock) only
    with `carry_out`."""
    site.trust().academy(academy)
    ordered = sorted(set(phases), key=lambda p: -PHASE_ORDER.index(p))

    async def go(env: PhaseEnv) -> list[RolledBack]:
        out = []
        for name in ordered:
            handler = get_phase(name)
            steps = await handler.rollback_steps(env)
            result = await handler.rollback(env, steps, purge=purge) if carry_out and steps else None
            out.append(RolledBack(name, [s.describe() for s in steps], result))
        return out

    options = phase_options(dns_wait=dns_wait, removal_wait=removal_wait)
    if not carry_out:
        return Rollback(academy, asyncio.run(_with_env(site, academy, go, options)), False)
    with _locked(site, academy, tuple(ordered), f"rollback {academy} --phase {','.join(ordered)}"):
        parts = asyncio.run(_with_env(site, academy, go, options))
    for part in parts:
        if part.result:
            r = part.result
            _audit(site, f"rollback --phase {part.phase}", r.status, academy, part.phase, detail=r.counts)
    return Rollback(academy, parts, True)


def status(site: Site, academy: str | None) -> list[StatusLine]:
    """Per academy and phase: status, progress, last run, failures, and who holds its run lock."""
    from migrations.core.locks import holders

    trust = site.trust()
    codes = [trust.academy(academy).code] if academy else [a.code for a in trust.academies]
    store = site.store(readonly=True)
    locks = {(h.academy, h.phase): h for h in holders(store)}
    statuses = {(r["academy"], r["phase"]): r for r in store.phase_statuses()}
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in store.rows("SELECT * FROM runs ORDER BY started_at"):
        runs[(r["academy"], r["phase"])] = dict(r)
    out = []
    for code in codes:
        for ph in PHASE_ORDER:
            s = statuses.get((code, ph))
            last = runs.get((code, ph))
            counts = json.loads(last["counts"] or "{}") if last else {}
            out.append(
                StatusLine(
                    academy=code,
                    phase=ph,
                    status=s["status"] if s else "not-started",
                    updated_at=s["updated_at"] if s else None,
                    last_run=last["id"] if last else None,
                    last_run_status=last["status"] if last else None,
                    done=counts.get("done", 0),
                    planned=counts.get("planned", 0),
                    failed=counts.get("failed", 0),
                    locked_by=locks[(code, ph)].describe() if (code, ph) in locks else None,
                    waiting_since=_waiting_since(s),
                    licence_problems=int(counts.get("licence_problems", 0)),
                    licence_processing_s=counts.get("licence_processing_s"),
                )
            )
    return out


# ---- discovery and the mapping (identity's) ------------------------------------------------------------


def discover(site: Site, academy: str, *, full: bool) -> Discovered:
    """Inventory ACADEMY's legacy tenant (delta unless full), map it to the trust, and scan its drives when it
    copies files, so file problems are findings before anything is copied."""
    from migrations.graph.client import open_connections
    from migrations.graph.concurrently import both
    from migrations.identity.discovery import discover as run_discovery
    from migrations.identity.mapping import compute_mapping, read_target

    trust = site.trust()
    a = trust.academy(academy)
    store = site.store()

    async def go() -> Discovered:
        async with open_connections(
            trust, site.graph_url, academies=(academy,), window_dir=site.state_path.parent
        ) as conns:
            result, target = await both(
                run_discovery(trust, a, store, conns.source(academy), full=full),
                read_target(trust, conns.target),
            )
            counts = compute_mapping(trust, a, store, target)
            counts.update(await _discover_teams(site, a, store, conns))
            if a.files.enabled:
                counts.update(await _discover_drives(site, a, store, conns))
                status = {s["phase"]: s for s in store.phase_statuses(academy)}.get("discover")
                if status:
                    result.findings = status["detail"].get("findings", result.findings)
            counts.update(await _discover_mail(site, a, store, conns))
            # Shown with this discovery (archives, unnamed shared mailboxes, what is never carried); the
            # report reads them from the mail tables, so they are not stored with the discover status.
            result.findings = [
                *result.findings,
                *(
                    dict(r)
                    for r in store.rows(
                        "SELECT kind, object_id, display, message, handling FROM mail_findings "
                        "WHERE academy = ? ORDER BY kind, display, object_id",
                        (academy,),
                    )
                ),
            ]
        return Discovered(result, counts)

    found = asyncio.run(go())
    changes = {"counts": found.discovery.counts, "changes": found.discovery.changes}
    _audit(site, "discover", "ok", academy, "discover", detail=changes)
    return found


async def _discover_drives(
    site: Site, academy: Academy, store: StateStore, conns: Connections
) -> dict[str, int]:
    files = load_phases().get("files")
    if files is None:
        return {}
    env = PhaseEnv(site.trust(), academy, store, conns, site.operator()[0], site.state_path.parent / "runs")
    try:
        totals = await files.discover(env)
    except PlanningError as exc:
        raise PlanningError(f"users and groups discovered; drives not scanned: {exc}") from None
    if totals is None:
        return {}
    return {"drives": totals["drives"], "drive_items": totals["items"]}


async def _discover_teams(
    site: Site, academy: Academy, store: StateStore, conns: Connections
) -> dict[str, int]:
    """Which source groups have a team, and which are class teams: the groups phase leaves class groups to the
    teams phase, which makes them as education classes (the educationClass template needs one)."""
    teams = load_phases().get("teams")
    if teams is None:
        return {}
    env = PhaseEnv(site.trust(), academy, store, conns, site.operator()[0], site.state_path.parent / "runs")
    return await teams.discover(env) or {}


async def _discover_mail(
    site: Site, academy: Academy, store: StateStore, conns: Connections
) -> dict[str, int]:
    """Each mapped person's and named shared mailbox, read before any mail moves, so what the APIs cannot
    carry (archives, unnamed shared mailboxes) is a finding at discovery. Mailboxes that cannot be read are
    a warning here, never a failed discovery: the mail phase's own plan reads them again."""
    import logging

    from migrations.graph.client import GraphError
    from migrations.safety.sanitise import terminal_text

    mail = load_phases().get("mail")
    if mail is None:
        return {}
    env = PhaseEnv(site.trust(), academy, store, conns, site.operator()[0], site.state_path.parent / "runs")
    try:
        totals = await mail.discover(env)
    except GraphError as exc:
        log = logging.getLogger("trustfold.mail")
        log.warning("mailboxes not read at discovery: %s", terminal_text(str(exc)))
        return {}
    if totals is None:
        return {}
    return {"mailboxes": totals["mailboxes"], "mail_items": totals["mail_items"]}


def export_mapping(site: Site, academy: str) -> str:
    """The computed mapping as CSV, for review (formula-like cells quoted so a spreadsheet shows them)."""
    from migrations.identity.mapping import export_csv

    site.trust().academy(academy)
    return export_csv(site.store(readonly=True), academy)


def import_mapping(site: Site, academy: str, file: Path) -> dict[str, int]:
    """Validate an edited mapping (ConfigError naming line and column) and store it for the next plan."""
    from migrations.graph.client import open_connections
    from migrations.identity.mapping import import_csv, read_target

    trust = site.trust()
    a = trust.academy(academy)
    store = site.store()

    async def go() -> dict[str, int]:
        async with open_connections(trust, site.graph_url) as conns:
            target = await read_target(trust, conns.target, guarded=True)
        return import_csv(trust, a, store, file, target)

    counts = asyncio.run(go())
    _audit(site, "mapping import", "ok", academy, detail={"file": str(file), **counts})
    return counts


# ---- readiness: preflight, OneDrives, the gate in front of `run` ---------------------------------------


async def _preflight(
    site: Site,
    academies: tuple[Academy, ...],
    phases: tuple[str, ...] | None = None,
    *,
    onedrives: bool = True,
) -> Report:
    from migrations.graph.client import open_connections
    from migrations.readiness.preflight import PHASES, run_preflight

    trust = site.trust()
    # With a store, the SharePoint reads spend (and save) the windows the files run loads next.
    window_dir = site.state_path.parent if site.state_path.exists() else None
    async with open_connections(trust, site.graph_url, academies=(), window_dir=window_dir) as conns:
        if site.state_path.exists():
            return await run_preflight(
                trust, conns, site.store(), academies, phases or PHASES, onedrives=onedrives
            )
        # Nothing discovered yet: check against an empty store, leaving no state file behind.
        import tempfile

        from migrations.core.store import StateStore

        with tempfile.TemporaryDirectory() as tmp:
            store = StateStore.open(Path(tmp) / "empty.db")
            try:
                return await run_preflight(trust, conns, store, academies, phases or PHASES)
            finally:
                store.close()


def preflight(site: Site, academies: tuple[str, ...]) -> Report:
    """Every check, writing nothing to any tenant, for ACADEMIES (default: all); kept in the state store (when
    there is one) for the report's readiness section."""
    from migrations.readiness.preflight import record

    trust = site.trust()
    chosen = tuple(trust.academy(c) for c in academies) if academies else trust.academies
    report = asyncio.run(_preflight(site, chosen))
    if site.state_path.exists():
        record(site.store(), trust, report)
    return report


def provision_onedrive(
    site: Site, academy: str, *, timeout: float = 600.0, progress: Progress = _no_progress
) -> ProvisionResult:
    """Request OneDrives for ACADEMY's mapped, licensed users and wait up to TIMEOUT seconds for them."""
    from migrations.graph.client import open_connections
    from migrations.readiness.onedrive import provision

    trust = site.trust()
    a = trust.academy(academy)

    async def go(bar: ProgressFn | None) -> ProvisionResult:
        async with open_connections(trust, site.graph_url, window_dir=site.state_path.parent) as conns:
            return await provision(trust, conns, site.store(), a, timeout=timeout, progress=bar)

    with progress(f"{academy} OneDrives") as bar:
        result = asyncio.run(go(bar))
    outcome = "succeeded" if not result.waiting else "waiting"
    _audit(site, "provision-onedrive", outcome, academy, detail=result.as_dict())
    return result


def gate(site: Site, academy: str, phase: str, skip: bool) -> None:
    """Before a run of PHASE: provision OneDrives for files, then refuse to start (exit 1) when a preflight
    check for this academy and phase blocks (unless skipped)."""
    from migrations.readiness.run_gate import PreflightBlocked, blocking, gated_phases, refusal

    if skip:
        return
    a = site.trust().academy(academy)
    provisioning: OperationError | None = None
    ready = False
    if phase == "files" and a.files.enabled and a.files.onedrive:
        try:
            ready = not provision_onedrive(site, academy).waiting
        except OperationError as exc:
            provisioning = exc  # preflight below names the cause and its fix (credential, permission)
    # Provisioning just looked at every mapped user's OneDrive: preflight need not look again.
    report = asyncio.run(_preflight(site, (a,), gated_phases(phase), onedrives=not ready))
    blocked = blocking(report, phase)
    if provisioning is not None and not blocked:
        raise provisioning
    if blocked:
        raise PreflightBlocked(refusal(academy, phase, blocked))


async def _wait_for_mailboxes(env: PhaseEnv) -> None:
    """Before a mail run: wait (bounded) for Exchange to provision the trust users' mailboxes and name who is
    still waiting; the run carries the mailboxes that are there, the next pass the others."""
    import logging

    from migrations.readiness.mailboxes import MAILBOX_WAIT_S, wait_for_mailboxes
    from migrations.safety.sanitise import terminal_text

    waited = await wait_for_mailboxes(env.store, env.academy.code, env.conns.target, MAILBOX_WAIT_S)
    # Read seconds ago: the plan straight after takes these instead of asking each trust user again.
    env.options["_mail_target_settings"] = waited.settings
    if waited.waiting:
        logging.getLogger("trustfold.mail").warning("%s", terminal_text(waited.message()))
