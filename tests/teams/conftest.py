"""Teams tests: the real CLI against a real sandbox whose hillside tenant has class teams (with channels,
files, tabs and a term's messages) and a staff team with a private channel; users, groups and memberships
already migrated. Reading channel messages is a protected API: the sandbox approves the trust's app for it
unless a test says otherwise."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox, token
from tests.identity.conftest import CONFIG, TARGET, bootstrapped
from tests.permissions.conftest import InProcessCli

ACADEMY = "hillside"


@dataclass
class World:
    url: str
    cli: InProcessCli
    source: str
    state: Path

    def graph(self, tenant: str = TARGET) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v1.0",
            headers={"Authorization": f"Bearer {token(self.url, tenant)}"},
            timeout=60,
        )

    def get(self, path: str, tenant: str = TARGET) -> Any:
        with self.graph(tenant) as g:
            r = g.get(path)
            assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
            return r.json()

    def teams(self, tenant: str = TARGET) -> dict[str, dict[str, Any]]:
        """displayName -> the team (with specialization) for every team of the tenant."""
        out = {}
        for t in self.get("/teams", tenant)["value"]:
            out[t["displayName"]] = self.get(f"/teams/{t['id']}", tenant)
        return out

    def channels(self, team_id: str, tenant: str = TARGET) -> dict[str, dict[str, Any]]:
        return {c["displayName"]: c for c in self.get(f"/teams/{team_id}/channels", tenant)["value"]}

    def messages(self, team_id: str, channel_id: str, tenant: str = TARGET) -> dict[str, Any]:
        """Every message and reply of a channel and its migrationMode, from the sandbox's own view (no
        protected-API check: what a test asserts on, not what trustfold reads)."""
        r = httpx.get(
            f"{self.url}/sandbox/tenants/{tenant}/teams/{team_id}/channels/{channel_id}/messages", timeout=30
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post_at_source(self, team_id: str, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(
            f"{self.url}/sandbox/tenants/{self.source}/teams/{team_id}/channels/{channel_id}/messages",
            json=body,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def rows(self, sql: str) -> list[sqlite3.Row]:
        with sqlite3.connect(self.state) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql).fetchall()

    def people(self) -> dict[str, str]:
        """Source user id -> trust user id, as the users phase made them."""
        out = {}
        for r in self.rows(
            "SELECT step_key, target_id FROM journal WHERE phase = 'users' AND event = 'done' "
            "AND op = 'create-user'"
        ):
            out[r["step_key"].split(":", 1)[1]] = r["target_id"]
        return out

    def run(self, *args: str) -> dict[str, Any]:
        out = self.cli("run", ACADEMY, "--phase", "teams", "--replan", "--json", *args).stdout
        return dict(json.loads(out))


def identity_migrated(url: str, state: Path) -> World:
    bootstrapped(str(url))
    source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == ACADEMY)  # type: ignore[attr-defined]
    w = World(url, InProcessCli(url, state), source, state)
    w.cli("discover", ACADEMY)
    for phase in ("users", "groups", "memberships"):
        w.cli("run", ACADEMY, "--phase", phase, "--replan")
    return w


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One sandbox for the module: hillside discovered; users, groups and memberships migrated."""
    tmp = tmp_path_factory.mktemp("teams")
    with running_sandbox(CONFIG, size=20, seed=3, teams_protected_api_approved=True) as url:
        yield identity_migrated(url, tmp / "state.db")
