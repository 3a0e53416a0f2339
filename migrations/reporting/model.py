"""The report's data: what the state store says about each academy, phase by phase.

Reads only the store (runs, phase_status, journal, metrics, audit) plus, when available, the trust's
declaration for names and waves. Follows the reporting contract in docs/contracts.md: counts per phase come
from the phase's status detail when the engine wrote them there (under "counts" or at its top level),
otherwise from the sum of its run rows;
throttling, requests and timings always come from the run rows (they accumulate over resumed runs).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from migrations.core.registry import PHASE_ORDER, ROLLBACK_ALL
from migrations.core.store import now
from migrations.reporting.accounts import accounts_summary
from migrations.reporting.mail import mail_summary
from migrations.reporting.sharing import sharing_summary
from migrations.reporting.teams import teams_summary
from migrations.reporting.verification import verification_kinds

if TYPE_CHECKING:
    from migrations.core.store import StateStore
    from trust import Trust

# The report's phase rows (the domain cut-over has a section of its own).
PHASES = PHASE_ORDER[: PHASE_ORDER.index("domain")]
# Phases whose runs change the trust tenant, and so have a migrated/skipped/failed tally.
CHANGE_PHASES = ROLLBACK_ALL
COUNT_KEYS = ("planned", "done", "skipped", "failed", "already_present", "bytes", "renamed")
RUN_KEYS = ("requests", "throttled", "wait_seconds")
# Journal events that mean an object now exists in the target because of this tool.
APPLIED_EVENTS = ("done", "applied", "created", "succeeded")


@dataclass
class PhaseReport:
    phase: str
    status: str = "not-started"
    planned: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    already_present: int = 0
    bytes: int = 0
    renamed: int = 0
    requests: int = 0
    throttled: int = 0
    wait_seconds: float = 0.0
    runs: int = 0
    last_run_status: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    rollback_available: bool = False
    updated_at: str | None = None


@dataclass
class AcademyReport:
    code: str
    name: str
    wave: int | None
    phases: list[PhaseReport]
    findings: list[dict[str, Any]] = field(default_factory=list)
    finding_counts: dict[str, int] = field(default_factory=dict)
    # Per kind: how many and how they were handled (distinct handlings, most common first).
    finding_summary: list[dict[str, Any]] = field(default_factory=list)
    discovered: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] | None = None
    # The verify result per kind of check, identity first (migrations/reporting/verification.py).
    verification: list[dict[str, Any]] = field(default_factory=list)
    # Sharing carried / not carried and why (migrations/reporting/sharing.py); {} before the phase plans.
    sharing: dict[str, Any] = field(default_factory=dict)
    # Mailboxes, items and GB carried, what was not and why (migrations/reporting/mail.py); {} before mail.
    mail: dict[str, Any] = field(default_factory=dict)
    # Teams, channels, messages carried and what was not (migrations/reporting/teams.py); {} before the phase.
    teams: dict[str, Any] = field(default_factory=dict)
    # Guarded matches, disabled accounts carried, guests listed (reporting/accounts.py); {} if none.
    accounts: dict[str, Any] = field(default_factory=dict)
    rollback_available: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    # The domain phase's cut-over runbook (migrations.domain.runbook.report_section), when it has run.
    cutover: dict[str, Any] | None = None

    def phase(self, name: str) -> PhaseReport:
        return next(p for p in self.phases if p.phase == name)

    @property
    def overall(self) -> str:
        """One word for the academy: failed beats running beats done."""
        statuses = [p.status for p in self.phases]
        if "failed" in statuses or (self.verify is not None and not self.verify.get("ok", False)):
            return "attention"
        if "running" in statuses:
            return "running"
        if all(s == "done" for s in statuses):
            return "complete"
        if all(s == "not-started" for s in statuses):
            return "not-started"
        if "rolled-back" in statuses:
            return "rolled-back"
        return "in-progress"


@dataclass
class SeriesPoint:
    t: float  # seconds since the first sample of the report
    items_per_s: float
    bytes_per_s: float
    throttled: float


@dataclass
class Report:
    generated_at: str
    trust_name: str
    trust_code: str
    scope: str | None
    academies: list[AcademyReport]
    totals: dict[str, float]
    throughput: list[SeriesPoint]
    audit_entries: int
    # Readiness: latest preflight per tenant, bootstrap, OneDrive totals (migrations/reporting/onboarding.py).
    onboarding: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for a, academy in zip(data["academies"], self.academies, strict=True):
            a["overall"] = academy.overall
        return data


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return None


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _academy_list(store: StateStore, trust: Trust | None) -> list[tuple[str, str, int | None]]:
    declared: list[tuple[str, str, int | None]] = (
        [(a.code, a.name, a.wave) for a in trust.academies] if trust is not None else []
    )
    known = {code for code, _, _ in declared}
    seen = {
        r[0]
        for table in ("runs", "phase_status")
        for r in store.rows(f"SELECT DISTINCT academy FROM {table}")
    }
    # Academies the store knows but config no longer declares still belong in the record.
    extra: list[tuple[str, str, int | None]] = [(code, code, None) for code in sorted(seen - known)]
    return declared + extra


def _detail_counts(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The phase's own tally: under "counts" (the contract's wording) or at the top level of the detail,
    where the identity engine writes it. None when the engine wrote neither."""
    if isinstance(detail.get("counts"), dict):
        return detail["counts"]
    top = {k: detail[k] for k in COUNT_KEYS if k in detail}
    return top or None


