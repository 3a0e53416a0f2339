"""Domain phase tests: one academy (hillside, keep_academy_domain true) whose identity phases are done and
verified once per session; each test starts a sandbox and a state store from copies of that result."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrations.core.killpoints import ENV as KILL_ENV
from sandbox.domains_state import verification_text
from sandbox.testing import running_sandbox
from tests.identity.conftest import bootstrapped

CONFIG = Path(__file__).resolve().parents[2] / "config"
TRUST = "6f1c2a4e-8b7d-4c3e-9a10-2b5d7e9f0a11"
LEGACY = "1a2b3c4d-0001-4e5f-8a9b-0c1d2e3f4a51"
DOMAIN = "hillsideacademy.org.uk"
SIZE = 30


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    def __init__(self, url: str, state: Path, config: Path):
        self.url, self.state, self.config = url, state, config

    def env(self) -> dict[str, str]:
        return {
            "TRUSTFOLD_CONFIG_DIR": str(self.config),
            "TRUSTFOLD_GRAPH_URL": self.url,
            "TRUSTFOLD_STATE": str(self.state),
        }

    def __call__(self, *args: str, check: bool = True) -> Result:
        """In the test process (fast); the exit code and output are the CLI's own."""
        from cli.main import run

        saved = {k: os.environ.get(k) for k in self.env()}
        os.environ.update(self.env())
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(list(args))
        finally:
            # asyncio.run leaves the main thread without an event loop; later tests (Pulumi mocks) need one.
            asyncio.set_event_loop(asyncio.new_event_loop())
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        res = Result(code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"trustfold {' '.join(args)} -> {code}\n{res.out}\n{res.err}")
        return res

    def subprocess(self, *args: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env()}
        if kill:
            env[KILL_ENV] = kill
        return subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def write_config(dest: Path) -> Path:
    shutil.copytree(CONFIG, dest)
    path = dest / "academies" / "hillside.yaml"
    path.write_text(path.read_text() + "domains:\n  keep_academy_domain: true\n")
    return dest


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Identity phases done and verified for hillside; the sandbox's and trustfold's state saved."""
    base = tmp_path_factory.mktemp("domain-prepared")
    config = write_config(base / "config")
    world_state = base / "sandbox.json"
    with running_sandbox(config, size=SIZE, seed=2, state_path=world_state) as url:
        bootstrapped(str(url))
        cli = Cli(url, base / "state.db", config)
        for cmd in (
            "discover hillside",
            "run hillside --phase users --replan",
            "run hillside --phase groups --replan",
            "run hillside --phase memberships --replan",
            "verify hillside",
        ):
            cli(*cmd.split())
        httpx.post(f"{url}/sandbox/save", json={}, timeout=60).raise_for_status()
    return {"config": config, "world": world_state, "state": base / "state.db"}


@pytest.fixture
def env(prepared: dict[str, Path], tmp_path: Path) -> Iterator[tuple[str, Cli]]:
    world = tmp_path / "sandbox.json"
    shutil.copy(prepared["world"], world)
    shutil.copy(prepared["state"], tmp_path / "state.db")
    with running_sandbox(prepared["config"], size=SIZE, seed=2, state_path=world) as url:
        # Domain removals finish after a short while, as in Entra, but quickly enough for tests.
        httpx.post(f"{url}/sandbox/dns", json={"operation_seconds": 0.2}, timeout=30).raise_for_status()
        yield url, Cli(url, tmp_path / "state.db", prepared["config"])


def publish(url: str, tenant: str = TRUST, delay: float = 0) -> str:
    text = verification_text(tenant, DOMAIN)
    r = httpx.post(
        f"{url}/sandbox/dns",
        json={"action": "publish", "name": DOMAIN, "text": text, "delay_seconds": delay},
        timeout=30,
    )
    r.raise_for_status()
    return text


def withdraw(url: str, text: str) -> None:
    httpx.post(f"{url}/sandbox/dns", json={"action": "withdraw", "name": DOMAIN, "text": text}, timeout=30)


def exchange_readdress(url: str) -> list[str]:
    r = httpx.post(f"{url}/sandbox/exchange", json={"tenant": LEGACY, "domain": DOMAIN}, timeout=30)
    r.raise_for_status()
    return list(r.json()["readdressed"])


def snapshot(url: str, tenant: str) -> dict[str, Any]:
    snap = httpx.get(f"{url}/sandbox/tenants/{tenant}/snapshot", timeout=60).json()
    snap.pop("drives", None)
    return json.loads(json.dumps(snap))
