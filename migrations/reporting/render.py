"""Renderers: one self-contained HTML page for people, Markdown and JSON for CI."""

from __future__ import annotations

import json
from typing import Any

import jinja2

from migrations.reporting.charts import progress_chart, throughput_chart
from migrations.reporting.model import PHASES, AcademyReport, Report
from migrations.reporting.templates import HTML
from migrations.safety.redaction import redact
from migrations.safety.sanitise import report_text

FORMATS = ("html", "md", "json")
TABLE_KEYS = (
    "planned",
    "done",
    "already_present",
    "skipped",
    "failed",
    "bytes",
    "renamed",
    "requests",
    "throttled",
)
TILES = (
    ("done", "objects migrated"),
    ("already_present", "already present"),
    ("skipped", "skipped"),
    ("failed", "failed"),
    ("bytes", "bytes copied"),
    ("renamed", "files renamed"),
    ("throttled", "throttled answers met"),
    ("wait_seconds", "seconds waited"),
    ("findings", "discovery findings"),
)
MAX_ROWS = 200
# Differences listed on the page and in Markdown before "and N more": enough to act on, few enough to read.
DIFFERENCES_SHOWN = 25
# What each kind of verification looks at, in words for the people reading the report.
VERIFIED = {
    "identity": "users, licences, groups and members",
    "files": "files copied, by size and hash",
    "permissions": "sharing on the copied items",
    "mail": "mail folders: item counts and imported items present",
    "teams": "teams, channels and imported messages",
    "domain": "the domain and the new sign-in names",
}


