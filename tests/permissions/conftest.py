"""Permissions tests: the real CLI against a real sandbox whose hillside library has nested sharing (groups,
users, organisation and anonymous links, a guest, a disabled user and a leaver), files already copied."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import running_sandbox, token
from tests.identity.conftest import CONFIG, TARGET, Cli, bootstrapped

TARGET_SITE = "hillside-staff"


class InProcessCli(Cli):
    """The CLI entry point called in this process (as `trustfold demo` calls it), output captured: the same
    commands without a second or two of interpreter start-up each. Kill tests use the subprocess `Cli`."""

    def __init__(self, url: str, state: Path, config: Path = CONFIG):
        super().__init__(url, state)
        self.config = config

    def env(self) -> dict[str, str]:
        return {**super().env(), "TRUSTFOLD_CONFIG_DIR": str(self.config)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        from cli.logs import configure
        from cli.main import run

        out, err = io.StringIO(), io.StringIO()
        argv = ["--config-dir", str(self.config), "--state", str(self.state), "--graph-url", self.url, *args]
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = run(argv)
        finally:
            configure(verbose=False, fmt="text")
        proc = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"trustfold {' '.join(args)} -> {code}\n{proc.stdout}\n{proc.stderr}")
        return proc


@dataclass
class World:
    url: str
    cli: Cli
    source: str
    state: Path

    def graph(self, tenant: str = TARGET) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v1.0",
            headers={"Authorization": f"Bearer {token(self.url, tenant)}"},
            timeout=60,
        )

    def sharing(self, tenant: str = TARGET) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/sandbox/tenants/{tenant}/sharing", timeout=30).json())

    def copies(self) -> dict[str, tuple[str, str]]:
        """Target path -> (target drive, target item) for everything the files phase copied."""
        with sqlite3.connect(self.state) as db:
            rows = db.execute("SELECT path, target_drive, target_id, drive_key FROM file_copies").fetchall()
        return {f"{k}|{p}": (d, i) for p, d, i, k in rows}

    def direct(self, drive: str, item: str) -> list[dict[str, Any]]:
        """The item's own grants. SharePoint never says which are inherited (no inheritedFrom): those are the
        ones its parent lists too, with the same id."""
        with self.graph() as g:
            mine = _read(g, f"/drives/{drive}/items/{item}/permissions")["value"]
            parent = (_read(g, f"/drives/{drive}/items/{item}").get("parentReference") or {}).get("id")
            above = (
                {p["id"] for p in _read(g, f"/drives/{drive}/items/{parent}/permissions")["value"]}
                if parent
                else set()
            )
        return [p for p in mine if p["id"] not in above and "owner" not in p["roles"]]

    def signatures(self, drive: str, item: str) -> Counter[tuple[str, str, str]]:
        out: Counter[tuple[str, str, str]] = Counter()
        for p in self.direct(drive, item):
            if "link" in p:
                out[("link", p["link"]["type"], p["link"]["scope"])] += 1
            else:
                who = p["grantedToV2"].get("user") or p["grantedToV2"].get("group")
                kind = "user" if "user" in p["grantedToV2"] else "group"
                out[(kind, who["id"], ",".join(sorted(p["roles"])))] += 1
        return out

    def rows(self, sql: str) -> list[sqlite3.Row]:
        with sqlite3.connect(self.state) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One sandbox for the module: hillside discovered, users, groups and files migrated."""
    tmp = tmp_path_factory.mktemp("permissions")
    with running_sandbox(CONFIG, size=20, seed=3) as url:
        bootstrapped(str(url))
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
        w = World(url, InProcessCli(url, tmp / "state.db"), source, tmp / "state.db")
        w.cli("discover", "hillside")
        for phase in ("users", "groups", "memberships", "files"):
            w.cli("run", "hillside", "--phase", phase, "--replan")
        yield w


def run_with(cli: Cli, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One CLI command with extra environment (the test-only kill hook)."""
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        env={**cli.env(), **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def variant(w: World, tmp: Path, setting: str) -> World:
    """The same tenants and state (copied), with hillside's files.sharing settings replaced."""
    config = tmp / "config"
    shutil.copytree(CONFIG, config)
    path = config / "academies" / "hillside.yaml"
    text = path.read_text().replace("  files:\n", f"  files:\n    sharing: {{{setting}}}\n", 1)
    path.write_text(text)
    with sqlite3.connect(w.state) as src, sqlite3.connect(tmp / "state.db") as dst:
        src.backup(dst)
    return World(w.url, InProcessCli(w.url, tmp / "state.db", config), w.source, tmp / "state.db")


def _read(g: httpx.Client, path: str) -> dict[str, Any]:
    """A test's read, waiting out 429s as Graph asks (the run it checks may have spent the budget)."""
    for _ in range(60):
        r = g.get(path)
        if r.status_code != 429:
            break
        time.sleep(float(r.headers.get("Retry-After", "1")))
    assert r.status_code == 200, r.text
    return dict(r.json())
