"""Bulk engine tests: the real CLI against a sandbox whose SharePoint has a Migration API, with Azurite (npm)
as the staging blob service and the report queue."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.azurite import Azurite, executable, running_azurite
from sandbox.migration_api import configure
from sandbox.testing import running_sandbox
from tests.files.conftest import World
from tests.identity.conftest import CONFIG, Cli, bootstrapped


def require_azurite() -> None:
    """Skip only where Azurite cannot run at all (no Node.js); Node without Azurite is a set-up fault."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is absent, so Azurite cannot run (make test installs it when node/npm exist)")
    if executable() is None:
        pytest.fail("Node.js is here but Azurite is not: run `make test` (npm installs it into .tools/)")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    require_azurite()
    with running_azurite(tmp_path_factory.mktemp("azurite")) as a:
        yield a


def bulk_config(tmp: Path, engine: str = "migration-api", extra: str = "") -> Path:
    """The example trust's config with hillside's files engine set."""
    out = tmp / "config"
    shutil.copytree(CONFIG, out)
    p = out / "academies" / "hillside.yaml"
    text = p.read_text()
    text = re.sub(r"    engine: auto\n    auto: \{min_items: 20\}\n", "", text)
    text = re.sub(r"(  files:\n)", rf"\1    engine: {engine}\n{extra}", text, count=1)
    p.write_text(text)
    return out


class BulkCli(Cli):
    def __init__(self, url: str, state: Path, config: Path, extra_env: dict[str, str]):
        super().__init__(url, state)
        self.config, self.extra_env = config, extra_env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """As Cli, with room for the slow 5,000-file runs (Cli allows 300 s)."""
        proc = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"trustfold {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def env(self) -> dict[str, str]:
        return {**super().env(), "TRUSTFOLD_CONFIG_DIR": str(self.config), **self.extra_env}


def start(tmp: Path, azurite: Azurite, *, engine: str = "migration-api", extra: str = "", **settings: object):
    config = bulk_config(tmp, engine, extra)
    return config, running_sandbox(config, **settings)


@pytest.fixture
def bulk_hillside(tmp_path: Path, azurite: Azurite) -> Iterator[World]:
    """A fresh sandbox (size 60) with a Migration API backed by Azurite; hillside discovered, users created,
    its files engine set to migration-api."""
    config, ctx = start(tmp_path, azurite, size=60, seed=3)
    with ctx as url:
        bootstrapped(str(url))  # the trust tenant's one-off set-up
        configure(url.world, blob_url=azurite.blob_url, queue_url=azurite.queue_url, account=azurite.account,
                  key=azurite.key, rate=2000)  # fmt: skip
        source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
        cli = BulkCli(url, tmp_path / "state.db", config, azurite.env())
        w = World(url, cli, source, tmp_path / "state.db")
        w.cli("discover", "hillside")
        w.cli("run", "hillside", "--phase", "users", "--replan")
        yield w
