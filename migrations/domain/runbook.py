"""The cut-over runbook: timestamped events per academy (kept in the phase status), the DNS change file an
operator hands to whoever holds the zone, and the staff notice text the report renders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from migrations.domain.steps import TXT_RE
from migrations.store import StateStore, now

PHASE = "domain"


def detail(store: StateStore, academy: str) -> dict[str, Any]:
    for r in store.phase_statuses(academy):
        if r["phase"] == PHASE:
            return dict(r["detail"] or {})
    return {}


def status(store: StateStore, academy: str) -> str:
    for r in store.phase_statuses(academy):
        if r["phase"] == PHASE:
            return str(r["status"])
    return "not-started"


def record(store: StateStore, academy: str, new_status: str, event: str | None = None, **extra: Any) -> None:
    """Set the phase status, appending `event` to the runbook kept in its detail."""
    d = detail(store, academy)
    book = list(d.get("runbook", []))
    if event:
        book.append({"at": now(), "event": event})
    d.update(extra)
    d["runbook"] = book[-200:]
    store.set_phase_status(academy, PHASE, new_status, d)


def dns_change_file(
    run_dir: Path, academy: str, publish: list[tuple[str, str]], withdraw: list[tuple[str, str]], then: str
) -> Path:
    """A zone-file style change request (mode 0600 like every run artefact). Values are checked against
    Entra's MS=ms######## shape, domains come from the validated config: nothing hostile reaches the file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / f"dns-change-{academy}.txt"
    lines = [
        f"; trustfold DNS change for academy {academy}, {now()}",
        "; Hand this to whoever holds the zone. TTL 3600. Then run: " + then,
    ]
    for name, text in withdraw:
        if TXT_RE.match(text):
            lines.append(f'; WITHDRAW (delete) this record:\n;   {name}. 3600 IN TXT "{text}"')
    for name, text in publish:
        if TXT_RE.match(text):
            lines.append(f'; PUBLISH this record:\n{name}. 3600 IN TXT "{text}"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def staff_notice(academy_name: str, domain: str, old_domain: str, switched: int, keep: bool) -> list[str]:
    """What users will notice, in plain words for the staff notice."""
    if keep:
        return [
            f"From the cut-over, {academy_name} staff and pupils sign in as name@{domain} again, now in the "
            f"trust's Microsoft 365 ({switched} account(s)).",
            f"Sign-in names ending @{old_domain} stop working for the trust accounts; "
            "passwords are unchanged.",
            "Old accounts in the school's former tenant sign in with @…onmicrosoft.com names until they are "
            "retired.",
        ]
    return [
        f"{domain} now belongs to the trust's Microsoft 365; staff and pupils keep their trust sign-in "
        f"names (@{old_domain}).",
        "Old accounts in the school's former tenant sign in with @…onmicrosoft.com names until they are "
        "retired.",
    ]


def report_section(row: dict[str, Any] | None, academy: Any, trust: Any) -> dict[str, Any] | None:
    """The cut-over runbook for the report: sequence with timestamps, DNS wait, what users will notice."""
    if not row:
        return None
    d = dict(row.get("detail") or {})
    events = [e for e in d.get("runbook", []) if isinstance(e, dict)]
    if not events:
        return None
    domain = academy.legacy_tenant.domains[0] if academy is not None else ""
    keep = bool(academy is not None and academy.domains.keep_academy_domain)
    old = trust.settings.tenant.primary_domain if trust is not None else "the trust domain"
    return {
        "status": row.get("status"),
        "domain": domain,
        "events": [{"at": str(e.get("at", "")), "event": str(e.get("event", ""))} for e in events],
        "dns_wait_seconds": d.get("dns_wait_seconds"),
        "dns": [x for x in d.get("dns", []) if isinstance(x, dict)],
        "notice": staff_notice(academy.name if academy else "", domain, old, int(d.get("switched", 0)), keep),
    }
