"""The DNS records mail needs once an academy's domain is verified in the trust tenant: MX, SPF and
autodiscover as the trust tenant lists them (GET /domains/{id}/serviceConfigurationRecords, supportedService
Email), the two DKIM selector CNAMEs Exchange signs with, and a DMARC reminder.

Graph has no endpoint for DKIM signing configurations (Exchange's Get-DkimSigningConfig holds them), so the
selector targets are derived from the trust tenant's initial onmicrosoft.com domain the way Microsoft's DKIM
page describes, and the runbook says they are derived and how to confirm them. Every value from a tenant
passes migrations/safety/dns.py; a value that does not is reported, never written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from migrations.graph.client import TenantConnection
from migrations.safety.dns import dns_name, dns_preference, dns_text
from migrations.safety.sanitise import terminal_text

TTL = 3600
SERVICE = "serviceConfigurationRecords"
DERIVED = "derived from the trust's initial domain: Graph has no DKIM endpoint"
REMINDER = "reminder (the school's own policy)"
DMARC_START = "v=DMARC1; p=none"


@dataclass(frozen=True)
class MailRecord:
    kind: str  # "MX" | "TXT" | "CNAME"
    name: str
    value: str
    source: str
    why: str
    preference: int | None = None

    def zone(self) -> str:
        """One zone-file line (values already checked: names are DNS names, text has no quote or escape)."""
        if self.kind == "MX":
            return f"{self.name}. {TTL} IN MX {self.preference} {self.value}."
        if self.kind == "TXT":
            return f'{self.name}. {TTL} IN TXT "{self.value}"'
        return f"{self.name}. {TTL} IN CNAME {self.value}."

    def line(self) -> str:
        shown = f"{self.preference} {self.value}" if self.kind == "MX" else self.value
        return f"{self.kind} {self.name} -> {shown} ({self.why}; {self.source})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dashes(domain: str) -> str:
    return domain.replace(".", "-")


def dkim_records(domain: str, trust_initial: str, side: str = "trust") -> list[MailRecord]:
    """selectorN._domainkey.<domain> -> selectorN-<domain, dots as dashes>._domainkey.<initial domain>."""
    out = []
    for n in (1, 2):
        target = dns_name(f"selector{n}-{_dashes(domain)}._domainkey.{trust_initial}")
        name = dns_name(f"selector{n}._domainkey.{domain}")
        if target and name:
            out.append(
                MailRecord(
                    "CNAME",
                    name,
                    target,
                    DERIVED,
                    f"DKIM selector {n}: Exchange in the {side} tenant signs the school's mail with this key",
                )
            )
    return out


def dmarc_record(domain: str) -> MailRecord:
    return MailRecord(
        "TXT",
        f"_dmarc.{domain}",
        DMARC_START,
        REMINDER,
        "DMARC: keep the school's existing _dmarc record if it has one; otherwise start at p=none (report "
        "only, nothing rejected), add rua=mailto:<a mailbox someone reads> to receive reports, and move to "
        "p=quarantine then p=reject once the reports show all the school's senders pass SPF or DKIM",
    )


async def service_records(
    conn: TenantConnection, domain: str, side: str = "trust"
) -> tuple[list[MailRecord], list[str]]:
    """The Email records the tenant lists for `domain`, and a line for each value refused."""
    resp = await conn.request("GET", f"/domains/{domain}/{SERVICE}")
    if not resp.ok:
        return [], [f"{domain}: the {side} tenant did not list its mail records (HTTP {resp.status})"]
    out: list[MailRecord] = []
    refused: list[str] = []
    for r in resp.body.get("value", []) if isinstance(resp.body, dict) else []:
        if not isinstance(r, dict) or r.get("supportedService") != "Email":
            continue
        kind = str(r.get("recordType", "")).lower()
        name = dns_name(r.get("label"))
        rec: MailRecord | None = None
        if name is not None and name != domain and not name.endswith("." + domain):
            name = None  # a record for another zone is not the school's to publish
        if kind == "mx":
            host, pref = dns_name(r.get("mailExchange")), dns_preference(r.get("preference"))
            if name and host and pref is not None:
                rec = MailRecord(
                    "MX", name, host, SERVICE, f"MX: mail for the school arrives in the {side} tenant", pref
                )
        elif kind == "txt":
            text = dns_text(r.get("text"))
            if name and text:
                why = "SPF: Exchange Online may send as the school" if text.startswith("v=spf1") else "Email"
                rec = MailRecord("TXT", name, text, SERVICE, why)
        elif kind == "cname":
            target = dns_name(r.get("canonicalName"))
            if name and target:
                why = (
                    f"autodiscover: Outlook finds the {side} mailbox"
                    if name.startswith("autodiscover.")
                    else "Email"
                )
                rec = MailRecord("CNAME", name, target, SERVICE, why)
        if rec is None:
            refused.append(
                f"{domain}: a {terminal_text(r.get('recordType'))[:20]} record the {side} tenant listed is "
                "not a plain DNS record and was left out; take it from the Microsoft 365 admin centre instead"
            )
        else:
            out.append(rec)
    return out, refused


async def initial_domain(conn: TenantConnection) -> str | None:
    async for d in conn.pages("/domains"):
        if d.get("isInitial"):
            return dns_name(d.get("id"))
    return None


async def mail_records(
    conn: TenantConnection, domain: str, verified: bool, side: str = "trust"
) -> tuple[list[MailRecord], list[str]]:
    """Every record mail needs for `domain` in the tenant (`side`: trust, or legacy after a rollback), with
    lines for what is missing or refused."""
    notes: list[str] = []
    records: list[MailRecord] = []
    if verified:
        records, notes = await service_records(conn, domain, side)
    initial = await initial_domain(conn)
    if initial:
        records += dkim_records(domain, initial, side)
    else:
        notes.append(
            f"{domain}: the {side} tenant reports no initial onmicrosoft.com domain; DKIM not derived"
        )
    records.append(dmarc_record(domain))
    return records, notes


def steps(
    code: str, domain: str, records: list[MailRecord], verified: bool, side: str = "trust"
) -> list[str]:
    """What to do with the records, in order (the runbook's mail side). `side` "legacy" is the way back after
    a rollback: the same records from the legacy tenant, and no mail pass."""
    mx = next((r.value for r in records if r.kind == "MX"), None)
    have = {r.kind for r in records if r.source == SERVICE}
    out = []
    if not verified or "MX" not in have:
        out.append(
            f"MX, SPF and autodiscover for {domain}: the {side} tenant lists them once {domain} is verified "
            "there; the run that verifies it writes them to the DNS change file"
        )
    else:
        out.append(
            f"make the zone hold MX, SPF and autodiscover for {domain} exactly as listed (they may equal "
            f"what the zone has now; publish any that differ): mail then arrives at {mx} for the {side} "
            "tenant"
        )
    out += [
        f"publish the two DKIM CNAMEs (selector1/selector2._domainkey.{domain}), replacing any there; they "
        "are derived, as Graph lists no DKIM records: confirm them with `Get-DkimSigningConfig -Identity "
        f"{domain} | Format-List Selector1CNAME, Selector2CNAME` in the {side} tenant's Exchange Online",
        f"once both CNAMEs resolve, enable DKIM signing for {domain} in the {side} tenant (Microsoft "
        f"Defender portal, Email authentication settings, DKIM; or `Set-DkimSigningConfig -Identity {domain} "
        "-Enabled $true`)",
        f"DMARC: keep or add TXT _dmarc.{domain} starting at `{DMARC_START}` (reports only)",
    ]
    if side == "trust":
        out.append(
            f"last mail pass: when {domain} is verified in the trust tenant and its MX points at the trust"
            + (f" ({mx})" if mx else "")
            + f", run `trustfold run {code} --phase mail` to bring over what arrived in the legacy mailboxes "
            "in between; do it before the legacy tenant is retired"
        )
    else:
        out.append(
            f"mail that reached the trust mailboxes for {domain} since the cut-over stays there: tell the "
            "staff concerned, or roll the mail phase back as well"
        )
    return out


def change_lines(records: list[MailRecord]) -> list[str]:
    """The mail section of a DNS change file."""
    lines = ["; MAIL: the zone must hold these records (replace what differs):"]
    for r in records:
        lines.append(f"; {r.why} ({r.source})")
        lines.append(r.zone() if r.source != REMINDER else f";   {r.zone()}")
    return lines
