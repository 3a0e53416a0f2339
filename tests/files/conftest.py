"""File migration tests: the real CLI (subprocesses) against a real sandbox with the synthetic trees."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sandbox.testing import running_sandbox, token
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped

SOURCE_SITE = "staff"  # hillside's shared library: staff/Documents -> hillside-staff/Documents
TARGET_SITE = "hillside-staff"


@dataclass
class World:
    url: str
    cli: Cli
    source: str  # hillside's legacy tenant id
    state: Path

    def graph(self, tenant: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v1.0",
            headers={"Authorization": f"Bearer {token(self.url, tenant)}"},
            timeout=120,
        )

    def library(self, tenant: str, site: str) -> str:
        with self.graph(tenant) as g:
            found = g.get("/sites", params={"search": site}).json()["value"]
            sid = next(s["id"] for s in found if s["name"] == site)
            return str(g.get(f"/sites/{sid}/drive").json()["id"])

    def drives(self, tenant: str = TARGET) -> dict[str, dict[str, Any]]:
        """The tenant's drives from the admin snapshot: drive id -> {path: item} (live items only)."""
        snap = httpx.get(f"{self.url}/sandbox/tenants/{tenant}/snapshot", timeout=120).json()
        return {d["id"]: {i["path"]: i for i in d["items"]} for d in snap["drives"]["drives"]}

    def add_file(self, tenant: str, drive: str, path: str, size: int, seed: str) -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/sandbox/tenants/{tenant}/files",
            json={"drive": drive, "path": path, "size": size, "seed": seed},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def put(self, tenant: str, drive: str, path: str, data: bytes) -> dict[str, Any]:
        with self.graph(tenant) as g:
            r = g.put(f"/drives/{drive}/root:/{quote(path)}:/content", content=data)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def stats(self, tenant: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/sandbox/stats").json()["tenants"][tenant])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def hillside(tmp_path: Path) -> Iterator[World]:
    """A fresh sandbox (size 60) with hillside discovered and its users created in the trust tenant."""
    # OneDrives appear 1 s after `run --phase files` requests them (shorter than the default, said here).
    with running_sandbox(CONFIG, size=60, seed=3, onedrive_provision_delay_s=1) as url:
        bootstrapped(url)
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
        w = World(url, Cli(url, tmp_path / "state.db"), source, tmp_path / "state.db")
        w.cli("discover", "hillside")
        w.cli("run", "hillside", "--phase", "users", "--replan")
        w.cli("provision-onedrive", "hillside")  # as an operator does before the files phase
        yield w
