"""A sandbox server shared by the sandbox tests (throttling off unless a test starts its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.testing import SandboxURL, graph_client, running_sandbox

CONFIG = Path(__file__).resolve().parents[2] / "config"
GRAPH_BIND = "https://graph.microsoft.com/v1.0/directoryObjects/"
PASSWORD = {"forceChangePasswordNextSignIn": True, "password": "Sandbox!Pass123"}


@pytest.fixture(scope="session")
def config_dir() -> Path:
    return CONFIG


@pytest.fixture(scope="session")
def sandbox_url(config_dir: Path) -> Iterator[SandboxURL]:
    # OneDrive provisioning delay 0: these unit tests provision and read at once (they say so here). Staff
    # seats enough for every test file that licenses a user of its own in this one session's tenants (the
    # generated tenants hold about as many seats as staff, as real ones do).
    with running_sandbox(
        config_dir,
        size=60,
        seed=7,
        throttling=False,
        onedrive_provision_delay_s=0,
        seats="STANDARDWOFFPACK_FACULTY=500",
    ) as base:
        yield base


@pytest.fixture(scope="session")
def tenants(sandbox_url: SandboxURL) -> list[dict]:
    return httpx.get(f"{sandbox_url}/sandbox/tenants").json()


@pytest.fixture(scope="session")
def target_id(tenants: list[dict]) -> str:
    return next(t["id"] for t in tenants if t["role"] == "target")


@pytest.fixture(scope="session")
def source_id(tenants: list[dict]) -> str:
    return next(t["id"] for t in tenants if t["role"] == "source")


@pytest.fixture
def target(sandbox_url: SandboxURL, target_id: str) -> Iterator[httpx.Client]:
    with graph_client(sandbox_url, target_id) as c:
        yield c


@pytest.fixture
def source(sandbox_url: SandboxURL, source_id: str) -> Iterator[httpx.Client]:
    with graph_client(sandbox_url, source_id) as c:
        yield c


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_user_body(domain: str = "northernlights.org.uk", **extra: object) -> dict:
    nick = unique("u")
    body = {
        "accountEnabled": True,
        "displayName": f"Test {nick}",
        "mailNickname": nick,
        "userPrincipalName": f"{nick}@{domain}",
        "passwordProfile": PASSWORD,
    }
    body.update(extra)
    return body


def make_user(client: httpx.Client, **extra: object) -> dict:
    r = client.post("/users", json=new_user_body(**extra))
    assert r.status_code == 201, r.text
    return r.json()


def make_group(client: httpx.Client, unified: bool = False, **extra: object) -> dict:
    nick = unique("g")
    body = {
        "displayName": f"Group {nick}",
        "mailNickname": nick,
        "mailEnabled": unified,
        "securityEnabled": not unified,
        "groupTypes": ["Unified"] if unified else [],
    }
    body.update(extra)
    r = client.post("/groups", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "innerError"} <= set(body["error"]), body
    assert {"date", "request-id", "client-request-id"} <= set(body["error"]["innerError"])
    return body["error"]