def _phase_report(store: StateStore, code: str, phase: str, status_row: dict[str, Any] | None) -> PhaseReport:
    report = PhaseReport(phase=phase)
    runs = store.rows(
        "SELECT kind, status, counts, started_at, finished_at FROM runs "
        "WHERE academy = ? AND phase = ? ORDER BY started_at",
        (code, phase),
    )
    summed: defaultdict[str, float] = defaultdict(float)
    for run in runs:
        counts = _json(run["counts"])
        if run["kind"] != "rollback":
            for key in COUNT_KEYS:
                summed[key] += _num(counts.get(key))
        for key in RUN_KEYS:
            summed[key] += _num(counts.get(key))
    detail = status_row["detail"] if status_row else {}
    detail_counts = _detail_counts(detail) if phase in CHANGE_PHASES else None
    for key in COUNT_KEYS:
        value = _num(detail_counts.get(key)) if detail_counts is not None else summed[key]
        setattr(report, key, int(value))
    report.requests = int(summed["requests"])
    report.throttled = int(summed["throttled"])
    report.wait_seconds = round(summed["wait_seconds"], 3)
    report.runs = len(runs)
    if runs:
        report.last_run_status = runs[-1]["status"]
        report.started_at = runs[0]["started_at"]
        finished = [r["finished_at"] for r in runs if r["finished_at"]]
        report.finished_at = max(finished) if finished else None
        report.duration_seconds = round(
            sum(s for r in runs if (s := _seconds(r["started_at"], r["finished_at"])) is not None), 3
        )
    if status_row:
        report.status = status_row["status"]
        report.updated_at = status_row["updated_at"]
    elif runs:
        report.status = {"succeeded": "done", "failed": "failed", "running": "running"}.get(
            runs[-1]["status"], "planned"
        )
    if phase in CHANGE_PHASES and report.status != "rolled-back":
        placeholders = ", ".join("?" for _ in APPLIED_EVENTS)
        created = store.rows(
            "SELECT count(*) FROM journal WHERE academy = ? AND phase = ? AND target_id IS NOT NULL "
            f"AND event IN ({placeholders})",
            (code, phase, *APPLIED_EVENTS),
        )[0][0]
        report.rollback_available = created > 0
    return report


def _throughput(store: StateStore, run_ids: list[str]) -> list[SeriesPoint]:
    """Rates per sample second across the given runs.

    Samples are cumulative per run (items_done so far); a value lower than the previous one is read as a
    fresh counter. Rates from all runs are summed into one-second buckets on a shared clock."""
    if not run_ids:
        return []
    placeholders = ", ".join("?" for _ in run_ids)
    rows = store.rows(
        f"SELECT run_id, at, name, value FROM metrics WHERE run_id IN ({placeholders}) "
        "ORDER BY run_id, name, at",
        run_ids,
    )
    buckets: dict[int, dict[str, float]] = {}
    previous: dict[tuple[str, str], float] = {}
    origin: datetime | None = None
    parsed = []
    for r in rows:
        try:
            at = datetime.fromisoformat(r["at"])
        except ValueError:
            continue
        parsed.append((r["run_id"], at, r["name"], float(r["value"])))
        origin = at if origin is None or at < origin else origin
    if origin is None:
        return []
    for run_id, at, name, value in parsed:
        key = (run_id, name)
        last = previous.get(key)
        delta = value if last is None or value < last else value - last
        previous[key] = value
        second = int((at - origin).total_seconds())
        bucket = buckets.setdefault(second, {"items_done": 0.0, "bytes_done": 0.0, "throttled": 0.0})
        if name in bucket:
            bucket[name] += delta
    # Seconds with no sample are idle seconds: zero, not a line drawn across the gap.
    empty = {"items_done": 0.0, "bytes_done": 0.0, "throttled": 0.0}
    return [
        SeriesPoint(
            t=float(s),
            items_per_s=round(b["items_done"], 3),
            bytes_per_s=round(b["bytes_done"], 3),
            throttled=b["throttled"],
        )
        for s in range(max(buckets) + 1)
        for b in (buckets.get(s, empty),)
    ]


