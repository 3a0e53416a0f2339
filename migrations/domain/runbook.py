"""The cut-over runbook: timestamped events per academy (kept in the phase status), the DNS change file an
operator hands to whoever holds the zone, and the staff notice text the report renders."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from migrations.core.store import StateStore, now
from migrations.domain import maildns
from migrations.domain.steps import TXT_RE
from migrations.graph.client import TenantConnection
from migrations.safety.private import write_private_text

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
    if publish and then.startswith("trustfold rollback"):
        lines.append(
            "; MAIL: once the domain is verified in the legacy tenant again, the rollback rewrites this file "
            "with the legacy tenant's mail records (DKIM CNAMEs point back at its initial domain)"
        )
    if publish and then.startswith("trustfold run"):
        lines.append(
            "; MAIL: the MX, SPF and autodiscover records come from the trust tenant once the domain is "
            "verified there; the run that verifies it rewrites this file with every record mail needs"
        )
    # Replaced whole (a file an operator loosened is 0600 again, its folder 0700), never rewritten in place.
    write_private_text(path, "\n".join(lines) + "\n")
    return path


async def mail_change_file(
    run_dir: Path, academy: str, conn: TenantConnection, domains: list[str], side: str = "trust"
) -> tuple[Path, list[dict[str, Any]], list[str], list[str]]:
    """After verification: the DNS change file with every record mail needs in the trust tenant (MX, SPF,
    autodiscover from serviceConfigurationRecords; DKIM selector CNAMEs; a DMARC reminder) and the steps
    that follow, replacing the file that carried the verification TXT. Returns the path, the records, the
    steps and lines for whatever the trust tenant listed that was refused."""
    path = run_dir / f"dns-change-{academy}.txt"
    lines = [
        f"; trustfold DNS change for academy {academy}, {now()}: the mail records for the {side} tenant, "
        "after verification",
        "; Hand this to whoever holds the zone. TTL 3600.",
    ]
    records: list[dict[str, Any]] = []
    todo: list[str] = []
    refused: list[str] = []
    for name in domains:
        found, problems = await maildns.mail_records(conn, name, True, side)
        refused += problems
        records += [r.as_dict() for r in found]
        steps = maildns.steps(academy, name, found, True, side)
        todo += steps
        lines += maildns.change_lines(found)
        lines += ["; THEN, in order:"] + [f";   {i}. {step}" for i, step in enumerate(steps, 1)]
    write_private_text(path, "\n".join(lines) + "\n")
    return path, records, todo, refused


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


def report_section(
    store: StateStore, row: dict[str, Any] | None, academy: Any, trust: Any
) -> dict[str, Any] | None:
    """The cut-over runbook for the report: sequence with timestamps, DNS wait, what users will notice."""
    code = academy.code if academy is not None else (row or {}).get("academy", "")
    steps = events(store, code) if code else []
    if not steps:
        return None
    d = dict((row or {}).get("detail") or {})
    domain = academy.legacy_tenant.domains[0] if academy is not None else ""
    keep = bool(academy is not None and academy.domains.keep_academy_domain)
    old = trust.settings.tenant.primary_domain if trust is not None else "the trust domain"
    switched = int(d.get("switched", 0))
    mail = [x for x in d.get("mail_dns", []) if isinstance(x, dict)]
    mail_steps = [str(x) for x in d.get("mail_steps", []) if isinstance(x, str)]
    if not mail_steps and domain:
        # Before verification (or after a re-plan rewrote the detail): the steps without the trust's values.
        mail_steps = maildns.steps(code, domain, [], False)
    return {
        "status": (row or {}).get("status", "not-started"),
        "domain": domain,
        "events": steps,
        "dns_wait_seconds": dns_wait_seconds(store, code),
        "dns": [x for x in d.get("dns", []) if isinstance(x, dict)],
        "notice": staff_notice(academy.name if academy else "", domain, old, switched, keep),
        "mail_dns": mail,
        "mail_steps": mail_steps,
    }


# ---- derived from the journal and the runs (survives `plan`, which rewrites the phase status) -----------
def _runs(store: StateStore, academy: str) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in store.rows(
            "SELECT kind, status, started_at, finished_at FROM runs WHERE academy = ? AND phase = ? "
            "ORDER BY started_at",
            (academy, PHASE),
        )
    ]


def announced(store: StateStore, academy: str, kind: str) -> bool:
    """True when the last forward run (kind "run") or rollback (kind "rollback") of the phase stopped at its
    DNS checkpoint and nothing of the other kind ran since: this run verifies instead of announcing."""
    for r in reversed(_runs(store, academy)):
        if r["status"] in ("running", "interrupted", "failed") and r["kind"] == kind:
            continue  # an interrupted or failed attempt after the checkpoint keeps it
        return bool(r["kind"] == kind and r["status"] == "waiting-for-dns")
    return False


def removals_pending(store: StateStore, academy: str) -> dict[str, str]:
    """Domain -> when the legacy tenant first accepted its removal (journal event `accepted`), for removals
    not yet seen finished by a forward run (`done`) nor undone by a rollback."""
    out: dict[str, str] = {}
    rows = store.rows(
        "SELECT event, data, at FROM journal WHERE academy = ? AND phase = ? AND op = 'remove-domain' "
        "ORDER BY seq",
        (academy, PHASE),
    )
    for r in rows:
        name = str((json.loads(r["data"] or "{}").get("args") or {}).get("domain", ""))
        if r["event"] == "accepted":
            out.setdefault(name, r["at"])
        elif r["event"] in ("done", "undone"):
            out.pop(name, None)
    return out


def events(store: StateStore, academy: str) -> list[dict[str, str]]:
    """The cut-over sequence with timestamps, from the journal (one line per step, renames grouped)."""
    out: list[dict[str, str]] = []
    texts = {
        "set-default": "legacy tenant's default domain set to {domain}",
        "remove-domain": "{domain} removed from the legacy tenant",
        "add-domain": "{domain} added to the trust tenant (TXT {txt} to publish)",
        "verify-domain": "{domain} verified in the trust tenant",
    }
    undo_texts = {
        "set-default": "rollback: legacy default domain back to {previous}",
        "remove-domain": "rollback: {domain} verified in the legacy tenant again",
        "add-domain": "rollback: {domain} removed from the trust tenant",
        "verify-domain": "",
    }
    group: tuple[str, str] | None = None
    count = 0
    last_at = ""

    def flush() -> None:
        nonlocal group, count
        if group and count:
            op, event = group
            what = (
                "legacy user(s) renamed to onmicrosoft.com"
                if op == "rename-user"
                else ("trust user(s) switched to the academy domain")
            )
            out.append(
                {"at": last_at, "event": f"{'rollback: ' if event.startswith('undo') else ''}{count} {what}"}
            )
        group, count = None, 0

    rows = store.rows(
        "SELECT op, event, data, at FROM journal WHERE academy = ? AND phase = ? "
        "AND event IN ('done', 'undone', 'undo-done') ORDER BY seq",  # undo-done: an older store's
        (academy, PHASE),
    )
    for r in rows:
        data = json.loads(r["data"] or "{}")
        args = {**(data.get("args") or {}), "txt": data.get("txt", "")}
        if r["op"] in ("rename-user", "switch-upn"):
            if group != (r["op"], r["event"]):
                flush()
                group = (r["op"], r["event"])
            count += 1
            last_at = r["at"]
            continue
        flush()
        template = (texts if r["event"] == "done" else undo_texts).get(r["op"], "")
        if template:
            try:
                out.append({"at": r["at"], "event": template.format(**args)})
            except KeyError:
                continue
    flush()
    for run in _runs(store, academy):
        if run["status"] == "waiting-for-dns" and run["finished_at"]:
            out.append({"at": run["finished_at"], "event": f"{run['kind']} stopped: waiting for DNS"})
        if run["status"] == "waiting-for-removal" and run["finished_at"]:
            out.append(
                {
                    "at": run["finished_at"],
                    "event": f"{run['kind']} stopped: waiting for the legacy tenant to remove the domain",
                }
            )
    return sorted(out, key=lambda e: e["at"])


def dns_wait_seconds(store: StateStore, academy: str) -> float | None:
    """From the trust's TXT record being issued (add-domain) to the domain verified, per the journal."""
    rows = store.rows(
        "SELECT op, at FROM journal WHERE academy = ? AND phase = ? AND event = 'done' "
        "AND op IN ('add-domain', 'verify-domain') ORDER BY seq",
        (academy, PHASE),
    )
    added = next((r["at"] for r in rows if r["op"] == "add-domain"), None)
    verified = next((r["at"] for r in rows if r["op"] == "verify-domain"), None)
    if not added or not verified:
        return None
    return max(0.0, (datetime.fromisoformat(verified) - datetime.fromisoformat(added)).total_seconds())


def trust_txt(store: StateStore, academy: str, name: str) -> str | None:
    """The TXT value the trust tenant issued for `name` (its last add-domain outcome in the journal)."""
    rows = store.rows(
        "SELECT data FROM journal WHERE academy = ? AND phase = ? AND step_key = ? AND event = 'done' "
        "ORDER BY seq DESC",
        (academy, PHASE, f"add:{name}"),
    )
    for r in rows:
        text = json.loads(r["data"] or "{}").get("txt")
        if isinstance(text, str) and TXT_RE.match(text):
            return text
    return None
