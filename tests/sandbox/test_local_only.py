"""Issue 23 finding 12: a web page in the operator's browser must not reach the rehearsal. The sandbox answers
only loopback Host headers with its own port (DNS rebinding), its admin API changes state only for requests
that declare JSON (a cross-site page cannot send application/json without a CORS preflight the sandbox never
grants), and its token endpoint refuses a cross-origin request as Entra does for a confidential client
(AADSTS9002326, learn.microsoft.com/entra/identity-platform/reference-error-codes)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from sandbox.testing import SandboxURL, running_sandbox
from tests.sandbox.conftest import CONFIG

FORM = {
    "grant_type": "client_credentials",
    "client_id": "00000000-0000-0000-0000-000000000001",
    "client_secret": "s",
    "scope": "https://graph.microsoft.com/.default",
}


@pytest.fixture
def own() -> SandboxURL:
    with running_sandbox(CONFIG, size=20, seed=4, throttling=False) as base:
        yield base


def _port(url: str) -> int:
    return int(urlsplit(str(url)).port or 80)


@pytest.mark.parametrize(
    "host", ["evil.example", "rebind.attacker.test:{port}", "127.0.0.1:1", "localhost.evil"]
)
def test_foreign_host_headers_are_refused_everywhere(own: SandboxURL, host: str) -> None:
    header = {"Host": host.format(port=_port(own))}
    before = httpx.get(f"{own}/sandbox/settings").json()
    tid = own.world.tenant_list()[0]["id"]  # type: ignore[attr-defined]
    for method, path, kwargs in (
        ("POST", "/sandbox/faults", {"json": {"latency_ms": 900}}),
        ("POST", "/sandbox/reset", {"json": {}}),
        ("GET", f"/sandbox/tenants/{tid}/snapshot", {}),
        ("POST", f"/{tid}/oauth2/v2.0/token", {"data": FORM}),
    ):
        r = httpx.request(method, f"{own}{path}", headers=header, **kwargs)
        assert r.status_code == 400 and "Host" in r.text, (path, r.status_code, r.text)
    assert httpx.get(f"{own}/sandbox/settings").json() == before


def test_loopback_names_with_the_sandbox_port_are_answered(own: SandboxURL) -> None:
    port = _port(own)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        r = httpx.get(f"{own}/sandbox/tenants", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)


def test_admin_changes_need_a_json_body(own: SandboxURL) -> None:
    before = httpx.get(f"{own}/sandbox/settings").json()
    for body, ctype in (
        ('{"latency_ms": 900}', "text/plain"),
        ("latency_ms=900", "application/x-www-form-urlencoded"),
    ):
        r = httpx.post(f"{own}/sandbox/faults", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 415 and "application/json" in r.json()["error"], r.text
    # No body at all is what a cross-site fetch() can send without a preflight: refused too.
    r = httpx.post(f"{own}/sandbox/reset")
    assert r.status_code == 415, r.text
    assert httpx.get(f"{own}/sandbox/settings").json() == before
    r = httpx.post(f"{own}/sandbox/faults", json={"latency_ms": 1})
    assert r.status_code == 200 and r.json()["latency_ms"] == 1, r.text
    assert httpx.post(f"{own}/sandbox/save", json={}).status_code == 409  # no --state: refused on its merits


def test_token_endpoint_takes_only_a_same_machine_form_post(own: SandboxURL) -> None:
    tid = own.world.tenant_list()[0]["id"]  # type: ignore[attr-defined]
    url = f"{own}/{tid}/oauth2/v2.0/token"
    assert httpx.post(url, data=FORM).status_code == 200  # what azure-identity sends: a form, no Origin
    plain = httpx.post(
        url, content="&".join(f"{k}={v}" for k, v in FORM.items()), headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_request", plain.text
    cross = httpx.post(url, data=FORM, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 400 and cross.json()["error_codes"] == [9002326], cross.text
    assert "Cross-origin token redemption" in cross.json()["error_description"]