def _finding_summary(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_kind: dict[str, Counter[str]] = {}
    for f in findings:
        by_kind.setdefault(str(f.get("kind", "other")), Counter())[str(f.get("handling", ""))] += 1
    return [
        {"kind": kind, "count": sum(h.values()), "handling": [text for text, _ in h.most_common(3) if text]}
        for kind, h in sorted(by_kind.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    ]


def _cutover(
    store: StateStore, row: dict[str, Any] | None, trust: Trust | None, code: str
) -> dict[str, Any] | None:
    from migrations.domain.runbook import report_section

    academy = next((a for a in trust.academies if a.code == code), None) if trust is not None else None
    return report_section(store, row or {"academy": code}, academy, trust)


def build_report(store: StateStore, trust: Trust | None = None, academy: str | None = None) -> Report:
    statuses: dict[tuple[str, str], dict[str, Any]] = {
        (s["academy"], s["phase"]): s for s in store.phase_statuses(academy)
    }
    academies: list[AcademyReport] = []
    for code, name, wave in _academy_list(store, trust):
        if academy is not None and code != academy:
            continue
        phases = [_phase_report(store, code, p, statuses.get((code, p))) for p in PHASES]
        discover = statuses.get((code, "discover"), {}).get("detail", {})
        findings = [f for f in discover.get("findings", []) if isinstance(f, dict)]
        sharing = sharing_summary(store, code)
        findings += sharing.get("findings", [])
        mail = mail_summary(store, code)
        findings += mail.get("findings", [])
        teams = teams_summary(store, code)
        findings += teams.get("findings", [])
        verify_row = statuses.get((code, "verify"))
        started = [p.started_at for p in phases if p.started_at]
        finished = [p.finished_at for p in phases if p.finished_at]
        report = AcademyReport(
            code=code,
            name=name,
            wave=wave,
            phases=phases,
            findings=findings,
            finding_counts=dict(sorted(Counter(str(f.get("kind", "other")) for f in findings).items())),
            discovered=discover.get("counts", {}) if isinstance(discover.get("counts"), dict) else {},
            verify=verify_row["detail"] if verify_row else None,
            verification=verification_kinds(verify_row["detail"] if verify_row else None),
            sharing={k: v for k, v in sharing.items() if k != "findings"},
            mail={k: v for k, v in mail.items() if k != "findings"},
            teams={k: v for k, v in teams.items() if k != "findings"},
            accounts=accounts_summary(store, code),
            rollback_available=any(p.rollback_available for p in phases),
            started_at=min(started) if started else None,
            finished_at=max(finished) if finished else None,
        )
        report.duration_seconds = _seconds(report.started_at, report.finished_at)
        report.finding_summary = _finding_summary(findings)
        report.cutover = _cutover(store, statuses.get((code, "domain")), trust, code)
        academies.append(report)

    totals: defaultdict[str, float] = defaultdict(float)
    for a in academies:
        for p in a.phases:
            if p.phase in CHANGE_PHASES:
                for key in ("done", "skipped", "failed", "already_present", "bytes", "renamed"):
                    totals[key] += getattr(p, key)
            totals["throttled"] += p.throttled
            totals["wait_seconds"] += p.wait_seconds
            totals["requests"] += p.requests
        totals["findings"] += len(a.findings)
    totals["wait_seconds"] = round(totals["wait_seconds"], 3)

    codes = [a.code for a in academies]
    run_ids: list[str] = []
    if codes:
        placeholders = ", ".join("?" for _ in codes)
        run_ids = [
            r[0]
            for r in store.rows(
                f"SELECT id FROM runs WHERE academy IN ({placeholders})",
                codes,
            )
        ]
    audit_count = len(store.audit_entries(academy))
    return Report(
        generated_at=now(),
        trust_name=trust.name if trust is not None else "trust",
        trust_code=trust.code if trust is not None else "",
        scope=academy,
        academies=academies,
        totals=dict(totals),
        throughput=_throughput(store, run_ids),
        audit_entries=audit_count,
        onboarding=_onboarding(store),
    )


def _onboarding(store: StateStore) -> dict[str, Any]:
    from migrations.reporting.onboarding import onboarding

    return onboarding(store)
