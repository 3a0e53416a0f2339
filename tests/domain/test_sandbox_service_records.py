"""Conformance of GET /domains/{id}/serviceConfigurationRecords with Microsoft's pages (docs/sandbox.md):
learn.microsoft.com/graph/api/domain-list-serviceconfigurationrecords and the domainDnsRecord resource types
(domaindnsmxrecord, domaindnstxtrecord, domaindnscnamerecord, domaindnssrvrecord)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.testing import graph_client, running_sandbox
from tests.domain.conftest import CONFIG, DOMAIN, LEGACY, TRUST

SPF = "v=spf1 include:spf.protection.outlook.com -all"
BASE = ("id", "isOptional", "label", "recordType", "supportedService", "ttl")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_sandbox(CONFIG, size=10, seed=4) as base:
        yield base


def _records(url: str, tenant: str, name: str) -> list[dict[str, Any]]:
    with graph_client(url, tenant) as g:
        r = g.get(f"/domains/{name}/serviceConfigurationRecords")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith(f"domains('{name}')/serviceConfigurationRecords")
    return list(body["value"])


def test_verified_domain_lists_the_mail_records_with_tenant_values(url: str) -> None:
    recs = _records(url, LEGACY, DOMAIN)
    for rec in recs:
        assert all(k in rec for k in BASE), rec
        assert rec["ttl"] == 3600
    by_type: dict[str, list[dict[str, Any]]] = {}
    for rec in recs:
        by_type.setdefault(rec["recordType"], []).append(rec)
    (mx,) = by_type["Mx"]
    assert mx["@odata.type"] == "#microsoft.graph.domainDnsMxRecord"
    assert mx["label"] == DOMAIN and mx["supportedService"] == "Email" and mx["isOptional"] is False
    # The host is derived from the domain: dots become dashes (the page's contoso-com example).
    assert mx["mailExchange"] == DOMAIN.replace(".", "-") + ".mail.protection.outlook.com"
    assert mx["preference"] == 0
    (spf,) = by_type["Txt"]
    assert spf["@odata.type"] == "#microsoft.graph.domainDnsTxtRecord"
    assert spf["label"] == DOMAIN and spf["text"] == SPF and spf["supportedService"] == "Email"
    cnames = {r["label"]: r for r in by_type["CName"]}
    auto = cnames[f"autodiscover.{DOMAIN}"]
    assert auto["@odata.type"] == "#microsoft.graph.domainDnsCnameRecord"
    assert auto["canonicalName"] == "autodiscover.outlook.com" and auto["supportedService"] == "Email"
    # The other services the page's example lists, each with its supportedService.
    assert cnames[f"sip.{DOMAIN}"]["supportedService"] == "OfficeCommunicationsOnline"
    assert cnames[f"lyncdiscover.{DOMAIN}"]["supportedService"] == "OfficeCommunicationsOnline"
    srv = {r["label"]: r for r in by_type["Srv"]}
    sip = srv[f"_sip._tls.{DOMAIN}"]
    assert sip["@odata.type"] == "#microsoft.graph.domainDnsSrvRecord"
    assert (sip["service"], sip["protocol"], sip["port"]) == ("_sip", "_tls", 443)
    assert {"nameTarget", "priority", "weight"} <= set(sip)
    assert srv[f"_sipfederationtls._tcp.{DOMAIN}"]["port"] == 5061
    assert len({r["id"] for r in recs}) == len(recs)


def test_records_follow_the_domains_supported_services(url: str) -> None:
    """The records are those of the services the domain is used for (domain resource, supportedServices);
    an unverified domain has none yet, so no records (the stricter reading of the page)."""
    with graph_client(url, TRUST) as g:
        assert g.post("/domains", json={"id": "fresh-school.org.uk"}).status_code == 201
    assert _records(url, TRUST, "fresh-school.org.uk") == []
    with graph_client(url, LEGACY) as g:
        assert g.patch(f"/domains/{DOMAIN}", json={"supportedServices": ["Email"]}).status_code == 204
    try:
        types = {r["supportedService"] for r in _records(url, LEGACY, DOMAIN)}
        assert types == {"Email"}
    finally:
        with graph_client(url, LEGACY) as g:
            g.patch(f"/domains/{DOMAIN}", json={"supportedServices": ["Email", "OfficeCommunicationsOnline"]})


def test_unknown_domain_is_404(url: str) -> None:
    with graph_client(url, TRUST) as g:
        r = g.get("/domains/nosuchschool.org.uk/serviceConfigurationRecords")
    assert r.status_code == 404 and r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_service_records_need_domain_read_all() -> None:
    """domain-list-serviceconfigurationrecords: least privileged Domain.Read.All, higher
    Domain.ReadWrite.All (application and delegated); nothing else listed."""
    from sandbox.tenancy import denied

    path = f"/v1.0/domains/{DOMAIN}/serviceConfigurationRecords"
    assert not denied("GET", path, ["Domain.Read.All"])
    assert not denied("GET", path, ["Domain.ReadWrite.All"])
    assert denied("GET", path, ["Directory.Read.All"])
    assert denied("GET", path, ["User.Read.All"])
