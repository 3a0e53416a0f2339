"""Issue 24 item 3: the domain cut-over's mail side. The plan, the run's notes, the DNS change file and the
report carry every record mail needs in the trust tenant (MX, SPF, autodiscover from the trust tenant's
serviceConfigurationRecords; the DKIM selector CNAMEs; a DMARC reminder) and say when to run the last mail
pass. Hostile values a tenant lists never reach a file or a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migrations.domain import maildns
from migrations.safety.dns import dns_name, dns_text
from tests.domain.conftest import DOMAIN, LEGACY, TRUST, Cli, exchange_readdress, publish, withdraw

DASHES = DOMAIN.replace(".", "-")
MX_LINE = f"{DOMAIN}. 3600 IN MX 0 {DASHES}.mail.protection.outlook.com."
SPF_LINE = f'{DOMAIN}. 3600 IN TXT "v=spf1 include:spf.protection.outlook.com -all"'
AUTODISCOVER_LINE = f"autodiscover.{DOMAIN}. 3600 IN CNAME autodiscover.outlook.com."
MAIL_PASS = "trustfold run hillside --phase mail"


def _trust_initial(url: Any, tenant: str = TRUST) -> str:
    return str(next(d["id"] for d in url.world.tenant(tenant).domains if d.get("isInitial")))


def test_plan_run_dns_file_and_report_carry_the_mail_records(env: tuple[str, Cli]) -> None:
    url, cli = env
    initial = _trust_initial(url)
    dkim = [
        f"selector{n}._domainkey.{DOMAIN}. 3600 IN CNAME selector{n}-{DASHES}._domainkey.{initial}."
        for n in (1, 2)
    ]
    exchange_readdress(url)

    # Before the domain is in the trust tenant: DKIM derived, DMARC reminded, MX/SPF/autodiscover promised.
    notes = json.loads(cli("plan", "hillside", "--phase", "domain", "--json").out)["notes"]
    text = "\n".join(notes)
    assert f"CNAME selector1._domainkey.{DOMAIN} -> selector1-{DASHES}._domainkey.{initial}" in text
    assert f"selector2._domainkey.{DOMAIN}" in text and "Graph has no DKIM endpoint" in text
    assert f"TXT _dmarc.{DOMAIN} -> v=DMARC1; p=none" in text
    assert "MX, SPF and autodiscover" in text and "once" in text and "verified" in text
    assert MAIL_PASS in text

    waiting = json.loads(cli("run", "hillside", "--phase", "domain", "--json").out)
    assert waiting["status"] == "waiting-for-dns"
    change = Path(cli.state).parent / "runs" / "dns-change-hillside.txt"
    assert "rewrites this file with every record mail needs" in change.read_text()
    md = cli("report", "--format", "md", "--out", "-").out
    assert MAIL_PASS in md and "Mail side of the cut-over" in md  # the step is known before the records

    publish(url)
    res = cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    zone = change.read_text()
    for line in (MX_LINE, SPF_LINE, AUTODISCOVER_LINE, *dkim):
        assert line in zone.splitlines(), (line, zone)
    assert f'_dmarc.{DOMAIN}. 3600 IN TXT "v=DMARC1; p=none"' in zone  # a reminder, as a comment
    assert "Set-DkimSigningConfig" in zone and MAIL_PASS in zone
    then = zone[zone.index("; THEN") :]
    order = [
        then.index(x)
        for x in ("hold MX, SPF and autodiscover", "the two DKIM CNAMEs", "DKIM signing", "DMARC", MAIL_PASS)
    ]
    assert order == sorted(order), "enable DKIM after the CNAMEs, the last mail pass after MX"
    assert f"{DASHES}.mail.protection.outlook.com" in res.out and MAIL_PASS in res.out

    # A plan made now reads MX, SPF and autodiscover from the trust tenant.
    notes = json.loads(cli("plan", "hillside", "--phase", "domain", "--json").out)["notes"]
    text = "\n".join(notes)
    assert f"MX {DOMAIN} -> 0 {DASHES}.mail.protection.outlook.com" in text
    assert "v=spf1 include:spf.protection.outlook.com -all" in text and f"autodiscover.{DOMAIN}" in text


def test_report_says_when_to_run_the_last_mail_pass(env: tuple[str, Cli]) -> None:
    url, cli = env
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    cli("run", "hillside", "--phase", "domain")
    publish(url)
    cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    md = cli("report", "--format", "md", "--out", "-").out
    section = md[md.index("### Domain cut-over") :]
    assert "Mail records in the trust tenant" in section
    assert f"| MX | {DOMAIN} | 0 {DASHES}.mail.protection.outlook.com |" in section
    step = next(line for line in section.splitlines() if MAIL_PASS in line)
    assert "verified in the trust tenant" in step and "MX points at the trust" in step
    assert "before the legacy tenant is retired" in step
    html = cli("report", "--format", "html", "--out", "-").out
    assert 'class="mailsteps"' in html and MAIL_PASS in html
    assert f"selector1-{DASHES}._domainkey.{_trust_initial(url)}" in html


def test_rollback_gives_the_legacy_tenants_mail_records_back(env: tuple[str, Cli]) -> None:
    """After a rollback the domain is the legacy tenant's again: its DKIM CNAMEs point at the legacy initial
    domain, and there is no mail pass to run (the mail that reached the trust is named instead)."""
    url, cli = env
    exchange_readdress(url)
    cli("plan", "hillside", "--phase", "domain")
    cli("run", "hillside", "--phase", "domain")
    text = publish(url)
    cli("run", "hillside", "--phase", "domain", "--dns-wait", "30")
    change = Path(cli.state).parent / "runs" / "dns-change-hillside.txt"
    cli("rollback", "hillside", "--phase", "domain", "--yes")
    assert "rewrites this file with the legacy tenant's mail records" in change.read_text()
    withdraw(url, text)
    publish(url, tenant=LEGACY)
    res = cli("rollback", "hillside", "--phase", "domain", "--yes", "--dns-wait", "30")
    zone = change.read_text()
    legacy = _trust_initial(url, LEGACY)
    assert legacy != _trust_initial(url)
    assert f"selector1._domainkey.{DOMAIN}. 3600 IN CNAME selector1-{DASHES}._domainkey.{legacy}." in zone
    assert MX_LINE in zone.splitlines() and SPF_LINE in zone.splitlines()
    assert MAIL_PASS not in zone and "stays there" in zone and "legacy tenant" in zone
    assert f"_domainkey.{legacy}" in res.out


class _Resp:
    def __init__(self, body: dict[str, Any]):
        self.status, self.body, self.ok = 200, body, True


class _Conn:
    def __init__(self, records: list[dict[str, Any]]):
        self.records = records

    async def request(self, method: str, path: str) -> _Resp:
        return _Resp({"value": self.records})

    async def pages(self, path: str) -> Any:
        yield {"id": "trust.onmicrosoft.com", "isInitial": True}


def test_hostile_values_a_tenant_lists_are_left_out_and_said() -> None:
    import asyncio

    hostile = [
        {"recordType": "Mx", "supportedService": "Email", "label": DOMAIN, "preference": 0,
         "mailExchange": "x.example.\n@ 60 IN NS attacker.example."},
        {"recordType": "Txt", "supportedService": "Email", "label": DOMAIN,
         "text": 'v=spf1 "\x1b[31m include:evil.example -all'},
        {"recordType": "CName", "supportedService": "Email", "label": "autodiscover.other.example",
         "canonicalName": "autodiscover.outlook.com"},
        {"recordType": "Mx\x1b]0;t\x07", "supportedService": "Email", "label": DOMAIN},
        {"recordType": "CName", "supportedService": "Email", "label": f"autodiscover.{DOMAIN}",
         "canonicalName": "autodiscover.outlook.com"},
    ]  # fmt: skip
    records, refused = asyncio.run(maildns.mail_records(_Conn(hostile), DOMAIN, True))  # type: ignore[arg-type]
    assert [r.kind for r in records] == ["CNAME", "CNAME", "CNAME", "TXT"]  # autodiscover, DKIM x2, DMARC
    assert len(refused) == 4 and all("left out" in line for line in refused)
    written = "\n".join(maildns.change_lines(records) + refused)
    assert "attacker" not in written and "evil" not in written and "\x1b" not in written
    assert "other.example" not in written


def test_dns_checks() -> None:
    assert dns_name("Autodiscover.Outlook.com.") == "autodiscover.outlook.com"
    assert dns_name("_dmarc.school.org.uk") == "_dmarc.school.org.uk"
    for bad in ("a b.com", "x.example.\n@", "-a.com", "a..com", "com", "a" * 64 + ".com", None, 3):
        assert dns_name(bad) is None, bad
    assert dns_text("v=spf1 -all") == "v=spf1 -all"
    for bad in ('a"b', "a\\b", "a\nb", "é", "", "x" * 256):
        assert dns_text(bad) is None, bad
