"""A library of many small files and a few large ones through the Migration API engine (sandbox + Azurite),
every item verified by quickXorHash through Graph; the same library through the Graph engine (a second
sandbox of the same seed) ends identical (snapshot diff). The default run uses 300 files; the 5,000-file
version is marked slow. (Rollback of imported files: test_bulk_resume.)"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.azurite import Azurite
from sandbox.migration_api import configure, service
from sandbox.testing import running_sandbox
from tests.bulk.conftest import BulkCli, bulk_config
from tests.bulk.library import seed_library, target_files
from tests.identity.conftest import TARGET, bootstrapped

MIB = 1024 * 1024


def _snap(url: str) -> dict[str, dict[str, tuple[object, ...]]]:
    return target_files(httpx.get(f"{url}/sandbox/tenants/{TARGET}/snapshot", timeout=120).json())


def _world(cfg: Path, azurite: Azurite, files: int, large: tuple[int, ...]) -> Any:
    ctx = running_sandbox(cfg, size=60, seed=3, throttling=False)
    url = ctx.__enter__()
    bootstrapped(str(url))  # the trust tenant's one-off set-up
    configure(url.world, blob_url=azurite.blob_url, queue_url=azurite.queue_url, account=azurite.account,
              key=azurite.key, rate=5000)  # fmt: skip
    source = next(t["id"] for t in url.world.tenant_list() if t["academy"] == "hillside")
    seeded = seed_library(url.world, source, "staff", files, large)
    return ctx, url, seeded


def _journey(
    tmp_path: Path, azurite: Azurite, files: int, large: tuple[int, ...], *, onedrive: bool, rollback: bool
) -> None:
    """Migration API engine, verified; then the Graph engine on the same library: after a rollback in the
    same sandbox (slow: SharePoint's delete budget), or in a second sandbox of the same seed."""
    extra = "" if onedrive else "    onedrive: false\n"
    bulk_cfg = bulk_config(tmp_path / "bulk", "migration-api", extra)
    graph_cfg = bulk_config(tmp_path / "graph", "graph", extra)
    fast = ("--sharepoint-budget", "100000/60")  # the sandboxes' throttling is off for this comparison
    ctx, url, seeded = _world(bulk_cfg, azurite, files, large)
    with contextlib.ExitStack() as stack:
        stack.push(ctx.__exit__)
        bulk = BulkCli(url, tmp_path / "bulk.db", bulk_cfg, azurite.env())
        bulk("discover", "hillside")
        bulk("run", "hillside", "--phase", "users", "--replan")
        before = _snap(url)
        run = json.loads(bulk("run", "hillside", "--phase", "files", "--replan", "--json").stdout)
        assert run["status"] == "succeeded", run["failures"]
        assert run["counts"]["files"] >= seeded["files"]
        svc = service(url.world)
        assert svc.imports and max(svc.imports.values()) == 1  # every file imported once
        assert sum(1 for k in svc.imports if "/Bulk/" in k) == seeded["files"]
        verify = json.loads(bulk("verify", "hillside", "--json", check=False).stdout)["files"]
        assert verify["differences"] == [] and verify["matched"] == verify["files"] - 1  # oversized video
        assert verify["files"] >= seeded["files"]
        via_api = _snap(url)
        if rollback:
            rolled = json.loads(bulk("rollback", "hillside", "--phase", "files", "--yes", "--json").stdout)
            assert rolled[0]["result"]["status"] == "succeeded", rolled
            after = _snap(url)
            assert {d: f for d, f in after.items() if f} == {d: f for d, f in before.items() if f}
            graph = BulkCli(url, tmp_path / "bulk.db", graph_cfg, azurite.env())
        else:
            ctx2, url2, _ = _world(graph_cfg, azurite, files, large)
            stack.push(ctx2.__exit__)
            graph = BulkCli(url2, tmp_path / "graph.db", graph_cfg, azurite.env())
            graph("discover", "hillside")
            graph("run", "hillside", "--phase", "users", "--replan")
            url = url2
        run = json.loads(graph("run", "hillside", "--phase", "files", "--replan", "--json", *fast).stdout)
        assert run["status"] == "succeeded", run["failures"]
        via_graph = _snap(url)
    assert via_api == via_graph  # same paths, sizes, hashes and timestamps, drive by drive
    assert sum(len(v) for v in via_api.values()) > seeded["files"]


def test_300_files_through_the_migration_api_match_the_graph_engine(tmp_path: Path, azurite: Azurite) -> None:
    _journey(tmp_path, azurite, 300, (6 * MIB + 7, 9 * MIB), onedrive=False, rollback=False)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_5000_files_through_the_migration_api_match_the_graph_engine(
    tmp_path: Path, azurite: Azurite
) -> None:
    _journey(tmp_path, azurite, 5000, (64 * MIB + 3, 96 * MIB, 300 * MIB), onedrive=True, rollback=False)
