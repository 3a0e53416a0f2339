"""Identity migration tests: the real CLI against a real sandbox, one fresh sandbox per test."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.testing import register_extension, running_sandbox

CONFIG = Path(__file__).resolve().parents[2] / "config"
TARGET = "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"


class Cli:
    """Runs `trustfold` as an operator would: a subprocess with the sandbox URL and a private state file."""

    def __init__(self, url: str, state: Path):
        self.url, self.state = url, state

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRUSTFOLD_CONFIG_DIR": str(CONFIG),
            "TRUSTFOLD_GRAPH_URL": self.url,
            "TRUSTFOLD_STATE": str(self.state),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"trustfold {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


class InProcessCli(Cli):
    """The CLI entry point called in this process (as the demo does): same arguments, exit codes and output
    as the subprocess, without paying the interpreter start-up for each of the many commands here."""

    def __init__(self, url: str, state: Path, config: Path = CONFIG):
        super().__init__(url, state)
        self.config = config

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        from cli.logs import configure
        from cli.main import run

        base = ["--config-dir", str(self.config), "--state", str(self.state), "--graph-url", self.url]
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = run([*base, *args])
        finally:
            configure(verbose=False, fmt="text")
        proc = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"trustfold {' '.join(args)} -> {code}\n{proc.stdout}\n{proc.stderr}")
        return proc


def snapshot(url: str, tenant: str = TARGET) -> dict[str, Any]:
    return httpx.get(f"{url}/sandbox/tenants/{tenant}/snapshot", timeout=60).json()


def directory_view(snap: dict[str, Any]) -> dict[str, Any]:
    """The target as an operator sees it, independent of generated ids: users by UPN, groups by
    mailNickname with their member UPNs / nicknames and owners, licences per UPN."""
    text = json.dumps(snap)
    data = json.loads(text)
    users = {u["id"]: u for u in _find(data, "users")}
    groups = {g["id"]: g for g in _find(data, "groups")}

    def name(oid: str) -> str:
        if oid in users:
            return users[oid]["userPrincipalName"].lower()
        if oid in groups:
            return "group:" + str(groups[oid].get("mailNickname")).lower()
        return oid

    view_users = {
        u["userPrincipalName"].lower(): sorted(
            lic.get("skuId", "") for lic in u.get("assignedLicenses") or []
        )
        for u in users.values()
    }
    memberships = _find(data, "members")
    owners = _find(data, "owners")
    view_groups = {}
    for gid, g in groups.items():
        m = memberships.get(gid, []) if isinstance(memberships, dict) else []
        o = owners.get(gid, []) if isinstance(owners, dict) else []
        view_groups[str(g.get("mailNickname")).lower()] = {
            "displayName": g.get("displayName"),
            "members": sorted(name(x if isinstance(x, str) else x.get("id")) for x in m),
            "owners": sorted(name(x if isinstance(x, str) else x.get("id")) for x in o),
        }
    return {"users": view_users, "groups": view_groups}


def _find(data: Any, key: str) -> Any:
    """The snapshot's collection under `key`, as a list of objects (or a dict for link maps)."""
    node = data.get("directory", data) if isinstance(data, dict) else data
    value = node.get(key) if isinstance(node, dict) else None
    if value is None:
        return [] if key in ("users", "groups") else {}
    if key in ("users", "groups") and isinstance(value, dict):
        return list(value.values())
    return value


TRUST_APP = "0b6a9d2e-3f41-4c5a-8e7b-1d2c3b4a5f60"  # config/trust.yaml's client id


def bootstrapped(url: str) -> str:
    """The one-off set-up `trustfold bootstrap` does: the provenance extension property is registered."""
    for _ in range(20):  # injected faults may hit this request too: retry as bootstrap's client would
        try:
            r = register_extension(url, TARGET, TRUST_APP)
        except httpx.TransportError:
            continue
        if r.status_code == 201 or (r.status_code == 400 and "exists" in r.text):
            return url
    raise AssertionError("could not register the provenance extension property")


@pytest.fixture
def sandbox() -> Iterator[str]:
    with running_sandbox(CONFIG, size=100, seed=2) as url:
        yield bootstrapped(str(url))


@pytest.fixture
def cli(sandbox: str, tmp_path: Path) -> Cli:
    return Cli(sandbox, tmp_path / "state.db")