def fmt(value: float | int | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def bytesize(value: float | int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TB"  # pragma: no cover - loop always returns


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def plural(n: int, noun: str) -> str:
    return f"{fmt(n)} {noun}{'' if n == 1 else 's'}"


def verified_detail(row: dict[str, Any]) -> str:
    """One line for a verification row: what was checked and what the phase adds (files: drives, files,
    total size; permissions: planned grants found), then its note (a phase that has not run says so)."""
    parts = [VERIFIED.get(str(row["kind"]), "")]
    if "drives" in row:
        files = f", {plural(row['files'], 'file')}" if "files" in row else ""
        parts.append(f"{plural(row['drives'], 'drive')}{files}, {bytesize(row.get('bytes', 0))}")
    if "grants" in row:
        parts.append(f"{fmt(row.get('matched', 0))} of {fmt(row['grants'])} planned grants found")
    if row.get("note"):
        parts.append(str(row["note"]))
    return "; ".join(p for p in parts if p)


def differences(a: AcademyReport) -> list[dict[str, Any]]:
    return [d for d in ((a.verify or {}).get("differences") or []) if isinstance(d, dict)]


def readiness(pre: dict[str, Any]) -> dict[str, Any]:
    """The preflight's figures for its sentence: when taken, checks passing, fixed since by bootstrap."""
    checks = pre.get("checks") or []
    fixed = sum(1 for c in checks if c.get("fixed_by"))
    taken = pre["at"] if pre.get("first_at", pre["at"]) == pre["at"] else f"{pre['first_at']} to {pre['at']}"
    return {
        "taken": taken,
        "passing": sum(1 for c in checks if c.get("ok")),
        "fixed": fixed,
        "total": len(checks),
        "superseded": pre.get("superseded", 0),
    }


def check_state(c: dict[str, Any]) -> str:
    return "ok" if c.get("ok") else "fixed" if c.get("fixed_by") else "blocks"


_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_template = _env.from_string(HTML)


def render_html(report: Report) -> str:
    return _template.render(
        r=report,
        phases=PHASES,
        tiles=TILES,
        count_keys=TABLE_KEYS,
        max_findings=MAX_ROWS,
        differences_shown=DIFFERENCES_SHOWN,
        differences=differences,
        verified_detail=verified_detail,
        readiness=readiness,
        check_state=check_state,
        plural=plural,
        fmt=fmt,
        bytesize=bytesize,
        duration=duration,
        getattr=getattr,
        progress_svg=progress_chart(report.academies),
        items_svg=throughput_chart(
            report.throughput, field="items_per_s", title="Objects per second", unit="objects/s"
        ),
        bytes_svg=throughput_chart(
            report.throughput,
            field="bytes_per_s",
            title="Bytes per second",
            unit="bytes/s",
            scale=lambda v: bytesize(v) + "/s",
        ),
    )


def _md_cell(value: Any) -> str:
    """Markdown table cell: pipes and newlines would break the row; angle brackets would become HTML."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_md(report: Report) -> str:
    lines = [
        f"# {_md_cell(report.trust_name)}: academy migration report",
        "",
        f"Generated {report.generated_at}. {len(report.academies)} academies, "
        f"{report.audit_entries} audited operator actions.",
        "",
        "| total | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {fmt(report.totals.get(key, 0))} |" for key, label in TILES]
    lines += ["", "## Academies", "", "| academy | wave | overall | " + " | ".join(PHASES) + " | rollback |"]
    lines.append("| --- | ---: | --- |" + " --- |" * len(PHASES) + " --- |")
    for a in report.academies:
        cells = [_md_cell(a.name), "–" if a.wave is None else str(a.wave), a.overall]
        cells += [p.status for p in a.phases]
        cells.append("available" if a.rollback_available else "none")
        lines.append("| " + " | ".join(cells) + " |")
    lines += _md_readiness(report.onboarding)
    for a in report.academies:
        lines += ["", f"## {_md_cell(a.name)} ({_md_cell(a.code)})", ""]
        lines.append("| phase | status | " + " | ".join(TABLE_KEYS) + " | waited s |")
        lines.append("| --- | --- |" + " ---: |" * (len(TABLE_KEYS) + 1))
        for p in a.phases:
            values = [fmt(getattr(p, k)) for k in TABLE_KEYS] + [fmt(p.wait_seconds)]
            lines.append(f"| {p.phase} | {p.status} | " + " | ".join(values) + " |")
        lines.append("")
        if a.findings:
            kinds = ", ".join(f"{k} {n}" for k, n in a.finding_counts.items())
            lines += [f"Discovery findings: {len(a.findings)} ({_md_cell(kinds)}).", ""]
            lines += ["| kind | object | finding | handling |", "| --- | --- | --- | --- |"]
            for f in a.findings[:MAX_ROWS]:
                lines.append(
                    "| "
                    + " | ".join(_md_cell(f.get(k, "")) for k in ("kind", "display", "message", "handling"))
                    + " |"
                )
            lines.append("")
        else:
            lines += ["Discovery findings: none recorded.", ""]
        if a.sharing:
            carried = ", ".join(f"{k} {n}" for k, n in a.sharing["carried"].items()) or "none"
            aud = a.sharing.get("audience") or {}
            lines += [
                f"Sharing carried: {_md_cell(carried)}.",
                "",
            ]
            if aud:
                lines += [
                    f"Sharing audience: {aud['rule']} Academy-wide links carried as grants to the academy's "
                    f"people group: {aud['academy_group']}; trust-wide by decision: {aud['trust_wide']}; "
                    f"link restrictions carried: {aud['restrictions_carried']}, narrowed (not carried, "
                    f"stricter): {aud['restrictions_narrowed']}.",
                    "",
                ]
            lines += [
                "| not carried | grants | why |",
                "| --- | ---: | --- |",
            ]
            for x in a.sharing["not_carried"]:
                lines.append(f"| {_md_cell(x['kind'])} | {x['count']} | {_md_cell(x['why'])} |")
            lines.append("")
            refused = a.sharing.get("refused") or []
            if refused:
                lines += [
                    f"Sharing refused by SharePoint (library's limit of items with unique permissions): "
                    f"{len(refused)} item(s).",
                    "",
                    "| item | refusal | handling |",
                    "| --- | --- | --- |",
                ]
                lines += [
                    "| " + " | ".join(_md_cell(r[k]) for k in ("path", "message", "handling")) + " |"
                    for r in refused[:MAX_ROWS]
                ]
                if len(refused) > MAX_ROWS:
                    lines += [
                        "",
                        f"… and {len(refused) - MAX_ROWS} more "
                        f"(`trustfold report {_md_cell(a.code)} --format json`).",
                    ]
                lines.append("")
        if a.mail:
            m = a.mail
            lines += [
                f"Mail: {m['mailboxes']} mailboxes, {m['items']} items, {m['gb']} GB carried"
                + (f"; {m['waiting']} waiting for the trust user's mailbox" if m["waiting"] else "")
                + ".",
                "",
            ]
            if m["failures"]:
                lines += ["| mail not carried | items | why |", "| --- | ---: | --- |"]
                for x in m["failures"]:
                    lines.append(f"| {_md_cell(x['kind'])} | {x['count']} | {_md_cell(x['why'])} |")
                lines.append("")
        if a.teams:
            t = a.teams
            lines += [
                f"Teams carried: {t['teams']} ({t['class_teams']} class teams), {t['channels']} channels, "
                f"{t['messages']} messages; migration completed on {t['completed']} channels.",
                "",
                "| not carried | count | why |",
                "| --- | ---: | --- |",
            ]
            for x in t["not_carried"]:
                lines.append(f"| {_md_cell(x['kind'])} | {x['count']} | {_md_cell(x['why'])} |")
            lines.append("")
        if a.accounts:
            acc = a.accounts
            lines += [
                f"Accounts: {acc['disabled_carried']} disabled carried disabled; "
                f"{acc['guests_listed']} guests listed for invitation (never created as members).",
                "",
            ]
            lines += _md_licensing(acc.get("licensing") or {})
            if acc["matches"]:
                lines += ["| matched | source | trust object | mapping guard |", "| --- | --- | --- | --- |"]
                for m in acc["matches"]:
                    target = f"{m['name']} ({m['target']})" if m["name"] else m["target"]
                    row = (m["kind"], m["source"], target, m["guard"])
                    lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
                lines.append("")
        lines += _md_verification(a)
        lines.append(f"Rollback plan: {'available' if a.rollback_available else 'none'}.")
        lines += _md_cutover(a.cutover)
    return "\n".join(lines) + "\n"


def _md_licensing(lic: dict[str, Any]) -> list[str]:
    """Group licensing as the last users run found it: how long Entra took, who has no active licence, why."""
    if not lic:
        return []
    took = lic["processing_s"]
    lines = [
        "Group licensing: "
        + (
            f"Entra licensed the members in {took:.0f} s"
            if took is not None
            else "Entra was still processing"
        )
        + f"; {lic['without_licence']} user(s) without an active licence.",
        "",
    ]
    if lic["reasons"]:
        lines += ["| licence state | users |", "| --- | ---: |"]
        lines += [f"| {_md_cell(r['reason'])} | {r['count']} |" for r in lic["reasons"]]
        lines.append("")
    return lines


def _md_verification(a: AcademyReport) -> list[str]:
    """The verdict, the differences first (the first DIFFERENCES_SHOWN), then a row per kind of check."""
    if a.verify is None:
        return ["Verification: not run."]
    diffs = differences(a)
    verdict = "no differences" if a.verify.get("ok") else plural(len(diffs), "difference")
    lines = [f"Verification: {verdict}; {fmt(a.verify.get('checked', 0))} objects checked.", ""]
    if diffs:
        lines += ["| kind | object | difference |", "| --- | --- | --- |"]
        lines += [
            "| " + " | ".join(_md_cell(d.get(k, "")) for k in ("kind", "object", "message")) + " |"
            for d in diffs[:DIFFERENCES_SHOWN]
        ]
        if len(diffs) > DIFFERENCES_SHOWN:
            more = len(diffs) - DIFFERENCES_SHOWN
            lines += [
                "",
                f"… and {more} more (full list: `trustfold report {_md_cell(a.code)} --format json`).",
            ]
        lines.append("")
    lines += ["| checked | objects | differences | what |", "| --- | ---: | ---: | --- |"]
    lines += [
        f"| {_md_cell(k['kind'])} | {fmt(k['checked'])} | {fmt(k['differences'])} | "
        f"{_md_cell(verified_detail(k))} |"
        for k in a.verification
    ]
    lines.append("")
    return lines


def _md_cutover(c: dict[str, Any] | None) -> list[str]:
    """The domain cut-over runbook, usable as the staff notice."""
    if not c:
        return []
    lines = ["", f"### Domain cut-over: {_md_cell(c['domain'])} ({_md_cell(c['status'])})", ""]
    lines += ["| when (UTC) | step |", "| --- | --- |"]
    lines += [f"| {_md_cell(e['at'])} | {_md_cell(e['event'])} |" for e in c["events"]]
    if c.get("dns_wait_seconds"):
        lines += ["", f"Waiting time for DNS: {duration(float(c['dns_wait_seconds']))}."]
    for r in c.get("dns") or []:
        lines.append(
            f"- DNS: {_md_cell(r.get('action'))} TXT {_md_cell(r.get('text'))} at {_md_cell(r.get('name'))}"
        )
    mail = c.get("mail_dns") or []
    if mail:
        lines += ["", "Mail records in the trust tenant:", "", "| type | name | value | why |"]
        lines += ["| --- | --- | --- | --- |"]
        lines += [
            f"| {_md_cell(r.get('kind'))} | {_md_cell(r.get('name'))} | "
            f"{_md_cell(_mail_value(r))} | {_md_cell(r.get('why'))} |"
            for r in mail
        ]
    if c.get("mail_steps"):
        lines += ["", "Mail side of the cut-over, in order:", ""]
        lines += [f"{i}. {_md_cell(x)}" for i, x in enumerate(c["mail_steps"], 1)]
    lines += ["", "What users will notice:", ""] + [f"- {_md_cell(n)}" for n in c["notice"]]
    return lines


def _mail_value(r: dict[str, Any]) -> str:
    pref = r.get("preference")
    return f"{pref} {r.get('value')}" if r.get("kind") == "MX" and pref is not None else str(r.get("value"))


def _md_readiness(onboarding: dict[str, Any]) -> list[str]:
    pre, drives = onboarding.get("preflight") or {}, onboarding.get("onedrive") or {}
    if not pre and not drives:
        return []
    lines = ["", "## Readiness", ""]
    if pre:
        w = readiness(pre)
        fixed = f"; {w['fixed']} fixed by bootstrap since" if w["fixed"] else ""
        earlier = f" ({w['superseded']} earlier preflights superseded)" if w["superseded"] else ""
        lines += [
            f"Latest preflight of each tenant, {w['taken']}: {w['passing']} of {w['total']} checks pass"
            f"{fixed}{earlier}.",
            "",
        ]
        lines += ["| check | tenant | state | result | fix |", "| --- | --- | --- | --- | --- |"]
        for c in pre["checks"]:
            fixed_by = c.get("fixed_by")
            result = c.get("result", "") + (f" (fixed by {fixed_by})" if fixed_by else "")
            fix = "" if fixed_by else c.get("fix", "")
            cells = (c.get("check", ""), c.get("tenant", ""), check_state(c), result, fix)
            lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
        lines.append("")
    for code, d in drives.items():
        lines.append(
            f"OneDrives {_md_cell(code)}: {d.get('ready', 0)} ready, {len(d.get('waiting') or [])} waiting; "
            f"{d.get('requested', 0)} requested in {plural(d.get('calls', 0), 'admin call')} in all."
        )
    return lines


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render(report: Report, fmt_name: str) -> str:
    renderers = {"html": render_html, "md": render_md, "json": render_json}
    if fmt_name not in renderers:
        raise ValueError(f"unknown report format {fmt_name!r}; choose one of {', '.join(FORMATS)}")
    # The store never holds secrets; redacting anyway means a stray one cannot leave through a report.
    # Control and invisible characters from tenant data never reach a report raw (sanitise.report_text).
    return report_text(redact(renderers[fmt_name](report)))
